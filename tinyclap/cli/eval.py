"""`tinyclap eval`: zero-shot accuracy of a student or teacher on ESC-50 / UrbanSound8K / TUT17."""

from __future__ import annotations

import argparse

from tinyclap.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="zero-shot evaluation (accuracy, per-class, macro-F1, agreement, confusion matrix)",
        description="Run the reference zero-shot protocol: ESC-50 all clips, UrbanSound8K all folds, "
        "TUT17 evaluation split with windows aggregated per clip. Broken clips are skipped and counted.",
    )
    p.add_argument("--model", required=True,
                   help="student checkpoint (.json), exported model (.onnx, .int8.tflite or an export folder, "
                        "read with its report.json), or teacher name/path")
    p.add_argument("--teacher", default=None,
                   help="teacher for teacher-student agreement and for building the bank when --bank is absent")
    p.add_argument("--teacher-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra option for load_teacher; repeatable")
    p.add_argument("--dataset", required=True, help="esc50:ROOT, us8k:ROOT, tut17:ROOT (or any labelled spec)")
    p.add_argument("--folds", default=None, help="only these folds, e.g. 1,2 (default: the full protocol)")
    p.add_argument("--bank", default=None, help="prompt bank .npz (default: built now from the teacher's text tower)")
    p.add_argument("--templates", default=None, help="templates for a bank built now (file or: reference, default)")
    p.add_argument("--per-fold", action="store_true", help="also report every fold separately")
    p.add_argument("--aggregate", choices=["embedding", "logits"], default="embedding",
                   help="how windows of one clip are combined (default: mean embedding)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for decoding")
    p.add_argument("--out", default=None, help="directory for metrics.json, predictions.csv and confusion.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.bank import PromptBank
    from tinyclap.cli.bank import parse_options
    from tinyclap.evaluate import evaluate, open_eval_dataset, write_report
    from tinyclap.zeroshot import load_encoder

    if args.out:
        from tinyclap.io import check_output

        check_output(args.out, "dir")  # before the (long) evaluation, not after it
    options = parse_options(args.teacher_opt)
    encoder = load_encoder(args.model, **options)
    teacher = None
    if args.teacher:
        from tinyclap.teachers.registry import load_teacher

        teacher = load_teacher(args.teacher, **options)
    text_tower = teacher if teacher is not None else (encoder if hasattr(encoder, "embed_text") else None)

    dataset = open_eval_dataset(args.dataset, encoder.audio_config, folds=args.folds)
    if args.bank:
        bank = PromptBank.load(args.bank)
    elif text_tower is not None:
        bank = PromptBank.build(text_tower, dataset.class_names or [], args.templates)
    else:
        raise CLIError("a student needs --bank bank.npz (or --teacher NAME to build one now)")

    result = evaluate(
        encoder, bank, dataset,
        teacher=teacher,
        per_fold=args.per_fold,
        aggregate=args.aggregate,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=not args.quiet,
        name=args.dataset.split(":", 1)[0] + (f" folds {args.folds}" if args.folds else ""),
    )
    print(result.summary())
    if result.broken:
        print(f"skipped {len(result.broken)} broken clip(s), e.g. {result.broken[0]}")
    if args.out:
        paths = write_report(result, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
