"""Embed sound files with any audio encoder, and save embeddings to ``.npy`` / ``.npz``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tinyclap.audio import fit_length, load_audio, min_clip_samples
from tinyclap.io import atomic_path
from tinyclap.teachers.base import AudioEncoder

__all__ = ["embed_audio_files", "save_embeddings", "EMBEDDING_SUFFIXES"]

EMBEDDING_SUFFIXES = (".npy", ".npz")


def embed_audio_files(
    encoder: AudioEncoder, files: Sequence[str | Path], batch_size: int = 16
) -> torch.Tensor:
    """(N, D) embeddings of sound files, in order.

    Each file is read as mono at the encoder's sample rate and fitted to its clip
    length as everywhere in tinyclap (:func:`tinyclap.audio.fit_length`: repeated
    when short, centre-cropped when long). Only ``batch_size`` clips are held at once.
    A file that cannot be read raises :class:`~tinyclap.audio.AudioDecodeError` naming it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    config = encoder.audio_config
    out: list[torch.Tensor] = []
    for i in range(0, len(files), batch_size):
        clips = np.stack(
            [
                fit_length(load_audio(f, config.sample_rate, min_samples=min_clip_samples(config)), config.clip_samples)
                for f in files[i : i + batch_size]
            ]
        )
        out.append(encoder.embed_audio(clips))
    if not out:
        raise ValueError("no audio files given")
    return torch.cat(out)


def save_embeddings(
    path: str | Path,
    audio: torch.Tensor | None = None,
    text: torch.Tensor | None = None,
    files: Sequence[str | Path] = (),
    prompts: Sequence[str] = (),
    teacher: str | None = None,
    logit_scale: float | None = None,
) -> Path:
    """Write embeddings atomically.

    ``.npy``: the (N, D) float32 matrix of the one kind given (audio or text).
    ``.npz``: ``audio`` and/or ``text`` matrices with ``files`` / ``prompts`` naming
    their rows, plus ``teacher`` and ``logit_scale`` when known.
    """
    path = Path(path)
    if path.suffix not in EMBEDDING_SUFFIXES:
        raise ValueError(f"{path}: embeddings are saved as .npy or .npz, not {path.suffix or 'no suffix'!r}")
    given = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in (("audio", audio), ("text", text)) if v is not None}
    if not given:
        raise ValueError("nothing to save: no audio or text embeddings")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if path.suffix == ".npy":
            if len(given) != 1:
                raise ValueError(f"{path}: .npy holds one matrix; use .npz for audio and text together")
            np.save(fh, next(iter(given.values())))
        else:
            extra: dict[str, np.ndarray] = {}
            if "audio" in given:
                extra["files"] = np.array([str(f) for f in files])
            if "text" in given:
                extra["prompts"] = np.array(list(prompts))
            if teacher is not None:
                extra["teacher"] = np.array(teacher)
            if logit_scale is not None:
                extra["logit_scale"] = np.array(logit_scale, dtype=np.float32)
            np.savez(fh, **given, **extra)
    return path
