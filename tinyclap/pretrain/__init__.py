"""Train your own CLAP teacher (``tinyclap pretrain``): see docs/pretrain.md.

- :func:`pretrain` (train.py): the loop, checkpoints and exact resume;
- :class:`PretrainConfig`, :func:`load_recipe` (config.py): settings and YAML recipes;
- :class:`LocalClap` (model.py): audio tower + text tower + projections + temperature;
- :class:`TextTower` (text.py): a local transformers encoder, mean-pooled (default: packaged MiniLM);
- :func:`clap_loss` (loss.py): symmetric InfoNCE.

The trained teacher loads with ``tinyclap.load_teacher("local:OUT")``
(:mod:`tinyclap.teachers.local`). Names are imported lazily so importing one
submodule does not pull in the others.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["pretrain", "PretrainResult", "PretrainConfig", "load_recipe", "LocalClap", "TextTower", "clap_loss"]

_WHERE = {
    "pretrain": "train",
    "PretrainResult": "train",
    "PretrainConfig": "config",
    "load_recipe": "config",
    "LocalClap": "model",
    "TextTower": "text",
    "clap_loss": "loss",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"tinyclap.pretrain.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tinyclap.pretrain' has no attribute {name!r}")
