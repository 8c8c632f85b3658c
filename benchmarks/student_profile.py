"""Print the measured profiles of the student presets and how long `fit` takes.

    python benchmarks/student_profile.py [--repeats 3] [--latency]

Figures: params, MACs, int8 flash and peak int8 activation RAM for a 5 s clip
and a 1 s window; the configs `fit` picks for MCU budgets with the wall time of
the search (median over repeats, profile cache cleared each time); with
``--latency``, the median CPU forward time of each preset on one window.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tinyclap.audio import AudioConfig
from tinyclap.students import AudioStudent, list_presets, load_preset
from tinyclap.students.scaling import Budget, _profile_cached, fit, format_bytes, format_count, parse_size, profile

BUDGETS = {
    "stm32h7 (2 MB flash, 1 MB RAM)": dict(flash_bytes=parse_size("2MB"), ram_bytes=parse_size("1MB")),
    "cortex-m4 (512 KB flash, 128 KB RAM)": dict(flash_bytes=parse_size("512KB"), ram_bytes=parse_size("128KB")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency", action="store_true", help="also time CPU forward passes")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"\n{'preset':40} {'window':>6} {'params':>10} {'MACs':>10} {'flash':>11} {'RAM':>11}  peak at")
    for name in list_presets():
        cfg, audio = load_preset(name)
        for seconds in (5.0, 1.0):
            frames = audio.with_seconds(seconds).n_frames
            p = profile(cfg, frames, audio.n_mels)
            print(f"{name:40} {seconds:>5g}s {p.params:>10,} {format_count(p.macs):>10} "
                  f"{format_bytes(p.flash_bytes):>11} {format_bytes(p.ram_bytes):>11}  {p.peak_layer}")  # fmt: skip

    print(f"\nfit (1 s window, dims 256, objective params), median of {args.repeats}")
    for label, limits in BUDGETS.items():
        times = []
        for _ in range(args.repeats):
            _profile_cached.cache_clear()
            start = time.perf_counter()
            cfg, p = fit(Budget(**limits, window_seconds=1.0, dim=256))
            times.append(time.perf_counter() - start)
        probes = _profile_cached.cache_info().currsize
        print(f"{label:38} -> {cfg.name} embed {cfg.embed_width}: {p.params:,} params, "
              f"{format_count(p.macs)} MACs, flash {format_bytes(p.flash_bytes)}, RAM {format_bytes(p.ram_bytes)}; "
              f"{statistics.median(times):.1f} s, {probes} profiles")  # fmt: skip

    if args.latency:
        print("\nCPU forward, one window, median of 5")
        for name in list_presets():
            cfg, audio = load_preset(name)
            student = AudioStudent(cfg, AudioConfig(), frontend=False).eval()
            x = torch.randn(1, audio.n_frames, audio.n_mels)
            with torch.inference_mode():
                student(x)
                runs = []
                for _ in range(5):
                    start = time.perf_counter()
                    student(x)
                    runs.append(time.perf_counter() - start)
            print(f"{name:40} {audio.n_frames} frames: {1000 * statistics.median(runs):.1f} ms")


if __name__ == "__main__":
    main()
