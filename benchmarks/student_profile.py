"""Print the measured profiles of the student presets and how long `fit` takes.

    python benchmarks/student_profile.py [--repeats 3] [--latency] [--tflm] [--train-step [--batch-size 8]]

Figures: params, MACs, int8 flash and peak int8 activation RAM for a 5 s clip
and a 1 s window; the configs `fit` picks for MCU budgets with the wall time of
the search (median over repeats, profile cache cleared each time); with
``--latency``, the median CPU forward time of each preset on one window; with
``--tflm`` (needs litert-torch and tflite-micro), the MCU presets converted to
int8 TFLite and allocated by TFLite Micro, next to their profiles; with
``--train-step``, the reference student's CPU training step (forward, backward,
Adam) and eval forward per clip, NCHW vs channels last, with glibc's default
allocator and then with freed memory reused (:mod:`tinyclap.students.speed`),
the variants interleaved run by run; wall and process-CPU seconds (on a shared
machine the CPU seconds of one thread are the steadier figure).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

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
    ap.add_argument("--tflm", action="store_true", help="also convert the MCU presets and measure TFLM arenas")
    ap.add_argument("--train-step", action="store_true", help="also time the reference student's CPU training step")
    ap.add_argument("--batch-size", type=int, default=8, help="clips per step for --train-step")
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

    if args.tflm:
        print("\nint8 TFLite + TFLite Micro (bytes)")
        for name in [n for n in list_presets() if n.startswith("mcu_")]:
            cfg, audio = load_preset(name)
            p = profile(cfg, audio.n_frames, audio.n_mels)
            size, head, tail = tflm_measure(cfg, audio.n_frames, audio.n_mels)
            print(f"{name:16} flash {p.flash_bytes:>9,} -> .tflite {size:>9,} ({size / p.flash_bytes:.2f}x); "
                  f"RAM {p.ram_bytes:>8,} -> arena {head + tail:>8,} = {head:,} activations + {tail:,} persistent")

    if args.train_step:
        train_step_table(args.batch_size, max(args.repeats, 5))


def train_step_table(batch: int, runs: int, name: str = "phinet_alpha_1.50_beta_0.75_t0_6_N_7") -> None:
    """Per-clip seconds of a training step and an eval forward on 5 s log-mels (690 x 64), medians of ``runs``."""
    from tinyclap.students import StudentConfig, reuse_freed_memory, to_channels_last

    torch.manual_seed(0)
    base = AudioStudent(StudentConfig.from_name(name), frontend=False)
    models = {"NCHW": base, "channels last": to_channels_last(copy.deepcopy(base))}
    optims = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    x = torch.randn(batch, 690, 64)
    target = nn.functional.normalize(torch.randn(batch, base.dim), dim=-1)

    def train_step(key: str) -> None:
        model, opt = models[key].train(), optims[key]
        loss = (1 - (model(x) * target).sum(-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_forward(key: str) -> None:
        with torch.inference_mode():
            models[key].eval()(x)

    def timed(fn, key: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn(key)
        return (time.perf_counter() - wall) / batch, (time.process_time() - cpu) / batch

    print(f"\n{name}: seconds per clip, batch {batch}, {torch.get_num_threads()} threads, median of {runs} "
          "(wall / process CPU)")
    print(f"{'allocator':<22}{'layout':<15}{'train step':>22}{'eval forward':>22}")
    for allocator in ("glibc default", "freed memory reused"):
        if allocator != "glibc default" and not reuse_freed_memory():
            print("(not glibc: the allocator setting does not apply)")
            break
        rows: dict[str, dict[str, list[tuple[float, float]]]] = {k: {"train": [], "eval": []} for k in models}
        for key in models:  # warm-up: oneDNN primitives, first-touch memory
            train_step(key)
            eval_forward(key)
        for _ in range(runs):
            for key in models:
                rows[key]["train"].append(timed(train_step, key))
                rows[key]["eval"].append(timed(eval_forward, key))
        for key, r in rows.items():
            cells = []
            for part in ("train", "eval"):
                wall = statistics.median(w for w, _ in r[part])
                cpu = statistics.median(c for _, c in r[part])
                cells.append(f"{wall:.3f} / {cpu:.3f}")
            print(f"{allocator:<22}{key:<15}{cells[0]:>22}{cells[1]:>22}")


class _PadThenConv(nn.Module):
    """A padding-0 conv after an explicit pad: what the converter needs to quantise the pad."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.pad = int(conv.padding[0])
        self.conv = copy.deepcopy(conv)
        self.conv.padding = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (self.pad,) * 4))


class _Deployed(nn.Module):
    """The student as an MCU runs it: bn0 and the stem padding done by the front end."""

    def __init__(self, student: AudioStudent):
        super().__init__()
        self.student = student
        for block in student.backbone.blocks:
            if block.stride == 2:
                block.depthwise.conv = _PadThenConv(block.depthwise.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, T + 1, M + 1), normalised and padded
        stem = self.student.backbone.stem
        y = stem.act(stem.bn(stem.pointwise(stem.depthwise(x.unsqueeze(1)))))
        for block in self.student.backbone.blocks:
            y = block(y)
        return self.student.head(self.student.pool(self.student.conv(y)))


def tflm_measure(cfg, frames: int, n_mels: int) -> tuple[int, int, int]:
    """(.tflite bytes, arena activation bytes, arena persistent bytes) of a random-weight student."""
    import re

    import litert_torch
    from litert_torch.quantize import pt2e_quantizer_utils as qutils
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from tflite_micro import runtime
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    # litert-torch 0.10 gives a pad its own scale, which its converter then rejects:
    # let pads share their input's quantisation, as views and pools do.
    shared = qutils._is_share_obs_or_fq_op
    qutils._is_share_obs_or_fq_op = lambda op: shared(op) or op == torch.ops.aten.constant_pad_nd.default
    torch.manual_seed(0)
    model = _Deployed(AudioStudent(cfg, AudioConfig(n_mels=n_mels), frontend=False).eval()).eval()
    example = (torch.randn(1, frames + 1, n_mels + 1),)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    graph = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    for _ in range(4):
        graph(torch.randn(1, frames + 1, n_mels + 1))
    quantized = convert_pt2e(graph, fold_quantize=False)
    result = {}

    def convert() -> None:  # its progress log is noise here
        result["model"] = litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))

    _c_output(convert)
    converted = result["model"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "student.tflite"
        converted.export(str(path))
        data = path.read_bytes()
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=16 * 1024 * 1024)
    text = _c_output(interpreter.print_allocations)  # the allocator prints from C
    head = re.search(r"allocation head (\d+)", text)
    tail = re.search(r"allocation tail (\d+)", text)
    if not (head and tail):
        raise RuntimeError("could not read the TFLM allocation report")
    return len(data), int(head.group(1)), int(tail.group(1))


def _c_output(fn) -> str:
    """Run ``fn`` and return what it wrote on file descriptors 1 and 2 (C-level stdout/stderr)."""
    import ctypes
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in saved:
            os.dup2(capture.fileno(), fd)
        try:
            fn()
            ctypes.CDLL(None).fflush(None)
        finally:
            for fd, copy_fd in saved.items():
                os.dup2(copy_fd, fd)
                os.close(copy_fd)
        capture.seek(0)
        return capture.read().decode(errors="replace")


if __name__ == "__main__":
    main()
