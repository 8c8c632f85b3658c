"""ONNX: export a graph as one self-contained fp32 file, and run ONNX files with onnxruntime.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) writes the
graph with its weights inside the one ``.onnx`` file (``external_data=False``:
a student is a few MB, far from protobuf's 2 GB limit, and one file is what
users copy around). The batch dimension is dynamic; time and mel sizes are
fixed by the window the graph was exported for.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from tinyclap.errors import TinyClapError
from tinyclap.io import atomic_path

__all__ = ["OnnxExportError", "export_onnx", "OnnxModel", "quiet_logger"]


class OnnxExportError(TinyClapError, RuntimeError):
    """A graph that could not be exported to ONNX or loaded back."""


@contextlib.contextmanager
def quiet_logger(name: str = "") -> Iterator[None]:
    """Raise logger ``name`` (root by default) to ERROR for the block: silences known-harmless noise."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(
    graph: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Export ``graph`` (eval mode) to ``path`` as a single fp32 ONNX file, batch dynamic.

    ``example`` is one input batch (its batch size should be >= 2 so the
    exporter does not specialise the batch to 1). The write is atomic.
    """
    path = Path(path)
    graph = graph.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter warns once per torchvision op it cannot register: noise here.
    with quiet_logger("torch.onnx"), atomic_path(path) as tmp:
        onnx_path = tmp.with_suffix(".onnx")  # the exporter wants an .onnx name
        try:
            torch.onnx.export(
                graph,
                (example,),
                str(onnx_path),
                dynamo=True,
                external_data=False,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_shapes=({0: batch},),
                optimize=True,
                verbose=False,
            )
            onnx_path.replace(tmp)
        except Exception as err:  # noqa: BLE001 - the exporter raises many types
            raise OnnxExportError(
                f"{path}: ONNX export failed ({type(err).__name__}: {str(err).splitlines()[0]})"
            ) from err
        finally:
            if onnx_path.exists():
                onnx_path.unlink()
    return path


class OnnxModel:
    """An ONNX file in onnxruntime (CPU): ``model(x)`` runs one float32 batch, in chunks."""

    def __init__(self, path: str | Path, threads: int | None = None, batch_size: int = 64):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxExportError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No busy-waiting threads between runs: they would steal the CPU from whatever runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise OnnxExportError(f"{self.path}: onnxruntime cannot load it ({err})") from err
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.batch_size = int(batch_size)

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        x = np.ascontiguousarray(x, dtype=np.float32)
        outs = [
            self.session.run([self.output_name], {self.input_name: x[i : i + self.batch_size]})[0]
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(outs).astype(np.float32)
