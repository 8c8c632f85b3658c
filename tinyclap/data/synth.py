"""Synth: captioned, labelled sounds generated from a seed (the offline default corpus).

No files are needed: item ``i`` of ``Synth(n, seed)`` is rendered on demand from
``(seed, i)`` alone, so the same seed gives the same audio bit for bit, and item
``i`` does not depend on ``n`` (``Synth(10)`` is the first ten items of
``Synth(1000)``).

Fifteen families (the class labels, :data:`FAMILIES`): tone, beeping, chirp,
siren, ticking, engine, rain, speech, bubbles, wind, birdsong, noise burst,
bell, dog bark, knocking. Each sound draws attributes that change how it
sounds and are spoken in its captions: pitch (low/medium/high), speed
(slow/fast: modulation rate, tempo, engine revs, rain intensity), loudness
(quiet/medium/loud: peak level), duration (short/long: how much of the clip
is active) for continuous sounds, and repetition (once/twice/repeatedly) for
event sounds, e.g. "a fast high-pitched siren, loud" or "a big dog barking
twice". Each item has three captions (different phrasings and subsets of the
attributes; the first speaks them all) and a label.

Holding families out: ``Synth(n, seed, families=[...])`` (or ``exclude=[...]``)
keeps only those families. Items are drawn from one global sequence (family of
global index ``g`` is fixed by the seed) filtered to the chosen families, so a
clip id ``"synth-s<seed>/<g>#0"`` names the same audio in every subset, and
a teacher trained on ``exclude=["bell", "dog bark"]`` never heard a bell or a
bark. ``class_names`` are the chosen families, in :data:`FAMILIES` order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, Entry
from tinyclap.data.synth_sounds import RENDERERS, Spec
from tinyclap.errors import DataError

__all__ = ["FAMILIES", "Family", "SynthSound", "render", "describe", "family_of", "Synth"]


@dataclass(frozen=True)
class Family:
    """How a family is spoken about, and which attributes it has."""

    name: str
    nouns: tuple[str, ...]
    pitch: bool = True
    speed: bool = True
    events: bool = False  # event sounds have repetitions instead of a duration
    low: tuple[str, ...] = ("low-pitched", "low", "deep")
    high: tuple[str, ...] = ("high-pitched", "high", "shrill")
    slow: tuple[str, ...] = ("slow",)
    fast: tuple[str, ...] = ("fast", "quick", "rapid")
    slow_adv: tuple[str, ...] = ("slowly",)
    fast_adv: tuple[str, ...] = ("quickly", "rapidly")

    def __post_init__(self) -> None:
        if self.events and self.slow_adv == ("slowly",):  # pace of the repeats
            object.__setattr__(self, "slow_adv", ("slowly", "with long pauses"))
            object.__setattr__(self, "fast_adv", ("in quick succession", "rapidly"))


_FAMILY_LIST = [
    Family("tone", ("tone", "steady tone", "sine tone", "pure tone", "humming tone"), speed=False),
    Family("beeping", ("beeping", "alarm beeping", "electronic beeps", "beeping alarm", "beeper")),
    Family("chirp", ("chirp", "frequency sweep", "sweeping tone", "electronic chirp", "synth sweep")),
    Family("siren", ("siren", "police siren", "ambulance siren", "emergency siren wailing", "wailing siren")),
    Family(
        "ticking",
        ("clock ticking", "ticking clock", "ticking", "metronome", "clicks"),
        low=("low", "dull", "deep"),
        high=("high", "sharp", "bright"),
    ),
    Family(
        "engine",
        ("engine", "motor running", "car engine", "engine running", "motor"),
        pitch=False,
        slow=("idling", "slow", "low-revving"),
        fast=("revving", "racing", "fast", "high-revving"),
        slow_adv=("idling", "slowly"),
        fast_adv=("revving hard", "at high speed"),
    ),
    Family(
        "rain",
        ("rain", "rainfall", "rain falling", "raindrops", "rain shower"),
        pitch=False,
        slow=("light", "gentle", "soft"),
        fast=("heavy", "pouring", "intense"),
        slow_adv=("gently", "lightly"),
        fast_adv=("heavily", "hard"),
    ),
    Family(
        "speech",
        ("voice speaking", "voice talking", "speech", "person talking", "voice murmuring"),
        low=("deep", "low", "male"),
        high=("high", "high-pitched", "female"),
    ),
    Family("bubbles", ("water bubbling", "bubbles", "bubbling water", "gurgling water", "bubbling liquid")),
    Family(
        "wind",
        ("wind", "wind blowing", "howling wind", "gusts of wind", "wind whistling"),
        low=("low", "deep", "rumbling"),
        high=("high", "whistling", "shrill"),
        slow=("slow", "steady", "gentle"),
        fast=("gusty", "fast", "blustery"),
        fast_adv=("in quick gusts", "gustily"),
    ),
    Family("birdsong", ("bird singing", "birdsong", "bird chirping", "songbird", "bird trilling")),
    Family(
        "noise burst",
        ("noise burst", "burst of static", "burst of white noise", "static crackle", "hiss burst"),
        pitch=False,
        events=True,
    ),
    Family("bell", ("bell ringing", "bell chiming", "church bell ringing", "bell tolling", "bell striking"), events=True),
    Family(
        "dog bark",
        ("dog barking", "barking dog", "hound barking", "dog woofing"),
        events=True,
        low=("big", "large", "deep-voiced"),
        high=("small", "little", "yappy"),
    ),
    Family(
        "knocking",
        ("knocking", "knock on a door", "knocking on wood", "knocks", "door knocking"),
        events=True,
        low=("heavy", "deep", "low"),
        high=("light", "high", "sharp"),
    ),
]
FAMILIES: list[str] = [f.name for f in _FAMILY_LIST]
_BY_NAME = {f.name: f for f in _FAMILY_LIST}
assert set(FAMILIES) == set(RENDERERS)

_PEAK = {"quiet": (0.05, 0.12), "medium": (0.2, 0.35), "loud": (0.6, 0.9)}
_LOUD_WORDS = {"quiet": ("quiet", "soft", "faint"), "loud": ("loud", "very loud", "booming")}
_LOUD_TAIL = {"quiet": ("quietly", "at low volume", "in the distance"), "loud": ("loudly", "at high volume", "up close")}
_DUR_WORDS = {"short": ("short", "brief"), "long": ("long", "sustained", "lasting")}
_DUR_TAIL = {"short": ("briefly", "for a moment"), "long": ("for a long time", "continuously")}
_REPS = {1: ("once", "a single time"), 2: ("twice", "two times")}
_REPS_MANY = ("repeatedly", "several times", "over and over", "again and again")
_NUMBERS = {3: "three times", 4: "four times", 5: "five times", 6: "six times"}


@dataclass
class SynthSound:
    """One rendered item: the waveform and what it is."""

    audio: np.ndarray
    family: str
    attributes: dict[str, Any]
    captions: list[str] = field(default_factory=list)

    @property
    def label(self) -> int:
        """Index into :data:`FAMILIES` (datasets re-index over the families they keep)."""
        return FAMILIES.index(self.family)


def _rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent streams for attributes, audio and captions of one item."""
    seqs = np.random.SeedSequence([int(seed), int(index), 0x5EED]).spawn(3)
    return tuple(np.random.default_rng(s) for s in seqs)  # type: ignore[return-value]


@lru_cache(maxsize=4096)
def _block(seed: int, block: int) -> tuple[int, ...]:
    return tuple(int(x) for x in np.random.default_rng([seed, block, 0xFA]).permutation(len(FAMILIES)))


def family_of(seed: int, index: int) -> str:
    """Family of global item ``index``: every block of 15 items is a seeded permutation (balanced)."""
    k = len(FAMILIES)
    return FAMILIES[_block(int(seed), int(index) // k)[int(index) % k]]


def _attributes(fam: Family, rng: np.random.Generator) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "pitch": str(rng.choice(["low", "medium", "high"])) if fam.pitch else "medium",
        "speed": str(rng.choice(["slow", "fast"])),
        "loudness": str(rng.choice(["quiet", "medium", "loud"])),
    }
    if fam.events:
        reps = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.1]))
        attrs["repetitions"] = reps
    else:
        attrs["duration"] = str(rng.choice(["short", "long"]))
    if fam.name == "chirp":
        attrs["direction"] = str(rng.choice(["rising", "falling"]))
    return attrs


# Nouns that take no "a": mass nouns and plurals ("heavy rain", "quick clicks").
_NO_ARTICLE = {
    "rain", "rainfall", "rain falling", "raindrops", "speech", "birdsong", "wind", "wind blowing",
    "wind whistling", "gusts of wind", "ticking", "clicks", "beeping", "electronic beeps", "knocking",
    "knocks", "knocking on wood", "bubbles", "bubbling water", "water bubbling", "gurgling water",
    "bubbling liquid",
}


def _article(phrase: str, noun: str) -> str:
    if noun in _NO_ARTICLE:
        return phrase
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _caption(fam: Family, attrs: dict[str, Any], rng: np.random.Generator, full: bool) -> str:
    """One phrasing. ``full`` speaks every non-default attribute; otherwise each with p=0.75."""

    def say() -> bool:
        return full or rng.random() < 0.75

    pick = lambda options: str(rng.choice(options))  # noqa: E731
    pre: list[str] = []
    post: list[str] = []
    if not fam.events and say():
        if rng.random() < 0.6:
            pre.append(pick(_DUR_WORDS[attrs["duration"]]))
        else:
            post.append(pick(_DUR_TAIL[attrs["duration"]]))
    speed_applies = fam.speed and (not fam.events or attrs.get("repetitions", 1) > 1)
    if speed_applies and say():
        if rng.random() < 0.6 and not fam.events:  # events: the pace of repeats, said after the noun
            pre.append(pick(fam.slow if attrs["speed"] == "slow" else fam.fast))
        else:
            post.append(pick(fam.slow_adv if attrs["speed"] == "slow" else fam.fast_adv))
    if fam.pitch and attrs["pitch"] != "medium" and say():
        pre.append(pick(fam.low if attrs["pitch"] == "low" else fam.high))
    if "direction" in attrs and say():
        pre.append(attrs["direction"])
    loud_tail = None
    if attrs["loudness"] != "medium" and say():
        if rng.random() < 0.5:
            pre.insert(0, pick(_LOUD_WORDS[attrs["loudness"]]))
        else:
            loud_tail = pick(_LOUD_WORDS[attrs["loudness"]]) if rng.random() < 0.5 else None
            if loud_tail is None:
                post.append(pick(_LOUD_TAIL[attrs["loudness"]]))
    if fam.events and say():
        reps = attrs["repetitions"]
        if reps in _REPS:
            post.insert(0, pick(_REPS[reps]))
        else:
            post.insert(0, _NUMBERS[reps] if rng.random() < 0.4 else pick(_REPS_MANY))
    noun = pick(fam.nouns)
    phrase = " ".join(pre + [noun] + post)
    text = _article(phrase, noun) if rng.random() < 0.8 else f"the sound of {_article(phrase, noun)}"
    if loud_tail:
        text += f", {loud_tail}"
    return text


def _plan(seed: int, index: int) -> tuple[Family, dict[str, Any], tuple[np.random.Generator, ...]]:
    fam = _BY_NAME[family_of(seed, index)]
    rngs = _rngs(seed, index)
    return fam, _attributes(fam, rngs[0]), rngs


def describe(seed: int, index: int, n_captions: int = 3) -> SynthSound:
    """Family, attributes and captions of global item ``index``, without rendering audio (cheap)."""
    fam, attrs, (_, _, text_rng) = _plan(seed, index)
    captions = [_caption(fam, attrs, text_rng, full=(k == 0)) for k in range(n_captions)]
    return SynthSound(np.empty(0, np.float32), fam.name, attrs, captions)


def render(seed: int, index: int, audio_config: AudioConfig | None = None, n_captions: int = 3) -> SynthSound:
    """Render global item ``index`` of the synth corpus for ``seed`` (pure function of its inputs)."""
    cfg = audio_config or AudioConfig()
    fam, attrs, (attr_rng, audio_rng, text_rng) = _plan(seed, index)
    captions = [_caption(fam, attrs, text_rng, full=(k == 0)) for k in range(n_captions)]
    n = cfg.clip_samples
    sr = cfg.sample_rate
    active = attr_rng.uniform(0.2, 0.4) if attrs.get("duration") == "short" else attr_rng.uniform(0.75, 1.0)
    spec = Spec(
        rng=audio_rng,
        sr=sr,
        n=n,
        length=max(int(active * n), int(0.05 * sr), 1),
        pitch=attrs["pitch"],
        speed=attrs["speed"],
        reps=int(attrs.get("repetitions", 1)),
        direction=attrs.get("direction", "rising"),
    )
    sound = np.asarray(RENDERERS[fam.name](spec), dtype=np.float64)[:n]
    fade = min(int(0.01 * sr), len(sound) // 4)
    if fade > 1:  # no clicks at the edges of the active part
        ramp = np.linspace(0.0, 1.0, fade)
        sound[:fade] *= ramp
        sound[-fade:] *= ramp[::-1]
    peak = float(np.max(np.abs(sound))) if sound.size else 0.0
    lo, hi = _PEAK[attrs["loudness"]]
    target = attr_rng.uniform(lo, hi)
    if peak > 0:
        sound *= target / peak
    onset = int(attr_rng.integers(0, n - len(sound) + 1))
    out = np.zeros(n, dtype=np.float32)
    out[onset : onset + len(sound)] = sound
    # A faint noise floor, as any recording has (and no log of exact zeros).
    out += np.float32(6e-4) * (audio_rng.random(n, dtype=np.float32) - np.float32(0.5))
    attrs["onset_seconds"] = onset / sr
    attrs["active_seconds"] = len(sound) / sr
    return SynthSound(out, fam.name, attrs, captions)


def _resolve_families(families: Iterable[str] | str | None, exclude: Iterable[str] | str | None) -> list[str]:
    def names(x: Iterable[str] | str) -> list[str]:
        return [s.strip() for s in x.split(",") if s.strip()] if isinstance(x, str) else list(x)

    chosen = names(families) if families is not None else list(FAMILIES)
    dropped = set(names(exclude)) if exclude is not None else set()
    unknown = (set(chosen) | dropped) - set(FAMILIES)
    if unknown:
        raise DataError(f"unknown synth families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    kept = [f for f in FAMILIES if f in set(chosen) - dropped]
    if not kept:
        raise DataError("no synth families left to draw from")
    return kept


class Synth(AudioDataset):
    """``n`` generated sounds for ``seed``, from the chosen ``families`` (all by default).

    ``target="caption"`` (default) yields the first caption; ``target="label"``
    the index of the family in ``class_names``. ``.captions(i)`` gives all
    captions, ``.sound(i)`` the full :class:`SynthSound` (attributes included).
    """

    name = "synth"

    def __init__(
        self,
        n: int = 1000,
        seed: int = 0,
        audio_config: AudioConfig | None = None,
        families: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("target", "caption")
        kwargs["windows"] = False
        super().__init__(audio_config, **kwargs)
        if n < 0:
            raise DataError(f"synth: n must be >= 0, got {n}")
        self.seed = int(seed)
        self.families = _resolve_families(families, exclude)
        self.class_names = list(self.families)
        wanted = set(self.families)
        self.global_indices: list[int] = []
        g = 0
        while len(self.global_indices) < n:
            if family_of(self.seed, g) in wanted:
                self.global_indices.append(g)
            g += 1
        entries = []
        for g in self.global_indices:
            fam = family_of(self.seed, g)
            entries.append(
                Entry(Path(f"synth-s{self.seed}") / f"{g:07d}", f"synth-s{self.seed}/{g:07d}", self.class_names.index(fam))
            )
        self._build(entries, probe=False)

    def _global(self, i: int) -> int:
        return self.global_indices[self._items[i].entry]

    def sound(self, i: int) -> SynthSound:
        """Item ``i`` rendered, with its family, attributes and captions."""
        return render(self.seed, self._global(i), self.audio_config)

    def captions(self, i: int) -> list[str]:
        return describe(self.seed, self._global(i)).captions

    def _read(self, entry: Entry) -> np.ndarray:
        return render(self.seed, int(entry.rel.rsplit("/", 1)[1]), self.audio_config).audio

    def target_of(self, entry: Entry, window: int) -> int | str | None:
        if self.target_kind == "caption":
            return describe(self.seed, int(entry.rel.rsplit("/", 1)[1])).captions[0]
        return super().target_of(entry, window)
