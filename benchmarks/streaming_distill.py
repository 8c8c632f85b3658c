"""Does distilling with windows make streaming agree with whole clips? A real-audio A/B.

Protocol (ESC-10 layout, 5 s clips at 44.1 kHz):

1. pretrain a CLAP teacher on folds 1-3 at 5 s (recipe ``quick`` with 5 s
   clips, packaged MiniLM text tower), validated on fold 4;
2. cache its embeddings of folds 1-4 and distil the same student three times
   from the same initial weights: on whole clips only, with
   ``stream_window=1.0`` (loss: half whole clip, half the device's streamed
   path), and with that plus ``stream_consistency`` (``--consistency``, the
   streamed path pulled toward the whole clip's embedding);
3. on fold 5 (80 clips) print, for each: streamed-vs-whole cosine (mean and
   worst), each path's cosine to the teacher, the mean cosine between two
   different clips' whole-clip embeddings (the scale the streaming error is
   measured against), and zero-shot accuracy of teacher, whole and streamed
   against the fold-5 class prompts.

Re-running with the same ``--out`` reuses the teacher, the cache and finished
runs. Not run by CI.

    python benchmarks/streaming_distill.py [--root DIR] [--out runs/streaming] [--epochs 4] [--student NAME]
                                           [--consistency 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
ESC10 = Path(os.environ.get("TINYCLAP_SHARED_DATA", REPO.parent / "shared" / "data")) / "esc10"


def teacher_for(args: argparse.Namespace) -> Any:
    """Pretrain (or reuse) the 5 s teacher on folds 1-3."""
    from tinyclap.pretrain.config import load_recipe
    from tinyclap.pretrain.train import pretrain
    from tinyclap.teachers.registry import load_teacher

    tdir = args.out / "teacher"
    if not (tdir / "teacher.json").is_file():
        cfg = replace(load_recipe("quick"), data=[f"esc10:{args.root}?folds=1,2,3"],
                      val_data=[f"esc10:{args.root}?folds=4"], epochs=args.teacher_epochs, dim=256,
                      audio={"clip_seconds": 5.0}, seed=args.seed)
        pretrain(cfg, tdir, resume=tdir.exists(), progress=False)
    return load_teacher(f"local:{tdir}")


def off_diagonal_mean(e: torch.Tensor) -> float:
    """Mean cosine between the embeddings of two different clips."""
    return float((e @ e.T)[~torch.eye(len(e), dtype=torch.bool)].mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ESC10)
    ap.add_argument("--out", type=Path, default=Path("runs/streaming"))
    ap.add_argument("--student", default="phinet_alpha_0.50_beta_0.75_t0_6_N_7")
    ap.add_argument("--epochs", type=int, default=4, help="distillation epochs per run")
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--window", type=float, default=1.0, help="streaming window, seconds")
    ap.add_argument("--consistency", type=float, default=1.0, help="stream_consistency of the third run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (args.root / "meta").is_dir():
        print(f"error: {args.root} is not an ESC-50-layout root", file=sys.stderr)
        return 2

    from tinyclap.bank import PromptBank
    from tinyclap.data import open_dataset
    from tinyclap.distill import build_cache, distill
    from tinyclap.export.streaming import stream_embed
    from tinyclap.students import AudioStudent
    from tinyclap.students.speed import reuse_freed_memory

    reuse_freed_memory()
    teacher = teacher_for(args)
    train = [f"esc10:{args.root}?folds=1,2,3,4"]
    build_cache(teacher, [open_dataset(s, teacher.audio_config) for s in train], args.out / "cache", progress=False)
    test = open_dataset(f"esc10:{args.root}?folds=5", teacher.audio_config)
    clips = np.stack([test[i].clip for i in range(len(test))])
    labels = torch.tensor([test[i].target for i in range(len(test))])
    bank = torch.as_tensor(PromptBank.build(teacher, test.class_names).embeddings).float()
    target = teacher.embed_audio(torch.from_numpy(clips)).float()

    def accuracy(e: torch.Tensor) -> float:
        return float(((e @ bank.T).argmax(1) == labels).float().mean())

    print(f"teacher: {teacher.name}; zero-shot on fold 5 {accuracy(target):.3f}; "
          f"mean cosine between clips {off_diagonal_mean(target):.3f}")
    print(f"{'distilled on':<16}{'stream~whole':>14}{'worst':>8}{'whole~T':>9}{'stream~T':>10}"
          f"{'clips~clips':>13}{'acc whole':>11}{'acc stream':>12}{'s':>7}")
    w, c = args.window, args.consistency
    runs = (("whole clips", None, 0.0, "whole"), (f"{w:g} s windows", w, 0.0, f"stream{w:g}"),
            (f"+ consistency {c:g}", w, c, f"stream{w:g}c{c:g}"))
    for name, window, consistency, folder in runs:
        torch.manual_seed(args.seed)
        student = AudioStudent.from_name(args.student, dim=teacher.dim, audio_config=teacher.audio_config)
        t0 = time.perf_counter()
        run = args.out / folder
        result = distill(student, args.out / "cache", train, out_dir=run, preset="quick", epochs=args.epochs,
                         seed=args.seed, progress=False, resume=run.exists(), stream_window=window,
                         stream_consistency=consistency, **{"scheduler.name": "cosine"})
        seconds = time.perf_counter() - t0
        student = result.student.eval()
        with torch.no_grad():
            whole = torch.cat([student.embed_audio(clips[i : i + 16]) for i in range(0, len(clips), 16)])
        streamed = stream_embed(student, clips, args.window)
        agree = F.cosine_similarity(streamed, whole)
        print(f"{name:<16}{float(agree.mean()):>14.4f}{float(agree.min()):>8.4f}"
              f"{float(F.cosine_similarity(whole, target).mean()):>9.4f}"
              f"{float(F.cosine_similarity(streamed, target).mean()):>10.4f}{off_diagonal_mean(whole):>13.3f}"
              f"{accuracy(whole):>11.3f}{accuracy(streamed):>12.3f}{seconds:>7.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
