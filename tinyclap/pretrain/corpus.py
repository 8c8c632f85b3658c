"""Captioned audio for contrastive training: which captions each clip has, splits, cached log-mels.

Any :mod:`tinyclap.data` dataset can be used. A clip's captions are the
dataset's ``captions(i)``; a clip of a labelled-only set (ESC-50, UrbanSound8K)
gets its class name rendered through the prompt templates ("this is the sound
of dog"), so class-labelled audio trains the same model. A clip with neither
is an error: contrastive training needs text.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset
from tqdm.auto import tqdm

from tinyclap.data.base import Example, make_loader
from tinyclap.errors import DataError

__all__ = ["Corpus", "LogMelSource", "build_corpus", "logmel_megabytes", "split_by_group"]


@dataclass
class Corpus:
    """Items of one or more datasets, with the text and labels pretraining needs per item."""

    dataset: Dataset  # a ConcatDataset of the parts
    captions: list[list[str]]  # per item: at least one caption
    labels: list[int | None]  # per item: class index in ``class_names``, where known
    class_names: list[str] | None  # shared label set (None if parts disagree or have none)
    groups: list[Any]  # per item: source-file key (windows of one file share it)

    def __len__(self) -> int:
        return len(self.captions)


def _part_of(dataset: ConcatDataset, i: int) -> tuple[Dataset, int]:
    k = bisect.bisect_right(dataset.cumulative_sizes, i)
    start = dataset.cumulative_sizes[k - 1] if k else 0
    return dataset.datasets[k], i - start


def build_corpus(parts: Sequence[Dataset], names: Sequence[str], templates: Sequence[str]) -> Corpus:
    """Captions (or templated class names), labels and groups of every item of ``parts``.

    ``names`` (the specs the parts came from) only make error messages specific.
    """
    from tinyclap.templates import render

    if not parts:
        raise DataError("pretraining needs at least one dataset (--data SPEC)")
    captions: list[list[str]] = []
    labels: list[int | None] = []
    groups: list[Any] = []
    class_sets = []
    for p, (part, name) in enumerate(zip(parts, names)):
        classes = getattr(part, "class_names", None)
        class_sets.append(tuple(classes) if classes else None)
        has_caps = callable(getattr(part, "captions", None))
        has_label = callable(getattr(part, "label", None))
        part_groups = part.groups() if callable(getattr(part, "groups", None)) else range(len(part))
        for i, g in zip(range(len(part)), part_groups):
            caps = [c for c in (part.captions(i) if has_caps else []) if c and c.strip()]
            label = part.label(i) if has_label else None
            if not caps and label is not None and classes:
                caps = render(templates, classes[label])
            if not caps:
                raise DataError(
                    f"{name}: item {i} has neither captions nor a class label; "
                    "pretraining needs captioned (or labelled) audio"
                )
            captions.append(caps)
            labels.append(label if classes else None)
            groups.append((p, g))
    if not captions:
        raise DataError(f"{', '.join(names)}: no usable items")
    shared = class_sets[0] if class_sets and all(c == class_sets[0] for c in class_sets) else None
    if shared is None:
        labels = [None] * len(labels)
    return Corpus(ConcatDataset(list(parts)), captions, labels, list(shared) if shared else None, groups)


def split_by_group(groups: Sequence[Any], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)`` with about ``fraction`` of the source files held out.

    Whole files go to one side, so windows of one recording never sit on both.
    """
    if fraction <= 0:
        return list(range(len(groups))), []
    keys = sorted(set(groups), key=repr)
    random.Random(seed).shuffle(keys)
    n_val = max(1, math.floor(len(keys) * fraction))
    if n_val >= len(keys):
        raise DataError(f"too few source files ({len(keys)}) to hold out a validation split")
    held = set(keys[:n_val])
    train = [i for i, g in enumerate(groups) if g not in held]
    val = [i for i, g in enumerate(groups) if g in held]
    return train, val


class _Indexed(Dataset):
    """Items ``indices`` of ``dataset`` whose clip ids become their position (to map batches back)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset  # BatchLoader looks here to record broken files
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Any:
        item = self.dataset[self.indices[k]]
        if isinstance(item, Example):
            return Example(item.clip, item.target, str(k))
        return item  # a Skipped marker: collate drops it and reports the file


class LogMelSource:
    """Log-mels of a fixed list of items, kept in memory (float16) or recomputed for every batch.

    ``positions`` everywhere index into ``indices``; items whose file turns out
    broken are dropped (``kept`` lists the positions still usable).
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: Sequence[int],
        frontend: nn.Module,
        *,
        cache: bool,
        batch_size: int = 64,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        desc: str = "log-mels",
        progress: bool = True,
    ):
        self.dataset = dataset
        self.indices = list(indices)
        self.frontend = frontend
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.cached: torch.Tensor | None = None
        self.kept = list(range(len(self.indices)))
        if cache and self.indices:
            feats: list[torch.Tensor] = []
            kept: list[int] = []
            with tqdm(total=len(self.indices), desc=desc, unit="clip", disable=not progress, leave=False) as bar:
                for pos, mel in self._compute(range(len(self.indices)), batch_size):
                    feats.append(mel.to(torch.float16).cpu())
                    kept += pos.tolist()
                    bar.update(len(pos))
            self.kept = kept
            full = torch.cat(feats) if feats else torch.zeros(0)
            # Row r of the cache holds position kept[r]; index it by position instead.
            self._row = {p: r for r, p in enumerate(kept)}
            self.cached = full

    def __len__(self) -> int:
        return len(self.kept)

    @torch.no_grad()
    def _compute(self, positions: Sequence[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Read and transform the items at ``positions``, in that order."""
        positions = list(positions)
        loader = make_loader(
            _Indexed(self.dataset, [self.indices[p] for p in positions]),
            batch_size=batch_size,
            num_workers=self.num_workers,
            seed=0,  # its own generator: reading data never draws from the global RNG (exact resumes)
        )
        for batch in loader:
            mel = self.frontend(batch.clips.to(self.device))
            yield torch.tensor([positions[int(k)] for k in batch.ids]), mel

    def usable(self, order: Sequence[int]) -> list[int]:
        """``order`` without the items known to be broken (batches are consecutive slices of this)."""
        if self.cached is None:
            return list(order)
        return [p for p in order if p in self._row]

    def batches(self, order: Sequence[int], batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(positions (B,), logmel (B, T, M) float32 on the device)`` over ``order`` (positions)."""
        batch_size = batch_size or self.batch_size
        if self.cached is None:
            yield from self._compute(order, batch_size)
            return
        usable = self.usable(order)
        for s in range(0, len(usable), batch_size):
            pos = usable[s : s + batch_size]
            rows = torch.tensor([self._row[p] for p in pos])
            yield torch.tensor(pos), self.cached[rows].to(self.device, torch.float32)

def logmel_megabytes(n_items: int, frames: int, n_mels: int) -> float:
    """Memory a float16 log-mel cache of ``n_items`` clips takes."""
    return n_items * frames * n_mels * 2 / 2**20
