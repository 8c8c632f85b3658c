"""`tinyclap export` to ONNX fp32 and ONNX int8 on real ESC-10 clips: files, report.json, independent checks."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from export_support import load_clips, prototype_bank, tiny_student

from tinyclap.cli import main
from tinyclap.export.calibration import load_calibration
from tinyclap.export.onnx import OnnxModel
from tinyclap.export.report import cosine_stats
from tinyclap.students import load_student, save_student

# Static int8 (per-tensor activations, per-channel weights) of a random-weight
# student whose BatchNorms were calibrated on these clips. Measured here:
# cosine mean 0.990, worst 0.982 over 8 clips (ONNX Runtime 1.31, AVX2 CPU, 7-bit
# weights; 0.988 / 0.969 with full-range weights). The bounds leave room for
# calibration noise, not for a broken quantiser (a wrong scale or a dropped bn0
# gives cosines near 0).
INT8_MEAN, INT8_WORST = 0.98, 0.95


@pytest.fixture(scope="module")
def exported(tmp_path_factory, esc10_root, esc10_files):
    tmp = tmp_path_factory.mktemp("export_onnx")
    clips = load_clips(esc10_files, 8)
    student = tiny_student(clips)
    ckpt = save_student(tmp / "student", student)
    labels = ["dog", "rooster", "rain", "sea waves", "crackling fire"]
    bank_path = prototype_bank(student, load_clips(esc10_files, 5, offset=20), labels).save(tmp / "bank.npz")
    out = tmp / "out"
    rc = main(
        [
            "export",
            "--student",
            str(ckpt),
            "--bank",
            str(bank_path),
            "--formats",
            "onnx-int8,onnx",
            "--calib",
            f"esc10:{esc10_root}",
            "--calib-clips",
            "8",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    student = load_student(ckpt)
    return {
        "out": out,
        "ckpt": ckpt,
        "student": student,
        "report": json.loads((out / "report.json").read_text()),
        "calib": load_calibration(f"esc10:{esc10_root}", student.audio_config, 8),  # the clips the export used
    }


def test_files_are_single_self_contained_onnx(exported):
    out = exported["out"]
    assert sorted(p.name for p in out.iterdir()) == ["embed.int8.onnx", "embed.onnx", "report.json"]
    for name in ("embed.onnx", "embed.int8.onnx"):
        model = onnx.load(str(out / name), load_external_data=False)
        external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert external == [], f"{name} keeps weights outside the file: {external[:3]}"
    int8 = onnx.load(str(out / "embed.int8.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Per-channel weights: some weight DequantizeLinear has a vector of scales.
    inits = {t.name: t for t in int8.graph.initializer}
    per_channel = [
        n
        for n in int8.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[1] in inits
        and len(inits[n.input[1]].dims) == 1
        and inits[n.input[1]].dims[0] > 1
    ]
    assert per_channel
    # 7-bit weights (reduce_range): full-range int8 weights saturate onnxruntime's non-VNNI x86 kernels.
    weights = [onnx.numpy_helper.to_array(inits[n.input[0]]) for n in per_channel if n.input[0] in inits]
    largest = max(int(np.abs(w.astype(np.int16)).max()) for w in weights if w.dtype == np.int8)
    assert 60 <= largest <= 64, largest  # each channel's largest weight sits at the end of the range (127 at 8 bits)


def test_onnx_fp32_equals_torch(exported):
    """Recomputed here, independently of the report: any batch size, raw log-mel in."""
    student = exported["student"]
    logmel = student.frontend(torch.from_numpy(exported["calib"].clips[:3]))
    got = OnnxModel(exported["out"] / "embed.onnx")(logmel)
    with torch.no_grad():
        want = student(logmel).numpy()
    assert got.shape == want.shape == (3, student.dim)
    assert cosine_stats(got, want)["cosine_worst"] > 0.9999


def test_report_figures(exported):
    r = exported["report"]
    assert r["format"] == "tinyclap-export/1"
    assert r["student"]["name"] == "phinet_alpha_0.25_beta_0.75_t0_2_N_5" and r["student"]["checkpoint"]
    assert r["window"]["streaming"] is False and r["models"] == ["embed"]
    assert r["calibration"]["clips"] == 8 and len(set(r["calibration"]["clip_ids"])) == 8
    # A quarter of the clips is held out of calibration and verifies every format.
    held = r["calibration"]["verification_clip_ids"]
    assert held == [r["calibration"]["clip_ids"][i] for i in (3, 7)]
    assert r["calibration"]["verified_on"] == "held-out clips"
    assert not set(held) & set(r["calibration"]["calibration_clip_ids"])
    assert r["bank"]["classes"] == 5 and r["bank"]["dim"] == 16
    assert len(r["mel_affine"]["scale"]) == 32
    assert r["macs"]["per_clip"] > 0 and r["macs"]["windows_per_clip"] == 1
    fp32, int8 = r["formats"]["onnx"], r["formats"]["onnx-int8"]
    assert fp32["cosine_worst"] > 0.9999 and fp32["zeroshot_agreement"] == 1.0 and fp32["clips"] == 2
    assert int8["cosine_mean"] >= INT8_MEAN and int8["cosine_worst"] >= INT8_WORST
    # Zero-shot decisions of int8 vs the torch student: 1.0 measured on real ESC-10 and on the generated
    # stand-in (2 clips each, int8 cosine 0.99). At most one clip may change its decision; a broken
    # quantiser picks among the 5 labels at random.
    assert int8["clips"] >= 2 and int8["zeroshot_agreement"] >= 1 - 1 / int8["clips"], int8
    assert int8["files"]["embed.int8.onnx"] == (exported["out"] / "embed.int8.onnx").stat().st_size
    assert "streaming" not in r  # no window: nothing streamed


def test_report_int8_cosines_are_reproducible(exported):
    """The report's int8 figure is what onnxruntime gives on the held-out clips, not a stale number."""
    student, calib = exported["student"], exported["calib"]
    assert calib.clip_ids == exported["report"]["calibration"]["clip_ids"]
    held = [calib.clip_ids.index(c) for c in exported["report"]["calibration"]["verification_clip_ids"]]
    logmel = student.frontend(torch.from_numpy(calib.clips[held]))
    got = OnnxModel(exported["out"] / "embed.int8.onnx")(logmel)
    with torch.no_grad():
        want = student(logmel).numpy()
    stats = cosine_stats(got, want)
    assert stats["cosine_mean"] == pytest.approx(exported["report"]["formats"]["onnx-int8"]["cosine_mean"], abs=1e-5)


def test_cli_refuses_bad_input_with_one_line(exported, tmp_path, capsys):
    ckpt = str(exported["ckpt"])
    rc = main(
        [
            "export",
            "--student",
            ckpt,
            "--bank",
            str(tmp_path / "none.npz"),
            "--formats",
            "onnx",
            "--calib",
            "synth",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 1 and "none.npz: no such prompt bank file" in capsys.readouterr().err
    rc = main(
        [
            "export",
            "--student",
            ckpt,
            "--bank",
            "b.npz",
            "--formats",
            "onnx,tflite",
            "--calib",
            "synth",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 1 and "unknown export format(s) ['tflite']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "export",
                "--student",
                ckpt,
                "--bank",
                "b.npz",
                "--calib",
                "synth",
                "--window",
                "soon",
                "--out",
                str(tmp_path / "o"),
            ]
        )


def test_onnx_encoder_embeds_waveforms_like_the_student(exported, esc10_files):
    """OnnxEncoder (waveform → LogMel → ONNX) is what quickstart evaluates as the int8 student."""
    from tinyclap.export.encoder import OnnxEncoder

    student = exported["student"]
    clips = np.stack(load_clips(esc10_files, 4, offset=40))
    want = student.embed_audio(clips).numpy()
    fp32 = OnnxEncoder.like(exported["out"] / "embed.onnx", student)
    assert fp32.dim == student.dim and fp32.kept_dims == student.kept_dims
    got = fp32.embed_audio(clips).numpy()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * want).sum(axis=1).min() > 0.9999
    int8 = OnnxEncoder.like(exported["out"] / "embed.int8.onnx", student).embed_audio(clips).numpy()
    # Clips outside the calibration set, on a random-weight student: looser than
    # INT8_WORST (measured 0.914-0.994), far above a broken quantiser's ~0.
    assert (int8 * want).sum(axis=1).mean() > 0.9
