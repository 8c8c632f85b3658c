"""Seconds per distillation epoch: targets from the embedding cache vs the teacher in the loop.

A full-size MS-CLAP 2022 teacher (CNN14 audio tower, random weights: speed does
not depend on the values) and the tinyCLAP α1.5 student
(phinet_alpha_1.50_beta_0.75_t0_6_N_7, 4.4 M parameters) on the same real
ESC-10 clips (5 s, 44.1 kHz), decoded once and held in memory so that both
modes pay the same data cost. Both modes run the engine's own loop
(:func:`tinyclap.distill.distill`); in the teacher-in-the-loop mode the cache's
``lookup`` is replaced by a call to ``teacher.embed_audio`` on the batch's clips,
which is what distilling without a cache costs. Prints the median training
seconds per epoch of each mode side by side, the one-off cost of building the
cache, and the largest weight difference between the two runs (they see the
same targets, so it should be rounding-sized).

    python benchmarks/distill_speed.py [--clips 32] [--epochs 3] [--batch-size 8] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parent.parent
ESC10 = Path(os.environ.get("TINYCLAP_SHARED_DATA", REPO.parent / "shared" / "data")) / "esc10"


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


def teacher_in_the_loop(cache: Any, teacher: Any, clips: dict[str, np.ndarray]) -> Any:
    """The opened cache, except that every lookup runs the teacher on the clips instead."""
    from tinyclap.distill.cache import EmbeddingCache

    class TeacherTargets(EmbeddingCache):
        def lookup(self, clip_ids: Sequence[str]) -> torch.Tensor:
            batch = torch.from_numpy(np.stack([clips[c] for c in clip_ids]))
            return torch.nn.functional.normalize(teacher.embed_audio(batch).float(), dim=-1)

    live = object.__new__(TeacherTargets)
    live.__dict__.update(cache.__dict__)
    return live


def run_mode(targets: Any, data: Dataset, args: argparse.Namespace, out: Path) -> tuple[list[float], Any]:
    from tinyclap.distill import distill
    from tinyclap.students import AudioStudent

    torch.manual_seed(0)
    student = AudioStudent.from_name("phinet_alpha_1.50_beta_0.75_t0_6_N_7", audio_config=data.audio_config)
    result = distill(
        student, targets, data, preset="stage1", out_dir=out, epochs=args.epochs, batch_size=args.batch_size,
        val_split=0.0, progress=False, device=args.device,
    )
    return [row["train_seconds"] for row in result.history], student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tinyclap.data import open_dataset
    from tinyclap.distill import build_cache
    from tinyclap.teachers.msclap import MSClapTeacher, build_msclap

    if not (ESC10 / "meta" / "esc50.csv").is_file():
        raise SystemExit(f"ESC-10 clips not found at {ESC10} (set TINYCLAP_SHARED_DATA)")
    torch.manual_seed(0)
    teacher = MSClapTeacher(build_msclap("2022"), tokenizer=None, device=args.device)
    data = InMemory(open_dataset(f"esc10:{ESC10}", teacher.audio_config), args.clips)
    params = sum(p.numel() for p in teacher.model.audio_encoder.parameters())

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cache = build_cache(teacher, data, Path(tmp) / "cache", batch_size=args.batch_size, progress=False)
        build_seconds = time.perf_counter() - t0
        cached, s_cached = run_mode(cache, data, args, Path(tmp) / "cached")
        live, s_live = run_mode(teacher_in_the_loop(cache, teacher, data.by_id), data, args, Path(tmp) / "live")

    drift = max(float((a - b).abs().max()) for a, b in zip(s_cached.state_dict().values(), s_live.state_dict().values())
                if a.is_floating_point())
    med_cached, med_live = statistics.median(cached), statistics.median(live)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    print(f"teacher: MS-CLAP 2022 audio tower, {params / 1e6:.1f} M parameters (random weights); "
          f"student: phinet_alpha_1.50_beta_0.75_t0_6_N_7; {len(data)} ESC-10 clips of 5 s, "
          f"batch {args.batch_size}, {args.epochs} epochs per mode")
    print(f"{'mode':<26}{'s/epoch (median)':>18}{'per epoch':>40}")
    print(f"{'cached targets':<26}{med_cached:>18.2f}{'  ' + ', '.join(f'{x:.2f}' for x in cached):>40}")
    print(f"{'teacher in the loop':<26}{med_live:>18.2f}{'  ' + ', '.join(f'{x:.2f}' for x in live):>40}")
    print(f"speed-up: {med_live / med_cached:.1f}x per epoch; building the cache took {build_seconds:.2f} s once "
          f"({build_seconds / len(data):.3f} s/clip)")
    print(f"largest weight difference between the two runs: {drift:.2e}")


if __name__ == "__main__":
    sys.exit(main())
