"""TFLite int8 + TensorFlow Lite Micro: a streaming export to a device too small for it, on real ESC-10 clips.

One export (features + head, 0.64 s windows, C model, a target that overflows)
is shared by the tests: it checks the int8 models, the arenas TFLM measures,
TFLM == LiteRT, the C header, the overflow error and the report written before it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("litert_torch", reason="the tflite extra is not installed: pip install tinyclap[tflite]")
pytest.importorskip("tflite_micro", reason="the tflite extra is not installed: pip install tinyclap[tflite]")
pytest.importorskip("ai_edge_litert", reason="the tflite extra is not installed: pip install tinyclap[tflite]")

from export_support import TEST_AUDIO, TINY, calibration, load_clips, prototype_bank, tiny_student  # noqa: E402

from tinyclap.errors import BudgetError  # noqa: E402
from tinyclap.export.pipeline import export_student  # noqa: E402
from tinyclap.export.report import cosine_stats  # noqa: E402
from tinyclap.export.streaming import HeadGraph, stream_embed  # noqa: E402
from tinyclap.export.targets import check_fit, load_target  # noqa: E402
from tinyclap.export.tflite import TfliteModel, export_tflite_int8  # noqa: E402
from tinyclap.export.tflm import TflmError, TflmModel, compare_runtimes  # noqa: E402
from tinyclap.students import AudioStudent  # noqa: E402

pytestmark = pytest.mark.slow  # two TFLite conversions: about a minute on a shared 2-core machine

# Measured here on 8 clips: TFLite int8 streamed embeddings vs the torch student
# streamed the same way, cosine mean 0.987, worst 0.967 (tiny random-weight student
# with data-calibrated BatchNorms). Bounds leave room for calibration noise only.
TFLITE_MEAN, TFLITE_WORST = 0.97, 0.93


@pytest.fixture(scope="module")
def run(tmp_path_factory, esc10_files):
    tmp = tmp_path_factory.mktemp("tflm")
    clips = load_clips(esc10_files, 8)
    student = tiny_student(clips)
    bank = prototype_bank(student, load_clips(esc10_files, 5, offset=20), ["dog", "rooster", "rain", "sea", "fire"])
    tiny_device = tmp / "tiny-mcu.yaml"
    tiny_device.write_text("name: tiny-mcu\nflash: 32KB\nram: 32KB\nreserved_flash: 8KB\nreserved_ram: 8KB\n")
    out = tmp / "out"
    calib = calibration(clips)
    with pytest.raises(BudgetError) as err:
        export_student(
            student,
            bank,
            out,
            formats="tflite-int8",
            calibration=calib,
            target=tiny_device,
            window_seconds=0.5,
            tflm_inputs=6,
        )
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "student": student, "bank": bank, "calib": calib, "error": str(err.value), "report": report}


def test_overflow_error_names_what_and_by_how_much(run):
    msg, target = run["error"], run["report"]["target"]
    assert msg.startswith("does not fit tiny-mcu:")
    assert target["fits"] is False and target["message"] == msg
    for key, name in (("flash", "flash"), ("ram", "RAM")):
        r = target[key]
        assert r["over"] == r["used"] - r["budget"] > 0
        assert f"{name} over by" in msg
    # The TFLite Micro runtime's estimate is kept beside the plain C runtime's check (which decides).
    tflm = next(c for c in target["checks"] if c["runtime"] == "tflm")
    assert not tflm["fits"] and target["runtime"] == "c"
    ram = tflm["ram"]["parts"]
    assert ram["audio window"] == 2 * 64 * 160  # int16 PCM window (tc_app_push_window) of 64 frames at hop 160
    assert ram["arena features"] == run["report"]["formats"]["tflite-int8"]["models"]["features"]["tflm"]["arena_bytes"]
    # Everything was written before the error: models, C sources, report.
    for name in ("features.int8.tflite", "head.int8.tflite", "c/tinyclap_model.c", "c/tinyclap_model.h"):
        assert (run["out"] / name).is_file(), name


def test_streaming_agreement_and_advice(run):
    """A random-weight student streams poorly; the report says how to train it for the device's path."""
    s = run["report"]["streaming"]
    assert 0.0 < s["cosine_mean"] < 0.98 and s["cosine_worst"] <= s["cosine_mean"]
    assert "--stream-window 0.5" in s["advice"]  # the window asked for (distill rounds it as export does)


def test_same_export_fits_stm32h7(run):
    t = run["report"]["target"]
    flash = {k: v for k, v in t["flash"]["parts"].items() if k != "reserved"}
    ram = {k: v for k, v in t["ram"]["parts"].items() if k != "reserved"}
    fit = check_fit(load_target("stm32h7"), flash, ram)
    assert fit.fits, fit.overflow_message()


def test_int8_models_and_their_fidelity(run):
    f = run["report"]["formats"]["tflite-int8"]
    assert f["cosine_mean"] >= TFLITE_MEAN and f["cosine_worst"] >= TFLITE_WORST
    # Zero-shot decisions of int8 vs the torch student: 1.0 measured on real ESC-10 and on the generated
    # stand-in (2 clips each, cosine 0.98-0.995). At most one clip may change its decision.
    assert f["clips"] >= 2 and f["zeroshot_agreement"] >= 1 - 1 / f["clips"], f
    for name, inp, out in (("features", [1, 64, 32], [1, 32]), ("head", [1, 32], [1, 16])):
        m = TfliteModel(run["out"] / f"{name}.int8.tflite")
        assert (m.input.dtype, m.output.dtype) == ("int8", "int8")  # fully integer I/O
        assert (list(m.input.shape), list(m.output.shape)) == (inp, out)
        assert f["models"][name]["input"]["quant"]["scale"] == pytest.approx(m.input.quant.scale)


def test_tflm_arena_and_outputs_equal_litert(run):
    models = run["report"]["formats"]["tflite-int8"]["models"]
    for name in ("features", "head"):
        tflm = models[name]["tflm"]
        assert tflm["arena_bytes"] > 0 and tflm["inputs"] == 6
        # Backbone: TFLM's kernels are LiteRT's reference kernels, bit for bit. Head: LayerNorm
        # and the L2 norm run in float, where the two builds may round 1 int8 step apart.
        assert tflm["max_abs_diff_lsb"] <= (0 if name == "features" else 1)
    # Independently of the report: a fresh TFLM interpreter, new inputs.
    data = (run["out"] / "features.int8.tflite").read_bytes()
    micro, lite = TflmModel(data), TfliteModel(run["out"] / "features.int8.tflite")
    x = np.random.default_rng(1).integers(-128, 128, size=(3, 64, 32)).astype(np.int8)
    assert compare_runtimes(micro, lite, x).identical
    assert micro.arena_bytes() == models["features"]["tflm"]["arena_bytes"]


def test_c_model_carries_the_measured_figures(run):
    h = (run["out"] / "c" / "tinyclap_model.h").read_text()
    models = run["report"]["formats"]["tflite-int8"]["models"]

    def define(name: str) -> str:
        return re.search(rf"#define {name} (\S+)", h).group(1)

    assert define("TC_FEATURES_ARENA_BYTES") == f"{models['features']['tflm']['arena_bytes']}u"
    assert define("TC_WINDOW_SAMPLES") == "10240" and define("TC_FRAMES_PER_WINDOW") == "64"
    assert define("TC_HAS_INPUT_AFFINE") == "1" and define("TC_N_CLASSES") == "5" and define("TC_EMBED_DIM") == "16"


def test_streaming_figures_are_what_stream_embed_gives(run):
    s, calib = run["student"], run["calib"]
    streamed = stream_embed(s, calib.clips, 0.5).numpy()
    whole = s.embed_audio(calib.clips).numpy()
    report = run["report"]["streaming"]
    assert report["cosine_mean"] == pytest.approx(cosine_stats(streamed, whole)["cosine_mean"], abs=1e-5)
    assert run["report"]["window"] == {
        "streaming": True,
        "seconds": 0.64,
        "requested_seconds": 0.5,
        "frames": 64,
        "samples": 10240,
        "time_stride": 32,
    }


def test_tflm_refuses_a_gelu_head(tmp_path):
    """TFLite Micro has no GELU kernel: the check fails loudly, naming it."""
    student = AudioStudent(TINY.replace(head_act="gelu"), TEST_AUDIO).eval()
    calib = [torch.randn(4, student.embed_width)]
    path = export_tflite_int8(HeadGraph(student), calib, tmp_path / "head.int8.tflite")
    TfliteModel(path)(np.zeros((1, student.embed_width), np.float32))  # LiteRT runs it
    with pytest.raises(TflmError, match="GELU"):
        TflmModel(path)


def test_device_decision_agreement_is_the_int8_classifier(run):
    """The C model's figure: int8 head output x int8 bank, integer argmax, against the torch student's top-1."""
    from tinyclap.export.mcu import classify_int8, quantize_bank
    from tinyclap.export.streaming import plan_window

    out, s, bank = run["out"], run["student"], run["bank"]
    feats, head = TfliteModel(out / "features.int8.tflite"), TfliteModel(out / "head.int8.tflite")
    scale, shift = (np.asarray(run["report"]["mel_affine"][k], np.float32) for k in ("scale", "shift"))
    calib = run["calib"]
    held = [calib.clip_ids.index(c) for c in run["report"]["calibration"]["verification_clip_ids"]]
    windows = calib.windows(plan_window(s, 0.5)).numpy()[held]  # the clips held out of calibration
    pooled = np.stack([feats(w * scale + shift).mean(axis=0) for w in windows])
    emb_q = head.run_int8(head.quantize_input(pooled))
    picks = classify_int8(emb_q, head.output.quant.zero_point, quantize_bank(bank.embeddings)[0])
    want = np.argmax(stream_embed(s, calib.clips[held], 0.5).numpy() @ bank.embeddings.T, axis=1)
    assert run["report"]["formats"]["c"]["device_zeroshot_agreement"] == pytest.approx(np.mean(picks == want))
