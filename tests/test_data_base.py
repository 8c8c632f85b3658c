"""Shared dataset machinery: windows, broken files, collate, loaders with workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyclap.audio import AudioConfig, AudioDecodeError
from tinyclap.data import Example, Skipped, aggregate_windows, broken_report, collate, make_loader
from tinyclap.data.base import AudioDataset, Entry, plan_windows
from tinyclap.data.index import probe_files

CFG = AudioConfig(sample_rate=8000, clip_seconds=1.0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCLAP_CACHE_DIR", str(tmp_path / "cache"))


class Files(AudioDataset):
    """A minimal dataset over a list of files, as subclasses build one."""

    def __init__(self, root: Path, names: list[str], **kw):
        super().__init__(CFG, **kw)
        self._build([Entry(root / n, n, label=k) for k, n in enumerate(names)])


def _wav(path: Path, seconds: float, sr: int = 8000, value: float | None = None) -> Path:
    n = int(round(seconds * sr))
    data = np.full(n, value, np.float32) if value is not None else np.sin(np.arange(n) * 0.05).astype(np.float32) * 0.5
    sf.write(path, data, sr, subtype="FLOAT")
    return path


def test_plan_windows_drops_only_tiny_tails():
    n = 100
    assert plan_windows(250, n) == [0, 100, 150]  # 50% new audio: kept, aligned to the end
    assert plan_windows(203, n) == [0, 100]  # 3% of a hop: dropped
    assert plan_windows(80, n) == [0]
    assert plan_windows(300, n, hop=50) == [0, 50, 100, 150, 200]


def _broken_set(tmp_path: Path) -> list[str]:
    _wav(tmp_path / "good.wav", 1.0)
    _wav(tmp_path / "long.wav", 2.5)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 40)
    _wav(tmp_path / "nan.wav", 1.0, value=float("nan"))
    return ["good.wav", "long.wav", "empty.wav", "junk.wav", "nan.wav", "missing.wav"]


def test_broken_files_are_skipped_counted_and_reported(tmp_path):
    ds = Files(tmp_path, _broken_set(tmp_path), windows=True)
    # Header probing catches empty and junk files up front; absent ones are "missing".
    assert sorted(Path(b.path).name for b in ds.broken) == ["empty.wav", "junk.wav"]
    assert [Path(m).name for m in ds.missing] == ["missing.wav"]
    ids = ds.ids
    assert ids == ["good.wav#0", "long.wav#0", "long.wav#1", "long.wav#2", "nan.wav#0"]
    items = [ds[i] for i in range(len(ds))]
    # NaN samples are only visible on reading: a Skipped marker, and the file is recorded.
    assert isinstance(items[-1], Skipped) and "NaN" in items[-1].reason
    assert all(isinstance(x, Example) for x in items[:-1])
    assert len(ds.broken) == 3
    report = broken_report(ds)
    assert "skipped 3 broken files" in report and "nan.wav" in report
    assert "1 listed file not found" in report and "missing.wav" in report


def test_windows_cover_the_file_and_are_exact(tmp_path):
    path = _wav(tmp_path / "long.wav", 2.5)
    wave, _ = sf.read(path, dtype="float32")
    ds = Files(tmp_path, ["long.wav"], windows=True)
    clips = [ds[i].clip for i in range(len(ds))]
    assert all(c.shape == (8000,) and c.dtype == np.float32 for c in clips)
    np.testing.assert_array_equal(clips[1], wave[8000:16000])
    np.testing.assert_array_equal(clips[2], wave[-8000:])  # last window aligned to the end
    assert ds.groups() == [0, 0, 0]


def test_strict_raises_naming_the_file(tmp_path):
    names = _broken_set(tmp_path)
    with pytest.raises(AudioDecodeError, match="empty.wav"):
        Files(tmp_path, names, strict=True)
    ds = Files(tmp_path, ["good.wav", "nan.wav"], strict=True)
    with pytest.raises(AudioDecodeError, match="nan.wav"):
        ds[1]


def test_loader_with_workers_reports_broken_files_back(tmp_path):
    names = _broken_set(tmp_path)
    ds = Files(tmp_path, names, windows=True)
    assert len(ds.broken) == 2  # nan.wav not known yet
    loader = make_loader(ds, batch_size=2, num_workers=2)
    seen = []
    for clips, targets, ids in loader:
        assert clips.dtype == torch.float32 and clips.shape == (len(ids), 8000)
        assert len(targets) == len(ids)
        seen += ids
    assert seen == ["good.wav#0", "long.wav#0", "long.wav#1", "long.wav#2"]
    # Found inside a worker process, reported to the main one through the batch.
    assert any(Path(b.path).name == "nan.wav" for b in ds.broken)


def test_collate_drops_broken_and_keeps_order():
    a = Example(np.zeros(4, np.float32), 1, "a#0")
    b = Example(np.ones(4, np.float32), "cap", "b#0")
    batch = collate([a, Skipped("x#0", "x.wav", "bad"), b])
    assert batch.ids == ["a#0", "b#0"] and batch.targets == [1, "cap"]
    assert batch.clips.shape == (2, 4) and float(batch.clips[1].sum()) == 4.0
    assert [s.path for s in batch.broken] == ["x.wav"]


def test_aggregate_windows_means_per_group():
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.4], [5.0, 5.0]])
    out, keys = aggregate_windows(scores, [0, 0, 2, 1])
    assert keys.tolist() == [0, 1, 2]
    np.testing.assert_allclose(out, [[0.5, 0.5], [5.0, 5.0], [0.2, 0.4]])
    mx, _ = aggregate_windows(scores, [0, 0, 2, 1], how="max")
    np.testing.assert_allclose(mx[0], [1.0, 1.0])


def test_probe_cache_is_reused_and_invalidated(tmp_path):
    path = _wav(tmp_path / "a.wav", 1.0)
    cache = tmp_path / "info.json"
    first = probe_files([path], cache=cache)[str(path)]
    assert first.frames == 8000 and first.error is None and cache.is_file()
    _wav(path, 2.0)  # rewritten: size/mtime change, so the cache must not answer
    again = probe_files([path], cache=cache)[str(path)]
    assert again.frames == 16000
