"""Deployment figures per student preset and target, and CPU latency against an MS-CLAP 2022 teacher.

For each student preset (random weights; BatchNorm statistics measured on the
calibration clips so int8 ranges are realistic) this runs the real export
(:func:`tinyclap.export.pipeline.export_student`, streaming over ``--window``
windows) and prints:

- parameters, int8 flash (the ``.tflite`` files), TFLM arena bytes (measured
  by TensorFlow Lite Micro), MACs per 5 s clip, and the fit for each target
  (flash: models + bank + labels + front-end tables + reserve; RAM: arenas +
  int16 audio window + pooled sum + reserve);
- median CPU latency for one 5 s clip (log-mel precomputed, the clip's
  windows as one batch, then the head): torch fp32, ONNX fp32 and ONNX int8
  (onnxruntime), and the log-mel front end alone;
- the same torch latency for an MS-CLAP 2022 sized teacher (random weights,
  its own front end included) and the teacher / student ratio, measured in
  the same run (student: front end + torch model).

    python benchmarks/deploy.py [--calib esc10:DIR] [--window 1s] [--runs 7] [--threads 2]

It prints figures; nothing here is a test. On a shared machine other work
inflates the times (the load average is printed).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tinyclap.audio import AudioConfig, LogMel, fit_length, load_audio
from tinyclap.bank import PromptBank
from tinyclap.errors import BudgetError
from tinyclap.export.calibration import load_calibration
from tinyclap.export.pipeline import export_student
from tinyclap.export.streaming import StreamingStudent, plan_window, window_logmels
from tinyclap.export.targets import check_fit, load_target
from tinyclap.students import AudioStudent

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "esc10"


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    return interleaved_medians({"fn": fn}, runs)["fn"]


def interleaved_medians(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds of each function, timed in rounds (one run of each per round).

    Interleaving spreads changes in the machine's load evenly over the
    contenders, so their ratios stay fair on a shared machine.
    """
    for fn in fns.values():
        fn()  # warm-up
    gc.collect()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def calibrated_student(preset: str, clips: np.ndarray) -> AudioStudent:
    """A preset with random weights whose BatchNorm statistics come from ``clips``."""
    torch.manual_seed(0)
    student = AudioStudent.from_name(preset)
    bns = [m for m in student.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    student.train()
    with torch.no_grad():
        for i in range(0, len(clips), 8):
            student(student.frontend(torch.from_numpy(clips[i : i + 8])))
    return student.eval()


def random_bank(dim: int, classes: int = 50) -> PromptBank:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((classes, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = [f"class {i}" for i in range(classes)]
    return PromptBank(emb, labels, [[x] for x in labels], ["{}"], "random", 100.0, dim)


def five_second_clip(root: Path, sample_rate: int) -> np.ndarray:
    path = sorted((root / "audio").glob("*.ogg"))[0]
    return fit_length(load_audio(path, sample_rate), int(5 * sample_rate))


def student_rows(preset: str, args: argparse.Namespace, clip5: np.ndarray, targets: list[str]) -> dict[str, Any]:

    probe = AudioStudent.from_name(preset)
    calib = load_calibration(args.calib, probe.audio_config, args.clips)
    student = calibrated_student(preset, calib.clips)
    bank = random_bank(student.dim)
    relu = student.config.head_act == "relu"
    out = Path(tempfile.mkdtemp(prefix=f"deploy-{preset}-"))
    t0 = time.perf_counter()
    formats = "onnx,onnx-int8,tflite-int8" + (",c" if relu else "")
    try:
        result = export_student(
            student,
            bank,
            out,
            formats=formats,
            calibration=calib,
            window_seconds=args.window,
            target="stm32h7" if relu else None,
            max_clips=args.clips,
            tflm_inputs=2,
            log=lambda m: print(f"  [{preset}] {m}", flush=True),
        )
        report = result.report
    except BudgetError as err:  # the report is complete: the figures are what we want
        print(f"  [{preset}] {err}")
        import json

        report = json.loads((out / "report.json").read_text())
    export_s = time.perf_counter() - t0
    models = report["formats"]["tflite-int8"]["models"]
    windowing = plan_window(student, args.window)

    # Device figures, per target, from the measured parts.
    flash = {f"model {n}": m["bytes"] for n, m in models.items()}
    flash["bank"] = bank.num_classes * bank.dim
    flash["labels"] = sum(len(s.encode()) + 1 for s in bank.labels)
    flash["front-end tables"] = report["formats"].get("c", {}).get("frontend_table_bytes", 0)
    arenas = {n: m["tflm"].get("arena_bytes") for n, m in models.items()}
    ram = {f"arena {n}": a for n, a in arenas.items() if a is not None}
    ram["audio window"] = 2 * windowing.samples  # int16 PCM, as tc_app_push_window takes it (pipeline._fit)
    ram["pooled sum"] = 4 * student.embed_width
    fits = {}
    for name in targets:
        if None in arenas.values():
            fits[name] = "no (TFLM cannot run the head: " + ", ".join(n for n, a in arenas.items() if a is None) + ")"
            continue
        fit = check_fit(load_target(name), flash, ram)
        fits[name] = "yes" if fit.fits else fit.overflow_message().split(": ", 1)[1]

    # Latency in a fresh process (see measure_latency), from the saved weights.
    torch.save(student.state_dict(), out / "student.pt")
    n_windows = window_logmels(clip5, windowing).shape[1]
    latency = in_fresh_process(measure_latency, preset, str(out), args.window, args.threads, args.runs, clip5)

    macs = report["macs"]
    return {
        "preset": preset,
        "name": student.config.name,
        "head": student.config.head_act,
        "params": student.num_parameters(),
        "flash": sum(m["bytes"] for m in models.values()),
        "arenas": arenas,
        "macs_5s": macs["features_per_window"] * n_windows + macs["head"],
        "windows": n_windows,
        "window_frames": windowing.frames,
        "fits": fits,
        "cos": {k: report["formats"][k]["cosine_mean"] for k in ("onnx", "onnx-int8", "tflite-int8")},
        "streaming_cos": report.get("streaming", {}).get("cosine_mean"),
        **latency,
        "export_s": export_s,
        "out": str(out),
    }


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a new interpreter and return its result.

    Timing in the process that just ran exports gave front-end times 50x the
    fresh-process figure on this machine (state left by the converters and
    runtimes); a spawned process starts clean for every measurement.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def measure_latency(preset: str, out: str, window: float, threads: int, runs: int, clip5: np.ndarray) -> dict:
    """Median seconds for one 5 s clip (its windows as one batch, mean pooled, head): torch, ONNX, ONNX int8."""
    from tinyclap.export.onnx import OnnxModel

    torch.set_num_threads(threads)
    student = AudioStudent.from_name(preset)
    student.load_state_dict(torch.load(Path(out) / "student.pt", weights_only=True))
    student.eval()
    windowing = plan_window(student, window)
    wave = torch.from_numpy(clip5)
    windows = window_logmels(clip5, windowing)[0]  # (W, frames, M)
    streaming = StreamingStudent(student, window)
    front = LogMel(windowing.audio_config)
    pieces = torch.stack(list(wave[: len(windows) * windowing.samples].split(windowing.samples)))

    def torch_model() -> None:
        with torch.inference_mode():
            streaming(windows[None])

    def front_end() -> None:
        with torch.inference_mode():
            front(pieces)

    def onnx_run(suffix: str) -> Callable[[], None]:
        feats = OnnxModel(Path(out) / f"features{suffix}", threads=threads)
        head = OnnxModel(Path(out) / f"head{suffix}", threads=threads)
        x = windows.numpy()
        return lambda: head(feats(x).mean(axis=0, keepdims=True))

    fns = {"torch": torch_model, "front": front_end, "onnx": onnx_run(".onnx"), "onnx_int8": onnx_run(".int8.onnx")}
    return interleaved_medians(fns, runs)


def teacher_seconds(runs: int, threads: int) -> tuple[int, float]:
    from tinyclap.teachers.msclap import MSClapTeacher, build_msclap

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_msclap("2022")
    teacher = MSClapTeacher(model, tokenizer=None, device="cpu")
    clip = torch.randn(1, 5 * teacher.audio_config.sample_rate) * 0.1
    audio_params = sum(p.numel() for p in model.audio_encoder.parameters())
    return audio_params, median_seconds(lambda: teacher.embed_audio(clip), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", default=f"esc10:{DEFAULT_DATA}", help="calibration clips (dataset spec)")
    parser.add_argument("--clips", type=int, default=16, help="calibration clips")
    parser.add_argument("--window", default="1s", help="streaming window (default 1s)")
    parser.add_argument(
        "--students", default="phinet_alpha_1.50_beta_0.75_t0_6_N_7,mcu_stm32h7", help="comma-separated presets"
    )
    parser.add_argument("--targets", default="stm32h7,cortex-m4-512k", help="comma-separated targets")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (median printed)")
    parser.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads (default 1: see below)")
    args = parser.parse_args()
    from tinyclap.students.scaling import parse_duration

    args.window = parse_duration(args.window)
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other work, "
        f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.1f} at start"
    )
    clip5 = five_second_clip(Path(args.calib.split(":", 1)[1]), AudioConfig().sample_rate)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    rows = [student_rows(p.strip(), args, clip5, targets) for p in args.students.split(",") if p.strip()]
    teacher_params, teacher_s = in_fresh_process(teacher_seconds, args.runs, args.threads)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; window {args.window:g} s requested")
    for r in rows:
        arenas = ", ".join(f"{n} {a:,}" if a is not None else f"{n} n/a" for n, a in r["arenas"].items())
        print(f"\n== {r['preset']} ({r['name']}, {r['head']} head)")
        print(f"params {r['params']:,}   int8 flash {r['flash']:,} B   TFLM arena {arenas} B")
        print(f"MACs per 5 s clip {r['macs_5s'] / 1e6:.1f} M ({r['windows']} windows of {r['window_frames']} frames)")
        print(
            f"cosine vs torch: ONNX {r['cos']['onnx']:.5f}, ONNX int8 {r['cos']['onnx-int8']:.4f}, "
            f"TFLite int8 {r['cos']['tflite-int8']:.4f}; streamed vs whole clip {r['streaming_cos']}"
        )
        for t, fit in r["fits"].items():
            print(f"fits {t}: {fit}")
        print(
            f"latency per 5 s clip (median of {args.runs}): front end {1e3 * r['front']:.1f} ms, torch fp32 "
            f"{1e3 * r['torch']:.1f} ms, ONNX fp32 {1e3 * r['onnx']:.1f} ms, ONNX int8 {1e3 * r['onnx_int8']:.1f} ms"
        )
        ratio = teacher_s / (r["torch"] + r["front"])
        print(f"teacher / student (torch, front ends included): {ratio:.1f}x   (export took {r['export_s']:.0f} s)")
    print(
        f"\nMS-CLAP 2022 teacher (random weights, {teacher_params / 1e6:.1f} M audio params): "
        f"{1e3 * teacher_s:.0f} ms per 5 s clip (torch fp32, its front end included)"
    )


if __name__ == "__main__":
    main()
