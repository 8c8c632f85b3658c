"""Captioned corpora (Clotho on real clips; AudioCaps, MACS, FSD50K, manifests, folders on fixtures)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tinyclap.data.base as base
import tinyclap.data.index as index
from tinyclap.audio import AudioConfig, load_audio
from tinyclap.data import open_dataset
from tinyclap.data.captions import FSD50K, MACS, AudioCaps, Clotho, Manifest
from tinyclap.data.folder import Folder
from tinyclap.errors import DataError

SMALL = AudioConfig(sample_rate=8000, clip_seconds=1.0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCLAP_CACHE_DIR", str(tmp_path / "cache"))


def _wav(path: Path, seconds: float, sr: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    sf.write(path, (0.3 * np.sin(np.arange(n) * 0.07)).astype(np.float32), sr)
    return path


def test_clotho_windows_from_headers_then_from_cache(clotho_root, monkeypatch):
    cfg = AudioConfig()

    def no_decoding(*a, **k):
        raise AssertionError("indexing must not decode audio")

    monkeypatch.setattr(base, "load_audio", no_decoding)
    ds = Clotho(clotho_root, cfg)
    assert ds.splits == ["evaluation"] and len(ds.entries) == 7 and ds.missing == [] and ds.broken == []
    for k, e in enumerate(ds.entries):
        seconds = sf.info(str(e.path)).duration
        n_windows = sum(1 for g in ds.groups() if g == k)
        assert n_windows in (math.floor(seconds / 5), math.ceil(seconds / 5))  # tiny tails dropped
    first = ds.entries[0]
    assert ds.clip_id(0) == f"evaluation/{first.rel.split('/', 1)[1]}#0" and len(first.captions) == 5
    # Second index: every answer comes from the cache (soundfile.info is never asked).
    monkeypatch.setattr(index, "probe_file", no_decoding)
    again = Clotho(clotho_root, cfg, split="evaluation")
    assert again.ids == ds.ids
    monkeypatch.undo()
    ex = again[1]
    assert ex.clip_id.endswith("#1") and ex.target == first.captions[0]
    wave = load_audio(first.path, cfg.sample_rate)
    np.testing.assert_array_equal(ex.clip, wave[cfg.clip_samples : 2 * cfg.clip_samples])


def _audiocaps(tmp_path: Path) -> Path:
    root = tmp_path / "audiocaps"
    root.mkdir()
    (root / "val.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "1,abcDEF12345,30,A dog barks\n"
        "2,abcDEF12345,30,A dog is barking loudly\n"
        "3,zzzYYY00000,0,Rain falls\n"  # never downloaded
        "4,ghiJKL67890,10,Wind blows\n"
    )
    _wav(root / "val" / "abcDEF12345.wav", 2.5)  # named by youtube id
    _wav(root / "val" / "YghiJKL67890_10.000_20.000.flac", 1.05)  # AudioSet-style name; 5% tail: one window
    return root


def test_audiocaps_counts_missing_and_merges_captions(tmp_path):
    ds = open_dataset(f"audiocaps:{_audiocaps(tmp_path)}?split=val", SMALL)
    assert len(ds.entries) == 2 and len(ds.missing) == 1 and "zzzYYY00000" in ds.missing[0]
    assert ds.entries[0].captions == ("A dog barks", "A dog is barking loudly")
    assert ds.ids == ["val/abcDEF12345.wav#0", "val/abcDEF12345.wav#1", "val/abcDEF12345.wav#2",
                      "val/YghiJKL67890_10.000_20.000.flac#0"]
    assert ds[3].target == "Wind blows" and ds[3].clip.shape == (8000,)
    with pytest.raises(DataError, match="zzzYYY00000"):
        AudioCaps(tmp_path / "audiocaps", SMALL, strict=True)


def test_macs_yaml(tmp_path):
    root = tmp_path / "MACS"
    (root / "audio").mkdir(parents=True)
    (root / "MACS.yaml").write_text(
        "files:\n"
        "- filename: airport-lisbon-1-40-a.wav\n"
        "  annotations:\n"
        "  - annotator_id: 1\n    sentence: people talk in a big hall\n    tags: [adults_talking]\n"
        "  - annotator_id: 2\n    sentence: announcements echo\n    tags: [announcement_speech]\n"
        "- filename: park-paris-2-50-a.wav\n"
        "  annotations:\n"
        "  - annotator_id: 3\n    sentence: birds sing\n    tags: [birds_singing]\n"
    )
    _wav(root / "audio" / "airport-lisbon-1-40-a.wav", 1.0)
    _wav(root / "audio" / "park-paris-2-50-a.wav", 1.0)
    ds = MACS(root, SMALL)
    assert ds.class_names == ["airport", "park"] and [ds.label(i) for i in range(2)] == [0, 1]
    assert ds.captions(0) == ["people talk in a big hall", "announcements echo"] and ds[1].target == "birds sing"
    (root / "MACS.yaml").write_text("just: [a, list]\n")
    with pytest.raises(DataError, match="not MACS metadata"):
        MACS(root, SMALL)


def test_fsd50k_labels_and_captions(tmp_path):
    root = tmp_path / "FSD50K"
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    (gt / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Dog,/m/0bt9lr\n2,Rain,/m/06mb1\n")
    (gt / "dev.csv").write_text("fname,labels,mids,split\n11,\"Bark,Dog\",\"/m/05tny_,/m/0bt9lr\",train\n12,Rain,/m/06mb1,val\n")
    (root / "FSD50K.metadata").mkdir()
    (root / "FSD50K.metadata" / "dev_clips_info_FSD50K.json").write_text(json.dumps({"11": {"title": "my dog"}}))
    _wav(root / "FSD50K.dev_audio" / "11.wav", 0.5)
    _wav(root / "FSD50K.dev_audio" / "12.wav", 1.5)
    dev = FSD50K(root, SMALL)
    assert dev.class_names == ["Bark", "Dog", "Rain"] and dev.ids[0] == "FSD50K.dev_audio/11.wav#0"
    assert dev.captions(0) == ["Bark, Dog", "my dog"] and dev.labels(0) == [0, 1] and dev.label(0) == 0
    val = open_dataset(f"fsd50k:{root}?split=val&target=label", SMALL)
    assert len(val.entries) == 1 and val[0].target == 2 and len(val) == 2  # 1.5 s → two 1 s windows


def test_manifest_csv_and_jsonl(tmp_path):
    _wav(tmp_path / "a.wav", 1.0)
    _wav(tmp_path / "sub" / "b.wav", 2.0)
    (tmp_path / "list.csv").write_text("path,caption,label\na.wav,a hum,hum\nsub/b.wav,a buzz,buzz\nnope.wav,x,hum\n")
    ds = Manifest(tmp_path / "list.csv", SMALL)
    assert ds.class_names == ["buzz", "hum"] and ds.ids == ["a.wav#0", "sub/b.wav#0", "sub/b.wav#1"]
    assert ds[0].target == "a hum" and ds.label(1) == 0 and len(ds.missing) == 1
    lines = [{"path": str(tmp_path / "a.wav"), "caption": ["one", "two"]}, {"path": "sub/b.wav"}]
    (tmp_path / "list.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    js = open_dataset(f"manifest:{tmp_path / 'list.jsonl'}", SMALL)
    assert js.captions(0) == ["one", "two"] and js.captions(1) == [] and js.class_names is None
    (tmp_path / "bad.jsonl").write_text('{"file": "a.wav"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1"):
        Manifest(tmp_path / "bad.jsonl", SMALL)


def test_folder_labels_from_subfolders(tmp_path):
    _wav(tmp_path / "dog_bark" / "1.wav", 1.0)
    _wav(tmp_path / "dog_bark" / "x" / "2.wav", 1.0)
    _wav(tmp_path / "siren" / "3.wav", 0.4)
    (tmp_path / "siren" / "notes.txt").write_text("not audio")
    ds = Folder(tmp_path, SMALL)
    assert ds.class_names == ["dog bark", "siren"] and [ds[i].target for i in range(3)] == [0, 0, 1]
    assert ds.ids == ["dog_bark/1.wav#0", "dog_bark/x/2.wav#0", "siren/3.wav#0"]
    _wav(tmp_path / "loose.wav", 1.0)
    assert Folder(tmp_path, SMALL).class_names is None  # auto: not every file is in a folder
    with pytest.raises(DataError, match="loose.wav"):
        open_dataset(f"folder:{tmp_path}?labels=true", SMALL)
