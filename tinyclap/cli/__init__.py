"""The `tinyclap` console script: a thin dispatcher, one module per verb.

Each verb lives in ``tinyclap/cli/<verb>.py`` and defines ``register(subparsers)``
(which adds its parser and sets ``func``) and nothing heavier than argument
parsing: the work is done by library functions that Python users call directly.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tinyclap import __version__
from tinyclap.errors import TinyClapError

# Verb modules, in the order `tinyclap --help` lists them. Add a verb by adding
# its module here.
VERBS: list[str] = [
    "quickstart", "embed", "data", "pretrain", "cache", "distill", "scale",
    "bank", "eval", "prune", "export", "firmware", "demo",
]


class CLIError(Exception):
    """An error the CLI reports as one line, without a traceback."""


_DEVICE = r"auto|cpu|mps|meta|(cuda|xpu|hip|npu|hpu|mtia|privateuseone)(:\d+)?"


def torch_device(text: str) -> str:
    """argparse type: ``auto`` or a torch device string, checked without importing torch (``--help`` stays fast)."""
    import re

    if not re.fullmatch(_DEVICE, text.strip()):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. auto, cpu, cuda, cuda:1, mps)")
    return text.strip()


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0 (``--clip-seconds 0`` is refused, not silently ignored)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyclap",
        description="Zero-shot audio classification on tiny devices.",
    )
    parser.add_argument("--version", action="version", version=f"tinyclap {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERBS:
        importlib.import_module(f"tinyclap.cli.{name}").register(sub)
    for verb_parser in sub.choices.values():
        add_common_options(verb_parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every verb takes, defined once here (``build_parser`` adds them to each verb).

    A verb with sub-actions (``tinyclap firmware build``) gets them on each action, where
    its other options are.
    """
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if nested:
        for action in nested:
            for sub_parser in action.choices.values():
                add_common_options(sub_parser)
        return
    if "--debug" not in parser._option_string_actions:
        parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")


# Verbs that run large CPU batches through a model (process-wide allocator setting, see tinyclap.students.speed).
TRAINING_VERBS = frozenset({"quickstart", "pretrain", "cache", "distill", "prune", "eval", "embed"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.verb in TRAINING_VERBS:
        from tinyclap.students.speed import reuse_freed_memory

        reuse_freed_memory()  # large CPU batches: reuse freed pages instead of re-faulting them each step
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; re-run the same command to resume", file=sys.stderr)
        return 130
    except (CLIError, TinyClapError, OSError, ValueError) as err:
        # Errors about the user's input and files (OSError: a path that cannot be read or
        # written; ValueError: the library's bad-value error) are one line. Anything else is
        # a bug and keeps its traceback; --debug shows the traceback of these too.
        if getattr(args, "debug", False):
            raise
        print(f"tinyclap {args.verb}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    return int(result or 0)


def _one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError without a message says what it was)."""
    text = str(err).strip()
    if isinstance(err, OSError) and not isinstance(err, TinyClapError):
        detail = err.strerror or text or type(err).__name__
        names = [str(n) for n in (err.filename, err.filename2) if n is not None]
        text = f"{' -> '.join(names)}: {detail}" if names else detail
    return " ".join(text.split()) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
