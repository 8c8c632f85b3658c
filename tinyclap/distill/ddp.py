"""Data parallelism: process groups from torchrun's environment, and synchronised BatchNorm.

``torchrun --nproc_per_node N -m tinyclap distill ...`` starts N processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`setup` joins them into one
process group (NCCL on GPUs, gloo on CPU). Without those variables everything
here is a no-op and training runs in one process.

BatchNorm and data parallelism: each rank only sees its share of the global
batch, so plain BatchNorm would normalise with per-rank statistics and training
would differ from one process with the same global batch. We replace every
BatchNorm with a synchronised one for the duration of training: PyTorch's
``SyncBatchNorm`` on GPUs, and on CPU (where ``SyncBatchNorm`` refuses to run)
:class:`DistributedBatchNorm`, which all-reduces the batch sums through the
autograd-aware all-reduce. Both normalise with the
statistics of the global batch, so forward, backward and running statistics
match a single process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "DistEnv",
    "setup",
    "teardown",
    "barrier",
    "all_reduce_sum",
    "all_gather_objects",
    "broadcast_object",
    "DistributedBatchNorm",
    "differentiable_all_reduce",
    "synchronised_batchnorm",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its rank, how many there are, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when :func:`setup` created the process group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _pick_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device (e.g. auto, cpu, cuda, cuda:1, mps)") from err
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def setup(device: str | torch.device | None = "auto") -> DistEnv:
    """Join torchrun's process group if there is one; returns this process's :class:`DistEnv`."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistEnv(rank, world, local, _pick_device(device, local), owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(device=_pick_device(device, 0))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = _pick_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local, dev, owns_group=True)


def teardown(env: DistEnv) -> None:
    """Leave the process group if :func:`setup` created it."""
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(env: DistEnv, values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over ranks (returned; the input is not modified)."""
    if not env.distributed:
        return values
    out = values.detach().clone().to(_comm_device(env))
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable objects)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(env: DistEnv, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _comm_device(env: DistEnv) -> torch.device:
    return env.device if dist.get_backend() == "nccl" else torch.device("cpu")


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is again the sum over ranks (each rank's output feeds every rank's loss)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


def differentiable_all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """``all_reduce(SUM)`` that autograd can go through."""
    return _AllReduceSum.apply(tensor)


class DistributedBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all ranks, on any device (gloo included).

    Built from an existing BatchNorm by :meth:`wrap`, sharing its parameters and
    buffers, so the state dict and the optimizer see the very same tensors.
    Statistics are exact two-pass ones (mean, then mean squared deviation), both
    all-reduced with :func:`differentiable_all_reduce`, so
    gradients flow through the other ranks' contributions as in a single process.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 - torch's name
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {input.dim()}D")

    @classmethod
    def wrap(cls, bn: _BatchNorm) -> "DistributedBatchNorm":
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.num_features, new.eps, new.momentum = bn.num_features, bn.eps, bn.momentum
        new.affine, new.track_running_stats = bn.affine, bn.track_running_stats
        new.weight, new.bias = bn.weight, bn.bias  # same Parameter objects
        new.register_buffer("running_mean", bn.running_mean)
        new.register_buffer("running_var", bn.running_var)
        new.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        new.training = bn.training
        return new

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        all_reduce = differentiable_all_reduce
        self._check_input_dim(input)
        dims = [d for d in range(input.dim()) if d != 1]
        shape = [1, -1] + [1] * (input.dim() - 2)
        local_n = input.numel() // input.shape[1]
        count = all_reduce(torch.tensor([float(local_n)], dtype=input.dtype, device=input.device))
        mean = all_reduce(input.sum(dim=dims)) / count
        centred = input - mean.reshape(shape)
        var = all_reduce((centred * centred).sum(dim=dims)) / count  # biased, as BatchNorm normalises
        out = centred * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                n = float(count.item())
                unbiased = var * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        return out


def _swap_batchnorms(module: nn.Module, make) -> list[tuple[nn.Module, str, nn.Module]]:
    swapped = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm) and not isinstance(child, (DistributedBatchNorm, nn.SyncBatchNorm)):
                setattr(parent, name, make(child))
                swapped.append((parent, name, child))
    return swapped


def _native_sync(bn: _BatchNorm) -> nn.SyncBatchNorm:
    sync = nn.SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    sync.weight, sync.bias = bn.weight, bn.bias
    sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
    sync.num_batches_tracked = bn.num_batches_tracked
    sync.training = bn.training
    return sync


@contextmanager
def synchronised_batchnorm(model: nn.Module, env: DistEnv) -> Iterator[nn.Module]:
    """Swap every BatchNorm of ``model`` for a synchronised one while inside; swap back after.

    The replacements share parameters and buffers with the originals, so
    nothing needs copying back and state-dict keys do not change. A no-op in
    a single process.
    """
    if not env.distributed:
        yield model
        return
    make = _native_sync if env.device.type == "cuda" else DistributedBatchNorm.wrap
    swapped = _swap_batchnorms(model, make)
    try:
        yield model
    finally:
        for parent, name, original in swapped:
            replacement = getattr(parent, name)
            original.train(replacement.training)
            setattr(parent, name, original)


def wrap_ddp(model: nn.Module, env: DistEnv, sync_buffers: bool) -> nn.Module:
    """``DistributedDataParallel(model)``; buffers are broadcast from rank 0 at every forward
    only when ``sync_buffers`` (not needed when BatchNorm is synchronised: they stay equal)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    kwargs: dict[str, Any] = {"device_ids": [env.device.index] if env.device.type == "cuda" else None}
    params = inspect.signature(DDP.__init__).parameters
    if "forward_sync_buffers" in params:  # newer torch; buffers are still synced once at construction
        kwargs["forward_sync_buffers"] = sync_buffers
    else:
        kwargs["broadcast_buffers"] = sync_buffers
    return DDP(model, **kwargs)
