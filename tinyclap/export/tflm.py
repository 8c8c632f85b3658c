"""TensorFlow Lite Micro on the host: run a ``.tflite`` as a microcontroller would, and measure its arena.

tflite-micro's Python interpreter is the real TFLM runtime (the same
allocator and reference kernels firmware links), built with a recording
allocator. After an invoke, ``print_allocations()`` prints how many bytes of
the tensor arena were actually allocated. It prints from C++ straight to the
process's stderr, so :func:`capture_fd_output` redirects file descriptors 1
and 2 (a ``sys.stderr`` swap would not see it).

A model TFLM cannot run (an op with no micro kernel, e.g. GELU) fails here,
with TFLM's own message in the error.

The arena figure is measured on a 64-bit host; on a 32-bit MCU pointers and
some bookkeeping are smaller, so the device needs the same or a little less
(``examples/mcu/main_tflm.cc`` adds a margin).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from tinyclap.errors import TinyClapError
from tinyclap.export.quantize import TFLITE_HINT

__all__ = ["TflmError", "TflmModel", "capture_fd_output", "compare_runtimes", "RuntimeComparison"]

T = TypeVar("T")
_ARENA = re.compile(r"Arena allocation total (\d+) bytes")
DEFAULT_ARENA = 8 * 1024 * 1024  # what the host interpreter may use; the measured figure is what counts


class TflmError(TinyClapError, RuntimeError):
    """A model TensorFlow Lite Micro cannot load or run, or a missing tflite-micro."""


def capture_fd_output(fn: Callable[[], T]) -> tuple[T, str]:
    """Run ``fn()`` with file descriptors 1 and 2 redirected; return its result and what it printed."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        except BaseException as err:
            _restore(saved)
            tmp.seek(0)
            err.tflm_output = tmp.read().decode(errors="replace")  # type: ignore[attr-defined]
            raise
        _restore(saved)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


def _restore(saved: list[int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in saved:
        os.close(fd)


def _runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise TflmError(f"running models in TensorFlow Lite Micro needs tflite-micro: {TFLITE_HINT}") from None
    return runtime


def _first_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines[:n])


class TflmModel:
    """A ``.tflite`` (path or bytes) in TensorFlow Lite Micro. Raw int8 in, raw int8 out, batch 1 per invoke."""

    def __init__(self, model: str | Path | bytes, arena_size: int = DEFAULT_ARENA, name: str = "model"):
        runtime = _runtime()
        if isinstance(model, (bytes, bytearray)):
            self.data, self.name = bytes(model), name
        else:
            path = Path(model)
            if not path.is_file():
                raise TflmError(f"{path}: no such .tflite file")
            self.data, self.name = path.read_bytes(), str(path)
        try:
            self.interpreter, _ = capture_fd_output(
                lambda: runtime.Interpreter.from_bytes(self.data, arena_size=int(arena_size))
            )
        except Exception as err:  # noqa: BLE001 - the binding raises RuntimeError with TFLM's log on stderr
            said = _first_lines(getattr(err, "tflm_output", "")) or str(err)
            raise TflmError(f"{self.name}: TensorFlow Lite Micro cannot load it ({said})") from None
        self._in = self.interpreter.get_input_details(0)
        self._out = self.interpreter.get_output_details(0)
        self._invoked = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._in["shape"])

    def run_int8(self, x: np.ndarray) -> np.ndarray:
        """Raw input ``(B, ...)`` → raw output ``(B, ...)``, one invoke per row."""
        outs = []
        for row in np.asarray(x):
            try:
                self.interpreter.set_input(row[None].astype(self._in["dtype"]), 0)
                _, log = capture_fd_output(self.interpreter.invoke)
            except Exception as err:  # noqa: BLE001
                said = _first_lines(getattr(err, "tflm_output", "")) or str(err)
                raise TflmError(f"{self.name}: TensorFlow Lite Micro invoke failed ({said})") from None
            outs.append(np.array(self.interpreter.get_output(0))[0])
            self._invoked = True
        return np.stack(outs)

    def arena_bytes(self) -> int:
        """Bytes of the tensor arena TFLM allocated (``print_allocations``); runs one invoke first if needed."""
        if not self._invoked:
            self.run_int8(np.zeros((1, *self.input_shape[1:]), dtype=self._in["dtype"]))
        _, text = capture_fd_output(self.interpreter.print_allocations)
        match = _ARENA.search(text)
        if not match:
            raise TflmError(f"{self.name}: no arena figure in TFLM's allocation report ({_first_lines(text)!r})")
        return int(match.group(1))


@dataclass(frozen=True)
class RuntimeComparison:
    """TFLM against LiteRT on the same int8 inputs: how many outputs differ, and by how many int8 steps."""

    inputs: int
    values: int
    max_abs_diff: int
    mismatches: int

    @property
    def identical(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "values": self.values,
            "max_abs_diff_lsb": self.max_abs_diff,
            "mismatches": self.mismatches,
            "identical": self.identical,
        }


def compare_runtimes(tflm: TflmModel, litert: Any, inputs_int8: np.ndarray) -> RuntimeComparison:
    """Run the same raw int8 inputs through TFLM and a :class:`~tinyclap.export.tflite.TfliteModel`."""
    a = tflm.run_int8(inputs_int8).astype(np.int32)
    b = litert.run_int8(inputs_int8).astype(np.int32)
    if a.shape != b.shape:
        raise TflmError(f"{tflm.name}: TFLM output shape {a.shape} != LiteRT {b.shape}")
    diff = np.abs(a - b)
    return RuntimeComparison(int(len(inputs_int8)), int(diff.size), int(diff.max(initial=0)), int((diff > 0).sum()))
