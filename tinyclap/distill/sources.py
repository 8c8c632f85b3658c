"""Datasets as the engine sees them: one concatenated map-style set with known ids.

The engine works with any map-style dataset whose items are
``tinyclap.data.Example(clip, target, clip_id)``. Datasets that can name their
items without decoding audio (``tinyclap.data`` sets offer ``clip_id(i)`` and
``groups()``) let the engine check cache coverage up front and split validation
by source file; for anything else these helpers return ``None`` and the engine
falls back to checking ids as batches arrive.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

from torch.utils.data import ConcatDataset, Dataset, Subset

from tinyclap.audio import AudioConfig
from tinyclap.errors import DataError

__all__ = ["as_dataset", "audio_config_of", "dataset_ids", "dataset_groups", "describe"]


def as_dataset(data: Dataset | Sequence[Dataset]) -> Dataset:
    """One dataset from one or several (a ``ConcatDataset`` when several)."""
    if isinstance(data, Dataset):
        return data
    parts = list(data)
    if not parts:
        raise DataError("no datasets given")
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _parts(dataset: Dataset) -> list[Dataset]:
    if isinstance(dataset, ConcatDataset):
        return [p for d in dataset.datasets for p in _parts(d)]
    if isinstance(dataset, Subset):
        return _parts(dataset.dataset)
    return [dataset]


def audio_config_of(dataset: Dataset) -> AudioConfig:
    """The one AudioConfig every part of ``dataset`` yields clips at (DataError if they differ)."""
    configs = {id(p): getattr(p, "audio_config", None) for p in _parts(dataset)}
    found = [c for c in configs.values() if c is not None]
    if not found:
        raise DataError(f"{describe(dataset)}: dataset has no .audio_config")
    first = found[0]
    for c in found[1:]:
        if c != first:
            raise DataError(
                f"datasets yield clips at different audio configs ({first} vs {c}); "
                "open them all with the same AudioConfig"
            )
    return first


def _item_id(dataset: Dataset, i: int) -> str | None:
    """Clip id of item ``i`` without decoding, or None if the dataset cannot tell."""
    if isinstance(dataset, ConcatDataset):
        k = bisect.bisect_right(dataset.cumulative_sizes, i)
        start = dataset.cumulative_sizes[k - 1] if k else 0
        return _item_id(dataset.datasets[k], i - start)
    if isinstance(dataset, Subset):
        return _item_id(dataset.dataset, int(dataset.indices[i]))
    fn = getattr(dataset, "clip_id", None)
    return fn(i) if callable(fn) else None


def dataset_ids(dataset: Dataset) -> list[str] | None:
    """Every item's clip id, in order, when all parts can tell them without decoding."""
    if not all(callable(getattr(p, "clip_id", None)) for p in _parts(dataset)):
        return None
    if not isinstance(dataset, (ConcatDataset, Subset)) and hasattr(dataset, "ids"):
        return list(dataset.ids)
    return [_item_id(dataset, i) for i in range(len(dataset))]  # type: ignore[misc]


def _groups(dataset: Dataset, offset: int) -> tuple[list[Any], int] | None:
    if isinstance(dataset, ConcatDataset):
        out: list[Any] = []
        for d in dataset.datasets:
            sub = _groups(d, offset)
            if sub is None:
                return None
            out += sub[0]
            offset = sub[1]
        return out, offset
    if isinstance(dataset, Subset):
        sub = _groups(dataset.dataset, offset)
        if sub is None:
            return None
        return [sub[0][int(i)] for i in dataset.indices], sub[1]
    fn = getattr(dataset, "groups", None)
    if not callable(fn):
        return None
    g = list(fn())
    # Offsets keep groups of different parts apart.
    return [(offset, x) for x in g], offset + 1


def dataset_groups(dataset: Dataset) -> list[Any] | None:
    """A source-file key per item (windows of one file share it), or None if unknown."""
    sub = _groups(dataset, 0)
    return None if sub is None else sub[0]


def describe(dataset: Dataset) -> str:
    """Short human description used in messages and cache indexes."""
    parts = _parts(dataset)
    if len(parts) == 1:
        return f"{parts[0]!r}"
    return " + ".join(repr(p) for p in parts)
