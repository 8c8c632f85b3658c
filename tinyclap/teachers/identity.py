"""A teacher's identity: a digest of what it computes, not of where it was loaded from.

A teacher's ``name`` (``local:/abs/path/teacher.json``, a folder path, a hub id)
is for people; it changes when a run folder is moved or copied. Caches, and the
checks that refuse to mix teachers, compare ``teacher.identity`` instead:

======================  ==========================================================
teacher                 identity
======================  ==========================================================
``local:`` (on disk)    ``local#`` + sha256(saved model config, audio config, dim,
                        sha256 of the ``.safetensors`` file bytes)
MS-CLAP (from a file)   ``msclap-<version>#`` + sha256(spec, sha256 of the ``.pth``)
LAION ClapModel         ``laion#`` + sha256(model config, the loaded weights)
anything in memory      ``<family>#`` + sha256(config, the module's weights)
any other teacher       its ``name`` (test doubles, third-party encoders)
======================  ==========================================================

File digests are streamed once per process and remembered by (path, size,
mtime), so asking again is free. MS-CLAP and LAION identities are computed on
first use (``functools.cached_property``): loading one only to embed a few clips
never hashes its weights. A ``local:`` teacher is hashed when it loads (its
files are small), so a checkpoint rewritten afterwards cannot lend it its identity.

This module stays light (no torch at import) so the registry and the CLI can use it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from collections.abc import Mapping
from typing import Any

__all__ = [
    "file_sha256",
    "state_sha256",
    "content_identity",
    "local_identity",
    "teacher_identity",
    "identity_of_name",
    "same_teacher",
]

_CHUNK = 1 << 20
# (resolved path, size, mtime_ns) -> hex digest: a file is hashed once per process unless it changes.
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed in 1 MiB chunks and remembered by (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        digest = _FILE_DIGESTS[key] = h.hexdigest()
    return digest


def state_sha256(state: Mapping[str, Any]) -> str:
    """Hex sha256 of a state dict (sorted names, dtypes, shapes, raw bytes): weights held in memory."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy
    return h.hexdigest()


def _canonical(config: Any) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def content_identity(family: str, config: Any, weights_digest: str) -> str:
    """``family#<32 hex>``: a digest of a JSON-able config and a weights digest."""
    blob = f"{family}|{_canonical(config)}|{weights_digest}".encode()
    return f"{family}#{hashlib.sha256(blob).hexdigest()[:32]}"


def local_identity(path: str | Path) -> str:
    """Identity of a ``tinyclap pretrain`` teacher checkpoint (its ``.json``, ``.safetensors`` or stem).

    Only what the embeddings depend on enters: the saved model config, audio
    config and dim, and the weights file's bytes; not the path, epoch, metrics or
    licence line, so a copied or moved run folder keeps its teacher's identity.
    """
    from tinyclap.checkpoint import checkpoint_paths

    weights, meta_path = checkpoint_paths(path)
    meta = json.loads(meta_path.read_text())
    config = {k: meta.get(k) for k in ("model", "audio_config", "dim")}
    return content_identity("local", config, file_sha256(weights))


def teacher_identity(teacher: Any) -> str:
    """``teacher.identity`` when the teacher has one, else its name (the pre-identity behaviour)."""
    identity = getattr(teacher, "identity", None)
    return str(identity) if identity else str(teacher.name)


def _local_meta(path: Path) -> Path | None:
    """The teacher ``.json`` a ``local:`` name points at (a folder with one teacher checkpoint, or a file)."""
    if path.is_dir():
        found = []
        for meta in sorted(path.glob("*.json")):
            try:
                if json.loads(meta.read_text()).get("kind") == "teacher":
                    found.append(meta)
            except (OSError, ValueError, AttributeError):
                continue
        return found[0] if len(found) == 1 else None
    meta = path.with_suffix(".json") if path.suffix in ("", ".safetensors") else path
    return meta if meta.is_file() else None


def identity_of_name(name: str) -> str | None:
    """The identity of a ``local:PATH`` teacher whose files are still at PATH; None otherwise.

    Lets a record that kept only a teacher's name (a prompt bank, a cache written
    before identities) be matched by content while the named files exist.
    """
    if not name.startswith("local:"):
        return None
    meta = _local_meta(Path(name[len("local:") :]).expanduser())
    if meta is None:
        return None
    try:
        return local_identity(meta)
    except (OSError, ValueError, KeyError):
        return None


def same_teacher(name_a: str, id_a: str | None, name_b: str, id_b: str | None) -> bool:
    """Whether two records (name, identity or None) come from the same teacher.

    Identities decide when both sides have one. Otherwise equal names match (the
    old rule), and a ``local:`` name whose files are still on disk is resolved to
    its identity and compared with the other side's.
    """
    if id_a and id_b:
        return id_a == id_b
    if name_a == name_b:
        return True
    for name, other in ((name_a, id_b), (name_b, id_a)):
        if other:
            resolved = identity_of_name(name)
            if resolved is not None:
                return resolved == other
    return False
