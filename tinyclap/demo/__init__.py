"""The Gradio demo (``tinyclap demo``): classify uploaded or recorded audio with a student and/or a teacher.

- :mod:`tinyclap.demo.inference`: :class:`DemoModels` (what is served, rankings, agreement, latency), no Gradio;
- :mod:`tinyclap.demo.resolve`: :func:`load_demo_models` (explicit paths or a ``runs/quickstart`` folder);
- :mod:`tinyclap.demo.plots`: the waveform + log-mel picture;
- :mod:`tinyclap.demo.app`: :func:`build_app` / :func:`launch` (imports gradio).

Names are imported lazily so ``import tinyclap.demo`` needs neither torch nor gradio.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DemoModels", "load_demo_models", "build_app", "launch"]

_WHERE = {
    "DemoModels": "tinyclap.demo.inference",
    "load_demo_models": "tinyclap.demo.resolve",
    "build_app": "tinyclap.demo.app",
    "launch": "tinyclap.demo.app",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tinyclap.demo' has no attribute {name!r}")
