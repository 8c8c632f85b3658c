"""The distillation loop: student ← cached teacher embeddings, cosine loss.

:func:`distill` trains an ``AudioStudent`` (or anything with the same surface:
``frontend``, ``forward(logmel)``, ``features``/``head``/``projection``,
``audio_config``, ``dim``) to reproduce the teacher embeddings stored in an
:class:`~tinyclap.distill.cache.EmbeddingCache`:

- stage 1 trains the whole student; stage 2 only its projection head (the
  backbone is frozen and in eval mode, and without augmentation its pooled
  features are computed once and reused every epoch);
- ``dims`` restricts the targets to some latent dimensions (re-normalised),
  which is how pruning fine-tunes a student cut to k dims;
- the sample order of epoch ``e`` is a permutation drawn from ``(seed, e)``;
  augmentation draws are keyed by ``(seed, e, item)``, so an interrupted run
  resumed from ``state.pt`` ends exactly where an uninterrupted one does, and a
  torchrun job matches one process with the same global batch;
- Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves the state and
  raises :class:`DistillInterrupted`; ``resume=True`` continues.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from tinyclap.audio import LogMel
from tinyclap.errors import CheckpointError, DataError, DivergedError, TinyClapError
from tinyclap.io import write_json
from tinyclap.runs import check_run_folder, mark_run_folder
from tinyclap.stopping import StopFlag, graceful_stop
from tinyclap.students.speed import channels_last

from tinyclap.distill import checkpoints as ckpt
from tinyclap.distill.augment import augment_batch
from tinyclap.distill.cache import CacheError, EmbeddingCache
from tinyclap.distill.ddp import (
    DistEnv,
    all_gather_objects,
    all_reduce_sum,
    setup,
    synchronised_batchnorm,
    teardown,
    wrap_ddp,
)
from tinyclap.distill.log import plot_curves, write_metrics
from tinyclap.distill.losses import cosine_distillation_loss, cosine_similarity
from tinyclap.distill.presets import RESUMABLE_KEYS, DistillConfig, make_config
from tinyclap.distill.sources import as_dataset, audio_config_of, dataset_groups, dataset_ids, describe
from tinyclap.distill.validation import ZeroShotSet, mean_cosine, stream_cosines, zeroshot_accuracy
from tinyclap.export.streaming import mean_pooled, plan_window

__all__ = ["distill", "DistillResult", "DistillInterrupted", "RunExistsError", "split_validation", "epoch_batches"]

StepHook = Callable[[int, float], None]


class DistillInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C/SIGTERM (or a hook); the state was saved for ``resume=True``."""

    def __init__(self, state_path: Path | None, epoch: int, batch: int):
        self.state_path, self.epoch, self.batch = state_path, epoch, batch
        where = f"epoch {epoch + 1}, batch {batch}"
        saved = f"state saved to {state_path}" if state_path else "no state saved (interrupted mid-step)"
        super().__init__(f"distillation interrupted at {where}; {saved}; continue with --resume")


class RunExistsError(TinyClapError, FileExistsError):
    """The output folder already holds a run and ``resume`` was not asked for."""


@dataclass
class DistillResult:
    """What a run produced. ``student`` holds the weights of the last epoch."""

    student: nn.Module
    out_dir: Path
    last_path: Path | None
    best_path: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    global_step: int = 0
    broken: list[str] = field(default_factory=list)

    @property
    def epochs_run(self) -> int:
        return len(self.history)


# --------------------------------------------------------------------- data order
def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, world_size: int = 1) -> list[np.ndarray]:
    """Global batches (item indices) of epoch ``epoch``: a permutation from ``(seed, epoch)``.

    The last batch is kept when short, unless it has fewer items than ranks
    (every rank must get at least one item).
    """
    state = np.random.SeedSequence([int(seed), int(epoch), 0x7A17]).generate_state(1, np.uint64)[0]
    perm = np.random.Generator(np.random.PCG64(int(state))).permutation(n)
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if batches and len(batches[-1]) < world_size:
        batches.pop()
    return batches


def rank_share(batch: np.ndarray, env: DistEnv) -> np.ndarray:
    """This rank's contiguous part of a global batch (parts differ in size by at most one)."""
    return np.array_split(batch, env.world_size)[env.rank]


def split_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out ``fraction`` of ``dataset``'s source files (all windows of a file go together)."""
    if fraction <= 0:
        return dataset, None
    groups = dataset_groups(dataset)
    if groups is None:
        groups = list(range(len(dataset)))
    keys = sorted(set(groups), key=repr)
    if len(keys) < 2:
        return dataset, None
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x5A1]).generate_state(1)[0]))
    n_val = min(len(keys) - 1, max(1, int(round(fraction * len(keys)))))
    held = {keys[i] for i in rng.permutation(len(keys))[:n_val]}
    val_idx = [i for i, g in enumerate(groups) if g in held]
    train_idx = [i for i, g in enumerate(groups) if g not in held]
    return Subset(dataset, train_idx), Subset(dataset, val_idx)


def _loader_generator(seed: int, epoch: int) -> torch.Generator:
    """A DataLoader draws its worker seed from the global RNG unless given a generator;
    a private one keeps the global stream (dropout) independent of how many loaders ran,
    which is what makes a resumed run match an uninterrupted one."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([int(seed), int(epoch) + 1, 0x10AD]).generate_state(1)[0]))
    return g


class _Indexed(Dataset):
    """Items with their dataset index, so augmentation can key its draws on it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.dataset[i]


def _collate_indexed(pairs: Sequence[tuple[int, Any]]) -> tuple[list[int], Any]:
    from tinyclap.data.base import Example, collate

    return [i for i, x in pairs if isinstance(x, Example)], collate([x for _, x in pairs])


# --------------------------------------------------------------------- the student
def _frontend(student: nn.Module) -> nn.Module:
    front = getattr(student, "frontend", None)
    return front if front is not None else LogMel(student.audio_config)


def _trainable_head(student: nn.Module) -> nn.Module:
    head = getattr(student, "projection", None)
    if not isinstance(head, nn.Module):
        raise TinyClapError(f"{type(student).__name__} has no .projection: stage 2 needs one")
    return head


class _Head(nn.Module):
    """Pooled features → unit embedding, through the student's own ``head``."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.student.head(pooled)


class _Streamed(nn.Module):
    """Whole-clip and streamed embeddings of one batch, stacked ``(2B, D)`` (or ``(B, D)`` streamed only).

    Stage 1 takes log-mels (``(B, T, M)`` whole clips, ``(B, W, frames, M)``
    windows) and runs the student's features; stage 2 takes the pooled vectors
    (``(B, E)`` whole, ``(B, E)`` mean over windows), computed without
    gradients by the caller, and runs only the head. One module so that DDP
    sees a single forward.
    """

    def __init__(self, student: nn.Module, stage: int, whole: bool):
        super().__init__()
        self.student, self.stage, self.whole = student, stage, whole

    def forward(self, x: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        s = self.student
        if self.stage == 1:
            pooled = mean_pooled(s, windows)
            if self.whole:
                pooled = torch.cat([s.features(x), pooled])
        else:
            pooled = torch.cat([x, windows]) if self.whole else windows
        return s.head(pooled)


def _set_modes(student: nn.Module, stage: int) -> None:
    if stage == 1:
        student.train()
        return
    student.eval()  # frozen backbone: BatchNorm keeps its running statistics
    _trainable_head(student).train()


def _freeze(student: nn.Module, stage: int) -> list[nn.Parameter]:
    if stage == 1:
        for p in student.parameters():
            p.requires_grad_(True)
        return list(student.parameters())
    for p in student.parameters():
        p.requires_grad_(False)
    head = list(_trainable_head(student).parameters())
    for p in head:
        p.requires_grad_(True)
    return head


# --------------------------------------------------------------------- the run
class _Run:
    """One call of :func:`distill`; holds the state that a resume restores."""

    def __init__(
        self,
        student: nn.Module,
        cache: EmbeddingCache,
        train: Dataset,
        val: Dataset | None,
        cfg: DistillConfig,
        out: Path,
        env: DistEnv,
        zeroshot: ZeroShotSet | None,
        on_step: StepHook | None,
    ):
        self.student, self.cache, self.train_set, self.val_set = student, cache, train, val
        self.cfg, self.out, self.env, self.zeroshot, self.on_step = cfg, out, env, zeroshot, on_step
        self.paths = ckpt.run_paths(out)
        self.frontend = _frontend(student).to(env.device)
        self.params = _freeze(student, cfg.stage)
        self.windowing = plan_window(student, cfg.stream_window) if cfg.stream_window is not None else None
        if self.windowing is not None:
            self.window_frontend = LogMel(self.windowing.audio_config).to(env.device)
        self.precompute = cfg.stage == 2 and (
            cfg.precompute_features == "yes"
            or (cfg.precompute_features == "auto" and not cfg.augment.enabled and self.windowing is None)
        )
        if self.precompute and cfg.augment.enabled:
            raise TinyClapError("precompute_features='yes' cannot be combined with augmentation")
        if self.precompute and self.windowing is not None:
            raise TinyClapError("precompute_features='yes' cannot be combined with stream_window")
        if cfg.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(self.params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        sch = cfg.scheduler
        if sch.name == "plateau":
            self.scheduler: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=sch.factor, patience=sch.patience, min_lr=sch.min_lr
            )
        elif sch.name == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs, eta_min=sch.min_lr)
        else:
            self.scheduler = None
        # Progress through the run (what state.pt stores).
        self.epoch, self.batch, self.global_step = 0, 0, 0
        self.loss_sum, self.loss_count, self.train_seconds = 0.0, 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.broken: dict[str, str] = {}
        self.features: dict[str, tuple[torch.Tensor, list[str | None]]] = {}

    # ------------------------------------------------------------ state i/o
    def state_dict(self) -> dict[str, Any]:
        # Collective: every rank's RNG and partial-epoch loss sums go into the one file.
        cuda_rng = torch.cuda.get_rng_state() if self.env.device.type == "cuda" else None
        per_rank = all_gather_objects(self.env, (torch.get_rng_state(), self.loss_sum, self.loss_count, cuda_rng))
        return {
            "config": self.cfg.to_dict(),
            "cache_hash": self.cache.config_hash,
            "kept_dims": self.cache.kept_dims,
            "world_size": self.env.world_size,
            "epoch": self.epoch,
            "batch": self.batch,
            "global_step": self.global_step,
            "loss_sum": [r[1] for r in per_rank],
            "loss_count": [r[2] for r in per_rank],
            "train_seconds": self.train_seconds,
            "history": self.history,
            "best_metric": self.best_metric,
            "model": {k: v.detach().cpu() for k, v in self.student.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": [r[0] for r in per_rank],
            "cuda_rng": [r[3] for r in per_rank],
        }

    def save_state(self) -> Path | None:
        state = self.state_dict()  # collective (RNG gather): every rank calls it
        if not all(math.isfinite(x) for x in state["loss_sum"]):  # gathered: every rank decides alike
            self._diverged({"train_loss": float("nan")})
        if not self.env.is_main:
            return None
        return ckpt.save_training_state(self.paths["state"], state)

    def load_state(self, state: dict[str, Any]) -> None:
        saved = state["config"]
        now = self.cfg.to_dict()
        # A setting added after the run was saved holds its default there (so old runs still resume).
        defaults = DistillConfig().to_dict()
        changed = sorted(k for k in now if k not in RESUMABLE_KEYS and saved.get(k, defaults[k]) != now[k])
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
            raise CheckpointError(
                f"{self.paths['state']}: the run was started with other settings ({diffs}); "
                "resume with the original settings or use another --out"
            )
        if state["cache_hash"] != self.cache.config_hash or state["kept_dims"] != self.cache.kept_dims:
            raise CheckpointError(f"{self.paths['state']}: the run was trained on another cache or dims selection")
        try:
            self.student.load_state_dict(state["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{self.paths['state']}: weights do not fit this student ({err})") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
            sch = self.scheduler
            if isinstance(sch, torch.optim.lr_scheduler.CosineAnnealingLR) and sch.T_max != self.cfg.epochs:
                # `epochs` may change on resume: decay over the new length from where the run is
                # (closed form; PyTorch's recursive update then continues it).
                sch.T_max = self.cfg.epochs
                t = min(sch.last_epoch, sch.T_max)
                for group, base in zip(self.optimizer.param_groups, sch.base_lrs):
                    group["lr"] = sch.eta_min + (base - sch.eta_min) * (1 + math.cos(math.pi * t / sch.T_max)) / 2
                sch._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        for key in ("epoch", "batch", "global_step", "train_seconds", "best_metric"):
            setattr(self, key, state[key])
        self.history = list(state["history"])
        rng = state["rng"]
        if state["world_size"] == self.env.world_size:
            r = self.env.rank
            torch.set_rng_state(rng[r])
            self.loss_sum, self.loss_count = float(state["loss_sum"][r]), int(state["loss_count"][r])
            if state["cuda_rng"][r] is not None and self.env.device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"][r])
        else:
            # The partial epoch's loss is kept whole on rank 0 (a logging figure only).
            self.loss_sum = float(sum(state["loss_sum"])) if self.env.is_main else 0.0
            self.loss_count = int(sum(state["loss_count"])) if self.env.is_main else 0
            if self.env.is_main:
                print(f"note: resuming on {self.env.world_size} ranks a run saved on {state['world_size']}: "
                      "data order is unchanged, dropout draws are not")

    # ------------------------------------------------------------ encoders
    def _logmel(self, clips: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the front end has no parameters
            return self.frontend(clips)

    def _window_logmels(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` clips → ``(B, W, frames, M)`` log-mels of back-to-back windows, as the device cuts them
        (:func:`tinyclap.export.streaming.cut_windows`: the tail shorter than a window is dropped)."""
        n, frames = self.windowing.samples, self.windowing.frames
        b, count = clips.shape[0], clips.shape[1] // n
        with torch.no_grad():
            mel = self.window_frontend(clips[:, : count * n].reshape(b * count, n))[:, :frames]
        return mel.reshape(b, count, frames, -1)

    def encode_eval(self, clips: torch.Tensor) -> torch.Tensor:
        """Waveforms → student embeddings (validation runs with the student in eval mode)."""
        return self.student(self._logmel(clips))

    def encode_stream(self, clips: torch.Tensor) -> torch.Tensor:
        """Waveforms → streamed student embeddings (windows → pooled → mean → head)."""
        return self.student.head(mean_pooled(self.student, self._window_logmels(clips)))

    def _compute_features(self, name: str, dataset: Dataset) -> None:
        """Stage 2 without augmentation: pooled features of every item, computed once."""
        env = self.env
        bs = self.cfg.val_batch_size or self.cfg.batch_size
        rows: list[tuple[int, torch.Tensor, str]] = []
        indexed = _Indexed(dataset)
        part = Subset(indexed, range(env.rank, len(dataset), env.world_size))
        loader = DataLoader(
            part, batch_size=bs, num_workers=self.cfg.num_workers, collate_fn=_collate_indexed,
            generator=_loader_generator(self.cfg.seed, -1),
        )
        self.student.eval()
        with torch.no_grad():
            for idx, batch in loader:
                self._note_broken(batch)
                if idx:
                    feats = self.student.features(self._logmel(batch.clips.to(env.device))).cpu()
                    rows += list(zip(idx, feats, batch.ids))
        _set_modes(self.student, self.cfg.stage)
        gathered = [r for part_rows in all_gather_objects(env, rows) for r in part_rows]
        if not gathered:
            raise DataError(f"{name}: no readable items to compute features for")
        width = gathered[0][1].shape[0]
        table = torch.full((len(dataset), width), float("nan"))
        ids: list[str | None] = [None] * len(dataset)
        for i, f, cid in gathered:
            table[i], ids[i] = f, cid
        self.features[name] = (table.to(env.device), ids)

    def _note_broken(self, batch: Any) -> None:
        for s in getattr(batch, "broken", []):
            self.broken[s.path] = s.reason

    # ------------------------------------------------------------ batches
    def _epoch_inputs(self, batches: list[np.ndarray], start: int) -> Iterator[tuple[list[int], list[str], torch.Tensor]]:
        """(item indices, clip ids, inputs) of this rank for batches[start:]."""
        shares = [rank_share(b, self.env).tolist() for b in batches[start:]]
        if self.precompute:
            table, ids = self.features["train"]
            for share in shares:
                keep = [i for i in share if ids[i] is not None]
                yield keep, [ids[i] for i in keep], table[keep]
            return
        loader = DataLoader(
            _Indexed(self.train_set),
            batch_sampler=shares,
            num_workers=self.cfg.num_workers,
            collate_fn=_collate_indexed,
            generator=_loader_generator(self.cfg.seed, self.epoch),
        )
        for idx, batch in loader:
            self._note_broken(batch)
            yield idx, list(batch.ids), batch.clips

    # ------------------------------------------------------------ one step
    def step(self, model: nn.Module, idx: list[int], ids: list[str], inputs: torch.Tensor, counts: torch.Tensor) -> float:
        cfg, env = self.cfg, self.env
        targets = self.cache.lookup(ids).to(env.device)
        if self.precompute:
            emb = model(inputs.to(env.device))
            weights = [1.0]
        else:
            wave = augment_batch(inputs, idx, cfg.augment, self.cache.audio_config.sample_rate, cfg.seed, self.epoch)
            wave = wave.to(env.device)
            whole = self.windowing is None or cfg.stream_weight < 1.0
            x = self._logmel(wave) if whole else None
            windows = self._window_logmels(wave) if self.windowing is not None else None
            if cfg.stage == 2:
                with torch.no_grad():
                    x = self.student.features(x) if x is not None else None
                    if windows is not None:
                        windows = mean_pooled(self.student, windows)
            if windows is None:
                emb, weights = model(x), [1.0]
            else:
                emb = model(x, windows)  # whole-clip rows first (when trained), then streamed rows
                weights = [1.0 - cfg.stream_weight, cfg.stream_weight] if whole else [1.0]
        n_global = float(counts.sum())
        # DDP averages gradients over ranks, so scale each rank's sum by world/n_global.
        parts = emb.split(len(ids))
        terms = [(w, e, targets) for w, e in zip(weights, parts)]
        if len(parts) == 2 and cfg.stream_consistency:  # the streaming contract: streamed -> (fixed) whole clip
            terms.append((cfg.stream_consistency, parts[1], parts[0]))
        loss = sum(w * cosine_distillation_loss(e, t, normaliser=n_global / env.world_size) for w, e, t in terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            return float(sum(-w * cosine_similarity(e.detach(), t).sum() for w, e, t in terms))

    # ------------------------------------------------------------ validation
    def validate(self) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        bs = cfg.val_batch_size or cfg.batch_size
        out: dict[str, Any] = {"val_cosine": None, "val_loss": None, "val_items": 0}
        self.student.eval()
        if self.val_set is not None:
            if self.precompute:
                cos, n = self._cosine_from_features("val")
            else:
                cos, n = mean_cosine(self.encode_eval, self.cache.lookup, self.val_set, env, bs, cfg.num_workers)
            out.update(val_cosine=cos, val_loss=(-cos if cos is not None else None), val_items=n)
            if self.windowing is not None:
                s_cos, agree, _ = stream_cosines(
                    self.encode_eval, self.encode_stream, self.cache.lookup, self.val_set, env, bs, cfg.num_workers
                )
                out.update(val_stream_cosine=s_cos, val_stream_agreement=agree)
                if cos is not None and s_cos is not None:  # monitor the loss that is trained
                    w = cfg.stream_weight
                    out["val_loss"] = -((1.0 - w) * cos + w * s_cos + cfg.stream_consistency * agree)
        if self.zeroshot is not None:
            classes = self.zeroshot.for_dims(self.cache.kept_dims, self.cache.dim)
            acc, n = zeroshot_accuracy(self.encode_eval, classes, self.zeroshot.dataset, env, bs, cfg.num_workers)
            out.update(zeroshot_acc=acc, zeroshot_items=n)
            if self.windowing is not None:
                acc, _ = zeroshot_accuracy(self.encode_stream, classes, self.zeroshot.dataset, env, bs, cfg.num_workers)
                out.update(zeroshot_stream_acc=acc)
        _set_modes(self.student, cfg.stage)
        return out

    @torch.no_grad()
    def _cosine_from_features(self, name: str) -> tuple[float | None, int]:
        table, ids = self.features[name]
        mine = [i for i in range(self.env.rank, len(ids), self.env.world_size) if ids[i] is not None]
        head = _Head(self.student)
        total = torch.zeros(2, dtype=torch.float64)
        bs = self.cfg.val_batch_size or self.cfg.batch_size
        for s in range(0, len(mine), bs):
            chunk = mine[s : s + bs]
            emb = head(table[chunk])
            cos = cosine_similarity(emb, self.cache.lookup([ids[i] for i in chunk]).to(emb.device))
            total += torch.tensor([float(cos.sum()), float(len(chunk))], dtype=torch.float64)
        total = all_reduce_sum(self.env, total)
        n = int(total[1])
        return (float(total[0] / n) if n else None), n

    # ------------------------------------------------------------ checkpoints
    def _meta(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "teacher": self.cache.teacher_name,
            "teacher_id": self.cache.teacher_id,
            "licence": self.cache.teacher_licence,
            "stage": self.cfg.stage,
            "epoch": row["epoch"],
            "step": self.global_step,
            "metrics": {k: v for k, v in row.items() if k not in ("epoch",)},
            "distill": {"cache": str(self.cache.root), "cache_hash": self.cache.config_hash, "config": self.cfg.to_dict()},
        }

    def end_of_epoch(self, model: nn.Module) -> None:
        cfg = self.cfg
        metrics = self.validate()
        train_loss = self.loss_sum / self.loss_count if self.loss_count else float("nan")
        monitor = metrics["val_loss"] if metrics["val_loss"] is not None else train_loss
        figures = {**metrics, **({"train_loss": train_loss} if self.loss_count else {})}
        bad = {k: v for k, v in figures.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:  # every figure is reduced over ranks: all ranks stop here together
            self._diverged(bad)
        lr = self.optimizer.param_groups[0]["lr"]
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitor)
        elif self.scheduler is not None:
            self.scheduler.step()
        row = {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "lr": lr,
            "train_loss": train_loss,
            **metrics,
            "train_seconds": round(self.train_seconds, 4),
        }
        score = -monitor
        is_best = self.best_metric is None or score > self.best_metric
        if is_best:
            self.best_metric = score
        row["best"] = is_best
        self.history.append(row)
        # Next epoch starts clean; state.pt (written last) is the commit point.
        self.epoch, self.batch = self.epoch + 1, 0
        self.loss_sum, self.loss_count, self.train_seconds = 0.0, 0, 0.0
        if self.env.is_main:
            meta = self._meta(row)
            ckpt.save_student_checkpoint(self.paths["last"], self.student, **meta)
            if is_best:
                ckpt.save_student_checkpoint(self.paths["best"], self.student, **meta)
            write_metrics(self.paths["metrics"], self.history)
        self.save_state()
        if self.env.is_main and cfg.progress:
            parts = [f"epoch {row['epoch']}/{cfg.epochs}", f"loss {train_loss:.4f}"]
            if metrics["val_cosine"] is not None:
                parts.append(f"val cos {metrics['val_cosine']:.4f}")
            if metrics.get("val_stream_agreement") is not None:
                parts.append(f"streamed cos {metrics['val_stream_cosine']:.4f} (vs whole {metrics['val_stream_agreement']:.4f})")
            if metrics.get("zeroshot_acc") is not None:
                parts.append(f"zero-shot {metrics['zeroshot_acc']:.3f}")
            print("  ".join(parts) + ("  (best)" if is_best else ""), flush=True)

    def _diverged(self, bad: dict[str, float]) -> None:
        """Stop before anything of this epoch is saved: last.json, best.json and state.pt stay the last good ones."""
        kept = (f"the last good checkpoint (epoch {self.epoch}) is kept in {self.out}" if self.epoch
                else "nothing was saved (no epoch had finished)")
        raise DivergedError(
            f"distillation diverged in epoch {self.epoch + 1} (step {self.global_step}): "
            f"{', '.join(f'{k} {v}' for k, v in bad.items())} (not finite); stopped, {kept}; "
            "check the cache and data, or lower --lr in a new --out"
        )

    # ------------------------------------------------------------ the loop
    def run(self) -> None:
        # Channels-last conv weights pick oneDNN's faster NHWC kernels on CPU (same math, other
        # rounding; see tinyclap.students.speed); the student is handed back in its original layout.
        # "auto" leaves DDP alone: multi-process CPU runs exist to be compared with one process.
        cfg, env = self.cfg, self.env
        cpu = cfg.channels_last == "yes" or (
            cfg.channels_last == "auto" and env.device.type == "cpu" and not env.distributed
        )
        with channels_last(self.student, enabled=cpu):
            self._run()

    def _run(self) -> None:
        from tqdm.auto import tqdm

        cfg, env = self.cfg, self.env
        if self.precompute:
            self._compute_features("train", self.train_set)
            if self.val_set is not None:
                self._compute_features("val", self.val_set)
        sync = cfg.sync_batchnorm and cfg.stage == 1
        with synchronised_batchnorm(self.student, env) if sync else nullcontext():
            if self.windowing is not None:
                model: nn.Module = _Streamed(self.student, cfg.stage, whole=cfg.stream_weight < 1.0)
            else:
                model = _Head(self.student) if cfg.stage == 2 else self.student
            if env.distributed:
                model = wrap_ddp(model, env, sync_buffers=not sync)
            flag = StopFlag()
            with graceful_stop(flag):
                while self.epoch < cfg.epochs:
                    self._run_epoch(model, flag, tqdm)

    def _run_epoch(self, model: nn.Module, flag: StopFlag, tqdm: Any) -> None:
        cfg, env = self.cfg, self.env
        n = len(self.train_set)
        batches = epoch_batches(n, cfg.batch_size, cfg.seed, self.epoch, env.world_size)
        if not batches:
            raise DataError(f"training set has {n} items: too few for {env.world_size} rank(s)")
        _set_modes(self.student, cfg.stage)
        bar = tqdm(
            total=len(batches),
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not (cfg.progress and env.is_main),
            leave=False,
        )
        at_boundary = True
        try:
            for idx, ids, inputs in self._epoch_inputs(batches, self.batch):
                slot = torch.zeros(env.world_size + 1, dtype=torch.float64)
                slot[env.rank], slot[-1] = float(len(ids)), float(flag.requested)
                slot = all_reduce_sum(env, slot)
                if slot[-1] > 0:  # some rank was asked to stop: all stop at this boundary
                    raise KeyboardInterrupt
                t0 = time.perf_counter()
                at_boundary = False
                if (slot[:-1] > 0).all():  # a rank whose items were all broken skips the step with the rest
                    loss = self.step(model, idx, ids, inputs, slot[:-1])
                    if not math.isfinite(loss) and not env.distributed:  # torchrun: caught at the epoch end, together
                        self._diverged({"train_loss": loss})
                    self.loss_sum += loss
                    self.loss_count += len(ids)
                    self.global_step += 1
                self.batch += 1
                self.train_seconds += time.perf_counter() - t0
                at_boundary = True
                bar.update(1)
                if self.loss_count:
                    bar.set_postfix(loss=f"{self.loss_sum / self.loss_count:.4f}")
                if cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0:
                    self.save_state()
                if self.on_step is not None:
                    self.on_step(self.global_step, self.loss_sum / max(self.loss_count, 1))
        except KeyboardInterrupt:
            bar.close()
            path = self.save_state() if at_boundary else None
            raise DistillInterrupted(path, self.epoch, self.batch) from None
        bar.close()
        # Sum the epoch's loss over ranks so every rank logs the global figure.
        tot = all_reduce_sum(self.env, torch.tensor([self.loss_sum, float(self.loss_count)], dtype=torch.float64))
        self.loss_sum, self.loss_count = float(tot[0]), int(tot[1])
        self.end_of_epoch(model)

    def finish(self) -> DistillResult:
        if self.env.is_main and self.history:
            title = f"{getattr(getattr(self.student, 'config', None), 'name', type(self.student).__name__)} ← {self.cache.teacher_name}"
            plot_curves(self.history, self.paths["curves"], title=f"stage {self.cfg.stage}: {title}")
            write_json(self.paths["run"], {
                "config": self.cfg.to_dict(),
                "cache": str(self.cache.root),
                "teacher": self.cache.teacher_name,
                "teacher_id": self.cache.teacher_id,
                "kept_dims": self.cache.kept_dims,
                "train": describe(self.train_set),
                "val": describe(self.val_set) if self.val_set is not None else None,
                "epochs_run": len(self.history),
                "global_step": self.global_step,
                "best_metric": self.best_metric,
                "broken_files": self.broken,
            })
        best = self.paths["best"] if self.paths["best"].is_file() else None
        last = self.paths["last"] if self.paths["last"].is_file() else None
        return DistillResult(
            self.student, self.out, last, best, list(self.history), self.best_metric, self.global_step,
            sorted(self.broken),
        )


# --------------------------------------------------------------------- entry point
def _open_data(data: Any, audio_config: Any) -> Dataset:
    if isinstance(data, (str, Path)):
        data = [data]
    if isinstance(data, Dataset):
        return data
    parts = []
    for d in data:
        if isinstance(d, (str, Path)):
            from tinyclap.data import open_dataset

            d = open_dataset(str(d), audio_config)
        parts.append(d)
    return as_dataset(parts)


def _check_coverage(cache: EmbeddingCache, dataset: Dataset, what: str) -> None:
    ids = dataset_ids(dataset)
    if ids is None:
        return  # checked batch by batch instead
    missing = cache.missing(ids)
    if missing:
        raise CacheError(
            f"{cache.root}: no teacher embeddings for {len(missing)} of {len(ids)} {what} clips "
            f"(e.g. {missing[0]!r}); build the cache over the same data with `tinyclap cache`"
        )


def distill(
    student: nn.Module,
    cache: EmbeddingCache | str | Path,
    train_data: Dataset | Sequence[Dataset | str] | str,
    val_data: Dataset | Sequence[Dataset | str] | str | None = None,
    *,
    config: DistillConfig | None = None,
    preset: str | Path | None = None,
    out_dir: str | Path = "runs/distill",
    resume: bool = False,
    dims: Sequence[int] | None = None,
    zeroshot: ZeroShotSet | tuple[Any, Dataset] | None = None,
    on_step: StepHook | None = None,
    env: DistEnv | None = None,
    **overrides: Any,
) -> DistillResult:
    """Distil the teacher embeddings in ``cache`` into ``student``; returns a :class:`DistillResult`.

    ``config`` (or ``preset``: "stage1" default, "stage2", "quick", a YAML path)
    plus keyword ``overrides`` (``epochs=3``, ``**{"scheduler.patience": 5}``) set
    the recipe. ``train_data``/``val_data`` are datasets yielding
    ``Example(clip, target, clip_id)`` at the cache's AudioConfig (or specs for
    ``tinyclap.data.open_dataset``); without ``val_data``, ``val_split`` of the
    training files are held out. ``dims`` (default: ``student.kept_dims``)
    restricts targets to those latent dims, re-normalised. ``zeroshot`` =
    ``(class_embeddings (C, D), labelled_dataset)`` adds zero-shot accuracy to
    validation. ``on_step(global_step, mean_loss)`` is called after each step.
    Writes ``out_dir`` (see :mod:`tinyclap.distill.checkpoints`); with
    ``resume=True`` continues the run saved there. On CPU, calling
    :func:`tinyclap.students.speed.reuse_freed_memory` once in the process
    (the CLI does) makes each step much faster.
    """
    cfg = config if config is not None else make_config(preset or "stage1")
    cfg = cfg.with_overrides(overrides) if overrides else cfg
    own_env = env is None
    env = env or setup(cfg.device)
    try:
        return _distill(student, cache, train_data, val_data, cfg, Path(out_dir), resume, dims, zeroshot, on_step, env)
    finally:
        if own_env:
            teardown(env)


def _distill(
    student: nn.Module,
    cache: EmbeddingCache | str | Path,
    train_data: Any,
    val_data: Any,
    cfg: DistillConfig,
    out: Path,
    resume: bool,
    dims: Sequence[int] | None,
    zeroshot: ZeroShotSet | tuple[Any, Dataset] | None,
    on_step: StepHook | None,
    env: DistEnv,
) -> DistillResult:
    if not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache.open(cache)
    kept = getattr(student, "kept_dims", None)
    if dims is None:
        dims = kept
    elif kept is not None and list(kept) != [int(d) for d in dims]:
        raise TinyClapError("dims differ from the student's kept_dims; pass the dims it was pruned to")
    cache = cache.select(dims)
    if dims is not None and kept is None and hasattr(student, "kept_dims"):
        student.kept_dims = [int(d) for d in dims]
    s_dim = getattr(student, "dim", None)
    if s_dim is not None and int(s_dim) != cache.dim:
        raise TinyClapError(
            f"student outputs {s_dim} dims but the cache targets have {cache.dim}"
            + ("" if dims is not None else "; pass dims= to select the latent dims the student keeps")
        )
    train = _open_data(train_data, cache.audio_config)
    data_config = audio_config_of(train)
    if data_config.digest() != cache.audio_config.digest():
        raise CacheError(
            f"{cache.root}: embeddings were computed on clips at {cache.audio_config}; "
            f"the training data yields {data_config}. Open the data with the cache's AudioConfig."
        )
    s_rate = getattr(getattr(student, "audio_config", None), "sample_rate", data_config.sample_rate)
    if s_rate != data_config.sample_rate:
        raise DataError(f"student expects {s_rate} Hz audio, the data is at {data_config.sample_rate} Hz")
    if val_data is not None:
        val: Dataset | None = _open_data(val_data, cache.audio_config)
    else:
        train, val = split_validation(train, cfg.val_split, cfg.seed)
    _check_coverage(cache, train, "training")
    if val is not None:
        _check_coverage(cache, val, "validation")
    if zeroshot is not None and not isinstance(zeroshot, ZeroShotSet):
        zeroshot = ZeroShotSet(*zeroshot)

    paths = ckpt.run_paths(out)
    check_run_folder(out, "distill")  # a pretraining run's metrics.jsonl is not ours to overwrite
    state = None
    if paths["state"].is_file():
        if not resume:
            raise RunExistsError(
                f"{out}: holds a distillation run already; pass --resume (resume=True) to continue it, "
                "or choose another --out"
            )
        state = ckpt.load_training_state(paths["state"])
    elif resume and env.is_main:
        print(f"note: nothing to resume in {out}; starting a new run")

    torch.manual_seed(cfg.seed * 1000 + env.rank)  # dropout streams; weights come from the caller
    student.to(env.device)
    run = _Run(student, cache, train, val, cfg, out, env, zeroshot, on_step)
    if state is not None:
        run.load_state(state)
        if env.is_main and run.epoch < cfg.epochs:
            print(f"resuming {out} at epoch {run.epoch + 1}, batch {run.batch} (step {run.global_step})")
    if env.is_main:
        mark_run_folder(out, "distill")
    run.run()
    return run.finish()
