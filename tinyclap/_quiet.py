"""Silence two known-harmless messages printed when transformers imports torchao.

transformers imports torchao whenever it is installed (``transformers/quantizers/
quantizer_torchao.py``, reached from ``modeling_utils``), and litert-torch, our
TFLite exporter, installs torchao. Importing torchao then logs, on every
``from transformers import ...``:

* ``Failed to load .../torchao/_C_mxfp8....so`` / ``_C_cutlass_90a.abi3.so``:
  ``logging.getLogger("torchao").warning`` in ``torchao/__init__.py`` for CUDA-only
  kernels (MX-FP8, Hopper CUTLASS) that tinyclap never calls;
* ``<enum 'KernelPreference'> is an Enum subclass and is now natively supported ...
  register_constant() on Enum subclasses is deprecated``: the ``torch.utils._pytree``
  logger, when torchao registers its enums.

Both are Python ``logging`` records, so a filter on exactly those two loggers,
matching exactly those messages, drops them; every other record of those
loggers (and torchao itself, for the TFLite path's PT2E quantisation) is untouched.
Call :func:`quiet_torchao_noise` before importing transformers; it is idempotent.
"""

from __future__ import annotations

import logging
import re

__all__ = ["quiet_torchao_noise"]

# logger name -> what its harmless records look like (matched against the formatted message).
_NOISE = {
    "torchao": re.compile(r"^Failed to load \S*torchao[/\\]_C\w*\.\S*\.so\b"),
    "torch.utils._pytree": re.compile(r"is an Enum subclass and is now natively supported by torch\.compile"),
}


class _DropKnownNoise(logging.Filter):
    """Drops the one harmless message a logger is known to print on import (see module docstring)."""

    def __init__(self, pattern: re.Pattern[str]):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def quiet_torchao_noise() -> None:
    """Install the filters (once) on the ``torchao`` and ``torch.utils._pytree`` loggers."""
    for name, pattern in _NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise(pattern))
