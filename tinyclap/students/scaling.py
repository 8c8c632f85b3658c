"""Hardware-aware scaling: what a student costs on a device, and the biggest student a device fits.

:func:`profile` measures a :class:`StudentConfig` by running the real
:class:`AudioStudent` once on a meta tensor (no memory, no arithmetic) with
forward hooks on every leaf module, then reading off:

- ``params``: every trainable parameter (the figure the tinyCLAP paper reports);
- ``macs``: multiply-accumulates of the convolutions and linear layers for one
  input window (BatchNorm folds into the convolutions; activations, adds and
  pooling are not MACs);
- ``flash_bytes``: the int8 deployment's constants: 1 byte per conv/linear
  weight; per output channel a float32 scale and an int64 zero point (as TFLite
  stores per-channel quantisation) and an int32 bias where there is one
  (BatchNorm folds into it); 4 bytes per remaining float parameter (LayerNorm,
  and ``bn0`` folded into the front end). The flatbuffer's op and tensor tables
  come on top (about 15% for small students);
- ``ram_bytes``: peak int8 activation memory, as an MCU runtime allocates it.
  Every op output is a tensor; BatchNorm, ReLU/ReLU6 and dropout write into
  their input (fused) when nothing else reads that input later. A tensor is
  live from the op that writes it to the last op that reads it, so a residual
  input stays alive across its block. Convolutions whose padding TFLite cannot
  express (symmetric padding 1 at stride 2 on an even size, as the reference
  PhiNet downsamples) get the explicit PAD op a converter inserts. The peak is
  the largest sum of live tensors at any op, for batch 1 (input window
  included); a TFLM arena adds its own bookkeeping on top.

:func:`fit` searches ``alpha`` x ``beta`` x ``t0`` x ``N`` for the config with
the most MACs (then params) whose profile fits a :class:`Budget`. Every figure
grows with ``alpha``, ``beta`` (<= 1) and ``t0``, so for each (``N``, ``beta``,
``t0``) a binary search over the ``alpha`` grid finds the widest config that
fits, and a larger ``t0`` never needs a larger ``alpha``. Profiles are cached.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import torch
from torch import nn

from tinyclap.audio import AudioConfig
from tinyclap.errors import BudgetError, TinyClapError
from tinyclap.students.encoder import AudioStudent, L2Normalize, StudentConfig
from tinyclap.students.phinet import Add, Scale

__all__ = [
    "Budget",
    "ExplicitPad",
    "LayerProfile",
    "Profile",
    "SizeError",
    "describe",
    "fit",
    "profile",
    "profile_module",
    "parse_size",
    "parse_count",
    "parse_duration",
    "format_bytes",
    "format_count",
    "ALPHAS",
    "BETAS",
    "T0S",
    "NUM_LAYERS",
]

# Search grid of fit(): 27 (beta, t0, N) shapes x a fine alpha grid keeps a search to
# about a hundred measured profiles (a few seconds). Betas stay <= 1: above 1 the
# expansion would shrink as N grows and the search's monotonicity would not hold.
ALPHAS: tuple[float, ...] = tuple(round(0.10 + 0.05 * i, 2) for i in range(79))  # 0.10 .. 4.00
BETAS: tuple[float, ...] = (0.5, 0.75, 1.0)
T0S: tuple[float, ...] = (2.0, 4.0, 6.0)
NUM_LAYERS: tuple[int, ...] = (5, 7, 9)

# Ops that an int8 runtime fuses into the op before them (or runs in place).
_FUSABLE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.Identity)


# --------------------------------------------------------------------------- sizes


class SizeError(TinyClapError, ValueError):
    """A size, count or duration string that cannot be parsed."""


_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1024**3, "gib": 1024**3}  # fmt: skip
_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_SECOND_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3}


def _split(text: str | int | float, what: str) -> tuple[float, str]:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(float(text)):
            raise SizeError(f"{text!r}: not a finite {what}")
        return float(text), ""
    cleaned = str(text).replace("_", "").replace(",", "")
    m = _NUMBER.match(cleaned)
    if not m:
        raise SizeError(f"{text!r}: not a {what} (examples: {_EXAMPLES[what]})")
    value = float(m.group(1))
    if not math.isfinite(value) or value > 1e18:  # '1e400' is inf; an int() of it would overflow
        raise SizeError(f"{text!r}: {what} too large (examples: {_EXAMPLES[what]})")
    return value, m.group(2).lower()


_EXAMPLES = {"size": "512KB, 1MB, 2MiB, 1048576", "count": "60M, 1.5G, 250k, 1000000", "duration": "1s, 500ms, 5"}


def parse_size(text: str | int) -> int:
    """Bytes from ``"1MB"``, ``"256 KB"``, ``"2MiB"``, ``"1.5M"``, ``"1048576"``.

    K/M/G are binary (1024-based) with or without the ``i``: microcontroller
    datasheets say "2 Mbytes of flash" for 2,097,152 bytes.
    """
    value, unit = _split(text, "size")
    if unit not in _BYTE_UNITS:
        raise SizeError(f"{text!r}: unknown size unit {unit!r} (use B, KB, MB, GB or KiB, MiB, GiB)")
    n = int(value * _BYTE_UNITS[unit])
    if n <= 0:
        raise SizeError(f"{text!r}: a size must be at least 1 byte")
    return n


def parse_count(text: str | int) -> int:
    """A count (MACs, params) from ``"60M"``, ``"1.5G"``, ``"250k"``, ``"60MMAC"``; K/M/G are decimal."""
    cleaned = str(text)
    cleaned = re.sub(r"(?i)\s*(macs?|ops|flops)$", "", cleaned.strip()) if isinstance(text, str) else text
    value, unit = _split(cleaned, "count")
    if unit not in _COUNT_UNITS:
        raise SizeError(f"{text!r}: unknown count unit {unit!r} (use k, M or G)")
    n = int(round(value * _COUNT_UNITS[unit]))
    if n <= 0:
        raise SizeError(f"{text!r}: a count must be at least 1")
    return n


def parse_duration(text: str | float) -> float:
    """Seconds from ``"1s"``, ``"500ms"``, ``"5"``, ``"2.5 sec"``."""
    value, unit = _split(text, "duration")
    if unit not in _SECOND_UNITS:
        raise SizeError(f"{text!r}: unknown duration unit {unit!r} (use s or ms)")
    seconds = value * _SECOND_UNITS[unit]
    if seconds <= 0:
        raise SizeError(f"{text!r}: a duration must be positive")
    return seconds


def format_bytes(n: int) -> str:
    """``1536`` → ``"1.50 KiB"`` (binary units, as :func:`parse_size` reads them)."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def format_count(n: int) -> str:
    """``60_000_000`` → ``"60.00 M"``."""
    for unit, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class LayerProfile:
    """One op of the walk: module path, type, output shape (batch 1), its cost, and RAM live while it runs."""

    name: str
    op: str
    out_shape: tuple[int, ...]
    params: int
    macs: int
    live_bytes: int
    fused: bool  # folded into the previous op / run in place: no tensor of its own


@dataclass(frozen=True)
class Profile:
    """What one student costs for one input window (int8 deployment, batch 1)."""

    name: str
    input_frames: int
    n_mels: int
    params: int
    macs: int
    flash_bytes: int
    ram_bytes: int
    peak_layer: str
    config: StudentConfig | None = None
    layers: tuple[LayerProfile, ...] = field(default=(), repr=False)

    def to_dict(self, layers: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("config", "layers")}
        if self.config is not None:
            d["config"] = self.config.to_dict()
        if layers:
            d["layers"] = [asdict(layer) for layer in self.layers]
        return d


def profile(config: StudentConfig, input_frames: int, n_mels: int = 64) -> Profile:
    """Measure ``config`` on an input of ``input_frames`` x ``n_mels`` log-mel frames (cached)."""
    if input_frames < 1 or n_mels < 1:
        raise ValueError(f"input must be at least 1x1 frames x mels, got {input_frames}x{n_mels}")
    return _profile_cached(config, int(input_frames), int(n_mels))


@lru_cache(maxsize=8192)
def _profile_cached(config: StudentConfig, input_frames: int, n_mels: int) -> Profile:
    student = AudioStudent(config, AudioConfig(n_mels=n_mels), frontend=False, device="meta").eval()
    measured = profile_module(student, (1, input_frames, n_mels), device="meta")
    return Profile(name=config.name, config=config, input_frames=input_frames, n_mels=n_mels, **measured)


@dataclass(eq=False)  # identity matters, not equal fields
class _Node:
    """One tensor of the walk (views share their base's node)."""

    size: int  # elements = int8 bytes
    born: int  # step of the op that writes it
    group: int  # buffer it lives in: a fused op writes into its input's buffer


# Shape-preserving ops. On the meta device their kernels are slow Python
# decompositions (~150 ms per walk against ~10 ms), so the walk swaps in a
# stub that only produces the output shape; convs, linears, pads and pools run for real.
_ELEMENTWISE = _FUSABLE + (nn.Hardswish, nn.Sigmoid, nn.GELU, nn.LayerNorm, Add, Scale, L2Normalize)


def _shape_only(*args: torch.Tensor) -> torch.Tensor:
    # Output of an elementwise op: the shape of its largest input (x * gate, a + b, bn(x), ...).
    big = max(args, key=lambda t: t.numel())
    return big.new_empty(big.shape)


def profile_module(model: nn.Module, input_shape: tuple[int, ...], device: str | torch.device = "meta") -> dict[str, Any]:
    """Params, MACs, int8 flash and peak int8 activation RAM of any module, measured by one forward pass.

    ``input_shape`` includes the batch dimension, which must be 1. Returns the
    fields of :class:`Profile` other than name/config/input sizes.
    """
    if input_shape[0] != 1:
        raise ValueError("profile with batch size 1: RAM and MACs are per input")
    events: list[tuple[str, nn.Module, list[torch.Tensor], torch.Tensor]] = []
    names = {m: n for n, m in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children())]

    def record(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        events.append((names[mod], mod, [t for t in inputs if isinstance(t, torch.Tensor)], out))

    leaf_ids = {id(m) for m in leaves}

    def record_leaf(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if id(mod) in leaf_ids:
            record(mod, inputs, out)

    # One global hook costs less than a hook per leaf (the walk runs hundreds of times in fit()).
    hooks = [nn.modules.module.register_module_forward_hook(record_leaf)]
    stubbed = [m for m in leaves if isinstance(m, _ELEMENTWISE)] if str(device) == "meta" else []
    for m in stubbed:
        m.forward = _shape_only  # instance attribute: removed again below
    x = torch.empty(input_shape, device=device)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        for m in stubbed:
            del m.forward
    if not events:
        raise ValueError("the model ran no leaf module")
    events = _explicit_pads(events)

    # Pass 1: a node per tensor, in execution order (holding the tensors keeps id() unique).
    nodes: dict[int, _Node] = {}
    keep: list[torch.Tensor] = []
    groups = itertools.count()

    def node(t: torch.Tensor, step: int) -> _Node:
        if id(t) not in nodes:
            # A view (transpose, unsqueeze) is the same memory as its base.
            nodes[id(t)] = node(t._base, step) if t._base is not None else _Node(t.numel(), step, next(groups))
            keep.append(t)
        return nodes[id(t)]

    node(x, 0)
    steps = []
    for step, (_, mod, inputs, out) in enumerate(events):
        ins = [node(t, step) for t in inputs]
        steps.append((mod, ins, node(out, step), out))
    # Pass 2: when each node is last read.
    last_read: dict[int, int] = {}
    for step, (_, ins, _, _) in enumerate(steps):
        for n in ins:
            last_read[id(n)] = step
    # Pass 3: a fusable op writes into its input when nothing reads that input later.
    fused_steps = set()
    for step, (mod, ins, out_node, _) in enumerate(steps):
        if any(out_node is n for n in ins):  # returned its input (dropout in eval, identity)
            fused_steps.add(step)
        elif isinstance(mod, _FUSABLE) and len(ins) == 1 and last_read.get(id(ins[0])) == step:
            out_node.group = ins[0].group
            fused_steps.add(step)
    spans: dict[int, list[int]] = {}
    for n in {id(n): n for n in nodes.values()}.values():
        end = max(n.born, last_read.get(id(n), n.born))
        born, last, size = spans.get(n.group, [n.born, end, n.size])
        spans[n.group] = [min(born, n.born), max(last, end), max(size, n.size)]
    delta = [0] * (len(steps) + 1)  # sweep: +size where a buffer is born, -size after its last read
    for born, last, size in spans.values():
        delta[born] += size
        delta[last + 1] -= size
    live = list(itertools.accumulate(delta[:-1]))
    peak_step = max(range(len(steps)), key=live.__getitem__)

    macs = flash = 0
    layers = []
    for step, ((name, mod, _, _), (_, _, _, out)) in enumerate(zip(events, steps)):
        op_macs, op_flash = _costs(mod, out, events, step)
        macs += op_macs
        flash += op_flash
        layers.append(
            LayerProfile(name, type(mod).__name__, tuple(out.shape[1:]), _own_params(mod), op_macs, live[step],
                         step in fused_steps)
        )  # fmt: skip
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": int(macs),
        "flash_bytes": int(flash),
        "ram_bytes": int(live[peak_step]),
        "peak_layer": events[peak_step][0],
        "layers": tuple(layers),
    }


class ExplicitPad(nn.Module):
    """Stands for the PAD op a converter puts before a conv whose padding TFLite cannot express."""


def _explicit_pads(events: list) -> list:
    """Insert the PAD ops an int8 runtime runs before convs whose padding is not TF "same" or "valid".

    TFLite convolutions only pad "same" (for stride 2 on an even size: 0 before, 1 after)
    or not at all, so PyTorch's symmetric padding 1 on a stride-2 conv (PhiNet's
    downsampling depthwise convs, as in the reference) becomes PAD + conv: one more
    tensor, live next to the conv's input.
    """
    out = []
    for name, mod, inputs, result in events:
        if isinstance(mod, nn.Conv2d) and inputs and any(mod.padding) and not _is_same(mod, inputs[0].shape[-2:]):
            ph, pw = mod.padding  # type: ignore[misc]
            x = inputs[0]
            padded = x.new_empty((*x.shape[:-2], x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw))
            out.append((f"{name}(pad)", ExplicitPad(), [x], padded))
            inputs = [padded]
        out.append((name, mod, inputs, result))
    return out


def _is_same(conv: nn.Conv2d, size: Any) -> bool:
    for n, k, s, p in zip(size, conv.kernel_size, conv.stride, conv.padding):  # type: ignore[arg-type]
        total = max((-(-int(n) // s) - 1) * s + k - int(n), 0)
        if (total // 2, total - total // 2) != (p, p):
            return False
    return True


def _own_params(mod: nn.Module) -> int:
    return sum(p.numel() for p in mod.parameters(recurse=False))


def _costs(mod: nn.Module, out: torch.Tensor, events: list, step: int) -> tuple[int, int]:
    """(MACs, int8 flash bytes) of one leaf op."""
    if isinstance(mod, nn.Conv2d):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        macs = out.numel() * (mod.in_channels // mod.groups) * k
        return macs, _weight_flash(mod.weight.numel(), mod.out_channels, mod.bias is not None or _next_is_bn(events, step))
    if isinstance(mod, nn.Linear):
        macs = out.numel() * mod.in_features
        return macs, _weight_flash(mod.weight.numel(), mod.out_features, mod.bias is not None or _next_is_bn(events, step))
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        # Folded into the conv before it (counted there as bias); a BN on the input (bn0)
        # folds into the front end as a float scale and shift per mel bin.
        folded_into_conv = step > 0 and isinstance(events[step - 1][1], (nn.Conv2d, nn.Linear))
        return 0, 0 if folded_into_conv else 8 * mod.num_features
    return 0, 4 * _own_params(mod)  # LayerNorm and any other float parameters


def _weight_flash(weights: int, channels: int, has_bias: bool) -> int:
    # int8 weights + per-output-channel quantisation as TFLite stores it (float32 scale and
    # int64 zero point) + an int32 bias where there is one after BatchNorm folding.
    return weights + 12 * channels + (4 * channels if has_bias else 0)


def _next_is_bn(events: list, step: int) -> bool:
    return step + 1 < len(events) and isinstance(events[step + 1][1], (nn.BatchNorm1d, nn.BatchNorm2d))


# --------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class Budget:
    """Limits of a target device and the input the student will see.

    ``None`` means no limit. ``window_seconds`` defaults to ``audio_config.clip_seconds``;
    ``embed_width`` defaults to ``min(2 * dim, 2048)`` (the reference's 2048 for
    dim 1024); ``head_act`` defaults to ReLU, which TFLite Micro can run.
    """

    flash_bytes: int | None = None
    ram_bytes: int | None = None
    macs: int | None = None
    window_seconds: float | None = None
    dim: int = 1024
    embed_width: int | None = None
    head_act: str = "relu"
    audio_config: AudioConfig = field(default_factory=AudioConfig)

    @property
    def input_frames(self) -> int:
        seconds = self.audio_config.clip_seconds if self.window_seconds is None else self.window_seconds
        return self.audio_config.with_seconds(seconds).n_frames

    @property
    def window_audio_config(self) -> AudioConfig:
        """The AudioConfig whose clip is the budget's window."""
        if self.window_seconds is None:
            return self.audio_config
        return self.audio_config.with_seconds(self.window_seconds)

    @property
    def width(self) -> int:
        return self.embed_width if self.embed_width is not None else min(2 * self.dim, 2048)

    def limits(self) -> dict[str, int]:
        """The set limits, keyed by Profile field."""
        pairs = {"flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes, "macs": self.macs}
        return {k: v for k, v in pairs.items() if v is not None}

    def violations(self, p: Profile) -> dict[str, int]:
        """Limits that ``p`` exceeds: field → measured figure."""
        return {k: getattr(p, k) for k, limit in self.limits().items() if getattr(p, k) > limit}

    def fits(self, p: Profile) -> bool:
        return not self.violations(p)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["audio_config"] = self.audio_config.to_dict()
        d["input_frames"] = self.input_frames
        d["embed_width"] = self.width
        return d


_LABELS = {"flash_bytes": ("flash", format_bytes), "ram_bytes": ("RAM", format_bytes), "macs": ("MACs", format_count)}


def fit(
    budget: Budget,
    objective: str = "params",
    alphas: Iterable[float] = ALPHAS,
    betas: Iterable[float] = BETAS,
    t0s: Iterable[float] = T0S,
    num_layers: Iterable[int] = NUM_LAYERS,
) -> tuple[StudentConfig, Profile]:
    """The student with the most capacity whose measured profile fits ``budget``.

    ``objective`` is ``"params"`` (most parameters, then most MACs) or
    ``"macs"`` (most MACs, then most parameters). The answer is exact on the
    grid: for each (``N``, ``beta``, ``t0``) the widest ``alpha`` that fits is
    found by a search that starts from the neighbouring answer, since costs
    grow with ``alpha``, ``beta`` and ``t0``.

    Raises :class:`BudgetError` naming each limit that even the smallest student
    in the grid exceeds, with the smallest achievable figure.
    """
    if objective not in ("params", "macs"):
        raise ValueError(f"objective must be 'params' or 'macs', got {objective!r}")
    alphas = sorted(set(alphas))
    betas, t0s, ns = sorted(set(betas)), sorted(set(t0s)), sorted(set(num_layers))
    if not (alphas and betas and t0s and ns):
        raise ValueError("fit needs at least one value of alpha, beta, t0 and N")
    if any(b > 1 for b in betas):
        raise ValueError("fit searches beta <= 1 only (the search relies on costs growing with beta)")
    frames, n_mels = budget.input_frames, budget.audio_config.n_mels
    base = StudentConfig(alphas[0], betas[0], t0s[0], ns[0], embed_width=budget.width, dim=budget.dim,
                         head_act=budget.head_act)  # fmt: skip

    def key(p: Profile) -> tuple[int, int]:
        return (p.params, p.macs) if objective == "params" else (p.macs, p.params)

    def measure(i: int, b: float, t: float, n: int) -> Profile:
        return profile(base.replace(alpha=alphas[i], beta=b, t0=t, num_layers=n), frames, n_mels)

    best: Profile | None = None
    guess = len(alphas) // 4
    for n in ns:
        widest: dict[tuple[float, float], int] = {}  # (beta, t0) -> widest alpha index that fits
        for b in betas:
            for t in t0s:
                # A larger beta or t0 never fits a wider alpha than a smaller one did.
                bounds = [widest[k] for k in widest if k[0] <= b and k[1] <= t]
                hi = min(bounds, default=len(alphas) - 1)
                if hi < 0:
                    widest[(b, t)] = -1
                    continue
                start = min(guess, hi)
                start = min(_predict(alphas, start, measure(start, b, t, n), budget), hi)
                i = _widest_fitting(lambda j: budget.fits(measure(j, b, t, n)), start, hi)
                widest[(b, t)] = i
                if i < 0:
                    continue
                guess = i
                p = measure(i, b, t, n)
                if best is None or key(p) > key(best):
                    best = p
    if best is None:
        smallest = [profile(base.replace(num_layers=n), frames, n_mels) for n in ns]
        raise BudgetError(_impossible(budget, smallest))
    assert best.config is not None
    return best.config, best


def _predict(alphas: list[float], i: int, p: Profile, budget: Budget) -> int:
    """Grid index where the first limit is expected to be reached, from one probe at ``alphas[i]``.

    Flash and MACs grow about as alpha squared, activation RAM about linearly.
    The guess only picks where the exact search starts.
    """
    target = alphas[-1]
    for key, limit in budget.limits().items():
        power = 1.0 if key == "ram_bytes" else 0.5
        target = min(target, alphas[i] * (limit / max(getattr(p, key), 1)) ** power)
    return max([j for j, a in enumerate(alphas) if a <= target], default=0)


def _widest_fitting(fits: Any, start: int, hi: int) -> int:
    """Largest index in ``[0, hi]`` where the monotone predicate ``fits`` holds (-1 if none).

    Gallops from ``start`` (usually the answer of a neighbouring config) then
    bisects, so a good start costs two or three probes.
    """
    if fits(start):
        lo, step = start, 1
        while lo < hi:  # gallop up
            nxt = min(lo + step, hi)
            if not fits(nxt):
                hi = nxt - 1
                break
            lo, step = nxt, step * 2
    else:
        hi, step = start - 1, 1
        while True:  # gallop down
            nxt = max(hi - step + 1, 0)
            if fits(nxt):
                lo = nxt
                break
            if nxt == 0:
                return -1
            hi, step = nxt - 1, step * 2
    while lo < hi:  # bisect: fits(lo) holds, everything above hi fails
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _impossible(budget: Budget, smallest: list[Profile]) -> str:
    """Why no config fits: the limits every smallest config exceeds, with the best achievable figure."""
    frames = budget.input_frames
    head = f"embed {budget.width}, dim {budget.dim}, {frames} frames"
    parts = []
    for key, limit in budget.limits().items():
        least = min(smallest, key=lambda p: getattr(p, key))
        if getattr(least, key) > limit:
            label, fmt = _LABELS[key]
            parts.append(
                f"{label} {fmt(limit)} cannot be met: the smallest student needs {fmt(getattr(least, key))} "
                f"({least.name}, {head})"
            )
    if not parts:  # each limit can be met alone, but not all at once
        limits = ", ".join(f"{_LABELS[k][0]} {_LABELS[k][1](v)}" for k, v in budget.limits().items())
        parts.append(f"no student meets {limits} at once ({head})")
    hint = " Try a shorter --window, a smaller --dims or --embed-width." if budget.flash_bytes or budget.ram_bytes else ""
    return "; ".join(parts) + "." + hint


def describe(budget: Budget, p: Profile) -> list[tuple[str, str, str, str]]:
    """Rows (figure, measured, budget, use %) for printing a profile against a budget."""
    rows = [("params", f"{p.params:,}", "", "")]
    limits = {"macs": budget.macs, "flash_bytes": budget.flash_bytes, "ram_bytes": budget.ram_bytes}
    for key in ("macs", "flash_bytes", "ram_bytes"):
        label, fmt = _LABELS[key]
        value, limit = getattr(p, key), limits[key]
        rows.append((label, fmt(value), fmt(limit) if limit else "-", f"{100 * value / limit:.0f}%" if limit else ""))
    return rows
