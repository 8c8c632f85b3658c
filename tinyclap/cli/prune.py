"""`tinyclap prune`: keep the k latent dims that matter, slice student + bank, fine-tune the projection."""

from __future__ import annotations

import argparse

from tinyclap.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune",
        help="latent pruning: keep k of D shared dims (by count, flash budget, or a sweep)",
        description="Score every shared audio-text dim on calibration clips (teacher audio embeddings from the "
        "cache) and the bank's prompts, keep the top k, slice the student's projection and the bank, and "
        "fine-tune the projection (distillation stage 2) against the teacher restricted to those dims.",
    )
    p.add_argument("--student", required=True, help="student checkpoint (.json)")
    p.add_argument("--cache", required=True, help="teacher embedding cache folder (tinyclap cache)")
    p.add_argument("--bank", required=True, help="prompt bank .npz built by the same teacher")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--dims", type=int, help="number of dims k to keep")
    how.add_argument("--flash", help="int8 flash budget, e.g. 1MB: keep the largest k that fits")
    how.add_argument("--sweep", help="comma-separated k values, e.g. 1024,512,256,128,64,32")
    p.add_argument("--scorer", choices=["similarity", "text_magnitude", "text_variance"], default="similarity")
    p.add_argument("--max-clips", type=int, default=None, help="calibrate on at most this many cached clips")
    p.add_argument("--captions", default=None,
                   help="score with these texts (one per line) instead of the bank's prompts; embedded by the "
                   "bank's teacher (or --teacher)")
    p.add_argument("--teacher", default=None, help="teacher whose text tower embeds --captions (default: the bank's)")
    p.add_argument("--data", action="append", default=[],
                   help="audio to fine-tune on (dataset spec covered by the cache); repeatable; omit to skip fine-tuning")
    p.add_argument("--val-data", action="append", default=[], help="validation audio for fine-tuning (spec)")
    p.add_argument("--eval", dest="eval_data", default=None,
                   help="labelled dataset spec for the sweep's zero-shot accuracy (required with --sweep)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the stage2 preset's)")
    p.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch size")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.bank import PromptBank
    from tinyclap.distill.cache import EmbeddingCache
    from tinyclap.prune import prune, sweep
    from tinyclap.io import check_output
    from tinyclap.students import load_student

    check_output(args.out, "dir")  # before scoring and fine-tuning, not after them
    student = load_student(args.student)
    bank = PromptBank.load(args.bank)
    cache = EmbeddingCache.open(args.cache)
    # Fine-tuning recipe overrides (tinyclap.distill presets); only used when --data is given.
    overrides = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size}.items() if v is not None}
    text = None
    if args.captions:
        from pathlib import Path

        from tinyclap.prune import text_embeddings
        from tinyclap.teachers.registry import load_teacher

        path = Path(args.captions)
        if not path.is_file():
            raise CLIError(f"{path}: no such captions file")
        text = text_embeddings(load_teacher(args.teacher or bank.teacher), path.read_text(encoding="utf-8").splitlines())
    common = dict(
        cache=cache,
        text=text,
        scorer=args.scorer,
        max_clips=args.max_clips,
        finetune_data=args.data or None,
        val_data=args.val_data or None,
        **overrides,
    )
    if args.sweep:
        try:
            ks = [int(x) for x in args.sweep.split(",") if x.strip()]
        except ValueError:
            raise CLIError(f"--sweep expects comma-separated integers, got {args.sweep!r}") from None
        if not args.eval_data:
            raise CLIError("--sweep needs --eval SPEC (a labelled dataset to measure zero-shot accuracy on)")
        from tinyclap.evaluate import open_eval_dataset

        eval_data = open_eval_dataset(args.eval_data, student.audio_config)
        rows = sweep(student, bank, ks, eval_data, args.out, progress=not args.quiet, **common)
        for r in rows:
            print(f"k={r['k']:>5}  params {r['params']:>10,}  accuracy {100 * r['accuracy']:6.2f}%")
        print(f"wrote {args.out}/sweep.json, sweep.csv, sweep.md, sweep.png")
        return 0

    flash = None
    if args.flash:
        from tinyclap.students.scaling import parse_size

        flash = parse_size(args.flash)
    if args.quiet:
        common["progress"] = False
    result = prune(student, bank, args.dims, flash_bytes=flash, out_dir=args.out, **common)
    removed = result.params_before - result.params_after
    print(
        f"kept {result.k} of {student.dim} dims ({result.scorer}); params {result.params_before:,} -> "
        f"{result.params_after:,} (-{removed:,})" + ("; projection fine-tuned" if result.finetune else "")
    )
    print(f"wrote {result.paths['student']}, {result.paths['bank']}, {result.paths['report']}")
    return 0
