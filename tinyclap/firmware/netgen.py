"""An int8 ``.tflite`` as plain C99: the network without TensorFlow Lite Micro.

:func:`write_c_network` reads an exported student's ``.tflite`` (features,
head or embed graph) and writes ``<name>_net.c`` / ``<name>_net.h``: the
weights, biases and every per-channel multiplier and shift as ``const``
arrays (flash), a static memory plan of the activations in one arena, and one
function::

    int tc_net_<name>_invoke(uint8_t *arena, const int8_t *input, int8_t *output);

(``float *output`` when the graph's output tensor is float32; the real I/O
types of the graph are kept). It calls the fixed kernel library
``csrc/tc_nn.c``, whose kernels compute what TFLM's reference kernels compute,
bit for bit (tests/test_firmware_net.py runs both on real clips and compares
with ``np.array_equal``).

Why generated code plus a small kernel library rather than a flatbuffer
interpreter on the device:

* no parser, no op resolver and no allocator on the device: the graph is
  resolved here, once, and what remains is a straight list of kernel calls;
* every shape, stride, offset, multiplier and clamp is a constant the C
  compiler sees (it can unroll and drop dead branches), not data read at run
  time;
* flash holds the weights and the small per-op parameter structs only, not a
  serialised model with names, metadata and alignment padding;
* the memory plan is decided here and printed (``TC_NET_<NAME>_ARENA_BYTES``):
  RAM is known before linking.

The requantisation is TFLite's: multipliers and shifts come from the double
scales exactly as TFLM's ``Prepare()`` computes them (``QuantizeMultiplier``:
``frexp``, round half away from zero, ``q == 2^31`` renormalised, shifts below
-31 flushed to zero), per output channel for CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED, the ``left_shift = 20`` scheme for ADD, the multiplier divided
by the element count for int8 MEAN, and the fused activation clamps from
TFLite's float ``Quantize`` of 0 and 6. Only the ops our students export to are
supported; anything else is refused with :class:`NetgenError` naming the op.

The memory plan (:func:`plan_arena`) is greedy by size, first fit at 16-byte
aligned offsets, among buffers whose lifetimes (first write .. last read, in
op order) overlap; RESHAPE aliases its input (no copy). The graph input and
output are the caller's buffers, not in the arena.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinyclap.errors import TinyClapError
from tinyclap.export.c_arrays import c_float, c_identifier
from tinyclap.io import atomic_path

__all__ = [
    "NetgenError",
    "TensorIO",
    "NetFiles",
    "Buffer",
    "SUPPORTED_OPS",
    "quantize_multiplier",
    "plan_arena",
    "read_tflite",
    "write_c_network",
]

ALIGN = 16
MAX_DIMS = 6
RQ_MIN_OUTPUTS = 64  # outputs per channel and invoke from which a layer gets a requantisation table
LUT_MIN_PIXELS = 1024  # pixels per invoke from which a 1x1 depthwise layer becomes a lookup table

SUPPORTED_OPS = (
    "ADD",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "MEAN",
    "MUL",
    "PAD",
    "QUANTIZE",
    "RESHAPE",
    "RSQRT",
    "SQUARED_DIFFERENCE",
    "SUB",
    "SUM",
    "TRANSPOSE",
)


class NetgenError(TinyClapError, ValueError):
    """A ``.tflite`` that cannot be turned into plain C (an unsupported op or tensor type, a bad name)."""


# --------------------------------------------------------------------------- TFLite arithmetic


def _round_away(v: float) -> int:
    """``std::round`` / ``TfLiteRound``: half away from zero (Python's ``round`` is half to even)."""
    a = abs(v)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return int(-r if v < 0 else r)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier(double)``: ``m ≈ q * 2^(shift - 31)``, ``q`` in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = _round_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if q_fixed < 0 or q_fixed > 2**31 - 1:
        raise NetgenError(f"multiplier {m!r} does not fit TFLite's int32 fixed point (negative scale?)")
    return int(q_fixed), int(shift)


def _requant_np(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's ``MultiplyByQuantizedMultiplier`` (double rounding, as tc_nn.c's ``requant``) on int64 arrays."""
    x = np.asarray(x, np.int64)
    left, right = max(shift, 0), max(-shift, 0)
    shifted = ((x << left) + 2**31) % 2**32 - 2**31  # the int32 wrap-around of x * 2^left
    ab = shifted * int(multiplier)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C's truncating division by 2^31
    mask = (1 << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def _f32(x: float) -> np.float32:
    return np.float32(x)


def _quantize_float(f: float, scale: float, zero_point: int) -> int:
    """TFLite kernel_util ``Quantize``: ``zero_point + (int)TfLiteRound(f / scale)`` in float32."""
    return int(zero_point) + _round_away(float(_f32(f) / _f32(scale)))


# fused activation codes of the TFLite schema
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6 = 0, 1, 2, 3


def _act_range_q(act: int, scale: float, zero_point: int, op: str) -> tuple[int, int]:
    lo, hi = -128, 127
    if act == _ACT_NONE:
        return lo, hi
    if act == _ACT_RELU:
        return max(lo, _quantize_float(0.0, scale, zero_point)), hi
    if act == _ACT_RELU6:
        return max(lo, _quantize_float(0.0, scale, zero_point)), min(hi, _quantize_float(6.0, scale, zero_point))
    if act == _ACT_RELU_N1_TO_1:
        return max(lo, _quantize_float(-1.0, scale, zero_point)), min(hi, _quantize_float(1.0, scale, zero_point))
    raise NetgenError(f"{op}: fused activation {act} is not supported")


def _act_range_f(act: int, op: str) -> tuple[float, float]:
    big = float(np.finfo(np.float32).max)
    table = {_ACT_NONE: (-big, big), _ACT_RELU: (0.0, big), _ACT_RELU_N1_TO_1: (-1.0, 1.0), _ACT_RELU6: (0.0, 6.0)}
    if act not in table:
        raise NetgenError(f"{op}: fused activation {act} is not supported")
    return table[act]


# --------------------------------------------------------------------------- reading the flatbuffer


def _schema() -> Any:
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError:
        try:
            from ai_edge_litert import schema_py_generated as schema
        except ImportError:
            from tinyclap.export.quantize import TFLITE_HINT

            raise NetgenError(f"reading .tflite files needs the TFLite schema (tflite-micro): {TFLITE_HINT}") from None
    return schema


_DTYPES = {"INT8": np.int8, "FLOAT32": np.float32, "INT32": np.int32, "INT64": np.int64, "INT16": np.int16}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: int8, float32, int32, ...
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    qdim: int
    data: np.ndarray | None  # constant data (shaped), or None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        if self.scales is None or not len(self.scales):
            raise NetgenError(f"tensor {self.name!r} has no quantisation scale")
        return float(self.scales[0])

    @property
    def zp(self) -> int:
        return 0 if self.zero_points is None or not len(self.zero_points) else int(self.zero_points[0])


@dataclass
class Operator:
    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Any


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Operator]
    input: int
    output: int


def read_tflite(model: bytes | str | Path) -> Graph:
    """Parse a ``.tflite`` (one subgraph, one input, one output) into tensors and operators."""
    S = _schema()
    raw = bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    try:
        m = S.Model.GetRootAsModel(raw, 0)
        n_sub = m.SubgraphsLength()
    except Exception as err:  # noqa: BLE001 - flatbuffers raises struct errors on garbage
        raise NetgenError(f"not a .tflite flatbuffer ({type(err).__name__}: {err})") from None
    if n_sub != 1:
        raise NetgenError(f"the model has {n_sub} subgraphs; plain C supports exactly one")
    g = m.Subgraphs(0)
    op_names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(S.TensorType).items() if not k.startswith("_")}
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        tname = type_names.get(t.Type(), str(t.Type()))
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scales = zps = None
        qdim = 0
        if q is not None and q.ScaleLength():
            scales = np.asarray(q.ScaleAsNumpy(), np.float32)
            zps = np.asarray(q.ZeroPointAsNumpy(), np.int64) if q.ZeroPointLength() else np.zeros(len(scales), np.int64)
            qdim = int(q.QuantizedDimension())
        data = None
        buf = m.Buffers(t.Buffer()) if t.Buffer() < m.BuffersLength() else None
        blob = b""
        if buf is not None:
            if buf.DataLength():
                blob = buf.DataAsNumpy().tobytes()
            elif buf.Offset() > 1:
                blob = raw[buf.Offset() : buf.Offset() + buf.Size()]
        dtype = _DTYPES.get(tname)
        if blob:
            if dtype is None:
                raise NetgenError(f"constant tensor {t.Name().decode()!r} has unsupported type {tname}")
            data = np.frombuffer(blob, dtype=dtype).reshape(shape if shape else ())
        tensors.append(
            Tensor(
                i,
                t.Name().decode(errors="replace"),
                shape,
                np.dtype(dtype).name if dtype else tname.lower(),
                scales,
                zps,
                qdim,
                data,
            )
        )
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), f"CUSTOM({code.CustomCode()})")
        if code.CustomCode():
            name = f"CUSTOM({code.CustomCode().decode(errors='replace')})"
        ops.append(
            Operator(
                i,
                name,
                [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else [],
                [int(x) for x in op.OutputsAsNumpy()],
                _options(S, op),
            )
        )
    if g.InputsLength() != 1 or g.OutputsLength() != 1:
        raise NetgenError(
            f"the model has {g.InputsLength()} inputs and {g.OutputsLength()} outputs; plain C supports one of each"
        )
    return Graph(tensors, ops, int(g.InputsAsNumpy()[0]), int(g.OutputsAsNumpy()[0]))


def _options(S: Any, op: Any) -> Any:
    kinds = {v: k for k, v in vars(S.BuiltinOptions).items() if not k.startswith("_")}
    kind = kinds.get(op.BuiltinOptionsType(), "NONE")
    table = op.BuiltinOptions()
    if table is None or kind == "NONE" or not hasattr(S, kind):
        return None
    obj = getattr(S, kind)()
    obj.Init(table.Bytes, table.Pos)
    return obj


# --------------------------------------------------------------------------- memory plan


@dataclass(frozen=True)
class Buffer:
    """One activation buffer of the plan: ``size`` bytes live from op ``first`` to op ``last``."""

    name: str
    size: int
    first: int
    last: int


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def plan_arena(buffers: Sequence[Buffer], align: int = ALIGN) -> tuple[dict[str, int], int]:
    """Offsets for ``buffers`` in one arena: greedy by size (largest first), first fit among live ones.

    Two buffers may share bytes only if their lifetimes ``[first, last]`` do not
    overlap. Returns ``({name: offset}, arena bytes)``; offsets are multiples of
    ``align`` and the arena size is rounded up to it.
    """
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    placed: list[tuple[int, int, Buffer]] = []  # (offset, aligned size, buffer)
    offsets: dict[str, int] = {}
    for i in order:
        b = buffers[i]
        need = _align(max(b.size, 1), align)
        live = sorted((off, sz) for off, sz, o in placed if not (o.last < b.first or b.last < o.first))
        at = 0
        for off, sz in live:
            if at + need <= off:
                break
            at = max(at, off + sz)
        placed.append((at, need, b))
        offsets[b.name] = at
    total = max((off + sz for off, sz, _ in placed), default=0)
    return offsets, _align(total, align)


# --------------------------------------------------------------------------- C text helpers


def _cint(v: int) -> str:
    v = int(v)
    if v == -(2**31):
        return "(-2147483647 - 1)"
    return str(v)


def _ints(values: Any, per_line: int = 24) -> str:
    arr = np.asarray(values).ravel()
    items = [_cint(v) for v in arr.tolist()]
    lines = ["    " + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines) if lines else "    0,"


def _dims_init(values: Sequence[int]) -> str:
    vals = list(values) + [0] * (MAX_DIMS - len(values))
    return "{" + ", ".join(_cint(v) for v in vals) + "}"


def _contig_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return list(reversed(strides))


# --------------------------------------------------------------------------- lowering


def _interleave4(w: np.ndarray) -> np.ndarray:
    """Pointwise (and fully connected) weights ``(out_c, in_c)`` in the layout of tc_nn.c's ``dot4i_s8``.

    Rows in blocks of four: for each 4-byte word of a row, the word of row 0,
    1, 2 and 3; then the four rows' last ``in_c % 4`` bytes, row after row.
    The last ``out_c % 4`` rows follow as they are. Same bytes, another order.
    """
    out_c, in_c = w.shape
    n4, blocks = in_c - in_c % 4, out_c // 4
    parts = []
    for b in range(blocks):
        rows = w[4 * b : 4 * b + 4]
        parts.append(rows[:, :n4].reshape(4, n4 // 4, 4).transpose(1, 0, 2).ravel())
        parts.append(rows[:, n4:].ravel())
    parts.append(w[4 * blocks :].ravel())
    out = np.concatenate(parts).astype(np.int8)
    assert out.size == w.size
    return out


@dataclass
class _Lowered:
    decls: list[str] = field(default_factory=list)  # static const arrays and structs
    calls: list[str] = field(default_factory=list)  # statements in the invoke function


@dataclass(frozen=True)
class TensorIO:
    """The graph input or output as the generated C sees it."""

    shape: tuple[int, ...]
    dtype: str  # "int8" or "float32"
    scale: float | None
    zero_point: int | None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class NetFiles:
    """What :func:`write_c_network` wrote, and the figures of the generated network."""

    name: str
    c_path: Path
    h_path: Path
    arena_bytes: int
    ops: list[str]
    input: TensorIO
    output: TensorIO
    weights_bytes: int  # flash of the const data: weights, biases, multipliers, shifts, op parameter structs
    buffers: list[Buffer]
    offsets: dict[str, int]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output.shape

    @property
    def files(self) -> list[Path]:
        return [self.c_path, self.h_path]


_CTYPE = {"int8": "int8_t", "float32": "float", "int32": "int32_t"}
# sizeof() of tc_nn.h's parameter structs on a 32-bit MCU (int32_t fields, 4-byte pointers)
_BCAST = 4 * (1 + 3 * MAX_DIMS)
_REDUCE = 4 * (3 + 4 * MAX_DIMS)
_STRUCT_BYTES = {
    "tc_conv_s8_t": 4 * (22 + 5),
    "tc_dwconv_s8_t": 4 * (21 + 8),
    "tc_fc_s8_t": 4 * (9 + 5),
    "tc_add_s8_t": _BCAST + 4 * 14,
    "tc_mul_s8_t": _BCAST + 4 * 7,
    "tc_binary_f32_t": _BCAST + 4 * 4,
    "tc_reduce_t": _REDUCE,
    "tc_mean_s8_t": _REDUCE + 4 * 4,
    "tc_copy_t": 4 * (1 + 3 * MAX_DIMS + 2),
}


class _Gen:
    def __init__(self, graph: Graph, name: str):
        self.g = graph
        self.name = name
        self.t = graph.tensors
        self.out = _Lowered()
        self.const_bytes = 0
        self.alias: dict[int, int] = {}  # tensor -> the tensor whose storage it shares
        self.consts: dict[int, str] = {}  # constant tensor -> its C array
        self.acc_bound: np.ndarray = np.zeros(0, np.int64)  # |accumulator| bound per channel of the last conv
        self.interleaved: dict[int, str] = {}  # fully connected weight tensor -> its interleaved C array

    # ---- helpers
    def root(self, i: int) -> int:
        while i in self.alias:
            i = self.alias[i]
        return i

    def ref(self, i: int) -> str:
        """C expression of tensor i's data (a const array, the input, the output or an arena buffer)."""
        t = self.t[i]
        if t.data is not None:
            return self.const_array(t)
        r = self.root(i)
        if r == self.g.input:
            return "input"
        if i == self.g.output or r == self.g.output:
            return "output"
        return f"t{r}"

    def const_array(self, t: Tensor) -> str:
        if t.index in self.consts:  # a weight shared by two ops is written once
            return self.consts[t.index]
        ctype = _CTYPE.get(t.dtype)
        if ctype is None:
            raise NetgenError(f"constant tensor {t.name!r} of type {t.dtype} cannot be used in plain C")
        self.consts[t.index] = self.emit_array(f"{self.name}_c{t.index}", ctype, t.data)
        return self.consts[t.index]

    def emit_array(self, cname: str, ctype: str, arr: np.ndarray) -> str:
        arr = np.asarray(arr).ravel()
        if ctype == "float":
            body = "\n".join(
                "    " + ", ".join(c_float(v) for v in arr[i : i + 8].tolist()) + "," for i in range(0, len(arr), 8)
            )
            size = 4
        else:
            body = _ints(arr)
            size = {"int8_t": 1, "int32_t": 4}[ctype]
        self.const_bytes += _align(size * max(len(arr), 1))  # each array is 16-byte aligned
        self.out.decls.append(
            f"static const {ctype} TC_ALIGN16 {cname}[{max(len(arr), 1)}] = {{\n{body or '    0,'}\n}};"
        )
        return cname

    def struct(self, ctype: str, op: Operator, body: str) -> str:
        cname = f"{self.name}_op{op.index}"
        self.const_bytes += _STRUCT_BYTES[ctype]
        self.out.decls.append(f"static const {ctype} {cname} = {{\n{body}\n}};")
        return cname

    def rq_field(self, op: Operator, mults: Any, shifts: Any, bound: np.ndarray, per_channel: int) -> str:
        """``, .rq = <table>`` for tc_nn.c's ``requant_q``, or ``""`` where its bound does not hold.

        ``bound[c]`` bounds |acc| of output channel c over every input; the table is exact only
        where ``bound * 2^(left + 1) <= 2^30`` (see tc_nn.c), checked here for every channel. The
        table costs 24 B of flash per channel and saves a few instructions per output: written only
        where each channel has at least ``RQ_MIN_OUTPUTS`` outputs per invoke (``per_channel``).
        """
        if per_channel < RQ_MIN_OUTPUTS:
            return ""

        def s32(v: int) -> int:
            v &= 0xFFFFFFFF
            return v - (1 << 32) if v >= 1 << 31 else v

        rows = []
        for m, sh, b in zip(np.asarray(mults).tolist(), np.asarray(shifts).tolist(), np.asarray(bound).tolist()):
            left = max(int(sh), 0)
            if int(b) * (1 << (left + 1)) > 1 << 30:
                return ""
            if int(sh) >= 0:
                rows.append([int(m), left + 1, 0, 0, s32(1 << 31), 0])
            else:
                r = -int(sh)
                k = (1 << 30) + (1 << (30 + r))
                rows.append([int(m), 0, r - 1, s32(1 << 31), s32(k), s32(k >> 32)])
        name = self.emit_array(f"{self.name}_op{op.index}_rq", "int32_t", np.asarray(rows, np.int64))
        return f", .rq = {name}"

    def need(self, op: Operator, cond: bool, why: str) -> None:
        if not cond:
            raise NetgenError(f"op {op.index} {op.name}: {why}")

    def types(self, op: Operator) -> str:
        ins = ",".join(self.t[i].dtype for i in op.inputs if i >= 0 and self.t[i].data is None)
        outs = ",".join(self.t[i].dtype for i in op.outputs)
        return f"{ins} -> {outs}"

    def unsupported_types(self, op: Operator) -> NetgenError:
        return NetgenError(f"op {op.index} {op.name} with tensor types {self.types(op)} is not supported in plain C")

    # ---- ops
    def lower(self) -> None:
        for op in self.g.ops:
            if op.name not in SUPPORTED_OPS:
                raise NetgenError(
                    f"op {op.index} {op.name} is not supported in plain C (tinyclap.firmware.netgen supports "
                    f"{', '.join(SUPPORTED_OPS)}); export a student whose graph uses only these"
                )
            getattr(self, f"op_{op.name.lower()}")(op)

    def op_reshape(self, op: Operator) -> None:
        src, dst = op.inputs[0], op.outputs[0]
        self.need(op, self.t[src].nbytes == self.t[dst].nbytes, "input and output sizes differ")
        if dst == self.g.output or self.t[src].data is not None:
            self.out.calls.append(
                f"    memcpy({self.ref(dst)}, {self.ref(src)}, {self.t[dst].nbytes}u); /* op {op.index} RESHAPE */"
            )
        else:
            self.alias[dst] = src

    def _conv_common(self, op: Operator, depthwise: bool) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        x, w = self.t[op.inputs[0]], self.t[op.inputs[1]]
        b = self.t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        y = self.t[op.outputs[0]]
        if (x.dtype, w.dtype, y.dtype) != ("int8", "int8", "int8") or (b is not None and b.dtype != "int32"):
            raise self.unsupported_types(op)
        self.need(op, w.data is not None and (b is None or b.data is not None), "weights and bias must be constant")
        self.need(op, len(x.shape) == 4 and len(y.shape) == 4 and len(w.shape) == 4, "expects 4-D NHWC tensors")
        self.need(op, w.zero_points is None or not np.any(w.zero_points), "weights must be symmetric (zero point 0)")
        o = op.options
        n, ih, iw, ic = x.shape
        _, oh, ow, oc = y.shape
        kh, kw = (w.shape[1], w.shape[2])
        sh, sw = int(o.StrideH()), int(o.StrideW())
        dh, dw = int(o.DilationHFactor()), int(o.DilationWFactor())
        padding = int(o.Padding())  # 0 SAME, 1 VALID

        def out_size(i: int, k: int, s: int, d: int) -> int:
            ek = (k - 1) * d + 1
            return (i + s - 1) // s if padding == 0 else (i - ek + s) // s

        def pad(i: int, k: int, s: int, d: int, out: int) -> int:
            ek = (k - 1) * d + 1
            total = (out - 1) * s + ek - i
            return max(total, 0) // 2

        self.need(
            op,
            (out_size(ih, kh, sh, dh), out_size(iw, kw, sw, dw)) == (oh, ow),
            f"output {oh}x{ow} is not what the padding and strides give",
        )
        ph, pw = pad(ih, kh, sh, dh, oh), pad(iw, kw, sw, dw, ow)
        wscales = np.asarray(w.scales, np.float32)
        if len(wscales) == 1:
            wscales = np.repeat(wscales, oc)
        self.need(op, len(wscales) == oc, f"{len(wscales)} weight scales for {oc} output channels")
        mults, shifts = zip(*(quantize_multiplier(float(x.scale) * float(s) / float(y.scale)) for s in wscales))
        act_min, act_max = _act_range_q(int(o.FusedActivationFunction()), y.scale, y.zp, op.name)
        bias = np.zeros(oc, np.int64) if b is None else b.data.astype(np.int64).ravel()
        wdata = w.data.astype(np.int64)
        folded = ph == 0 and pw == 0
        if folded:  # every tap inside the image: fold in_offset * sum(w) into the bias
            per_oc = wdata.reshape(-1, oc).sum(axis=0) if depthwise else wdata.reshape(oc, -1).sum(axis=1)
            bias = bias + (-x.zp) * per_oc
            if bias.min(initial=0) < -(2**31) or bias.max(initial=0) > 2**31 - 1:
                folded, bias = False, (np.zeros(oc, np.int64) if b is None else b.data.astype(np.int64).ravel())
        p = dict(
            batches=n,
            in_h=ih,
            in_w=iw,
            in_c=ic,
            out_h=oh,
            out_w=ow,
            out_c=oc,
            k_h=kh,
            k_w=kw,
            stride_h=sh,
            stride_w=sw,
            dil_h=dh,
            dil_w=dw,
            pad_h=ph,
            pad_w=pw,
            in_offset=-x.zp,
            out_offset=y.zp,
            act_min=act_min,
            act_max=act_max,
            folded=int(folded),
        )
        has_bias = b is not None or folded
        raw = np.zeros(oc, np.int64) if b is None else b.data.astype(np.int64).ravel()
        wabs = np.abs(wdata).reshape(-1, oc).sum(axis=0) if depthwise else np.abs(wdata).reshape(oc, -1).sum(axis=1)
        # every kernel path's accumulator is exactly TFLM's, bias + sum w * (x - zp), |x - zp| <= 128 + |zp|
        self.acc_bound = np.abs(raw) + (128 + abs(x.zp)) * wabs
        return p, (bias if has_bias else None), np.asarray(mults), np.asarray(shifts)  # type: ignore[return-value]

    def _emit_conv(
        self,
        op: Operator,
        ctype: str,
        fn: str,
        p: dict[str, int],
        bias: Any,
        mults: np.ndarray,
        shifts: np.ndarray,
        weights: np.ndarray | None = None,
        extra: str = "",
    ) -> None:
        w = self.t[op.inputs[1]]
        wname = (
            self.const_array(w)
            if weights is None
            else self.emit_array(f"{self.name}_op{op.index}_w", "int8_t", weights)
        )
        bname = self.emit_array(f"{self.name}_op{op.index}_bias", "int32_t", bias) if bias is not None else "0"
        mname = self.emit_array(f"{self.name}_op{op.index}_mult", "int32_t", mults)
        sname = self.emit_array(f"{self.name}_op{op.index}_shift", "int32_t", shifts)
        fields = ", ".join(f".{k} = {_cint(v)}" for k, v in p.items())
        s = self.struct(
            ctype,
            op,
            f"    {fields},\n    .filter = {wname}, .bias = {bname}, .mult = {mname}, .shift = {sname}{extra}",
        )
        self.out.calls.append(
            f"    {fn}(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.outputs[0])}); /* op {op.index} {op.name} */"
        )

    def op_conv_2d(self, op: Operator) -> None:
        p, bias, m, s = self._conv_common(op, depthwise=False)
        w = self.t[op.inputs[1]]
        p["filter_in_c"] = int(w.shape[3])
        self.need(
            op,
            p["in_c"] % p["filter_in_c"] == 0 and p["out_c"] % (p["in_c"] // p["filter_in_c"]) == 0,
            "channels do not divide into groups",
        )
        pointwise = p["folded"] and p["k_h"] == 1 and p["k_w"] == 1 and p["filter_in_c"] == p["in_c"]
        p["interleaved"] = int(bool(pointwise) and p["out_c"] >= 4)
        weights = _interleave4(w.data.reshape(p["out_c"], p["in_c"])) if p["interleaved"] else None
        rq = self.rq_field(op, m, s, self.acc_bound, p["batches"] * p["out_h"] * p["out_w"])
        self._emit_conv(op, "tc_conv_s8_t", "tc_conv_s8", p, bias, m, s, weights, extra=rq)

    def op_depthwise_conv_2d(self, op: Operator) -> None:
        p, bias, m, s = self._conv_common(op, depthwise=True)
        w = self.t[op.inputs[1]]
        self.need(op, w.shape[0] == 1 and w.shape[3] == p["out_c"], "weights must be [1, kh, kw, out_c]")
        self.need(op, p["out_c"] % p["in_c"] == 0, "output channels must be a multiple of input channels")
        mult = p["out_c"] // p["in_c"]
        declared = int(op.options.DepthMultiplier())
        self.need(op, declared in (0, mult), f"depth_multiplier {declared} != out_c / in_c = {mult}")
        p["depth_mult"] = mult
        extra = ""
        pixels = p["batches"] * p["out_h"] * p["out_w"]
        if p["k_h"] == 1 and p["k_w"] == 1 and p["folded"] and bias is not None and pixels >= LUT_MIN_PIXELS and p["out_c"] <= 256:
            # 1x1 depthwise: each output is a function of one int8 input value, so the whole op is a
            # table of 256 int8 per output channel, computed here with the kernel's exact arithmetic
            # (bias + w * x, requantised, offset, clamped), in flash
            xs = np.arange(-128, 128, dtype=np.int64)
            wd = w.data.astype(np.int64).reshape(p["out_c"])
            lut = np.stack(
                [
                    np.clip(
                        _requant_np(int(bias[c]) + int(wd[c]) * xs, int(m[c]), int(s[c])) + p["out_offset"],
                        p["act_min"],
                        p["act_max"],
                    )
                    for c in range(p["out_c"])
                ]
            ).astype(np.int8)
            extra += f", .lut = {self.emit_array(f'{self.name}_op{op.index}_lut', 'int8_t', lut)}"
        if mult == 1 and p["k_h"] == 3 and p["k_w"] == 3:
            # interior pixels (every tap inside): in_offset * sum(w) folded into a second bias, and the
            # weights channel-major for tc_nn.c's unrolled 3x3 path (exact integer rewrites)
            wd = w.data.astype(np.int64).reshape(9, p["out_c"])
            b0 = self.t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            raw = np.zeros(p["out_c"], np.int64) if b0 is None else b0.data.astype(np.int64).ravel()
            inner = raw + p["in_offset"] * wd.sum(axis=0)
            if inner.min() >= -(2**31) and inner.max() <= 2**31 - 1:
                bi = self.emit_array(f"{self.name}_op{op.index}_bias_inner", "int32_t", inner)
                wc = self.emit_array(f"{self.name}_op{op.index}_w_cm", "int8_t", wd.T.astype(np.int8))
                extra = f", .bias_inner = {bi}, .filter_cm = {wc}"
        extra += self.rq_field(op, m, s, self.acc_bound, pixels)
        self._emit_conv(op, "tc_dwconv_s8_t", "tc_dwconv_s8", p, bias, m, s, extra=extra)

    def op_fully_connected(self, op: Operator) -> None:
        x, w = self.t[op.inputs[0]], self.t[op.inputs[1]]
        b = self.t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        y = self.t[op.outputs[0]]
        if (x.dtype, w.dtype, y.dtype) != ("int8", "int8", "int8") or (b is not None and b.dtype != "int32"):
            raise self.unsupported_types(op)
        self.need(op, w.data is not None and (b is None or b.data is not None), "weights and bias must be constant")
        self.need(op, int(op.options.WeightsFormat()) == 0, "only the DEFAULT weights format is supported")
        self.need(op, w.zero_points is None or not np.any(w.zero_points), "weights must be symmetric (zero point 0)")
        n_out, k = int(w.shape[0]), int(w.shape[1])
        self.need(op, x.size % k == 0 and y.size == x.size // k * n_out, "input/output sizes do not match the weights")
        wscales = np.asarray(w.scales, np.float32)
        if len(wscales) == 1:
            wscales = np.repeat(wscales, n_out)
        self.need(op, len(wscales) == n_out, f"{len(wscales)} weight scales for {n_out} outputs")
        mults, shifts = zip(*(quantize_multiplier(float(x.scale) * float(s) / float(y.scale)) for s in wscales))
        act_min, act_max = _act_range_q(int(op.options.FusedActivationFunction()), y.scale, y.zp, op.name)
        bias = np.zeros(n_out, np.int64) if b is None else b.data.astype(np.int64).ravel()
        folded_bias = bias + (-x.zp) * w.data.astype(np.int64).sum(axis=1)
        folded = bool(folded_bias.min() >= -(2**31) and folded_bias.max() <= 2**31 - 1)
        bias_out = folded_bias if folded else (bias if b is not None else None)
        interleaved = folded and n_out >= 4
        if not interleaved:
            wname = self.const_array(w)
        elif w.index in self.interleaved:  # a weight shared by two ops is written once
            wname = self.interleaved[w.index]
        else:
            wname = self.emit_array(f"{self.name}_op{op.index}_w", "int8_t", _interleave4(w.data.reshape(n_out, k)))
            self.interleaved[w.index] = wname
        bname = self.emit_array(f"{self.name}_op{op.index}_bias", "int32_t", bias_out) if bias_out is not None else "0"
        mname = self.emit_array(f"{self.name}_op{op.index}_mult", "int32_t", np.asarray(mults))
        sname = self.emit_array(f"{self.name}_op{op.index}_shift", "int32_t", np.asarray(shifts))
        p = dict(
            batches=x.size // k,
            in_k=k,
            out_n=n_out,
            in_offset=-x.zp,
            out_offset=y.zp,
            act_min=act_min,
            act_max=act_max,
            folded=int(folded),
            interleaved=int(interleaved),
        )
        fields = ", ".join(f".{kk} = {_cint(v)}" for kk, v in p.items())
        wabs = np.abs(w.data.astype(np.int64)).sum(axis=1)
        bound = np.abs(bias) + (128 + abs(x.zp)) * wabs  # |bias + sum w * (x - zp)|
        rq = self.rq_field(op, mults, shifts, bound, x.size // k)
        s = self.struct(
            "tc_fc_s8_t",
            op,
            f"    {fields},\n    .filter = {wname}, .bias = {bname}, .mult = {mname}, .shift = {sname}{rq}",
        )
        self.out.calls.append(
            f"    tc_fc_s8(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.outputs[0])}); "
            f"/* op {op.index} FULLY_CONNECTED */"
        )

    def bcast(self, op: Operator) -> str:
        a, b, y = (self.t[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if a.shape == b.shape == y.shape or (a.size == b.size == y.size):
            return f".b = {{1, {_dims_init([y.size])}, {_dims_init([1])}, {_dims_init([1])}}}"
        nd = len(y.shape)
        self.need(op, nd <= MAX_DIMS and len(a.shape) <= nd and len(b.shape) <= nd, "too many dimensions")

        def strides(shape: tuple[int, ...]) -> list[int]:
            full = [1] * (nd - len(shape)) + list(shape)
            st = _contig_strides(full)
            out = []
            for d in range(nd):
                if full[d] == y.shape[d]:
                    out.append(st[d])
                else:
                    self.need(op, full[d] == 1, f"shapes {a.shape} and {b.shape} do not broadcast to {y.shape}")
                    out.append(0)
            return out

        return f".b = {{{nd}, {_dims_init(y.shape)}, {_dims_init(strides(a.shape))}, {_dims_init(strides(b.shape))}}}"

    def _binary_f32(self, op: Operator, code: str, act: int | None) -> None:
        ins = [self.t[i] for i in op.inputs[:2]]
        y = self.t[op.outputs[0]]
        if any(t.dtype != "float32" for t in ins) or y.dtype != "float32":
            raise self.unsupported_types(op)
        if act is None:
            clamp, lo, hi = 0, 0.0, 0.0
        else:
            clamp, (lo, hi) = 1, _act_range_f(act, op.name)
        s = self.struct(
            "tc_binary_f32_t",
            op,
            f"    {self.bcast(op)},\n    .op = {code}, .clamp = {clamp}, "
            f".act_min = {c_float(lo)}, .act_max = {c_float(hi)}",
        )
        self.out.calls.append(
            f"    tc_binary_f32(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.inputs[1])}, "
            f"{self.ref(op.outputs[0])}); /* op {op.index} {op.name} */"
        )

    def op_add(self, op: Operator) -> None:
        a, b, y = (self.t[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        act = int(op.options.FusedActivationFunction()) if op.options is not None else 0
        if y.dtype == "float32":
            return self._binary_f32(op, "TC_F32_ADD", act)
        if (a.dtype, b.dtype, y.dtype) != ("int8", "int8", "int8"):
            raise self.unsupported_types(op)
        left_shift = 20
        twice_max = 2 * float(max(_f32(a.scale), _f32(b.scale)))
        m1, s1 = quantize_multiplier(float(a.scale) / twice_max)
        m2, s2 = quantize_multiplier(float(b.scale) / twice_max)
        mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(y.scale)))
        for s in (s1, s2, so):
            self.need(op, s <= 0, "an ADD multiplier is not smaller than one")
        lo, hi = _act_range_q(act, y.scale, y.zp, op.name)
        luts = ""
        if y.size > 256 and a.size == b.size == y.size:
            # each input's rescaling is a function of one int8 value: two 256-entry int32 tables (flash)
            # computed with the kernel's exact arithmetic replace two of the three requantisations
            vs = np.arange(-128, 128, dtype=np.int64)
            t1 = _requant_np((vs - a.zp) << left_shift, m1, s1)
            t2 = _requant_np((vs - b.zp) << left_shift, m2, s2)
            n1 = self.emit_array(f"{self.name}_op{op.index}_lut1", "int32_t", t1)
            n2 = self.emit_array(f"{self.name}_op{op.index}_lut2", "int32_t", t2)
            luts = f", .lut1 = {n1}, .lut2 = {n2}"
        s = self.struct(
            "tc_add_s8_t",
            op,
            f"    {self.bcast(op)},\n    .in1_offset = {-a.zp}, .in2_offset = {-b.zp}, "
            f".left_shift = {left_shift}, .in1_mult = {m1}, .in1_shift = {s1}, .in2_mult = {m2}, "
            f".in2_shift = {s2}, .out_mult = {mo}, .out_shift = {so}, .out_offset = {y.zp}, "
            f".act_min = {lo}, .act_max = {hi}{luts}",
        )
        self.out.calls.append(
            f"    tc_add_s8(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.inputs[1])}, "
            f"{self.ref(op.outputs[0])}); /* op {op.index} ADD */"
        )

    def op_mul(self, op: Operator) -> None:
        a, b, y = (self.t[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        act = int(op.options.FusedActivationFunction()) if op.options is not None else 0
        if y.dtype == "float32":
            return self._binary_f32(op, "TC_F32_MUL", act)
        if (a.dtype, b.dtype, y.dtype) != ("int8", "int8", "int8"):
            raise self.unsupported_types(op)
        m, sh = quantize_multiplier(float(a.scale) * float(b.scale) / float(y.scale))
        lo, hi = _act_range_q(act, y.scale, y.zp, op.name)
        s = self.struct(
            "tc_mul_s8_t",
            op,
            f"    {self.bcast(op)},\n    .in1_offset = {-a.zp}, .in2_offset = {-b.zp}, "
            f".out_mult = {m}, .out_shift = {sh}, .out_offset = {y.zp}, .act_min = {lo}, .act_max = {hi}",
        )
        self.out.calls.append(
            f"    tc_mul_s8(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.inputs[1])}, "
            f"{self.ref(op.outputs[0])}); /* op {op.index} MUL */"
        )

    def op_sub(self, op: Operator) -> None:
        act = int(op.options.FusedActivationFunction()) if op.options is not None else 0
        self._binary_f32(op, "TC_F32_SUB", act)

    def op_squared_difference(self, op: Operator) -> None:
        self._binary_f32(op, "TC_F32_SQDIFF", None)

    def _reduce(self, op: Operator) -> tuple[str, Tensor, Tensor, int]:
        x, axes_t, y = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        self.need(op, axes_t.data is not None, "the reduction axes must be constant")
        nd = len(x.shape)
        self.need(op, 1 <= nd <= MAX_DIMS, "too many dimensions")
        axes = sorted({int(a) + nd if int(a) < 0 else int(a) for a in np.asarray(axes_t.data).ravel()})
        self.need(op, all(0 <= a < nd for a in axes), f"axes {axes_t.data.tolist()} out of range")
        st = _contig_strides(x.shape)
        keep = [d for d in range(nd) if d not in axes] or []
        count = int(np.prod([x.shape[d] for d in axes])) if axes else 1
        self.need(op, y.size == x.size // max(count, 1), "output size does not match the reduction")
        body = (
            f".n_out = {len(keep)}, .out_dims = {_dims_init([x.shape[d] for d in keep])}, "
            f".out_strides = {_dims_init([st[d] for d in keep])},\n    .n_red = {len(axes)}, "
            f".red_dims = {_dims_init([x.shape[d] for d in axes])}, "
            f".red_strides = {_dims_init([st[d] for d in axes])}, "
            f".count = {count}"
        )
        return body, x, y, count

    def op_mean(self, op: Operator) -> None:
        body, x, y, count = self._reduce(op)
        if (x.dtype, y.dtype) == ("float32", "float32"):
            s = self.struct("tc_reduce_t", op, f"    {body}")
            self.out.calls.append(
                f"    tc_mean_f32(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.outputs[0])}); /* op {op.index} MEAN */"
            )
            return
        if (x.dtype, y.dtype) != ("int8", "int8"):
            raise self.unsupported_types(op)
        mult, shift = quantize_multiplier(float(x.scale) / float(y.scale))
        if count > 0:  # TFLM QuantizedMeanOrSum: fold 1/count into the multiplier
            sh = min(count.bit_length() - 1, 32, 31 + shift)
            mult = int((mult << sh) // count)
            shift -= sh
        s = self.struct(
            "tc_mean_s8_t",
            op,
            f"    .r = {{{body}}},\n    .in_zp = {x.zp}, .mult = {mult}, " f".shift = {shift}, .out_zp = {y.zp}",
        )
        self.out.calls.append(
            f"    tc_mean_s8(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.outputs[0])}); /* op {op.index} MEAN */"
        )

    def op_sum(self, op: Operator) -> None:
        body, x, y, _ = self._reduce(op)
        if (x.dtype, y.dtype) != ("float32", "float32"):
            raise self.unsupported_types(op)
        s = self.struct("tc_reduce_t", op, f"    {body}")
        self.out.calls.append(
            f"    tc_sum_f32(&{s}, {self.ref(op.inputs[0])}, {self.ref(op.outputs[0])}); /* op {op.index} SUM */"
        )

    def _copy(self, op: Operator, x: Tensor, y: Tensor, body: str, pad_value: str) -> None:
        s = self.struct("tc_copy_t", op, f"    {body}")
        fn = {"int8": "tc_copy_s8", "float32": "tc_copy_f32"}.get(x.dtype)
        if fn is None or y.dtype != x.dtype:
            raise self.unsupported_types(op)
        self.out.calls.append(
            f"    {fn}(&{s}, {pad_value}, {self.ref(op.inputs[0])}, {self.ref(op.outputs[0])}); "
            f"/* op {op.index} {op.name} */"
        )

    def op_pad(self, op: Operator) -> None:
        x, pads_t, y = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        self.need(op, pads_t.data is not None, "the paddings must be constant")
        pads = np.asarray(pads_t.data).reshape(-1, 2)
        nd = len(x.shape)
        self.need(op, len(pads) == nd and nd <= MAX_DIMS, "paddings do not match the input rank")
        self.need(op, bool((pads >= 0).all()), "negative paddings are not supported")
        self.need(op, tuple(int(x.shape[d] + pads[d].sum()) for d in range(nd)) == y.shape, "output shape mismatch")
        ost = _contig_strides(y.shape)
        base = int(sum(int(pads[d, 0]) * ost[d] for d in range(nd)))
        body = (
            f".ndim = {nd}, .dims = {_dims_init(x.shape)}, .src_strides = {_dims_init(_contig_strides(x.shape))}, "
            f".dst_strides = {_dims_init(ost)}, .dst_base = {base}, .fill_count = {y.size}"
        )
        if x.dtype == "int8":
            self.need(
                op, x.zp == y.zp and np.float32(x.scale) == np.float32(y.scale), "input and output quantisation differ"
            )
            pad_value = f"(int8_t){y.zp}"
        else:
            pad_value = "0.0f"
        self._copy(op, x, y, body, pad_value)

    def op_transpose(self, op: Operator) -> None:
        x, perm_t, y = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        self.need(op, perm_t.data is not None, "the permutation must be constant")
        perm = [int(p) for p in np.asarray(perm_t.data).ravel()]
        nd = len(x.shape)
        self.need(op, sorted(perm) == list(range(nd)) and nd <= MAX_DIMS, f"bad permutation {perm}")
        self.need(op, tuple(x.shape[p] for p in perm) == y.shape, "output shape mismatch")
        ist = _contig_strides(x.shape)
        body = (
            f".ndim = {nd}, .dims = {_dims_init(y.shape)}, .src_strides = {_dims_init([ist[p] for p in perm])}, "
            f".dst_strides = {_dims_init(_contig_strides(y.shape))}, .dst_base = 0, .fill_count = 0"
        )
        self._copy(op, x, y, body, "0" if x.dtype == "int8" else "0.0f")

    def _elementwise(self, op: Operator, types: tuple[str, str], kernel: str, *params: str) -> None:
        """One call ``kernel(size, params..., in, out)`` for an op mapping each element on its own."""
        x, y = self.t[op.inputs[0]], self.t[op.outputs[0]]
        if (x.dtype, y.dtype) != types:
            raise self.unsupported_types(op)
        args = ", ".join([str(y.size), *params, self.ref(op.inputs[0]), self.ref(op.outputs[0])])
        self.out.calls.append(f"    {kernel}({args}); /* op {op.index} {op.name} */")

    def op_quantize(self, op: Operator) -> None:
        y = self.t[op.outputs[0]]
        self._elementwise(op, ("float32", "int8"), "tc_quantize_f32_s8", c_float(y.scale), str(y.zp))

    def op_dequantize(self, op: Operator) -> None:
        x = self.t[op.inputs[0]]
        self._elementwise(op, ("int8", "float32"), "tc_dequantize_s8_f32", c_float(x.scale), str(x.zp))

    def op_rsqrt(self, op: Operator) -> None:
        self._elementwise(op, ("float32", "float32"), "tc_rsqrt_f32")

    # ---- memory plan
    def buffers(self) -> list[Buffer]:
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for op in self.g.ops:
            for i in op.outputs:
                r = self.root(i)
                first.setdefault(r, op.index)
                last[r] = max(last.get(r, op.index), op.index)
            for i in op.inputs:
                if i < 0 or self.t[i].data is not None:
                    continue
                r = self.root(i)
                last[r] = max(last.get(r, op.index), op.index)
        external = {self.root(self.g.input), self.g.output}
        out = []
        for r in sorted(first):
            if r in external:
                continue
            if self.t[r].dtype not in ("int8", "float32"):
                raise NetgenError(f"activation tensor {self.t[r].name!r} has type {self.t[r].dtype}: not supported")
            out.append(Buffer(f"t{r}", self.t[r].nbytes, first[r], last[r]))
        return out


def _io(t: Tensor) -> TensorIO:
    if t.dtype not in ("int8", "float32"):
        raise NetgenError(f"graph I/O tensor {t.name!r} has type {t.dtype}; plain C supports int8 and float32")
    if t.dtype == "int8":
        return TensorIO(tuple(t.shape), t.dtype, float(t.scale), t.zp)
    return TensorIO(tuple(t.shape), t.dtype, None, None)


def write_c_network(tflite: bytes | str | Path, out_dir: str | Path, name: str) -> NetFiles:
    """Write ``out_dir/<name>_net.c`` and ``<name>_net.h`` for the int8 ``.tflite`` (bytes or path).

    ``name`` is a C identifier (``features``, ``head``, ``embed``): the function is
    ``tc_net_<name>_invoke`` and the defines ``TC_NET_<NAME>_*``. Raises
    :class:`NetgenError` for an op or tensor type the kernels do not implement.
    """
    try:
        c_identifier(name)
    except TinyClapError as err:
        raise NetgenError(f"network name: {err}") from None
    graph = read_tflite(tflite)
    gen = _Gen(graph, name)
    gen.lower()
    buffers = gen.buffers()
    offsets, arena = plan_arena(buffers)
    tin, tout = _io(graph.tensors[graph.input]), _io(graph.tensors[graph.output])
    up = name.upper()
    in_ct, out_ct = _CTYPE[tin.dtype], _CTYPE[tout.dtype]
    proto = f"int tc_net_{name}_invoke(uint8_t *arena, const {in_ct} *input, {out_ct} *output)"
    ops = [op.name for op in graph.ops]
    out_dir = Path(out_dir)

    def q_defines(prefix: str, io: TensorIO) -> list[str]:
        if io.scale is None:
            return [f"/* {prefix.lower()} is float32 (no quantisation) */"]
        return [
            f"#define TC_NET_{up}_{prefix}_SCALE {c_float(io.scale)}",
            f"#define TC_NET_{up}_{prefix}_ZERO_POINT ({io.zero_point})",
        ]

    guard = f"TC_NET_{up}_NET_H"
    header = "\n".join(
        [
            f"/* Generated by tinyclap.firmware.netgen: the {name} network in plain C (kernels: tc_nn.c).",
            "   Do not edit: regenerate instead. */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "#include <stdint.h>",
            "",
            "#ifdef __cplusplus",
            'extern "C" {',
            "#endif",
            "",
            f"/* Activation arena: {len(buffers)} buffers planned by lifetime (greedy by size, first fit),",
            "   16-byte aligned. The graph's input and output are the caller's buffers, not in the arena. */",
            f"#define TC_NET_{up}_ARENA_BYTES {arena}u",
            f"#define TC_NET_{up}_ARENA_ALIGN 16u",
            f"#define TC_NET_{up}_OPS {len(ops)}u",
            f"#define TC_NET_{up}_INPUT_SIZE {tin.size}u /* {tin.dtype} {list(tin.shape)} */",
            f"#define TC_NET_{up}_OUTPUT_SIZE {tout.size}u /* {tout.dtype} {list(tout.shape)} */",
            f"#define TC_NET_{up}_INPUT_IS_FLOAT {int(tin.dtype == 'float32')}",
            f"#define TC_NET_{up}_OUTPUT_IS_FLOAT {int(tout.dtype == 'float32')}",
            *q_defines("INPUT", tin),
            *q_defines("OUTPUT", tout),
            "",
            f"/* Run the network once: input -> output. arena: TC_NET_{up}_ARENA_BYTES bytes, 16-byte aligned,",
            "   owned by the caller (its contents need not survive between calls). Returns 0, or -1 if arena",
            "   is not 16-byte aligned. */",
            f"{proto};",
            "",
            "#ifdef __cplusplus",
            "}",
            "#endif",
            "",
            f"#endif /* {guard} */",
            "",
        ]
    )
    arena_decls = []
    for b in buffers:
        t = graph.tensors[int(b.name[1:])]
        ct = _CTYPE[t.dtype]
        if ct == "int8_t":
            arena_decls.append(
                f"    int8_t *const {b.name} = (int8_t *)(arena + {offsets[b.name]}u);"
                f" /* {b.size} B, ops {b.first}..{b.last} */"
            )
        else:
            arena_decls.append(
                f"    float *const {b.name} = (float *)(void *)(arena + {offsets[b.name]}u);"
                f" /* {b.size} B, ops {b.first}..{b.last} */"
            )
    calls = []
    for line in gen.out.calls:
        calls.append(line)
        done = re.search(r"/\* op (\d+) ", line)
        if done:
            calls.append(f"    TC_NET_OP_DONE({done.group(1)});")
    source = "\n".join(
        [
            f"/* Generated by tinyclap.firmware.netgen from a {len(ops)}-op .tflite: the {name} network in plain C99.",
            "   Kernels: tc_nn.c (TFLM reference semantics, bit-exact). Constants live in flash (const).",
            "   Do not edit: regenerate instead. */",
            f'#include "{name}_net.h"',
            "",
            "#include <stdint.h>",
            "#include <string.h>",
            "",
            '#include "tc_nn.h"',
            "",
            "/* -DTC_NET_PROFILE: the application's tc_net_profile(op) runs after every op (timing per op). */",
            "#ifdef TC_NET_PROFILE",
            "void tc_net_profile(int op);",
            "#define TC_NET_OP_DONE(op) tc_net_profile(op)",
            "#else",
            "#define TC_NET_OP_DONE(op) ((void)0)",
            "#endif",
            "",
            *gen.out.decls,
            "",
            proto,
            "{",
            *arena_decls,
            "    if (((uintptr_t)arena & 15u) != 0u) {",
            "        return -1;",
            "    }",
            *calls,
            *([] if buffers else ["    (void)arena;"]),
            "    return 0;",
            "}",
            "",
        ]
    )
    c_path, h_path = out_dir / f"{name}_net.c", out_dir / f"{name}_net.h"
    for path, text in ((h_path, header), (c_path, source)):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return NetFiles(name, c_path, h_path, arena, ops, tin, tout, gen.const_bytes, buffers, offsets)
