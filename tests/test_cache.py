"""Teacher-embedding cache: contents, sharding, resume, refusals, verification, dims selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import Subset

from distill_tiny import one_thread  # noqa: F401 - fixture
from distill_tiny import TINY_AUDIO, ProjTeacher, synth
from tinyclap.distill.cache import (
    CacheError,
    CacheMismatchError,
    EmbeddingCache,
    build_cache,
    config_hash,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _clips(ds, idx):
    return np.stack([ds[i].clip for i in idx])


def test_cache_holds_the_teachers_unit_embeddings_in_dataset_order(tmp_path: Path) -> None:
    ds = synth(23)
    teacher = ProjTeacher()
    cache = build_cache(teacher, ds, tmp_path / "c", batch_size=4, shard_size=10, progress=False)
    assert len(cache) == 23 and cache.embeddings.shape == (23, teacher.dim)
    assert cache.ids == ds.ids
    assert sorted(p.name for p in (tmp_path / "c").glob("shard-*.npy")) == [f"shard-0000{k}.npy" for k in range(3)]
    expected = teacher.embed_audio(_clips(ds, range(23))).numpy()
    np.testing.assert_allclose(np.asarray(cache.embeddings), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(cache.embeddings), axis=1), 1.0, atol=1e-5)
    # lookup follows the order asked for, across shard boundaries
    ids = [ds.ids[21], ds.ids[3], ds.ids[12]]
    np.testing.assert_allclose(cache.lookup(ids).numpy(), expected[[21, 3, 12]], atol=1e-5)
    assert cache.teacher_name == "test-proj" and cache.audio_config == TINY_AUDIO
    assert cache.config_hash == config_hash("test-proj", TINY_AUDIO, teacher.dim)
    # the sharded view indexes like an (N, D) array
    np.testing.assert_allclose(cache.embeddings[5:15], expected[5:15], atol=1e-5)
    np.testing.assert_allclose(cache.embeddings[[22, 0], [1, 2]], expected[[22, 0]][:, [1, 2]], atol=1e-5)
    np.testing.assert_allclose(cache.embeddings[-1], expected[-1], atol=1e-5)
    # shards are memory maps, reopened identically
    again = EmbeddingCache.open(tmp_path / "c")
    assert isinstance(again.embeddings.shards[0], np.memmap)
    assert again.ids == cache.ids
    with pytest.raises(CacheError, match="no teacher embedding for clip 'nope#0'"):
        cache.lookup(["nope#0"])


def test_multi_window_clip_ids_from_real_recordings(tmp_path: Path, esc10_root: Path) -> None:
    from tinyclap.data import open_dataset

    one_second = TINY_AUDIO.with_seconds(1.0)
    ds = open_dataset(f"esc10:{esc10_root}?windows=true", one_second)
    part = Subset(ds, range(7))  # 5 s files cut into 1 s windows: a file's windows #0..#4, then the next file
    cache = build_cache(ProjTeacher(audio_config=one_second), part, tmp_path / "c", batch_size=4, progress=False)
    assert [i.rsplit("#", 1)[1] for i in cache.ids] == ["0", "1", "2", "3", "4", "0", "1"]
    assert cache.ids[0].endswith((".ogg#0", ".wav#0"))  # real copy: Ogg; generated stand-in: WAV
    rows = np.asarray(cache.embeddings)
    # the dog barks in the third second of the first file: that window is embedded differently
    assert not np.allclose(rows[0], rows[2], atol=1e-3)


class Interrupting(ProjTeacher):
    """Raises KeyboardInterrupt on the n-th forward pass (a Ctrl-C mid-build)."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def embed_audio(self, clips):
        if self.calls + 1 == self.after:
            raise KeyboardInterrupt
        return super().embed_audio(clips)


def test_interrupted_build_keeps_finished_shards_and_resumes(tmp_path: Path) -> None:
    ds = synth(20)
    out = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        build_cache(Interrupting(after=4), ds, out, batch_size=4, shard_size=8, progress=False)  # 2 batches/shard
    assert (out / "shard-00000.ids.json").is_file() and not (out / "shard-00001.ids.json").exists()
    assert not list(out.glob(".*.tmp"))  # nothing half-written
    with pytest.raises(CacheError, match=r"incomplete \(1 of 3 shards\)"):
        EmbeddingCache.open(out)
    resumed = ProjTeacher()
    cache = build_cache(resumed, ds, out, batch_size=4, shard_size=8, progress=False)
    assert resumed.calls == 3  # shard 1 (2 batches) + shard 2 (1 batch); shard 0 was kept
    clean = build_cache(ProjTeacher(), ds, tmp_path / "clean", batch_size=4, shard_size=8, progress=False)
    np.testing.assert_array_equal(np.asarray(cache.embeddings), np.asarray(clean.embeddings))
    assert cache.ids == clean.ids
    again = ProjTeacher()
    build_cache(again, ds, out, batch_size=4, shard_size=8, progress=False)  # complete: nothing to do
    assert again.calls == 0


def test_refuses_to_mix_teachers_front_ends_or_data(tmp_path: Path) -> None:
    ds = synth(6)
    out = tmp_path / "c"
    build_cache(ProjTeacher(), ds, out, batch_size=4, progress=False)
    with pytest.raises(CacheMismatchError, match="teacher 'test-proj'.*refusing to mix"):
        build_cache(ProjTeacher(name="other-teacher"), ds, out, progress=False)
    longer = TINY_AUDIO.with_seconds(1.0)
    with pytest.raises(CacheMismatchError, match="another front end"):
        build_cache(ProjTeacher(audio_config=longer), synth(6, audio_config=longer), out, progress=False)
    with pytest.raises(CacheMismatchError, match="other data"):
        build_cache(ProjTeacher(), synth(7), out, batch_size=4, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="not an embedding cache"):
        build_cache(ProjTeacher(), ds, tmp_path / "junk", progress=False)


def test_teacher_at_another_sample_rate_is_refused(tmp_path: Path) -> None:
    other = ProjTeacher(audio_config=TINY_AUDIO.__class__(sample_rate=16000, clip_seconds=0.5, n_fft=256,
                                                          win_length=256, hop_length=128, n_mels=16, fmax=7000.0))
    with pytest.raises(CacheError, match="8000 Hz but teacher"):
        build_cache(other, synth(4), tmp_path / "c", progress=False)


def test_open_verifies_shapes_and_counts(tmp_path: Path) -> None:
    out = tmp_path / "c"
    build_cache(ProjTeacher(), synth(10), out, batch_size=4, shard_size=5, progress=False)
    np.save(out / "shard-00001.npy", np.zeros((4, 12), np.float32))  # a row short
    with pytest.raises(CacheError, match=r"shard-00001.npy: 4 rows but 5 ids"):
        EmbeddingCache.open(out)
    np.save(out / "shard-00001.npy", np.zeros((5, 11), np.float32))  # wrong width
    with pytest.raises(CacheError, match=r"shape \(5, 11\), expected \(n, 12\)"):
        EmbeddingCache.open(out)
    (out / "shard-00001.npy").unlink()
    with pytest.raises(CacheError, match="shard missing"):
        EmbeddingCache.open(out)
    with pytest.raises(CacheError, match="not an embedding cache"):
        EmbeddingCache.open(tmp_path)


def test_select_dims_renormalises_the_kept_columns(tmp_path: Path) -> None:
    ds = synth(5)
    cache = build_cache(ProjTeacher(), ds, tmp_path / "c", progress=False)
    dims = [7, 0, 3, 11]
    view = cache.select(dims)
    assert view.dim == 4 and cache.dim == 12 and view.kept_dims == dims
    full = cache.lookup(ds.ids).numpy()[:, dims]
    np.testing.assert_allclose(view.lookup(ds.ids).numpy(), full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(CacheError, match="out of range"):
        cache.select([12])
    with pytest.raises(CacheError, match="repeated"):
        cache.select([1, 1])


def test_cli_info_describes_a_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tinyclap.cli import main

    build_cache(ProjTeacher(), synth(5), tmp_path / "c", progress=False)
    assert main(["cache", "--out", str(tmp_path / "c"), "--info"]) == 0
    line = capsys.readouterr().out
    assert "5 embeddings x 12 from teacher 'test-proj'" in line and "complete" in line
    index = json.loads((tmp_path / "c" / "cache.json").read_text())
    assert index["audio_config"] == TINY_AUDIO.to_dict() and index["complete"] is True


def test_cli_builds_a_cache_with_a_registry_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tinyclap cache` end to end: a tiny LAION ClapModel folder through load_teacher, 1 s windows."""
    from laion_tiny import PROJECTION_DIM, save_tiny_clap

    from tinyclap.cli import main
    from tinyclap.data import open_dataset
    from tinyclap.teachers.registry import load_teacher

    folder = save_tiny_clap(tmp_path / "clap")
    argv = ["cache", "--teacher", str(folder), "--data", "synth?n=5&seed=2", "--out", str(tmp_path / "c"),
            "--clip-seconds", "1", "--batch-size", "2", "--shard-size", "3", "--no-progress"]
    assert main(argv) == 0
    assert "5 embeddings x 12" in capsys.readouterr().out and PROJECTION_DIM == 12
    cache = EmbeddingCache.open(tmp_path / "c")
    teacher = load_teacher(str(folder), quiet=True)
    assert cache.teacher_name == teacher.name and cache.audio_config == teacher.audio_config.with_seconds(1.0)
    ds = open_dataset("synth?n=5&seed=2", cache.audio_config)
    np.testing.assert_allclose(np.asarray(cache.embeddings), teacher.embed_audio(_clips(ds, range(5))).numpy(),
                               atol=1e-5)
