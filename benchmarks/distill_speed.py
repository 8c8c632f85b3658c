"""Seconds per distillation epoch: targets from the embedding cache vs the teacher in the loop.

A full-size MS-CLAP 2022 teacher (CNN14 audio tower, random weights: speed does
not depend on the values) and the tinyCLAP α1.5 student
(phinet_alpha_1.50_beta_0.75_t0_6_N_7, 4.4 M parameters) on the same real
ESC-10 clips (5 s, 44.1 kHz), decoded once and held in memory so that both
modes pay the same data cost. Both modes run the engine's own loop
(:func:`tinyclap.distill.distill`, stage 1, same clips, batch size and
augmentation setting); in the teacher-in-the-loop mode the cache's ``lookup``
is replaced by a call to ``teacher.embed_audio`` on the batch's clips, which is
what distilling without a cache costs.

The two modes run **interleaved, one epoch at a time** (cached, live, cached,
live, ...; each call resumes its own run folder), so that load drifting on a
shared machine hits both alike. The student is channels last and glibc keeps
freed memory (:mod:`tinyclap.students.speed`) in both modes.

Printed: the median training seconds per epoch of each mode and their ratio;
per-batch timings of the two parts of a step (a step starts at the engine's
target lookup and ends at its ``on_step`` hook), from which the ratio's ceiling
``1 + t_teacher / t_student`` follows (Amdahl: the cache removes the teacher's
forward pass and nothing else); the one-off cost of building the cache; and the
largest weight difference between the two runs (same targets, so rounding-sized).

    python benchmarks/distill_speed.py [--clips 32] [--epochs 3] [--batch-size 8] [--threads N]
                                       [--device cpu|cuda] [--augment]

``--batch-size`` defaults to 8, a CPU-sized batch (once freed memory is reused
the student's step costs about the same per clip from 8 to 32 clips on a 2-core
CPU: 0.08 and 0.07 s with one thread). On a GPU pass the batch you would train
with (the stage-1 recipe's 64): teacher and student then run far below their
per-clip CPU cost, and their ratio there is what decides the speed-up.
Figures and the explanation: docs/distillation.md, "Speed".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parent.parent
ESC10 = Path(os.environ.get("TINYCLAP_SHARED_DATA", REPO.parent / "shared" / "data")) / "esc10"
STUDENT = "phinet_alpha_1.50_beta_0.75_t0_6_N_7"


class InMemory(Dataset):
    """Decoded clips with their ids: the engine's dataset interface, without decoding each epoch."""

    def __init__(self, source: Any, n: int):
        from tinyclap.data import Example

        n = min(n, len(source))
        self.audio_config = source.audio_config
        self.items = [source[i] for i in range(n)]
        if not all(isinstance(x, Example) for x in self.items):
            raise SystemExit("some ESC-10 clips could not be decoded")
        self.by_id = {x.clip_id: x.clip for x in self.items}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]

    def clip_id(self, i: int) -> str:
        return self.items[i].clip_id

    def groups(self) -> list[int]:
        return list(range(len(self.items)))


class StepClock:
    """Per-batch timings of the engine's step: from the target lookup (the step's first
    action) to the ``on_step`` hook (called right after it), and the teacher's share."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.clips = 0
        self.teacher = 0.0
        self.rows: list[tuple[int, float, float]] = []  # (clips, step seconds, teacher seconds)

    def begin(self, clips: int) -> None:
        self.started, self.clips, self.teacher = time.perf_counter(), clips, 0.0

    def end(self, _step: int, _loss: float) -> None:
        if self.started is not None:
            self.rows.append((self.clips, time.perf_counter() - self.started, self.teacher))
        self.started = None

    def per_clip(self, part: str) -> float:
        """Median seconds per clip of ``part``: "step", "teacher" or "student" (step minus teacher)."""
        pick = {"step": lambda s, t: s, "teacher": lambda s, t: t, "student": lambda s, t: s - t}[part]
        return statistics.median(pick(s, t) / n for n, s, t in self.rows)


def timed_targets(cache: Any, clock: StepClock) -> Any:
    """The opened cache, with each lookup marking the start of a step."""
    from tinyclap.distill.cache import EmbeddingCache

    class TimedTargets(EmbeddingCache):
        def lookup(self, clip_ids: Sequence[str]) -> torch.Tensor:
            clock.begin(len(clip_ids))
            return super().lookup(clip_ids)

    timed = object.__new__(TimedTargets)
    timed.__dict__.update(cache.__dict__)
    return timed


def teacher_in_the_loop(cache: Any, teacher: Any, clips: dict[str, np.ndarray], clock: StepClock) -> Any:
    """The opened cache, except that every lookup runs the teacher on the clips instead."""
    from tinyclap.distill.cache import EmbeddingCache

    class TeacherTargets(EmbeddingCache):
        def lookup(self, clip_ids: Sequence[str]) -> torch.Tensor:
            clock.begin(len(clip_ids))
            batch = torch.from_numpy(np.stack([clips[c] for c in clip_ids]))
            emb = torch.nn.functional.normalize(teacher.embed_audio(batch).float(), dim=-1)
            clock.teacher = time.perf_counter() - clock.started
            return emb

    live = object.__new__(TeacherTargets)
    live.__dict__.update(cache.__dict__)
    return live


class Mode:
    """One of the two runs: its own student, targets, run folder and clock."""

    def __init__(self, name: str, targets_for: Any, out: Path):
        from tinyclap.students import AudioStudent, to_channels_last

        self.name, self.out, self.clock = name, out, StepClock()
        self.targets = targets_for(self.clock)
        torch.manual_seed(0)  # same initial weights in both modes
        self.student = to_channels_last(AudioStudent.from_name(STUDENT))
        self.epochs: list[float] = []

    def run_epoch(self, data: Dataset, args: argparse.Namespace) -> None:
        """One more epoch of this mode's run (resumed from its folder), timed by the engine."""
        from tinyclap.distill import distill

        overrides = {"augment.enabled": True} if args.augment else {}
        with contextlib.redirect_stdout(io.StringIO()):  # "resuming ..." lines
            result = distill(
                self.student, self.targets, data, preset="stage1", out_dir=self.out, epochs=len(self.epochs) + 1,
                batch_size=args.batch_size, val_split=0.0, progress=False, device=args.device, resume=True,
                on_step=self.clock.end, **overrides,
            )
        self.epochs.append(result.history[-1]["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per mode (interleaved)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="clips per step (8 suits a CPU; on a GPU use the batch you train with, e.g. 64)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--augment", action="store_true", help="both modes with the recipe's augmentation on")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tinyclap.data import open_dataset
    from tinyclap.distill import build_cache
    from tinyclap.students import reuse_freed_memory
    from tinyclap.teachers.msclap import MSClapTeacher, build_msclap

    if not (ESC10 / "meta" / "esc50.csv").is_file():
        raise SystemExit(f"ESC-10 clips not found at {ESC10} (set TINYCLAP_SHARED_DATA)")
    reused = reuse_freed_memory() if torch.device(args.device).type == "cpu" else False
    torch.manual_seed(0)
    teacher = MSClapTeacher(build_msclap("2022"), tokenizer=None, device=args.device)
    data = InMemory(open_dataset(f"esc10:{ESC10}", teacher.audio_config), args.clips)
    params = sum(p.numel() for p in teacher.model.audio_encoder.parameters())

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cache = build_cache(teacher, data, Path(tmp) / "cache", batch_size=args.batch_size, progress=False)
        build_seconds = time.perf_counter() - t0
        cached = Mode("cached targets", lambda clock: timed_targets(cache, clock), Path(tmp) / "cached")
        live = Mode("teacher in the loop", lambda clock: teacher_in_the_loop(cache, teacher, data.by_id, clock),
                    Path(tmp) / "live")
        for _ in range(args.epochs):
            for mode in (cached, live):
                mode.run_epoch(data, args)

    drift = max(
        float((a.float() - b.float()).abs().max())
        for a, b in zip(cached.student.state_dict().values(), live.student.state_dict().values())
        if a.is_floating_point()
    )
    med = {m.name: statistics.median(m.epochs) for m in (cached, live)}
    t_student = cached.clock.per_clip("step")
    t_teacher = live.clock.per_clip("teacher")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} threads, device {args.device}, "
          f"load average {os.getloadavg()[0]:.1f}; glibc keeps freed memory: {'yes' if reused else 'no'}")
    print(f"teacher: MS-CLAP 2022 audio tower, {params / 1e6:.1f} M parameters (random weights); "
          f"student: {STUDENT} (channels last); {len(data)} ESC-10 clips of 5 s, batch {args.batch_size}, "
          f"augmentation {'on' if args.augment else 'off'}, {args.epochs} epochs per mode, interleaved")
    print(f"{'mode':<22}{'s/epoch (median)':>18}   per epoch (in run order)")
    for m in (cached, live):
        print(f"{m.name:<22}{med[m.name]:>18.2f}   {', '.join(f'{x:.2f}' for x in m.epochs)}")
    print(f"speed-up: {med[live.name] / med[cached.name]:.2f}x per epoch (target 10x)")
    print(f"per clip, median over steps: student step {t_student:.3f} s (cached mode; "
          f"{live.clock.per_clip('student'):.3f} s beside the teacher), teacher forward {t_teacher:.3f} s")
    print(f"ceiling 1 + t_teacher / t_student = 1 + {t_teacher:.3f} / {t_student:.3f} = "
          f"{1 + t_teacher / t_student:.2f}x: the cache removes the teacher's forward pass, the student's "
          f"step remains")
    print(f"building the cache took {build_seconds:.2f} s once ({build_seconds / len(data):.3f} s/clip)")
    print(f"largest weight difference between the two runs: {drift:.2e}")


if __name__ == "__main__":
    sys.exit(main())
