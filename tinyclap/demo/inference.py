"""What the demo computes, without any Gradio: models, prompt banks, rankings, agreement, latency.

:class:`DemoModels` holds a student and/or a teacher and any saved banks;
:meth:`DemoModels.classify` turns one sound file plus a label source (typed
prompts or a bank) into one :class:`ModelResult` per model and an
:class:`Agreement` between them. Scores come from
:class:`tinyclap.zeroshot.ZeroShotClassifier`, so long audio is windowed and
its window embeddings averaged exactly as ``tinyclap eval`` does.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tinyclap.audio import AudioConfig, load_audio, window_starts
from tinyclap.bank import PromptBank
from tinyclap.errors import TinyClapError
from tinyclap.teachers.identity import same_teacher, teacher_identity
from tinyclap.zeroshot import ZeroShotClassifier

__all__ = [
    "DemoInputError",
    "DemoModels",
    "DemoResult",
    "ModelResult",
    "Agreement",
    "parse_prompts",
    "read_clip",
    "agreement",
    "CUSTOM",
    "load_banks",
]

CUSTOM = "custom"  # label-source value for typed prompts; banks are "bank:<name>"
MAX_PROMPT_CHARS = 200


class DemoInputError(TinyClapError, ValueError):
    """Input the demo refuses (no audio, clip too long, no prompts, ...); the message is shown on the page."""


@dataclass
class ModelResult:
    """One model's ranking of the labels for one clip, best first."""

    role: str  # "student" or "teacher"
    model: str  # what was loaded (checkpoint name or teacher id)
    labels: list[str]  # ranked, best first
    probabilities: list[float]  # softmax of logit_scale · cosine, ranked like labels
    cosines: list[float]  # cosine similarity to each label's text embedding, ranked like labels
    latency_ms: float  # windowing + audio embedding + scoring for this clip
    windows: int  # how many clip-length windows the audio was cut into

    @property
    def top(self) -> str:
        return self.labels[0]

    def confidences(self) -> dict[str, float]:
        """``{label: probability}`` in ranked order (what ``gr.Label`` shows)."""
        return dict(zip(self.labels, self.probabilities))


@dataclass
class Agreement:
    """How far the student agrees with the teacher on one clip."""

    same_top: bool
    spearman: float | None  # rank correlation over all labels; None when it is undefined (< 2 labels, ties)
    top_student: str
    top_teacher: str


@dataclass
class DemoResult:
    """Everything the page shows for one clip."""

    source: str  # "custom" or "bank:<name>"
    labels: list[str]  # in the bank's order
    duration_s: float
    results: list[ModelResult]
    agreement: Agreement | None
    text_ms: float | None  # time to embed typed prompts; None when cached or from a bank
    notes: list[str] = field(default_factory=list)  # soft warnings (duplicates removed, ...)
    wave: np.ndarray | None = field(default=None, repr=False)  # the decoded clip, for the picture
    audio_config: AudioConfig | None = field(default=None, repr=False)  # the front end it was decoded for

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no waveform)."""
        skip = {"wave", "audio_config"}  # asdict would deep-copy the waveform only to drop it
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in skip}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return asdict(value) if is_dataclass(value) else value


def parse_prompts(text: str | None, max_prompts: int) -> tuple[list[str], list[str]]:
    """Prompts from a text box, one per line: ``(prompts, notes)``.

    Blank lines are skipped, surrounding spaces trimmed, exact duplicates dropped
    (a label must be unique) with a note saying so.
    """
    lines = [ln.strip() for ln in (text or "").splitlines()]
    prompts: list[str] = []
    notes: list[str] = []
    for ln in lines:
        if not ln:
            continue
        if len(ln) > MAX_PROMPT_CHARS:
            raise DemoInputError(f"prompt {ln[:40]!r}... is {len(ln)} characters long; the limit is {MAX_PROMPT_CHARS}")
        if ln in prompts:
            notes.append(f"duplicate prompt {ln!r} used once")
            continue
        prompts.append(ln)
    if not prompts:
        raise DemoInputError("no prompts: type at least one label or description, one per line")
    if len(prompts) > max_prompts:
        raise DemoInputError(f"{len(prompts)} prompts given; this demo accepts at most {max_prompts}")
    if len(prompts) == 1:
        notes.append("only one prompt: it always gets probability 1; add more to compare")
    return prompts, notes


def _probe_seconds(path: Path) -> float | None:
    """Duration from the file header, before decoding (None when the header cannot tell)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return float(info.frames) / float(info.samplerate) if info.samplerate and info.frames > 0 else None
    except Exception:  # noqa: BLE001 - a header we cannot read is decoded (and judged) by load_audio
        return None


def read_clip(path: str | Path, sample_rate: int, max_seconds: float, display_name: str | None = None) -> np.ndarray:
    """Decode ``path`` as mono float32 at ``sample_rate``, refusing audio longer than ``max_seconds``.

    The header is checked first so an over-long file is refused without decoding
    it; the decoded length is checked again (headers can lie). Unreadable files
    raise :class:`~tinyclap.audio.AudioDecodeError` from :func:`tinyclap.audio.load_audio`.
    """
    path = Path(path)
    name = display_name or path.name
    seconds = _probe_seconds(path)
    if seconds is not None and seconds > max_seconds:
        raise DemoInputError(f"{name} is {seconds:.1f} s long; this demo accepts up to {max_seconds:g} s")
    wave = load_audio(path, sample_rate)
    seconds = len(wave) / sample_rate
    if seconds > max_seconds:
        raise DemoInputError(f"{name} is {seconds:.1f} s long; this demo accepts up to {max_seconds:g} s")
    return wave


def agreement(student: ModelResult, teacher: ModelResult) -> Agreement:
    """Same top label, and Spearman's rank correlation of the two score vectors over the same labels."""
    s = dict(zip(student.labels, student.cosines))
    t = dict(zip(teacher.labels, teacher.cosines))
    if set(s) != set(t):
        raise ValueError("student and teacher were scored on different labels")
    order = sorted(s)
    rho: float | None = None
    if len(order) >= 2:
        from scipy.stats import spearmanr

        value = float(spearmanr([s[k] for k in order], [t[k] for k in order]).statistic)
        rho = None if math.isnan(value) else value
    return Agreement(student.top == teacher.top, rho, student.top, teacher.top)


class DemoModels:
    """The models one demo serves: a student and/or a teacher, plus saved banks by name.

    A teacher brings a text tower, so typed prompts work; with only a student,
    labels must come from a bank (the text encoder never ships with a student).
    """

    def __init__(
        self,
        student: Any = None,
        teacher: Any = None,
        banks: dict[str, PromptBank] | None = None,
        max_seconds: float = 300.0,
        max_prompts: int = 64,
    ):
        if student is None and teacher is None:
            raise DemoInputError("the demo needs a student, a teacher, or both")
        self.student = student
        self.teacher = teacher
        self.banks: dict[str, PromptBank] = dict(banks or {})
        if student is not None and teacher is None and not self.banks:
            raise DemoInputError(
                "a student alone has no text encoder: give a prompt bank (--bank BANK.npz) or a teacher (--teacher NAME)"
            )
        self.max_seconds = float(max_seconds)
        self.max_prompts = int(max_prompts)
        # Refuse at start-up (not on the first click) a bank whose dims an encoder cannot match.
        for name, bank in self.banks.items():
            for role, encoder in self.encoders():
                try:
                    ZeroShotClassifier(encoder, bank)
                except TinyClapError as err:
                    raise DemoInputError(f"bank {name!r} does not fit the {role}: {err}") from None
        # Typed prompts are embedded once per distinct (prompts, templated) pair; lru_cache keeps the last few.
        self._prompt_bank = functools.lru_cache(maxsize=32)(self._build_prompt_bank)

    # ------------------------------------------------------------ describing
    @property
    def can_use_prompts(self) -> bool:
        """Typed prompts need a text tower: only a teacher has one."""
        return self.teacher is not None and hasattr(self.teacher, "embed_text")

    def encoders(self) -> list[tuple[str, Any]]:
        """``[(role, encoder)]``: the student first, then the teacher (when loaded)."""
        out = []
        if self.student is not None:
            out.append(("student", self.student))
        if self.teacher is not None:
            out.append(("teacher", self.teacher))
        return out

    def model_name(self, role: str) -> str:
        if role == "teacher":
            return str(getattr(self.teacher, "name", type(self.teacher).__name__))
        meta = getattr(self.student, "meta", {}) or {}
        config = getattr(self.student, "config", None)
        return str(meta.get("name") or getattr(config, "name", type(self.student).__name__))

    def short_name(self, role: str) -> str:
        """``model_name`` with a long local path cut to its last three parts (for narrow headings)."""
        name = self.model_name(role)
        prefix, _, rest = name.rpartition(":") if name.startswith("local:") else ("", "", name)
        parts = Path(rest).parts
        if len(parts) > 3 and ("/" in rest or "\\" in rest):
            rest = "…/" + "/".join(parts[-3:])
        return f"{prefix}:{rest}" if prefix else rest

    def teacher_mismatch(self) -> str | None:
        """A note when the student was distilled from another teacher than the one loaded (None if same/unknown).

        Typed prompts are embedded by the loaded teacher; a student trained
        towards a different teacher lives in another space, so its ranking of
        those prompts means nothing.
        """
        if self.student is None or self.teacher is None:
            return None
        meta = getattr(self.student, "meta", {}) or {}
        recorded, recorded_id = meta.get("teacher"), meta.get("teacher_id")
        loaded = self.model_name("teacher")
        if not recorded:
            return None
        # Matched by identity (a moved run folder still matches; other weights under one name do not).
        # The loaded teacher's identity is asked for only when a record could use it: it may hash the weights.
        loaded_id = teacher_identity(self.teacher) if recorded_id or str(recorded) != loaded else None
        if same_teacher(str(recorded), recorded_id, loaded, loaded_id):
            return None
        ids = recorded_id and loaded_id and str(recorded) == loaded  # same name: only the identities tell them apart
        return (
            f"the student was distilled from `{recorded}`{f' [{recorded_id}]' if ids else ''}, but the teacher "
            f"loaded here is `{loaded}`{f' [{loaded_id}]' if ids else ''}: the student's scores for typed prompts "
            "are only meaningful if both share one embedding space"
        )

    def sources(self) -> list[tuple[str, str]]:
        """``[(shown text, value)]`` for the label-source choice: typed prompts (if possible), then each bank."""
        out = [("Custom prompts", CUSTOM)] if self.can_use_prompts else []
        out += [(f"Bank: {name} ({len(bank)} labels)", f"bank:{name}") for name, bank in self.banks.items()]
        return out

    def warm_up(self) -> None:
        """Run every encoder once on one window of silence, so the first clip's latency is not inflated
        by lazy initialisation (thread pools, kernel selection)."""
        for _, encoder in self.encoders():
            encoder.embed_audio(np.zeros((1, encoder.audio_config.clip_samples), dtype=np.float32))

    # --------------------------------------------------------------- prompts
    def _build_prompt_bank(self, prompts: tuple[str, ...], templated: bool) -> tuple[PromptBank, float]:
        start = time.perf_counter()
        bank = PromptBank.build(self.teacher, list(prompts), None if templated else ["{}"])
        return bank, (time.perf_counter() - start) * 1000.0

    def bank_for(
        self, source: str, prompts_text: str | None, templated: bool = False
    ) -> tuple[PromptBank, float | None, list[str]]:
        """The bank to score against, the prompt-embedding time (None if cached/saved) and notes.

        ``templated``: typed prompts are wrapped in the default templates
        ("the sound of {}", ...) and averaged, like a saved bank; otherwise each
        prompt is embedded as typed.
        """
        if source == CUSTOM:
            if not self.can_use_prompts:
                raise DemoInputError(
                    "custom prompts need a text encoder, and this demo was started without a teacher; "
                    "pick a saved bank, or restart with --teacher NAME"
                )
            prompts, notes = parse_prompts(prompts_text, self.max_prompts)
            hits = self._prompt_bank.cache_info().hits
            bank, ms = self._prompt_bank(tuple(prompts), bool(templated))
            cached = self._prompt_bank.cache_info().hits > hits
            return bank, None if cached else ms, notes
        if source.startswith("bank:") and source[len("bank:") :] in self.banks:
            return self.banks[source[len("bank:") :]], None, []
        known = ", ".join(v for _, v in self.sources())
        raise DemoInputError(f"unknown label source {source!r}; choose one of: {known}")

    # -------------------------------------------------------------- classify
    def classify(
        self,
        audio_path: str | Path | None,
        source: str,
        prompts_text: str | None = None,
        templated: bool = False,
        display_name: str | None = None,
    ) -> DemoResult:
        """Rank the labels of ``source`` for one sound file with every loaded model."""
        if audio_path is None or str(audio_path) == "":
            raise DemoInputError("no audio: upload or record a clip first")
        bank, text_ms, notes = self.bank_for(source, prompts_text, templated)
        waves: dict[int, np.ndarray] = {}
        results = []
        for role, encoder in self.encoders():
            rate = int(encoder.audio_config.sample_rate)
            if rate not in waves:  # teacher and student usually share a rate: decode once
                waves[rate] = read_clip(audio_path, rate, self.max_seconds, display_name)
            results.append(self._score(role, encoder, bank, waves[rate]))
        first = self.encoders()[0][1].audio_config
        wave = waves[int(first.sample_rate)]
        agree = agreement(results[0], results[1]) if len(results) == 2 else None
        return DemoResult(
            source, list(bank.labels), len(wave) / first.sample_rate, results, agree, text_ms, notes, wave, first
        )

    def _score(self, role: str, encoder: Any, bank: PromptBank, wave: np.ndarray) -> ModelResult:
        start = time.perf_counter()
        clf = ZeroShotClassifier(encoder, bank)
        with torch.inference_mode():
            logits = clf.logits([wave])[0]  # the classifier windows long audio and averages window embeddings
        latency = (time.perf_counter() - start) * 1000.0
        cosines = (logits / clf.bank.logit_scale).tolist()
        probs = torch.softmax(logits, dim=-1).tolist()
        order = sorted(range(len(probs)), key=lambda j: -probs[j])  # stable: ties keep bank order
        windows = len(window_starts(len(wave), clf.audio_config.clip_samples))
        return ModelResult(
            role=role,
            model=self.model_name(role),
            labels=[clf.bank.labels[j] for j in order],
            probabilities=[float(probs[j]) for j in order],
            cosines=[float(cosines[j]) for j in order],
            latency_ms=latency,
            windows=windows,
        )


def load_banks(paths: Sequence[str | Path]) -> dict[str, PromptBank]:
    """Saved banks keyed by a short unique name (the file stem, disambiguated by its folder)."""
    banks: dict[str, PromptBank] = {}
    for p in paths:
        path = Path(p)
        bank = PromptBank.load(path)
        name = path.stem
        if name in banks:
            name = f"{path.parent.name}/{path.stem}"
        banks[name] = bank
    return banks
