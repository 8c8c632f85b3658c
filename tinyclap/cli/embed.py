"""`tinyclap embed`: embed audio files and/or prompts with a teacher; print them or save them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from tinyclap.cli import torch_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed audio files and/or text prompts with a teacher",
        description=(
            "Embed audio files and/or text prompts with a CLAP teacher. Without --out, print each "
            "embedding's shape and first values (and audio x text cosines when both are given); with "
            "--out, save them: .npy for one kind of input, .npz (keys audio, text, files, prompts) for both."
        ),
    )
    p.add_argument(
        "--teacher", required=True, help="msclap-2022, msclap-2023, laion/..., a ClapModel folder, local:PATH or a .pth"
    )
    p.add_argument("--checkpoint", help="MS-CLAP weights file (instead of $TINYCLAP_HOME / the hub cache)")
    p.add_argument("--text-model", help="MS-CLAP text encoder (hub id or folder)")
    p.add_argument("--clap-version", choices=["2022", "2023"], help="MS-CLAP version of a .pth given as --teacher")
    p.add_argument("--audio", nargs="+", default=[], metavar="FILE", help="sound files to embed")
    p.add_argument("--text", nargs="+", default=[], metavar="PROMPT", help="prompts to embed")
    p.add_argument("--out", type=Path, help="save embeddings here (.npy or .npz) instead of printing them")
    p.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    p.add_argument("--device", type=torch_device, default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyclap.teachers.embedding import EMBEDDING_SUFFIXES, embed_audio_files, save_embeddings
    from tinyclap.teachers.registry import load_teacher

    if not args.audio and not args.text:
        raise ValueError("give --audio FILE... and/or --text PROMPT...")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    # Refuse a bad --out before the (slow) teacher load and embedding work.
    if args.out is not None and args.out.suffix not in EMBEDDING_SUFFIXES:
        raise ValueError(f"{args.out}: --out must end in .npy or .npz")
    if args.out is not None and args.out.suffix == ".npy" and args.audio and args.text:
        raise ValueError(f"{args.out}: .npy holds one kind of input; use .npz for --audio and --text together")
    if args.out is not None:
        from tinyclap.io import check_output

        check_output(args.out, "file")
    options: dict[str, Any] = {}
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
    if args.text_model:
        options["text_model"] = args.text_model
    if args.clap_version:
        options["version"] = args.clap_version
    teacher = load_teacher(args.teacher, device=args.device, **options)
    audio = embed_audio_files(teacher, args.audio, batch_size=args.batch_size) if args.audio else None
    text = teacher.embed_text(list(args.text)) if args.text else None
    if args.out is not None:
        save_embeddings(args.out, audio, text, args.audio, args.text, teacher=teacher.name, logit_scale=teacher.logit_scale)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(format_report(audio, text, args.audio, args.text))
    return 0


def format_report(audio: Any, text: Any, files: Sequence[str], prompts: Sequence[str], n_values: int = 5) -> str:
    """Shape and first values per embedding; the audio x text cosine matrix when both are given."""
    lines: list[str] = []
    for kind, emb, names in (("audio", audio, files), ("text", text, prompts)):
        if emb is None:
            continue
        lines.append(f"{kind}: {tuple(emb.shape)}")
        for name, row in zip(names, emb.numpy()):
            head = " ".join(f"{v:+.4f}" for v in row[:n_values])
            lines.append(f"  {name}: [{head}{' ...' if len(row) > n_values else ''}]")
    if audio is not None and text is not None:
        import numpy as np  # here, not at the top: `tinyclap --help` imports every verb module

        cos = (audio @ text.T).numpy()  # both unit-norm: dot product is the cosine
        lines.append("cosine (rows: audio, columns: text):")
        lines.append("  " + " | ".join(f"{p}" for p in prompts))
        for name, row in zip(files, cos):
            lines.append(f"  {name}: " + " ".join(f"{v:+.4f}" for v in row) + f"  -> {prompts[int(np.argmax(row))]}")
    return "\n".join(lines)
