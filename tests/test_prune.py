"""Latent pruning: scorers, slicing the projection and the bank, budgets, fine-tuning, sweeps, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyclap.bank import PromptBank
from tinyclap.cli import main
from tinyclap.data import open_dataset
from tinyclap.errors import BudgetError
from tinyclap.evaluate import evaluate
from tinyclap.prune import (
    PruneError,
    choose_k,
    flash_bytes_for,
    projection_params,
    prune,
    prune_student,
    score_dims,
    sweep,
    top_dims,
)
from tinyclap.students import AudioStudent, load_student, save_student
from tinyclap.zeroshot import ZeroShotClassifier
from zeroshot_support import DIM, audio_config, esc_layout, load_tiny_teacher, teacher_path, tiny_student


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return load_tiny_teacher(tmp_path_factory)


@pytest.fixture(scope="module")
def data(esc10_root, tmp_path_factory):
    """20 real ESC-10 clips (fold 1, 2 per class)."""
    root = esc_layout(esc10_root, tmp_path_factory.mktemp("esc"), per_class_per_fold=2, folds=(1,))
    return open_dataset(f"esc50:{root}", audio_config())


@pytest.fixture(scope="module")
def bank(teacher, data):
    return PromptBank.build(teacher, data.class_names)


@pytest.fixture(scope="module")
def cache(teacher, data, tmp_path_factory):
    from tinyclap.distill.cache import build_cache

    return build_cache(teacher, data, tmp_path_factory.mktemp("cache") / "c", batch_size=16, progress=False)


@pytest.fixture(scope="module")
def clips(data):
    return torch.from_numpy(np.stack([data[i].clip for i in range(len(data))]))


# ---------------------------------------------------------------- scorers
def test_similarity_scorer_finds_the_dims_that_matter():
    rng = np.random.default_rng(0)
    n, p, d = 64, 6, 16
    audio = 0.01 * rng.standard_normal((n, d))
    text = 0.01 * rng.standard_normal((p, d))
    audio[:, [3, 11]] += rng.choice([-1, 1], size=(n, 2)) * 0.6  # both towers use dims 3 and 11
    text[:, [3, 11]] += 0.6  # the same in every prompt: large, but no variance
    text[:, 5] += 0.9  # large in text only: contributes nothing to audio-text cosines
    audio[:, 7] += 0.9  # large in audio only
    text[:, 9] += np.linspace(-0.5, 0.5, p)  # text that varies, audio silent
    sim = score_dims(audio, text, "similarity")
    assert top_dims(sim, 2) == [3, 11]
    brute = np.abs(audio[:, None, :] * text[None, :, :]).mean(axis=(0, 1))  # the definition, all pairs
    np.testing.assert_allclose(sim, brute, rtol=1e-10)
    assert top_dims(score_dims(audio, text, "text_magnitude"), 1) == [5]
    assert top_dims(score_dims(None, text, "text_variance"), 1) == [9]
    with pytest.raises(PruneError, match="unknown scorer"):
        score_dims(audio, text, "magic")
    with pytest.raises(PruneError, match="non-empty"):
        score_dims(audio, np.zeros((0, d)))
    with pytest.raises(PruneError, match="dims"):
        score_dims(audio[:, :8], text)


def test_top_dims_order_and_ties():
    assert top_dims([0.1, 0.5, 0.5, 0.2], 2) == [1, 2]
    assert top_dims([1.0, 1.0, 1.0], 2) == [0, 1]  # ties: lower index wins
    assert top_dims(np.random.default_rng(1).random(10), 10) == list(range(10))
    for bad in (0, 11):
        with pytest.raises(PruneError, match="between 1 and 10"):
            top_dims(np.ones(10), bad)


# ---------------------------------------------------------------- slicing
def test_parameter_count_falls_exactly_on_the_reference_student():
    student = AudioStudent.from_name("phinet_alpha_1.50_beta_0.75_t0_6_N_7")
    before = student.num_parameters()
    assert before == 4_434_547 and projection_params(2048, 1024) == 3_147_776
    for k in (512, 256, 32):
        pruned = prune_student(student, list(range(0, 1024, 1024 // k)))
        assert pruned.dim == k and pruned.config.dim == k
        assert before - pruned.num_parameters() == projection_params(2048, 1024) - projection_params(2048, k)
        assert sum(p.numel() for p in pruned.projection.parameters()) == 2048 * k + k * k + 2 * k
    assert student.num_parameters() == before and student.kept_dims is None  # original untouched


def test_slices_are_the_kept_rows_and_columns():
    student = tiny_student()
    dims = [30, 2, 17, 5]
    pruned = prune_student(student, dims)
    idx = torch.tensor(dims)
    p0, p1 = student.projection, pruned.projection
    assert torch.equal(p1.linear1.weight, p0.linear1.weight[idx])
    assert torch.equal(p1.linear2.weight, p0.linear2.weight[idx][:, idx])
    assert torch.equal(p1.layer_norm.weight, p0.layer_norm.weight[idx])
    assert torch.equal(p1.layer_norm.bias, p0.layer_norm.bias[idx])
    assert pruned.kept_dims == dims
    again = prune_student(pruned, [3, 0])  # composes: positions into the pruned output
    assert again.kept_dims == [5, 30]
    with pytest.raises(PruneError):
        prune_student(student, [0, 0])
    with pytest.raises(PruneError):
        prune_student(student, [DIM])


def test_k_equal_to_D_changes_nothing(teacher, bank, cache, data, clips):
    student = tiny_student(seed=3)
    result = prune(student, bank, DIM, cache=cache)  # top-D of any scores is the identity order
    assert result.positions == list(range(DIM)) and result.params_after == result.params_before
    for a, b in zip(student.state_dict().values(), result.student.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(result.student.embed_audio(clips).numpy(), student.embed_audio(clips).numpy())
    before = evaluate(student, bank, data, progress=False)
    after = evaluate(result.student, result.bank, data, progress=False)
    assert after.predictions == before.predictions and after.accuracy == before.accuracy


def test_pruned_student_round_trips_and_classifies_with_the_full_bank(bank, cache, clips, tmp_path: Path):
    result = prune(tiny_student(seed=1), bank, 8, cache=cache)
    assert result.bank.kept_dims == result.student.kept_dims == result.kept_dims and result.bank.dim == 8
    path = save_student(tmp_path / "pruned", result.student)
    loaded = load_student(path)
    assert loaded.dim == 8 and loaded.kept_dims == result.kept_dims
    np.testing.assert_allclose(loaded.embed_audio(clips).numpy(), result.student.embed_audio(clips).numpy(), atol=1e-6)
    # The full bank is sliced to the student's kept dims on the fly: same as the pruned bank.
    full = ZeroShotClassifier(loaded, bank)
    own = ZeroShotClassifier(result.student, result.bank)
    np.testing.assert_allclose(full.predict_proba(clips), own.predict_proba(clips), atol=1e-6)


def test_bank_of_another_teacher_or_width_is_refused(bank, cache):
    wrong = PromptBank(bank.embeddings, bank.labels, bank.prompts, bank.templates, "msclap-2022", 10.0, DIM)
    with pytest.raises(PruneError, match="msclap-2022"):
        prune(tiny_student(), wrong, 8, cache=cache)
    with pytest.raises(PruneError, match="student outputs 16"):
        prune(tiny_student(dim=16), bank, 8, cache=cache)
    with pytest.raises(PruneError, match="exactly one"):
        prune(tiny_student(), bank, cache=cache)
    with pytest.raises(PruneError, match="calibration audio"):
        prune(tiny_student(), bank, 8)


# ---------------------------------------------------------------- budgets
def test_flash_budget_picks_the_largest_k_that_fits():
    student = tiny_student()
    f = [flash_bytes_for(student, k) for k in (19, 20, 21)]
    assert f[0] < f[1] < f[2]
    assert choose_k(student, f[1]) == 20 and choose_k(student, f[2] - 1) == 20
    assert choose_k(student, 10**9) == DIM
    with pytest.raises(BudgetError, match="k = 1"):
        choose_k(student, 1000)


# ---------------------------------------------------------------- fine-tuning and sweeps
def test_prune_fine_tunes_the_projection_toward_the_kept_teacher_dims(bank, cache, data, clips, tmp_path: Path):
    student = tiny_student(seed=2)
    plain = prune(student, bank, 8, cache=cache)
    tuned = prune(student, bank, 8, cache=cache, finetune_data=data, val_data=data, out_dir=tmp_path / "p",
                  epochs=3, batch_size=10, lr=0.02, progress=False)
    assert tuned.kept_dims == plain.kept_dims
    # Only the projection was trained: the backbone is bit-identical.
    for name, value in tuned.student.state_dict().items():
        if not name.startswith("projection."):
            assert torch.equal(value, plain.student.state_dict()[name]), name
    target = cache.select(tuned.kept_dims).lookup(data.ids)
    cos_before = (plain.student.embed_audio(clips) * target).sum(1).mean()
    cos_after = (tuned.student.embed_audio(clips) * target).sum(1).mean()
    assert cos_after > cos_before + 0.05
    for key in ("student", "bank", "report"):
        assert tuned.paths[key].is_file()
    assert load_student(tuned.paths["student"]).kept_dims == tuned.kept_dims
    assert PromptBank.load(tuned.paths["bank"]).kept_dims == tuned.kept_dims


def test_sweep_table_and_plot(bank, cache, data, tmp_path: Path):
    student = tiny_student(seed=4)
    rows = sweep(student, bank, [8, 32, 16], data, tmp_path / "sweep", cache=cache, progress=False)
    assert [r["k"] for r in rows] == [32, 16, 8]
    base = student.num_parameters()
    d_in = student.projection.linear1.in_features
    for r in rows:
        assert r["params"] == base - projection_params(d_in, DIM) + projection_params(d_in, r["k"])
        assert r["flash_bytes_int8"] == flash_bytes_for(student, r["k"])
    assert rows[0]["accuracy"] == evaluate(student, bank, data, progress=False).accuracy
    teacher_full = (cache.lookup(data.ids).numpy() @ bank.embeddings.T).argmax(1)
    labels = np.array([data.label(i) for i in range(len(data))])
    assert rows[0]["teacher_accuracy_at_k"] == pytest.approx((teacher_full == labels).mean())
    for name in ("sweep.json", "sweep.csv", "sweep.md", "sweep.png"):
        assert (tmp_path / "sweep" / name).stat().st_size > 0
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()[0].startswith("k,params,")


def test_prune_cli(tmp_path_factory, bank, cache, data, tmp_path: Path, esc10_root, capsys):
    student = tiny_student(seed=5)
    ckpt = save_student(tmp_path / "student", student)
    bank_path = bank.save(tmp_path / "bank.npz")
    base = ["prune", "--student", str(ckpt), "--cache", str(cache.root), "--bank", str(bank_path), "--quiet"]
    root = data.root
    tune = ["--data", f"esc50:{root}", "--epochs", "1", "--batch-size", "10"]
    assert main(base + ["--dims", "12", "--out", str(tmp_path / "d12")] + tune) == 0
    assert "projection fine-tuned" in capsys.readouterr().out
    pruned = load_student(tmp_path / "d12" / "student.json")
    assert pruned.dim == 12 and PromptBank.load(tmp_path / "d12" / "bank.npz").kept_dims == pruned.kept_dims
    assert (tmp_path / "d12" / "finetune").is_dir()
    (tmp_path / "captions.txt").write_text("a dog barks twice\nrain on a tin roof\n\na chainsaw cutting wood\n")
    assert main(base + ["--dims", "6", "--captions", str(tmp_path / "captions.txt"), "--out", str(tmp_path / "cap")]) == 0
    report = json.loads((tmp_path / "cap" / "prune.json").read_text())
    assert len(report["kept_dims"]) == 6 and report["params_removed"] > 0
    assert report["scores"] != json.loads((tmp_path / "d12" / "prune.json").read_text())["scores"]  # captions, not the bank
    budget = flash_bytes_for(student, 20)
    assert main(base + ["--flash", str(budget), "--out", str(tmp_path / "flash")]) == 0
    assert load_student(tmp_path / "flash" / "student.json").dim == 20
    assert main(base + ["--sweep", "32,4", "--eval", f"esc50:{root}", "--out", str(tmp_path / "sw")]) == 0
    assert "k=    4" in capsys.readouterr().out and (tmp_path / "sw" / "sweep.md").is_file()
    # Errors are one line, exit code 1, and name the problem.
    assert main(base + ["--sweep", "32,x", "--eval", f"esc50:{root}", "--out", str(tmp_path / "bad")]) == 1
    assert "--sweep expects" in capsys.readouterr().err
    assert main(base + ["--dims", "99", "--out", str(tmp_path / "bad")]) == 1
    assert "between 1 and" in capsys.readouterr().err
    assert teacher_path(tmp_path_factory).is_file()
