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
