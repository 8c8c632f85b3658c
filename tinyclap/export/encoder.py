"""An exported ONNX student as an AudioEncoder, so evaluation code runs it like the torch one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tinyclap.audio import AudioConfig, LogMel
from tinyclap.export.onnx import OnnxModel
from tinyclap.teachers.base import as_batch

__all__ = ["OnnxEncoder"]


class OnnxEncoder:
    """Waveforms → LogMel → ONNX graph (log-mel in, embedding out) → unit vectors.

    For the single-graph exports (``embed.onnx``, ``embed.int8.onnx``), whose
    input is the raw log-mel of one clip (B, T, n_mels). ``kept_dims`` says
    which teacher dims the outputs are, as on a pruned student, so a full
    prompt bank is sliced to match.
    """

    def __init__(self, path: str | Path, audio_config: AudioConfig, kept_dims: Sequence[int] | None = None,
                 threads: int | None = None):
        self.model = OnnxModel(path, threads=threads)
        self.audio_config = audio_config
        self.frontend = LogMel(audio_config)
        self.kept_dims = list(kept_dims) if kept_dims is not None else None

    @classmethod
    def like(cls, path: str | Path, student: Any, threads: int | None = None) -> "OnnxEncoder":
        """An encoder for the export of ``student`` (same front end, same kept dims)."""
        return cls(path, student.audio_config, getattr(student, "kept_dims", None), threads)

    @property
    def dim(self) -> int:
        return int(self.model.session.get_outputs()[0].shape[-1])

    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            mel = self.frontend(as_batch(clips))
        out = torch.from_numpy(self.model(mel))
        return torch.nn.functional.normalize(out, dim=-1)
