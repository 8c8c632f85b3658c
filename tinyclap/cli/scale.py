"""`tinyclap scale`: the biggest student that fits a device, or what a given student costs.

    tinyclap scale --flash 2MB --ram 1MB --window 1s --dims 256
    tinyclap scale --flash 1MB --ram 256KB --macs 60M --window 1s --dims 256 --json
    tinyclap scale --profile phinet_alpha_1.50_beta_0.75_t0_6_N_7 --layers
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scale",
        help="pick the biggest student that fits a flash / RAM / MAC budget (or profile one)",
        description="Hardware-aware scaling: search PhiNet alpha, beta, t0, N for the student with the most "
        "capacity whose measured int8 profile fits the budget. Sizes are binary (1MB = 1 MiB, as MCU "
        "datasheets use them); MAC counts are decimal (60M = 60,000,000).",
    )
    p.add_argument("--flash", type=_arg(_size), help="flash budget for the int8 model, e.g. 2MB, 512KB")
    p.add_argument("--ram", type=_arg(_size), help="RAM budget for int8 activations, e.g. 1MB, 128KB")
    p.add_argument("--macs", type=_arg(_count), help="MACs per window, e.g. 60M")
    p.add_argument("--window", type=_arg(_duration), help="input window (default: the 5 s clip), e.g. 1s, 500ms")
    p.add_argument("--dims", type=int, default=1024, help="shared embedding size the head outputs (default 1024)")
    p.add_argument("--embed-width", type=int, help="width of the pooled features (default min(2*dims, 2048))")
    p.add_argument("--head-act", choices=("relu", "gelu"), default="relu",
                   help="projection activation (default relu: TFLite Micro has no GELU)")  # fmt: skip
    p.add_argument("--objective", choices=("params", "macs"), default="params",
                   help="what 'biggest' means (default params)")  # fmt: skip
    p.add_argument("--profile", metavar="STUDENT", help="profile this student (name, preset or YAML) instead of searching")
    p.add_argument("--layers", action="store_true", help="also print the per-layer walk")
    p.add_argument("--save", metavar="YAML", help="write the chosen student as a preset YAML")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _size(text: str) -> int:
    from tinyclap.students.scaling import parse_size

    return parse_size(text)


def _count(text: str) -> int:
    from tinyclap.students.scaling import parse_count

    return parse_count(text)


def _duration(text: str) -> float:
    from tinyclap.students.scaling import parse_duration

    return parse_duration(text)


def _arg(parse: Any) -> Any:
    """argparse type that reports our parser's message instead of 'invalid value'."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    wrapped.__name__ = parse.__name__.strip("_")
    return wrapped


def run(args: argparse.Namespace) -> int:
    from tinyclap.audio import AudioConfig
    from tinyclap.students.encoder import resolve_config, save_preset
    from tinyclap.students.scaling import Budget, fit, profile

    if args.dims < 1 or (args.embed_width is not None and args.embed_width < 1):
        raise ValueError("--dims and --embed-width must be positive")
    if args.save:
        from tinyclap.io import check_output

        check_output(args.save, "file", option="--save")
    if args.profile:
        config, audio = resolve_config(args.profile)
        if args.window is not None:
            audio = audio.with_seconds(args.window)
        budget = Budget(args.flash, args.ram, args.macs, audio_config=audio, dim=config.dim,
                        embed_width=config.embed_width, head_act=config.head_act)  # fmt: skip
        result = profile(config, budget.input_frames, audio.n_mels)
    else:
        if args.flash is None and args.ram is None and args.macs is None:
            raise ValueError("give at least one of --flash, --ram, --macs (or --profile STUDENT)")
        budget = Budget(args.flash, args.ram, args.macs, window_seconds=args.window, dim=args.dims,
                        embed_width=args.embed_width, head_act=args.head_act, audio_config=AudioConfig())  # fmt: skip
        config, result = fit(budget, objective=args.objective)
    audio = budget.window_audio_config
    if args.save:
        save_preset(args.save, config, audio, description=f"tinyclap scale: {_budget_line(budget)}",
                    budget={**budget.limits(), "window_seconds": audio.clip_seconds})  # fmt: skip
    if args.json:
        doc = {
            "name": config.name,
            "config": config.to_dict(),
            "audio_config": audio.to_dict(),
            "window_seconds": audio.clip_seconds,
            "profile": result.to_dict(layers=args.layers),
            "budget": {k: v for k, v in budget.limits().items()},
            "fits": budget.fits(result),
        }
        json.dump(doc, sys.stdout, indent=2, default=str)
        print()
    else:
        _print_table(config, audio, budget, result, args.layers)
        if args.save:
            print(f"saved {args.save}")
    return 0 if budget.fits(result) else 1


def _budget_line(budget: Any) -> str:
    from tinyclap.students.scaling import format_bytes, format_count

    parts = []
    if budget.flash_bytes:
        parts.append(f"flash {format_bytes(budget.flash_bytes)}")
    if budget.ram_bytes:
        parts.append(f"RAM {format_bytes(budget.ram_bytes)}")
    if budget.macs:
        parts.append(f"MACs {format_count(budget.macs)}")
    return ", ".join(parts) + f", window {budget.window_audio_config.clip_seconds:g} s, dims {budget.dim}"


def _print_table(config: Any, audio: Any, budget: Any, p: Any, layers: bool) -> None:
    from tinyclap.students.scaling import describe, format_bytes, format_count

    print(f"student  {config.name}")
    print(f"         embed {config.embed_width}, dim {config.dim}, head {config.head_act}, "
          f"compatibility {config.compatibility}")  # fmt: skip
    print(f"window   {audio.clip_seconds:g} s = {p.input_frames} frames x {p.n_mels} mels")
    print()
    print(f"{'':8} {'measured':>12} {'budget':>12} {'use':>6}")
    for label, value, limit, use in describe(budget, p):
        print(f"{label:8} {value:>12} {limit:>12} {use:>6}")
    print(f"peak RAM at {p.peak_layer}")
    print("figures are the model's own: on TFLite Micro the .tflite adds ~50-90 KB of tables and the arena")
    print("~5% plus 35-70 KB of persistent data (measured on the MCU presets); leave headroom for both")
    over = budget.violations(p)
    if over:
        names = {"flash_bytes": "flash", "ram_bytes": "RAM", "macs": "MACs"}
        print("DOES NOT FIT: " + ", ".join(names[k] for k in over))
    if layers:
        print()
        print(f"{'layer':44} {'op':14} {'output':>16} {'params':>10} {'MACs':>10} {'live RAM':>11}")
        for layer in p.layers:
            if layer.fused:
                continue
            shape = "x".join(str(d) for d in layer.out_shape)
            print(f"{layer.name:44} {layer.op:14} {shape:>16} {layer.params:>10,} "
                  f"{format_count(layer.macs):>10} {format_bytes(layer.live_bytes):>11}")  # fmt: skip
