"""What a dataset spec resolves to: counts, classes, sample items, and (optionally) a full scan."""

from __future__ import annotations

from typing import Any

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, broken_report, make_loader
from tinyclap.data.spec import open_dataset

__all__ = ["describe_dataset", "scan_dataset"]


def scan_dataset(dataset: AudioDataset, num_workers: int = 0, batch_size: int = 16, progress: bool = False) -> int:
    """Read every item once (finds broken files a header cannot reveal); returns readable items."""
    from tqdm.auto import tqdm

    loader = make_loader(dataset, batch_size=batch_size, num_workers=num_workers)
    n = 0
    for batch in tqdm(loader, desc="scan", unit="batch", disable=not progress):
        n += len(batch.ids)
    return n


def describe_dataset(
    spec: str,
    audio_config: AudioConfig | None = None,
    show: int = 3,
    scan: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    **kw: Any,
) -> str:
    """A few lines about the dataset ``spec`` names, for people (``tinyclap data``)."""
    cfg = audio_config or AudioConfig()
    ds = open_dataset(spec, cfg, **kw)
    lines = [
        f"{spec}: {type(ds).__name__}, {len(ds)} items from {len(ds.entries)} files "
        f"({cfg.clip_seconds:g} s clips at {cfg.sample_rate} Hz, target={ds.target_kind})"
    ]
    if ds.class_names:
        names = ", ".join(ds.class_names[:20]) + (" ..." if len(ds.class_names) > 20 else "")
        lines.append(f"  {len(ds.class_names)} classes: {names}")
    for i in range(min(show, len(ds))):
        caps = ds.captions(i)
        label = ds.label(i)
        what = [f"label {label} ({ds.class_names[label]})" if label is not None and ds.class_names else ""]
        what.append(f"caption {caps[0]!r}" + (f" (+{len(caps) - 1})" if len(caps) > 1 else "") if caps else "")
        lines.append(f"  {ds.clip_id(i)}: " + "; ".join(w for w in what if w))
    if scan:
        ok = scan_dataset(ds, num_workers=num_workers, progress=progress)
        lines.append(f"  scanned: {ok} of {len(ds)} items readable")
    lines += ["  " + line for line in broken_report(ds).splitlines()]
    return "\n".join(lines)
