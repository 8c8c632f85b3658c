"""`tinyclap bank`: embed class prompts once with a teacher's text tower → bank.npz."""

from __future__ import annotations

import argparse

from tinyclap.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bank",
        help="build a prompt bank (class text embeddings) for zero-shot classification",
        description="Embed every label under each template with the teacher's text tower, "
        "average per label, and save the bank as .npz (no text encoder needed at deployment).",
    )
    p.add_argument("--teacher", required=True, help="teacher name or path (msclap-2022, local:PATH, HF id/dir)")
    p.add_argument("--teacher-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra option for load_teacher (e.g. checkpoint=PATH); repeatable")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", help="text file with one label per line")
    src.add_argument("--dataset", help="take the labels of a dataset, e.g. esc50:ROOT, us8k:ROOT")
    p.add_argument("--templates", default=None,
                   help="template file (one per line, '{}' marks the label) or a set name: reference, default")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=run)


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` → dict; a pair without '=' is a CLIError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--teacher-opt expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from tinyclap.bank import PromptBank, read_labels
    from tinyclap.io import check_output
    from tinyclap.teachers.registry import load_teacher

    check_output(args.out, "file")
    teacher = load_teacher(args.teacher, **parse_options(args.teacher_opt))
    if args.labels:
        labels = read_labels(args.labels)
    else:
        from tinyclap.data import open_dataset

        labels = open_dataset(args.dataset, teacher.audio_config).class_names or []
        if not labels:
            raise CLIError(f"{args.dataset}: dataset has no class names")
    bank = PromptBank.build(teacher, labels, args.templates)
    path = bank.save(args.out)
    print(f"wrote {path}: {bank.num_classes} labels x {len(bank.templates)} templates, dim {bank.dim}, teacher {bank.teacher}")
    return 0
