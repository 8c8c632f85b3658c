"""A plain folder of sound files, labelled by sub-folder or not at all.

Layout::

    ROOT/<class name>/**/<file>.<wav|flac|ogg|mp3|...>    labels = sub-folder names
    ROOT/**/<file>                                         or no labels

``labels="auto"`` (default) uses the first sub-folder as the label when every
file sits in one (``class_names`` sorted, "_" → space); ``labels=True`` demands
it; ``labels=False`` ignores folders. Files are found recursively, sorted by
path, and cut into clip-length windows like every long-file corpus. With
labels, ``target="label"`` and ``.captions(i)`` is ``[class name]``; without,
``target="none"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, Entry
from tinyclap.data.captions import AUDIO_EXTENSIONS
from tinyclap.errors import DataError

__all__ = ["Folder"]


class Folder(AudioDataset):
    """Every audio file under ``root``; labels from sub-folder names (see module docstring)."""

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        labels: bool | str = "auto",
        **kwargs: Any,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder")
        files = sorted(
            p for p in self.root.rglob("*")
            if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"{self.root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        rels = [p.relative_to(self.root).as_posix() for p in files]
        nested = all("/" in r for r in rels)
        if labels is True and not nested:
            loose = next(r for r in rels if "/" not in r)
            raise DataError(f"{self.root}: labels from folders need every file in a sub-folder ({loose} is not)")
        use_labels = nested if labels == "auto" else bool(labels)
        kwargs.setdefault("target", "label" if use_labels else "none")
        kwargs.setdefault("windows", True)
        super().__init__(audio_config, **kwargs)
        folders = [r.split("/", 1)[0] for r in rels] if use_labels else []
        self.class_names = sorted({f.replace("_", " ") for f in folders}) if use_labels else None
        index = {c: k for k, c in enumerate(self.class_names or [])}
        entries = []
        for k, (path, rel) in enumerate(zip(files, rels)):
            if use_labels:
                name = folders[k].replace("_", " ")
                entries.append(Entry(path, rel, label=index[name], captions=(name,)))
            else:
                entries.append(Entry(path, rel))
        self._build(entries)
