"""TFLite: convert a PT2E-quantised graph to a fully int8 ``.tflite``, and run ``.tflite`` files.

:func:`export_tflite_int8` quantises a graph (:func:`tinyclap.export.quantize.pt2e_int8`)
and converts it with litert-torch; the result takes int8 input and gives int8
output (checked), with int8 weights and int8 convolutions / fully connected
layers throughout. LayerNorm and the final L2 norm run as float32 kernels
inside the model (dequantise → float ops → quantise): int8 variance and
rsqrt lose too much, and TFLite Micro has float kernels for all of them.

:class:`TfliteModel` runs a file in LiteRT (``ai-edge-litert``), quantising
float inputs with the input tensor's scale and zero point and dequantising
outputs, or taking and giving raw int8 (:meth:`TfliteModel.run_int8`).

Both need the ``tflite`` extra (``pip install tinyclap[tflite]``), imported
only when called.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from tinyclap.errors import TinyClapError
from tinyclap.export.mcu import QuantParams, quantize_affine
from tinyclap.export.quantize import TFLITE_HINT, QuantizationError, pt2e_int8, require_tflite
from tinyclap.io import atomic_path

__all__ = ["TfliteError", "TensorInfo", "export_tflite_int8", "TfliteModel", "require_litert"]


class TfliteError(TinyClapError, RuntimeError):
    """A ``.tflite`` that could not be produced, loaded or run."""


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and (for int8) quantisation of a model input or output."""

    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None

    def to_dict(self) -> dict[str, Any]:
        q = None if self.quant is None else {"scale": float(self.quant.scale), "zero_point": int(self.quant.zero_point)}
        return {"shape": list(self.shape), "dtype": self.dtype, "quant": q}


def require_litert() -> Any:
    """Import the LiteRT interpreter, or raise naming the extra to install."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        raise TfliteError(f"running .tflite files needs ai-edge-litert: {TFLITE_HINT}") from None
    return interpreter


def export_tflite_int8(graph: nn.Module, calibration: Iterable[torch.Tensor], path: str | Path) -> Path:
    """Quantise ``graph`` on ``calibration`` batches (PT2E) and write a fully int8 ``.tflite`` to ``path``.

    Raises :class:`TfliteError` if the converted model's input or output is not int8.
    """
    litert_torch = require_tflite()
    from litert_torch.quantize.quant_config import QuantConfig

    path = Path(path)
    converted, quantizer, example = pt2e_int8(graph, calibration)
    # litert-torch prints a progress tree per conversion; the export report says what happened.
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    try:
        with _drop_log_records("converted in training mode"):
            # The graph was exported from an eval-mode module (dropout and BatchNorm already in their
            # inference form); only the exported module's flag says "training", which is all it checks.
            edge = litert_torch.convert(converted, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        with atomic_path(path) as tmp:
            edge.export(str(tmp))
    except QuantizationError:
        raise
    except Exception as err:  # noqa: BLE001 - the converter raises many types
        raise TfliteError(
            f"{path}: TFLite conversion failed ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
    model = TfliteModel(path)
    for role, info in (("input", model.input), ("output", model.output)):
        if info.dtype != "int8":
            raise TfliteError(f"{path}: the converted model's {role} is {info.dtype}, not int8")
    return path


@contextlib.contextmanager
def _drop_log_records(text: str) -> Iterator[None]:
    """Drop root-logger records containing ``text`` (one known-harmless converter warning)."""

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return text not in record.getMessage()

    flt = _Filter()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _info(detail: dict[str, Any]) -> TensorInfo:
    dtype = np.dtype(detail["dtype"]).name
    scale, zero = detail.get("quantization", (0.0, 0))
    quant = QuantParams(float(scale), int(zero)) if dtype == "int8" and scale else None
    return TensorInfo(tuple(int(d) for d in detail["shape"]), dtype, quant)


class TfliteModel:
    """A ``.tflite`` in the LiteRT interpreter, batch 1 per invoke, no delegate.

    ``reference_kernels`` (default) runs LiteRT's reference kernels, the ones
    TensorFlow Lite Micro's are ported from: their int8 outputs match TFLM's
    exactly on the backbone (the optimised kernels round differently, e.g. up
    to 11 int8 steps on a pooled vector, measured on a tiny student).
    """

    def __init__(self, path: str | Path, reference_kernels: bool = True):
        interpreter = require_litert()
        self.path = Path(path)
        if not self.path.is_file():
            raise TfliteError(f"{self.path}: no such .tflite file")
        self.data = self.path.read_bytes()
        try:
            self.interpreter = interpreter.Interpreter(
                model_content=self.data,
                experimental_op_resolver_type=(
                    interpreter.OpResolverType.BUILTIN_REF
                    if reference_kernels
                    else interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                ),
                num_threads=1,
            )
            self.interpreter.allocate_tensors()
        except Exception as err:  # noqa: BLE001 - LiteRT raises RuntimeError/ValueError
            raise TfliteError(f"{self.path}: LiteRT cannot load it ({err})") from err
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input = _info(self._in)
        self.output = _info(self._out)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float input → the model's input dtype (TFLite's QUANTIZE rounding for int8)."""
        x = np.asarray(x, dtype=np.float32)
        if self.input.quant is None:
            return x
        return quantize_affine(x, self.input.quant.scale, self.input.quant.zero_point)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        if self.output.quant is None:
            return np.asarray(y, dtype=np.float32)
        q = self.output.quant
        return ((y.astype(np.float32) - q.zero_point) * np.float32(q.scale)).astype(np.float32)

    def run_int8(self, x: np.ndarray) -> np.ndarray:
        """Raw model input ``(B, ...)`` (already quantised) → raw output ``(B, ...)``, one invoke per row."""
        outs = []
        for row in np.asarray(x):
            self.interpreter.set_tensor(self._in["index"], row[None].astype(self._in["dtype"]))
            self.interpreter.invoke()
            outs.append(self.interpreter.get_tensor(self._out["index"])[0].copy())
        return np.stack(outs)

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Float input batch → float output batch (quantise, invoke per row, dequantise)."""
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return self.dequantize_output(self.run_int8(self.quantize_input(x)))
