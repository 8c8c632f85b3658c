"""Getting weights: teacher names → files on disk, or an error that says what to download.

Where a name is looked up, in order:

1. an explicit local path (``checkpoint=`` for MS-CLAP, a directory for LAION);
2. ``$TINYCLAP_HOME`` (default ``~/.cache/tinyclap``): ``msclap/CLAP_weights_2022.pth``,
   ``laion/clap-htsat-unfused/`` (a ``save_pretrained`` / ``hf download --local-dir`` folder), ...;
3. the Hugging Face hub cache (``HF_HOME`` / ``HF_HUB_CACHE``), downloading into it
   when online. ``HF_HUB_OFFLINE=1`` never touches the network.

When nothing is found and nothing can be fetched, :class:`MissingWeightsError`
names the exact file, its URL, and where to put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tinyclap.errors import MissingWeightsError

__all__ = [
    "WeightsFile",
    "MSCLAP_WEIGHTS",
    "tinyclap_home",
    "hub_offline",
    "resolve_msclap_weights",
    "resolve_hf_model",
    "missing_hf_model",
    "hub_reachable",
    "offline_reason",
]

HF_ENDPOINT = "https://huggingface.co"
# Names ending like this are meant as files on disk, never as hub ids.
FILE_SUFFIXES = frozenset({".json", ".safetensors", ".pth", ".pt", ".bin"})


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file of a named teacher."""

    name: str  # registry name, e.g. "msclap-2022"
    repo_id: str  # Hugging Face repository
    filename: str  # file inside it
    subdir: str  # folder under $TINYCLAP_HOME where a manual download goes

    @property
    def url(self) -> str:
        return f"{HF_ENDPOINT}/{self.repo_id}/resolve/main/{self.filename}"

    @property
    def local_path(self) -> Path:
        """Where tinyclap looks for a manually downloaded copy."""
        return tinyclap_home() / self.subdir / self.filename


# microsoft/CLAP's msclap/CLAPWrapper.py downloads these with
# hf_hub_download("microsoft/msclap", "CLAP_weights_{2022,2023}.pth"); the same
# files are published on Zenodo (record 8378278).
MSCLAP_WEIGHTS: dict[str, WeightsFile] = {
    v: WeightsFile(f"msclap-{v}", "microsoft/msclap", f"CLAP_weights_{v}.pth", "msclap") for v in ("2022", "2023")
}


def tinyclap_home() -> Path:
    """``$TINYCLAP_HOME`` or ``~/.cache/tinyclap`` (read on every call, so tests can redirect it)."""
    return Path(os.environ.get("TINYCLAP_HOME") or Path.home() / ".cache" / "tinyclap").expanduser()


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now (the hub library only reads it at import time)."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    if env:
        return env in {"1", "ON", "YES", "TRUE"}
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return True


# Connect-probe results per endpoint, for this process: one short wait at most, not one per file.
_REACHABLE: dict[tuple[str, int], bool] = {}
PROBE_TIMEOUT_S = 3.0


def hub_endpoint() -> tuple[str, int]:
    """``(host, port)`` of the Hugging Face endpoint (``$HF_ENDPOINT`` or huggingface.co)."""
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or HF_ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub endpoint accepts a TCP connection within ``timeout`` seconds.

    Without it, a machine with no network waits ~30 s in the hub library's retries
    before the same 'not on this machine' error. With a proxy configured the probe is
    skipped (the proxy decides). Name lookup runs in a thread, so a hanging DNS
    cannot stretch the wait either.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    import socket
    import threading

    key = hub_endpoint()
    if key in _REACHABLE:
        return _REACHABLE[key]
    result = [False]

    def probe() -> None:
        try:
            with socket.create_connection(key, timeout=timeout):
                result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    _REACHABLE[key] = result[0]
    return result[0]


def offline_reason() -> str | None:
    """Why nothing can be downloaded now (``HF_HUB_OFFLINE``, or no network), or None when online."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    if not hub_reachable():
        host, port = hub_endpoint()
        return f"no network: could not connect to {host}:{port} (waited up to {PROBE_TIMEOUT_S:g} s)"
    return None


def resolve_msclap_weights(version: str, checkpoint: str | Path | None = None) -> Path:
    """The ``.pth`` file of MS-CLAP ``version`` ("2022" or "2023").

    ``checkpoint`` wins when given; then ``$TINYCLAP_HOME/msclap/CLAP_weights_<v>.pth``;
    then the hub cache (downloading when online).
    """
    if version not in MSCLAP_WEIGHTS:
        raise ValueError(f"MS-CLAP version must be one of {sorted(MSCLAP_WEIGHTS)}, got {version!r}")
    spec = MSCLAP_WEIGHTS[version]
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"{path}: no such MS-CLAP checkpoint file. {_msclap_hint(spec)}")
        return path
    if spec.local_path.is_file():
        return spec.local_path
    offline = offline_reason()
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(spec.repo_id, spec.filename, local_files_only=offline is not None))
    except Exception as err:  # noqa: BLE001 - offline, no network, gated, ...: all mean "not here"
        why = offline if offline else f"download failed: {_first_line(err)}"
        raise MissingWeightsError(
            f"{spec.name}: {spec.filename} is not on this machine ({why}). {_msclap_hint(spec)}"
        ) from None


def _msclap_hint(spec: WeightsFile) -> str:
    return (
        f"Download {spec.url} and put it at {spec.local_path} "
        f"(or pass checkpoint=PATH / --checkpoint PATH)."
    )


def resolve_hf_model(name: str) -> str:
    """A ``from_pretrained`` argument for a transformers model: a local folder or a hub id.

    ``name`` may be an existing directory, or a hub id such as ``laion/clap-htsat-unfused``,
    looked up in ``$TINYCLAP_HOME/<hub id>/`` and then the hub cache. Offline, a hub id that
    is not cached raises :class:`MissingWeightsError`; online, the id is returned and
    ``from_pretrained`` downloads into the hub cache (wrap its failure with
    :func:`missing_hf_model`).
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(name):
        raise MissingWeightsError(f"{name}: no such model directory")
    local = tinyclap_home() / name
    if (local / "config.json").is_file():
        return str(local)
    _check_repo_id(name)
    offline = offline_reason()
    if offline is None:
        return name
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure here means "not cached"
        raise missing_hf_model(name, f"{offline} and it is not in the Hugging Face cache") from None


def missing_hf_model(repo_id: str, why: str) -> MissingWeightsError:
    """The error for a hub model that is not here: what to download and where to put it."""
    dest = tinyclap_home() / repo_id
    return MissingWeightsError(
        f"{repo_id}: model not found ({why}). Download the repository {HF_ENDPOINT}/{repo_id} "
        f"into {dest} (e.g. `hf download {repo_id} --local-dir {dest}`), "
        f"or run once online without HF_HUB_OFFLINE to fill the Hugging Face cache, "
        f"or pass a local directory."
    )


def _looks_like_path(name: str) -> bool:
    # A hub id is "owner/name"; anything with more parts, a leading ./, / or ~,
    # or a file suffix is meant as a path on disk.
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") != 1
        or os.sep != "/" and os.sep in name
        or Path(name).suffix in FILE_SUFFIXES
    )


def _check_repo_id(name: str) -> None:
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
    except Exception as err:  # noqa: BLE001 - HFValidationError and friends
        raise MissingWeightsError(f"{name}: neither a local directory nor a valid hub id ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
