"""`tinyclap data`: show what dataset specs resolve to (and find broken files)."""

from __future__ import annotations

import argparse

from tinyclap.cli import positive_number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="describe datasets given as specs (counts, classes, ids, broken files)",
        description=(
            "Open each dataset spec (esc50:ROOT?folds=1,2, us8k:ROOT, tut17:ROOT, clotho:ROOT, "
            "audiocaps:ROOT, macs:ROOT, fsd50k:ROOT, manifest:FILE, folder:DIR, synth?n=200) and print "
            "its size, classes and first items. --scan reads every clip to find broken files."
        ),
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="dataset specs (see docs/datasets.md)")
    p.add_argument("--sample-rate", type=int, default=44100, help="sample rate clips are read at (default 44100)")
    p.add_argument("--clip-seconds", type=positive_number, default=5.0, help="clip / window length (default 5)")
    p.add_argument("--show", type=int, default=3, help="items to list per dataset (default 3)")
    p.add_argument("--scan", action="store_true", help="decode every item once and report broken files")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers for --scan")
    p.add_argument("--strict", action="store_true", help="stop at the first broken or missing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.audio import AudioConfig
    from tinyclap.data.inspect import describe_dataset

    cfg = AudioConfig(sample_rate=args.sample_rate, clip_seconds=args.clip_seconds)
    for spec in args.specs:
        print(
            describe_dataset(
                spec, cfg, show=args.show, scan=args.scan, num_workers=args.num_workers,
                progress=args.scan, strict=args.strict,
            )
        )
    return 0
