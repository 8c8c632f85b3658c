"""Exported students (ONNX fp32 / int8, TFLite int8) as AudioEncoders, so evaluation code runs them like the torch one.

Every encoder here offers ``audio_config`` (the student's clip) and
``embed_audio(clips (B, S)) -> (B, D)`` unit float32, and computes a clip's
embedding exactly as the export verified it (:func:`tinyclap.export.streaming.clip_embeddings`):
the clip is cut into the export's windows (``report.json`` ``window``; one
window = the whole clip unless the export streams), every window gets its own
log-mel, and

- a single-graph export (``embed``) averages the windows' embeddings;
- a streaming export (``features`` + ``head``) averages the windows' pooled
  vectors and runs the head once on the mean, as the device does.

ONNX graphs take raw log-mel (``bn0`` inside); TFLite models take the log-mel
mapped by the folded ``bn0`` (``report.json`` ``mel_affine``), quantised with
the input tensor's scale and zero point, and run in LiteRT's reference kernels
(the ones TensorFlow Lite Micro's are ported from).

:func:`exported_model` says whether a reference names an export and which
model of it; :func:`load_exported` builds the encoder. ``tinyclap eval --model``
resolves through :func:`tinyclap.zeroshot.load_encoder`, which asks here first:

- ``DIR`` (an export folder: its ``report.json``) → the device model, the first
  of ``W.int8.tflite``, ``W.int8.onnx``, ``W.onnx`` that was written;
- ``DIR/embed.int8.tflite``, ``DIR/embed.int8.onnx``, ``DIR/embed.onnx`` → that
  model; ``DIR/features.*`` or ``DIR/head.*`` → the streaming pair of that format.

The model's ``report.json`` must be next to it: it holds the front end, the
window, ``mel_affine`` and the student's checkpoint (whose ``kept_dims`` let a
pruned export use a full prompt bank).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tinyclap.audio import AudioConfig
from tinyclap.errors import TinyClapError
from tinyclap.export.streaming import Windowing, window_logmels

__all__ = [
    "ExportedModelError",
    "ExportedModel",
    "OnnxEncoder",
    "TfliteEncoder",
    "exported_model",
    "load_exported",
    "read_export_report",
    "windowing_from_report",
]

REPORT = "report.json"
# File suffix of each exported format, in the order a folder is resolved (the device model first).
SUFFIXES: dict[str, str] = {"tflite-int8": ".int8.tflite", "onnx-int8": ".int8.onnx", "onnx": ".onnx"}
_MODEL_SUFFIXES = (".onnx", ".tflite")


class ExportedModelError(TinyClapError, ValueError):
    """An exported model that cannot be used as an encoder (missing file or report, unknown name)."""


def _whole_clip(audio_config: AudioConfig) -> Windowing:
    return Windowing(audio_config.n_frames, audio_config.clip_samples, audio_config, stride=1, streaming=False)


class _ExportedEncoder:
    """Windows as the export cut them → graph runners → clip embeddings (see the module docstring)."""

    audio_config: AudioConfig
    windowing: Windowing
    kept_dims: list[int] | None
    _runs: dict[str, Callable[[np.ndarray], np.ndarray]]
    _dim: int | None = None
    meta: dict[str, Any] | None = None

    def _setup(
        self, audio_config: AudioConfig, windowing: Windowing | None, kept_dims: Sequence[int] | None
    ) -> None:
        self.audio_config = audio_config
        self.windowing = windowing if windowing is not None else _whole_clip(audio_config)
        if self.windowing.audio_config.sample_rate != audio_config.sample_rate:
            raise ExportedModelError(
                f"window at {self.windowing.audio_config.sample_rate} Hz but clips at {audio_config.sample_rate} Hz"
            )
        self.kept_dims = [int(d) for d in kept_dims] if kept_dims is not None else None

    @property
    def streaming(self) -> bool:
        return "head" in self._runs

    @property
    def dim(self) -> int | None:
        return self._dim

    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, S)`` or ``(S,)`` → ``(B, D)`` unit float32 on CPU (windowed as exported)."""
        from tinyclap.export.streaming import clip_embeddings

        windows = window_logmels(clips, self.windowing).numpy()
        emb, _ = clip_embeddings(windows, self._runs)
        return torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))


class OnnxEncoder(_ExportedEncoder):
    """Waveforms → log-mel windows → ONNX graph(s) (raw log-mel in, bn0 inside) → unit vectors.

    ``path`` is ``embed.onnx`` / ``embed.int8.onnx`` (whole student), or
    ``features.*.onnx`` with ``head`` the matching ``head.*.onnx`` (streaming;
    then ``windowing`` says how the clip is cut). ``kept_dims`` says which
    teacher dims the outputs are, as on a pruned student, so a full prompt bank
    is sliced to match.
    """

    def __init__(
        self,
        path: str | Path,
        audio_config: AudioConfig,
        kept_dims: Sequence[int] | None = None,
        threads: int | None = None,
        *,
        head: str | Path | None = None,
        windowing: Windowing | None = None,
    ):
        from tinyclap.export.onnx import OnnxModel

        self._setup(audio_config, windowing, kept_dims)
        self.model = OnnxModel(path, threads=threads)
        self.head = OnnxModel(head, threads=threads) if head is not None else None
        if self.head is None and self.windowing.streaming:
            raise ExportedModelError(f"{path}: a streaming window needs the head model too")
        self._runs = {"features": self.model, "head": self.head} if self.head is not None else {"embed": self.model}
        out = (self.head or self.model).session.get_outputs()[0].shape[-1]
        self._dim = int(out) if isinstance(out, int) else None

    @classmethod
    def like(cls, path: str | Path, student: Any, threads: int | None = None) -> "OnnxEncoder":
        """An encoder for the single-graph export of ``student`` (same front end, same kept dims)."""
        return cls(path, student.audio_config, getattr(student, "kept_dims", None), threads)


class TfliteEncoder(_ExportedEncoder):
    """Waveforms → log-mel windows → ``x * scale + shift`` (folded bn0) → int8 ``.tflite`` in LiteRT → unit vectors.

    ``path`` is ``embed.int8.tflite``, or ``features.int8.tflite`` with
    ``head`` = ``head.int8.tflite`` (streaming). ``mel_affine`` is the export's
    per-mel ``(scale, shift)`` (``report.json``); inputs are quantised and
    outputs dequantised with the tensors' own parameters. Needs
    ``ai-edge-litert`` (the ``tflite`` extra); a clear error says so if absent.
    """

    def __init__(
        self,
        path: str | Path,
        audio_config: AudioConfig,
        mel_affine: tuple[Sequence[float], Sequence[float]],
        kept_dims: Sequence[int] | None = None,
        *,
        head: str | Path | None = None,
        windowing: Windowing | None = None,
        reference_kernels: bool = True,
    ):
        from tinyclap.export.tflite import TfliteModel

        self._setup(audio_config, windowing, kept_dims)
        self.scale = np.asarray(mel_affine[0], dtype=np.float32)
        self.shift = np.asarray(mel_affine[1], dtype=np.float32)
        n_mels = self.windowing.audio_config.n_mels
        if self.scale.shape != (n_mels,) or self.shift.shape != (n_mels,):
            raise ExportedModelError(
                f"{path}: mel_affine has {self.scale.shape} / {self.shift.shape} values, the front end {n_mels} mels"
            )
        self.model = TfliteModel(path, reference_kernels=reference_kernels)
        self.head = TfliteModel(head, reference_kernels=reference_kernels) if head is not None else None
        if self.head is None and self.windowing.streaming:
            raise ExportedModelError(f"{path}: a streaming window needs the head model too")
        want = (self.windowing.frames, n_mels)
        if tuple(self.model.input.shape[1:]) != want:
            raise ExportedModelError(
                f"{path}: the model takes input {self.model.input.shape}, the export's window gives (1, {want[0]}, "
                f"{want[1]}): is report.json the one written with this model?"
            )

        def mapped(x: np.ndarray) -> np.ndarray:
            return self.model(x * self.scale + self.shift)

        self._runs = {"features": mapped, "head": self.head} if self.head is not None else {"embed": mapped}
        self._dim = int((self.head or self.model).output.shape[-1])


# --------------------------------------------------------------------------- export folders


def read_export_report(folder: str | Path) -> dict[str, Any]:
    """``folder/report.json`` of an export, checked to be one (``format: tinyclap-export/...``)."""
    from tinyclap.io import read_json

    path = Path(folder) / REPORT
    if not path.is_file():
        raise ExportedModelError(
            f"{folder}: no {REPORT} here; an exported model is read with the report its export wrote next to it "
            "(front end, window, mel_affine)"
        )
    try:
        report = read_json(path)
    except ValueError as err:
        raise ExportedModelError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(report, dict) or not str(report.get("format", "")).startswith("tinyclap-export/"):
        raise ExportedModelError(f"{path}: not a tinyclap export report (no 'format': 'tinyclap-export/1')")
    return report


def _report_audio(report: dict[str, Any], where: Path) -> AudioConfig:
    try:
        return AudioConfig.from_dict(report["student"]["audio_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ExportedModelError(f"{where}: report.json has no usable student audio_config ({err})") from None


def windowing_from_report(report: dict[str, Any], where: str | Path = REPORT) -> Windowing:
    """The export's :class:`~tinyclap.export.streaming.Windowing`, rebuilt from ``report["window"]``."""
    clip = _report_audio(report, Path(where))
    window = report.get("window") or {}
    if not window.get("streaming"):
        return _whole_clip(clip)
    try:
        samples, frames = int(window["samples"]), int(window["frames"])
    except (KeyError, TypeError, ValueError) as err:
        raise ExportedModelError(f"{where}: report.json window lacks samples/frames ({err})") from None
    audio = clip.with_seconds(samples / clip.sample_rate)
    if audio.clip_samples != samples or audio.n_frames < frames:
        raise ExportedModelError(f"{where}: a window of {samples} samples cannot give {frames} frames")
    return Windowing(
        frames, samples, audio, int(window.get("time_stride", 1)), streaming=True,
        requested_seconds=window.get("requested_seconds"),
    )


def _checkpoint_meta(report: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """The exported student's checkpoint metadata, when the report names one that is still there."""
    from tinyclap.checkpoint import checkpoint_paths
    from tinyclap.io import read_json

    ref = (report.get("student") or {}).get("checkpoint")
    if not ref:
        return None
    for base in (Path(ref), folder / ref, folder.parent / ref):
        try:
            _, meta_path = checkpoint_paths(base)
            if meta_path.is_file():
                meta = read_json(meta_path)
                if isinstance(meta, dict) and meta.get("kind") == "student":
                    return meta
        except (TinyClapError, OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class ExportedModel:
    """Which exported model a reference names: its folder, format and graph files (one, or features + head)."""

    folder: Path
    format: str  # "tflite-int8", "onnx-int8" or "onnx"
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.files)

    def load(self, **options: Any) -> Any:
        """The encoder (:class:`TfliteEncoder` or :class:`OnnxEncoder`), front end and window from the report.

        ``options``: ``threads`` (ONNX), ``reference_kernels`` (TFLite).
        """
        return load_exported(self, **options)


def _split_name(name: str) -> tuple[str, str] | None:
    """``"embed.int8.tflite"`` → ``("embed", "tflite-int8")``; None for a file of no exported format."""
    for fmt, suffix in SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], fmt
    if name.endswith(".tflite") and len(name) > 7:
        return name[:-7], "tflite-int8"  # every .tflite we export is int8
    return None


def _models(report: dict[str, Any]) -> list[str]:
    models = report.get("models") or []
    return [str(m) for m in models] if isinstance(models, list) and models else ["embed"]


def exported_model(ref: str | Path) -> ExportedModel | None:
    """The exported model ``ref`` names (see the module docstring), or None when it names none.

    ``ref`` names an export when it is an ``.onnx`` / ``.tflite`` path or a
    folder holding an export's ``report.json``; such a reference that cannot be used
    (no report next to it, a missing half of a streaming pair) raises
    :class:`ExportedModelError` rather than falling through to other model kinds.
    """
    path = Path(ref)
    if path.is_dir():
        try:
            report = read_export_report(path)
        except ExportedModelError:
            return None  # no export report here (another kind of model folder, e.g. a teacher's)
        models = _models(report)
        for fmt, suffix in SUFFIXES.items():
            files = tuple(path / f"{m}{suffix}" for m in models)
            if all(f.is_file() for f in files):
                return ExportedModel(path, fmt, files)
        raise ExportedModelError(
            f"{path}: an export folder with no complete model ({', '.join(models)} as "
            f"{' / '.join(SUFFIXES.values())}); re-run `tinyclap export`"
        )
    if path.suffix not in _MODEL_SUFFIXES:
        return None
    if not path.is_file():
        raise ExportedModelError(f"{path}: no such exported model file")
    folder = path.parent
    report = read_export_report(folder)
    models = _models(report)
    split = _split_name(path.name)
    if split is None:
        raise ExportedModelError(f"{path}: not an exported model name (*.onnx, *.int8.onnx, *.int8.tflite)")
    stem, fmt = split
    if stem not in models:
        if models != ["embed"]:
            raise ExportedModelError(
                f"{path}: the export in {folder} streams ({' + '.join(models)}); name one of its "
                f"{' / '.join(m + SUFFIXES[fmt] for m in models)} or the folder"
            )
        return ExportedModel(folder, fmt, (path,))  # a renamed single-graph model
    files = tuple(folder / f"{m}{SUFFIXES[fmt]}" for m in models)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ExportedModelError(f"{path}: the streaming export needs {' and '.join(missing)} next to it")
    return ExportedModel(folder, fmt, files)


def load_exported(ref: str | Path | ExportedModel, **options: Any) -> Any:
    """An AudioEncoder for an exported model (a path as :func:`exported_model` reads it, or its result)."""
    model = ref if isinstance(ref, ExportedModel) else exported_model(ref)
    if model is None:
        raise ExportedModelError(f"{ref}: not an exported model (.onnx, .tflite, or an export folder)")
    report = read_export_report(model.folder)
    where = model.folder / REPORT
    audio = _report_audio(report, where)
    windowing = windowing_from_report(report, where)
    meta = _checkpoint_meta(report, model.folder)
    kept_count = (report.get("student") or {}).get("kept_dims")
    kept = meta.get("kept_dims") if meta else None
    if kept is not None and kept_count is not None and len(kept) != int(kept_count):
        kept = None  # the checkpoint was overwritten since: its dims are not this model's
    head = model.files[1] if len(model.files) == 2 else None
    if model.format == "tflite-int8":
        affine = report.get("mel_affine") or {}
        if "scale" not in affine or "shift" not in affine:
            raise ExportedModelError(f"{where}: no mel_affine (the folded bn0 the TFLite model expects)")
        encoder: Any = TfliteEncoder(
            model.files[0], audio, (affine["scale"], affine["shift"]), kept,
            head=head, windowing=windowing, reference_kernels=bool(options.get("reference_kernels", True)),
        )
    else:
        encoder = OnnxEncoder(model.files[0], audio, kept, options.get("threads"), head=head, windowing=windowing)
    student_name = (report.get("student") or {}).get("name") or "student"
    encoder.name = f"{student_name} [{model.format}: {model.name}]"
    encoder.meta = meta
    encoder.export = model
    return encoder
