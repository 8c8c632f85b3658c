"""Loading the TFLite toolchain (litert-torch, which imports torchao) prints none of torchao's import noise."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed")
def test_require_tflite_prints_no_torchao_noise() -> None:
    # A fresh interpreter: torchao logs on its first import only.
    code = (
        "import logging, sys\n"
        "from tinyclap.export.quantize import require_tflite\n"
        "require_tflite()\n"
        "logging.getLogger('torchao').warning('Failed to quantize layer 3')\n"  # real torchao problems still show
        "print('torchao' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert proc.stdout.split()[0] == "True"  # torchao really was imported, so its messages had their chance
    assert "torchao/_C" not in proc.stderr and "Enum subclass" not in proc.stderr, proc.stderr
    assert "Failed to quantize layer 3" in proc.stderr
