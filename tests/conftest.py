"""Shared fixtures: real recordings from ../shared/data (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests are tiny; extra threads only contend on a 2-core CI machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TINYCLAP_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real recordings not found at {path} (set TINYCLAP_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def esc10_root() -> Path:
    """ESC-50 layout holding the 400 ESC-10 clips (Ogg)."""
    return _shared("esc10")


@pytest.fixture(scope="session")
def us8k_root() -> Path:
    """UrbanSound8K layout with 20 slices."""
    return _shared("us8k-mini/UrbanSound8K")


@pytest.fixture(scope="session")
def clotho_root() -> Path:
    """Clotho layout with 7 captioned clips."""
    return _shared("clotho-mini")


@pytest.fixture(scope="session")
def esc10_files(esc10_root: Path) -> list[Path]:
    files = sorted((esc10_root / "audio").glob("*.ogg"))
    if not files:
        pytest.skip("no ESC-10 audio found")
    return files
