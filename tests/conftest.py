"""Shared fixtures: real recordings from ../shared/data, or generated stand-ins where that folder is absent.

A user's clone has no ``../shared``: there the dataset fixtures build, once per
session, procedural datasets in the same layouts (tests/fallback_data.py), so
the tests that read recordings still run. ``TINYCLAP_SHARED_DATA`` points at
another copy (``TINYCLAP_SHARED_DATA=/nonexistent`` simulates a user's clone).
``fallback_data.is_generated(root)`` tells a test which kind it got, for the
few thresholds that were measured on one kind only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

import fallback_data

# Tests are tiny; extra threads only contend on a 2-core CI machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TINYCLAP_SHARED_DATA", REPO.parent / "shared" / "data"))
AUDIO_SUFFIXES = (".ogg", ".wav", ".flac")


def _dataset(tmp_path_factory: pytest.TempPathFactory, sub: str, name: str, make) -> Path:  # noqa: ANN001
    """``SHARED_DATA/sub`` when it exists, else the generated stand-in (built on first use)."""
    path = SHARED_DATA / sub
    if path.exists():
        return path
    root = tmp_path_factory.getbasetemp() / "generated-data" / name
    if not (root / fallback_data.MARKER).is_file():  # the marker is written last: a complete stand-in
        shutil.rmtree(root, ignore_errors=True)  # a build interrupted in an earlier session
        make(root)
    return root


@pytest.fixture(scope="session")
def esc10_root(tmp_path_factory) -> Path:
    """ESC-50 layout holding 400 ESC-10 clips (real: Ogg; generated: WAV)."""
    return _dataset(tmp_path_factory, "esc10", "esc10", fallback_data.make_esc10)


@pytest.fixture(scope="session")
def us8k_root(tmp_path_factory) -> Path:
    """UrbanSound8K layout with 20 slices."""
    return _dataset(tmp_path_factory, "us8k-mini/UrbanSound8K", "us8k-mini/UrbanSound8K", fallback_data.make_us8k)


@pytest.fixture(scope="session")
def clotho_root(tmp_path_factory) -> Path:
    """Clotho layout with 7 captioned clips."""
    return _dataset(tmp_path_factory, "clotho-mini", "clotho-mini", fallback_data.make_clotho)


@pytest.fixture(scope="session")
def esc10_files(esc10_root: Path) -> list[Path]:
    files = sorted(p for p in (esc10_root / "audio").iterdir() if p.suffix in AUDIO_SUFFIXES)
    if not files:
        pytest.skip(f"no ESC-10 audio found in {esc10_root / 'audio'}")
    return files
