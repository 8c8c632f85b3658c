"""ESC-50 / ESC-10 on the shared real copy, and the spec parser."""

from __future__ import annotations

import numpy as np
import pytest

from tinyclap.audio import AudioConfig, load_audio
from tinyclap.data import open_dataset, parse_spec
from tinyclap.data.esc50 import ESC50
from tinyclap.errors import DataError

CFG = AudioConfig()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCLAP_CACHE_DIR", str(tmp_path / "cache"))


def test_esc10_classes_labels_and_clips(esc10_root):
    ds = ESC50(esc10_root, CFG)
    assert len(ds) == 400 and ds.broken == []
    assert ds.class_names == [
        "dog", "rooster", "rain", "sea waves", "crackling fire",
        "crying baby", "sneezing", "clock tick", "helicopter", "chainsaw",
    ]
    assert [ds.esc50_target(k) for k in range(10)] == [0, 1, 10, 11, 12, 20, 21, 38, 40, 41]
    ex = ds[0]
    assert ex.clip.shape == (CFG.clip_samples,) and ex.clip.dtype == np.float32
    assert ex.clip_id.endswith((".ogg#0", ".wav#0"))  # real copy: Ogg; generated stand-in: WAV
    target = int(ex.clip_id.split("-")[-1].split(".")[0])  # ESC-50 names end in the class id
    assert ds.esc50_target(ex.target) == target
    assert ds.captions(0) == [ds.class_names[ex.target]]
    wave = load_audio(esc10_root / "audio" / ex.clip_id[:-2], CFG.sample_rate)
    np.testing.assert_array_equal(ex.clip, wave[(len(wave) - CFG.clip_samples) // 2 :][: CFG.clip_samples])


def test_folds_via_spec(esc10_root):
    ds = open_dataset(f"esc50:{esc10_root}?folds=1,2", CFG)
    assert len(ds) == 160 and ds.folds == [1, 2]
    assert all(ds.entry(i).rel.split("-")[0] in ("1", "2") for i in range(len(ds)))
    assert len(open_dataset(f"esc10:{esc10_root}?folds=5", CFG)) == 80
    with pytest.raises(DataError, match="no such fold"):
        open_dataset(f"esc50:{esc10_root}?folds=7", CFG)


def test_spec_errors():
    assert parse_spec("synth?n=20&seed=2&strict=true") == ("synth", None, {"n": 20, "seed": 2, "strict": True})
    assert parse_spec("esc50:/a/b?folds=1,2") == ("esc50", "/a/b", {"folds": "1,2"})
    with pytest.raises(DataError, match="unknown dataset"):
        open_dataset("nope:/x")
    with pytest.raises(DataError, match="unknown option"):
        open_dataset("synth?colour=red")
    with pytest.raises(DataError, match="needs a root"):
        open_dataset("esc50")
    with pytest.raises(DataError, match="missing meta/esc50.csv"):
        open_dataset("esc50:/nonexistent")
