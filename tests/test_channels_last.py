"""Channels-last students (tinyclap.students.speed): same outputs, gradients, checkpoints and exports as NCHW."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from distill_tiny import one_thread  # noqa: F401 - fixture
from safetensors.torch import load_file

from tinyclap.students import (
    AudioStudent,
    StudentConfig,
    channels_last,
    is_channels_last,
    load_student,
    save_student,
    to_channels_last,
    to_contiguous,
)

REFERENCE = StudentConfig.from_name("phinet_alpha_1.50_beta_0.75_t0_6_N_7")
# Squeeze-excite and hard-swish (compatibility off) exercise the other PhiNet modules.
FULL = StudentConfig(alpha=0.5, beta=0.75, t0=4, num_layers=5, embed_width=64, dim=32, compatibility=False)
FRAMES = 138  # a 1 s window at 44.1 kHz: the whole network at a fraction of a 5 s clip's cost

# Many small ops (and float64 ones in the gradient test): two threads on a busy 2-core machine
# made the gradient test 500x slower than one.
pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(config: StudentConfig) -> tuple[AudioStudent, AudioStudent]:
    torch.manual_seed(0)
    plain = AudioStudent(config, frontend=False)
    fast = to_channels_last(copy.deepcopy(plain))
    return plain, fast


def _logmel(batch: int = 3, seed: int = 1, frames: int = FRAMES) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 64, generator=g) * 10 - 40  # dB-like values


def _conv_weights(student: AudioStudent) -> list[torch.Tensor]:
    return [m.weight for m in student.modules() if isinstance(m, torch.nn.Conv2d)]


def test_conversion_changes_layout_not_names_shapes_or_values():
    plain, fast = _pair(REFERENCE)
    assert not is_channels_last(plain) and is_channels_last(fast)
    a, b = plain.state_dict(), fast.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    assert fast.num_parameters() == plain.num_parameters() == 4_434_547
    # The depthwise weights are (C, 1, 3, 3): "contiguous" either way, only their strides say NHWC.
    dw = fast.backbone.blocks[1].depthwise.conv.weight
    assert dw.is_contiguous() and dw.stride() == (9, 1, 3, 1)
    assert plain.backbone.blocks[1].depthwise.conv.weight.stride() == (9, 9, 3, 1)
    # In place: the same Parameter objects, so an optimizer built before the conversion still holds them.
    ids = [id(p) for p in plain.parameters()]
    assert [id(p) for p in to_channels_last(plain).parameters()] == ids
    to_contiguous(plain)
    to_contiguous(fast)
    assert not is_channels_last(fast)
    assert all(w.stride() == p.stride() for w, p in zip(_conv_weights(fast), _conv_weights(plain)))


@pytest.mark.parametrize("config", [REFERENCE, FULL], ids=["reference", "squeeze-excite+hardswish"])
def test_eval_outputs_equal_nchw(config: StudentConfig):
    plain, fast = _pair(config)
    x = _logmel()
    with torch.inference_mode():
        want = plain.eval()(x)
        got = fast.eval()(x)
        feats = fast.features(x), plain.features(x)
    assert torch.allclose(got, want, atol=2e-5, rtol=0)
    assert torch.allclose(*feats, atol=1e-4, rtol=1e-4)
    # The layout reaches the activations: the backbone's output is NHWC.
    with torch.inference_mode():
        y = fast.backbone(fast.bn0(x.unsqueeze(1).transpose(1, 3)).transpose(1, 3))
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()


@pytest.mark.parametrize("config", [REFERENCE, FULL], ids=["reference", "squeeze-excite+hardswish"])
def test_train_mode_outputs_gradients_and_running_stats_equal_nchw(config: StudentConfig):
    """Gradients are judged against a float64 run of the same network and dropout masks.

    Train-mode BatchNorm on a tiny batch amplifies float32 rounding in the early
    layers: for the reference student on this input the whole gradient is off
    by 2.2e-3 (relative norm) in both layouts with one thread, and by 1.3e-3
    (channels last) and 7e-6 (NCHW) with two, which pick other kernels; on
    138 frames 3.7e-3 and 4.6e-3. The bias of a BatchNorm feeding another has
    zero gradient in exact arithmetic, so per-tensor float32-vs-float32
    tolerances mean nothing. A layout mistake (a weight or gradient read with
    the wrong strides) is off by O(1).
    """
    plain, fast = _pair(config)
    exact = copy.deepcopy(plain).double()
    x = _logmel(frames=48)  # float64 convolutions are slow: the shortest input every layer still sees
    target = torch.nn.functional.normalize(torch.randn(3, config.dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    grads, outs = [], []
    for model in (plain, fast, exact):
        model.train()
        torch.manual_seed(7)  # same dropout masks in all three
        dtype = next(model.parameters()).dtype
        emb = model(x.to(dtype))
        (1 - (emb * target.to(dtype)).sum(-1)).mean().backward()
        outs.append(emb.detach().double())
        grads.append(torch.cat([p.grad.double().flatten() for p in model.parameters()]))
    assert torch.allclose(outs[0], outs[1], atol=2e-5, rtol=0)
    assert torch.allclose(outs[1], outs[2], atol=2e-5, rtol=0)
    g_plain, g_fast, g_exact = grads
    norm, peak = float(g_exact.norm()), float(g_exact.abs().max())
    err_plain = float((g_plain - g_exact).norm()) / norm
    err_fast = float((g_fast - g_exact).norm()) / norm
    assert err_plain < 1e-2 and err_fast < 1e-2, (err_fast, err_plain)
    assert float((g_fast - g_exact).abs().max()) < 1e-2 * peak
    # Gradients take the parameters' layout, so the optimizer updates NHWC tensors in place.
    w = fast.backbone.blocks[1].expand.conv.weight
    assert w.grad.stride() == w.stride()
    for (k, a), (_, b) in zip(plain.state_dict().items(), fast.state_dict().items()):
        if "running" in k:
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), k


def test_checkpoint_round_trip(tmp_path):
    _, fast = _pair(REFERENCE)
    fast.train()
    with torch.no_grad():
        fast(_logmel(4, seed=5))  # move the running statistics off their defaults
    fast.eval()
    path = save_student(tmp_path / "student", fast)
    stored = load_file(str(path.with_suffix(".safetensors")))
    assert all(t.is_contiguous() for t in stored.values())
    loaded = load_student(path)
    assert not is_channels_last(loaded)  # a checkpoint carries values, not a layout
    x = _logmel()
    with torch.inference_mode():
        want = fast(x)
        assert torch.allclose(loaded(x), want, atol=2e-5, rtol=0)
        # Loading into a channels-last student keeps its layout and gives identical outputs.
        again = to_channels_last(AudioStudent(REFERENCE, frontend=False))
        again.load_state_dict(stored)
        assert is_channels_last(again)
        assert torch.equal(again.eval()(x), want)


def test_context_manager_restores_only_what_it_changed():
    plain, fast = _pair(FULL)
    with channels_last(plain) as model:
        assert model is plain and is_channels_last(plain)
    assert not is_channels_last(plain)
    with channels_last(fast):
        pass
    assert is_channels_last(fast)  # it was channels last before: left so
    with channels_last(plain, enabled=False):
        assert not is_channels_last(plain)


def test_reuse_freed_memory_keeps_results_identical():
    """In a fresh process (the setting is process-wide): the same forward bit for bit, before and after."""
    code = """
import sys, torch
from tinyclap.students import AudioStudent, StudentConfig, reuse_freed_memory
torch.manual_seed(0)
s = AudioStudent(StudentConfig.from_name("phinet_alpha_1.50_beta_0.75_t0_6_N_7"), frontend=False).eval()
x = torch.randn(2, 138, 64)
with torch.inference_mode():
    before = s(x)
    ok = reuse_freed_memory()
    after = s(x)
print(ok, torch.equal(before, after), reuse_freed_memory())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    is_glibc = sys.platform.startswith("linux") and __import__("platform").libc_ver()[0] == "glibc"
    assert out == [str(is_glibc), "True", str(is_glibc)]


def test_engine_runs_resumes_and_saves_a_channels_last_student(tmp_path):
    """What the distillation engine does with a student converted before the run: train, save
    state.pt and checkpoints, resume exactly; the losses follow an NCHW run's."""
    from distill_tiny import ProjTeacher, synth, tiny_student

    from tinyclap.distill import build_cache, distill
    from tinyclap.distill.train import DistillInterrupted

    data = synth(24)
    cache = build_cache(ProjTeacher(), data, tmp_path / "cache", batch_size=16, progress=False)
    opts = dict(preset="quick", batch_size=8, progress=False, epochs=2, seed=5, **{"augment.enabled": True})
    nchw = distill(tiny_student(seed=1), cache, data, out_dir=tmp_path / "nchw", **opts)
    full_student = to_channels_last(tiny_student(seed=1))
    full = distill(full_student, cache, data, out_dir=tmp_path / "full", **opts)

    def stop_after_3(step: int, _loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    cut = to_channels_last(tiny_student(seed=1))
    with pytest.raises(DistillInterrupted):
        distill(cut, cache, data, out_dir=tmp_path / "cut", on_step=stop_after_3, **opts)
    resumed_student = to_channels_last(tiny_student(seed=99))  # weights come from state.pt
    resumed = distill(resumed_student, cache, data, out_dir=tmp_path / "cut", resume=True, **opts)
    assert is_channels_last(full_student) and is_channels_last(resumed_student)
    for (k, a), (_, b) in zip(full_student.state_dict().items(), resumed_student.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert [r["train_loss"] for r in full.history] == pytest.approx([r["train_loss"] for r in nchw.history], abs=1e-3)
    loaded = load_student(full.last_path)
    x = torch.from_numpy(np.stack([data[i].clip for i in range(3)]))
    torch.testing.assert_close(loaded.embed_audio(x), full_student.embed_audio(x), atol=2e-5, rtol=0)


@pytest.mark.slow  # one TFLite conversion: about 40 s here
def test_a_channels_last_student_exports_to_onnx_and_tflite(tmp_path, esc10_files):
    pytest.importorskip("litert_torch", reason="the tflite extra is not installed")
    from export_support import calibration, load_clips, prototype_bank, tiny_student

    from tinyclap.export.onnx import OnnxModel
    from tinyclap.export.pipeline import export_student
    from tinyclap.export.report import cosine_stats

    clips = load_clips(esc10_files, 6)
    student = tiny_student(clips)
    bank = prototype_bank(student, load_clips(esc10_files, 3, offset=20), ["dog", "rooster", "rain"])
    to_channels_last(student)
    assert is_channels_last(student)
    calib = calibration(clips)
    export_student(student, bank, tmp_path, formats="onnx,tflite-int8", calibration=calib, tflm_inputs=2)
    report = json.loads((tmp_path / "report.json").read_text())
    logmel = student.frontend(torch.from_numpy(np.stack(clips[:3])))
    with torch.no_grad():
        want = student.eval()(logmel).numpy()
    assert cosine_stats(OnnxModel(tmp_path / "embed.onnx")(logmel), want)["cosine_worst"] > 0.9999
    # The report's own check of each file against the torch student, with test_tflm's int8 bounds.
    onnx, tflite = report["formats"]["onnx"], report["formats"]["tflite-int8"]
    assert onnx["cosine_worst"] > 0.9999 and (tmp_path / "embed.onnx").is_file()
    assert tflite["cosine_mean"] > 0.97 and tflite["cosine_worst"] > 0.93
    assert (tmp_path / "embed.int8.tflite").is_file()
    # As in test_tflm: the head's LayerNorm and L2 norm run in float, where TFLM and LiteRT may round 1 step apart.
    assert tflite["models"]["embed"]["tflm"]["max_abs_diff_lsb"] <= 1
