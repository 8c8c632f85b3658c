"""``report.json``: what an export produced and how faithful it is, written as each step finishes.

Figures (each on the calibration clips, against the torch fp32 student run
the same way, windows included):

- ``cosine_mean`` / ``cosine_worst``: cosine between the clip embeddings of
  the exported model and of the torch model;
- ``zeroshot_agreement``: fraction of clips whose top-1 label with the prompt
  bank is the same as the torch model's;
- ``streaming``: the torch student streamed window by window against the
  same student on whole clips (how much the windowing itself changes);
- ``tflm``: TFLM arena bytes per model and TFLM-vs-LiteRT output equality;
- ``target``: the device fit (:mod:`tinyclap.export.targets`) of the plain C
  firmware in ``OUT/firmware``: ``checks`` lists the image as linked
  (``runtime: "c"``, ``figures: "linked"``, sections from the ELF + reserves;
  where arm-none-eabi-gcc is installed), the C estimate (``"c"``,
  ``"estimate"``: network constants + code + bank + labels + front-end tables;
  C arena + sample ring + work buffers + stack) and the TFLite Micro
  alternative (``"tflm"``, ``"estimate"``: ``.tflite`` bytes, TFLM arenas, the
  whole int16 window); the first decides and its ``fits``, ``flash``, ``ram``
  and ``message`` are repeated at the top level;
- ``firmware``: the bundle's folder, C arena and models (or why none was written).

The report is rewritten atomically after every step (:func:`tinyclap.io.write_json`),
so a failure later on (an overflow, a converter error) keeps what was done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyclap.io import write_json

__all__ = ["cosine_stats", "zeroshot_agreement", "compare_embeddings", "ExportReport"]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Row-wise cosine of two ``(N, D)`` embedding sets: mean and worst (minimum)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    cos = (_unit(a) * _unit(b)).sum(axis=-1)
    return {"cosine_mean": float(cos.mean()), "cosine_worst": float(cos.min())}


def zeroshot_agreement(a: np.ndarray, b: np.ndarray, bank: np.ndarray) -> float:
    """Fraction of rows whose top-1 class against ``bank`` (C, D) is the same for ``a`` and ``b``."""
    bank = _unit(bank)
    return float(np.mean(np.argmax(_unit(a) @ bank.T, axis=1) == np.argmax(_unit(b) @ bank.T, axis=1)))


def compare_embeddings(test: np.ndarray, reference: np.ndarray, bank: np.ndarray | None) -> dict[str, Any]:
    """Cosine stats and (with a bank) zero-shot agreement of ``test`` against ``reference``."""
    out: dict[str, Any] = {"clips": int(len(test)), **cosine_stats(test, reference)}
    if bank is not None:
        out["zeroshot_agreement"] = zeroshot_agreement(test, reference, bank)
    return out


class ExportReport:
    """A JSON document at ``path``, rewritten atomically on every :meth:`update`."""

    def __init__(self, path: str | Path, **header: Any):
        self.path = Path(path)
        self.data: dict[str, Any] = {"format": "tinyclap-export/1", **header, "formats": {}}
        self.save()

    def update(self, **sections: Any) -> None:
        """Set top-level sections and save."""
        self.data.update(sections)
        self.save()

    def add_format(self, name: str, figures: dict[str, Any]) -> None:
        """Record (or extend) the figures of one export format and save."""
        self.data["formats"].setdefault(name, {}).update(figures)
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)
