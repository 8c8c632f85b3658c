"""The built-in default: the whole pipeline end to end on the procedural corpus."""

from __future__ import annotations

from typing import Any

from tinyclap.quickstart.options import QuickstartOptions

__all__ = ["QuickstartOptions", "run_quickstart"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): the pipeline imports torch, and `tinyclap quickstart --help` needs only the options.
    if name == "run_quickstart":
        from tinyclap.quickstart.pipeline import run_quickstart

        return run_quickstart
    raise AttributeError(f"module 'tinyclap.quickstart' has no attribute {name!r}")
