"""The tinyCLAP student: log-mel → BatchNorm over mel bins → PhiNet → 1x1 conv /2 →
mean pool → Projection → L2 norm.

``AudioStudent.from_name("phinet_alpha_1.50_beta_0.75_t0_6_N_7")`` builds the
reference student (4,434,547 parameters, as in the tinyCLAP paper). The forward
pass is split in two for streaming: :meth:`AudioStudent.features` (everything up
to and including the mean pool) and :meth:`AudioStudent.head` (projection + L2
norm), so windows can be pooled before the head.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tinyclap.audio import AudioConfig, LogMel
from tinyclap.errors import CheckpointError, TinyClapError
from tinyclap.students.phinet import Add, Device, PhiNet
from tinyclap.teachers.base import as_batch

__all__ = [
    "StudentConfig",
    "StudentConfigError",
    "AudioStudent",
    "Projection",
    "GlobalMeanPool",
    "L2Normalize",
    "list_presets",
    "load_preset",
    "save_preset",
    "resolve_config",
    "convert_reference_state_dict",
    "load_reference_checkpoint",
]

HeadAct = Literal["gelu", "relu"]


class StudentConfigError(TinyClapError, ValueError):
    """A student name, preset or configuration that does not describe a valid student."""


@dataclass(frozen=True)
class StudentConfig:
    """Everything that sets the student's architecture (frozen, hashable: profiles cache on it).

    ``alpha``/``beta``/``t0``/``num_layers`` shape the PhiNet backbone,
    ``embed_width`` is the 1x1 conv's width (the pooled feature size), ``dim``
    the shared embedding size the head outputs (1024 for MS-CLAP), ``head_act``
    the projection's activation (``"gelu"`` as MS-CLAP; ``"relu"`` for
    TFLite Micro, which has no GELU kernel).
    """

    alpha: float
    beta: float
    t0: float
    num_layers: int
    embed_width: int = 2048
    dim: int = 1024
    head_act: HeadAct = "gelu"
    compatibility: bool = True
    downsampling_layers: tuple[int, ...] = (5, 7)
    block_dropout: float = 0.05
    proj_dropout: float = 0.5
    # PyTorch meaning: weight of the new batch in the running statistics (see phinet.py).
    bn_momentum: float = 0.1
    divisor: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "downsampling_layers", tuple(int(b) for b in self.downsampling_layers))
        if isinstance(self.num_layers, float) and self.num_layers.is_integer():
            object.__setattr__(self, "num_layers", int(self.num_layers))
        checks = [
            (self.alpha > 0, "alpha must be > 0"),
            (self.beta > 0, "beta must be > 0"),
            (self.t0 > 0, "t0 must be > 0"),
            (isinstance(self.num_layers, int) and self.num_layers >= 3, "num_layers (N) must be an integer >= 3"),
            (self.embed_width >= 1, "embed_width must be >= 1"),
            (self.dim >= 1, "dim must be >= 1"),
            (self.head_act in ("gelu", "relu"), "head_act must be 'gelu' or 'relu'"),
            (0 <= self.block_dropout < 1 and 0 <= self.proj_dropout < 1, "dropouts must be in [0, 1)"),
            (0 <= self.bn_momentum <= 1, "bn_momentum must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise StudentConfigError(f"{message}: {self!r}")

    @property
    def name(self) -> str:
        """The tinyCLAP reference code's name, e.g. ``phinet_alpha_1.50_beta_0.75_t0_6_N_7``."""
        return f"phinet_alpha_{_fmt(self.alpha, 2)}_beta_{_fmt(self.beta, 2)}_t0_{_fmt(self.t0, 0)}_N_{self.num_layers}"

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "StudentConfig":
        """Parse a reference-style name (``phinet_alpha_A_beta_B_t0_T_N_N``); keyword overrides win."""
        tokens = name.strip().split("_")
        if not tokens or tokens[0].lower() != "phinet" or len(tokens) % 2 != 1:
            raise StudentConfigError(
                f"{name!r}: not a student name; expected e.g. 'phinet_alpha_1.50_beta_0.75_t0_6_N_7' "
                f"or a preset ({', '.join(list_presets())})"
            )
        keys = {"alpha": "alpha", "beta": "beta", "t0": "t0", "N": "num_layers"}
        values: dict[str, Any] = {}
        for key, value in zip(tokens[1::2], tokens[2::2]):
            if key not in keys:
                raise StudentConfigError(f"{name!r}: unknown field {key!r} (known: alpha, beta, t0, N)")
            try:
                values[keys[key]] = float(value)
            except ValueError:
                raise StudentConfigError(f"{name!r}: {key} must be a number, got {value!r}") from None
        missing = [k for k, v in keys.items() if v not in values]
        if missing:
            raise StudentConfigError(f"{name!r}: missing {', '.join(missing)}")
        if not values["num_layers"].is_integer():
            raise StudentConfigError(f"{name!r}: N must be an integer")
        values["num_layers"] = int(values["num_layers"])
        return cls.from_dict({**values, **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["downsampling_layers"] = list(self.downsampling_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudentConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise StudentConfigError(f"StudentConfig: unknown fields {sorted(unknown)}")
        for f in fields(cls):
            value = d.get(f.name)
            if f.type in ("int", "float") and f.name in d and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise StudentConfigError(f"student config: {f.name} must be a number, got {value!r}")
        try:
            return cls(**d)
        except TypeError as err:
            raise StudentConfigError(f"StudentConfig: {err}") from None

    def replace(self, **changes: Any) -> "StudentConfig":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)


def _fmt(x: float, digits: int) -> str:
    # Two decimals as the reference names use, unless that would lose precision.
    if digits == 0 and float(x).is_integer():
        return str(int(x))
    s = f"{x:.{max(digits, 2)}f}"
    return s if float(s) == x else repr(float(x))


# --------------------------------------------------------------------------- presets


def _preset_dir() -> Path:
    return Path(str(resources.files("tinyclap") / "configs" / "students"))


def list_presets() -> list[str]:
    """Names of the student presets shipped in ``tinyclap/configs/students``."""
    return sorted(p.stem for p in _preset_dir().glob("*.yaml"))


def load_preset(name_or_path: str | Path) -> tuple[StudentConfig, AudioConfig]:
    """A preset by name (see :func:`list_presets`) or a YAML file path → (config, audio config).

    The YAML holds ``student:`` (StudentConfig fields) and optionally ``audio:``
    (AudioConfig fields that differ from the default, e.g. ``clip_seconds: 1.0``).
    """
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = _preset_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise StudentConfigError(f"{name_or_path!r}: no such student preset (known: {', '.join(list_presets())})")
    elif not path.is_file():
        raise StudentConfigError(f"{path}: no such preset file")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise StudentConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("student"), dict):
        raise StudentConfigError(f"{path}: a student preset needs a 'student:' mapping")
    try:
        audio = AudioConfig.from_dict(doc.get("audio") or {})
    except (TypeError, ValueError) as err:
        raise StudentConfigError(f"{path}: bad 'audio:' section ({err})") from None
    try:
        return StudentConfig.from_dict(doc["student"]), audio
    except StudentConfigError as err:
        raise StudentConfigError(f"{path}: {err}") from None


def save_preset(path: str | Path, config: StudentConfig, audio_config: AudioConfig | None = None,
                description: str = "", budget: dict[str, Any] | None = None) -> Path:
    """Write ``config`` (and the audio fields that differ from the default) as a preset YAML, atomically.

    ``budget`` (e.g. the limits ``tinyclap scale`` fitted it to) is kept for the record.
    """
    import yaml

    from tinyclap.io import atomic_path

    default = AudioConfig().to_dict()
    audio = {k: v for k, v in (audio_config or AudioConfig()).to_dict().items() if default[k] != v}
    doc: dict[str, Any] = {"description": description} if description else {}
    doc["student"] = config.to_dict()
    if audio:
        doc["audio"] = audio
    if budget:
        doc["budget"] = dict(budget)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------- modules


class Projection(nn.Module):
    """MS-CLAP's projection: ``LayerNorm(e1 + dropout(linear2(act(e1))))`` with ``e1 = linear1(x)``."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5, act: HeadAct = "gelu", device: Device = None):
        super().__init__()
        if act not in ("gelu", "relu"):
            raise StudentConfigError(f"projection act must be 'gelu' or 'relu', got {act!r}")
        self.linear1 = nn.Linear(d_in, d_out, bias=False, device=device)
        self.linear2 = nn.Linear(d_out, d_out, bias=False, device=device)
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_out, device=device)
        self.add = Add()  # a module so profilers see e1 kept alive across linear2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        e2 = self.drop(self.linear2(self.act(e1)))
        return self.layer_norm(self.add(e1, e2))


class GlobalMeanPool(nn.Module):
    """Mean over time and frequency: ``(B, C, T, F)`` → ``(B, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-1, -2))


class L2Normalize(nn.Module):
    """Unit-length rows (the shared space is compared by cosine)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1)


class AudioStudent(nn.Module):
    """PhiNet student that maps log-mels (or, via :meth:`embed_audio`, waveforms) to unit embeddings.

    ``frontend=False`` builds the network without the log-mel front end (profiling,
    export); :meth:`embed_audio` then raises. ``device`` places the weights
    (``"meta"`` builds the shapes only, as :func:`tinyclap.students.scaling.profile` does).
    """

    def __init__(
        self,
        config: StudentConfig,
        audio_config: AudioConfig | None = None,
        *,
        frontend: bool = True,
        device: Device = None,
    ):
        super().__init__()
        self.config = config
        self.audio_config = audio_config or AudioConfig()
        self.frontend: LogMel | None = LogMel(self.audio_config) if frontend else None
        if self.frontend is not None and device is not None:
            self.frontend.to(device)
        n_mels = self.audio_config.n_mels
        # BatchNorm over mel bins (channels after a transpose), PyTorch default eps as in the reference.
        self.bn0 = nn.BatchNorm2d(n_mels, momentum=config.bn_momentum, device=device)
        self.backbone = PhiNet(
            config.alpha,
            config.beta,
            config.t0,
            config.num_layers,
            compatibility=config.compatibility,
            downsampling_layers=config.downsampling_layers,
            block_dropout=config.block_dropout,
            divisor=config.divisor,
            bn_momentum=config.bn_momentum,
            device=device,
        )
        self.conv = nn.Conv2d(self.backbone.out_channels, config.embed_width, 1, stride=2, device=device)
        self.pool = GlobalMeanPool()
        self.projection = Projection(config.embed_width, config.dim, config.proj_dropout, config.head_act, device)
        self.normalize = L2Normalize()
        self.kept_dims: list[int] | None = None
        self.meta: dict[str, Any] = {}  # checkpoint metadata when loaded with load_student

    # ---- construction

    @classmethod
    def from_name(
        cls,
        name: str,
        dim: int | None = None,
        audio_config: AudioConfig | None = None,
        **overrides: Any,
    ) -> "AudioStudent":
        """A student from a reference-style name, a preset name, or a preset YAML path.

        ``dim`` (default: the config's, 1024 for reference names) and other
        StudentConfig fields can be overridden; ``audio_config`` replaces the
        preset's (default MS-CLAP 2022's).
        """
        config, preset_audio = resolve_config(name)
        if dim is not None:
            overrides["dim"] = dim
        config = config.replace(**overrides) if overrides else config
        return cls(config, audio_config or preset_audio)

    # ---- shapes

    @property
    def dim(self) -> int:
        """Output dimension D (k after latent pruning)."""
        return self.projection.linear1.out_features

    @property
    def embed_width(self) -> int:
        return self.conv.out_channels

    # ---- forward

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, T, M)`` → pooled features ``(B, embed_width)`` (before the head)."""
        if logmel.dim() == 4 and logmel.shape[1] == 1:
            logmel = logmel[:, 0]
        if logmel.dim() != 3 or logmel.shape[-1] != self.bn0.num_features:
            raise ValueError(
                f"expected log-mel of shape (B, T, {self.bn0.num_features}), got {tuple(logmel.shape)}"
            )
        x = logmel.unsqueeze(1).transpose(1, 3)  # (B, M, T, 1): mel bins as channels
        x = self.bn0(x).transpose(1, 3)  # (B, 1, T, M)
        return self.pool(self.conv(self.backbone(x)))

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, embed_width)`` → unit embeddings ``(B, D)``."""
        return self.normalize(self.projection(pooled))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(logmel))

    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, S)`` or ``(S,)`` at ``audio_config.sample_rate`` → ``(B, D)`` unit float32 on CPU.

        Runs in eval mode under ``torch.inference_mode`` and restores the previous mode.
        """
        if self.frontend is None:
            raise RuntimeError("this AudioStudent was built with frontend=False; pass log-mels to forward()")
        device = self.bn0.weight.device
        x = as_batch(clips).to(device)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                out = self(self.frontend(x))
        finally:
            self.train(was_training)
        return out.float().cpu()

    def mel_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``bn0`` at inference as a per-mel-bin ``x * scale + shift`` (to fold into a front end)."""
        bn = self.bn0
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return scale.detach().clone(), (bn.bias - bn.running_mean * scale).detach().clone()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def resolve_config(name: str | Path) -> tuple[StudentConfig, AudioConfig]:
    """(config, audio config) for a reference-style name, a preset name, or a preset YAML path."""
    text = str(name)
    if text.endswith((".yaml", ".yml")) or text in list_presets():
        return load_preset(name)
    return StudentConfig.from_name(text), AudioConfig()


# --------------------------------------------------------------------------- reference weights

_GROUPS = (("base._layers.", "backbone."), ("base.bn0.", "bn0."), ("base.pn_block.", "conv."), ("projection.", "projection."))


def convert_reference_state_dict(
    state: dict[str, torch.Tensor], student: AudioStudent, source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Rename a tinyCLAP reference student's weights (micromind PhiNet keys) to this student's keys.

    Accepts the state dict of the reference ``AudioEncoder`` (``base._layers...``,
    ``base.bn0``, ``base.pn_block``, ``projection``), optionally prefixed
    ``module.``/``student_model.``. Keys are matched in order within each group
    (our backbone registers its layers in micromind's order), and every shape
    must agree, so a checkpoint of another size fails with a clear message.
    """
    target = student.state_dict()
    cleaned = {re.sub(r"^(module\.|student_model\.|clap_student\.)+", "", k): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    for ref_prefix, our_prefix in _GROUPS:
        ref_keys = [k for k in cleaned if k.startswith(ref_prefix)]
        our_keys = [k for k in target if k.startswith(our_prefix)]
        if len(ref_keys) != len(our_keys):
            raise CheckpointError(
                f"{source}: {len(ref_keys)} tensors under {ref_prefix!r} but {student.config.name} "
                f"(embed {student.embed_width}, dim {student.dim}) has {len(our_keys)} under {our_prefix!r}"
            )
        for rk, ok in zip(ref_keys, our_keys):
            tensor = cleaned[rk]
            if rk.rsplit(".", 1)[-1] != ok.rsplit(".", 1)[-1] or tuple(tensor.shape) != tuple(target[ok].shape):
                raise CheckpointError(
                    f"{source}: {rk} {tuple(tensor.shape)} does not fit {ok} {tuple(target[ok].shape)} "
                    f"of {student.config.name}"
                )
            out[ok] = tensor
    return out


def load_reference_checkpoint(
    path: str | Path, name: str, audio_config: AudioConfig | None = None, **overrides: Any
) -> AudioStudent:
    """Load a student trained by the tinyCLAP reference code (``student_model.ckpt``, a torch state dict).

    ``name`` is its reference name (e.g. ``phinet_alpha_1.50_beta_0.75_t0_6_N_7``).
    Read with ``weights_only=True``: never unpickles code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types
        raise CheckpointError(f"{path}: not a readable torch state dict ({err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    student = AudioStudent.from_name(name, audio_config=audio_config, **overrides)
    student.load_state_dict(convert_reference_state_dict(state, student, source=str(path)))
    student.meta = {"source": str(path), "reference_name": name}
    return student.eval()
