"""Distillation corpora: audio with captions (or without), cut into clip-length windows.

All of these default to ``target="caption"`` (the first caption; ``.captions(i)``
gives them all) and ``windows=True``: a file longer than a clip becomes
deterministic windows with ids ``"<relative file>#<window>"``, counted from the
file's header (never by decoding it). Files the metadata lists but that are not
on disk (never downloaded) are counted in ``.missing`` and skipped.

Layouts
-------
Clotho v2 (``clotho:ROOT[?split=evaluation]``)::

    ROOT/clotho_captions_<split>.csv   file_name,caption_1,...,caption_5
    ROOT/<split>/<file_name>           (or clotho_audio_<split>/[<split>/], audio/<split>/)

  ``split``: development, validation, evaluation; default: every split whose csv is there.

AudioCaps (``audiocaps:ROOT[?split=train]``)::

    ROOT/<split>.csv                   audiocap_id,youtube_id,start_time,caption
    ROOT/<split>/ or ROOT/audio/<split>/ or ROOT/audio/ or ROOT/   the downloaded clips

  A clip is found under any of the usual download names: ``<youtube_id>``,
  ``Y<youtube_id>``, ``<youtube_id>_<start>``, ``Y<youtube_id>_<start>.000_<end>.000``,
  ``<audiocap_id>`` (any audio extension). Rows of one clip are merged (val/test
  have five captions each).

MACS (``macs:ROOT``)::

    ROOT/MACS.yaml        files: [{filename, annotations: [{sentence, tags, annotator_id}]}]
    ROOT/audio/<filename> TAU Urban Acoustic Scenes 2019 development clips (10 s)

  Labels: the acoustic scene, the file name's prefix ("airport-lisbon-..." → "airport").

FSD50K (``fsd50k:ROOT[?split=dev|train|val|eval]``)::

    ROOT/FSD50K.ground_truth/{dev,eval}.csv      fname,labels,mids[,split]
    ROOT/FSD50K.ground_truth/vocabulary.csv      index,label,mid (no header)
    ROOT/FSD50K.{dev,eval}_audio/<fname>.wav
    ROOT/FSD50K.metadata/{dev,eval}_clips_info_FSD50K.json   optional: {fname: {title, ...}}

  Captions: the clip's labels in words ("Dog, Bark, Domestic animals and pets"),
  then the Freesound title where the json is there. ``label(i)``: the first
  (most specific) label's vocabulary index; ``labels(i)``: all of them.

Manifest (``manifest:FILE``): a CSV with a header, or JSON lines, with
``path`` (relative to the manifest's folder, or absolute) and optionally
``caption`` (JSONL: a string or a list; CSV: also ``caption_1..caption_N``) and
``label`` (a class name; ``class_names`` = the sorted distinct names).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, Entry
from tinyclap.data.tables import read_rows
from tinyclap.errors import DataError

__all__ = ["Clotho", "AudioCaps", "MACS", "FSD50K", "Manifest", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".aif")


class _CaptionCorpus(AudioDataset):
    """Defaults shared by captioned corpora: caption targets, long files windowed."""

    def __init__(self, audio_config: AudioConfig | None, **kwargs: Any) -> None:
        kwargs.setdefault("target", "caption")
        kwargs.setdefault("windows", True)
        super().__init__(audio_config, **kwargs)


def _splits(split: str | Sequence[str] | None, available: list[str], what: str) -> list[str]:
    if split is None:
        if not available:
            raise DataError(f"{what}: no metadata found")
        return available
    chosen = [s.strip() for s in split.split(",")] if isinstance(split, str) else list(split)
    bad = [s for s in chosen if s not in available]
    if bad:
        raise DataError(f"{what}: no split(s) {bad}; found {available or 'none'}")
    return chosen


def _first_dir(candidates: list[Path]) -> Path | None:
    return next((d for d in candidates if d.is_dir()), None)


class Clotho(_CaptionCorpus):
    """Clotho v2: 15-30 s Freesound clips with five captions each."""

    name = "clotho"
    SPLITS = ("development", "validation", "evaluation")

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        split: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        available = [s for s in self.SPLITS if (self.root / f"clotho_captions_{s}.csv").is_file()]
        self.splits = _splits(split, available, f"{self.root} (Clotho)")
        entries = []
        for s in self.splits:
            rows = read_rows(self.root / f"clotho_captions_{s}.csv", ("file_name", "caption_1"))
            audio = _first_dir(
                [self.root / s, self.root / f"clotho_audio_{s}" / s, self.root / f"clotho_audio_{s}", self.root / "audio" / s]
            )
            cols = [c for c in rows[0] if re.fullmatch(r"caption_\d+", c)]
            for r in rows:
                caps = tuple(r[c].strip() for c in cols if r.get(c) and r[c].strip())
                path = (audio or self.root / s) / r["file_name"]
                entries.append(Entry(path, f"{s}/{r['file_name']}", captions=caps))
        self._build(entries)


def _audio_index(dirs: list[Path]) -> dict[str, Path]:
    """Stem → file for the audio files directly inside ``dirs`` (one listing, no per-row stat)."""
    index: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.suffix.lower() in AUDIO_EXTENSIONS:
                index.setdefault(p.stem, p)
    return index


def _audiocaps_names(ytid: str, start: str, acid: str) -> list[str]:
    try:
        t = float(start)
    except ValueError:
        t = None
    names = [ytid, f"Y{ytid}"]
    if t is not None:
        names += [f"{ytid}_{int(t)}", f"Y{ytid}_{int(t)}", f"{ytid}_{t:.3f}_{t + 10:.3f}", f"Y{ytid}_{t:.3f}_{t + 10:.3f}"]
        names += [f"{ytid}_{int(t * 1000)}", f"{ytid}_{int(t)}_{int(t) + 10}"]
    names += [f"{ytid}_{start}", acid]
    return names


class AudioCaps(_CaptionCorpus):
    """AudioCaps: 10 s AudioSet clips captioned by people; undownloaded clips are counted."""

    name = "audiocaps"
    SPLITS = ("train", "val", "test")

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        split: str | Sequence[str] | None = None,
        audio_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        available = [s for s in self.SPLITS if (self.root / f"{s}.csv").is_file()]
        self.splits = _splits(split, available, f"{self.root} (AudioCaps)")
        entries = []
        for s in self.splits:
            rows = read_rows(self.root / f"{s}.csv", ("youtube_id", "start_time", "caption"))
            dirs = [Path(audio_dir)] if audio_dir else [self.root / s, self.root / "audio" / s, self.root / "audio", self.root]
            index = _audio_index(dirs)
            clips: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
            acids: dict[tuple[str, str], str] = {}
            for r in rows:
                key = (r["youtube_id"].strip(), r["start_time"].strip())
                clips.setdefault(key, []).append(r["caption"].strip())
                acids.setdefault(key, r.get("audiocap_id", "").strip())
            for (ytid, start), caps in clips.items():
                path = next((index[n] for n in _audiocaps_names(ytid, start, acids[(ytid, start)]) if n in index), None)
                if path is None:
                    self._note_missing(f"{s}/{ytid} (start {start})")
                    continue
                rel = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.name
                entries.append(Entry(path, rel, captions=tuple(caps)))
        self._build(entries)


class MACS(_CaptionCorpus):
    """MACS: TAU 2019 urban scenes captioned by several annotators (labels: the scene)."""

    name = "macs"

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        yaml_file: str | Path | None = None,
        audio_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        import yaml

        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        meta = Path(yaml_file) if yaml_file else self.root / "MACS.yaml"
        if not meta.is_file():
            raise DataError(f"{self.root}: not a MACS folder (missing {meta.name})")
        try:
            blob = yaml.safe_load(meta.read_text(encoding="utf-8"))
            files = blob["files"]
        except (yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise DataError(f"{meta}: not MACS metadata ({type(err).__name__}: {err})") from None
        audio = Path(audio_dir) if audio_dir else self.root / "audio"
        rows = []
        for f in files:
            name = str(f["filename"])
            caps = tuple(str(a["sentence"]).strip() for a in f.get("annotations") or [] if a.get("sentence"))
            rows.append((name, Path(name).name.split("-")[0], caps))
        self.class_names = sorted({scene for _, scene, _ in rows})
        index = {c: k for k, c in enumerate(self.class_names)}
        self._build(
            [Entry(audio / Path(name).name, Path(name).name, label=index[scene], captions=caps) for name, scene, caps in rows]
        )


class FSD50K(_CaptionCorpus):
    """FSD50K: Freesound clips (0.3-30 s) with AudioSet-ontology labels; captions from labels."""

    name = "fsd50k"

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        split: str = "dev",
        **kwargs: Any,
    ) -> None:
        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        gt = self.root / "FSD50K.ground_truth"
        if split not in ("dev", "train", "val", "eval"):
            raise DataError(f"FSD50K: split must be dev, train, val or eval, got {split!r}")
        part = "eval" if split == "eval" else "dev"
        csv_path = gt / f"{part}.csv"
        if not csv_path.is_file():
            raise DataError(f"{self.root}: not an FSD50K folder (missing FSD50K.ground_truth/{part}.csv)")
        rows = read_rows(csv_path, ("fname", "labels") + (("split",) if split in ("train", "val") else ()))
        vocab_path = gt / "vocabulary.csv"
        if vocab_path.is_file():
            import csv

            with open(vocab_path, newline="", encoding="utf-8") as fh:
                vocab = [r[1] for r in csv.reader(fh) if len(r) >= 2]
        else:  # no vocabulary file: the labels that occur, sorted
            vocab = sorted({lab for r in rows for lab in r["labels"].split(",") if lab})
        self.vocabulary = vocab
        self.class_names = [v.replace("_", " ") for v in vocab]
        index = {v: k for k, v in enumerate(vocab)}
        titles: dict[str, Any] = {}
        info = self.root / "FSD50K.metadata" / f"{part}_clips_info_FSD50K.json"
        if info.is_file():
            try:
                titles = json.loads(info.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                raise DataError(f"{info}: not JSON ({err})") from None
        audio = self.root / f"FSD50K.{part}_audio"
        self._labels: dict[str, list[int]] = {}
        entries = []
        for r in rows:
            if split in ("train", "val") and r["split"].strip() != split:
                continue
            names = [lab for lab in r["labels"].split(",") if lab]
            unknown = [lab for lab in names if lab not in index]
            if unknown:
                raise DataError(f"{csv_path}: clip {r['fname']} has labels {unknown} not in the vocabulary")
            words = ", ".join(n.replace("_", " ") for n in names)
            caps = [words]
            title = (titles.get(r["fname"]) or {}).get("title") if titles else None
            if title:
                caps.append(str(title).strip())
            rel = f"FSD50K.{part}_audio/{r['fname']}.wav"
            self._labels[rel] = [index[n] for n in names]
            entries.append(Entry(audio / f"{r['fname']}.wav", rel, label=index[names[0]] if names else None, captions=tuple(caps)))
        self._build(entries)

    def labels(self, i: int) -> list[int]:
        """All vocabulary indices of item ``i`` (multi-label), most specific first."""
        return list(self._labels[self.entry(i).rel])


class Manifest(_CaptionCorpus):
    """Any list of files: CSV (with header) or JSON lines of path [, caption] [, label]."""

    name = "manifest"

    def __init__(self, path: str | Path, audio_config: AudioConfig | None = None, **kwargs: Any) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such manifest")
        records = self._jsonl() if self.path.suffix.lower() in (".jsonl", ".json", ".ndjson") else self._csv()
        has_caps = any(r[1] for r in records)
        has_labels = any(r[2] is not None for r in records)
        kwargs.setdefault("target", "caption" if has_caps else "label" if has_labels else "none")
        super().__init__(audio_config, **kwargs)
        base = self.path.parent
        self.class_names = sorted({r[2] for r in records if r[2] is not None}) if has_labels else None
        index = {c: k for k, c in enumerate(self.class_names or [])}
        entries = []
        for rel, caps, label in records:
            p = Path(rel)
            entries.append(Entry(p if p.is_absolute() else base / p, rel, index[label] if label is not None else None, caps))
        self._build(entries)

    def _jsonl(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        out = []
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                path = str(rec["path"])
            except (ValueError, KeyError, TypeError) as err:
                raise DataError(f"{self.path}:{n}: expected a JSON object with 'path' ({type(err).__name__})") from None
            cap = rec.get("caption", rec.get("captions"))
            caps = tuple(cap) if isinstance(cap, list) else (cap,) if cap else ()
            label = rec.get("label")
            out.append((path, tuple(str(c) for c in caps), None if label is None else str(label)))
        if not out:
            raise DataError(f"{self.path}: empty manifest")
        return out

    def _csv(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        rows = read_rows(self.path, ("path",))
        cols = [c for c in rows[0] if c == "caption" or re.fullmatch(r"caption_\d+", c or "")]
        out = []
        for r in rows:
            caps = tuple(r[c].strip() for c in cols if r.get(c) and r[c].strip())
            label = r.get("label")
            out.append((r["path"].strip(), caps, label.strip() if label and label.strip() else None))
        return out
