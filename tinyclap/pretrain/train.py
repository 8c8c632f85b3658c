"""The pretraining loop: contrastive CLAP training from captioned audio, resumable at any step.

Output folder::

    OUT/teacher.json, teacher.safetensors   the teacher (load_teacher("local:OUT")), rewritten each epoch
    OUT/teacher_text/                       tokenizer + config of a fine-tuned text tower (only then)
    OUT/metrics.jsonl                       one record per logged step and per epoch
    OUT/loss.png                            loss curves and zero-shot accuracy
    OUT/recipe.yaml                         the settings of the run
    OUT/state/train_state.pt                what --resume needs (weights, optimiser, RNG, history)
    OUT/state/text_features.pt              pooled features of every caption (frozen text tower)

Every file is written atomically. The training state is saved at each epoch
end, every ``save_every`` steps, on Ctrl-C / SIGTERM and when ``stop_after``
is reached; a resumed run continues exactly where it stopped (same sample
order, caption picks, augmentation and dropout draws).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from tinyclap.distill.checkpoints import load_training_state, save_training_state
from tinyclap.distill.train import RunExistsError
from tinyclap.errors import DivergedError
from tinyclap.runs import check_run_folder, mark_run_folder
from tinyclap.stopping import StopFlag, graceful_stop
from tinyclap.io import atomic_path
from tinyclap.pretrain.config import PretrainConfig, RecipeError
from tinyclap.pretrain.corpus import Corpus, LogMelSource, build_corpus, logmel_megabytes, split_by_group
from tinyclap.pretrain.loss import clap_loss
from tinyclap.pretrain.model import LocalClap
from tinyclap.pretrain.report import plot_loss, summary

__all__ = ["PretrainInterrupted", "PretrainResult", "RunExistsError", "RESUMABLE_SETTINGS", "pretrain", "run_paths"]

STATE_FORMAT = "tinyclap-pretrain-state"
STATE_VERSION = 1
TEACHER_STEM = "teacher"
PLOT_EVERY_S = 30.0  # the loss plot is redrawn at most this often (and always when a session ends)
BN_BATCHES = 8  # training batches averaged into the BatchNorm statistics at each epoch end
# Settings a resumed run may change; everything else must match the saved run.
RESUMABLE_SETTINGS = ("epochs", "device", "num_workers", "cache_mb", "log_every", "save_every")


class PretrainInterrupted(KeyboardInterrupt):
    """Stopped by Ctrl-C / SIGTERM after finishing a step; the state was saved for ``resume=True``."""

    def __init__(self, out_dir: Path, epoch: int, step: int):
        self.out_dir, self.epoch, self.step = out_dir, epoch, step
        super().__init__(f"pretraining interrupted in epoch {epoch + 1} at step {step}; "
                         f"state saved in {out_dir}; continue with --resume")


@dataclass
class PretrainResult:
    """Where the teacher went and how the run ended."""

    out_dir: Path
    teacher_path: Path  # the checkpoint .json (load with load_teacher(f"local:{out_dir}"))
    epoch: int  # epochs completed
    step: int  # optimiser steps taken in total
    finished: bool  # False when stopped early (stop_after): resume to continue
    metrics: dict[str, Any]  # the last epoch record
    wall_s: float  # training wall time over all sessions of this run
    cpu_s: float  # process CPU time of training (a fairer figure on a shared machine)


def run_paths(out_dir: str | Path) -> dict[str, Path]:
    """The files of a pretraining run folder, by role."""
    out = Path(out_dir)
    return {
        "teacher": out / f"{TEACHER_STEM}.json",
        "metrics": out / "metrics.jsonl",
        "plot": out / "loss.png",
        "recipe": out / "recipe.yaml",
        "state": out / "state" / "train_state.pt",
        "text_cache": out / "state" / "text_features.pt",
    }


# --------------------------------------------------------------------------- small helpers
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _schedule(total: int, warmup: float):
    """Linear warm-up then cosine decay to zero, as a LambdaLR factor."""
    warm = max(1, round(total * warmup)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _optimizer(model: LocalClap, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases and the temperature; the text tower at its own rate."""
    decay, no_decay, text = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("text."):
            text.append(p)
        elif p.dim() < 2 or name.startswith("logit_scale"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr},
    ]
    if text:
        groups.append({"params": text, "weight_decay": cfg.weight_decay, "lr": cfg.text_lr})
    return torch.optim.AdamW(groups)


def _augment(mel: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random circular time shift and ±6 dB gain per clip (cheap, and works on cached log-mels)."""
    b, t, _ = mel.shape
    shift = torch.randint(0, t, (b,), generator=gen)
    idx = (torch.arange(t)[None, :] - shift[:, None]) % t
    mel = torch.gather(mel, 1, idx.to(mel.device)[:, :, None].expand_as(mel))
    gain = (torch.rand(b, generator=gen) * 12.0 - 6.0).to(mel.device)
    return mel + gain[:, None, None]


@torch.no_grad()
def _recalibrate_batchnorm(model: LocalClap, source: LogMelSource, batches: int, batch_size: int) -> None:
    """Re-estimate the audio tower's BatchNorm statistics as plain averages over a few training batches.

    Running statistics with momentum 0.1 lag far behind the weights in a short
    run (after 20 steps they are still 12% their initial values), so an eval-mode
    model scores near chance although training is going well. Averaging fresh
    batch statistics ("precise BN") fixes that for a few forward passes.
    """
    norms = [m for m in model.audio.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or batches < 1:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.audio.train()
    order = source.usable(range(len(source.indices)))[: batches * batch_size]  # fixed: resumes stay exact
    for _, mel in source.batches(order, batch_size):
        if len(mel) > 1:
            model.audio(mel)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def _save_torch(path: Path, obj: dict[str, Any]) -> None:
    save_training_state(path, obj, fmt=STATE_FORMAT, version=STATE_VERSION)


def _load_torch(path: Path) -> dict[str, Any]:
    return load_training_state(path, fmt=STATE_FORMAT, version=STATE_VERSION, what="pretraining")


class _Clock:
    """Wall and process-CPU seconds, accumulated across sessions of a run."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0):
        self.wall, self.cpu = wall, cpu
        self._t, self._c = time.perf_counter(), time.process_time()

    def lap(self) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.wall += t - self._t
        self.cpu += c - self._c
        self._t, self._c = t, c


# --------------------------------------------------------------------------- text
class _TextTable:
    """Each distinct caption once, with its pooled text-tower features when the tower is frozen."""

    def __init__(self, model: LocalClap, texts: Sequence[str], cache: Path, progress: bool):
        self.texts = list(dict.fromkeys(texts))
        self.row = {t: i for i, t in enumerate(self.texts)}
        self.model = model
        self.features: torch.Tensor | None = None
        if model.text_trainable:
            return  # features change every step: computed in the loop
        if cache.is_file():
            saved = _load_torch(cache)
            if saved.get("text_model") == model.text.ref and saved.get("texts") == self.texts:
                self.features = saved["features"]
        if self.features is None:
            self.features = model.text.encode(self.texts, progress=progress)
            _save_torch(cache, {"text_model": model.text.ref, "texts": self.texts, "features": self.features})

    def pooled(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        """(B, width) pooled features of ``texts`` (through the live tower when it is trained)."""
        if self.features is None:
            return self.model.text(list(texts))
        return self.features[torch.tensor([self.row[t] for t in texts])].to(device)


# --------------------------------------------------------------------------- evaluation
@dataclass
class _EvalSet:
    name: str
    source: LogMelSource
    captions: list[list[str]]
    labels: list[int | None]
    class_names: list[str] | None


@torch.no_grad()
def _evaluate(model: LocalClap, ev: _EvalSet, table: _TextTable, templates: list[str], batch_size: int) -> dict[str, float]:
    """InfoNCE on the first caption of each clip, and zero-shot accuracy over the class prompts."""
    from tinyclap.templates import render

    model.eval()
    device = next(model.parameters()).device
    classes = None
    if ev.class_names:
        prompts = [p for name in ev.class_names for p in render(templates, name)]
        emb = model.embed_text_features(table.pooled(prompts, device)).view(len(ev.class_names), len(templates), -1)
        classes = torch.nn.functional.normalize(emb.mean(1), dim=-1)  # prompt ensembling
    loss_sum, n, correct, counted = 0.0, 0, 0, 0
    for pos, mel in ev.source.batches(range(len(ev.source.indices)), batch_size):
        audio = model.embed_audio_logmel(mel)
        items = pos.tolist()
        if len(items) >= 2:
            caps = [ev.captions[p][0] for p in items]
            text = model.embed_text_features(table.pooled(caps, device))
            loss_sum += float(clap_loss(audio, text, model.logit_scale())) * len(items)
            n += len(items)
        if classes is not None:
            keep = [i for i, p in enumerate(items) if ev.labels[p] is not None]
            if keep:
                pred = (audio[keep] @ classes.t()).argmax(1).cpu()
                correct += int((pred == torch.tensor([ev.labels[items[i]] for i in keep])).sum())
                counted += len(keep)
    out: dict[str, float] = {}
    if n:
        out[f"{ev.name}_loss"] = loss_sum / n
    if counted and ev.class_names:
        out[f"{ev.name}_zeroshot_acc"] = correct / counted
        out[f"{ev.name}_chance"] = 1.0 / len(ev.class_names)
    return out


# --------------------------------------------------------------------------- setting up
def _open(specs: Sequence[str], cfg: PretrainConfig, templates: list[str]) -> Corpus:
    from tinyclap.data import open_dataset

    return build_corpus([open_dataset(spec, cfg.audio_config) for spec in specs], specs, templates)


def _check_resume(saved: dict[str, Any], cfg: PretrainConfig, out_dir: Path) -> PretrainConfig:
    old = PretrainConfig.from_dict(saved, source=f"{out_dir} (saved run)")
    new = cfg.to_dict()
    changed = sorted(k for k, v in old.to_dict().items() if new.get(k) != v and k not in RESUMABLE_SETTINGS)
    if changed:
        raise RecipeError(
            f"{out_dir}: cannot resume with different settings {changed} "
            f"(only {', '.join(RESUMABLE_SETTINGS)} may change); use another --out for a new run"
        )
    return old.updated({k: new[k] for k in RESUMABLE_SETTINGS}, source="resume")


class _Run:
    """One pretraining run: data, model, optimiser, and the position reached so far."""

    def __init__(self, cfg: PretrainConfig, out_dir: Path, saved: dict[str, Any] | None, progress: bool):
        from tinyclap.templates import resolve_templates

        self.cfg, self.out_dir, self.progress = cfg, out_dir, progress
        self.paths = run_paths(out_dir)
        self.device = _device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.templates = resolve_templates(cfg.templates)

        corpus = _open(cfg.data, cfg, self.templates)
        if cfg.val_data:
            val = _open(cfg.val_data, cfg, self.templates)
            train_idx, val_idx = list(range(len(corpus))), list(range(len(val)))
        else:
            val = corpus
            train_idx, val_idx = split_by_group(corpus.groups, cfg.val_fraction, cfg.seed)
        extra = [(spec, _open([spec], cfg, self.templates)) for spec in cfg.eval_data]

        self.model = LocalClap(cfg.audio_encoder, cfg.audio_config, cfg.dim, text_model=cfg.text_model,
                               text_trainable=cfg.text_trainable, text_dropout=cfg.text_dropout).to(self.device)
        texts = [c for caps in corpus.captions for c in caps]
        for c in [val, *(c for _, c in extra)]:
            texts += [cap for caps in c.captions for cap in caps]
            if c.class_names:
                from tinyclap.templates import render

                texts += [p for name in c.class_names for p in render(self.templates, name)]
        self.table = _TextTable(self.model, texts, self.paths["text_cache"], progress)

        self._budget = float(cfg.cache_mb)
        self.train_src = self._source(corpus.dataset, train_idx, "train log-mels")
        if len(self.train_src) < 2:
            raise RecipeError(f"{', '.join(cfg.data)}: fewer than 2 usable training clips")
        self.train_caps = [corpus.captions[i] for i in train_idx]
        self.evals: list[_EvalSet] = []
        if val_idx:
            self.evals.append(_EvalSet("val", self._source(val.dataset, val_idx, "val log-mels"),
                                       [val.captions[i] for i in val_idx], [val.labels[i] for i in val_idx],
                                       val.class_names))
        for spec, c in extra:
            idx = list(range(len(c)))
            self.evals.append(_EvalSet(f"eval[{spec}]", self._source(c.dataset, idx, f"log-mels {spec}"),
                                       c.captions, c.labels, c.class_names))

        self.steps_per_epoch = math.ceil(len(self.train_src) / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.opt = _optimizer(self.model, cfg)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _schedule(self.total_steps, cfg.warmup))
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.epoch_gen_state = self.gen.get_state()
        self.clock = _Clock()
        self._plotted = time.perf_counter()
        if saved is not None:
            self._restore(saved)

    def _source(self, dataset: Any, idx: list[int], desc: str) -> LogMelSource:
        """Log-mels in memory while they fit ``cache_mb``; recomputed per batch beyond that."""
        c = self.cfg.audio_config
        need = logmel_megabytes(len(idx), c.n_frames, c.n_mels)
        cache = need <= self._budget
        self._budget -= need if cache else 0
        return LogMelSource(dataset, idx, self.model.audio.frontend, cache=cache, batch_size=self.cfg.batch_size,
                            num_workers=self.cfg.num_workers, device=self.device, desc=desc, progress=self.progress)

    # -- state --------------------------------------------------------------------------
    def _restore(self, saved: dict[str, Any]) -> None:
        self.model.load_saved_state(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.sched.lr_lambdas[0] = _schedule(self.total_steps, self.cfg.warmup)  # epochs may have grown
        self.epoch, self.step_in_epoch = saved["epoch"], saved["step_in_epoch"]
        self.global_step = saved["global_step"]
        self.history = [r for r in saved["history"] if r["step"] <= self.global_step]
        self.epoch_gen_state = saved["epoch_generator"]
        self.gen.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        self.clock = _Clock(saved["wall_s"], saved["cpu_s"])

    def save(self, with_teacher: bool, final: bool = False) -> None:
        """Training state and metrics (always), the teacher after a finished epoch, and the
        loss plot when ``final`` or at most every ``PLOT_EVERY_S`` seconds (drawing it costs
        more than a whole epoch of a tiny run)."""
        from tinyclap.distill.log import write_metrics
        from tinyclap.teachers.local import save_local

        self.clock.lap()
        if with_teacher:
            last = next((r for r in reversed(self.history) if r["type"] == "epoch"), {})
            save_local(self.paths["teacher"], self.model, data=self.cfg.data, epoch=self.epoch,
                       step=self.global_step, metrics=last, recipe=self.cfg.to_dict())
        _save_torch(self.paths["state"], {
            "config": self.cfg.to_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "model": self.model.saved_state(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "epoch_generator": self.epoch_gen_state, "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(), "history": self.history,
            "wall_s": self.clock.wall, "cpu_s": self.clock.cpu,
        })
        write_metrics(self.paths["metrics"], self.history)
        if final or time.perf_counter() - self._plotted >= PLOT_EVERY_S:
            plot_loss(self.history, self.paths["plot"])
            self._plotted = time.perf_counter()

    # -- training -----------------------------------------------------------------------
    def _epoch_order(self) -> list[int]:
        """This epoch's shuffled positions; a resumed epoch replays the same order."""
        if self.step_in_epoch == 0:
            self.epoch_gen_state = self.gen.get_state()
            return torch.randperm(len(self.train_src.indices), generator=self.gen).tolist()
        now = self.gen.get_state()
        self.gen.set_state(self.epoch_gen_state)
        order = torch.randperm(len(self.train_src.indices), generator=self.gen).tolist()
        self.gen.set_state(now)
        return order

    def _step(self, pos: torch.Tensor, mel: torch.Tensor) -> tuple[float, float]:
        """One optimiser step on a batch; returns (loss, logit scale)."""
        picks = [self.train_caps[p][int(torch.randint(len(self.train_caps[p]), (1,), generator=self.gen))]
                 for p in pos.tolist()]  # a different caption of each clip every epoch
        if self.cfg.augment:
            mel = _augment(mel, self.gen)
        audio, text, scale = self.model(mel, self.table.pooled(picks, self.device))
        loss = clap_loss(audio, text, scale)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.model.logit_scale.clamp_()
        return loss.item(), scale.item()

    def _end_epoch(self, final: bool) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        _recalibrate_batchnorm(self.model, self.train_src, BN_BATCHES, self.cfg.batch_size)
        record: dict[str, Any] = {"type": "epoch", "step": self.global_step, "epoch": self.epoch,
                                  "logit_scale": self.model.logit_scale().item()}
        losses = [r["loss"] for r in self.history if r["type"] == "step" and r["epoch"] == self.epoch]
        if losses:
            record["train_loss"] = sum(losses) / len(losses)
        for ev in self.evals:
            record.update(_evaluate(self.model, ev, self.table, self.templates, self.cfg.batch_size))
        self.clock.lap()
        record["elapsed_s"] = round(self.clock.wall, 2)
        record["cpu_s"] = round(self.clock.cpu, 2)
        bad = {k: v for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            self._diverged(self.epoch, bad)
        self.history.append(record)
        if self.progress:
            tqdm.write(summary(record))
        self.save(with_teacher=True, final=final)

    def _diverged(self, epoch: int, bad: dict[str, float]) -> None:
        """Stop before saving anything: the teacher and state on disk stay those of the last good save."""
        done = max((r["epoch"] for r in self.history if r["type"] == "epoch"), default=0)
        kept = f"the teacher of epoch {done} is kept in {self.out_dir}" if done else "no teacher was saved yet"
        raise DivergedError(
            f"pretraining diverged in epoch {epoch} (step {self.global_step}): "
            f"{', '.join(f'{k} {v}' for k, v in bad.items())} (not finite); stopped, {kept}; "
            "check the data, or lower --lr in a new --out"
        )

    def train(self, stop_after: int | None, stop: StopFlag) -> bool:
        """Train to the last epoch (True) or until ``stop_after`` steps in this session (False).

        When ``stop`` is raised (first Ctrl-C / SIGTERM) the current step finishes,
        the state is saved and :class:`PretrainInterrupted` is raised.
        """
        cfg = self.cfg
        self.clock = _Clock(self.clock.wall, self.clock.cpu)  # do not count time spent setting up
        taken = 0
        window: list[float] = []
        bar = tqdm(total=self.total_steps, initial=self.global_step, desc="pretrain", unit="step",
                   disable=not self.progress)
        try:
            while self.epoch < cfg.epochs:
                self.model.train()
                order = self.train_src.usable(self._epoch_order())
                rest = order[self.step_in_epoch * cfg.batch_size :]
                for pos, mel in self.train_src.batches(rest, cfg.batch_size):
                    self.step_in_epoch += 1
                    if len(pos) < 2:
                        continue  # a one-clip batch has no negatives
                    loss, scale = self._step(pos, mel)
                    if not math.isfinite(loss):
                        self._diverged(self.epoch + 1, {"loss": loss})
                    self.global_step += 1
                    taken += 1
                    window.append(loss)
                    bar.update(1)
                    bar.set_postfix(epoch=self.epoch + 1, loss=f"{loss:.3f}", scale=f"{scale:.1f}")
                    if self.global_step % cfg.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                        self.history.append({"type": "step", "step": self.global_step, "epoch": self.epoch + 1,
                                             "loss": sum(window) / len(window), "logit_scale": scale,
                                             "lr": self.opt.param_groups[0]["lr"]})
                        window = []
                    if cfg.save_every and self.global_step % cfg.save_every == 0:
                        self.save(with_teacher=False)
                    if stop.requested:
                        self.save(with_teacher=False, final=True)  # the teacher stays the last finished epoch's
                        raise PretrainInterrupted(self.out_dir, self.epoch, self.global_step)
                    if stop_after is not None and taken >= stop_after:
                        self.save(with_teacher=False, final=True)
                        return False
                self._end_epoch(final=self.epoch + 1 == cfg.epochs)
        finally:
            bar.close()
        return True


# --------------------------------------------------------------------------- entry point
def pretrain(
    config: PretrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> PretrainResult:
    """Train a CLAP teacher contrastively on ``config.data`` and save it in ``out_dir``.

    ``resume=True`` continues the run saved in ``out_dir`` (an error if there is
    none); without it a folder that already holds a run is refused, so no work
    is overwritten. ``stop_after`` stops, resumably, after that many optimiser
    steps in this call (e.g. to time-box a session).
    """
    out_dir = Path(out_dir)
    paths = run_paths(out_dir)
    check_run_folder(out_dir, "pretrain")  # a distillation run's metrics.jsonl is not ours to overwrite
    saved = None
    if paths["state"].is_file():
        if not resume:
            raise RunExistsError(f"{out_dir}: already holds a pretraining run; pass --resume to continue it or pick another --out")
        saved = _load_torch(paths["state"])
        config = _check_resume(saved["config"], config, out_dir)
    elif resume:
        print(f"note: nothing to resume in {out_dir}; starting a new run", file=sys.stderr)
    config.check()
    if not config.data:
        raise RecipeError("no training data: give --data SPEC (e.g. --data synth) or a recipe with data")
    mark_run_folder(out_dir, "pretrain")
    run = _Run(config, out_dir, saved, progress)
    _write_recipe(paths["recipe"], run.cfg)
    stop = StopFlag()
    with graceful_stop(stop):
        finished = run.train(stop_after, stop)
    last = next((r for r in reversed(run.history) if r["type"] == "epoch"), {})
    return PretrainResult(out_dir, paths["teacher"], run.epoch, run.global_step, finished, last,
                          run.clock.wall, run.clock.cpu)


def _write_recipe(path: Path, cfg: PretrainConfig) -> None:
    import yaml

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
