"""Static int8 quantisation recipes, calibrated on real log-mel windows.

* :func:`quantize_onnx_int8`: onnxruntime static quantisation of an fp32
  ONNX file into QDQ format, weights per output channel (symmetric int8 with
  a 7-bit range, see below), activations per tensor (int8), ranges from a
  :class:`ArrayCalibrationReader`.
* :func:`pt2e_int8`: PyTorch 2 export (PT2E) post-training quantisation of a
  graph with litert-torch's quantizer, ready for conversion to a fully int8
  ``.tflite`` (:mod:`tinyclap.export.tflite`).

litert-torch's stock quantizer annotates convs, linears, adds and conv+ReLU,
but not conv+ReLU6 (``hardtanh``, what PhiNet uses) nor explicit pads (the
PhiNet stem's "same" padding). Left alone, ReLU6 shares the conv's
pre-activation scale and the next conv's PAD sees two scales, which the
converter rejects ("'tfl.pad' op quantization parameters violate the same
scale constraint"). :class:`StudentQuantizer` adds those patterns and
quantises the graph output, so the ``.tflite`` has int8 input and output.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from tinyclap.errors import TinyClapError

__all__ = [
    "QuantizationError",
    "ArrayCalibrationReader",
    "quantize_onnx_int8",
    "require_tflite",
    "StudentQuantizer",
    "pt2e_int8",
]

TFLITE_HINT = "pip install tinyclap[tflite]"


class QuantizationError(TinyClapError, RuntimeError):
    """A model that could not be quantised, or a missing quantisation toolchain."""


# --------------------------------------------------------------------------- ONNX


def ArrayCalibrationReader(input_name: str, batches: Iterable[np.ndarray]) -> Any:  # noqa: N802 - a class factory
    """An onnxruntime ``CalibrationDataReader`` over float32 input batches (e.g. log-mel windows)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    return _Reader()


def quantize_onnx_int8(
    fp32_path: str | Path, out_path: str | Path, calibration: Iterable[np.ndarray], reduce_range: bool = True
) -> Path:
    """Static QDQ int8 (per-channel weights) of ``fp32_path`` into ``out_path``, calibrated on ``calibration`` batches.

    The fp32 graph is first pre-processed (shape inference, graph
    optimisation) as onnxruntime recommends. The write is atomic.

    ``reduce_range`` keeps weights in [-64, 63]: onnxruntime's int8 convolutions
    on x86 CPUs without VNNI (AVX2, AVX-512F) multiply pairs of 8-bit values
    into saturating 16-bit sums, which full-range weights overflow. Measured on
    the quickstart student (AVX2 CPU, 128 calibration windows): cosine to fp32
    0.946 mean / 0.753 worst with full-range weights, 0.9996 / 0.998 with 7 bits.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from tinyclap.export.onnx import quiet_logger
    from tinyclap.io import atomic_path

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    reader = ArrayCalibrationReader(input_name, calibration)
    with atomic_path(out_path) as tmp, tempfile.TemporaryDirectory(dir=out_path.parent) as work:
        pre = Path(work) / "preprocessed.onnx"
        try:
            # onnxruntime.quantization logs through the root logger (e.g. per-channel axis
            # notes for the BatchNormalization weights it leaves in float).
            with quiet_logger():
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
                quantize_static(
                    str(pre),
                    str(tmp),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    reduce_range=reduce_range,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                )
        except Exception as err:  # noqa: BLE001 - onnxruntime raises many types
            raise QuantizationError(f"{fp32_path}: onnxruntime static quantisation failed ({err})") from err
    return out_path


# --------------------------------------------------------------------------- PT2E (TFLite)


def require_tflite() -> Any:
    """Import litert-torch (the ``tflite`` extra), or raise :class:`QuantizationError` saying how to install it."""
    from tinyclap._quiet import quiet_torchao_noise

    quiet_torchao_noise()  # litert-torch imports torchao, which logs harmless CUDA-kernel noise on import
    try:
        import litert_torch  # noqa: F401
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
        from litert_torch.quantize import pt2e_quantizer  # noqa: F401
    except ImportError as err:
        raise QuantizationError(
            f"TFLite export needs litert-torch and torchao ({err.name or err} is missing): {TFLITE_HINT}"
        ) from None
    return litert_torch


_CONVS = ("conv1d.default", "conv2d.default", "convolution.default")
_CLAMPS = ("hardtanh.default", "hardtanh_.default", "relu6.default", "clamp.default")
_PADS = ("constant_pad_nd.default", "pad.default")


def _target(node: Any) -> str:
    t = getattr(node, "target", None)
    return f"{getattr(t, '__name__', '')}" if t is not None else ""


def StudentQuantizer() -> Any:  # noqa: N802 - returns an instance of a subclass built lazily
    """litert-torch's PT2E quantizer (static, per-channel int8) plus conv+ReLU6, pads and the graph output."""
    require_tflite()
    from litert_torch.quantize import pt2e_quantizer_utils as qu
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torch.fx import Node
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    def annotated(n: Node) -> bool:
        a = n.meta.get("quantization_annotation")
        return a is not None and a._annotated

    def mark(n: Node, **kw: Any) -> None:
        n.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True, **kw)

    class _StudentQuantizer(PT2EQuantizer):
        def _annotate_all_static_patterns(self, model: Any, config: Any, filter_fn: Any = None) -> Any:
            if config is None:
                return model
            act, out = qu.get_input_act_qspec(config), qu.get_output_act_qspec(config)
            weight, bias = qu.get_weight_qspec(config), qu.get_bias_qspec(config)
            for n in model.graph.nodes:
                if n.op != "call_function" or (filter_fn and not filter_fn(n)):
                    continue
                name = _target(n)
                src = n.args[0] if n.args else None
                if name in _CLAMPS and isinstance(src, Node) and _target(src) in _CONVS and len(src.users) == 1:
                    # conv -> ReLU6: one int8 output after the clamp (TFLite fuses RELU6 into the conv).
                    if annotated(src) or annotated(n):
                        continue
                    qmap = {src.args[0]: act, src.args[1]: weight}
                    extra = [src.args[1]]
                    if len(src.args) > 2 and isinstance(src.args[2], Node):
                        qmap[src.args[2]] = bias
                        extra.append(src.args[2])
                    mark(src, input_qspec_map=qmap)
                    mark(n, output_qspec=out)
                    for e in extra:
                        mark(e)
                elif name in _PADS and isinstance(src, Node) and not annotated(n):
                    # A zero pad keeps its input's scale: quantise the input, share it on the output.
                    mark(n, input_qspec_map={src: act}, output_qspec=SharedQuantizationSpec((src, n)))
            # The graph output: quantised, so the .tflite ends in int8 (whatever op produced it).
            output = next(n for n in model.graph.nodes if n.op == "output")
            last = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
            if isinstance(last, Node) and not annotated(last) and last.op == "call_function":
                mark(last, output_qspec=out)
            return super()._annotate_all_static_patterns(model, config, filter_fn)

    return _StudentQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def pt2e_int8(
    graph: nn.Module, calibration: Iterable[torch.Tensor], quantizer: Any | None = None
) -> tuple[Any, Any, torch.Tensor]:
    """Post-training static int8 quantisation of ``graph`` with PT2E.

    ``calibration`` yields input batches (the first one is also the example
    input for export). Returns ``(quantised graph module, quantizer, example)``
    for :func:`tinyclap.export.tflite.convert_tflite`.
    """
    require_tflite()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    batches = [b.float() for b in calibration]
    if not batches:
        raise QuantizationError("PT2E calibration needs at least one input batch")
    example = batches[0][:1]
    quantizer = quantizer or StudentQuantizer()
    graph = graph.eval()
    try:
        exported = torch.export.export(graph, (example,)).module()
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for b in batches:
                for i in range(len(b)):  # batch 1: the .tflite is exported for batch 1
                    prepared(b[i : i + 1])
        converted = convert_pt2e(prepared, fold_quantize=False)
    except Exception as err:  # noqa: BLE001 - export/quantisation raise many types
        raise QuantizationError(
            f"PT2E int8 quantisation failed ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
    return converted, quantizer, example
