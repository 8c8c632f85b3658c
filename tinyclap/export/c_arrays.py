"""Render numbers, bytes and strings as C99 source text, exactly.

Every literal written here reads back to the same bits: float32 values are
printed as the shortest decimal that round-trips *as a float32* (with an ``f``
suffix, so the compiler rounds the decimal straight to float, never through
double), float64 as the shortest decimal that round-trips as a double, and
strings as ASCII with octal escapes for everything else (octal escapes stop
after three digits, unlike ``\\x`` escapes, and ``?`` is escaped because
``-std=c99`` turns on trigraphs).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

from tinyclap.errors import TinyClapError

__all__ = [
    "CodegenError",
    "c_identifier",
    "c_string",
    "c_float",
    "c_double",
    "format_values",
    "format_bytes",
    "format_floats",
    "format_ints",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CodegenError(TinyClapError, ValueError):
    """Input that cannot be turned into valid C (bad name, wrong shape, out-of-range value)."""


def c_identifier(name: str) -> str:
    """Return ``name`` if it is a valid C identifier, else raise :class:`CodegenError`."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise CodegenError(f"{name!r} is not a valid C identifier")
    return name


def c_string(text: str) -> str:
    """A C string literal holding ``text`` as UTF-8, portable to any C99 compiler."""
    out = ['"']
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "?":
            out.append("\\?")  # "??=" etc. are trigraphs under -std=c99
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def _finite(value: float) -> None:
    if not np.isfinite(value):
        raise CodegenError(f"cannot write non-finite value {value!r} as a C literal")


def c_float(value: float) -> str:
    """A float32 literal (``1.5f``) that the compiler reads back to exactly ``np.float32(value)``."""
    v = np.float32(value)
    _finite(float(v))
    text = np.format_float_scientific(v, unique=True, trim="0", exp_digits=2)
    return f"{text}f"


def c_double(value: float) -> str:
    """A double literal that reads back to exactly ``np.float64(value)``."""
    v = np.float64(value)
    _finite(float(v))
    return np.format_float_scientific(v, unique=True, trim="0", exp_digits=2)


def format_values(items: Sequence[str], per_line: int = 8, indent: str = "    ") -> str:
    """Comma-separated literals, ``per_line`` to a line (the body of a C initialiser)."""
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + ", ".join(items[i : i + per_line]) + ",")
    return "\n".join(lines)


def format_bytes(data: bytes, per_line: int = 16) -> str:
    """Initialiser body for an ``unsigned char`` array holding ``data``."""
    return format_values([f"0x{b:02x}" for b in data], per_line)


def format_floats(values: Iterable[float], dtype: type = np.float32, per_line: int = 6) -> str:
    """Initialiser body for a float (``np.float32``) or double (``np.float64``) array."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if dtype is np.float32:
        items = [c_float(v) for v in arr.astype(np.float32).ravel()]
    elif dtype is np.float64:
        items = [c_double(v) for v in arr.astype(np.float64).ravel()]
    else:
        raise CodegenError(f"format_floats: dtype must be float32 or float64, got {dtype}")
    return format_values(items, per_line)


def format_ints(values: Iterable[int], lo: int, hi: int, per_line: int = 16) -> str:
    """Initialiser body for an integer array, checking every value lies in [lo, hi]."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values).ravel()
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise CodegenError(f"integer values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
    # INT32_MIN cannot be written as a plain literal in C; we never need it.
    return format_values([str(int(v)) for v in arr], per_line)
