"""`tinyclap pretrain`: train a CLAP teacher contrastively from captioned audio (see docs/pretrain.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyclap.cli import positive_number, torch_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="train your own CLAP teacher from captioned (or labelled) audio",
        description=(
            "Train a CLAP teacher (audio tower + a local transformers text tower, symmetric InfoNCE) "
            "and save it in --out; use it anywhere a teacher is asked for as local:OUT. "
            "--preset quick trains a small teacher on the generated synth corpus in minutes on a CPU."
        ),
    )
    p.add_argument("--data", nargs="+", metavar="SPEC", help="training datasets (synth, clotho:ROOT, esc50:ROOT, ...)")
    p.add_argument("--out", type=Path, required=True, help="output folder (teacher, metrics, loss curve, state)")
    p.add_argument("--preset", help="recipe: quick, base, or a recipe YAML path (flags override it)")
    p.add_argument("--val", nargs="+", metavar="SPEC", help="held-out datasets (default: split off --val-fraction)")
    p.add_argument("--val-fraction", type=float, help="share of source files held out when --val is not given")
    p.add_argument("--eval", nargs="+", metavar="SPEC", help="labelled datasets scored zero-shot after each epoch")
    p.add_argument("--text-model", help="local transformers text encoder folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--text-trainable", action="store_true", default=None, help="fine-tune the text tower too")
    p.add_argument("--audio-encoder", help="phinet_alpha_3.00_beta_0.75_t0_6_N_7 or cnn14:width=N (options: k=v,...)")
    p.add_argument("--dim", type=int, help="shared embedding dimension (default 512)")
    p.add_argument("--clip-seconds", type=positive_number, help="clip length the teacher sees (default 5)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", type=torch_device, help="torch device or auto (default)")
    p.add_argument("--num-workers", type=int, help="DataLoader workers reading audio")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.pretrain.config import PretrainConfig, load_recipe
    from tinyclap.io import check_output
    from tinyclap.pretrain.train import pretrain

    check_output(args.out, "dir")
    config = load_recipe(args.preset) if args.preset else PretrainConfig()
    audio = dict(config.audio)
    if args.clip_seconds is not None:
        audio["clip_seconds"] = args.clip_seconds
    config = config.updated(
        {
            "data": args.data,
            "val_data": args.val,
            "val_fraction": args.val_fraction,
            "eval_data": args.eval,
            "text_model": args.text_model,
            "text_trainable": args.text_trainable,
            "audio_encoder": args.audio_encoder,
            "dim": args.dim,
            "audio": audio,
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "device": args.device,
            "num_workers": args.num_workers,
        },
        source="command line",
    )
    result = pretrain(config, args.out, resume=args.resume, progress=not args.no_progress)
    state = "finished" if result.finished else "stopped early (re-run with --resume to continue)"
    print(f"{state}: {result.epoch} epochs, {result.step} steps, {result.wall_s:.0f} s", file=sys.stderr)
    for key, value in result.metrics.items():
        if key.endswith(("_zeroshot_acc", "_loss")):
            print(f"  {key}: {value:.3f}", file=sys.stderr)
    print(f"teacher: {result.teacher_path}  (use it as --teacher local:{args.out})", file=sys.stderr)
    return 0
