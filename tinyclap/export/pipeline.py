"""``export_student``: a student + prompt bank → ONNX / ONNX int8 / TFLite int8 / C, verified and budgeted.

Every format is verified as soon as it is written, on real clips held out of
calibration (a quarter of ``calibration``, see
:mod:`tinyclap.export.calibration`; ``report.json`` lists which clips did what),
against the torch fp32 student run the same way (same windows): cosine of the
clip embeddings and zero-shot agreement with the bank. TFLite models also run
in TensorFlow Lite Micro, which measures their arena and must give the same
int8 outputs as LiteRT. With a target, the plain C firmware bundle is written
(``OUT/firmware``), linked where arm-none-eabi-gcc is installed, and the device
fit is decided by that image as the linker placed it (else by the plain C
estimate), with the TFLite Micro estimate kept beside it (docs/export.md);
an overflow raises :class:`~tinyclap.errors.BudgetError` after
``report.json`` and every file are written.

Output folder (``W`` = ``features`` + ``head`` with a streaming window, else ``embed``)::

    OUT/report.json            figures (tinyclap.export.report)
    OUT/W.onnx                 fp32, raw log-mel in (bn0 inside)
    OUT/W.int8.onnx            static QDQ int8 (per-channel weights)
    OUT/W.int8.tflite          int8 in/out; input = log-mel mapped by the folded bn0 (report: mel_affine)
    OUT/c/                     tinyclap_model.c/.h + front-end tables (tinyclap.export.mcu)
    OUT/firmware/              --target: the firmware bundle (tinyclap.firmware.bundle), build/<cpu>/ once linked
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from tinyclap.errors import TinyClapError
from tinyclap.export.calibration import (
    CalibrationSet,
    CalibrationWarning,
    check_coverage,
    load_calibration,
    split_holdout,
)
from tinyclap.export.report import ExportReport, compare_embeddings
from tinyclap.export.streaming import (
    EmbedGraph,
    FeaturesGraph,
    HeadGraph,
    Windowing,
    clip_embeddings,
    mel_affine,
    plan_window,
)
from tinyclap.export.targets import FitReport, Target, check_fit, load_target

__all__ = ["FORMATS", "ExportError", "ExportResult", "parse_formats", "bank_for_student", "export_student"]

FORMATS: tuple[str, ...] = ("onnx", "onnx-int8", "tflite-int8", "c")
_CHUNK = 32  # windows per torch forward
# Streamed vs whole-clip cosine below which the export advises distilling with the windows (issue #7).
STREAM_AGREEMENT = 0.98


class ExportError(TinyClapError, ValueError):
    """Inputs an export cannot use (unknown format, bank of other dims, GELU head for TFLite Micro...)."""


@dataclass
class ExportResult:
    """Where the export went, what it wrote, and the report's figures."""

    out_dir: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    fit: FitReport | None = None

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.json"


def parse_formats(formats: str | Sequence[str]) -> list[str]:
    """``"onnx,tflite-int8"`` or a list → validated format names, in :data:`FORMATS` order."""
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = sorted(set(items) - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if not items:
        raise ExportError(f"no export format given; choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in items]


def bank_for_student(student: nn.Module, bank: Any) -> Any:
    """The bank restricted to the student's kept dims (a pruned student), checked to match its output size."""
    from tinyclap.bank import BankError

    where = f"{bank.path}" if getattr(bank, "path", None) else "the prompt bank"
    kept = getattr(student, "kept_dims", None)
    if kept is not None:
        try:
            bank = bank.select_teacher_dims(kept)
        except BankError as err:
            raise ExportError(f"{where} cannot serve the student's {len(kept)} kept dims: {err}") from None
    if bank.dim != student.dim:
        raise ExportError(
            f"{where} has {bank.dim}-dim embeddings but the student outputs {student.dim}"
            + ("" if kept is not None else " (prune the bank to the student's dims, or use the student's own bank)")
        )
    return bank


# --------------------------------------------------------------------------- running graphs


def _torch_run(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            outs = [module(torch.from_numpy(np.ascontiguousarray(x[i : i + _CHUNK]))) for i in range(0, len(x), _CHUNK)]
        return torch.cat(outs).float().numpy()

    return run


# --------------------------------------------------------------------------- the export


def export_student(
    student: Any,
    bank: Any,
    out_dir: str | Path,
    *,
    formats: str | Sequence[str] = ("onnx", "onnx-int8", "tflite-int8"),
    calibration: str | CalibrationSet,
    target: str | Target | None = None,
    window_seconds: float | None = None,
    max_clips: int = 32,
    tflm_inputs: int = 8,
    link: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``student`` (an AudioStudent or a checkpoint path) with ``bank`` (PromptBank or ``.npz`` path).

    ``calibration`` is a dataset spec (``esc50:ROOT``, ...) or a
    :class:`CalibrationSet`; ``max_clips`` clips of it calibrate and verify.
    ``window_seconds`` streams the student over windows of about that length
    (``features`` + ``head`` models; see :mod:`tinyclap.export.streaming`).
    ``target`` (a name such as ``"stm32h7"`` or a YAML path) checks the device
    fit and implies ``tflite-int8`` and ``c``. ``tflm_inputs`` inputs per model
    are run in TFLM and compared with LiteRT. ``link``: link the firmware image
    during the export and decide the fit from the ELF (None: when
    ``arm-none-eabi-gcc`` and ``make`` are on PATH; False: the plain C estimate
    decides). See the module docstring for the files.
    """
    from tinyclap.bank import PromptBank
    from tinyclap.students import load_student

    say = log or (lambda _msg: None)
    fmts = parse_formats(formats)
    tgt = load_target(target) if isinstance(target, (str, Path)) else target
    if tgt is not None:
        fmts = parse_formats(sorted(set(fmts) | {"tflite-int8", "c"}))
    if "c" in fmts and "tflite-int8" not in fmts:
        fmts = parse_formats(fmts + ["tflite-int8"])
    ckpt = None
    if isinstance(student, (str, Path)):
        ckpt = str(student)
        student = load_student(student)
    student = student.eval()
    bank_path = None
    if isinstance(bank, (str, Path)):
        bank_path = str(bank)
        bank = PromptBank.load(bank)
    bank = bank_for_student(student, bank)
    _check_bank_teacher(student, bank, bank_path)
    if "tflite-int8" in fmts and student.config.head_act != "relu" and ("c" in fmts or tgt is not None):
        raise ExportError(
            f"{student.config.name} has a {student.config.head_act.upper()} head: TensorFlow Lite Micro has no "
            f"{student.config.head_act.upper()} kernel, so it cannot run on a microcontroller. Deploy a student "
            f"with head_act: relu (e.g. the mcu_stm32h7_streaming preset)"
        )

    windowing = plan_window(student, window_seconds)
    out_dir = Path(out_dir)
    calib = (
        calibration
        if isinstance(calibration, CalibrationSet)
        else load_calibration(calibration, student.audio_config, max_clips)
    )
    if calib.audio_config.sample_rate != student.audio_config.sample_rate:
        raise ExportError(
            f"calibration clips are at {calib.audio_config.sample_rate} Hz, "
            f"the student expects {student.audio_config.sample_rate} Hz"
        )
    # Held-out clips verify: ranges fitted to the clips they are judged on would hide a bad calibration.
    calib_pos, verify_pos = split_holdout(len(calib))
    coverage = check_coverage(calib, calib_pos)
    for note in coverage["warnings"]:
        if log is not None:
            say(f"warning: {note}")
        else:
            warnings.warn(note, CalibrationWarning, stacklevel=2)
    held_out = set(verify_pos).isdisjoint(calib_pos)
    say(
        f"calibration: {len(calib)} clips from {calib.source} ({len(calib_pos)} calibrate, {len(verify_pos)} "
        f"{'held out to verify' if held_out else 'verify (too few clips to hold any out)'}); "
        f"windows of {windowing.frames} frames ({windowing.seconds:.3f} s)"
    )
    out_dir.mkdir(parents=True, exist_ok=True)  # after the checks: refused input leaves no folder behind
    windows = calib.windows(windowing).numpy()  # (N, W, T, M) raw dB
    scale, shift = mel_affine(student)

    names = ["features", "head"] if windowing.streaming else ["embed"]
    torch_graphs: dict[str, nn.Module] = (
        {"features": FeaturesGraph(student), "head": HeadGraph(student)}
        if windowing.streaming
        else {"embed": EmbedGraph(student)}
    )
    reference, pooled = clip_embeddings(windows, {k: _torch_run(g) for k, g in torch_graphs.items()})
    macs = _macs(student, windowing)

    report = ExportReport(
        out_dir / "report.json",
        student=_student_info(student, ckpt),
        bank={
            "path": bank_path,
            "classes": bank.num_classes,
            "dim": bank.dim,
            "teacher": bank.teacher,
            "teacher_id": bank.teacher_id,
            "kept_dims": None if bank.kept_dims is None else len(bank.kept_dims),
        },
        window=windowing.to_dict(),
        models=names,
        calibration={
            **calib.to_dict(),
            "calibration_clip_ids": [calib.clip_ids[i] for i in calib_pos],
            "verification_clip_ids": [calib.clip_ids[i] for i in verify_pos],
            "verified_on": "held-out clips" if held_out else "the calibration clip (too few clips to hold any out)",
            **coverage,
        },
        mel_affine={
            "scale": scale.tolist(),
            "shift": shift.tolist(),
            "note": "TFLite models take int8 log-mel after x * scale + shift (bn0 folded into the front end)",
        },
        macs=macs,
    )
    result = ExportResult(out_dir)
    if windowing.streaming:
        whole = student.embed_audio(calib.clips).numpy()
        agreement = compare_embeddings(reference, whole, bank.embeddings)
        agreement["note"] = "torch student streamed over the windows vs the same student on whole clips"
        say(f"streaming vs whole clip (torch): cosine mean {agreement['cosine_mean']:.4f}")
        if agreement["cosine_mean"] < STREAM_AGREEMENT:
            agreement["advice"] = (
                f"below {STREAM_AGREEMENT}: distil with `tinyclap distill --stream-window "
                f"{windowing.requested_seconds or windowing.seconds:g}` so the student learns the device's path "
                "(and --stream-consistency 1 if agreement stays short)"
            )
            say(f"streaming: {agreement['advice']}")
        report.update(streaming=agreement)

    # Ranges come from the calibration clips; every figure below is measured on the verification clips.
    inputs = _graph_inputs(windows[calib_pos], None if pooled is None else pooled[calib_pos], windowing)
    windows, reference = windows[verify_pos], reference[verify_pos]
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as work:
        onnx_paths: dict[str, Path] = {}
        if "onnx" in fmts or "onnx-int8" in fmts:
            from tinyclap.export.onnx import OnnxModel, export_onnx

            where = out_dir if "onnx" in fmts else Path(work)
            for name in names:
                say(f"onnx: exporting {name}")
                onnx_paths[name] = export_onnx(
                    torch_graphs[name],
                    torch.from_numpy(np.concatenate([inputs[name]] * 2)[:2]),  # batch 2: keeps batch dynamic
                    where / f"{name}.onnx",
                    input_name=_IO[name][0],
                    output_name=_IO[name][1],
                )
            if "onnx" in fmts:
                runs = {n: OnnxModel(p) for n, p in onnx_paths.items()}
                _record(report, result, "onnx", list(onnx_paths.values()), windows, runs, reference, bank, say)
        if "onnx-int8" in fmts:
            from tinyclap.export.onnx import OnnxModel
            from tinyclap.export.quantize import quantize_onnx_int8

            paths = {}
            for name in names:
                say(f"onnx-int8: quantising {name}")
                paths[name] = quantize_onnx_int8(
                    onnx_paths[name], out_dir / f"{name}.int8.onnx", _batches(inputs[name])
                )
            runs = {n: OnnxModel(p) for n, p in paths.items()}
            _record(report, result, "onnx-int8", list(paths.values()), windows, runs, reference, bank, say)
    if "tflite-int8" in fmts:
        device_out = _export_tflite(
            student, names, windows, inputs, scale, shift, reference, bank, report, result, tflm_inputs, say
        )
    if "c" in fmts:
        _export_c(result, report, bank, windowing, scale, shift, device_out, reference, say)
    if tgt is not None:
        tflm_fit = _fit(tgt, report, bank, windowing, student, macs)
        report.update(target=tflm_fit.to_dict())  # replaced below once the firmware exists
        bundle = _export_firmware(result, report, tgt, say)  # OUT/firmware/: sources, network as C, Makefile, ld
        result.fit = _decide_fit(tgt, report, bank, windowing, macs, tflm_fit, bundle, link, say)
        report.update(target=result.fit.to_dict())
        if bundle is not None:
            from tinyclap.firmware.bundle import update_manifest

            estimate = _parts(result.fit, "c", "estimate")
            update_manifest(bundle, report_estimate=estimate, report_fit=report.data["target"])
        if result.fit.fits:  # an overflow is said once, by the BudgetError below
            say(result.fit.message())
    result.report = report.data
    if result.fit is not None:
        result.fit.raise_if_over()  # after everything is written: nothing is lost
    return result


_IO = {"features": ("logmel", "pooled"), "head": ("pooled", "embedding"), "embed": ("logmel", "embedding")}


def _check_bank_teacher(student: nn.Module, bank: Any, bank_path: str | None) -> None:
    """Refuse a bank built by another teacher than the student's (eval and demo warn; a device build must not)."""
    from tinyclap.zeroshot import teacher_mismatch

    mismatch = teacher_mismatch(getattr(student, "meta", None) or {}, bank)
    if mismatch:
        raise ExportError(
            f"{bank_path or 'the prompt bank'}: {mismatch}; build the bank with the student's teacher (`tinyclap bank`)"
        )


def _graph_inputs(windows: np.ndarray, pooled: np.ndarray | None, windowing: Windowing) -> dict[str, np.ndarray]:
    """Calibration inputs per graph: all windows (raw dB) for features/embed, mean pooled vectors for the head."""
    flat = windows.reshape(-1, *windows.shape[2:]).astype(np.float32)
    if windowing.streaming:
        assert pooled is not None
        return {"features": flat, "head": pooled}
    return {"embed": flat}


def _batches(x: np.ndarray, size: int = 1) -> list[np.ndarray]:
    return [x[i : i + size] for i in range(0, len(x), size)]


def _record(
    report: ExportReport,
    result: ExportResult,
    fmt: str,
    paths: list[Path],
    windows: np.ndarray,
    runs: dict[str, Callable[[np.ndarray], np.ndarray]],
    reference: np.ndarray,
    bank: Any,
    say: Callable[[str], None],
) -> None:
    emb, _ = clip_embeddings(windows, runs)
    figures = {
        "files": {p.name: p.stat().st_size for p in paths},
        **compare_embeddings(emb, reference, bank.embeddings),
    }
    result.files[fmt] = list(paths)
    report.add_format(fmt, figures)
    say(
        f"{fmt}: cosine mean {figures['cosine_mean']:.5f}, worst {figures['cosine_worst']:.5f}, "
        f"zero-shot agreement {figures['zeroshot_agreement']:.3f}"
    )


def _export_tflite(
    student: nn.Module,
    names: list[str],
    windows: np.ndarray,
    inputs: dict[str, np.ndarray],
    scale: np.ndarray,
    shift: np.ndarray,
    reference: np.ndarray,
    bank: Any,
    report: ExportReport,
    result: ExportResult,
    tflm_inputs: int,
    say: Callable[[str], None],
) -> tuple[np.ndarray, int] | None:
    """Export, verify and run in TFLM; returns the last model's raw int8 outputs per clip and their zero point."""
    from tinyclap.export.tflite import TfliteModel, export_tflite_int8
    from tinyclap.export.tflm import TflmError, TflmModel, compare_runtimes

    graphs = {
        "features": FeaturesGraph(student, fold_bn0=True),
        "head": HeadGraph(student),
        "embed": EmbedGraph(student, fold_bn0=True),
    }
    # The folded bn0: the int8 models see x * scale + shift, as the C front end feeds them.
    mapped = {k: (v * scale + shift).astype(np.float32) if k != "head" else v for k, v in inputs.items()}
    paths, models = {}, {}
    for name in names:
        say(f"tflite-int8: quantising and converting {name}")
        calib = [torch.from_numpy(b) for b in _batches(mapped[name], 16)]
        paths[name] = export_tflite_int8(graphs[name], calib, result.out_dir / f"{name}.int8.tflite")
        models[name] = TfliteModel(paths[name])

    raw: dict[str, np.ndarray] = {}  # int8 outputs, as the device's classifier sees them

    def runner(name: str) -> Callable[[np.ndarray], np.ndarray]:
        m = models[name]

        def run(x: np.ndarray) -> np.ndarray:
            raw[name] = m.run_int8(m.quantize_input(x * scale + shift if name != "head" else x))
            return m.dequantize_output(raw[name])

        return run

    _record(
        report,
        result,
        "tflite-int8",
        list(paths.values()),
        windows,
        {n: runner(n) for n in names},
        reference,
        bank,
        say,
    )
    figures: dict[str, Any] = {"models": {}}
    for name in names:
        m = models[name]
        entry: dict[str, Any] = {"bytes": len(m.data), "input": m.input.to_dict(), "output": m.output.to_dict()}
        try:
            micro = TflmModel(m.data, name=paths[name].name)
            sample = m.quantize_input(mapped[name][: max(1, tflm_inputs)])
            entry["tflm"] = {"arena_bytes": micro.arena_bytes(), **compare_runtimes(micro, m, sample).to_dict()}
            say(
                f"tflm: {name} arena {entry['tflm']['arena_bytes']:,} bytes, max |TFLM - LiteRT| "
                f"{entry['tflm']['max_abs_diff_lsb']} LSB over {entry['tflm']['values']} values"
            )
        except TflmError as err:
            entry["tflm"] = {"error": str(err)}
            say(f"tflm: {err}")
        figures["models"][name] = entry
    report.add_format("tflite-int8", figures)
    last = models[names[-1]].output
    return (raw[names[-1]], last.quant.zero_point) if last.quant is not None else None


def _export_c(
    result: ExportResult,
    report: ExportReport,
    bank: Any,
    windowing: Windowing,
    scale: np.ndarray,
    shift: np.ndarray,
    device_out: tuple[np.ndarray, int] | None,
    reference: np.ndarray,
    say: Callable[[str], None],
) -> None:
    from tinyclap.export.mcu import ModelBlob, classify_int8, write_c_model

    models = report.data["formats"]["tflite-int8"]["models"]
    blobs = []
    for name, entry in models.items():
        if "arena_bytes" not in entry.get("tflm", {}):
            raise ExportError(
                f"{name}.int8.tflite does not run in TensorFlow Lite Micro ({entry['tflm'].get('error')}): "
                "no C model written"
            )
        blobs.append(
            ModelBlob(
                name,
                (result.out_dir / f"{name}.int8.tflite").read_bytes(),
                _quant(entry["input"]),
                _quant(entry["output"]),
                entry["tflm"]["arena_bytes"],
            )
        )
    files = write_c_model(
        result.out_dir / "c",
        blobs,
        bank.embeddings,
        bank.labels,
        windowing.audio_config,
        frames_per_window=windowing.frames,
        input_affine=(scale, shift),
        logit_scale=float(bank.logit_scale),
    )
    result.files["c"] = list(files.files)
    device: dict[str, Any] = {}
    if device_out is not None:
        # The device's decision: int8 embedding x int8 bank, integer argmax (tc_classify.c's Python twin).
        emb_q, zero_point = device_out
        picks = np.atleast_1d(classify_int8(emb_q, zero_point, files.bank_q))
        device["device_zeroshot_agreement"] = float(np.mean(picks == np.argmax(reference @ bank.embeddings.T, axis=1)))
    report.add_format(
        "c",
        {
            **device,
            "dir": str(files.out_dir),
            "files": [p.name for p in files.files],
            "flash_bytes": files.flash_bytes,
            "bank_scale": files.bank_scale,
            "frontend_table_bytes": _frontend_bytes(windowing),
        },
    )
    say(f"c: wrote {len(files.files)} files to {files.out_dir}")


def _export_firmware(result: ExportResult, report: ExportReport, tgt: Target, say: Callable[[str], None]) -> Any:
    """Write OUT/firmware/ (tinyclap.firmware.bundle); a network the C generator refuses is reported, not fatal."""
    from tinyclap.firmware.bundle import write_bundle

    try:
        bundle = write_bundle(result.out_dir, tgt)
    except TinyClapError as err:
        report.update(firmware={"error": str(err)})
        say(f"firmware: not written: {err}")
        return None
    result.files["firmware"] = sorted(p for p in bundle.dir.rglob("*") if p.is_file())
    report.update(firmware={"dir": str(bundle.dir), "arena_bytes": bundle.arena_bytes, "models": bundle.models})
    say(f"firmware: wrote {bundle.dir} (make cortex-m7, or tinyclap firmware build {bundle.dir})")
    return bundle


def _quant(info: dict[str, Any]) -> Any:
    from tinyclap.export.mcu import QuantParams

    q = info.get("quant")
    return None if q is None else QuantParams(q["scale"], q["zero_point"])


def _frontend_bytes(windowing: Windowing) -> int:
    """Flash of the C front end's float32 tables (window, twiddles, mel weights) and uint16 mel indices."""
    from tinyclap.export.mcu import frontend_tables

    t = frontend_tables(windowing.audio_config)
    floats = len(t.window) + len(t.cos) + len(t.sin) + max(len(t.mel_weights32), 1)
    return 4 * floats + 2 * 3 * windowing.audio_config.n_mels


def _macs(student: nn.Module, windowing: Windowing) -> dict[str, Any]:
    """MACs of the graphs (convolutions and linears), per window, per head run and per second of audio."""
    from tinyclap.students.scaling import profile_module

    m = windowing.audio_config.n_mels
    features = profile_module(FeaturesGraph(student, fold_bn0=True), (1, windowing.frames, m), device="cpu")["macs"]
    head = profile_module(HeadGraph(student), (1, student.embed_width), device="cpu")["macs"]
    clip_seconds = student.audio_config.clip_seconds
    windows_per_clip = max(1, student.audio_config.clip_samples // windowing.samples) if windowing.streaming else 1
    per_second = features / windowing.seconds + head / clip_seconds
    return {
        "features_per_window": int(features),
        "head": int(head),
        "windows_per_clip": windows_per_clip,
        "per_clip": int(features * windows_per_clip + head),
        "per_second": int(round(per_second)),
    }


def _fit(
    tgt: Target, report: ExportReport, bank: Any, windowing: Windowing, student: nn.Module, macs: dict[str, Any]
) -> FitReport:
    """The TFLite Micro runtime (the alternative, main_tflm.cc), estimated.

    Flash: int8 models + int8 bank + label strings + front-end tables. RAM:
    TFLM arenas + the audio window as int16 PCM (what ``tc_app_push_window``
    takes; the C front end converts to float only inside its n_fft work buffer)
    and, when streaming, the float32 pooled sum. The reserves hold the TFLM
    runtime and kernels (flash) and the stack, drivers and DMA buffers (RAM).
    """
    models = report.data["formats"]["tflite-int8"]["models"]
    flash = {f"model {n}": e["bytes"] for n, e in models.items()}
    flash["bank"] = int(bank.num_classes * bank.dim)  # int8, one scale (tinyclap.export.mcu.quantize_bank)
    flash["labels"] = sum(len(s.encode()) + 1 for s in bank.labels)
    flash["front-end tables"] = report.data["formats"]["c"]["frontend_table_bytes"]
    ram = {f"arena {n}": e["tflm"]["arena_bytes"] for n, e in models.items()}
    # int16 PCM, as microphones deliver it and tc_app_push_window takes it: a float32
    # copy of the window would double the largest buffer for nothing.
    ram["audio window"] = 2 * windowing.samples
    if windowing.streaming:
        ram["pooled sum"] = 4 * int(student.embed_width)
    return check_fit(tgt, flash, ram, macs_per_second=macs["per_second"], runtime="tflm")


# The plain C firmware's code, estimated before linking (measured, arm-none-eabi-gcc 12.2 -O2, the emulator
# image of tests/test_firmware_qemu.py and of mcu_cortex_m4: 14.4-15.3 KB of .text, .isr_vector and .data
# outside the network's constants and the model tables, Cortex-M7 and M4F alike). The kernels (tc_nn.c,
# 6.6 KB), front end, classifier, app loop, startup, main_qemu.c and the libc/libm pieces they pull in.
C_RUNTIME_CODE_BYTES = 24 * 1024
C_CODE_PER_OP_BYTES = 48  # the generated invoke function: one kernel call per op (measured 31 B an op)
# RAM the runtime holds besides the buffers counted by name: newlib's reentrancy struct (1,064 B), the
# emulator image's I/O buffers (g_chunk, g_line, g_cmdline), the app's counters. Measured 2.1-2.2 KB.
C_RUNTIME_DATA_BYTES = 4 * 1024


def _fit_c(
    tgt: Target, report: ExportReport, bank: Any, windowing: Windowing, bundle: Any, macs: dict[str, Any]
) -> FitReport:
    """The plain C firmware of OUT/firmware (what ships by default), estimated before linking.

    Flash: the generated networks' constants (``NetFiles.weights_bytes``: weights,
    biases, multipliers, op parameter structs) + code (runtime and one call per op)
    + int8 bank + labels (strings and pointers) + front-end tables + the folded
    bn0 + reserve. RAM: the one C arena (``TC_NET_ARENA_BYTES``) + the int8
    network input + outputs and the float32 accumulator + the 2 x n_fft sample
    ring of ``tc_app_push_samples`` + one int16 frame + the front end's n_fft
    float32 work buffer + the stack of the linker script + runtime data + reserve.
    """
    nets = bundle.manifest["networks"]
    audio = windowing.audio_config
    n_fft, n_mels = int(audio.n_fft), int(audio.n_mels)
    flash = {f"network {n} constants": int(e["weights_bytes"]) for n, e in nets.items()}
    ops = sum(int(e.get("op_count", len(e["ops"]))) for e in nets.values())
    flash["network code"] = C_CODE_PER_OP_BYTES * ops
    flash["runtime code"] = C_RUNTIME_CODE_BYTES
    flash["bank"] = int(bank.num_classes * bank.dim)
    flash["labels"] = sum(len(s.encode()) + 1 + 4 for s in bank.labels)  # strings + the pointer table
    flash["front-end tables"] = report.data["formats"]["c"]["frontend_table_bytes"]
    flash["input affine"] = 2 * 4 * n_mels  # the folded bn0, float32 scale and shift per mel
    first, last = nets[bundle.models[0]], nets[bundle.models[-1]]
    acc = int(first["output_elems"] if len(nets) > 1 else last["output_elems"])
    ram = {
        "arena (C)": int(bundle.arena_bytes),
        "network input": int(first["input_elems"]),
        "network output + sum": acc * (1 + 4) + (acc if len(nets) > 1 else 0),  # int8 out (+ pooled), float32 sum
        "sample ring": 2 * 2 * n_fft,  # int16, 2 x n_fft samples (tc_app_push_samples)
        "frame": 2 * n_fft,
        "front-end work buffer": 4 * n_fft,  # tc_logmel_t, float32
        "stack": int(bundle.stack_bytes),
        "runtime data": C_RUNTIME_DATA_BYTES,
    }
    return check_fit(tgt, flash, ram, macs_per_second=macs["per_second"], runtime="c")


def _link_fit(tgt: Target, bundle: Any, macs: dict[str, Any], say: Callable[[str], None]) -> FitReport | None:
    """Link the bundle's image (``make <cpu>`` in OUT/firmware) and read flash and RAM from the ELF.

    The linker script's regions are the whole budget, so the image links when it
    fits the device by itself; the fit adds the target's reserves (the rest of a
    product's firmware: HAL, drivers, DMA buffers, the application) to the
    sections. An image that overflows a region is linked once more in a copy
    of the bundle whose regions are the emulated board's 4 MB, so both regions
    are measured, not only the one ld names. None (with a line said) when the
    build fails for another reason.
    """
    import time

    from tinyclap.firmware.build import LinkOverflowError, build_firmware
    from tinyclap.firmware.bundle import BOARD, FirmwareError
    from tinyclap.firmware.elf import ElfError, read_elf_memory

    cpu = tgt.firmware_cpu
    board_flash, board_ram = (BOARD["flash_origin"], BOARD["flash_max"]), (BOARD["ram_origin"], BOARD["ram_max"])
    details: dict[str, Any] = {"cpu": cpu}
    start = time.perf_counter()
    try:
        try:
            image = build_firmware(bundle.dir, cpu)
            elf = image.path
        except LinkOverflowError as err:
            details["ld"] = str(err)
            with tempfile.TemporaryDirectory(prefix="tinyclap-measure-") as tmp:
                copy = Path(tmp) / "firmware"
                shutil.copytree(bundle.dir, copy, ignore=shutil.ignore_patterns("build"))
                ld = (copy / "tc_link.ld").read_text()
                for region, length in (("FLASH", BOARD["flash_max"]), ("RAM", BOARD["ram_max"])):
                    line = rf"(\n\s*{region}\s*\([rwx]+\)\s*:\s*ORIGIN = \w+, LENGTH = )\d+"
                    ld = re.sub(line, rf"\g<1>{length}", ld)
                (copy / "tc_link.ld").write_text(ld)
                image = build_firmware(copy, cpu)
                mem = read_elf_memory(image.path, flash=board_flash, ram=board_ram)
            elf = None
        if elf is not None:
            mem = read_elf_memory(elf, flash=board_flash, ram=board_ram)
            details["elf"] = str(elf)
    except (FirmwareError, ElfError) as err:
        say(f"firmware: not linked ({err}); the plain C estimate decides the fit")
        return None
    details["link_seconds"] = round(time.perf_counter() - start, 2)
    details["arena_bytes"] = mem.symbols.get("g_arena")
    flash = {f"image {k}": v for k, v in mem.flash_sections.items()}
    ram = {f"image {k}": v for k, v in mem.ram_sections.items()}
    return check_fit(
        tgt, flash, ram, macs_per_second=macs["per_second"], runtime="c", figures="linked", details=details
    )


def _decide_fit(
    tgt: Target,
    report: ExportReport,
    bank: Any,
    windowing: Windowing,
    macs: dict[str, Any],
    tflm_fit: FitReport,
    bundle: Any,
    link: bool | None,
    say: Callable[[str], None],
) -> FitReport:
    """The check that decides: the linked C image, else the C estimate, else (no firmware) the TFLM estimate."""
    if bundle is None:
        return tflm_fit
    c_est = _fit_c(tgt, report, bank, windowing, bundle, macs)
    if link is None:
        from tinyclap.firmware.build import arm_tools_missing

        link = not arm_tools_missing(qemu=False) and shutil.which("make") is not None
    linked = _link_fit(tgt, bundle, macs, say) if link else None
    decide = linked or c_est
    decide.alternatives = [f for f in (c_est, tflm_fit) if f is not decide]
    return decide


def _parts(fit: FitReport, runtime: str, figures: str) -> dict[str, Any]:
    """Flash and RAM parts of one of the export's checks (empty when it was not made)."""
    for f in [fit, *fit.alternatives]:
        if f.runtime == runtime and f.figures == figures:
            return {"flash": dict(f.flash.parts), "ram": dict(f.ram.parts)}
    return {}


def _student_info(student: nn.Module, ckpt: str | None) -> dict[str, Any]:
    return {
        "checkpoint": ckpt,
        "name": student.config.name,
        "config": student.config.to_dict(),
        "audio_config": student.audio_config.to_dict(),
        "params": int(student.num_parameters()),
        "dim": int(student.dim),
        "embed_width": int(student.embed_width),
        "kept_dims": None if student.kept_dims is None else len(student.kept_dims),
    }
