"""Training recipes: YAML presets (stage1, stage2, quick) → a validated :class:`DistillConfig`.

Presets live in ``tinyclap/configs/recipes/distill_<name>.yaml``; a path to any
YAML file works too. Overrides are applied on top, with dotted keys for nested
values (``{"scheduler.patience": 5, "augment.enabled": True}``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from tinyclap.errors import TinyClapError

from tinyclap.distill.augment import AugmentConfig

__all__ = ["DistillConfig", "SchedulerConfig", "PresetError", "load_preset", "make_config", "PRESETS", "RESUMABLE_KEYS"]

RECIPES = Path(__file__).resolve().parent.parent / "configs" / "recipes"
PRESETS = ("stage1", "stage2", "quick")

# Keys that may change between a run and its resume without changing the result.
RESUMABLE_KEYS = frozenset(
    {"epochs", "num_workers", "device", "save_every_steps", "progress", "val_batch_size", "channels_last"}
)


class PresetError(TinyClapError, ValueError):
    """An unknown preset, an unreadable recipe file, or an invalid value in one."""


@dataclass(frozen=True)
class SchedulerConfig:
    """Learning-rate schedule: ReduceLROnPlateau (reference), cosine, or none."""

    name: str = "plateau"
    factor: float = 0.1
    patience: int = 10
    min_lr: float = 0.0


@dataclass(frozen=True)
class DistillConfig:
    """Every knob of a distillation run (see ``configs/recipes/distill_stage1.yaml``)."""

    stage: int = 1
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.012
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    val_split: float = 0.1
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_workers: int = 0
    device: str = "auto"
    save_every_steps: int = 0  # also save the training state every N steps (0: at epoch ends only)
    sync_batchnorm: bool = True  # under DDP, normalise with global-batch statistics
    precompute_features: str = "auto"  # stage 2: "auto" (when not augmenting), "yes", "no"
    channels_last: str = "auto"  # channels-last conv weights: "auto" (CPU, one process), "yes", "no"
    val_batch_size: int | None = None
    progress: bool = True
    # Streaming ("distil with the same windowing"): also embed each clip as back-to-back windows of about
    # this many seconds (features per window, mean, head: what the device runs), target the clip's teacher
    # embedding. None: whole clips only. The loss is (1 - stream_weight) * whole + stream_weight * streamed,
    # plus stream_consistency * (1 - cos(streamed, whole clip)) with the whole clip as a fixed target: the
    # streaming contract trained directly (it needs both paths, so stream_weight < 1).
    stream_window: float | None = None
    stream_weight: float = 0.5
    stream_consistency: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.stage in (1, 2), f"stage must be 1 or 2, got {self.stage!r}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.optimizer in ("adam", "adamw", "sgd"), f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}"),
            (0.0 <= self.val_split < 1.0, f"val_split must be in [0, 1), got {self.val_split}"),
            (self.scheduler.name in ("plateau", "cosine", "none"), f"scheduler.name must be plateau, cosine or none, got {self.scheduler.name!r}"),
            (self.precompute_features in ("auto", "yes", "no"), f"precompute_features must be auto, yes or no, got {self.precompute_features!r}"),
            (self.channels_last in ("auto", "yes", "no"), f"channels_last must be auto, yes or no, got {self.channels_last!r}"),
            (self.save_every_steps >= 0, f"save_every_steps must be >= 0, got {self.save_every_steps}"),
            (self.stream_window is None or self.stream_window > 0,
             f"stream_window must be a positive number of seconds or null, got {self.stream_window!r}"),
            (0.0 <= self.stream_weight <= 1.0, f"stream_weight must be in [0, 1], got {self.stream_weight}"),
            (self.stream_consistency >= 0.0, f"stream_consistency must be >= 0, got {self.stream_consistency}"),
            (self.stream_consistency == 0.0 or (self.stream_window is not None and self.stream_weight < 1.0),
             "stream_consistency compares the streamed and the whole-clip embedding: it needs stream_window "
             f"and stream_weight < 1 (got stream_window={self.stream_window!r}, stream_weight={self.stream_weight})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise PresetError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DistillConfig":
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PresetError(f"unknown settings {sorted(unknown)}; known: {sorted(known)}")
        try:
            if "scheduler" in d:
                d["scheduler"] = _dataclass_from(SchedulerConfig, d["scheduler"], "scheduler")
            if "augment" in d:
                d["augment"] = AugmentConfig.from_dict(d["augment"])
            ints = ("stage", "epochs", "batch_size", "seed", "num_workers", "save_every_steps")
            for key in ints:
                if key in d:
                    d[key] = _cast(key, d[key], int)
            for key in ("lr", "weight_decay", "val_split", "stream_weight", "stream_consistency"):
                if key in d:
                    d[key] = _cast(key, d[key], float)
            for key, kind in (("stream_window", float), ("grad_clip", float), ("val_batch_size", int)):
                if d.get(key) is not None:
                    d[key] = _cast(key, d[key], kind)
        except (TypeError, ValueError) as err:
            if isinstance(err, PresetError):
                raise
            raise PresetError(str(err)) from None
        return cls(**d)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "DistillConfig":
        """A copy with (possibly dotted) keys replaced; None values are ignored."""
        d = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            _set_dotted(d, key, value)
        return DistillConfig.from_dict(d)


def _cast(key: str, value: Any, kind: type) -> Any:
    """``int(value)`` / ``float(value)`` with an error naming the setting (not 'invalid literal for int()')."""
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise PresetError(f"setting {key}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise PresetError(f"setting {key}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def _dataclass_from(cls: type, d: Any, what: str) -> Any:
    if isinstance(d, cls):
        return d
    if not isinstance(d, Mapping):
        raise PresetError(f"{what} must be a mapping, got {d!r}")
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise PresetError(f"{what}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    obj = cls(**d)
    defaults = cls()
    return replace(obj, **{f.name: _cast(f"{what}.{f.name}", getattr(obj, f.name), type(getattr(defaults, f.name)))
                           if isinstance(getattr(defaults, f.name), (int, float)) and not isinstance(getattr(defaults, f.name), bool)
                           else type(getattr(defaults, f.name))(getattr(obj, f.name)) for f in fields(cls)})


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise PresetError(f"unknown setting {key!r}: {p!r} is not a group")
        node = node[p]
    if parts[-1] not in node:
        raise PresetError(f"unknown setting {key!r}; known at that level: {sorted(node)}")
    node[parts[-1]] = value


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """The raw settings of preset ``stage1``/``stage2``/``quick`` or of a YAML file."""
    path = Path(name_or_path)
    if str(name_or_path) in PRESETS:
        path = RECIPES / f"distill_{name_or_path}.yaml"
    elif not path.is_file():
        raise PresetError(f"unknown preset {str(name_or_path)!r}: use one of {', '.join(PRESETS)} or a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PresetError(f"{path}: unreadable recipe ({err})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: a recipe must be a YAML mapping")
    return data


def make_config(preset: str | Path | None = "stage1", **overrides: Any) -> DistillConfig:
    """Preset (default ``stage1``) plus overrides; dotted keys reach nested settings.

    >>> make_config("stage2", epochs=3, **{"augment.enabled": True}).epochs
    3
    """
    try:
        base = DistillConfig.from_dict(load_preset(preset)) if preset is not None else DistillConfig()
    except PresetError as err:
        if preset is not None and str(preset) not in PRESETS and str(preset) not in str(err):
            raise PresetError(f"{preset}: {err}") from None  # name the recipe file
        raise
    return base.with_overrides(overrides)
