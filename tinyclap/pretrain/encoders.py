"""Audio towers a local CLAP can be trained with, named by a spec string.

- ``phinet_alpha_3.00_beta_0.75_t0_6_N_7`` (any :class:`~tinyclap.students.StudentConfig`
  name): the students' PhiNet :class:`~tinyclap.students.AudioStudent`, usually wider
  than the student you will distil into it.
- ``cnn14:width=64`` (also ``embed=``, ``dropout=``): MS-CLAP 2022's CNN14 audio
  tower (six VGG blocks, max + mean pooling over time) with channel widths
  ``width × (1, 2, 4, 8, 16, 32)``; width 64 is CNN14 itself.

Both take a log-mel (B, T, M) and return (B, D) L2-normalised embeddings, and
both own a ``frontend`` (LogMel) that turns waveforms into that log-mel. Extra
``key=value`` options after a colon override constructor arguments:
``phinet_alpha_2.00_beta_0.75_t0_6_N_7:embed_width=512,dropout=0.1``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinyclap.audio import AudioConfig, LogMel
from tinyclap.data.spec import _value  # option values read as in dataset specs (int, float, true/false, text)
from tinyclap.errors import TinyClapError

__all__ = ["AudioEncoderSpecError", "Cnn14Audio", "build_audio_encoder", "check_spec", "parse_spec"]


class AudioEncoderSpecError(TinyClapError, ValueError):
    """An ``--audio-encoder`` spec that names no known architecture or has bad options."""


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:k=v,k=v"`` → ``(name, {k: v})`` with numbers parsed."""
    name, _, rest = spec.strip().partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise AudioEncoderSpecError(f"audio encoder {spec!r}: option {item!r} is not key=value")
        options[key.strip()] = _value(val.strip())
    if not name:
        raise AudioEncoderSpecError(f"audio encoder {spec!r}: no architecture name")
    return name, options


class Cnn14Audio(nn.Module):
    """CNN14-style audio tower: MS-CLAP 2022's CNN14 (:class:`~tinyclap.teachers.msclap_audio.Cnn14`)
    at ``width × (1, 2, 4, 8, 16, 32)`` channels, then a CLAP projection to ``dim``.

    ``width=64`` is CNN14 itself (2048-d clip vector); ``embed`` sets the clip
    vector's size (default: the last block's channels).
    """

    def __init__(
        self,
        width: int = 64,
        embed: int | None = None,
        dim: int = 512,
        dropout: float = 0.5,
        audio_config: AudioConfig | None = None,
    ):
        super().__init__()
        from tinyclap.students.encoder import Projection
        from tinyclap.teachers.msclap_audio import Cnn14

        if isinstance(width, bool) or not isinstance(width, (int, float)) or int(width) != width or width < 1:
            raise AudioEncoderSpecError(f"cnn14: width must be a positive integer, got {width!r}")
        if embed is not None and (isinstance(embed, bool) or not isinstance(embed, int) or embed < 1):
            raise AudioEncoderSpecError(f"cnn14: embed must be a positive integer, got {embed!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise AudioEncoderSpecError(f"cnn14: dropout must be a number in [0, 1), got {dropout!r}")
        self.audio_config = audio_config or AudioConfig()
        self.frontend = LogMel(self.audio_config)
        channels = tuple(int(width) * 2**i for i in range(6))
        self.embed_width = int(embed or channels[-1])
        self.backbone = Cnn14(n_mels=self.audio_config.n_mels, channels=channels, out_emb=self.embed_width)
        # AudioSet tagging head: not part of a CLAP audio tower, and never trained here.
        self.backbone.fc_audioset = nn.Identity()
        self.projection = Projection(self.embed_width, dim, dropout=dropout)
        self.dim = dim

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) log-mel → (B, embed) pooled clip vector."""
        return self.backbone(logmel)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.features(logmel)), dim=-1)


def check_spec(spec: str) -> None:
    """Raise :class:`AudioEncoderSpecError` early (before any data is read) for a spec no tower has."""
    name, _ = parse_spec(spec)
    if name == "cnn14":
        return
    if name.startswith("phinet_"):
        from tinyclap.students.encoder import StudentConfig

        StudentConfig.from_name(name)  # raises StudentConfigError naming the bad field
        return
    raise AudioEncoderSpecError(
        f"audio encoder {spec!r}: unknown; use a PhiNet name (phinet_alpha_3.00_beta_0.75_t0_6_N_7) or cnn14:width=N"
    )


def build_audio_encoder(spec: str, dim: int, audio_config: AudioConfig) -> nn.Module:
    """An audio tower from its spec; raises :class:`AudioEncoderSpecError` for unknown names/options."""
    check_spec(spec)
    name, options = parse_spec(spec)
    try:
        if name == "cnn14":
            return Cnn14Audio(dim=dim, audio_config=audio_config, **options)  # type: ignore[arg-type]
        from tinyclap.students.encoder import AudioStudent  # check_spec let only PhiNet names through

        return AudioStudent.from_name(name, dim=dim, audio_config=audio_config, **options)
    except TypeError as err:  # an option the constructor does not take
        raise AudioEncoderSpecError(f"audio encoder {spec!r}: {err}") from None
