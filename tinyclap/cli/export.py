"""`tinyclap export`: a student + prompt bank → ONNX / ONNX int8 / TFLite int8 / C, verified, and budgeted.

    tinyclap export --student runs/student.json --bank bank.npz --calib esc50:data/ESC-50 --out export/
    tinyclap export --student s.json --bank b.npz --formats onnx,onnx-int8,tflite-int8,c \\
        --calib esc50:data/ESC-50?folds=1 --target stm32h7 --window 1s --out export/
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a student for deployment (ONNX, ONNX int8, TFLite int8, C) and check it fits a device",
        description=(
            "Export a student with its prompt bank. Every format is verified at once on real calibration "
            "clips against the torch student (embedding cosines, zero-shot agreement), TFLite models are run "
            "in TensorFlow Lite Micro (arena measured), and with --target the device fit is checked; all "
            "figures go to OUT/report.json. An overflow exits with an error after everything is written."
        ),
    )
    p.add_argument("--student", required=True, type=Path, help="student checkpoint (.json or .safetensors)")
    p.add_argument("--bank", required=True, type=Path, help="prompt bank .npz (tinyclap bank)")
    p.add_argument(
        "--formats",
        default="onnx,onnx-int8,tflite-int8",
        help="comma-separated: onnx, onnx-int8, tflite-int8, c (default onnx,onnx-int8,tflite-int8)",
    )
    p.add_argument("--calib", required=True, metavar="DATASPEC", help="calibration/verification clips, e.g. esc50:ROOT")
    p.add_argument("--calib-clips", type=int, default=32, help="clips taken from --calib (default 32): every 4th only verifies, the rest calibrate")
    p.add_argument("--target", help="device to check against: a name (stm32h7, cortex-m4-512k) or a target YAML")
    p.add_argument(
        "--window", type=_duration, help="stream over windows of about this length, e.g. 1s (rounded to the stride)"
    )
    p.add_argument("--tflm-inputs", type=int, default=8, help="inputs per model run in TFLM vs LiteRT (default 8)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=run)


def _duration(text: str) -> float:
    from tinyclap.students.scaling import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from tinyclap.errors import BudgetError
    from tinyclap.export.pipeline import export_student, parse_formats

    if args.calib_clips < 1 or args.tflm_inputs < 1:
        raise ValueError("--calib-clips and --tflm-inputs must be positive")
    formats = parse_formats(args.formats)  # refuse a typo before any work
    from tinyclap.io import check_output

    check_output(args.out, "dir")
    try:
        result = export_student(
            args.student,
            args.bank,
            args.out,
            formats=formats,
            calibration=args.calib,
            target=args.target,
            window_seconds=args.window,
            max_clips=args.calib_clips,
            tflm_inputs=args.tflm_inputs,
            log=lambda msg: print(msg, flush=True),
        )
    except BudgetError:
        print(f"report: {args.out / 'report.json'}")
        raise
    _summary(result.report)
    print(f"report: {result.report_path}")
    return 0


def _summary(report: dict[str, Any]) -> None:
    print()
    print(f"{'format':12} {'cos mean':>9} {'cos worst':>9} {'zero-shot':>9}  files")
    for name, f in report.get("formats", {}).items():
        if "cosine_mean" not in f:
            continue
        files = ", ".join(f"{k} ({v:,} B)" for k, v in f.get("files", {}).items())
        print(
            f"{name:12} {f['cosine_mean']:9.5f} {f['cosine_worst']:9.5f} {f.get('zeroshot_agreement', 0):9.3f}  {files}"
        )
    target = report.get("target")
    if target:
        for key in ("flash", "ram"):
            r = target[key]
            print(f"{key:6} {r['used']:>10,} of {r['budget']:>10,} bytes ({100 * r['use']:.0f}%)")
        print(f"MACs per second of audio: {target['macs_per_second']:,}")
