"""Validation during distillation: teacher–student cosine and (optionally) zero-shot accuracy.

Both run sharded across ranks (each rank takes every ``world``-th item) and
sum their counts with an all-reduce, so every rank gets the same figures.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from tinyclap.errors import DataError

from tinyclap.distill.ddp import DistEnv, all_reduce_sum
from tinyclap.distill.losses import cosine_similarity

__all__ = ["ZeroShotSet", "mean_cosine", "stream_cosines", "zeroshot_accuracy", "iterate_clips"]

Encode = Callable[[torch.Tensor], torch.Tensor]  # waveforms (B, S) on device -> (B, D)


class ZeroShotSet:
    """A labelled dataset and the teacher's class-prompt embeddings (C, D) to score the student on.

    ``class_embeddings`` may be a (C, D) tensor/array or anything with an
    ``.embeddings`` attribute (a ``tinyclap.bank.PromptBank``). When the student
    is pruned to some dims of the teacher space, pass the full (C, D) matrix:
    the same dims are selected and re-normalised.
    """

    def __init__(self, class_embeddings: Any, dataset: Dataset):
        self.bank = class_embeddings if hasattr(class_embeddings, "select_teacher_dims") else None
        emb = getattr(class_embeddings, "embeddings", class_embeddings)
        self.class_embeddings = torch.as_tensor(emb, dtype=torch.float32)
        if self.class_embeddings.dim() != 2:
            raise DataError(f"class embeddings must be (C, D), got {tuple(self.class_embeddings.shape)}")
        self.dataset = dataset

    def for_dims(self, dims: Sequence[int] | None, dim: int) -> torch.Tensor:
        """Class embeddings in the student's space: dims selected when needed, unit rows."""
        emb = self.class_embeddings
        if self.bank is not None and dims is not None:  # a PromptBank knows which teacher dims it holds
            emb = torch.as_tensor(self.bank.select_teacher_dims(dims).embeddings, dtype=torch.float32)
        elif dims is not None and emb.shape[1] != dim:
            emb = emb[:, list(dims)]
        if emb.shape[1] != dim:
            raise DataError(f"class embeddings have {emb.shape[1]} dims, the student outputs {dim}")
        return F.normalize(emb, dim=-1)


def iterate_clips(dataset: Dataset, env: DistEnv, batch_size: int, num_workers: int = 0):
    """This rank's share of ``dataset`` in batches of ``tinyclap.data`` Batch (broken items dropped)."""
    from tinyclap.data.base import collate

    part = Subset(dataset, range(env.rank, len(dataset), env.world_size))
    # A private generator: a DataLoader would otherwise draw from the global RNG (dropout stream).
    loader = DataLoader(
        part, batch_size=batch_size, num_workers=num_workers, collate_fn=collate, generator=torch.Generator()
    )
    for batch in loader:
        if len(batch.ids):
            yield batch


@torch.no_grad()
def mean_cosine(
    encode: Encode, lookup: Callable[[Sequence[str]], torch.Tensor], dataset: Dataset, env: DistEnv,
    batch_size: int, num_workers: int = 0,
) -> tuple[float | None, int]:
    """Mean teacher–student cosine over ``dataset`` and the number of clips it covers."""
    total = torch.zeros(2, dtype=torch.float64)
    for batch in iterate_clips(dataset, env, batch_size, num_workers):
        emb = encode(batch.clips.to(env.device))
        cos = cosine_similarity(emb.float(), lookup(batch.ids).to(emb.device))
        total += torch.tensor([float(cos.sum()), float(cos.numel())], dtype=torch.float64)
    total = all_reduce_sum(env, total)
    n = int(total[1])
    return (float(total[0] / n) if n else None), n


@torch.no_grad()
def stream_cosines(
    encode: Encode, encode_stream: Encode, lookup: Callable[[Sequence[str]], torch.Tensor], dataset: Dataset,
    env: DistEnv, batch_size: int, num_workers: int = 0,
) -> tuple[float | None, float | None, int]:
    """Mean cosine of the streamed embeddings to the teacher, and to the whole-clip ones; clip count.

    The second figure is the streaming contract of issue #7: a device that
    embeds a clip window by window should land where the whole clip does.
    """
    total = torch.zeros(3, dtype=torch.float64)
    for batch in iterate_clips(dataset, env, batch_size, num_workers):
        clips = batch.clips.to(env.device)
        streamed = encode_stream(clips).float()
        to_teacher = cosine_similarity(streamed, lookup(batch.ids).to(streamed.device))
        to_whole = cosine_similarity(streamed, encode(clips).float())
        total += torch.tensor([float(to_teacher.sum()), float(to_whole.sum()), float(len(batch.ids))],
                              dtype=torch.float64)
    total = all_reduce_sum(env, total)
    n = int(total[2])
    if not n:
        return None, None, 0
    return float(total[0] / n), float(total[1] / n), n


@torch.no_grad()
def zeroshot_accuracy(
    encode: Encode, class_embeddings: torch.Tensor, dataset: Dataset, env: DistEnv,
    batch_size: int, num_workers: int = 0,
) -> tuple[float | None, int]:
    """Fraction of labelled clips whose nearest class embedding is their label."""
    total = torch.zeros(2, dtype=torch.float64)
    classes = class_embeddings.to(env.device)
    for batch in iterate_clips(dataset, env, batch_size, num_workers):
        labels = batch.targets
        if any(not isinstance(t, int) for t in labels):
            raise DataError("zero-shot validation needs a labelled dataset (targets must be class indices)")
        emb = F.normalize(encode(batch.clips.to(env.device)).float(), dim=-1)
        pred = (emb @ classes.T).argmax(dim=-1).cpu()
        correct = (pred == torch.tensor(labels)).sum()
        total += torch.tensor([float(correct), float(len(labels))], dtype=torch.float64)
    total = all_reduce_sum(env, total)
    n = int(total[1])
    return (float(total[0] / n) if n else None), n
