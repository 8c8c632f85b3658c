"""Device figures of the firmware image, measured on the ARM instruction set in QEMU.

For the quickstart-sized student and each MCU preset (random weights, BatchNorm
statistics calibrated on real clips as benchmarks/deploy.py does, a 50-class
random bank) this runs the real export with ``--target`` (which writes
``OUT/firmware``), builds the image with ``arm-none-eabi-gcc`` and runs it in QEMU
(``mps2-an500`` Cortex-M7, ``mps2-an386`` Cortex-M4) on clips of ``--calib``, and
prints:

- flash and RAM of the linked image (read from the ELF) against the target;
- the network's arena (plain C plan) against TFLite Micro's measured arena;
- the stack high-water mark (painted stack);
- instructions per second of audio counted by the emulator (``-icount shift=0``),
  split into front end / network / classifier;
- the real-time factor at the target's clock and at 480 MHz, counting one
  instruction per cycle (an assumption: QEMU models no pipeline or memory).

    python benchmarks/firmware.py [--calib esc50:DIR] [--clips 6] [--only mcu_stm32h7] [--json]

It prints figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy import DEFAULT_DATA, calibrated_student, random_bank  # noqa: E402

from tinyclap.errors import BudgetError  # noqa: E402
from tinyclap.export.calibration import load_calibration  # noqa: E402
from tinyclap.export.pipeline import export_student  # noqa: E402
from tinyclap.firmware.build import LinkOverflowError, build_firmware  # noqa: E402
from tinyclap.firmware.qemu import STAGES, bundle_clips, run_firmware  # noqa: E402
from tinyclap.students import AudioStudent  # noqa: E402

# (row name, student preset, target, streaming window in seconds or None, cpu)
ROWS = [
    ("quickstart", "mcu_cortex_m4", "stm32h7", None, "cortex-m7"),
    ("mcu_cortex_m4", "mcu_cortex_m4", "cortex-m4-512k", None, "cortex-m4f"),
    ("mcu_stm32h7", "mcu_stm32h7", "stm32h7", None, "cortex-m7"),
    ("mcu_stm32h7_streaming", "mcu_stm32h7_streaming", "stm32h7", 1.0, "cortex-m7"),
]


def measure(row: tuple, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    name, preset, target, window, cpu = row
    probe = AudioStudent.from_name(preset)
    calib = load_calibration(args.calib, probe.audio_config, args.calib_clips)
    student = calibrated_student(preset, calib.clips)
    bank = random_bank(student.dim)
    out = work / name
    t0 = time.perf_counter()
    fit_error = None
    try:
        export_student(
            student,
            bank,
            out,
            formats=("tflite-int8",),
            calibration=calib,
            target=target,
            window_seconds=window,
            max_clips=args.calib_clips,
        )
    except BudgetError as err:  # everything is written before the error
        fit_error = str(err)
    export_s = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    row_out: dict[str, Any] = {
        "row": name,
        "preset": preset,
        "target": target,
        "cpu": cpu,
        "window_seconds": window,
        "params": report["student"]["params"],
        "dim": report["student"]["dim"],
        "macs_per_second": report["macs"]["per_second"],
        "export_seconds": round(export_s, 1),
        "report_fit": report["target"]["message"],
        "report_flash": report["target"]["flash"]["used"],
        "report_ram": report["target"]["ram"]["used"],
        "tflm_arena": sum(m["tflm"]["arena_bytes"] for m in report["formats"]["tflite-int8"]["models"].values()),
    }
    if fit_error:
        row_out["report_overflow"] = fit_error
    if "error" in report.get("firmware", {}):
        row_out["error"] = report["firmware"]["error"]
        return row_out
    try:
        image = build_firmware(out / "firmware", cpu)
    except LinkOverflowError as err:
        row_out["link_error"] = str(err)
        return row_out
    clips, _, _ = bundle_clips(out / "firmware", dataset=args.calib, max_clips=args.clips)
    t0 = time.perf_counter()
    run = run_firmware(out / "firmware", clips, cpu=cpu, image=image)
    d = run.to_dict()
    row_out.update(
        qemu_seconds=round(time.perf_counter() - t0, 1),
        clips=len(clips),
        flash_linked=d["flash_bytes"],
        ram_linked=d["ram_bytes"],
        flash_budget=d["target"]["flash_bytes"],
        ram_budget=d["target"]["ram_bytes"],
        clock_hz=d["clock_hz"],
        arena=d["arena_bytes"],
        stack_used=d["stack_used"],
        stack_size=d["stack_size"],
        audio_seconds=d["audio_seconds"],
        instructions_per_second=d["instructions_per_second"],
        rtf_target=d["real_time_factor"],
        rtf_480mhz=d["instructions_per_second"]["total"] / 480e6,
        calibration_instructions_per_tick=d["calibration_instructions_per_tick"],
    )
    return row_out


def print_rows(rows: list[dict[str, Any]]) -> None:
    def kb(n: int) -> str:
        return f"{n / 1024:,.1f} KiB"

    print()
    print(
        "| student (target, core) | flash linked / target | RAM linked / target | arena C / TFLM | stack used "
        "| instructions per s of audio: front end / network / classifier | RTF at target clock | RTF at 480 MHz |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        head = f"{r['row']} ({r['target']}, {r['cpu']})"
        if "error" in r or "link_error" in r:
            print(f"| {head} | {r.get('link_error') or r.get('error')} | | | | | | |")
            continue
        ips = r["instructions_per_second"]
        stages = " / ".join(f"{ips[s] / 1e6:,.1f} M" for s in STAGES)
        print(
            f"| {head} | {kb(r['flash_linked'])} / {kb(r['flash_budget'])} | {kb(r['ram_linked'])} / "
            f"{kb(r['ram_budget'])} | {r['arena']:,} / {r['tflm_arena']:,} B | {r['stack_used']:,} B | "
            f"{stages} (total {ips['total'] / 1e6:,.1f} M) | {r['rtf_target']:.3f} at {r['clock_hz'] / 1e6:g} MHz | "
            f"{r['rtf_480mhz']:.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", default=f"esc50:{DEFAULT_DATA}", help="dataset spec for calibration and the run")
    ap.add_argument("--calib-clips", type=int, default=16)
    ap.add_argument("--clips", type=int, default=6, help="clips classified in QEMU per row")
    ap.add_argument("--only", nargs="*", help="row names to run")
    ap.add_argument("--keep", type=Path, help="keep the exports and images here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()} "
        f"({platform.machine()}), {qemu}, {gcc}"
    )
    print(f"# data: {args.calib} ({args.calib_clips} calibration clips, {args.clips} clips run per row)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="firmware-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in ROWS:
        if args.only and row[0] not in args.only:
            continue
        r = measure(row, args, work)
        rows.append(r)
        print(json.dumps(r), flush=True)
    print_rows(rows)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
