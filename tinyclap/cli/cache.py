"""`tinyclap cache`: run a teacher once over datasets and store its embeddings (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tinyclap.cli import positive_number, torch_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cache",
        help="embed datasets with a teacher once, for distillation",
        description=(
            "Run a teacher over every clip (and window) of the datasets and store the unit embeddings "
            "in sharded memory-mapped .npy files under --out. Interrupted builds keep finished shards: "
            "re-run the same command to continue. Under torchrun the shards are split across ranks."
        ),
    )
    p.add_argument("--teacher", help="msclap-2022, msclap-2023, laion/..., a ClapModel folder or local:PATH")
    p.add_argument("--checkpoint", help="MS-CLAP weights file (instead of $TINYCLAP_HOME / the hub cache)")
    p.add_argument("--text-model", help="MS-CLAP text encoder (hub id or folder)")
    p.add_argument("--clap-version", choices=["2022", "2023"], help="MS-CLAP version of a .pth given as --teacher")
    p.add_argument("--data", nargs="+", default=[], metavar="SPEC", help="dataset specs, e.g. esc50:/data/ESC-50 synth?n=200")
    p.add_argument("--out", type=Path, required=True, help="cache folder (created; an existing cache is continued)")
    p.add_argument("--clip-seconds", type=positive_number, help="window length (default: the teacher's clip length)")
    p.add_argument("--batch-size", type=int, default=32, help="clips per teacher forward pass (default 32)")
    p.add_argument("--shard-size", type=int, default=4096, help="embeddings per shard file (default 4096)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--device", type=torch_device, default="auto", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--info", action="store_true", help="only describe the cache in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.data import broken_report, open_dataset
    from tinyclap.distill.cache import build_cache, cache_summary
    from tinyclap.distill.ddp import setup, teardown
    from tinyclap.teachers.registry import load_teacher

    if args.info:
        print(cache_summary(args.out))
        return 0
    if not args.teacher or not args.data:
        raise ValueError("give --teacher NAME and --data SPEC... (or --info)")
    from tinyclap.io import check_output

    check_output(args.out, "dir")
    options: dict[str, Any] = {}
    for key in ("checkpoint", "text_model"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    if args.clap_version:
        options["version"] = args.clap_version
    env = setup(args.device)
    try:
        teacher = load_teacher(args.teacher, device=str(env.device), quiet=not env.is_main, **options)
        config = teacher.audio_config
        if args.clip_seconds is not None:
            config = config.with_seconds(args.clip_seconds)
        datasets = [open_dataset(spec, config) for spec in args.data]
        cache = build_cache(
            teacher,
            datasets,
            args.out,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
            num_workers=args.num_workers,
            progress=not args.no_progress,
            env=env,
        )
        if env.is_main:
            print(cache_summary(cache.root))
            for spec, ds in zip(args.data, datasets):
                report = broken_report(ds)
                if report != "no broken files":
                    print(f"{spec}: {report}")
    finally:
        teardown(env)
    return 0
