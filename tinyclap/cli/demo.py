"""`tinyclap demo`: serve the Gradio page (tinyclap.demo) for a student and/or teacher."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tinyclap.cli import CLIError, torch_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a local web page: classify uploaded or recorded audio with your own prompts",
        description=(
            "Serve a web page that ranks labels for an uploaded or recorded clip with a student and/or a "
            "teacher, side by side. With no model options it serves what `tinyclap quickstart` wrote to "
            "runs/quickstart. Typed prompts need a teacher (a text encoder); a student alone uses a saved bank. "
            "Listens on 127.0.0.1 only unless --host says otherwise."
        ),
    )
    p.add_argument("--run", type=Path, help="a run folder to take the teacher/student/bank from (default runs/quickstart)")
    p.add_argument("--teacher", help="msclap-2022, msclap-2023, laion/..., a ClapModel folder, local:PATH or a .pth")
    p.add_argument("--checkpoint", help="MS-CLAP weights file for --teacher")
    p.add_argument("--text-model", help="text encoder for --teacher (MS-CLAP hub id or folder; local teachers: folder)")
    p.add_argument("--clap-version", choices=["2022", "2023"], help="MS-CLAP version of a .pth given as --teacher")
    p.add_argument("--student", type=Path, help="student checkpoint (.json) from distill/prune")
    p.add_argument("--bank", type=Path, action="append", default=[], help="prompt bank .npz (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, help="port (default: $GRADIO_SERVER_PORT or the first free from 7860)")
    p.add_argument("--max-file-size", default="25mb", type=_file_size, help="largest upload accepted (default 25mb)")
    p.add_argument("--max-seconds", type=float, default=300.0, help="longest clip accepted, in seconds (default 300)")
    p.add_argument("--max-prompts", type=int, default=64, help="most prompts per request (default 64)")
    p.add_argument("--device", type=torch_device, default="cpu", help="torch device (default cpu)")
    p.add_argument("--check", action="store_true", help="load the models, print what would be served, and exit")
    p.set_defaults(func=run)


def _file_size(text: str) -> str:
    """argparse type: an upload limit as Gradio reads it (``25mb``, ``1gb``, ``500kb``, bytes)."""
    import re

    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb)?\s*", text, re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"not a file size: {text!r} (e.g. 25mb, 1gb, 500kb)")
    return text.strip()


def _port(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (1-65535)")
    return port


def run(args: argparse.Namespace) -> int:
    from tinyclap.demo.resolve import load_demo_models

    if args.max_seconds <= 0 or args.max_prompts < 1:
        raise ValueError("--max-seconds and --max-prompts must be positive")
    options: dict[str, Any] = {}
    for key, value in (("checkpoint", args.checkpoint), ("text_model", args.text_model), ("version", args.clap_version)):
        if value:
            options[key] = value
    models = load_demo_models(
        args.teacher,
        args.student,
        args.bank,
        args.run,
        device=args.device,
        teacher_options=options,
        max_seconds=args.max_seconds,
        max_prompts=args.max_prompts,
    )
    for role, _ in models.encoders():
        print(f"{role}: {models.model_name(role)}")
    for name, bank in models.banks.items():
        print(f"bank {name}: {len(bank)} labels")
    typed = "yes (teacher text encoder)" if models.can_use_prompts else "no (no teacher): bank labels only"
    print(f"typed prompts: {typed}")
    if args.check:
        return 0
    try:
        from tinyclap.demo.app import build_app, launch
    except ImportError as err:
        raise CLIError(f"the demo needs gradio ({err.name} is missing): pip install 'tinyclap[demo]'") from None
    models.warm_up()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the demo", file=sys.stderr)
    launch(build_app(models), host=args.host, port=args.port, max_file_size=args.max_file_size, block=True)
    return 0
