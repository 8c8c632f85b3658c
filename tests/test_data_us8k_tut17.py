"""UrbanSound8K on the shared mini copy; TUT17 on fixtures written in its documented layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinyclap.audio import AudioConfig, load_audio
from tinyclap.data import aggregate_windows, open_dataset
from tinyclap.data.tut17 import TUT17
from tinyclap.data.us8k import UrbanSound8K
from tinyclap.errors import DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCLAP_CACHE_DIR", str(tmp_path / "cache"))


def test_us8k_official_labels_and_repeat_padding(us8k_root):
    cfg = AudioConfig()
    ds = UrbanSound8K(us8k_root, cfg)
    assert len(ds) == 20 and ds.broken == []
    assert ds.class_names[1] == "car horn" and len(ds.class_names) == 10
    i = next(k for k in range(len(ds)) if ds.entry(k).rel.startswith("fold10/"))
    ex = ds[i]
    assert ex.target == 1 and ex.clip_id.startswith("fold10/") and ex.clip_id.endswith(".wav#0")
    wave = load_audio(ds.entry(i).path, cfg.sample_rate)
    assert len(wave) < cfg.clip_samples
    np.testing.assert_array_equal(ex.clip[: len(wave)], wave)
    np.testing.assert_array_equal(ex.clip[len(wave) : 2 * len(wave)], wave[: cfg.clip_samples - len(wave)][: len(wave)])
    zero = open_dataset(f"us8k:{us8k_root}?folds=10&pad=zero", cfg)
    assert len(zero) == 3 and not np.any(zero[0].clip[-100:])


SCENES = ["beach", "bus", "cafe/restaurant", "city_center"]


def _scene(path: Path, seconds: float, sr: int, freq: float) -> None:
    t = np.arange(int(seconds * sr)) / sr
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    right = 0.25 * np.sin(2 * np.pi * freq * 2 * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([left, right], 1).astype(np.float32), sr)  # stereo, PCM16


@pytest.fixture
def tut_dev(tmp_path) -> Path:
    """A TUT17 development package: 8 scenes of 2.5 s, 16 kHz stereo, two folds."""
    root = tmp_path / "TUT-acoustic-scenes-2017-development"
    names = [f"audio/{chr(97 + k)}{k:03d}_0_10.wav" for k in range(8)]
    labels = [SCENES[k % 4] for k in range(8)]
    for k, name in enumerate(names):
        _scene(root / name, 2.5, 16000, 200.0 * (k + 1))
    (root / "meta.txt").write_text("".join(f"{n}\t{s}\t{n[6:10]}\n" for n, s in zip(names, labels)))
    setup = root / "evaluation_setup"
    setup.mkdir()
    for fold in (1, 2):
        ev = set(range(fold - 1, 8, 4))
        (setup / f"fold{fold}_train.txt").write_text(
            "".join(f"{names[k]}\t{labels[k]}\n" for k in range(8) if k not in ev))
        (setup / f"fold{fold}_evaluate.txt").write_text("".join(f"{names[k]}\t{labels[k]}\n" for k in sorted(ev)))
        (setup / f"fold{fold}_test.txt").write_text("".join(f"{names[k]}\n" for k in sorted(ev)))
    return root


def test_tut17_windows_groups_and_labels(tut_dev):
    cfg = AudioConfig(sample_rate=8000, clip_seconds=1.0)
    ds = TUT17(tut_dev, cfg, split="evaluate", fold=1)
    # 2 scenes of 2.5 s → windows at 0, 1 and 1.5 s each.
    assert ds.ids == [f"audio/{n}#{w}" for n in ("a000_0_10.wav", "e004_0_10.wav") for w in range(3)]
    assert ds.groups() == [0, 0, 0, 1, 1, 1]
    assert ds.class_names[:4] == ["beach", "bus", "cafe/restaurant", "car"] and len(ds.class_names) == 15
    assert [ds[i].target for i in range(len(ds))] == [0] * 6  # both are beach (k % 4 == 0)
    wave = load_audio(tut_dev / "audio/a000_0_10.wav", 8000)  # stereo averaged to mono
    np.testing.assert_allclose(ds[1].clip, wave[8000:16000])
    train = TUT17(tut_dev, cfg, split="train", fold=2)
    assert len(train.entries) == 6 and {train.label(i) for i in range(len(train))} == {0, 2, 4}  # fold 2 evaluates the two bus scenes
    test = open_dataset(f"tut17:{tut_dev}?split=test&fold=2", cfg)
    assert test.group_labels() == [1, 1]  # labels looked up in meta.txt
    # Aggregation: per-window scores → per-scene scores.
    scores = np.zeros((len(ds), 15))
    scores[[0, 1, 2], 3] = 1.0
    scores[[3, 4, 5], 0] = [1.0, 0.2, 0.9]
    per_file, files = aggregate_windows(scores, ds.groups())
    assert per_file.argmax(1).tolist() == [3, 0] and files.tolist() == [0, 1]


def test_tut17_real_format_gives_two_windows(tmp_path):
    root = tmp_path / "eval"
    _scene(root / "audio" / "x1.wav", 10.0, 44100, 440.0)  # 10 s, 44.1 kHz, stereo
    (root / "evaluation_setup").mkdir()
    (root / "evaluation_setup" / "test.txt").write_text("x1.wav\n")  # bare name: found in audio/
    ds = TUT17(root, AudioConfig(), split="test")
    assert ds.ids == ["audio/x1.wav#0", "audio/x1.wav#1"] and ds.label(0) is None
    assert ds[1].clip.shape == (220500,)


def test_tut17_errors(tut_dev):
    with pytest.raises(DataError, match="fold9_evaluate"):
        TUT17(tut_dev, split="evaluate", fold=9)
    (tut_dev / "evaluation_setup" / "fold1_evaluate.txt").write_text("audio/a000_0_10.wav\tspace_station\n")
    with pytest.raises(DataError, match="space_station"):
        TUT17(tut_dev, split="evaluate", fold=1)
