"""The one interface every teacher (and, for audio, every student) offers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from tinyclap.audio import AudioConfig

__all__ = ["AudioEncoder", "Teacher", "as_batch"]


@runtime_checkable
class AudioEncoder(Protocol):
    """Anything that maps waveforms to unit embeddings with its own front end."""

    audio_config: AudioConfig

    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S) or (S,) float32 waveforms at ``audio_config.sample_rate``,
        ``audio_config.clip_samples`` long → (B, D) L2-normalised float32 (CPU)."""
        ...


@runtime_checkable
class Teacher(AudioEncoder, Protocol):
    """A frozen CLAP model: audio and text into one shared, unit-norm space."""

    name: str  # registry id, e.g. "msclap-2022", "laion/clap-htsat-unfused", "local:/path"
    dim: int  # shared embedding dimension D
    logit_scale: float  # exp of the learned temperature (scale applied to cosines)
    licence: str  # one line shown on load and stored in checkpoints

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → (P, D) L2-normalised float32 (CPU). Empty lists raise ValueError."""
        ...


def as_batch(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Waveforms as a float32 (B, S) tensor; accepts (S,) and numpy."""
    x = torch.as_tensor(np.asarray(clips) if not isinstance(clips, torch.Tensor) else clips)
    x = x.to(torch.float32)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise ValueError(f"expected waveforms of shape (B, S) or (S,), got {tuple(x.shape)}")
    return x
