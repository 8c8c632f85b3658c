"""Distillation engine: loss, training, checkpoints, exact resume, stage 2, dims, validation, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill_tiny import one_thread  # noqa: F401 - fixture
from distill_tiny import DIM, TINY_AUDIO, ProjTeacher, synth, tiny_student
from tinyclap.distill.cache import CacheError, build_cache
from tinyclap.distill.losses import cosine_distillation_loss
from tinyclap.distill.presets import PresetError, make_config
from tinyclap.distill.train import DistillInterrupted, RunExistsError, distill, epoch_batches
from tinyclap.errors import CheckpointError

FAST = dict(preset="quick", batch_size=8, progress=False)


@pytest.fixture(scope="module")
def data():
    return synth(40)


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory):
    return build_cache(ProjTeacher(), data, tmp_path_factory.mktemp("cache") / "c", batch_size=16, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), atol=atol, rtol=0, msg=k)


def test_loss_is_minus_mean_cosine_and_stops_teacher_gradients() -> None:
    s = torch.randn(5, 7, requires_grad=True)
    t = torch.randn(5, 7, requires_grad=True)
    loss = cosine_distillation_loss(s, t)
    torch.testing.assert_close(loss, -F.cosine_similarity(s, t, dim=-1).mean())
    loss.backward()
    assert t.grad is None and s.grad is not None
    # the DDP normaliser divides the sum by the given count
    torch.testing.assert_close(cosine_distillation_loss(s, t, normaliser=10.0), loss * 5 / 10)
    assert float(cosine_distillation_loss(t, t).detach()) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        cosine_distillation_loss(s, t[:, :3])


def test_epoch_order_is_a_seeded_permutation_per_epoch() -> None:
    a = epoch_batches(21, 8, seed=3, epoch=0)
    assert [len(b) for b in a] == [8, 8, 5] and sorted(np.concatenate(a)) == list(range(21))
    assert all((x == y).all() for x, y in zip(a, epoch_batches(21, 8, seed=3, epoch=0)))
    assert not (np.concatenate(a) == np.concatenate(epoch_batches(21, 8, seed=3, epoch=1))).all()
    assert [len(b) for b in epoch_batches(17, 8, seed=0, epoch=0, world_size=2)] == [8, 8]  # 1 item < 2 ranks


def test_stage1_learns_and_writes_a_complete_run(cache, data, tmp_path: Path) -> None:
    from tinyclap.distill.log import read_metrics
    from tinyclap.students import load_student

    student = tiny_student()
    before = _weights(student)
    result = distill(student, cache, data, out_dir=tmp_path / "run", epochs=4, **FAST)
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3, 4] and result.global_step == 4 * 5  # 36 train items / 8
    assert h[-1]["train_loss"] < h[0]["train_loss"] - 0.1
    assert h[-1]["val_cosine"] > h[0]["val_cosine"] and h[0]["val_items"] == 4  # 10% of 40 files held out
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    # last.* rebuilds the student exactly, with the run's metadata
    loaded = load_student(result.last_path)
    x = torch.from_numpy(np.stack([data[i].clip for i in range(3)]))
    torch.testing.assert_close(loaded.embed_audio(x), student.embed_audio(x))
    meta = json.loads(result.last_path.read_text())
    assert meta["teacher"] == "test-proj" and meta["stage"] == 1 and meta["step"] == 20 and meta["epoch"] == 4
    assert meta["licence"] == ProjTeacher.licence and meta["metrics"]["train_loss"] == pytest.approx(h[-1]["train_loss"])
    best_epoch = max(h, key=lambda r: r["val_cosine"])["epoch"]
    assert json.loads(result.best_path.read_text())["epoch"] == best_epoch
    assert read_metrics(tmp_path / "run" / "metrics.jsonl") == json.loads(json.dumps(h))
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run into the same folder must not overwrite it
    with pytest.raises(RunExistsError, match="--resume"):
        distill(tiny_student(), cache, data, out_dir=tmp_path / "run", epochs=4, **FAST)


class StopAfter:
    """A step hook that raises KeyboardInterrupt after ``n`` steps (a Ctrl-C between steps)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, step: int, loss: float) -> None:
        if step == self.n:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_to_the_uninterrupted_result(cache, data, tmp_path: Path) -> None:
    # augmentation and dropout on: the resume must restore their random streams too
    opts = dict(FAST, epochs=2, seed=5, **{"augment.enabled": True, "scheduler.name": "plateau"})
    full = tiny_student(seed=1)
    ref = distill(full, cache, data, out_dir=tmp_path / "full", **opts)

    student = tiny_student(seed=1)
    with pytest.raises(DistillInterrupted) as stop:
        distill(student, cache, data, out_dir=tmp_path / "cut", on_step=StopAfter(7), **opts)  # epoch 2, batch 2
    assert stop.value.epoch == 1 and stop.value.batch == 2 and stop.value.state_path.is_file()
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 1 only

    fresh = tiny_student(seed=99)  # weights come from the saved state, not from here
    resumed = distill(fresh, cache, data, out_dir=tmp_path / "cut", resume=True, **opts)
    _assert_same(_weights(fresh), _weights(full))
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in ref.history], abs=1e-6)
    assert resumed.global_step == ref.global_step
    # a finished run resumes to itself; changed settings are refused
    again = distill(tiny_student(), cache, data, out_dir=tmp_path / "cut", resume=True, **opts)
    assert len(again.history) == 2
    with pytest.raises(CheckpointError, match="lr"):
        distill(tiny_student(), cache, data, out_dir=tmp_path / "cut", resume=True, **{**opts, "lr": 0.1})


def test_stage2_trains_only_the_projection(cache, data, tmp_path: Path) -> None:
    student = tiny_student(seed=2)
    before = _weights(student)
    distill(student, cache, data, out_dir=tmp_path / "s2", preset="stage2", epochs=2, batch_size=8, progress=False)
    after = _weights(student)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("projection.") for k in changed)  # BN statistics untouched too
    # precomputed features (the default without augmentation) train exactly like the full forward
    other = tiny_student(seed=2)
    distill(other, cache, data, out_dir=tmp_path / "s2b", preset="stage2", epochs=2, batch_size=8, progress=False,
            precompute_features="no")
    _assert_same(_weights(other), after, atol=1e-5)
    meta = json.loads((tmp_path / "s2" / "last.json").read_text())
    assert meta["stage"] == 2


def test_stage2_on_kept_dims_uses_renormalised_cache_columns(cache, data, tmp_path: Path) -> None:
    dims = [11, 2, 5, 7, 0]
    student = tiny_student(seed=3, dim=len(dims))
    result = distill(student, cache, data, out_dir=tmp_path / "k", preset="stage2", dims=dims, epochs=2,
                     batch_size=8, progress=False)
    meta = json.loads(result.last_path.read_text())
    assert meta["kept_dims"] == dims and meta["dim"] == 5
    # the logged validation cosine is against cache[:, dims] re-normalised, on the held-out files
    from tinyclap.distill.train import split_validation

    _, val = split_validation(data, 0.1, 0)
    ids = [data.clip_id(i) for i in val.indices]
    x = torch.from_numpy(np.stack([data[i].clip for i in val.indices]))
    targets = cache.lookup(ids).numpy()[:, dims]
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    cos = (student.embed_audio(x).numpy() * targets).sum(1).mean()
    assert result.history[-1]["val_cosine"] == pytest.approx(float(cos), abs=1e-5)
    with pytest.raises(Exception, match="student outputs 5 dims but the cache targets have 12"):
        distill(tiny_student(dim=5), cache, data, out_dir=tmp_path / "bad", epochs=1, **FAST)


def test_zeroshot_accuracy_is_measured_on_the_final_student(cache, tmp_path: Path) -> None:
    labelled = synth(24, seed=4, target="label")
    zs_cache = build_cache(ProjTeacher(), labelled, tmp_path / "zc", progress=False)
    # a prompt-bank-like matrix: each class's mean teacher audio embedding
    y = torch.tensor([labelled.label(i) for i in range(len(labelled))])
    emb = zs_cache.lookup(labelled.ids)
    classes = F.normalize(torch.stack([emb[y == c].mean(0) if (y == c).any() else torch.zeros(DIM)
                                       for c in range(len(labelled.class_names))]), dim=-1)
    student = tiny_student(seed=4)
    result = distill(student, zs_cache, labelled, out_dir=tmp_path / "z", zeroshot=(classes, labelled),
                     epochs=2, **FAST)
    x = torch.from_numpy(np.stack([labelled[i].clip for i in range(len(labelled))]))
    acc = float(((student.embed_audio(x) @ classes.T).argmax(1) == y).float().mean())
    assert result.history[-1]["zeroshot_acc"] == pytest.approx(acc)
    assert result.history[-1]["zeroshot_items"] == 24


def test_bad_inputs_are_refused_early(cache, data, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="no teacher embeddings for 9 of 9 training clips"):
        distill(tiny_student(), cache, synth(10, seed=9), out_dir=tmp_path / "a", epochs=1, **FAST)
    longer = TINY_AUDIO.with_seconds(1.0)
    with pytest.raises(CacheError, match="embeddings were computed on clips at"):
        distill(tiny_student(), cache, synth(10, audio_config=longer), out_dir=tmp_path / "b", epochs=1, **FAST)
    with pytest.raises(PresetError, match="unknown preset 'stage3'"):
        make_config("stage3")
    with pytest.raises(PresetError, match="unknown setting 'augment.level'"):
        make_config("stage1", **{"augment.level": 2})
    assert make_config("stage2", epochs=3).lr == 0.004 and make_config("stage1").lr == 0.012


# --------------------------------------------------------------------- streaming ("distil with the same windowing")
LONG_AUDIO = TINY_AUDIO.with_seconds(2.0)  # 124 frames: room for several 0.5 s windows


@pytest.fixture(scope="module")
def long_data():
    return synth(24, audio_config=LONG_AUDIO), synth(8, seed=5, audio_config=LONG_AUDIO)


@pytest.fixture(scope="module")
def long_cache(long_data, tmp_path_factory):
    train, val = long_data
    teacher = ProjTeacher(audio_config=LONG_AUDIO)
    root = tmp_path_factory.mktemp("long") / "c"
    return build_cache(teacher, [train, val], root, batch_size=16, progress=False), teacher


def test_streamed_distillation_trains_the_path_the_device_runs(long_cache, long_data, tmp_path: Path) -> None:
    from tinyclap.export.streaming import stream_embed
    from tinyclap.students import AudioStudent

    cache, teacher = long_cache
    train, val = long_data
    torch.manual_seed(0)
    student = AudioStudent(tiny_student(dim=DIM).config, LONG_AUDIO)
    result = distill(student, cache, train, val, out_dir=tmp_path / "s", epochs=4, stream_window=0.5,
                     stream_weight=0.5, **FAST)
    h = result.history
    assert all(r["val_stream_cosine"] is not None and r["val_stream_agreement"] is not None for r in h)
    assert h[-1]["val_stream_cosine"] > h[0]["val_stream_cosine"]
    # The engine's streamed path is the export's: same windows, same front end, same mean -> head.
    student.eval()
    clips = np.stack([val[i].clip for i in range(len(val))])
    streamed = stream_embed(student, clips, 0.5)
    with torch.no_grad():
        whole = student.embed_audio(clips)
    targets = teacher.embed_audio(clips)
    assert float(F.cosine_similarity(streamed, targets).mean()) == pytest.approx(h[-1]["val_stream_cosine"], abs=1e-5)
    assert float(F.cosine_similarity(streamed, whole).mean()) == pytest.approx(h[-1]["val_stream_agreement"], abs=1e-5)
    # The recipe is in the checkpoint, and the monitored loss mixes the two paths 50/50.
    meta = json.loads(result.last_path.with_suffix(".json").read_text())
    assert meta["distill"]["config"]["stream_window"] == 0.5
    assert h[-1]["val_loss"] == pytest.approx(-(h[-1]["val_cosine"] + h[-1]["val_stream_cosine"]) / 2, abs=1e-9)


def test_stream_weight_one_trains_only_the_streamed_path(long_cache, long_data, tmp_path: Path) -> None:
    from tinyclap.students import AudioStudent

    cache, _ = long_cache
    train, val = long_data
    torch.manual_seed(0)
    student = AudioStudent(tiny_student(dim=DIM, dropout=False).config, LONG_AUDIO)
    result = distill(student, cache, train, val, out_dir=tmp_path / "s", epochs=2, stream_window=0.5,
                     stream_weight=1.0, **FAST)
    last = result.history[-1]
    # The monitored validation loss is then the streamed one alone.
    assert last["val_loss"] == pytest.approx(-last["val_stream_cosine"], abs=1e-9)


def test_stream_consistency_is_trained_and_monitored(long_cache, long_data, tmp_path: Path) -> None:
    from tinyclap.students import AudioStudent

    cache, _ = long_cache
    train, val = long_data
    runs = {}
    for c in (0.0, 1.0):
        torch.manual_seed(0)
        student = AudioStudent(tiny_student(dim=DIM, dropout=False).config, LONG_AUDIO)
        runs[c] = distill(student, cache, train, val, out_dir=tmp_path / f"c{c}", epochs=2, stream_window=0.5,
                          stream_consistency=c, **FAST).history
    last = runs[1.0][-1]
    # The monitored loss is the trained one: both paths toward the teacher, plus the streamed path toward the
    # whole clip's embedding.
    want = -(0.5 * last["val_cosine"] + 0.5 * last["val_stream_cosine"] + 1.0 * last["val_stream_agreement"])
    assert last["val_loss"] == pytest.approx(want, abs=1e-9)
    # The term changes the gradient, so the weights (and the streamed path) differ from the run without it.
    assert runs[1.0][0]["val_stream_agreement"] != runs[0.0][0]["val_stream_agreement"]
    for bad, match in (({"stream_consistency": 1.0}, "needs stream_window"),
                       ({"stream_consistency": 1.0, "stream_window": 0.5, "stream_weight": 1.0}, "stream_weight < 1"),
                       ({"stream_consistency": -1.0, "stream_window": 0.5}, ">= 0")):
        with pytest.raises(PresetError, match=match):
            make_config("quick", **bad)


def test_stream_window_must_be_shorter_than_the_clip(long_cache, long_data, tmp_path: Path) -> None:
    from tinyclap.export.streaming import WindowError
    from tinyclap.students import AudioStudent

    cache, _ = long_cache
    student = AudioStudent(tiny_student(dim=DIM).config, LONG_AUDIO)
    with pytest.raises(WindowError, match="not shorter than the student's 2 s clip"):
        distill(student, cache, long_data[0], out_dir=tmp_path / "s", epochs=1, stream_window=3.0, **FAST)
    with pytest.raises(PresetError, match="stream_weight"):
        make_config("quick", stream_weight=1.5)
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_runs_saved_before_a_setting_existed_still_resume(cache, data, tmp_path: Path) -> None:
    from tinyclap.distill import checkpoints as ckpt

    out = tmp_path / "old"
    distill(tiny_student(), cache, data, out_dir=out, epochs=1, **FAST)
    state_path = ckpt.run_paths(out)["state"]
    state = ckpt.load_training_state(state_path)
    for key in ("stream_window", "stream_weight", "stream_consistency"):  # as written before they existed
        del state["config"][key]
    ckpt.save_training_state(state_path, state)
    result = distill(tiny_student(), cache, data, out_dir=out, epochs=2, resume=True, **FAST)
    assert [r["epoch"] for r in result.history] == [1, 2]
    with pytest.raises(CheckpointError, match="stream_weight"):  # a real change is still refused
        distill(tiny_student(), cache, data, out_dir=out, epochs=3, resume=True, stream_weight=0.2, **FAST)


def test_extending_a_cosine_run_decays_over_the_new_length(cache, data, tmp_path: Path) -> None:
    out = tmp_path / "cos"
    cosine = {"scheduler.name": "cosine"}
    distill(tiny_student(), cache, data, out_dir=out, epochs=2, **cosine, **FAST)
    h = distill(tiny_student(), cache, data, out_dir=out, epochs=4, resume=True, **cosine, **FAST).history
    lrs = [r["lr"] for r in h]
    # Over 2 epochs the lr would be 0 from epoch 3 on; extended, epochs 3-4 follow the 4-epoch cosine.
    lr0 = lrs[0]
    assert lrs[2:] == pytest.approx([lr0 * (1 + np.cos(np.pi * t / 4)) / 2 for t in (2, 3)], rel=1e-9), lrs
