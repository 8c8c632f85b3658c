"""`tinyclap quickstart`: the whole pipeline, offline, in minutes on a laptop CPU."""

from __future__ import annotations

import argparse

# The options dataclass only (its module imports no torch); the pipeline is imported by run().
from tinyclap.quickstart.options import QuickstartOptions


def register(sub: argparse._SubParsersAction) -> None:
    d = QuickstartOptions()
    p = sub.add_parser(
        "quickstart",
        help="end to end on built-in data: pretrain, cache, distil, prune, export, evaluate",
        description="Pretrain a small CLAP teacher, distil an MCU-sized student, prune it to a "
        "target's budget, export int8 and evaluate everything, offline. Re-running reuses finished steps.",
    )
    p.add_argument("--out", default=d.out, help=f"run folder (default {d.out})")
    p.add_argument("--data", nargs="+", default=[], metavar="SPEC",
                   help="training data specs instead of the synth corpus (see docs/datasets.md)")
    p.add_argument("--eval-data", nargs="+", default=[], metavar="SPEC",
                   help="labelled evaluation specs (default: held-out synth clips, seen and unseen families)")
    p.add_argument("--target", default=d.target, help=f"device target (default {d.target})")
    p.add_argument("--student-preset", default=d.student_preset, help=f"student preset (default {d.student_preset})")
    p.add_argument("--n-train", type=int, default=d.n_train, help="synth training clips")
    p.add_argument("--n-eval", type=int, default=d.n_eval, help="synth clips per evaluation set")
    p.add_argument("--distill-epochs", type=int, default=d.distill_epochs)
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--fresh", action="store_true", help="delete the run folder first instead of reusing its steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.io import check_output
    from tinyclap.quickstart import run_quickstart

    check_output(args.out, "dir")
    opts = QuickstartOptions(
        out=args.out, data=args.data, eval_data=args.eval_data, target=args.target,
        student_preset=args.student_preset, n_train=args.n_train, n_eval=args.n_eval,
        distill_epochs=args.distill_epochs, pretrain_epochs=args.pretrain_epochs, seed=args.seed,
    )
    report = run_quickstart(opts, fresh=args.fresh)
    print(f"report: {report}")
    print(report.read_text())
    return 0
