"""No silent wrong result: export calibration coverage and held-out fidelity, teacher mismatches refused,
non-finite caches and training metrics caught."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_tiny import one_thread  # noqa: F401 - fixture
from export_support import TEST_AUDIO, prototype_bank, tiny_student
from tinyclap.cli import main
from tinyclap.export.calibration import (
    MIN_CALIBRATION_CLIPS,
    CalibrationError,
    CalibrationWarning,
    calibration_from_clips,
    split_holdout,
)
from tinyclap.export.pipeline import ExportError, export_student
from tinyclap.students import save_student

pytestmark = pytest.mark.usefixtures("one_thread")
TEACHER, TEACHER_ID = "local:/teachers/a/teacher.json", "local#" + "a" * 32
LABELS = ["one", "two", "three", "four"]


def _synth_clips(n: int, seed: int) -> list[np.ndarray]:
    from tinyclap.data import open_dataset

    ds = open_dataset(f"synth?n={n}&seed={seed}", TEST_AUDIO)
    return [np.asarray(ds[i].clip, dtype=np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    """A tiny student (BatchNorms measured on generated clips) distilled, as its checkpoint says, from TEACHER."""
    tmp = tmp_path_factory.mktemp("guard_export")
    clips = _synth_clips(24, seed=5)
    student = tiny_student(clips)
    ckpt = save_student(tmp / "student", student, teacher=TEACHER, teacher_id=TEACHER_ID)
    bank = replace(prototype_bank(student, clips[:4], LABELS), teacher=TEACHER, teacher_id=TEACHER_ID)
    return {"tmp": tmp, "clips": clips, "ckpt": ckpt, "bank": bank, "bank_path": bank.save(tmp / "bank.npz")}


def _calib(clips: list[np.ndarray]):
    return calibration_from_clips(clips, TEST_AUDIO, [f"c{i}" for i in range(len(clips))], source="generated")


def test_holdout_split() -> None:
    assert split_holdout(1) == ([0], [0])  # nothing to hold out
    assert split_holdout(2) == ([0], [1])
    cal, ver = split_holdout(8)
    assert ver == [3, 7] and cal == [0, 1, 2, 4, 5, 6]
    cal, ver = split_holdout(160)
    assert len(ver) == 40 and len(cal) == 120 and not set(cal) & set(ver)


def test_all_silent_calibration_is_refused_before_any_work(model, tmp_path: Path) -> None:
    silent = [np.zeros(TEST_AUDIO.clip_samples, np.float32)] * 6 + [np.full(TEST_AUDIO.clip_samples, 1e-5, np.float32)] * 6
    out = tmp_path / "out"
    with pytest.raises(CalibrationError, match="all 9 calibration clips are silent"):
        export_student(model["ckpt"], model["bank"], out, formats="onnx-int8", calibration=_calib(silent))
    assert not out.exists()


def test_cli_refuses_a_folder_of_silent_wavs_in_one_line(model, tmp_path: Path, capsys) -> None:
    import soundfile as sf

    folder = tmp_path / "silence"
    folder.mkdir()
    for i in range(4):
        sf.write(folder / f"s{i}.wav", np.zeros(TEST_AUDIO.clip_samples, np.float32), TEST_AUDIO.sample_rate)
    rc = main(["export", "--student", str(model["ckpt"]), "--bank", str(model["bank_path"]), "--formats", "onnx-int8",
               "--calib", f"folder:{folder}", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "calibration clips are silent" in err[0], err


def test_few_clips_warn_and_figures_come_from_held_out_clips(model, tmp_path: Path) -> None:
    """One real clip repeated, plus silence: legal, so a warning, and the figures are not the calibration's own."""
    from tinyclap.export.onnx import OnnxModel
    from tinyclap.export.report import cosine_stats
    from tinyclap.students import load_student

    clips = model["clips"]
    silence = np.zeros_like(clips[0])
    calib = _calib([clips[0], clips[0], silence, clips[1], clips[2], clips[3], clips[4], clips[5]])
    with pytest.warns(CalibrationWarning, match=rf"only 4 distinct non-silent clips .*1 silent, 1 duplicates.*"
                                                rf"fewer than {MIN_CALIBRATION_CLIPS}"):
        result = export_student(model["ckpt"], model["bank"], tmp_path / "out", formats="onnx-int8", calibration=calib)
    r = json.loads(result.report_path.read_text())["calibration"]
    assert r["calibration_clip_ids"] == ["c0", "c1", "c2", "c4", "c5", "c6"]
    assert r["verification_clip_ids"] == ["c3", "c7"] and r["verified_on"] == "held-out clips"
    assert r["silent_clip_ids"] == ["c2"] and r["distinct_sounds"] == 4 and len(r["warnings"]) == 1
    int8 = result.report["formats"]["onnx-int8"]
    assert int8["clips"] == 2
    # The reported figure is what the int8 model gives on the held-out clips, recomputed here.
    student = load_student(model["ckpt"])
    held = torch.from_numpy(calib.clips[[3, 7]])
    got = OnnxModel(tmp_path / "out" / "embed.int8.onnx")(student.frontend(held))
    want = student.embed_audio(held).numpy()
    assert int8["cosine_mean"] == pytest.approx(cosine_stats(got, want)["cosine_mean"], abs=1e-5)


def test_one_clip_warns_in_the_log_and_the_report_says_it_verified_on_it(model, tmp_path: Path) -> None:
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)  # with a log, the warning goes there (as the CLI prints)
        result = export_student(model["ckpt"], model["bank"], tmp_path / "out", formats="onnx",
                                calibration=_calib(model["clips"][:1]), log=lines.append)
    assert any(line.startswith("warning: ") and "only 1 distinct non-silent clips" in line for line in lines)
    r = result.report["calibration"]
    assert r["calibration_clip_ids"] == r["verification_clip_ids"] == ["c0"]
    assert r["verified_on"].startswith("the calibration clip (too few clips")


def test_enough_distinct_clips_do_not_warn(model, tmp_path: Path) -> None:
    calib = _calib(model["clips"])  # 24 clips: 18 calibrate (one synth clip is near silence, -70 dBFS), 6 verify
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        result = export_student(model["ckpt"], model["bank"], tmp_path / "out", formats="onnx", calibration=calib)
    r = result.report["calibration"]
    assert r["warnings"] == [] and r["distinct_sounds"] == 17 and r["silent_clip_ids"] == ["c20"]
    assert len(r["calibration_clip_ids"]) == 18 and result.report["formats"]["onnx"]["clips"] == 6


def test_export_refuses_a_bank_of_another_teacher(model, tmp_path: Path, capsys) -> None:
    other = replace(model["bank"], teacher="local:/teachers/b/teacher.json", teacher_id="local#" + "b" * 32)
    path = other.save(tmp_path / "other.npz")
    with pytest.raises(ExportError, match="embeddings of different teachers do not share a space"):
        export_student(model["ckpt"], path, tmp_path / "out", formats="onnx", calibration=_calib(model["clips"]))
    assert not (tmp_path / "out").exists()
    rc = main(["export", "--student", str(model["ckpt"]), "--bank", str(path), "--formats", "onnx",
               "--calib", "synth?n=4", "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "different teachers" in err[0]


# ----------------------------------------------------------------------------- non-finite caches
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    from distill_tiny import ProjTeacher, synth

    from tinyclap.distill.cache import build_cache

    root = tmp_path_factory.mktemp("guard_cache")
    build_cache(ProjTeacher(), synth(40), root / "cache", batch_size=16, progress=False)
    return root / "cache"


def _poisoned(cache_dir: Path, tmp_path: Path, value: float) -> Path:
    import shutil

    bad = tmp_path / "bad-cache"
    shutil.copytree(cache_dir, bad)
    arr = np.load(bad / "shard-00000.npy")
    arr[5, 3] = value
    np.save(bad / "shard-00000.npy", arr)
    return bad


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_cache_holding_non_finite_embeddings_is_refused_on_open(cache_dir, tmp_path: Path, value) -> None:
    from tinyclap.distill.cache import CacheError, EmbeddingCache

    clip = EmbeddingCache.open(cache_dir).ids[5]
    bad = _poisoned(cache_dir, tmp_path, value)
    with pytest.raises(CacheError, match=rf"shard-00000.npy: 1 of 40 embeddings hold NaN or infinite values "
                                         rf"\(e.g. clip '{clip}'\)"):
        EmbeddingCache.open(bad)


def test_distill_and_prune_refuse_a_nan_cache_in_one_line(cache_dir, tmp_path: Path, capsys) -> None:
    from distill_tiny import TINY_AUDIO, tiny_student_config

    from tinyclap.students import save_preset

    bad = _poisoned(cache_dir, tmp_path, float("nan"))
    preset = save_preset(tmp_path / "tiny.yaml", tiny_student_config(), TINY_AUDIO, description="test student")
    rc = main(["distill", "--cache", str(bad), "--data", "synth?n=40&seed=1", "--student", str(preset),
               "--preset", "quick", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "NaN or infinite" in err[0], err
    assert not (tmp_path / "run" / "best.json").exists()
    from distill_tiny import ProjTeacher, tiny_student

    from tinyclap.bank import PromptBank
    from tinyclap.distill.cache import CacheError
    from tinyclap.prune import prune

    with pytest.raises(CacheError, match="NaN or infinite"):
        prune(tiny_student(dropout=False).eval(), PromptBank.build(ProjTeacher(), LABELS), 6, cache=bad)


# ----------------------------------------------------------------------------- non-finite training
def test_distill_stops_at_a_non_finite_loss_and_keeps_the_last_good_epoch(cache_dir, tmp_path: Path) -> None:
    from distill_tiny import synth, tiny_student

    from tinyclap.distill import distill
    from tinyclap.distill.checkpoints import load_training_state
    from tinyclap.errors import DivergedError
    from tinyclap.students import load_student

    out = tmp_path / "run"
    student = tiny_student()

    def diverge(step: int, loss: float) -> None:  # weights blow up once epoch 1 is saved
        if (out / "last.json").is_file():
            with torch.no_grad():
                student.projection.linear1.weight.fill_(float("inf"))

    with pytest.raises(DivergedError, match=r"diverged in epoch 2 \(step \d+\): train_loss nan \(not finite\); "
                                            r"stopped, the last good checkpoint \(epoch 1\) is kept in"):
        distill(student, cache_dir, synth(40), out_dir=out, preset="quick", epochs=3, batch_size=8,
                on_step=diverge, progress=False)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    for name in ("last", "best"):
        assert json.loads((out / f"{name}.json").read_text())["epoch"] == 1
        weights = load_student(out / f"{name}.json").state_dict().values()
        assert all(torch.isfinite(w).all() for w in weights if w.is_floating_point())
    state = load_training_state(out / "state.pt")
    assert state["epoch"] == 1 and all(math.isfinite(x) for x in state["loss_sum"])


def test_distill_never_keeps_a_nan_validation_epoch_as_best(cache_dir, tmp_path: Path, monkeypatch) -> None:
    """`score > best_metric` is False for NaN, but the first epoch had no best to compare with: it was kept."""
    from distill_tiny import synth, tiny_student

    from tinyclap.distill import distill, train
    from tinyclap.errors import DivergedError

    validate = train._Run.validate

    def nan_weights_then_validate(self):
        with torch.no_grad():
            self.student.projection.linear1.weight.fill_(float("nan"))
        return validate(self)

    monkeypatch.setattr(train._Run, "validate", nan_weights_then_validate)
    out = tmp_path / "run"
    with pytest.raises(DivergedError, match=r"epoch 1 .*val_cosine nan.*nothing was saved"):
        distill(tiny_student(), cache_dir, synth(40), out_dir=out, preset="quick", epochs=2, batch_size=8,
                progress=False)
    assert not (out / "best.json").exists() and not (out / "last.json").exists()
    assert not (out / "state.pt").exists()


def test_pretrain_stops_at_a_non_finite_loss_and_keeps_the_last_good_teacher(tmp_path: Path, monkeypatch) -> None:
    from tests.pretrain_tiny import build_tiny_text_model, tiny_config
    from tinyclap.distill.log import read_metrics
    from tinyclap.errors import DivergedError
    from tinyclap.pretrain import train

    step = train._Run._step

    def diverging_step(self, pos, mel):
        if self.epoch >= 1:  # epoch 2: the audio tower's weights have blown up
            with torch.no_grad():
                next(self.model.audio.parameters()).fill_(float("nan"))
        return step(self, pos, mel)

    monkeypatch.setattr(train._Run, "_step", diverging_step)
    cfg = tiny_config(build_tiny_text_model(tmp_path / "text"), epochs=2)
    out = tmp_path / "run"
    with pytest.raises(DivergedError, match=r"diverged in epoch 2 .*loss nan \(not finite\).*teacher of epoch 1 is kept"):
        train.pretrain(cfg, out, progress=False)
    teacher = json.loads((out / "teacher.json").read_text())
    assert teacher["epoch"] == 1
    rows = read_metrics(out / "metrics.jsonl")
    assert max(r["epoch"] for r in rows) == 1 and all(math.isfinite(r["loss"]) for r in rows if r["type"] == "step")
    from tinyclap.teachers.registry import load_teacher

    saved = load_teacher(f"local:{out}")
    assert all(torch.isfinite(p).all() for p in saved.model.parameters())


# ----------------------------------------------------------------------------- prune: the student's teacher
def test_prune_refuses_a_student_of_another_teacher_than_the_cache(cache_dir, tmp_path: Path, capsys) -> None:
    from distill_tiny import ProjTeacher, tiny_student

    from tinyclap.bank import PromptBank
    from tinyclap.prune import PruneError, prune
    from tinyclap.students import load_student

    bank = PromptBank.build(ProjTeacher(), LABELS)  # the cache's teacher: they agree with each other
    student = tiny_student(dropout=False)
    other = load_student(save_student(tmp_path / "other", student, teacher="other-teacher", teacher_id="other#1"))
    with pytest.raises(PruneError, match=r"distilled from teacher 'other-teacher' \[other#1\] but the cache .* "
                                         r"holds teacher 'test-proj'"):
        prune(other, bank, 6, cache=cache_dir)
    # Without a cache (a text-only scorer), the bank is the reference.
    with pytest.raises(PruneError, match="but the bank holds teacher 'test-proj'"):
        prune(other, bank, 6, scorer="text_magnitude")
    own = load_student(save_student(tmp_path / "own", student, teacher="test-proj", teacher_id="test-proj"))
    assert prune(own, bank, 6, cache=cache_dir).k == 6
    # The CLI says it in one line.
    bank_path = bank.save(tmp_path / "bank.npz")
    rc = main(["prune", "--student", str(tmp_path / "other.json"), "--bank", str(bank_path), "--cache", str(cache_dir),
               "--dims", "6", "--out", str(tmp_path / "pruned")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "distilled from teacher 'other-teacher'" in err[0], err
