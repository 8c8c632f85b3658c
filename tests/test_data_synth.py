"""The generated corpus: deterministic, balanced, distinct families, honest captions."""

from __future__ import annotations

import numpy as np
import pytest

from tinyclap.audio import AudioConfig
from tinyclap.data import open_dataset
from tinyclap.data.synth import FAMILIES, Synth, render

CFG = AudioConfig(sample_rate=16000, clip_seconds=2.0)


def test_same_seed_same_bits_and_independent_of_n():
    a = Synth(20, seed=3, audio_config=CFG)
    b = Synth(5, seed=3, audio_config=CFG)
    for i in range(5):
        assert np.array_equal(a[i].clip, b[i].clip)
        assert a[i].clip_id == b[i].clip_id and a[i].target == b[i].target
    c = Synth(5, seed=4, audio_config=CFG)
    assert not np.array_equal(a[0].clip, c[0].clip)


def test_clips_are_valid_audio():
    ds = Synth(len(FAMILIES), seed=0, audio_config=CFG)
    for i in range(len(ds)):
        ex = ds[i]
        assert ex.clip.shape == (CFG.clip_samples,) and ex.clip.dtype == np.float32
        assert np.all(np.isfinite(ex.clip)) and np.abs(ex.clip).max() <= 1.0
        assert np.abs(ex.clip).max() > 0.04  # every sound is audible
    assert sorted(ds.sound(i).family for i in range(len(ds))) == sorted(FAMILIES)  # balanced blocks


def test_held_out_families_keep_ids_and_audio():
    full = Synth(60, seed=1, audio_config=CFG, target="label")
    held = Synth(10, seed=1, audio_config=CFG, exclude=["bell", "dog bark"], target="label")
    assert "bell" not in held.class_names and len(held.class_names) == len(FAMILIES) - 2
    by_id = {full.clip_id(i): i for i in range(len(full))}
    for i in range(len(held)):
        ex = held[i]
        assert held.class_names[ex.target] not in ("bell", "dog bark")
        j = by_id[ex.clip_id]  # same id, same audio, whatever the subset
        assert np.array_equal(full[j].clip, ex.clip)
        assert full.class_names[full[j].target] == held.class_names[ex.target]
    only = open_dataset("synth?n=4&families=bell,siren&target=label", CFG)
    assert only.class_names == ["siren", "bell"] and {only[i].target for i in range(4)} == {0, 1}


def test_captions_speak_the_attributes():
    for i in range(40):
        s = render(7, i, CFG)
        full = s.captions[0]
        assert len(s.captions) == 3
        if s.attributes["loudness"] != "medium":
            words = {"loud": ("loud", "booming", "high volume", "up close"), "quiet": ("quiet", "soft", "faint", "low volume", "distance")}
            assert any(w in full for w in words[s.attributes["loudness"]]), full
        if s.attributes.get("repetitions") == 2:
            assert "twice" in full or "two times" in full, full
        if s.attributes.get("duration") == "short" and s.attributes["active_seconds"] > 0:
            assert any(w in full for w in ("short", "brief", "moment")), full
        assert s.attributes["active_seconds"] <= CFG.clip_seconds


def _band_energy(clip: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(clip)) ** 2
    freqs = np.fft.rfftfreq(len(clip), 1 / sr)
    return float((spec * freqs).sum() / spec.sum())  # spectral centroid


def test_pitch_attribute_moves_the_spectrum():
    lows, highs = [], []
    for i in range(200):
        s = render(0, i, CFG)
        if s.family in ("tone", "siren", "bell") and s.attributes["pitch"] in ("low", "high"):
            (lows if s.attributes["pitch"] == "low" else highs).append(_band_energy(s.audio, CFG.sample_rate))
    assert lows and highs
    assert np.median(highs) > 2 * np.median(lows)


def test_families_are_distinct_in_features():
    # Nearest-centroid on coarse spectral features separates the families well
    # above chance: a sanity check that they are not the same sound relabelled.
    ds = Synth(len(FAMILIES) * 6, seed=2, audio_config=CFG, target="label")

    def feats(x: np.ndarray) -> np.ndarray:
        frames = x[: len(x) // 512 * 512].reshape(-1, 512)
        spec = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) ** 2
        energy = np.log(spec.sum(1) + 1e-10)
        active = energy > energy.max() - np.log(1e3)  # frames within 30 dB of the peak
        bands = np.log(spec[:, :256].reshape(len(spec), 16, -1).sum(-1) + 1e-10)
        shape = (bands - bands.max(1, keepdims=True))[active]
        flux = np.abs(np.diff(energy[active])).mean() if active.sum() > 1 else 0.0
        return np.concatenate([shape.mean(0), shape.std(0), [flux, active.mean()]])

    X = np.stack([feats(ds[i].clip) for i in range(len(ds))])
    y = np.array([ds[i].target for i in range(len(ds))])
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    correct = 0
    for i in range(len(X)):  # leave-one-out nearest centroid
        mask = np.arange(len(X)) != i
        cents = np.stack([X[mask & (y == c)].mean(0) for c in range(len(FAMILIES))])
        correct += int(np.argmin(((cents - X[i]) ** 2).sum(1)) == y[i])
    assert correct / len(X) > 0.5, correct / len(X)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown synth families"):
        Synth(3, families=["unicorn"])
