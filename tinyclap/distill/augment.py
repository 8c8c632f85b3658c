"""Student-side waveform augmentation: gain, small time shifts, background noise.

Only the student's input is perturbed; its target stays the teacher embedding
of the clean window (from the cache), which asks the student to be robust to
level, alignment and noise. Every random draw is keyed by
``(seed, epoch, position of the sample in the epoch's order)`` rather than by a
running generator, so a sample is augmented the same way whether it is seen
in one process or on rank 1 of 4, and before or after a resume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["AugmentConfig", "augment_batch"]


@dataclass(frozen=True)
class AugmentConfig:
    """What to perturb. ``enabled=False`` (the reference recipe) leaves clips untouched."""

    enabled: bool = False
    gain_db: float = 6.0  # uniform gain in [-gain_db, +gain_db] dB
    shift_seconds: float = 0.05  # circular shift by up to this much, either way
    noise_p: float = 0.5  # probability of adding white noise to a clip
    noise_snr_db: tuple[float, float] = (20.0, 40.0)  # SNR range of that noise

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "AugmentConfig":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"augment: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        try:
            if "noise_snr_db" in d:
                lo, hi = d["noise_snr_db"]
                d["noise_snr_db"] = (float(lo), float(hi))
        except (TypeError, ValueError):
            raise ValueError(f"augment.noise_snr_db: expected [low, high] in dB, got {d['noise_snr_db']!r}") from None
        for f in fields(cls):
            default = getattr(cls, f.name, None)
            value = d.get(f.name)
            if f.name in d and isinstance(default, (int, float)) and (
                isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"augment.{f.name}: expected {'true or false' if isinstance(default, bool) else 'a number'}, got {value!r}")
        cfg = cls(**d)
        if cfg.gain_db < 0 or cfg.shift_seconds < 0 or not 0 <= cfg.noise_p <= 1:
            raise ValueError(f"augment: gain_db, shift_seconds must be >= 0 and noise_p in [0, 1]; got {cfg}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["noise_snr_db"] = list(self.noise_snr_db)
        return d


def _generator(seed: int, epoch: int, position: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(epoch), int(position)]).generate_state(2, np.uint64)
    g = torch.Generator()
    g.manual_seed(int(state[0] >> np.uint64(1)))
    return g


def augment_batch(
    clips: torch.Tensor,
    positions: Sequence[int],
    config: AugmentConfig,
    sample_rate: int,
    seed: int,
    epoch: int,
) -> torch.Tensor:
    """A perturbed copy of ``clips`` (B, S); row i's draws depend on ``positions[i]`` only."""
    if not config.enabled:
        return clips
    if len(positions) != clips.shape[0]:
        raise ValueError(f"{len(positions)} positions for {clips.shape[0]} clips")
    max_shift = int(round(config.shift_seconds * sample_rate))
    lo, hi = config.noise_snr_db
    out = []
    for clip, pos in zip(clips.detach().cpu(), positions):
        g = _generator(seed, epoch, pos)
        u = torch.rand(4, generator=g, dtype=torch.float64).tolist()
        x = clip * float(10.0 ** ((2.0 * u[0] - 1.0) * config.gain_db / 20.0))
        if max_shift:
            x = torch.roll(x, int(round((2.0 * u[1] - 1.0) * max_shift)))
        if u[2] < config.noise_p:
            snr = lo + (hi - lo) * u[3]
            power = float(x.pow(2).mean())
            noise = torch.randn(x.shape, generator=g, dtype=torch.float32)
            x = x + noise * float(np.sqrt(power / 10.0 ** (snr / 10.0)))
        out.append(x)
    return torch.stack(out).to(clips.device)
