"""Symmetric InfoNCE (the CLIP / CLAP contrastive loss) with a learnable, clamped temperature."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["INIT_TEMPERATURE", "MAX_LOGIT_SCALE", "LogitScale", "clap_loss"]

# CLIP initialises the temperature at 0.07 and clamps exp(scale) at 100 so the
# logits cannot blow up; MS-CLAP and LAION-CLAP do the same.
INIT_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


class LogitScale(nn.Module):
    """A learnable log-scale; ``forward()`` returns exp(scale) clamped to [1, 100]."""

    def __init__(self, init_temperature: float = INIT_TEMPERATURE, max_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        if not 0 < init_temperature <= 1:
            raise ValueError(f"init_temperature must be in (0, 1], got {init_temperature}")
        self.max_log = math.log(max_scale)
        self.value = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32))

    def clamp_(self) -> None:
        """Clamp the parameter in place (CLIP does this after each optimiser step)."""
        with torch.no_grad():
            self.value.clamp_(0.0, self.max_log)

    def forward(self) -> torch.Tensor:
        return self.value.clamp(0.0, self.max_log).exp()


def clap_loss(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Mean of the audio→text and text→audio cross-entropies over scaled cosine logits.

    ``audio`` and ``text`` are (B, D) and L2-normalised; pair i is (audio[i], text[i])
    and every other item of the batch is a negative. (Two clips with the very same
    caption need no special care: the loss is then minimised by ranking both
    clips equally for that caption, which is what we want.)
    """
    if audio.shape != text.shape or audio.dim() != 2:
        raise ValueError(f"audio and text must both be (B, D), got {tuple(audio.shape)} and {tuple(text.shape)}")
    logits = logit_scale * audio @ text.t()
    target = torch.arange(audio.shape[0], device=audio.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
