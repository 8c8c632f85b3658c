"""Zero-shot prompt templates, kept as data (as open_clip does).

A template is a format string with exactly one ``{}`` where the label goes.
A :class:`~tinyclap.bank.PromptBank` embeds every label under every template
and averages the unit text embeddings per label ("prompt ensembling").

``REFERENCE`` is the single prompt of the tinyCLAP reference code
(``"this is the sound of " + label``); ``DEFAULT`` adds a few curated phrasings
that CLAP-style text towers saw during training (captions describe sounds in
these words). Label text is made readable first: ``crackling_fire`` becomes
``crackling fire``, as the reference ESC-50 / TUT17 loaders do.
"""

from __future__ import annotations

from pathlib import Path

from tinyclap.errors import TinyClapError

__all__ = [
    "REFERENCE_TEMPLATE",
    "REFERENCE",
    "DEFAULT",
    "TEMPLATE_SETS",
    "TemplateError",
    "label_text",
    "render",
    "check_templates",
    "read_templates",
    "resolve_templates",
]

REFERENCE_TEMPLATE = "this is the sound of {}"

REFERENCE: tuple[str, ...] = (REFERENCE_TEMPLATE,)

DEFAULT: tuple[str, ...] = (
    REFERENCE_TEMPLATE,
    "this is a sound of {}",
    "a recording of {}",
    "the sound of {}",
    "a sound of {} can be heard",
    "{}",
)

# Named sets usable wherever a template file is accepted (``--templates reference``).
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"reference": REFERENCE, "default": DEFAULT}


class TemplateError(TinyClapError, ValueError):
    """A template (or template file) that cannot be used to build prompts."""


def label_text(label: str) -> str:
    """The words a label stands for: underscores become spaces, whitespace is collapsed."""
    return " ".join(str(label).replace("_", " ").split())


def check_templates(templates: list[str] | tuple[str, ...], source: str = "templates") -> list[str]:
    """Validate templates (non-empty list, each with exactly one ``{}``); returns them as a list."""
    templates = list(templates)
    if not templates:
        raise TemplateError(f"{source}: no templates given")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise TemplateError(f"{source}: template {t!r} must contain exactly one '{{}}' for the label")
        try:
            t.format("x")
        except (IndexError, KeyError, ValueError) as err:
            raise TemplateError(f"{source}: template {t!r} is not a format string ({err})") from None
    return templates


def render(templates: list[str] | tuple[str, ...], label: str) -> list[str]:
    """Every prompt for one label, in template order."""
    text = label_text(label)
    return [t.format(text) for t in templates]


def read_templates(path: str | Path) -> list[str]:
    """Templates from a text file: one per line; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path}: no such template file")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return check_templates([ln for ln in lines if ln and not ln.startswith("#")], source=str(path))


def resolve_templates(spec: str | Path | list[str] | tuple[str, ...] | None) -> list[str]:
    """``None`` → DEFAULT; a set name ("reference", "default"); a file path; or a list of templates."""
    if spec is None:
        return list(DEFAULT)
    if isinstance(spec, (list, tuple)):
        return check_templates(spec)
    if str(spec) in TEMPLATE_SETS:
        return list(TEMPLATE_SETS[str(spec)])
    return read_templates(spec)
