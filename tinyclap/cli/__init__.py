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
    "bank", "eval", "prune", "export", "demo",
]


class CLIError(Exception):
    """An error the CLI reports as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyclap",
        description="Zero-shot audio classification on tiny devices.",
    )
    parser.add_argument("--version", action="version", version=f"tinyclap {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERBS:
        importlib.import_module(f"tinyclap.cli.{name}").register(sub)
    return parser


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
    except (CLIError, TinyClapError, ValueError, FileNotFoundError, RuntimeError) as err:
        if getattr(args, "debug", False):
            raise
        print(f"tinyclap {args.verb}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
