"""File probing for dataset indexes: durations from headers, cached on disk.

Cutting a long-file corpus into windows needs each file's length. Decoding
every file up front would take as long as an epoch, so we read the header
(``soundfile.info``), fall back to decoding only when the header cannot be read
by libsndfile (formats only librosa/audioread can open), and remember the answer
per file keyed by (size, mtime) in a JSON file:

- ``cache=`` argument (a file path), else
- ``$TINYCLAP_CACHE_DIR/audio-info/<hash of the folder>.json``, else
- ``~/.cache/tinyclap/audio-info/<hash of the folder>.json``.

A probe that fails records why (empty file, not a sound file, ...): the
dataset skips that file and lists it in ``.broken``. A cache that cannot be
written (read-only home) only costs re-probing next time.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tinyclap.io import read_json, write_json

__all__ = ["FileInfo", "probe_file", "probe_files", "default_cache_path"]

_VERSION = 2  # 2: truncated WAVs are probed as errors


@dataclass(frozen=True)
class FileInfo:
    """Frames and rate of a file as stored (before resampling), or why it is unreadable."""

    frames: int = 0
    samplerate: int = 0
    channels: int = 0
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


def probe_file(path: str | Path) -> FileInfo:
    """Header facts of one file; decodes it only if libsndfile cannot read the header."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return FileInfo(error="no such file")
    if path.stat().st_size == 0:
        return FileInfo(error="empty file")
    try:
        info = sf.info(str(path))
        frames, rate, channels = int(info.frames), int(info.samplerate), int(info.channels)
    except Exception as sf_err:  # noqa: BLE001 - libsndfile raises several types
        return _probe_by_decoding(path, sf_err)
    if rate <= 0:
        return FileInfo(error=f"invalid sample rate {rate}")
    if frames <= 0:
        return FileInfo(error="no samples")
    from tinyclap.audio import AudioDecodeError, check_not_truncated

    try:
        check_not_truncated(path, frames)  # libsndfile counts the samples present, not those declared
    except AudioDecodeError as err:
        return FileInfo(frames, rate, channels, error=err.reason)
    return FileInfo(frames, rate, channels)


def _probe_by_decoding(path: Path, first: Exception) -> FileInfo:
    """Formats libsndfile cannot open (e.g. m4a through audioread): decode to learn the length."""
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wave, rate = librosa.load(str(path), sr=None, mono=True)
    except Exception:  # noqa: BLE001 - any failure means the file is unusable
        reason = str(first).splitlines()[0] if str(first) else type(first).__name__
        return FileInfo(error=f"not a readable sound file ({reason})")
    if len(wave) == 0:
        return FileInfo(error="no samples")
    return FileInfo(len(wave), int(rate), 1)


def default_cache_path(paths: Sequence[str | Path]) -> Path:
    """Where :func:`probe_files` keeps the answers for ``paths`` (one JSON per folder)."""
    folder = os.path.commonpath([str(Path(p).resolve().parent) for p in paths]) if paths else "."
    digest = hashlib.sha256(folder.encode()).hexdigest()[:16]
    base = os.environ.get("TINYCLAP_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "tinyclap"
    return root / "audio-info" / f"{digest}.json"


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def probe_files(
    paths: Sequence[str | Path], cache: str | Path | None | bool = None, workers: int = 8
) -> dict[str, FileInfo]:
    """Probe many files, reusing and updating the on-disk cache. Keys are ``str(path)``.

    ``cache=False`` disables the disk cache.
    """
    paths = [Path(p) for p in paths]
    cache_path = None if cache is False else Path(cache) if cache else default_cache_path(paths)
    stored: dict = {}
    if cache_path is not None and cache_path.is_file():
        try:
            blob = read_json(cache_path)
            if blob.get("version") == _VERSION:
                stored = blob.get("files", {})
        except (OSError, ValueError):
            stored = {}  # a damaged cache is only a slower start
    out: dict[str, FileInfo] = {}
    todo: list[Path] = []
    stamps: dict[str, list[int] | None] = {}
    for p in paths:
        key = str(p.resolve())
        stamp = _stamp(p)
        stamps[str(p)] = stamp
        hit = stored.get(key)
        if stamp is not None and hit is not None and hit.get("stamp") == stamp:
            out[str(p)] = FileInfo(hit["frames"], hit["samplerate"], hit["channels"], hit.get("error"))
        else:
            todo.append(p)
    if todo:
        if len(todo) > 32 and workers > 1:
            # libsndfile releases the GIL while it reads headers: threads overlap the I/O.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(probe_file, todo))
        else:
            results = [probe_file(p) for p in todo]
        for p, info in zip(todo, results):
            out[str(p)] = info
            stamp = stamps[str(p)]
            if stamp is not None:
                stored[str(p.resolve())] = {
                    "stamp": stamp,
                    "frames": info.frames,
                    "samplerate": info.samplerate,
                    "channels": info.channels,
                    "error": info.error,
                }
        if cache_path is not None:
            try:
                write_json(cache_path, {"version": _VERSION, "files": stored})
            except OSError:
                pass  # read-only cache location: we simply probe again next time
    return out
