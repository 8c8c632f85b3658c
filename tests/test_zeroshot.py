"""ZeroShotClassifier and evaluate(): real ESC-10 clips, a tiny teacher trained by tinyclap.pretrain."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyclap.bank import PromptBank
from tinyclap.data import open_dataset
from tinyclap.evaluate import classification_metrics, evaluate, fold_of
from tinyclap.zeroshot import DimMismatchError, ZeroShotClassifier
from zeroshot_support import audio_config, esc_layout, load_tiny_teacher, tiny_student


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return load_tiny_teacher(tmp_path_factory)


@pytest.fixture(scope="module")
def fold1(esc10_root, tmp_path_factory):
    """40 real ESC-10 clips of fold 1 (4 per class), in the ESC-50 layout."""
    root = esc_layout(esc10_root, tmp_path_factory.mktemp("esc-fold1"), per_class_per_fold=4, folds=(1,))
    return open_dataset(f"esc50:{root}", audio_config())


@pytest.fixture(scope="module")
def bank(teacher, fold1):
    return PromptBank.build(teacher, fold1.class_names)


@pytest.fixture(scope="module")
def clips(fold1):
    return torch.from_numpy(np.stack([fold1[i].clip for i in range(0, 40, 4)]))  # 10 real clips, one per class


def test_probabilities_are_softmax_of_scaled_cosines(teacher, bank, clips):
    clf = ZeroShotClassifier(teacher, bank)
    audio = teacher.embed_audio(clips)
    expect = torch.softmax(teacher.logit_scale * audio @ torch.from_numpy(bank.embeddings).T, dim=-1).numpy()
    proba = clf.predict_proba(clips)
    np.testing.assert_allclose(proba, expect, atol=1e-5)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(clf.predict(clips), expect.argmax(1))
    top = clf.topk(clips, k=3)
    assert len(top) == len(clips) and all(len(row) == 3 for row in top)
    for row, p in zip(top, proba):
        assert [label for label, _ in row] == [bank.labels[j] for j in np.argsort(-p, kind="stable")[:3]]
        assert row[0][1] >= row[1][1] >= row[2][1]
    assert clf.predict_labels(clips) == [bank.labels[j] for j in expect.argmax(1)]


def test_student_and_saved_bank_need_no_text_encoder(teacher, bank, clips, tmp_path: Path):
    bank.save(tmp_path / "bank.npz")
    student = tiny_student()
    assert not hasattr(student, "embed_text")
    clf = ZeroShotClassifier(student, PromptBank.load(tmp_path / "bank.npz"))
    emb = student.embed_audio(clips)
    expect = (emb @ torch.from_numpy(bank.embeddings).T).argmax(-1).numpy()
    assert np.array_equal(clf.predict(clips), expect)


def test_dims_are_matched_or_refused(teacher, bank, clips):
    dims = [1, 4, 9, 16, 25, 30]
    # Pruned bank + full-D teacher: the teacher's output is sliced to the bank's dims.
    clf = ZeroShotClassifier(teacher, bank.select(dims))
    a = teacher.embed_audio(clips)[:, dims]
    a = a / a.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(clf.embed(clips).numpy(), a.numpy(), atol=1e-6)
    # A student that keeps some dims + a full bank: the bank is sliced to the student's kept dims.
    student = tiny_student(dim=len(dims))
    student.kept_dims = dims
    clf = ZeroShotClassifier(student, bank)
    assert clf.bank.kept_dims == dims
    np.testing.assert_allclose(clf.bank.embeddings, bank.select(dims).embeddings)
    assert clf.predict(clips).shape == (len(clips),)
    # A k-dim encoder that says nothing about its dims cannot be matched to a D-dim bank.
    with pytest.raises(DimMismatchError, match="6 dims"):
        ZeroShotClassifier(tiny_student(dim=6), bank)
    # A student pruned to dims the bank no longer has.
    student.kept_dims = [0, 2, 3, 5, 7, 8]
    with pytest.raises(DimMismatchError):
        ZeroShotClassifier(student, bank.select(dims))


def test_long_audio_is_windowed(teacher, bank, clips):
    n = teacher.audio_config.clip_samples
    long = torch.cat([clips[0], clips[1], clips[2][: n // 2]])  # 2.5 windows → 3 windows, the last end-aligned
    windows = torch.stack([long[:n], long[n : 2 * n], long[-n:]])
    w = teacher.embed_audio(windows)
    clf = ZeroShotClassifier(teacher, bank)
    mean = w.mean(0)
    np.testing.assert_allclose(clf.embed([long.numpy()])[0].numpy(), (mean / mean.norm()).numpy(), atol=1e-5)
    text = torch.from_numpy(bank.embeddings)
    by_logits = ZeroShotClassifier(teacher, bank, aggregate="logits").logits([long.numpy()])[0]
    np.testing.assert_allclose(by_logits.numpy(), (teacher.logit_scale * w @ text.T).mean(0).numpy(), atol=1e-4)
    assert by_logits.argmax() == clf.logits([long.numpy()])[0].argmax()  # same direction, same prediction
    # A short clip is padded (repeated) to one window; mixed lengths go in one call.
    short = clips[3][: n // 3].numpy()
    out = clf.predict([short, long.numpy(), clips[4].numpy()])
    assert out.shape == (3,) and out[2] == clf.predict(clips[4:5])[0]


def test_run_time_prompts_keep_the_pruned_dims(teacher, bank, clips):
    dims = list(range(0, 32, 2))
    clf = ZeroShotClassifier(teacher, bank.select(dims))
    new = clf.with_prompts(teacher, ["a dog barking", "rain falling"], templates=["{}"])
    assert new.bank.labels == ["a dog barking", "rain falling"] and new.bank.kept_dims == dims
    direct = PromptBank.build(teacher, ["a dog barking", "rain falling"], ["{}"]).select(dims)
    np.testing.assert_allclose(new.bank.embeddings, direct.embeddings, atol=1e-6)
    assert set(new.predict(clips).tolist()) <= {0, 1}


def test_metrics_on_a_constructed_example():
    m = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], num_classes=4)
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_accuracy"] == [pytest.approx(2 / 3), 0.5, 1.0, None]
    f1 = [2 * 2 / (3 + 2), 2 * 1 / (2 + 2), 2 * 1 / (1 + 2)]  # 2·tp / (support + predicted)
    assert m["macro_f1"] == pytest.approx(np.mean(f1))  # the empty class 3 is left out


def test_evaluate_esc10_fold_is_reproducible(teacher, bank, fold1):
    student = tiny_student()
    first = evaluate(student, bank, fold1, teacher=teacher, per_fold=True, progress=False, batch_size=16)
    again = evaluate(student, bank, fold1, progress=False, batch_size=7)
    assert first.metrics["n"] == 40 and first.n_windows == 40 and first.broken == []
    assert first.predictions == again.predictions and first.metrics == again.metrics
    # The numbers are those of the classifier applied clip by clip.
    clips = torch.from_numpy(np.stack([fold1[i].clip for i in range(len(fold1))]))
    preds = ZeroShotClassifier(student, bank).predict(clips)
    targets = np.array([fold1.label(i) for i in range(len(fold1))])
    assert first.predictions == preds.tolist() and first.targets == targets.tolist()
    assert first.accuracy == pytest.approx((preds == targets).mean())
    tpreds = ZeroShotClassifier(teacher, bank).predict(clips)
    assert first.teacher["accuracy"] == pytest.approx((tpreds == targets).mean())
    assert first.agreement == pytest.approx((tpreds == preds).mean())
    assert list(first.per_fold) == ["1"] and first.per_fold["1"]["accuracy"] == first.accuracy
    assert first.metrics["support"] == [4] * 10


def test_evaluate_per_fold_and_self_agreement(teacher, bank, esc10_root, tmp_path: Path):
    root = esc_layout(esc10_root, tmp_path / "esc", per_class_per_fold=1, folds=(2, 3))
    ds = open_dataset(f"esc50:{root}", audio_config())
    r = evaluate(teacher, bank, ds, teacher=teacher, per_fold=True, progress=False)
    assert r.agreement == 1.0 and r.teacher["accuracy"] == r.accuracy
    assert sorted(r.per_fold) == ["2", "3"]
    assert [f["n"] for f in r.per_fold.values()] == [10, 10] and r.metrics["n"] == 20
    assert r.metrics["correct"] == sum(f["correct"] for f in r.per_fold.values())
    assert fold_of(ds, "4-12345-A-0.ogg#0") == "4" and fold_of(ds, "audio/fold10/1-2-3-4.wav#0") == "10"


def test_broken_clips_are_skipped_and_counted(teacher, bank, esc10_root, tmp_path: Path):
    root = esc_layout(esc10_root, tmp_path / "esc", per_class_per_fold=1, folds=(1,), broken=True)
    ds = open_dataset(f"esc50:{root}", audio_config())
    r = evaluate(teacher, bank, ds, progress=False)
    assert r.metrics["n"] == 10
    assert len(r.broken) == 2
    assert any("1-999999-A-0.ogg" in b for b in r.broken) and any("1-999998-A-0.ogg" in b for b in r.broken)


def test_bank_of_another_teacher_warns(bank):
    student = tiny_student()
    student.meta = {"teacher": "msclap-2022"}  # what distillation records in the checkpoint
    with pytest.warns(UserWarning, match="do not share a space"):
        ZeroShotClassifier(student, bank)
    student.meta = {"teacher": bank.teacher}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same teacher: no warning
        ZeroShotClassifier(student, bank)
