"""Teacher identity by content: a run folder moved or copied still pairs with its own cache; other weights do not."""

from __future__ import annotations

import json

import shutil
from pathlib import Path

import pytest
import torch

from tests.pretrain_tiny import TINY_AUDIO, build_tiny_text_model
from tinyclap.audio import AudioConfig
from tinyclap.bank import PromptBank
from tinyclap.distill.cache import (
    INDEX_NAME,
    CacheMismatchError,
    EmbeddingCache,
    build_cache,
    config_hash,
)
from tinyclap.distill.presets import PresetError
from tinyclap.io import read_json, write_json
from tinyclap.prune import PruneError, prune
from tinyclap.teachers.identity import file_sha256, identity_of_name, teacher_identity
from tinyclap.teachers.local import save_local
from tinyclap.teachers.registry import load_teacher

LABELS = ["dog bark", "rain", "engine", "bell"]
DATA = "synth?n=10&seed=0"


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Outside the run folders, as the packaged MiniLM is: a frozen text tower is referenced, not copied.
    return build_tiny_text_model(tmp_path_factory.mktemp("tiny_text"))


def _save_teacher(folder: Path, text_dir: Path, seed: int, **meta: object) -> Path:
    from tinyclap.pretrain.model import LocalClap

    torch.manual_seed(seed)
    model = LocalClap("cnn14:width=2,embed=16,dropout=0.0", AudioConfig(**TINY_AUDIO), dim=8,
                      text_model=str(text_dir))
    return save_local(folder / "teacher", model.eval(), data=[DATA], **meta)


def _teacher(path: Path):
    return load_teacher(f"local:{path}", quiet=True)


def _data(teacher):
    from tinyclap.data import open_dataset

    return open_dataset(DATA, teacher.audio_config)


def _student(teacher):
    from tests.distill_tiny import tiny_student_config
    from tinyclap.students import AudioStudent

    torch.manual_seed(0)
    return AudioStudent(tiny_student_config(dim=teacher.dim, dropout=False), teacher.audio_config).eval()


@pytest.fixture
def moved_run(tmp_path: Path, text_dir: Path) -> tuple[Path, Path]:
    """A run folder (teacher + cache) built at ``a/run`` and then moved to ``b/elsewhere``."""
    run = tmp_path / "a" / "run"
    _save_teacher(run, text_dir, seed=0, epoch=1)
    build_cache(_teacher(run / "teacher"), _data(_teacher(run / "teacher")), run / "cache", progress=False)
    moved = tmp_path / "b" / "elsewhere"
    moved.parent.mkdir()
    shutil.copytree(run, moved)
    shutil.rmtree(run)  # moved, not copied: nothing is left at the recorded path
    return run, moved


def test_identity_follows_content_not_path(tmp_path: Path, text_dir: Path) -> None:
    a = _teacher(_save_teacher(tmp_path / "a", text_dir, seed=0, epoch=1))
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    copy = _teacher(tmp_path / "copy" / "teacher.json")
    resaved = _teacher(_save_teacher(tmp_path / "resaved", text_dir, seed=0, epoch=7, note="metadata only"))
    other = _teacher(_save_teacher(tmp_path / "other", text_dir, seed=1, epoch=1))
    assert copy.name != a.name and copy.identity == a.identity
    assert resaved.identity == a.identity  # epoch / licence / notes are not what the teacher computes
    assert other.identity != a.identity and other.identity.startswith("local#")
    assert teacher_identity(a) == a.identity
    # A name still on disk resolves to its files' identity; a name whose files are gone does not.
    assert identity_of_name(a.name) == a.identity
    assert identity_of_name(f"local:{tmp_path / 'nowhere' / 'teacher.json'}") is None
    assert identity_of_name("msclap-2022") is None


def test_file_digest_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    path.write_bytes(b"y" * 3_000_001)  # new size (and mtime): hashed again, not served from memory
    assert file_sha256(path) == hashlib.sha256(b"y" * 3_000_001).hexdigest()


def test_moved_run_folder_reopens_and_prunes_against_its_own_cache(moved_run: tuple[Path, Path]) -> None:
    old, moved = moved_run
    teacher = _teacher(moved / "teacher")
    cache = EmbeddingCache.open(moved / "cache")
    assert cache.teacher_name == f"local:{(old / 'teacher').resolve()}"  # recorded then; gone now
    assert cache.teacher_name != teacher.name and cache.teacher_id == teacher.identity
    cache.check_teacher(teacher)
    # Re-running the cache build with the moved teacher reuses every shard and keeps the record.
    index_before = read_json(moved / "cache" / INDEX_NAME)
    again = build_cache(teacher, _data(teacher), moved / "cache", progress=False)
    assert again.config_hash == cache.config_hash and again.teacher_name == cache.teacher_name
    assert read_json(moved / "cache" / INDEX_NAME)["shards"] == index_before["shards"]
    # A bank built now, by the teacher at its new path, pairs with the cache built at the old path.
    bank = PromptBank.build(teacher, LABELS)
    assert bank.teacher == teacher.name != cache.teacher_name
    result = prune(_student(teacher), bank, 4, cache=cache)
    assert result.k == 4 and result.bank.dim == 4


def test_a_teacher_with_other_weights_is_refused(moved_run: tuple[Path, Path], text_dir: Path) -> None:
    _, moved = moved_run
    other = _teacher(_save_teacher(moved.parent / "other", text_dir, seed=1))
    cache = EmbeddingCache.open(moved / "cache")
    with pytest.raises(CacheMismatchError, match=r"not of 'local:.*other.*' \[local#"):
        cache.check_teacher(other)
    with pytest.raises(CacheMismatchError, match=r"teacher 'local:.*run.*' \[local#\w+\].*refusing to mix"):
        build_cache(other, _data(other), moved / "cache", progress=False)
    with pytest.raises(PruneError, match=r"bank was built by 'local:.*other.*' \[local#\w+\]: a different teacher"):
        prune(_student(other), PromptBank.build(other, LABELS), 4, cache=cache)


def _make_legacy(cache_dir: Path) -> str:
    """Rewrite an index as caches were written before identities: no teacher_id, the name hashed."""
    index = read_json(cache_dir / INDEX_NAME)
    del index["teacher_id"]
    audio = AudioConfig.from_dict(index["audio_config"])
    index["config_hash"] = config_hash(index["teacher"], audio, index["dim"])
    write_json(cache_dir / INDEX_NAME, index)
    return index["config_hash"]


def test_old_caches_still_open_and_match_by_name(tmp_path: Path, text_dir: Path) -> None:
    run = tmp_path / "run"
    teacher = _teacher(_save_teacher(run, text_dir, seed=0))
    build_cache(teacher, _data(teacher), run / "cache", progress=False)
    legacy_hash = _make_legacy(run / "cache")
    cache = EmbeddingCache.open(run / "cache")
    assert cache.teacher_id is None and cache.config_hash == legacy_hash
    cache.check_teacher(teacher)
    # Resuming keeps the old record (a distillation state holding the old hash still resumes).
    build_cache(teacher, _data(teacher), run / "cache", progress=False)
    index = read_json(run / "cache" / INDEX_NAME)
    assert "teacher_id" not in index and index["config_hash"] == legacy_hash
    # A copy of the run, while the original files exist, matches through them ...
    shutil.copytree(run, tmp_path / "copy")
    copied = _teacher(tmp_path / "copy" / "teacher.json")
    EmbeddingCache.open(tmp_path / "copy" / "cache").check_teacher(copied)
    # ... but once the named files are gone, an old cache can only compare names, and refuses.
    shutil.rmtree(run)
    with pytest.raises(CacheMismatchError, match="no recorded identity"):
        EmbeddingCache.open(tmp_path / "copy" / "cache").check_teacher(copied)
    with pytest.raises(CacheMismatchError, match="refusing to mix"):
        build_cache(copied, _data(copied), tmp_path / "copy" / "cache", progress=False)


def test_quickstart_resumes_in_a_moved_folder_with_its_recorded_paths(tmp_path: Path) -> None:
    from tinyclap.quickstart.options import QuickstartOptions
    from tinyclap.quickstart.pipeline import Quickstart
    from tinyclap.quickstart.steps import Step, StepRunner

    first = tmp_path / "a" / "quickstart"
    opts = QuickstartOptions(out=str(first))
    runner = StepRunner(first, opts.to_dict(), location_keys=("out",))
    runner.run([Step("student", "s", lambda: {"best": str(first / "student" / "best.json")})])
    # A record written before steps noted their folder: the options' `out` says where paths were.
    record = read_json(first / "steps.json")
    record["steps"]["old"] = {"title": "o", "seconds": 0.0, "summary": {"p": str(first / "pruned" / "s.json")}}
    write_json(first / "steps.json", record)
    moved = tmp_path / "b" / "qs"
    moved.parent.mkdir()
    shutil.move(first, moved)
    qs = Quickstart(QuickstartOptions(out=str(moved)))  # `out` changed: still the same run
    assert qs.recorded_path("student", qs.runner.summary("student")["best"]) == moved / "student" / "best.json"
    assert qs.recorded_path("old", qs.runner.summary("old")["p"]) == moved / "pruned" / "s.json"
    assert qs.recorded_path("student", "/somewhere/else.json") == Path("/somewhere/else.json")
    from tinyclap.quickstart.steps import OptionsChangedError

    with pytest.raises(OptionsChangedError, match="seed"):  # options that change results are still refused
        Quickstart(QuickstartOptions(out=str(moved), seed=3))


def test_laion_and_msclap_identities_follow_weights(tmp_path: Path) -> None:
    from transformers import BertConfig

    from tests.laion_tiny import save_tiny_clap
    from tinyclap.teachers.msclap import MSClapTeacher, build_msclap

    save_tiny_clap(tmp_path / "clap", seed=0)
    shutil.copytree(tmp_path / "clap", tmp_path / "clap-copy")
    save_tiny_clap(tmp_path / "clap-other", seed=1)
    laion = {k: load_teacher(str(tmp_path / k), quiet=True).identity for k in ("clap", "clap-copy", "clap-other")}
    assert laion["clap"] == laion["clap-copy"] != laion["clap-other"] and laion["clap"].startswith("laion#")

    def tiny_msclap(seed: int):
        torch.manual_seed(seed)
        text = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=32)
        return build_msclap("2022", text_config=text, audio_config=AudioConfig(**TINY_AUDIO), d_proj=8,
                            channels=(4, 4, 8, 8, 8, 16), out_emb=16)

    # Built in memory: the weights decide.
    assert MSClapTeacher(tiny_msclap(0), None).identity == MSClapTeacher(tiny_msclap(0), None).identity
    assert MSClapTeacher(tiny_msclap(0), None).identity != MSClapTeacher(tiny_msclap(1), None).identity
    # Loaded from a file: the file's bytes decide, wherever the file is.
    (tmp_path / "a.pth").write_bytes(b"release bytes")
    shutil.copy(tmp_path / "a.pth", tmp_path / "b.pth")
    (tmp_path / "c.pth").write_bytes(b"other release")
    ids = [MSClapTeacher(tiny_msclap(0), None, checkpoint=tmp_path / f).identity for f in ("a.pth", "b.pth", "c.pth")]
    assert ids[0] == ids[1] != ids[2] and ids[0].startswith("msclap-2022#")


def _without_teacher_id(path: Path) -> Path:
    """Rewrite a bank as banks were written before identities: the same arrays, no ``teacher_id``."""
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "teacher_id"}
    old = path.with_name(f"old-{path.name}")
    np.savez(old, **arrays)
    return old


def test_banks_record_the_identity_and_old_banks_still_load(moved_run: tuple[Path, Path]) -> None:
    _, moved = moved_run
    teacher = _teacher(moved / "teacher")
    bank = PromptBank.build(teacher, LABELS)
    assert bank.teacher_id == teacher.identity
    back = PromptBank.load(bank.save(moved / "bank.npz"))
    assert back.teacher_id == teacher.identity and back.teacher == teacher.name
    assert back.select_teacher_dims([6, 0, 3]).teacher_id == teacher.identity  # pruned banks keep it
    cache = EmbeddingCache.open(moved / "cache")
    assert prune(_student(teacher), back, 4, cache=cache).bank.teacher_id == teacher.identity
    # A pruned student saved to disk records the identity too.
    with pytest.raises(PresetError, match="out"):  # a misspelt keyword is refused, not ignored
        prune(_student(teacher), back, 4, cache=cache, out=moved / "pruned")
    prune(_student(teacher), back, 4, cache=cache, out_dir=moved / "pruned")
    saved = json.loads((moved / "pruned" / "student.json").read_text())
    assert saved["teacher_id"] == teacher.identity
    # A bank from before identities loads, and pairs with the cache through the files its name points at.
    old = PromptBank.load(_without_teacher_id(moved / "bank.npz"))
    assert old.teacher_id is None and old.teacher == teacher.name
    import numpy as np

    np.testing.assert_array_equal(old.embeddings, back.embeddings)
    assert prune(_student(teacher), old, 4, cache=cache).k == 4


def test_zeroshot_warns_for_other_weights_under_one_name_not_for_a_moved_run(tmp_path: Path, text_dir: Path) -> None:
    import warnings

    from tinyclap.demo.inference import DemoModels
    from tinyclap.distill.train import distill
    from tinyclap.students import load_student
    from tinyclap.zeroshot import ZeroShotClassifier

    run = tmp_path / "a" / "run"
    _save_teacher(run, text_dir, seed=0)
    teacher = _teacher(run / "teacher")
    cache = build_cache(teacher, _data(teacher), run / "cache", progress=False)
    result = distill(_student(teacher), cache, DATA, out_dir=run / "student", preset="quick", epochs=1,
                     batch_size=8, progress=False)
    # The checkpoint and run.json record the teacher's identity next to its name.
    assert read_json(result.last_path.with_suffix(".json"))["teacher_id"] == teacher.identity
    assert read_json(run / "student" / "run.json")["teacher_id"] == teacher.identity
    recorded = teacher.name

    moved = tmp_path / "b" / "elsewhere"
    moved.parent.mkdir()
    shutil.move(run, moved)
    student = load_student(moved / "student" / result.last_path.name)
    assert student.meta["teacher"] == recorded and student.meta["teacher_id"] == teacher.identity
    here = _teacher(moved / "teacher")
    assert here.name != recorded
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a moved run: other name, same teacher, no warning
        ZeroShotClassifier(student, PromptBank.build(here, LABELS))
        assert DemoModels(student, here).teacher_mismatch() is None

    # Other weights saved where the first teacher was: the same name, another teacher.
    _save_teacher(run, text_dir, seed=1)
    impostor = _teacher(run / "teacher")
    assert impostor.name == recorded and impostor.identity != teacher.identity
    with pytest.warns(UserWarning, match=r"distilled from 'local:.*run.*' \[local#\w+\] but the bank was built by "
                                         r"'local:.*run.*' \[local#\w+\]"):
        ZeroShotClassifier(student, PromptBank.build(impostor, LABELS))
    note = DemoModels(student, impostor).teacher_mismatch()
    assert note is not None and teacher.identity in note and impostor.identity in note
