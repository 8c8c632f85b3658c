"""The local CLAP model: audio tower + text tower + projections into one space + learnable temperature.

:class:`LocalClap` is rebuilt from a small JSON-able config (:meth:`LocalClap.config`),
which is what a ``kind="teacher"`` tinyclap checkpoint stores next to its weights.
A frozen text tower is *referenced* (package or directory), not copied into the
checkpoint; a fine-tuned one has its weights in the checkpoint under ``text.``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinyclap.audio import AudioConfig
from tinyclap.pretrain.encoders import build_audio_encoder
from tinyclap.pretrain.loss import LogitScale
from tinyclap.pretrain.text import DEFAULT_TEXT_MODEL, TextTower

__all__ = ["LocalClap"]

ARCHITECTURE = "tinyclap-local-clap"


class LocalClap(nn.Module):
    """CLAP trained with ``tinyclap pretrain``.

    ``embed_audio_logmel(logmel)`` and ``embed_text_features(pooled)`` are the two
    training-time paths (log-mels and pooled text features can be cached);
    ``embed_text(prompts)`` runs the text tower too.
    """

    def __init__(
        self,
        audio_encoder: str,
        audio_config: AudioConfig,
        dim: int = 512,
        text_model: str | None = DEFAULT_TEXT_MODEL,
        text_trainable: bool = False,
        text_dropout: float = 0.1,
        text_weights: bool = True,
    ):
        super().__init__()
        from tinyclap.students.encoder import Projection

        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.audio_encoder_spec = audio_encoder
        self.audio_config = audio_config
        self.dim = int(dim)
        self.text_trainable = bool(text_trainable)
        self.text_dropout = float(text_dropout)
        self.audio = build_audio_encoder(audio_encoder, self.dim, audio_config)
        self.text = TextTower(text_model, weights=text_weights)
        self.text.requires_grad_(self.text_trainable)
        self.text_projection = Projection(self.text.width, self.dim, dropout=self.text_dropout)
        self.logit_scale = LogitScale()

    # -- configuration ---------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs (no weights)."""
        return {
            "architecture": ARCHITECTURE,
            "audio_encoder": self.audio_encoder_spec,
            "audio_config": self.audio_config.to_dict(),
            "dim": self.dim,
            "text_model": self.text.ref,
            "text_width": self.text.width,
            "text_trainable": self.text_trainable,
            "text_dropout": self.text_dropout,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], text_model: str | None = None, text_weights: bool = True) -> "LocalClap":
        """Rebuild from :meth:`config` (``text_model`` overrides where the text tower is found)."""
        return cls(
            audio_encoder=config["audio_encoder"],
            audio_config=AudioConfig.from_dict(config["audio_config"]),
            dim=int(config["dim"]),
            text_model=text_model or config["text_model"],
            text_trainable=bool(config.get("text_trainable", False)),
            text_dropout=float(config.get("text_dropout", 0.1)),
            text_weights=text_weights,
        )

    def train(self, mode: bool = True) -> "LocalClap":
        super().train(mode)
        if not self.text_trainable:
            self.text.eval()  # a frozen tower never uses dropout
        return self

    def saved_state(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint holds: all but a frozen text tower (which is referenced instead)."""
        state = self.state_dict()
        if not self.text_trainable:
            state = {k: v for k, v in state.items() if not k.startswith("text.")}
        return state

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`saved_state`; strict about every key except a frozen text tower's."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        if not self.text_trainable:
            missing = [k for k in missing if not k.startswith("text.")]
        if missing or unexpected:
            raise KeyError(f"state does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")

    # -- embeddings ------------------------------------------------------------------
    def embed_audio_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) log-mel → (B, D) unit vectors."""
        return F.normalize(self.audio(logmel), dim=-1)

    def embed_text_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """(P, width) pooled text-tower features → (P, D) unit vectors."""
        return F.normalize(self.text_projection(pooled), dim=-1)

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → (P, D) unit vectors (through the text tower)."""
        return self.embed_text_features(self.text(prompts))

    def forward(self, logmel: torch.Tensor, pooled_text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(audio (B, D), text (B, D), logit_scale)`` for the contrastive loss."""
        return self.embed_audio_logmel(logmel), self.embed_text_features(pooled_text), self.logit_scale()
