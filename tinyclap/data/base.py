"""The shared dataset machinery: items, windows, broken-file accounting, batching.

Every dataset in :mod:`tinyclap.data` is an :class:`AudioDataset`: a map-style
torch ``Dataset`` over *items*, where an item is one clip-length window of one
file. Its ``__getitem__`` returns an :class:`Example` ``(clip, target, clip_id)``:

- ``clip``: float32 numpy array of exactly ``audio_config.clip_samples`` samples,
  mono, at ``audio_config.sample_rate``;
- ``target``: the class index (labelled sets), the caption (captioned sets) or
  ``None``, as chosen by the dataset's ``target=`` argument;
- ``clip_id``: ``"<file relative to the root>#<window index>"``, stable across
  runs, machines and subsets, so teacher embeddings can be cached per window.

Two ways to turn a file into items (``windows=``):

- ``False`` ("fit", for clip datasets such as ESC-50 and UrbanSound8K): one item
  per file, padded or centre-cropped to the clip length (``fit_length``).
- ``True`` (for long-file corpora): deterministic clip-length windows
  (``window_starts``, hop = clip length unless ``hop_seconds`` says otherwise).
  The number of windows comes from the file's header (``soundfile.info``,
  cached on disk by :mod:`tinyclap.data.index`), never from decoding it. A file
  no longer than a clip gives one padded window. When a file does not divide
  evenly, ``window_starts`` adds a window aligned to the end; we drop that tail
  window when it would add less than a tenth of a hop of new audio, so a
  10.0003 s scene is two 5 s windows, not three.

Broken files never stop a run (unless ``strict=True``):

1. at construction every file is probed with ``soundfile.info`` (header only,
   cached): missing, empty, unreadable and wrong-format files are left out of the
   index and recorded in ``.broken``;
2. what a header cannot reveal (truncated data, NaN/Inf samples) is found when
   the item is read: ``__getitem__`` then returns a :class:`Skipped` marker
   instead of an :class:`Example`, and records the file. :func:`collate` drops
   markers and lists them on the :class:`Batch` (``batch.broken``), so failures
   found inside DataLoader worker processes travel back to the main process;
   :func:`make_loader` folds them into the dataset's ``.broken`` for you.

With ``strict=True`` either step raises :class:`~tinyclap.audio.AudioDecodeError`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tinyclap.audio import AudioConfig, AudioDecodeError, fit_length, load_audio, min_clip_samples, window_starts
from tinyclap.errors import DataError

__all__ = [
    "Example",
    "Skipped",
    "BrokenFile",
    "Entry",
    "AudioDataset",
    "Batch",
    "collate",
    "make_loader",
    "broken_report",
    "plan_windows",
    "aggregate_windows",
    "broken_files",
]

TargetKind = Literal["label", "caption", "none"]
MISSING = "no such file"  # the probe's reason for a listed file that is not on disk


class Example(NamedTuple):
    """One clip: float32 (S,) audio, class index / caption / None, stable id."""

    clip: np.ndarray
    target: int | str | None
    clip_id: str


class Skipped(NamedTuple):
    """Returned by ``__getitem__`` in place of an :class:`Example` for a broken file."""

    clip_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class BrokenFile:
    """A file left out of a run, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Entry:
    """One audio file of a dataset, before it is cut into items.

    ``rel`` is the path relative to the dataset root (the first half of every
    clip id); ``label`` and ``captions`` are what the metadata says about it.
    """

    path: Path
    rel: str
    label: int | None = None
    captions: tuple[str, ...] = ()


class _Item(NamedTuple):
    entry: int  # index into the dataset's entries
    window: int  # window index (0 in "fit" mode)
    start: int  # start sample at the dataset's rate; -1 = fit the whole file


def plan_windows(length: int, n: int, hop: int | None = None, min_tail: float = 0.1) -> list[int]:
    """Window start samples for a file of ``length`` samples cut into windows of ``n``.

    ``window_starts`` (from :mod:`tinyclap.audio`), minus an end-aligned tail
    window that would add less than ``min_tail`` of a hop of new audio.
    """
    hop = hop or n
    starts = window_starts(length, n, hop)
    if len(starts) >= 2:
        new_audio = starts[-1] - starts[-2]
        aligned_tail = starts[-1] == length - n and new_audio != hop
        if aligned_tail and new_audio < min_tail * hop:
            starts.pop()
    return starts


def resampled_length(frames: int, file_rate: int, rate: int) -> int:
    """Samples a file of ``frames`` frames at ``file_rate`` has after resampling to ``rate``."""
    if file_rate == rate:
        return int(frames)
    return int(math.ceil(frames * rate / file_rate))


class AudioDataset(Dataset):
    """Base class: entries → items (windows), lazy decoding, broken-file accounting.

    Subclasses build ``entries`` (and ``class_names`` where they have labels) and
    call :meth:`_build`. Public surface: ``len``, ``[i] -> Example | Skipped``,
    ``.audio_config``, ``.class_names``, ``.label(i)``, ``.captions(i)``,
    ``.clip_id(i)``, ``.ids``, ``.broken``, ``.groups()``, ``.strict``.
    """

    name: str = "audio"

    def __init__(
        self,
        audio_config: AudioConfig | None = None,
        *,
        target: TargetKind = "label",
        windows: bool = False,
        hop_seconds: float | None = None,
        pad: Literal["repeat", "zero"] = "repeat",
        strict: bool = False,
        index_cache: str | Path | None = None,
    ) -> None:
        if target not in ("label", "caption", "none"):
            raise ValueError(f"target must be 'label', 'caption' or 'none', got {target!r}")
        self.audio_config = audio_config or AudioConfig()
        self.target_kind: TargetKind = target
        self.windows = bool(windows)
        self.hop_seconds = hop_seconds
        self.pad = pad
        self.strict = bool(strict)
        self.index_cache = index_cache
        self.class_names: list[str] | None = None
        self.entries: list[Entry] = []
        self._items: list[_Item] = []
        self._broken: dict[str, BrokenFile] = {}
        self.missing: list[str] = []  # listed in the metadata but not on disk (never downloaded)
        self._by_path: dict[str, int] = {}
        # Decoded files, per process: consecutive windows of one long file decode it once.
        self._decoded: OrderedDict[int, np.ndarray] = OrderedDict()
        self._decoded_max = 2

    # ----------------------------------------------------------------- building
    def _build(self, entries: Sequence[Entry], *, probe: bool = True) -> None:
        """Probe ``entries``, drop the broken ones, and cut the rest into items."""
        from tinyclap.data.index import probe_files

        entries = list(entries)
        infos = probe_files([e.path for e in entries], cache=self.index_cache) if probe else None
        n = self.audio_config.clip_samples
        hop = int(round(self.hop_seconds * self.audio_config.sample_rate)) if self.hop_seconds else n
        if hop <= 0:
            raise DataError(f"window hop (hop=SECONDS) must be positive, got {self.hop_seconds}")
        kept: list[Entry] = []
        items: list[_Item] = []
        for entry in entries:
            info = infos[str(entry.path)] if infos is not None else None
            if info is not None and info.error == MISSING:
                if self.strict:
                    raise AudioDecodeError(entry.path, MISSING)
                self.missing.append(str(entry.path))
                continue
            if info is not None and not info.error:
                length = resampled_length(info.frames, info.samplerate, self.audio_config.sample_rate)
                if length < min_clip_samples(self.audio_config):
                    info = replace(info, error=f"too short to embed: {length} samples at "
                                   f"{self.audio_config.sample_rate} Hz (needs at least {min_clip_samples(self.audio_config)})")
            if info is not None and info.error:
                self._note_broken(str(entry.path), info.error)
                if self.strict:
                    raise AudioDecodeError(entry.path, info.error)
                continue
            k = len(kept)
            kept.append(entry)
            if not self.windows:
                items.append(_Item(k, 0, -1))
                continue
            if info is not None:
                length = resampled_length(info.frames, info.samplerate, self.audio_config.sample_rate)
            else:
                length = n
            for w, start in enumerate(plan_windows(length, n, hop)):
                items.append(_Item(k, w, start))
        self.entries = kept
        self._items = items
        self._by_path = {str(e.path): i for i, e in enumerate(kept)}

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._items)

    def clip_id(self, i: int) -> str:
        """Stable id of item ``i``: ``"<relative file>#<window>"``."""
        item = self._items[i]
        return f"{self.entries[item.entry].rel}#{item.window}"

    @property
    def ids(self) -> list[str]:
        """Clip ids of all items, in order."""
        return [self.clip_id(i) for i in range(len(self))]

    def entry(self, i: int) -> Entry:
        """The file item ``i`` comes from."""
        return self.entries[self._items[i].entry]

    def label(self, i: int) -> int | None:
        """Class index of item ``i`` (None where the dataset has no labels)."""
        return self.entry(i).label

    def captions(self, i: int) -> list[str]:
        """All captions of item ``i`` (empty where the dataset has none)."""
        return list(self.entry(i).captions)

    def groups(self) -> list[int]:
        """Source-file index of every item: windows of one file share a group.

        A clip's prediction aggregates its windows: see :func:`aggregate_windows`.
        """
        return [item.entry for item in self._items]

    def group_labels(self) -> list[int | None]:
        """Label of each group (source file), indexed like :meth:`groups`' values."""
        return [e.label for e in self.entries]

    def group_ids(self) -> list[str]:
        """Relative file name of each group (the part of clip ids before ``#``)."""
        return [e.rel for e in self.entries]

    @property
    def broken(self) -> list[BrokenFile]:
        """Files skipped so far (at indexing, and when read in this process)."""
        return list(self._broken.values())

    def owns(self, path: str) -> bool:
        return path in self._by_path or path in self._broken

    def _note_missing(self, what: str) -> None:
        """A listed file that is not on disk: counted and skipped (an error with ``strict``)."""
        if self.strict:
            raise DataError(f"{what}: listed in the metadata but not found")
        self.missing.append(what)

    def _note_broken(self, path: str, reason: str) -> None:
        self._broken.setdefault(path, BrokenFile(path, reason))

    def note_skipped(self, skipped: Iterable[Skipped | BrokenFile]) -> None:
        """Record files found broken elsewhere (e.g. in DataLoader workers)."""
        for s in skipped:
            self._note_broken(s.path, s.reason)

    def target_of(self, entry: Entry, window: int) -> int | str | None:
        """The ``target`` an item carries, per ``target=``."""
        if self.target_kind == "label":
            return entry.label
        if self.target_kind == "caption":
            return entry.captions[0] if entry.captions else None
        return None

    # ------------------------------------------------------------------ reading
    def decode(self, entry_index: int) -> np.ndarray:
        """The whole file of entry ``entry_index``, mono float32 at the dataset's rate."""
        cached = self._decoded.get(entry_index)
        if cached is not None:
            self._decoded.move_to_end(entry_index)
            return cached
        wave = self._read(self.entries[entry_index])
        self._decoded[entry_index] = wave
        while len(self._decoded) > self._decoded_max:
            self._decoded.popitem(last=False)
        return wave

    def _read(self, entry: Entry) -> np.ndarray:
        """Decode one file (subclasses that synthesise audio override this)."""
        return load_audio(entry.path, self.audio_config.sample_rate, min_samples=min_clip_samples(self.audio_config))

    def example(self, i: int) -> Example:
        """Item ``i`` as an :class:`Example`; raises ``AudioDecodeError`` if its file is broken."""
        item = self._items[i]
        entry = self.entries[item.entry]
        known = self._broken.get(str(entry.path))
        if known is not None:
            raise AudioDecodeError(entry.path, known.reason)
        wave = self.decode(item.entry)
        n = self.audio_config.clip_samples
        if item.start < 0:
            clip = fit_length(wave, n, self.pad)
        else:
            clip = wave[item.start : item.start + n]
            if len(clip) < n:
                # Header lengths can be off by a few samples (Ogg, resampling), and a
                # file shorter than one clip gives one padded window.
                clip = fit_length(wave[item.start :] if item.start < len(wave) else wave, n, self.pad)
        clip = np.ascontiguousarray(clip, dtype=np.float32)
        return Example(clip, self.target_of(entry, item.window), f"{entry.rel}#{item.window}")

    def __getitem__(self, i: int) -> Example | Skipped:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} items")
        try:
            return self.example(i)
        except AudioDecodeError as err:
            if self.strict:
                raise
            entry = self.entry(i)
            self._note_broken(str(entry.path), err.reason)
            return Skipped(self.clip_id(i), str(entry.path), err.reason)

    def __repr__(self) -> str:
        classes = f", {len(self.class_names)} classes" if self.class_names else ""
        return f"{type(self).__name__}({len(self)} items from {len(self.entries)} files{classes})"


# ---------------------------------------------------------------- batching
class Batch(tuple):
    """``(clips, targets, ids)``: unpacks as a 3-tuple.

    ``clips`` is a float32 tensor (B, S); ``targets`` and ``ids`` are lists.
    ``broken`` lists the :class:`Skipped` items :func:`collate` dropped.
    """

    def __new__(cls, clips: torch.Tensor, targets: list, ids: list[str], broken: Sequence[Skipped] = ()):
        self = super().__new__(cls, (clips, targets, ids))
        self.broken = list(broken)
        return self

    def __reduce__(self):  # keeps .broken when a worker pickles the batch
        return (Batch, (self[0], self[1], self[2], self.broken))

    @property
    def clips(self) -> torch.Tensor:
        return self[0]

    @property
    def targets(self) -> list:
        return self[1]

    @property
    def ids(self) -> list[str]:
        return self[2]


def collate(items: Sequence[Example | Skipped | None]) -> Batch:
    """DataLoader ``collate_fn``: stack clips, keep targets and ids, drop broken items."""
    good = [x for x in items if isinstance(x, Example)]
    broken = [x for x in items if isinstance(x, Skipped)]
    if good:
        clips = torch.from_numpy(np.stack([np.asarray(x.clip, dtype=np.float32) for x in good]))
    else:
        clips = torch.zeros((0, 0), dtype=torch.float32)
    return Batch(clips, [x.target for x in good], [x.clip_id for x in good], broken)


def _audio_datasets(dataset: Any) -> list[AudioDataset]:
    """The AudioDatasets inside ``dataset`` (itself, a ConcatDataset's parts, a Subset's base)."""
    if isinstance(dataset, AudioDataset):
        return [dataset]
    found: list[AudioDataset] = []
    for part in getattr(dataset, "datasets", []) or []:
        found.extend(_audio_datasets(part))
    if hasattr(dataset, "dataset"):
        found.extend(_audio_datasets(dataset.dataset))
    return found


class BatchLoader:
    """A DataLoader over :class:`Batch` es that reports broken files to its dataset(s).

    Batches whose items were all broken are not yielded.
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.dataset = loader.dataset
        self._targets = _audio_datasets(loader.dataset)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            if batch.broken:
                for ds in self._targets:
                    ds.note_skipped(s for s in batch.broken if ds.owns(s.path))
            if len(batch.ids):
                yield batch

    def group_labels(self) -> list[int | None]:
        """Label of each group (source file), indexed like :meth:`groups`' values."""
        return [e.label for e in self.entries]

    def group_ids(self) -> list[str]:
        """Relative file name of each group (the part of clip ids before ``#``)."""
        return [e.rel for e in self.entries]

    @property
    def broken(self) -> list[BrokenFile]:
        return broken_files(self.dataset)


def make_loader(
    dataset: Dataset,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int | None = None,
    drop_last: bool = False,
    **kwargs: Any,
) -> BatchLoader:
    """A DataLoader with :func:`collate` whose workers' broken files reach ``dataset.broken``.

    ``seed`` fixes the shuffling order. Extra keyword arguments go to ``DataLoader``.
    """
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(int(seed))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=False,
        **kwargs,
    )
    return BatchLoader(loader)


def broken_files(dataset: Any) -> list[BrokenFile]:
    """Every broken file recorded by the AudioDatasets inside ``dataset``."""
    seen: dict[str, BrokenFile] = {}
    for ds in _audio_datasets(dataset):
        for b in ds.broken:
            seen.setdefault(b.path, b)
    return list(seen.values())


def broken_report(dataset: Any, limit: int = 10) -> str:
    """One paragraph for the end of a run: how many files were skipped, and why."""
    broken = broken_files(dataset)
    missing = sorted({m for ds in _audio_datasets(dataset) for m in ds.missing})
    lines: list[str] = []
    if missing:
        lines.append(f"{len(missing)} listed file{'s' if len(missing) != 1 else ''} not found (never downloaded?), skipped:")
        lines += [f"  {m}" for m in missing[:limit]]
        if len(missing) > limit:
            lines.append(f"  ... and {len(missing) - limit} more")
    if broken:
        lines.append(f"skipped {len(broken)} broken file{'s' if len(broken) != 1 else ''}:")
        lines += [f"  {b}" for b in broken[:limit]]
        if len(broken) > limit:
            lines.append(f"  ... and {len(broken) - limit} more")
    return "\n".join(lines) if lines else "no broken files"


def aggregate_windows(
    scores: np.ndarray | torch.Tensor, groups: Sequence[int], how: Literal["mean", "max"] = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window scores (N, C) → per-file scores (G, C), with the file index of each row.

    ``groups`` is :meth:`AudioDataset.groups` (or the subset of it matching
    ``scores``' rows). ``mean`` averages the windows' scores (use it on
    probabilities or logits); ``max`` keeps each class's best window.
    Rows come out in increasing group order.
    """
    s = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    g = np.asarray(groups)
    if s.ndim != 2 or len(g) != len(s):
        raise ValueError(f"scores must be (N, C) with N == len(groups); got {s.shape} and {len(g)}")
    keys, inverse = np.unique(g, return_inverse=True)
    out = np.zeros((len(keys), s.shape[1]), dtype=np.float64)
    if how == "mean":
        np.add.at(out, inverse, s)
        out /= np.bincount(inverse, minlength=len(keys))[:, None]
    elif how == "max":
        out[:] = -np.inf
        np.maximum.at(out, inverse, s)
    else:
        raise ValueError(f"how must be 'mean' or 'max', got {how!r}")
    return out.astype(np.float32), keys
