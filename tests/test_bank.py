"""PromptBank: building from a teacher's text tower, saving/loading, selecting dims, bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinyclap.bank import BankError, PromptBank, read_labels
from tinyclap.templates import DEFAULT, REFERENCE_TEMPLATE, TemplateError, label_text, read_templates
from zeroshot_support import load_tiny_teacher

LABELS = ["dog", "rooster", "crackling_fire", "rain"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny CLAP trained by tinyclap.pretrain (MiniLM text tower): see zeroshot_support."""
    return load_tiny_teacher(tmp_path_factory)


class CountingText:
    """Wraps a teacher and records the prompts its text tower sees."""

    def __init__(self, teacher):
        self.teacher = teacher
        self.name = teacher.name
        self.logit_scale = teacher.logit_scale
        self.seen: list[str] = []

    def embed_text(self, prompts):
        self.seen.extend(prompts)
        return self.teacher.embed_text(prompts)


def test_build_averages_templates_and_renormalises(teacher):
    spy = CountingText(teacher)
    bank = PromptBank.build(spy, LABELS)
    assert bank.labels == LABELS
    assert bank.templates == list(DEFAULT) and DEFAULT[0] == REFERENCE_TEMPLATE
    assert len(spy.seen) == len(LABELS) * len(DEFAULT)
    assert "this is the sound of crackling fire" in spy.seen  # underscores read as spaces
    assert bank.prompts[2][0] == "this is the sound of crackling fire"
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-5)
    # Row = normalised mean of that label's prompt embeddings.
    t = teacher.embed_text(bank.prompts[1]).numpy().mean(0)
    np.testing.assert_allclose(bank.embeddings[1], t / np.linalg.norm(t), atol=1e-5)
    assert bank.source_dim == teacher.dim and bank.kept_dims is None
    assert bank.teacher == teacher.name and bank.logit_scale == pytest.approx(teacher.logit_scale)
    # A wrapper without an `identity` is an unknown teacher: no identity is invented from its name.
    assert bank.teacher_id is None
    assert PromptBank.build(teacher, LABELS).teacher_id == teacher.identity and teacher.identity.startswith("local#")


def test_reference_template_only_is_single_prompt(teacher):
    bank = PromptBank.build(teacher, LABELS, templates="reference")
    one = teacher.embed_text(["this is the sound of rain"]).numpy()[0]
    np.testing.assert_allclose(bank.embeddings[3], one, atol=1e-5)


def test_round_trip_with_kept_dims(teacher, tmp_path: Path):
    bank = PromptBank.build(teacher, LABELS).select([5, 1, 9, 2])
    path = bank.save(tmp_path / "bank.npz")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind
    back = PromptBank.load(path)
    np.testing.assert_array_equal(back.embeddings, bank.embeddings)
    assert back.labels == bank.labels and back.prompts == bank.prompts and back.templates == bank.templates
    assert back.kept_dims == [5, 1, 9, 2] and back.source_dim == teacher.dim
    assert back.teacher == bank.teacher and back.logit_scale == pytest.approx(bank.logit_scale)
    assert back.teacher_id == bank.teacher_id == teacher.identity  # kept through select, save and load
    with np.load(path, allow_pickle=False) as npz:  # plain arrays, no pickled objects
        assert npz["labels"].dtype.kind == "U" and npz["prompts"].shape == (4, len(DEFAULT))
        assert str(npz["teacher_id"]) == teacher.identity


def test_select_slices_renormalises_and_composes(teacher):
    bank = PromptBank.build(teacher, LABELS)
    sub = bank.select([3, 7, 11])
    expect = bank.embeddings[:, [3, 7, 11]]
    np.testing.assert_allclose(sub.embeddings, expect / np.linalg.norm(expect, axis=1, keepdims=True), atol=1e-6)
    assert sub.kept_dims == [3, 7, 11] and sub.dim == 3
    # Selecting from a pruned bank indexes its columns; kept_dims stay teacher indices.
    assert sub.select([2, 0]).kept_dims == [11, 3]
    assert sub.select_teacher_dims([11, 3]).teacher_id == bank.teacher_id is not None
    assert bank.select(list(range(bank.dim))).kept_dims == list(range(bank.dim))
    with pytest.raises(BankError, match="outside"):
        bank.select([bank.dim])
    with pytest.raises(BankError, match="empty"):
        bank.select([])


def test_empty_labels_and_bad_templates(teacher, tmp_path: Path):
    with pytest.raises(BankError, match="empty label list"):
        PromptBank.build(teacher, [])
    with pytest.raises(BankError, match="duplicate"):
        PromptBank.build(teacher, ["dog", "dog"])
    with pytest.raises(TemplateError, match="exactly one"):
        PromptBank.build(teacher, ["dog"], templates=["no slot here"])
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(TemplateError, match="no templates"):
        read_templates(tmp_path / "empty.txt")
    with pytest.raises(BankError, match="holds no labels"):
        read_labels(tmp_path / "empty.txt")


def test_template_and_label_files(teacher, tmp_path: Path):
    (tmp_path / "t.txt").write_text("# mine\na {} noise\n\nsomething like {}\n")
    (tmp_path / "l.txt").write_text("dog_bark\n  siren \n")
    bank = PromptBank.build(teacher, read_labels(tmp_path / "l.txt"), tmp_path / "t.txt")
    assert bank.prompts == [["a dog bark noise", "something like dog bark"], ["a siren noise", "something like siren"]]
    assert label_text("  car_horn  ") == "car horn"


def test_bad_bank_files(teacher, tmp_path: Path):
    with pytest.raises(BankError, match="no such"):
        PromptBank.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip")
    with pytest.raises(BankError, match="junk.npz"):
        PromptBank.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(BankError, match="missing"):
        PromptBank.load(other)
    # A pickled object array must be refused, not unpickled.
    good = PromptBank.build(teacher, LABELS).save(tmp_path / "good.npz")
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["labels"] = np.array(LABELS, dtype=object)
    evil = tmp_path / "evil.npz"
    np.savez(evil, **arrays)
    with pytest.raises(BankError, match="evil.npz"):
        PromptBank.load(evil)
    # Inconsistent shapes are caught with the file named.
    arrays["labels"] = np.array(LABELS[:3])
    short = tmp_path / "short.npz"
    np.savez(short, **arrays)
    with pytest.raises(BankError, match="short.npz.*3 labels but 4"):
        PromptBank.load(short)
    assert zipfile.is_zipfile(good)
