"""`tinyclap firmware`: build the exported firmware bundle and run it on an emulated Cortex-M.

    tinyclap firmware build export/                      # make cortex-m7 in export/firmware
    tinyclap firmware run export/ --dataset esc50:data/ESC-50?folds=1 --clips 40 [--json]
    tinyclap firmware run export/ --audio dog.wav rain.ogg

`run` classifies each clip in QEMU (mps2-an500, Cortex-M7) and prints the firmware's top
labels, then the image's flash and RAM as linked, its stack high-water mark, and the
instructions per second of audio per stage counted by the emulator.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "firmware",
        help="build the firmware bundle of an export and run it on an emulated Cortex-M (QEMU)",
        description="Build OUT/firmware (written by `tinyclap export --target`) and run it in QEMU.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="cross-compile the image (make cortex-m7)")
    b.add_argument("dir", type=Path, help="export folder or its firmware/ folder")
    b.add_argument("--cpu", default="cortex-m7", choices=["cortex-m7", "cortex-m4f", "host"])
    b.set_defaults(func=run_build)
    r = sub.add_parser("run", help="classify clips on the emulated core and report the image's figures")
    r.add_argument("dir", type=Path, help="export folder or its firmware/ folder")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="SPEC", help="dataset spec, e.g. esc50:ROOT?folds=1")
    src.add_argument("--audio", nargs="+", type=Path, metavar="FILE", help="audio files")
    r.add_argument("--clips", type=int, default=None, help="at most this many clips of --dataset (evenly spaced)")
    r.add_argument("--cpu", default="cortex-m7", choices=["cortex-m7", "cortex-m4f"])
    r.add_argument("--no-build", action="store_true", help="run the image already built")
    r.add_argument("--json", action="store_true", help="print the whole run as JSON")
    r.set_defaults(func=run_run)


def run_build(args: argparse.Namespace) -> int:
    from tinyclap.firmware.build import build_firmware
    from tinyclap.firmware.elf import read_elf_memory

    image = build_firmware(args.dir, args.cpu)
    print(f"built {image.path}")
    if args.cpu != "host":
        b = image.bundle
        board = b.manifest["board"]
        mem = read_elf_memory(
            image.path,
            flash=(board["flash_origin"], b.target.flash_bytes),
            ram=(board["ram_origin"], b.target.ram_bytes),
        )
        print(f"flash {mem.flash_bytes:>10,} of {b.target.flash_bytes:>10,} B  (as linked)")
        print(
            f"RAM   {mem.ram_bytes:>10,} of {b.target.ram_bytes:>10,} B  (as linked, stack {b.stack_bytes:,} B included)"
        )
    return 0


def run_run(args: argparse.Namespace) -> int:
    from tinyclap.firmware.build import build_firmware
    from tinyclap.firmware.bundle import load_bundle
    from tinyclap.firmware.qemu import STAGES, bundle_clips, run_firmware

    if args.clips is not None and args.clips < 1:
        raise ValueError("--clips must be positive")
    bundle = load_bundle(args.dir)
    image = None if args.no_build else build_firmware(bundle.dir, args.cpu)
    clips, ids, truth = bundle_clips(bundle, dataset=args.dataset, audio_files=args.audio, max_clips=args.clips)
    run = run_firmware(bundle, clips, cpu=args.cpu, image=image)
    if args.json:
        d = run.to_dict()
        for c, clip_id, t in zip(d["clips"], ids, truth):
            c["id"], c["truth"] = clip_id, t
        print(json.dumps(d, indent=2))
        return 0
    # Accuracy only over clips whose truth is one of the bank's labels: a captioned
    # dataset's truth is a sentence, which no label can equal.
    labels = set(bundle.manifest.get("labels", []))
    width = max(len(i) for i in ids)
    for clip_id, t, c in zip(ids, truth, run.clips):
        top = ", ".join(f"{lab} {cos:.3f}" for lab, cos in zip(c.labels, c.cosine))
        mark = "" if t is None else ("  [ok]" if t == c.label else f"  [truth: {t}]")
        print(f"{clip_id:{width}}  {c.label}{mark}   top: {top}")
    scored = [(t, c) for t, c in zip(truth, run.clips) if t is not None and t in labels]
    if scored:
        right = sum(t == c.label for t, c in scored)
        print(f"accuracy {right}/{len(scored)} = {right / len(scored):.3f}")
    elif any(t is not None for t in truth):
        print("accuracy: not scored (no clip's truth is one of the bank's labels)")
    tgt = bundle.target
    print()
    print(f"image {run.elf} on QEMU {run.machine}")
    print(f"flash {run.memory.flash_bytes:>10,} of {tgt.flash_bytes:>10,} B (as linked)")
    print(
        f"RAM   {run.memory.ram_bytes:>10,} of {tgt.ram_bytes:>10,} B (as linked; arena {run.arena_bytes:,} B, "
        f"stack {run.stack_size:,} B of which {run.stack_used:,} B used)"
    )
    ips = run.instructions_per_second
    print(
        f"instructions per second of audio ({run.audio_seconds:.1f} s): "
        + ", ".join(f"{s} {ips[s]:,.0f}" for s in STAGES)
        + f"; total {ips['total']:,.0f}"
    )
    if run.real_time_factor is not None:
        print(
            f"real-time factor at {tgt.clock_hz / 1e6:g} MHz: {run.real_time_factor:.4f} "
            "(assumes 1 instruction per cycle)"
        )
    return 0
