"""`tinyclap data`: describing specs and scanning for broken files."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf

from tinyclap.audio import AudioDecodeError
from tinyclap.cli import data as data_verb


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCLAP_CACHE_DIR", str(tmp_path / "cache"))


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_verb.register(parser.add_subparsers())
    args = parser.parse_args(["data", *argv])
    return args.func(args)


def test_describe_and_scan_a_folder_with_a_nan_file(tmp_path, capsys):
    root = tmp_path / "sounds"
    (root / "hum").mkdir(parents=True)
    sf.write(root / "hum" / "ok.wav", np.full(4000, 0.1, np.float32), 8000)
    sf.write(root / "hum" / "nan.wav", np.full(4000, np.nan, np.float32), 8000, subtype="FLOAT")
    assert _run([f"folder:{root}", "--sample-rate", "8000", "--clip-seconds", "0.5", "--scan"]) == 0
    out = capsys.readouterr().out
    assert "Folder, 2 items from 2 files" in out and "1 classes: hum" in out
    assert "scanned: 1 of 2 items readable" in out and "nan.wav" in out and "NaN" in out
    with pytest.raises(AudioDecodeError, match="nan.wav"):
        _run([f"folder:{root}", "--sample-rate", "8000", "--clip-seconds", "0.5", "--scan", "--strict"])


def test_describe_synth(capsys):
    assert _run(["synth?n=3&seed=1", "--sample-rate", "8000", "--clip-seconds", "0.5", "--show", "2"]) == 0
    out = capsys.readouterr().out
    assert "Synth, 3 items" in out and out.count("synth-s1/") == 2 and "no broken files" in out
