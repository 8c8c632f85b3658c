"""`tinyclap eval --model` on exported models (ONNX fp32 / int8, TFLite int8, export folders, streaming pairs).

Two exports of a tiny student (tests/export_support.py) are shared by the
tests: a whole-clip one (``embed.*``) of a *pruned* student (16 of 24 teacher
dims, so a full prompt bank must be sliced with the checkpoint's kept dims)
and a streaming one (``features.*`` + ``head.*``, 0.64 s windows). The
clips are generated (tinyclap.data.synth) and written in an ESC-50 layout,
so nothing here needs the shared recordings.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("litert_torch", reason="the tflite extra is not installed: pip install tinyclap[tflite]")
pytest.importorskip("ai_edge_litert", reason="the tflite extra is not installed: pip install tinyclap[tflite]")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
sf = pytest.importorskip("soundfile")

from export_support import TEST_AUDIO, calibration, prototype_bank, tiny_student  # noqa: E402

from tinyclap.bank import PromptBank  # noqa: E402
from tinyclap.cli import main  # noqa: E402
from tinyclap.data import open_dataset  # noqa: E402
from tinyclap.data.synth import family_of, render  # noqa: E402
from tinyclap.evaluate import clip_key  # noqa: E402
from tinyclap.export.encoder import (  # noqa: E402
    ExportedModelError,
    OnnxEncoder,
    TfliteEncoder,
    exported_model,
    load_exported,
)
from tinyclap.export.pipeline import export_student  # noqa: E402
from tinyclap.export.report import cosine_stats  # noqa: E402
from tinyclap.export.streaming import StreamingStudent  # noqa: E402
from tinyclap.students import save_student  # noqa: E402
from tinyclap.zeroshot import load_encoder  # noqa: E402

pytestmark = pytest.mark.slow  # three TFLite conversions: about a minute on a shared 2-core machine

# Spectrally far apart, so even a random-weight student separates them (it predicts all five here).
FAMILIES = ["tone", "noise burst", "rain", "bell", "engine"]
WINDOW = 0.64  # seconds: 64 frames at hop 160, three windows per 2 s clip
TEACHER_DIM = 24
# Measured here (20 generated clips; random-weight student with BatchNorms and int8 ranges set on 30
# other generated clips): TFLite int8 vs the torch student, whole clip, cosine mean 0.9904, worst
# 0.9696, top-1 agreement 19/20; streamed, 0.9937 / 0.9831, 16/20. The same models fed log-mel
# without the folded bn0 (mel_affine): cosine mean 0.70-0.75, agreement 2-4/20. Decisions of a
# random-weight student are close calls (top-1 vs top-2 cosine under 0.01 on 1-2 clips), so the
# agreement floor is three clips below the streamed figure; the cosine floors leave room for
# calibration noise, not for a wrong front end, mel_affine or window.
COS_MEAN, COS_WORST, AGREEMENT = 0.98, 0.95, 0.65


def _synth(seed: int, per_family: int) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {f: [] for f in FAMILIES}
    g = 0
    while any(len(v) < per_family for v in out.values()):
        fam = family_of(seed, g)
        if fam in out and len(out[fam]) < per_family:
            out[fam].append(render(seed, g, TEST_AUDIO).audio)
        g += 1
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """20 generated clips (4 per family, folds 1 and 2) in an ESC-50 folder; calibration and prototype clips."""
    root = tmp_path_factory.mktemp("esc-synth")
    (root / "audio").mkdir()
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for target, (fam, waves) in enumerate(_synth(11, 4).items()):
        for k, wave in enumerate(waves):
            fold, src = 1 + k % 2, 1000 + 10 * target + k
            name = f"{fold}-{src}-A-{target}.wav"
            sf.write(root / "audio" / name, wave, TEST_AUDIO.sample_rate, subtype="PCM_16")
            rows.append(f"{name},{fold},{target},{fam.replace(' ', '_')},True,{src},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    ds = open_dataset(f"esc50:{root}", TEST_AUDIO)
    items = [ds[i] for i in range(len(ds))]
    calib = [w for waves in _synth(12, 6).values() for w in waves]
    return {
        "root": root,
        "spec": f"esc50:{root}",
        "ids": [clip_key(x.clip_id) for x in items],
        "waves": np.stack([x.clip for x in items]),
        "calib": calib,
        "prototypes": [waves[0] for waves in _synth(13, 1).values()],
    }


@pytest.fixture(scope="module")
def whole(data, tmp_path_factory) -> dict:
    """A pruned student (16 of 24 teacher dims) exported whole-clip to ONNX, ONNX int8 and TFLite int8."""
    tmp = tmp_path_factory.mktemp("export-whole")
    student = tiny_student(data["calib"])
    student.kept_dims = [1, 2, 4, 5, 6, 8, 9, 11, 12, 14, 15, 17, 19, 20, 22, 23]
    ckpt = save_student(tmp / "student", student)
    pruned = prototype_bank(student, data["prototypes"], FAMILIES)
    # The full bank: the prototypes in the kept columns, noise in the others (a bank used unsliced scores wrong).
    full = np.random.default_rng(0).normal(0.0, 0.3, (len(FAMILIES), TEACHER_DIM)).astype(np.float32)
    full[:, student.kept_dims] = pruned.embeddings
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    full_bank = PromptBank(full, FAMILIES, pruned.prompts, pruned.templates, "test-prototypes", 100.0, TEACHER_DIM)
    full_path = full_bank.save(tmp / "full_bank.npz")
    out = tmp / "out"
    result = export_student(ckpt, full_path, out, formats=("onnx", "onnx-int8", "tflite-int8"),
                            calibration=calibration(data["calib"]))
    bank = full_bank.select_teacher_dims(student.kept_dims)  # the pruned bank a prune run writes
    return {"student": student, "ckpt": ckpt, "bank": bank, "full_bank": full_path,
            "bank_path": bank.save(tmp / "bank.npz"), "out": out, "report": result.report,
            "reference": student.embed_audio(data["waves"]).numpy()}


@pytest.fixture(scope="module")
def stream(data, tmp_path_factory) -> dict:
    """An unpruned student exported as a streaming pair (features + head) to ONNX, ONNX int8 and TFLite int8."""
    tmp = tmp_path_factory.mktemp("export-stream")
    # Seed 0 as the whole-clip student: seed 1 happens to quantise badly when streamed (the export's own
    # report: TFLite int8 cosine 0.935 on its held-out clips), which is the student's, not the encoder's.
    student = tiny_student(data["calib"], seed=0)
    bank = prototype_bank(student, data["prototypes"], FAMILIES)
    bank_path = bank.save(tmp / "bank.npz")
    out = tmp / "out"
    result = export_student(student, bank, out, formats=("onnx", "onnx-int8", "tflite-int8"),
                            calibration=calibration(data["calib"]), window_seconds=WINDOW)
    streamed = StreamingStudent(student, WINDOW)
    return {"student": streamed, "bank": bank, "bank_path": bank_path, "out": out, "report": result.report,
            "reference": streamed.embed_audio(data["waves"]).numpy()}


def _read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["clip_id", "label", "prediction", "score"]
        return list(reader)


def _eval(model: Path | str, bank: Path, data: dict, out: Path) -> tuple[dict, list[dict[str, str]]]:
    assert main(["eval", "--model", str(model), "--bank", str(bank), "--dataset", data["spec"], "--quiet",
                 "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text()), _read_predictions(out / "predictions.csv")


def _bank_argmax(emb: np.ndarray, bank: PromptBank) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 index and its softmax probability against ``bank``, computed here independently of evaluate()."""
    b = bank.embeddings / np.linalg.norm(bank.embeddings, axis=1, keepdims=True)
    logits = bank.logit_scale * (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ b.T
    probs = torch.softmax(torch.from_numpy(logits.astype(np.float64)), dim=-1).numpy()
    return logits.argmax(1), probs.max(1)


@pytest.mark.parametrize(
    "which,model,kind",
    [
        ("whole", "embed.onnx", OnnxEncoder),
        ("whole", "embed.int8.onnx", OnnxEncoder),
        ("whole", "embed.int8.tflite", TfliteEncoder),
        ("whole", ".", TfliteEncoder),  # the folder: its device model
        ("stream", "features.int8.tflite", TfliteEncoder),
        ("stream", "head.onnx", OnnxEncoder),
        ("stream", "features.int8.onnx", OnnxEncoder),
        ("stream", ".", TfliteEncoder),
    ],
)
def test_eval_scores_exported_models_and_writes_predictions(which, model, kind, data, whole, stream, tmp_path):
    run = {"whole": whole, "stream": stream}[which]
    path = run["out"] / model
    encoder = load_encoder(path)  # what `eval --model` resolves to
    assert isinstance(encoder, kind) and encoder.streaming == (which == "stream")
    metrics, rows = _eval(path, run["bank_path"], data, tmp_path)
    assert [r["clip_id"] for r in rows] == data["ids"] == metrics["clip_ids"]  # one row per clip, dataset order
    labels = metrics["labels"]
    assert [r["label"] for r in rows] == [labels[t] for t in metrics["targets"]]
    assert [r["prediction"] for r in rows] == [labels[p] for p in metrics["predictions"]]
    assert sum(r["label"] == r["prediction"] for r in rows) == metrics["metrics"]["correct"]
    # The predictions are the argmax over the bank of this encoder's clip embeddings.
    top1, prob = _bank_argmax(encoder.embed_audio(data["waves"]).numpy(), run["bank"])
    assert [r["prediction"] for r in rows] == [run["bank"].labels[i] for i in top1]
    np.testing.assert_allclose([float(r["score"]) for r in rows], prob, atol=2e-5)
    assert model.split(".")[0] in metrics["encoder"] or model == "."


@pytest.mark.parametrize("which", ["whole", "stream"])
def test_tflite_encoder_is_close_to_the_torch_student(which, data, whole, stream):
    run = {"whole": whole, "stream": stream}[which]
    name = "embed.int8.tflite" if which == "whole" else "features.int8.tflite"
    encoder = load_exported(run["out"] / name)
    emb = encoder.embed_audio(data["waves"])
    assert emb.dtype == torch.float32 and emb.shape == (20, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(20), atol=1e-5, rtol=0)
    stats = cosine_stats(emb.numpy(), run["reference"])
    assert stats["cosine_mean"] >= COS_MEAN and stats["cosine_worst"] >= COS_WORST, stats
    ours, _ = _bank_argmax(emb.numpy(), run["bank"])
    torch_top1, _ = _bank_argmax(run["reference"], run["bank"])
    agreement = float(np.mean(ours == torch_top1))
    assert agreement >= AGREEMENT, agreement
    # The same front end, mel_affine and windows as the export's own check: its figure on the
    # clips it verified on is reproduced from waveforms.
    recorded = run["report"]["calibration"]
    ids = recorded["clip_ids"]
    verified = np.stack([data["calib"][ids.index(c)] for c in recorded.get("verification_clip_ids", ids)])
    again = cosine_stats(encoder.embed_audio(verified).numpy(), run["student"].embed_audio(verified).numpy())
    again = again["cosine_mean"]
    assert again == pytest.approx(run["report"]["formats"]["tflite-int8"]["cosine_mean"], abs=1e-6)


def test_fp32_onnx_predicts_as_the_student_checkpoint(data, whole, tmp_path):
    ckpt_metrics, ckpt_rows = _eval(whole["ckpt"], whole["bank_path"], data, tmp_path / "ckpt")
    onnx_metrics, onnx_rows = _eval(whole["out"] / "embed.onnx", whole["bank_path"], data, tmp_path / "onnx")
    assert [r["prediction"] for r in onnx_rows] == [r["prediction"] for r in ckpt_rows]
    np.testing.assert_allclose([float(r["score"]) for r in onnx_rows], [float(r["score"]) for r in ckpt_rows],
                               atol=1e-4)
    assert onnx_metrics["metrics"]["accuracy"] == ckpt_metrics["metrics"]["accuracy"]


def test_pruned_export_slices_a_full_bank_with_the_checkpoint_kept_dims(data, whole, tmp_path):
    encoder = load_exported(whole["out"])
    assert encoder.kept_dims == whole["student"].kept_dims and encoder.dim == 16
    _, pruned_rows = _eval(whole["out"], whole["bank_path"], data, tmp_path / "pruned")
    metrics, full_rows = _eval(whole["out"], whole["full_bank"], data, tmp_path / "full")
    assert full_rows == pruned_rows
    assert metrics["bank"]["kept_dims"] == whole["student"].kept_dims


def test_exported_model_references_and_errors(whole, stream, tmp_path, capsys):
    assert exported_model(whole["out"]).format == "tflite-int8"
    assert [p.name for p in exported_model(stream["out"] / "head.int8.onnx").files] == [
        "features.int8.onnx", "head.int8.onnx"]
    assert exported_model(whole["ckpt"]) is None and exported_model("msclap-2022") is None
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.json").write_text('{"format": "something else"}')
    assert exported_model(tmp_path / "other") is None  # a folder of another kind falls through to the teachers
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(whole["out"] / "embed.int8.tflite", lone / "embed.int8.tflite")
    with pytest.raises(ExportedModelError, match="no report.json"):
        load_encoder(lone / "embed.int8.tflite")
    half = tmp_path / "half"
    half.mkdir()
    for name in ("report.json", "features.int8.tflite"):
        shutil.copy(stream["out"] / name, half / name)
    with pytest.raises(ExportedModelError, match=r"needs head\.int8\.tflite"):
        exported_model(half / "features.int8.tflite")
    with pytest.raises(ExportedModelError, match="no complete model"):
        exported_model(half)
    with pytest.raises(ExportedModelError, match="no such exported model"):
        exported_model(whole["out"] / "missing.int8.tflite")
    capsys.readouterr()
    assert main(["eval", "--model", str(lone / "embed.int8.tflite"), "--bank", str(whole["bank_path"]),
                 "--dataset", "esc50:/nowhere", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "report.json" in err and "Traceback" not in err


def test_teacher_eval_writes_predictions_too(data, tmp_path_factory, tmp_path):
    """Every model kind writes predictions.csv: here a teacher (the session's tiny local one), its own bank."""
    from zeroshot_support import teacher_path

    out = tmp_path / "teacher"
    assert main(["eval", "--model", f"local:{teacher_path(tmp_path_factory)}", "--dataset", data["spec"],
                 "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rows = _read_predictions(out / "predictions.csv")
    assert [r["clip_id"] for r in rows] == data["ids"]
    assert [r["prediction"] for r in rows] == [metrics["labels"][p] for p in metrics["predictions"]]
    assert all(0.0 < float(r["score"]) <= 1.0 for r in rows)
