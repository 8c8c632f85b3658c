"""Faster student training and inference on CPU, with the same math.

Two things make the PhiNet students slow on a CPU, and neither is arithmetic:

- **Memory layout.** PyTorch stores conv weights and activations as NCHW. The
  depthwise and 1x1 convolutions and BatchNorms that make up a PhiNet run
  faster on oneDNN's and PyTorch's NHWC ("channels last") kernels, which are
  picked when the conv weights are channels last; :func:`to_channels_last` does
  that in place (the parameters stay the same objects, so an optimizer built
  before keeps working). Activations then follow the weights' layout.
- **Fresh pages for every activation.** The expanded activations of a student
  batch are tens of MB each (208 x 345 x 32 floats per clip in block 1 of
  α1.5). glibc's malloc serves blocks above 32 MB with ``mmap`` and unmaps them
  on ``free``, so every step the kernel hands out, zero-fills and takes back
  hundreds of MB of pages. :func:`reuse_freed_memory` tells glibc to keep freed
  memory in the heap and reuse it.

Neither changes the math: :func:`reuse_freed_memory` leaves every value
identical bit for bit; channels last picks other kernels, whose sums run in
another order, so values agree to float rounding. Parameter names, shapes and
counts do not change. Checkpoints are unaffected:
:func:`tinyclap.checkpoint.save_checkpoint` writes contiguous copies, and
``load_state_dict`` copies into whatever layout the parameters have.
Measured in ``docs/distillation.md`` (speed section).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["channels_last", "is_channels_last", "reuse_freed_memory", "to_channels_last", "to_contiguous"]

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def to_channels_last(module: nn.Module) -> nn.Module:
    """Store ``module``'s 4-D parameters and buffers channels last (NHWC), in place; returns it."""
    return module.to(memory_format=torch.channels_last)


def to_contiguous(module: nn.Module) -> nn.Module:
    """Undo :func:`to_channels_last`: every 4-D parameter and buffer back to NCHW, in place; returns it."""
    return module.to(memory_format=torch.contiguous_format)


def is_channels_last(module: nn.Module) -> bool:
    """Whether ``module``'s 4-D parameters are laid out channels last (as :func:`to_channels_last` leaves them).

    Judged by strides, not ``is_contiguous``: a 1x1 or depthwise weight is
    "contiguous" in both layouts, but the conv kernels follow its strides.
    Parameters whose two layouts coincide (a single input channel and 1x1) are skipped.
    """
    decided = [_nhwc_strides(p) == p.stride() for p in module.parameters() if p.dim() == 4 and not _ambiguous(p)]
    return bool(decided) and all(decided)


def _nhwc_strides(t: torch.Tensor) -> tuple[int, ...]:
    _, c, h, w = t.shape
    return (h * w * c, 1, w * c, c)


def _ambiguous(t: torch.Tensor) -> bool:
    _, c, h, w = t.shape
    return _nhwc_strides(t) == (c * h * w, h * w, w, 1)


@contextlib.contextmanager
def channels_last(module: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """``with channels_last(student):`` trains or runs ``student`` channels last, then puts it back.

    Restores NCHW on exit only if the module was NCHW on entry, so nesting and
    an already converted module are fine.
    """
    restore = enabled and not is_channels_last(module)
    if restore:
        to_channels_last(module)
    try:
        yield module
    finally:
        if restore:
            to_contiguous(module)


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of unmapping it (process-wide).

    Turns off ``mmap`` for large blocks (they come from the heap, whose freed
    space is reused) and raises the trim threshold to 2 GB (free space at the
    top of the heap is kept up to that). The process then holds on to its peak
    memory: what a training or embedding run does anyway. Call it once, early,
    in a process that runs large CPU batches; a no-op (returns False) where the
    C library is not glibc. Idempotent.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; both must hold or memory is still returned to the OS.
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
