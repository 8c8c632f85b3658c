"""`tinyclap quickstart`: the whole pipeline, offline, on the built-in synth corpus.

1. data: the procedural corpus (or ``--data``), with some sound families held
   out of all training so the last step can test true zero-shot labels;
2. teacher: pretrain a small CLAP (packaged MiniLM text tower, frozen);
3. cache: teacher embeddings of every training window, computed once;
4. student: distil the MCU preset student from the cache;
5. bank: prompt embeddings of every class label (no text tower on the device);
6. prune: keep the latent dims that fit the preset's flash budget, fine-tune;
7. export: ONNX int8 (and TFLite int8, checked in TFLM against the target, when installed);
8. evaluate teacher, student, pruned and int8 student on held-out clips.

Every step is a library call; this module only wires them and records what
they measured. Re-running reuses finished steps (``steps.json``).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from tinyclap.audio import AudioConfig
from tinyclap.errors import TinyClapError
from tinyclap.quickstart.options import QuickstartOptions
from tinyclap.quickstart.steps import Step, StepRunner
from tinyclap.runs import mark_run_folder

__all__ = ["QuickstartOptions", "run_quickstart", "UNSEEN_FAMILIES"]

# Families no model ever trains on: the teacher's text tower alone knows them.
UNSEEN_FAMILIES = ("bell", "dog bark", "knocking")


def _spec_list(specs: list[str]) -> list[str]:
    return [s for s in specs if s]


def default_specs(opts: QuickstartOptions) -> tuple[list[str], dict[str, str]]:
    """Training specs and named evaluation specs."""
    unseen = ",".join(UNSEEN_FAMILIES)
    train = _spec_list(opts.data) or [f"synth?n={opts.n_train}&seed={opts.seed}&exclude={unseen}"]
    if opts.eval_data:
        evals = {f"eval{i + 1}": s for i, s in enumerate(opts.eval_data)}
    else:
        evals = {
            "seen": f"synth?n={opts.n_eval}&seed={opts.seed + 1}&exclude={unseen}&target=label",
            "unseen": f"synth?n={opts.n_eval // 2}&seed={opts.seed + 2}&families={unseen}&target=label",
        }
    return train, evals


class Quickstart:
    """The eight steps over one run folder."""

    def __init__(self, opts: QuickstartOptions):
        self.opts = opts
        self.out = Path(opts.out)
        self.train_specs, self.eval_specs = default_specs(opts)
        # `out` only names the folder: a run folder moved or copied elsewhere resumes.
        self.runner = StepRunner(self.out, opts.to_dict(), location_keys=("out",))

    # --------------------------------------------------------------- helpers
    @property
    def teacher_dir(self) -> Path:
        return self.out / "teacher"

    def recorded_path(self, step: str, path: str) -> Path:
        """A path step ``step`` recorded, inside this run folder even if the folder has moved since."""
        ran_in = self.runner.ran_in(step) or Path(self.runner.record["options"].get("out", self.out))
        try:
            return self.out / Path(path).relative_to(ran_in)
        except ValueError:  # recorded outside the run folder: use it as it is
            return Path(path)

    def teacher(self) -> Any:
        from tinyclap.teachers.registry import load_teacher

        return load_teacher(f"local:{self.teacher_dir}")

    def open(self, spec: str, audio_config: AudioConfig) -> Any:
        from tinyclap.data import open_dataset

        return open_dataset(spec, audio_config)

    # ----------------------------------------------------------------- steps
    def step_data(self) -> dict[str, Any]:
        from tinyclap.pretrain.config import load_recipe

        cfg = load_recipe(self.opts.pretrain_recipe)
        audio = AudioConfig(**{**AudioConfig().to_dict(), **cfg.audio})
        sets = {"train": self.train_specs, **{k: [v] for k, v in self.eval_specs.items()}}
        counts = {}
        classes = {}
        for name, specs in sets.items():
            ds = [self.open(s, audio) for s in specs]
            counts[name] = sum(len(d) for d in ds)
            classes[name] = sorted({c for d in ds for c in (d.class_names or [])})
        return {"specs": sets, "counts": counts, "classes": classes, "audio_config": audio.to_dict(),
                "unseen_families": list(UNSEEN_FAMILIES) if not self.opts.eval_data else []}

    def step_teacher(self) -> dict[str, Any]:
        from dataclasses import replace

        from tinyclap.pretrain.config import load_recipe
        from tinyclap.pretrain.train import pretrain, run_paths

        cfg = load_recipe(self.opts.pretrain_recipe)
        cfg = replace(cfg, data=list(self.train_specs), seed=self.opts.seed, epochs=self.opts.pretrain_epochs,
                      dim=self.opts.teacher_dim, val_data=[self.eval_specs[k] for k in self.eval_specs][:1])
        result = pretrain(cfg, self.teacher_dir, resume=run_paths(self.teacher_dir)["state"].is_file())
        teacher = self.teacher()
        return {"dim": teacher.dim, "params": _params_of(teacher), "epochs": result.epoch,
                "wall_s": result.wall_s, "metrics": result.metrics, "licence": teacher.licence}

    def step_cache(self) -> dict[str, Any]:
        from tinyclap.distill import build_cache

        teacher = self.teacher()
        data = [self.open(s, teacher.audio_config) for s in self.train_specs]
        cache = build_cache(teacher, data, self.out / "cache")
        return {"windows": len(cache.ids), "dim": int(cache.embeddings.shape[1])}

    def step_student(self) -> dict[str, Any]:
        from tinyclap.distill import distill
        from tinyclap.distill.checkpoints import run_paths
        from tinyclap.students import AudioStudent, load_preset

        teacher = self.teacher()
        config, _ = load_preset(self.opts.student_preset)
        config = config.replace(dim=teacher.dim)  # distil the whole teacher space; pruning comes later
        student = AudioStudent(config, teacher.audio_config)
        zs = self._zeroshot_set(teacher)
        out = self.out / "student"
        resume = run_paths(out)["state"].is_file()
        result = distill(student, self.out / "cache", list(self.train_specs), out_dir=out,
                         preset=self.opts.distill_preset, resume=resume, zeroshot=zs,
                         epochs=self.opts.distill_epochs, seed=self.opts.seed)
        return {"best": str(result.best_path), "last": str(result.last_path), "best_metric": result.best_metric,
                "epochs": result.epochs_run, "params": _params_of(result.student), "name": config.name}

    def _zeroshot_set(self, teacher: Any) -> Any:
        """Held-out seen-label clips and the teacher's prompts, scored during distillation."""
        from tinyclap.bank import PromptBank
        from tinyclap.distill.validation import ZeroShotSet

        ds = self.open(next(iter(self.eval_specs.values())), teacher.audio_config)
        if not ds.class_names:
            return None
        return ZeroShotSet(PromptBank.build(teacher, ds.class_names), ds)

    def step_bank(self) -> dict[str, Any]:
        from tinyclap.bank import PromptBank

        teacher = self.teacher()
        labels = sorted({c for s in self.eval_specs.values()
                         for c in (self.open(s, teacher.audio_config).class_names or [])})
        if not labels:
            raise TinyClapError("no class labels in the evaluation data: give a labelled --eval-data")
        bank = PromptBank.build(teacher, labels)
        path = bank.save(self.out / "bank.npz")
        return {"path": str(path), "labels": labels, "dim": bank.dim}

    def step_prune(self) -> dict[str, Any]:
        from tinyclap.bank import PromptBank
        from tinyclap.distill import EmbeddingCache
        from tinyclap.prune import prune
        from tinyclap.students import load_student

        student = load_student(self.recorded_path("student", self.runner.summary("student")["best"]))
        bank = PromptBank.load(self.out / "bank.npz")
        # Distilled against the whole teacher space, the projection outgrows the
        # flash budget the preset was fitted for; keep the dims that fit it again.
        budget = _preset_flash_budget(self.opts.student_preset)
        cache = EmbeddingCache.open(self.out / "cache")
        result = prune(student, bank, flash_bytes=budget, cache=cache, finetune_data=list(self.train_specs),
                       out_dir=self.out / "pruned", preset="stage2", epochs=3)
        summary = result.summary()
        summary.pop("scores", None)
        summary["flash_budget"] = budget
        return summary

    def step_export(self) -> dict[str, Any]:
        from tinyclap.errors import BudgetError
        from tinyclap.export.pipeline import export_student

        pruned = {k: self.recorded_path("prune", v) for k, v in self.runner.summary("prune")["paths"].items()}
        try:
            # 160 training clips: 120 calibrate and 40 are held out to verify (the evaluation sets stay
            # unseen by every step); with 32 calibration clips the ONNX int8 ranges cost points
            # (measured in benchmarks/reference.py).
            result = export_student(pruned["student"], pruned["bank"], self.out / "export",
                                    formats=_available_formats(), calibration=self.train_specs[0],
                                    max_clips=160,
                                    target=self.opts.target if "tflite-int8" in _available_formats() else None,
                                    log=print)
        except BudgetError as err:
            # report.json and every file are written before the fit check raises.
            return {"fits": False, "overflow": str(err), **_read_report(self.out / "export")}
        return {"fits": True, **result.report}

    def step_evaluate(self) -> dict[str, Any]:
        from tinyclap.bank import PromptBank
        from tinyclap.evaluate import evaluate, write_report
        from tinyclap.export.encoder import OnnxEncoder
        from tinyclap.students import load_student

        teacher = self.teacher()
        student = load_student(self.recorded_path("student", self.runner.summary("student")["best"]))
        pruned = load_student(self.recorded_path("prune", self.runner.summary("prune")["paths"]["student"]))
        models: dict[str, Any] = {"teacher": teacher, "student": student, "pruned": pruned}
        int8 = self.out / "export" / "embed.int8.onnx"
        if int8.is_file():
            models["int8"] = OnnxEncoder.like(int8, pruned)
        results: dict[str, dict[str, Any]] = {}
        for set_name, spec in self.eval_specs.items():
            ds = self.open(spec, teacher.audio_config)
            # Each set is scored against its own labels (unseen families among
            # themselves): the standard zero-shot protocol for held-out classes.
            set_bank = PromptBank.build(teacher, ds.class_names)
            for name, model in models.items():
                res = evaluate(model, set_bank, ds, teacher=None if name == "teacher" else teacher,
                               name=f"{name} on {set_name}")
                write_report(res, self.out / "eval" / f"{name}_{set_name}")
                results.setdefault(set_name, {})[name] = {
                    "accuracy": res.accuracy, "macro_f1": res.macro_f1, "agreement": res.agreement,
                    "n": len(res.targets),
                }
        latency = _latency(teacher, pruned, self.open(next(iter(self.eval_specs.values())), teacher.audio_config))
        return {"results": results, "latency": latency,
                "params": {k: _params_of(m) for k, m in models.items() if k != "int8"}}

    def steps(self) -> list[Step]:
        return [
            Step("data", "build the corpus (procedural sounds, held-out families)", self.step_data),
            Step("teacher", "pretrain a small CLAP teacher (MiniLM text tower)", self.step_teacher),
            Step("cache", "cache teacher embeddings", self.step_cache),
            Step("student", f"distil a PhiNet student ({self.opts.student_preset})", self.step_student),
            Step("bank", "build the prompt bank", self.step_bank),
            Step("prune", f"prune the latent space back to the {self.opts.student_preset} flash budget",
                 self.step_prune),
            Step("export", f"export int8 (ONNX; TFLite + TFLM check for {self.opts.target} when installed)",
                 self.step_export),
            Step("evaluate", "evaluate teacher, student, pruned and int8 student", self.step_evaluate),
        ]


def _preset_flash_budget(preset: str) -> int | None:
    """The int8 weight budget a student preset was fitted for (``budget.flash_bytes``), if it records one."""
    import yaml

    from tinyclap.students.encoder import _preset_dir

    path = Path(preset) if preset.endswith((".yaml", ".yml")) else _preset_dir() / f"{preset}.yaml"
    budget = (yaml.safe_load(path.read_text()) or {}).get("budget", {})
    return int(budget["flash_bytes"]) if "flash_bytes" in budget else None


def _read_report(out: Path) -> dict[str, Any]:
    from tinyclap.io import read_json

    path = out / "report.json"
    return read_json(path) if path.is_file() else {}


def _available_formats() -> list[str]:
    formats = ["onnx", "onnx-int8"]
    try:
        from tinyclap._quiet import quiet_torchao_noise

        quiet_torchao_noise()  # litert_torch imports torchao, which logs CUDA-only load failures
        import litert_torch  # noqa: F401
        import tflite_micro  # noqa: F401

        formats.append("tflite-int8")
    except ImportError:
        pass
    return formats


def _params_of(model: Any) -> int | None:
    import torch

    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)
    if not isinstance(module, torch.nn.Module):
        return None
    audio = getattr(module, "audio", None)  # a CLAP's audio side is what a student replaces
    return int(sum(p.numel() for p in (audio or module).parameters()))


def _latency(teacher: Any, student: Any, dataset: Any, n: int = 15) -> dict[str, float]:
    """Median CPU seconds per clip (batch 1) for both, measured alternately in one run."""
    clips = [dataset[i].clip for i in range(min(n, len(dataset)))]
    t_times, s_times = [], []
    for clip in clips:
        for model, times in ((teacher, t_times), (student, s_times)):
            start = time.perf_counter()
            model.embed_audio(clip)
            times.append(time.perf_counter() - start)
    t, s = statistics.median(t_times[1:] or t_times), statistics.median(s_times[1:] or s_times)
    return {"teacher_s": t, "student_s": s, "ratio": t / s if s > 0 else float("nan")}


def _check_run_folder(out: Path) -> None:
    """``--out`` must be new, empty or a quickstart run folder: ``--fresh`` deletes it, a run fills it."""
    from tinyclap.runs import RunKindError, is_empty_dir, run_kind

    if not out.is_dir() or is_empty_dir(out):
        return
    kind = run_kind(out)
    if kind != "quickstart":
        what = f"a {kind} run folder" if kind else "a folder that is not a quickstart run (no steps.json)"
        raise RunKindError(f"{out}: is {what}; the quickstart (and --fresh, which deletes its folder) "
                           "needs a new or empty --out, or one of its own run folders")


def run_quickstart(opts: QuickstartOptions, fresh: bool = False) -> Path:
    """Run (or resume) the quickstart; returns the path of ``report.md``."""
    from tinyclap.quickstart.report import write_report_md

    from tinyclap.quickstart.options import check_options

    check_options(opts)  # --target, --student-preset, counts: refused now, not after pretraining
    out = Path(opts.out)
    _check_run_folder(out)  # before anything is deleted or written
    if fresh and out.is_dir():
        shutil.rmtree(out)
    mark_run_folder(out, "quickstart")
    qs = Quickstart(opts)
    record = qs.runner.run(qs.steps())
    return write_report_md(out, record)

