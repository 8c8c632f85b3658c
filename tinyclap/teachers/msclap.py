"""Microsoft CLAP teachers: 2022 (CNN14 + BERT) and 2023 (HTS-AT + GPT-2).

Our own implementation of the two released MS-CLAP models
(github.com/microsoft/CLAP, ``msclap`` 1.3.x). It loads the released files
``CLAP_weights_{2022,2023}.pth`` (``torch.load(..., weights_only=True)["model"]``)
key for key, and exposes them through the :class:`~tinyclap.teachers.base.Teacher`
protocol::

    from tinyclap.teachers.msclap import load_msclap
    teacher = load_msclap("2022", "CLAP_weights_2022.pth", text_model="bert-base-uncased")
    a = teacher.embed_audio(clips)            # (B, 1024), unit norm
    t = teacher.embed_text(["a dog barking"])  # (1, 1024), unit norm

Where we differ from ``msclap`` (on purpose):

* long audio is centre-cropped (:func:`tinyclap.audio.fit_length`), not cropped
  at a random offset, so the same clip always gives the same embedding;
* embeddings come out L2-normalised (MS-CLAP normalises only inside its
  similarity function);
* text is padded to the longest prompt of a batch rather than to ``text_len``
  (masked padding changes nothing but run time) and truncated to ``text_len``;
* GPT-2 pools the last token the attention mask marks as real; ``msclap`` counts
  tokens whose id is not 0, which miscounts prompts containing ``!`` (id 0).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyclap._quiet import quiet_torchao_noise
from tinyclap.audio import AudioConfig, fit_length
from tinyclap.errors import CheckpointError, MissingWeightsError
from tinyclap.teachers.base import as_batch
from tinyclap.teachers.msclap_audio import Cnn14, HTSATConfig, HTSATWrapper, MSClapFrontEnd
from tinyclap.teachers.weights import missing_hf_model, offline_reason, resolve_msclap_weights, tinyclap_home

__all__ = [
    "MSCLAP_LICENCE",
    "MSClapSpec",
    "SPECS",
    "MSClapModel",
    "MSClapTeacher",
    "build_msclap",
    "load_msclap",
    "load_msclap_state_dict",
]

MSCLAP_LICENCE = "MS-CLAP weights: MIT License, Copyright (c) Microsoft Corporation (github.com/microsoft/CLAP)"


@dataclass(frozen=True)
class MSClapSpec:
    """What distinguishes one MS-CLAP release (read off msclap's configs and model code)."""

    version: str
    audio_config: AudioConfig
    audio_tower: str  # "cnn14" | "htsat"
    text_family: str  # "bert" (CLS token) | "gpt2" (suffix + last real token)
    text_model: str  # default transformers id of the text tower and tokenizer
    text_len: int  # tokenizer max_length
    weights_file: str  # name of the released file (microsoft/msclap on Hugging Face)
    mel_sample_rate: int | None = None  # rate the mel filters were designed for, if not the audio's
    d_proj: int = 1024
    htsat: HTSATConfig = field(default_factory=HTSATConfig)


SPECS: dict[str, MSClapSpec] = {
    # config_2022.yml: 44.1 kHz, 5 s, 64 mels, 50-14000 Hz, window 1024 (its n_fft 1028 is unused:
    # CNN14 builds the STFT from window_size), BERT with text_len 100.
    "2022": MSClapSpec(
        version="2022",
        audio_config=AudioConfig(sample_rate=44100, clip_seconds=5.0, n_mels=64, fmin=50.0, fmax=14000.0),
        audio_tower="cnn14",
        text_family="bert",
        text_model="bert-base-uncased",
        text_len=100,
        weights_file="CLAP_weights_2022.pth",
    ),
    # config_2023.yml says 44.1 kHz, 7 s, 64 mels, fmin 50, fmax 8000, but msclap's HTS-AT ignores
    # those and builds its log-mel from its own module config: filters for 32 kHz, 50-14000 Hz,
    # applied to the 44.1 kHz audio it is fed. We reproduce what the code computes.
    "2023": MSClapSpec(
        version="2023",
        audio_config=AudioConfig(sample_rate=44100, clip_seconds=7.0, n_mels=64, fmin=50.0, fmax=14000.0),
        audio_tower="htsat",
        text_family="gpt2",
        text_model="gpt2",
        text_len=77,
        weights_file="CLAP_weights_2023.pth",
        mel_sample_rate=32000,
    ),
}


def _spec(version: str | int) -> MSClapSpec:
    key = str(version).removeprefix("msclap-")
    if key not in SPECS:
        raise ValueError(f"unknown MS-CLAP version {version!r}; choose one of {sorted(SPECS)}")
    return SPECS[key]


class Projection(nn.Module):
    """MS-CLAP's projection head: linear, GELU-linear residual (dropout), LayerNorm."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.drop(self.linear2(F.gelu(e1))))


class MSClapAudioEncoder(nn.Module):
    """Waveform → log-mel (no stored weights) → CNN14 / HTS-AT → projection (unnormalised)."""

    def __init__(self, frontend: MSClapFrontEnd, base: nn.Module, d_proj: int):
        super().__init__()
        self.frontend = frontend
        self.base = base
        self.projection = Projection(base.out_dim, d_proj)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.projection(self.base(self.frontend(clips)))


class MSClapTextEncoder(nn.Module):
    """A transformers BERT or GPT-2 under ``.base`` plus the projection."""

    def __init__(self, base: nn.Module, family: str, d_proj: int):
        super().__init__()
        if family not in ("bert", "gpt2"):
            raise ValueError(f"text family must be 'bert' or 'gpt2', got {family!r}")
        self.family = family
        self.base = base
        self.projection = Projection(base.config.hidden_size, d_proj)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if self.family == "bert":
            hidden = self.base(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            pooled = hidden[:, 0]  # [CLS]
        else:
            hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            last = attention_mask.long().sum(dim=1) - 1  # right padding: last real token (<|endoftext|>)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.projection(pooled)


class MSClapModel(nn.Module):
    """The whole MS-CLAP network; its state_dict keys are those of the released files
    (minus the fixed STFT/mel buffers and ``position_ids``)."""

    def __init__(self, spec: MSClapSpec, audio_encoder: MSClapAudioEncoder, caption_encoder: MSClapTextEncoder):
        super().__init__()
        self.spec = spec
        self.audio_encoder = audio_encoder
        self.caption_encoder = caption_encoder
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    @property
    def audio_config(self) -> AudioConfig:
        return self.audio_encoder.frontend.config

    def forward(
        self, clips: torch.Tensor, tokens: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit audio (B, D) and text (P, D) embeddings and exp(logit_scale)."""
        audio = F.normalize(self.audio_encoder(clips), dim=-1)
        text = F.normalize(self.caption_encoder(**tokens), dim=-1)
        return audio, text, self.logit_scale.exp()


# ----------------------------------------------------------------------------- building


def _from_pretrained(loader: Any, name: str, what: str) -> Any:
    """A transformers config/tokenizer from a local dir, ``$TINYCLAP_HOME/<id>/``, the hub
    cache, or (when online) the hub; anything else is a MissingWeightsError saying what
    to fetch. Legacy ids without an owner (``bert-base-uncased``, ``gpt2``, as msclap
    uses them) are accepted."""
    path = Path(name).expanduser()
    if not path.is_dir() and name.startswith(("/", ".", "~")):
        raise MissingWeightsError(f"text model directory {path} does not exist")
    if not path.is_dir() and (tinyclap_home() / name / "config.json").is_file():
        path = tinyclap_home() / name
    if path.is_dir():
        try:
            return loader.from_pretrained(str(path))
        except (OSError, ValueError) as err:
            raise MissingWeightsError(f"{path}: no usable {what} there ({_first_line(err)})") from None
    try:
        return loader.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        offline = offline_reason()
        why = f"{offline or 'offline'} and it is not in the Hugging Face cache"
    if offline is None:
        try:
            return loader.from_pretrained(name)
        except (OSError, ValueError) as err:
            why = f"download failed: {_first_line(err)}"
    raise missing_hf_model(name, f"{what}: {why}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _text_config(family: str, text_model: str | None, text_config: Any | None) -> Any:
    """The transformers config of the text tower. With neither argument: BertConfig() /
    GPT2Config(), whose defaults are bert-base-uncased / gpt2 sizes (no network needed)."""
    quiet_torchao_noise()  # transformers imports torchao when installed; drop its harmless import noise
    from transformers import AutoConfig, BertConfig, GPT2Config

    if text_config is None and text_model is not None:
        text_config = _from_pretrained(AutoConfig, text_model, "config.json")
    if text_config is None:
        text_config = BertConfig() if family == "bert" else GPT2Config()
    if text_config.model_type != family:
        raise ValueError(f"this MS-CLAP version needs a {family} text tower, got model_type {text_config.model_type!r}")
    return text_config


def build_msclap(
    version: str,
    text_model: str | None = None,
    *,
    text_config: Any | None = None,
    audio_config: AudioConfig | None = None,
    d_proj: int | None = None,
    num_classes: int = 527,
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
    out_emb: int = 2048,
    htsat: HTSATConfig | Mapping[str, Any] | None = None,
) -> MSClapModel:
    """An MS-CLAP model with random weights (load a checkpoint into it, or use it to count/time).

    ``text_model`` (transformers id or local dir) or ``text_config`` give the text
    tower's config; with neither, the default BERT/GPT-2 config is used so a full-size
    model builds offline (also under ``with torch.device("meta")``). ``channels`` and
    ``out_emb`` size CNN14 (2022); ``htsat`` sizes HTS-AT (2023). ``audio_config``
    replaces the version's front end (tests use a short, narrow one).
    """
    quiet_torchao_noise()
    from transformers import AutoModel

    spec = _spec(version)
    config = audio_config or spec.audio_config
    d_proj = d_proj or spec.d_proj
    spec = dataclasses.replace(spec, d_proj=d_proj)
    mel_rate = spec.mel_sample_rate if audio_config is None else None
    frontend = MSClapFrontEnd(config, mel_sample_rate=mel_rate)
    if spec.audio_tower == "cnn14":
        base: nn.Module = Cnn14(config.n_mels, tuple(channels), out_emb, num_classes)
    else:
        hcfg = htsat if isinstance(htsat, HTSATConfig) else HTSATConfig(**dict(htsat or {}))
        hcfg = dataclasses.replace(hcfg, num_classes=num_classes)
        base = HTSATWrapper(hcfg, n_mels=config.n_mels)
        if config.n_frames > base.htsat.max_frames:
            raise ValueError(f"{config.clip_seconds} s gives {config.n_frames} frames; this HTS-AT takes at most "
                             f"{base.htsat.max_frames}")
        spec = dataclasses.replace(spec, htsat=hcfg)
    tcfg = _text_config(spec.text_family, text_model, text_config)
    text_base = AutoModel.from_config(tcfg)
    if audio_config is not None:
        spec = dataclasses.replace(spec, audio_config=config, mel_sample_rate=None)
    audio = MSClapAudioEncoder(frontend, base, d_proj)
    text = MSClapTextEncoder(text_base, spec.text_family, d_proj)
    return MSClapModel(spec, audio, text)


# ----------------------------------------------------------------------------- checkpoints

# Keys of the released files that are not learned and that our model does not hold:
# torchlibrosa's STFT / mel matrices (our LogMel computes the same numbers), transformers'
# position_ids, and old GPT-2 causal-mask buffers.
_FIXED_KEYS = re.compile(
    r"(^|\.)(spectrogram_extractor|logmel_extractor)\.|\.position_ids$|\.h\.\d+\.attn\.(bias|masked_bias)$"
)


def _listing(keys: list[str], limit: int = 12) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_msclap_state_dict(model: MSClapModel, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load a released-format state dict into ``model`` strictly.

    Fixed buffers (STFT, mel, ``position_ids``) are dropped; anything else missing,
    unexpected or of the wrong shape raises :class:`CheckpointError` listing the keys.
    A mel matrix in the file that differs from ours is adopted (with a warning), so
    the front end is the one the weights were trained with.
    """
    kept: dict[str, torch.Tensor] = {}
    file_mel = None
    for key, value in state.items():
        if key.endswith("logmel_extractor.melW"):
            file_mel = value
        if not _FIXED_KEYS.search(key):
            kept[key] = value
    own = model.state_dict()
    missing = sorted(set(own) - set(kept))
    unexpected = sorted(set(kept) - set(own))
    wrong = [f"{k} {tuple(kept[k].shape)} (model {tuple(own[k].shape)})"
             for k in kept if k in own and tuple(kept[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} keys of the wrong shape: {_listing(wrong)}")
    if problems:
        raise CheckpointError(f"{source}: does not fit MS-CLAP {model.spec.version}: " + "; ".join(problems))
    model.load_state_dict(kept, strict=True)
    frontend = model.audio_encoder.frontend
    if file_mel is not None and tuple(file_mel.shape) == tuple(frontend.mel.shape):
        file_mel = file_mel.detach().float().cpu()
        if not torch.allclose(file_mel, frontend.mel.cpu(), rtol=1e-4, atol=1e-7):
            warnings.warn(f"{source}: its mel filterbank differs from the one computed for "
                          f"{model.audio_config}; using the file's", stacklevel=2)
            frontend.set_filters(file_mel)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or "logit_scale" not in obj:
        raise CheckpointError(f"{path}: expected an MS-CLAP checkpoint ({{'model': state_dict}} with 'logit_scale')")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


# ----------------------------------------------------------------------------- teacher


class MSClapTeacher:
    """A frozen MS-CLAP model behind the Teacher protocol (unit-norm float32 CPU outputs)."""

    licence = MSCLAP_LICENCE

    def __init__(self, model: MSClapModel, tokenizer: Any, device: str | torch.device = "cpu",
                 batch_size: int = 16, name: str | None = None, checkpoint: str | Path | None = None):
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None  # the .pth it was loaded from
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.spec = model.spec
        self.name = name or f"msclap-{model.spec.version}"
        self.audio_config: AudioConfig = model.audio_config
        self.dim: int = model.caption_encoder.projection.linear1.out_features
        self.logit_scale = float(model.logit_scale.detach().exp().cpu())
        if tokenizer is not None and self.spec.text_family == "gpt2":
            tokenizer.padding_side = "right"  # pooling takes the last real token
            if tokenizer.pad_token is None:
                # msclap pads with "!" (GPT-2 id 0); padded positions are masked either way.
                tokenizer.pad_token = "!" if "!" in tokenizer.get_vocab() else tokenizer.eos_token

    @cached_property
    def identity(self) -> str:
        """Content digest (:mod:`tinyclap.teachers.identity`): the release spec and the ``.pth`` file's bytes,
        or the weights in memory for a model built without a checkpoint."""
        from tinyclap.teachers.identity import content_identity, file_sha256, state_sha256

        weights = file_sha256(self.checkpoint) if self.checkpoint is not None else state_sha256(self.model.state_dict())
        return content_identity(f"msclap-{self.spec.version}", dataclasses.asdict(self.spec), weights)

    def __repr__(self) -> str:
        return f"MSClapTeacher(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"

    def _fit(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S) float32 at the model's rate; other lengths are repeat-padded / centre-cropped."""
        x = as_batch(clips)
        n = self.audio_config.clip_samples
        if x.shape[1] != n:
            x = torch.from_numpy(np.stack([fit_length(row, n) for row in x.cpu().numpy()]))
        return x

    def embed_audio(self, clips: np.ndarray | torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Waveforms (B, S) or (S,) at ``audio_config.sample_rate`` → (B, dim) unit vectors."""
        x = self._fit(clips)
        step = batch_size or self.batch_size
        out = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], step):
                emb = self.model.audio_encoder(x[i : i + step].to(self.device))
                out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, self.dim)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """MS-CLAP's tokenisation (GPT-2: ``' <|endoftext|>'`` appended), padded to the longest."""
        if self.tokenizer is None:
            raise ValueError(f"{self.name}: built without a tokenizer, so it cannot embed text")
        texts = [p + " <|endoftext|>" for p in prompts] if self.spec.text_family == "gpt2" else list(prompts)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.spec.text_len,
                             return_tensors="pt")
        keys = ("input_ids", "attention_mask", "token_type_ids") if self.spec.text_family == "bert" \
            else ("input_ids", "attention_mask")
        return {k: enc[k] for k in keys if k in enc}

    def embed_text(self, prompts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Prompts → (P, dim) unit vectors. An empty list raises ValueError."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ValueError("embed_text needs at least one prompt")
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be strings")
        step = batch_size or max(self.batch_size, 64)
        out = []
        with torch.inference_mode():
            for i in range(0, len(prompts), step):
                tokens = {k: v.to(self.device) for k, v in self.tokenize(prompts[i : i + step]).items()}
                emb = self.model.caption_encoder(**tokens)
                out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out)


def load_msclap(
    version: str,
    checkpoint: str | Path | None = None,
    text_model: str | None = None,
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 16,
    **widths: Any,
) -> MSClapTeacher:
    """Load a released MS-CLAP checkpoint as a Teacher.

    ``checkpoint``: path to ``CLAP_weights_<version>.pth`` (None: looked up by
    :func:`tinyclap.teachers.weights.resolve_msclap_weights`). ``text_model``: transformers id or local directory
    giving the text tower's config and tokenizer (default ``bert-base-uncased`` /
    ``gpt2``; the weights come from the checkpoint). ``widths`` go to
    :func:`build_msclap` (tests load tiny models this way).
    """
    quiet_torchao_noise()
    from transformers import AutoTokenizer

    spec = _spec(version)
    path = resolve_msclap_weights(spec.version, checkpoint)
    text_model = text_model or spec.text_model
    config = _text_config(spec.text_family, text_model, None)
    tokenizer = _from_pretrained(AutoTokenizer, text_model, "tokenizer")
    state = _read_state_dict(path)
    model = build_msclap(spec.version, text_config=config, **widths)
    load_msclap_state_dict(model, state, source=str(path))
    return MSClapTeacher(model, tokenizer, device=device, batch_size=batch_size, checkpoint=path)
