"""PhiNet backbone (Paissan et al., "PhiNets: a scalable backbone for low-power AI
at the edge", ACM TECS 2022), written for tinyclap.

The layer structure follows the paper and the micromind implementation that the
tinyCLAP reference code uses, so parameter counts, output shapes and the order of
the state dict match it (:func:`tinyclap.students.encoder.convert_reference_state_dict`
relies on that order). Four scalars set the network:

- ``alpha`` (width): every channel count is ``round(int(c * alpha))``;
- ``beta`` (shape) and ``t0`` (base expansion): block ``b`` of ``N`` expands its
  input ``t_b = t0 * ((N - b) + beta * b) / N`` times;
- ``num_layers`` (``N``): blocks 1..N after the stem and block 0; blocks in
  ``downsampling_layers`` (default 5 and 7) halve the resolution and double the filters.

``compatibility=True`` (what tinyCLAP uses) turns off squeeze-excite and
hard-swish (ReLU6 everywhere) so every op exists on microcontroller runtimes.

Layout (input ``(B, C, T, M)``)::

    stem      pad (TF "same", stride 2) → depthwise 3x3 /2 → pointwise → BN → act
    blocks[0] depthwise 3x3 → BN → act → 1x1 → BN                 (expansion 1)
    blocks[b] 1x1 expand → BN → act → dropout → depthwise 3x3 (/2) → BN → act
              → [squeeze-excite] → 1x1 project → BN (+ input when shapes agree)

Decisions that differ from micromind (none change parameter counts):
- BatchNorm momentum uses PyTorch's meaning (weight of the *new* batch), default
  0.1. micromind passes Keras' 0.999 to ``nn.BatchNorm2d``, which makes running
  statistics follow the last batch almost exactly.
- The stem padding is computed per dimension from the actual input (TF "same");
  micromind computes it once from ``max(H, W)`` of the construction-time shape.
  Both agree whenever T and M have the same parity (690x64, 138x64, ...).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

# Passed to every layer (like torch's own factory kwargs): building on "meta" is how
# the profiler measures a student without allocating or initialising weights.
Device = torch.device | str | None

__all__ = [
    "PhiNet",
    "PhiNetBlock",
    "SqueezeExcite",
    "SamePad2d",
    "Add",
    "Scale",
    "make_divisible",
    "expansion_factor",
    "FIRST_CONV_FILTERS",
    "B1_FILTERS",
    "B2_FILTERS",
]

# Base widths of the paper (scaled by alpha).
FIRST_CONV_FILTERS = 48
B1_FILTERS = 24
B2_FILTERS = 48


def make_divisible(v: float, divisor: int = 1, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``),
    never more than 10% below ``v`` (the MobileNet rule PhiNet uses).

    With the default ``divisor=1`` (as in tinyCLAP) this is ``max(1, round-half-up(v))``.
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v:
        rounded += divisor
    return rounded


def expansion_factor(t0: float, beta: float, block_id: int, num_blocks: int) -> float:
    """``t_b = t0 * ((N - b) + beta * b) / N``: from ``t0`` at the input to ``beta * t0`` at block N.

    Evaluated in micromind's floating-point order: the expanded channel count is
    ``int(t_b * c)``, so a last-bit difference (1.99999 vs 2.0) changes a width.
    """
    return (t0 * beta) * block_id / num_blocks + t0 * (num_blocks - block_id) / num_blocks


def _activation(h_swish: bool) -> nn.Module:
    # ReLU6 is what compatibility mode uses: TFLite fuses it into the conv.
    return nn.Hardswish() if h_swish else nn.ReLU6()


def _bn(channels: int, eps: float, momentum: float, device: Device) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum, device=device)


class SamePad2d(nn.Module):
    """Zero padding that makes a strided ``kernel`` x ``kernel`` conv behave like TF "same".

    For stride 2 and kernel 3 an even size gets (0, 1) and an odd size (1, 1).
    """

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def _pads(self, n: int) -> tuple[int, int]:
        out = math.ceil(n / self.stride)
        total = max((out - 1) * self.stride + self.kernel - n, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pads(int(x.shape[-2]))
        left, right = self._pads(int(x.shape[-1]))
        return nn.functional.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class Add(nn.Module):
    """``a + b`` as a module, so profilers see the residual input being kept alive."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Scale(nn.Module):
    """``x * gate`` as a module (squeeze-excite), for the same reason as :class:`Add`."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return x * gate


class SqueezeExcite(nn.Module):
    """Channel gate: mean pool → 1x1 reduce → act → 1x1 expand → sigmoid → scale."""

    def __init__(self, channels: int, reduced: int, h_swish: bool, device: Device = None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=False, device=device)
        self.act = _activation(h_swish)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=False, device=device)
        self.gate = nn.Sigmoid()
        self.scale = Scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return self.scale(x, g)


class PhiNetBlock(nn.Module):
    """Inverted residual block: expand → depthwise → [SE] → project (+ skip)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float,
        stride: int,
        *,
        expand: bool,
        squeeze_excite: bool,
        h_swish: bool,
        residual: bool = True,
        kernel: int = 3,
        dropout: float = 0.05,
        divisor: int = 1,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.1,
        device: Device = None,
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        hidden = make_divisible(int(expansion * in_channels), divisor) if expand else in_channels
        self.hidden_channels = hidden
        self.expand: nn.Module | None = None
        if expand:
            self.expand = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, hidden, 1, bias=False, device=device),
                    bn=_bn(hidden, bn_eps, bn_momentum, device),
                    act=_activation(h_swish),
                )
            )
        self.drop = nn.Dropout2d(dropout)
        # Symmetric padding k//2 also for stride 2, as micromind ends up doing.
        self.depthwise = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False, device=device),
                bn=_bn(hidden, bn_eps, bn_momentum, device),
                act=_activation(h_swish),
            )
        )
        self.se: nn.Module | None = None
        if squeeze_excite:
            self.se = SqueezeExcite(hidden, make_divisible(max(1, int(hidden / 6)), divisor), h_swish, device)
        self.project = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(hidden, out_channels, 1, bias=False, device=device),
                bn=_bn(out_channels, bn_eps, bn_momentum, device),
            )
        )
        self.skip = residual and in_channels == out_channels and stride == 1
        self.add = Add() if self.skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(self.drop(y))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return self.add(y, x) if self.add is not None else y


class PhiNet(nn.Module):
    """PhiNet feature extractor: ``(B, in_channels, H, W)`` → ``(B, out_channels, H/32, W/32)``.

    See the module docstring for the meaning of ``alpha``, ``beta``, ``t0`` and
    ``num_layers``. ``squeeze_excite`` / ``h_swish`` default to on unless
    ``compatibility`` is set, which forces both off.
    """

    def __init__(
        self,
        alpha: float,
        beta: float = 1.0,
        t0: float = 6.0,
        num_layers: int = 7,
        *,
        in_channels: int = 1,
        compatibility: bool = True,
        squeeze_excite: bool = True,
        h_swish: bool = True,
        downsampling_layers: tuple[int, ...] = (5, 7),
        residuals: bool = True,
        block_dropout: float = 0.05,
        divisor: int = 1,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.1,
        device: Device = None,
    ):
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if not t0 > 0:
            raise ValueError(f"t0 must be > 0, got {t0}")
        if int(num_layers) != num_layers or num_layers < 3:
            raise ValueError(f"num_layers (N) must be an integer >= 3, got {num_layers}")
        num_layers = int(num_layers)
        if compatibility:
            squeeze_excite = h_swish = False
        self.alpha, self.beta, self.t0, self.num_layers = alpha, beta, t0, num_layers

        def width(c: int) -> int:
            return make_divisible(int(c * alpha), divisor)

        def t(b: int) -> float:
            return expansion_factor(t0, beta, b, num_layers)

        common = dict(
            h_swish=h_swish, residual=residuals, dropout=block_dropout, divisor=divisor,
            bn_eps=bn_eps, bn_momentum=bn_momentum, device=device,
        )  # fmt: skip
        c0 = width(FIRST_CONV_FILTERS)
        self.stem = nn.Sequential(
            OrderedDict(
                pad=SamePad2d(3, 2),
                depthwise=nn.Conv2d(in_channels, in_channels, 3, 2, groups=in_channels, bias=False, device=device),
                pointwise=nn.Conv2d(in_channels, c0, 1, bias=False, device=device),
                bn=_bn(c0, bn_eps, bn_momentum, device),
                act=_activation(h_swish),
            )
        )
        # (out_channels, expansion, stride, expand, squeeze_excite) per block; block 0
        # has no expansion and no SE, blocks 1-3 are fixed, blocks 4..N follow the schedule.
        c1, c2 = width(B1_FILTERS), width(B2_FILTERS)
        plan = [
            (c1, 1.0, 1, False, False),
            (c1, t(1), 2, True, squeeze_excite),
            (c1, t(2), 1, True, squeeze_excite),
            (c2, t(3), 2, True, squeeze_excite),
        ]
        filters = B2_FILTERS
        for b in range(4, num_layers + 1):
            down = b in downsampling_layers
            if down:
                filters *= 2
            plan.append((width(filters), t(b), 2 if down else 1, True, squeeze_excite))
        blocks = []
        cin = c0
        for cout, expansion, stride, expand, se in plan:
            blocks.append(
                PhiNetBlock(cin, cout, expansion, stride, expand=expand, squeeze_excite=se, **common)
            )
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x
