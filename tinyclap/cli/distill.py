"""`tinyclap distill`: train a student on cached teacher embeddings (stage 1 or 2)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tinyclap.cli import torch_device


def _key_value(text: str) -> tuple[str, Any]:
    import yaml  # here, not at the top: `tinyclap --help` imports every verb module

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distill",
        help="distil cached teacher embeddings into a student",
        description=(
            "Train a student to reproduce the teacher embeddings in a cache (loss: -cosine). "
            "Stage 1 (preset stage1) trains the whole student, stage 2 only its projection. "
            "Writes last/best checkpoints, metrics.jsonl and curves.png to --out; Ctrl-C saves, "
            "--resume continues. Run under torchrun for data parallelism."
        ),
    )
    p.add_argument("--cache", type=Path, required=True, help="cache folder from `tinyclap cache`")
    p.add_argument("--data", nargs="+", required=True, metavar="SPEC", help="training data specs (as cached)")
    p.add_argument("--student", required=True, help="student name/preset (phinet_alpha_1.50_beta_0.75_t0_6_N_7) or checkpoint")
    p.add_argument("--preset", default="stage1", help="stage1 (default), stage2, quick, or a recipe YAML")
    p.add_argument("--out", type=Path, default=Path("runs/distill"), help="run folder (default runs/distill)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, help="global batch size (split across ranks under torchrun)")
    p.add_argument("--val-split", type=float, help="fraction of training files held out (default from preset)")
    p.add_argument("--val-data", nargs="+", metavar="SPEC", help="validation data specs (instead of a split)")
    p.add_argument("--seed", type=int)
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    p.add_argument("--device", type=torch_device, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--augment", action="store_true", help="turn student-side augmentation on")
    p.add_argument("--stream-window", type=float, metavar="SECONDS",
                   help="also train the streamed path the device runs: clips as back-to-back windows of about this "
                        "many seconds (features per window, mean, head); see `tinyclap export --window`")
    p.add_argument("--stream-weight", type=float, metavar="W",
                   help="loss = (1-W) * whole clip + W * streamed (default 0.5; 1 = streamed only)")
    p.add_argument("--stream-consistency", type=float, metavar="C",
                   help="add C * (1 - cos(streamed, whole clip)) to the loss: trains the streaming contract "
                        "directly (default 0; needs --stream-window)")
    p.add_argument("--set", dest="settings", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   help="any recipe setting, dotted for groups (--set scheduler.patience=5); repeatable")
    p.add_argument("--dims", type=Path, help="file of kept latent dims (one int per line, or JSON list)")
    p.add_argument("--zeroshot-data", metavar="SPEC", help="labelled set for zero-shot accuracy during validation")
    p.add_argument("--zeroshot-bank", type=Path, help="PromptBank .npz of the teacher's class prompts for --zeroshot-data")
    p.add_argument("--zeroshot-teacher", help="teacher whose text tower builds the prompts (instead of --zeroshot-bank)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _read_dims(path: Path) -> list[int]:
    import yaml

    text = path.read_text().strip()
    try:
        values = yaml.safe_load(text) if text.startswith("[") else text.split()
        if not isinstance(values, list):
            raise ValueError(values)
        dims = []
        for v in values:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError(v)
            try:
                dims.append(int(v))
            except (TypeError, ValueError):
                raise ValueError(v) from None
    except (ValueError, TypeError, yaml.YAMLError) as err:
        found = err.args[0] if isinstance(err, ValueError) and err.args else err
        raise ValueError(f"--dims {path}: expected latent dim indices (one integer per line, or a JSON list), "
                         f"found {str(found)[:60]!r}") from None
    if not dims:
        raise ValueError(f"--dims {path}: no dims listed")
    return dims


def _student(spec: str, cache: Any, dims: list[int] | None) -> Any:
    """A checkpoint to continue from (stage 2 after stage 1), or a fresh student by name."""
    from tinyclap.students import AudioStudent, load_student

    path = Path(spec)
    if path.suffix in (".json", ".safetensors") or path.is_dir():
        return load_student(path)
    from tinyclap.students.encoder import resolve_config

    _, preset_audio = resolve_config(spec)
    if preset_audio != cache.audio_config:
        # The student learns on the clips the teacher embedded; a shorter deployment window
        # needs a cache built with `tinyclap cache --clip-seconds`.
        print(f"note: the student preset's audio config {preset_audio} differs from the cache's; "
              f"training at the cache's {cache.audio_config}", file=sys.stderr)
    student = AudioStudent.from_name(spec, dim=len(dims) if dims else cache.full_dim, audio_config=cache.audio_config)
    if dims:
        student.kept_dims = list(dims)
    return student


def _zeroshot(args: argparse.Namespace, cache: Any) -> Any:
    from tinyclap.data import open_dataset

    if not args.zeroshot_data:
        if args.zeroshot_bank or args.zeroshot_teacher:
            raise ValueError("--zeroshot-bank/--zeroshot-teacher need --zeroshot-data")
        return None
    data = open_dataset(args.zeroshot_data, cache.audio_config, target="label")
    if not data.class_names:
        raise ValueError(f"{args.zeroshot_data}: zero-shot validation needs a labelled dataset")
    from tinyclap.bank import PromptBank

    if args.zeroshot_bank:
        bank = PromptBank.load(args.zeroshot_bank)
        if list(bank.labels) != list(data.class_names):
            raise ValueError(f"{args.zeroshot_bank}: labels {bank.labels[:3]}... differ from {args.zeroshot_data}'s classes")
    elif args.zeroshot_teacher:
        from tinyclap.teachers.registry import load_teacher

        bank = PromptBank.build(load_teacher(args.zeroshot_teacher), data.class_names)
    else:
        raise ValueError("--zeroshot-data needs --zeroshot-bank FILE or --zeroshot-teacher NAME")
    if not cache.matches(bank.teacher, getattr(bank, "teacher_id", None)):  # by identity: moved runs still match
        print(f"note: prompt bank from teacher {bank.teacher!r}, cache from {cache.teacher_name!r}")
    return (bank, data)


def run(args: argparse.Namespace) -> int:
    import torch

    from tinyclap.distill.cache import EmbeddingCache
    from tinyclap.distill.presets import make_config
    from tinyclap.distill.train import DistillInterrupted, distill

    overrides: dict[str, Any] = dict(args.settings)
    flags = {
        "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "val_split": args.val_split,
        "seed": args.seed, "num_workers": args.num_workers, "device": args.device,
        "stream_window": args.stream_window, "stream_weight": args.stream_weight,
        "stream_consistency": args.stream_consistency,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if args.augment:
        overrides["augment.enabled"] = True
    if args.no_progress:
        overrides["progress"] = False
    from tinyclap.io import check_output

    check_output(args.out, "dir")
    config = make_config(args.preset, **overrides)
    cache = EmbeddingCache.open(args.cache)
    dims = _read_dims(args.dims) if args.dims else None
    torch.manual_seed(config.seed)  # the student's initial weights
    student = _student(args.student, cache, dims)
    zeroshot = _zeroshot(args, cache)
    try:
        result = distill(
            student,
            cache,
            list(args.data),
            list(args.val_data) if args.val_data else None,
            config=config,
            out_dir=args.out,
            resume=args.resume,
            dims=dims,
            zeroshot=zeroshot,
        )
    except DistillInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if result.history and (result.last_path is not None):
        last = result.history[-1]
        best = f", best {result.best_path}" if result.best_path else ""
        print(f"done: {len(result.history)} epochs, train loss {last['train_loss']:.4f}; last {result.last_path}{best}")
    if result.broken:
        print(f"skipped {len(result.broken)} broken files (listed in {args.out / 'run.json'})")
    return 0
