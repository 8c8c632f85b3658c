"""Teacher-embedding cache: run the teacher once per (clip, window), train from disk after.

Layout of a cache folder::

    DIR/cache.json             index: teacher, dim, AudioConfig, config hash, plan, shards
    DIR/shard-00000.npy        (n, D) float32 unit embeddings, opened with mmap
    DIR/shard-00000.ids.json   the n clip ids of that shard, in row order (+ skipped files)
    ...

Items of the (concatenated) datasets are cut into shards of ``shard_size``
consecutive items. A shard is committed by writing its ``.npy`` and then its
``.ids.json``, both atomically: a shard whose ids file exists is complete. An
interrupted build keeps its finished shards and a re-run fills in the rest.
The index is written before the first shard (``complete: false``), so a second
run with another teacher or front end is refused even if the first never
finished. The config hash is ``sha256(teacher identity | AudioConfig.digest() | dim)``.

The teacher is recorded twice: ``teacher`` (its name, for messages) and
``teacher_id`` (:func:`tinyclap.teachers.identity.teacher_identity`, a digest of
its config and weights). Matching goes by ``teacher_id``, so a run folder that
was moved or copied still matches the teacher it was built with. Caches written
before ``teacher_id`` existed hashed the name instead; they still open and
resume, matched by name (or by the identity of the ``local:`` files the name
points at, while they exist).

Under ``torchrun`` every rank builds the shards ``k`` with ``k % world == rank``
and rank 0 writes the final index.

Distillation reads targets from here (:meth:`EmbeddingCache.lookup`); the
teacher is never run in the training loop.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from tinyclap.audio import AudioConfig
from tinyclap.errors import TinyClapError
from tinyclap.io import atomic_path, read_json, write_json
from tinyclap.teachers.identity import identity_of_name, same_teacher, teacher_identity

from tinyclap.distill.ddp import DistEnv, barrier, setup
from tinyclap.distill.sources import as_dataset, audio_config_of, dataset_ids, describe

__all__ = [
    "CacheError",
    "CacheMismatchError",
    "EmbeddingCache",
    "ShardedArray",
    "build_cache",
    "config_hash",
    "INDEX_NAME",
]

INDEX_NAME = "cache.json"
FORMAT = "tinyclap-embedding-cache"
VERSION = 1


class CacheError(TinyClapError, ValueError):
    """A cache folder that is incomplete, corrupt, or does not cover the data asked for."""


class CacheMismatchError(CacheError):
    """An attempt to mix teachers, front ends or data plans in one cache folder."""


def config_hash(teacher_id: str, audio_config: AudioConfig, dim: int) -> str:
    """What a cache's embeddings depend on: teacher (its identity; its name in old caches), front end
    (window length included) and D."""
    blob = f"{teacher_id}|{audio_config.digest()}|{int(dim)}".encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _shard_names(k: int) -> tuple[str, str]:
    return f"shard-{k:05d}.npy", f"shard-{k:05d}.ids.json"


def _ids_digest(ids: Sequence[str] | None, total: int) -> str:
    h = hashlib.sha256(str(total).encode())
    for i in ids or ():
        h.update(b"\0" + i.encode())
    return h.hexdigest()[:16]


class ShardedArray:
    """A read-only (N, D) view over row-sharded memory-mapped ``.npy`` files.

    Supports ``len``, ``.shape``, ``np.asarray(...)`` and indexing by int, slice,
    integer arrays and ``[rows, cols]``; reads touch only the rows asked for.
    """

    def __init__(self, shards: Sequence[np.ndarray]):
        self.shards = list(shards)
        dims = {s.shape[1] for s in self.shards}
        if len(dims) > 1:
            raise CacheError(f"shards have different widths {sorted(dims)}")
        self.dim = dims.pop() if dims else 0
        sizes = [s.shape[0] for s in self.shards]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.offsets[-1]), self.dim

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.concatenate([np.asarray(s) for s in self.shards]) if self.shards else np.zeros((0, self.dim), np.float32)
        return out.astype(dtype) if dtype is not None else out

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (int array) as a new (len(rows), D) float32 array."""
        rows = np.asarray(rows, dtype=np.int64)
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        rows = np.where(rows < 0, rows + n, rows)
        out = np.empty((rows.size, self.dim), dtype=np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(which):
            sel = np.nonzero(which == k)[0]
            local = rows[sel] - self.offsets[k]
            order = np.argsort(local, kind="stable")  # sorted reads are kinder to mmap
            out[sel[order]] = self.shards[k][local[order]]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        cols = None
        if isinstance(key, tuple):
            key, cols = key[0], (key[1] if len(key) > 1 else None)
        if isinstance(key, (int, np.integer)):
            out = self.rows(np.array([key]))[0]
        else:
            rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key)
            if rows.dtype == bool:
                rows = np.nonzero(rows)[0]
            out = self.rows(rows)
        return out if cols is None else out[..., cols]


class EmbeddingCache:
    """A finished cache folder, opened read-only and verified (see module docstring).

    ``ids`` (list of clip ids), ``embeddings`` ((N, D) :class:`ShardedArray`),
    ``teacher_name``, ``teacher_id`` (None in caches older than identities),
    ``audio_config``, ``dim``, ``config_hash``, ``lookup(ids)``.
    :meth:`select` gives a view restricted to some latent dimensions (pruning);
    :meth:`matches` / :meth:`check_teacher` compare the cache's teacher with another.
    """

    def __init__(self, root: Path, index: dict[str, Any], shards: list[np.ndarray], ids: list[str]):
        self.root = root
        self.index = index
        self.teacher_name: str = index["teacher"]
        self.teacher_id: str | None = index.get("teacher_id")
        self.teacher_licence: str = index.get("teacher_licence", "")
        self.logit_scale: float | None = index.get("logit_scale")
        self.audio_config = AudioConfig.from_dict(index["audio_config"])
        self.full_dim: int = int(index["dim"])
        self.config_hash: str = index["config_hash"]
        self.embeddings = ShardedArray(shards)
        self.ids = ids
        self._row: dict[str, int] = {}
        for r, cid in enumerate(ids):
            if cid in self._row:
                raise CacheError(f"{root}: clip id {cid!r} appears twice (two datasets share file names?)")
            self._row[cid] = r
        self.kept_dims: list[int] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, root: str | Path) -> "EmbeddingCache":
        """Open and verify a complete cache (shapes, dtypes, counts, ids)."""
        root = Path(root)
        index_path = root / INDEX_NAME
        if not index_path.is_file():
            raise CacheError(f"{root}: not an embedding cache (no {INDEX_NAME}); build one with `tinyclap cache`")
        index = _read_index(index_path)
        if not index.get("complete"):
            done = sum(1 for k in range(index["n_shards"]) if (root / _shard_names(k)[1]).is_file())
            raise CacheError(
                f"{root}: cache is incomplete ({done} of {index['n_shards']} shards); "
                "re-run the same `tinyclap cache` command to finish it"
            )
        dim = int(index["dim"])
        shards: list[np.ndarray] = []
        ids: list[str] = []
        for entry in index["shards"]:
            arr_path, ids_path = root / entry["file"], root / entry["ids"]
            arr = _open_shard(arr_path)
            shard_ids = _read_shard_ids(ids_path)["ids"]
            if arr.ndim != 2 or arr.shape[1] != dim:
                raise CacheError(f"{arr_path}: shape {arr.shape}, expected (n, {dim})")
            if arr.dtype != np.float32:
                raise CacheError(f"{arr_path}: dtype {arr.dtype}, expected float32")
            if arr.shape[0] != len(shard_ids) or arr.shape[0] != entry["count"]:
                raise CacheError(
                    f"{arr_path}: {arr.shape[0]} rows but {len(shard_ids)} ids and an index count of "
                    f"{entry['count']}; the cache is damaged: re-run the same `tinyclap cache` command to rebuild it"
                )
            _check_finite(arr_path, arr, shard_ids)
            shards.append(arr)
            ids.extend(shard_ids)
        if len(ids) != index["count"]:
            raise CacheError(f"{root}: index says {index['count']} embeddings, shards hold {len(ids)}")
        return cls(root, index, shards, ids)

    # ------------------------------------------------------------------ teacher
    def matches(self, name: str, identity: str | None = None) -> bool:
        """Whether a teacher (or a record of one: a bank, a checkpoint) with ``name`` / ``identity``
        is the teacher these embeddings came from (see :func:`~tinyclap.teachers.identity.same_teacher`)."""
        return same_teacher(self.teacher_name, self.teacher_id, str(name), identity)

    def check_teacher(self, teacher: Any) -> None:
        """Raise :class:`CacheMismatchError` unless ``teacher`` is the one that built this cache."""
        identity = teacher_identity(teacher)
        if not self.matches(str(teacher.name), identity):
            raise CacheMismatchError(
                f"{self.root}: holds embeddings of teacher {self.teacher_name!r} "
                f"[{self.teacher_id or 'no recorded identity'}], not of {teacher.name!r} [{identity}] "
                "(other weights or config); build a cache with this teacher (`tinyclap cache`)"
            )

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._row

    @property
    def dim(self) -> int:
        """Width of the targets :meth:`lookup` returns (k after :meth:`select`)."""
        return len(self.kept_dims) if self.kept_dims is not None else self.full_dim

    def missing(self, clip_ids: Iterable[str]) -> list[str]:
        """The ids among ``clip_ids`` that this cache does not hold."""
        return [c for c in clip_ids if c not in self._row]

    def rows_of(self, clip_ids: Sequence[str]) -> np.ndarray:
        """Row index of each clip id (CacheError naming the first unknown id)."""
        try:
            return np.fromiter((self._row[c] for c in clip_ids), dtype=np.int64, count=len(clip_ids))
        except KeyError as err:
            raise CacheError(
                f"{self.root}: no teacher embedding for clip {err.args[0]!r}; "
                "build the cache over the same data (`tinyclap cache --data ...`)"
            ) from None

    def lookup(self, clip_ids: Sequence[str]) -> torch.Tensor:
        """Unit teacher embeddings (B, dim) float32 for ``clip_ids``.

        After :meth:`select`, the kept columns re-normalised to unit length.
        """
        emb = self.embeddings.rows(self.rows_of(clip_ids))
        if self.kept_dims is not None:
            emb = emb[:, self.kept_dims]
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))

    def select(self, dims: Sequence[int] | None) -> "EmbeddingCache":
        """A view whose targets are ``embeddings[:, dims]`` re-normalised (None: all dims)."""
        view = object.__new__(type(self))  # subclasses (e.g. benchmarks) keep their behaviour
        view.__dict__.update(self.__dict__)
        if dims is None:
            view.kept_dims = None
            return view
        dims = [int(d) for d in dims]
        if not dims:
            raise CacheError("dims selection is empty")
        bad = [d for d in dims if not 0 <= d < self.full_dim]
        if bad:
            raise CacheError(f"dims {bad[:5]} out of range for a {self.full_dim}-dim cache")
        if len(set(dims)) != len(dims):
            raise CacheError("dims selection has repeated indices")
        view.kept_dims = dims
        return view

    def __repr__(self) -> str:
        sel = f", dims {self.dim}/{self.full_dim}" if self.kept_dims is not None else ""
        return f"EmbeddingCache({self.root}, {len(self)} x {self.full_dim}, teacher {self.teacher_name!r}{sel})"


def _read_index(path: Path) -> dict[str, Any]:
    try:
        index = read_json(path)
    except ValueError as err:
        raise CacheError(f"{path}: not valid JSON ({err})") from None
    if index.get("format") != FORMAT:
        raise CacheError(f"{path}: not a tinyclap embedding cache index")
    if index.get("version") != VERSION:
        raise CacheError(f"{path}: cache format version {index.get('version')}, this tinyclap reads {VERSION}")
    return index


def _open_shard(path: Path) -> np.ndarray:
    if not path.is_file():
        raise CacheError(f"{path}: shard missing; re-run `tinyclap cache` to rebuild it")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise CacheError(f"{path}: unreadable shard ({err}); re-run the same `tinyclap cache` command to rebuild it") from None


def _check_finite(path: Path, arr: np.ndarray, ids: Sequence[str], rows: int = 1 << 16) -> None:
    """Refuse a shard holding NaN or infinite values (read once, in chunks: a NaN target would train NaN weights
    and make pruning keep arbitrary dims)."""
    bad: list[int] = []
    for start in range(0, arr.shape[0], rows):
        finite = np.isfinite(arr[start : start + rows]).all(axis=1)
        if not finite.all():
            bad.extend(int(i) + start for i in np.nonzero(~finite)[0])
    if bad:
        raise CacheError(
            f"{path}: {len(bad)} of {arr.shape[0]} embeddings hold NaN or infinite values (e.g. clip {ids[bad[0]]!r}); "
            "the cache is corrupt: delete the shard and re-run `tinyclap cache`"
        )


def _read_shard_ids(path: Path) -> dict[str, Any]:
    try:
        meta = read_json(path)
    except (ValueError, OSError) as err:
        raise CacheError(f"{path}: unreadable shard ids ({err})") from None
    if not isinstance(meta.get("ids"), list):
        raise CacheError(f"{path}: no 'ids' list")
    return meta


# ---------------------------------------------------------------------- building
def _plan(teacher: Any, dataset: Dataset, audio_config: AudioConfig, shard_size: int) -> dict[str, Any]:
    dim = int(teacher.dim)
    total = len(dataset)
    ids = dataset_ids(dataset)
    identity = teacher_identity(teacher)
    return {
        "format": FORMAT,
        "version": VERSION,
        "teacher": str(teacher.name),
        "teacher_id": identity,
        "teacher_licence": str(getattr(teacher, "licence", "")),
        "logit_scale": _float_or_none(getattr(teacher, "logit_scale", None)),
        "dim": dim,
        "audio_config": audio_config.to_dict(),
        "config_hash": config_hash(identity, audio_config, dim),
        "data": describe(dataset),
        "data_digest": _ids_digest(ids, total),
        "items": total,
        "shard_size": int(shard_size),
        "n_shards": max(1, -(-total // shard_size)) if total else 0,
        "complete": False,
    }


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def _check_plan(root: Path, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Refuse a resume with another teacher, front end or data; returns the plan to finish with.

    The returned plan keeps the existing index's teacher record (name, identity,
    config hash): finishing a moved cache does not rewrite what it was built with,
    and an old name-hashed cache stays name-hashed, so a distillation state that
    recorded its hash still resumes.
    """
    same = _same_teacher(old, new)
    # Hashed as the old index hashed its teacher: by identity, or by name before identities.
    key = str(old.get("teacher_id") or old.get("teacher", ""))
    expected = config_hash(key, AudioConfig.from_dict(new["audio_config"]), new["dim"])
    if not same or old.get("config_hash") != expected:
        old_ac = old.get("audio_config")
        # Names alone can be equal for other weights (a teacher retrained in place): show identities too.
        old_id = f" [{old['teacher_id']}]" if old.get("teacher_id") and not same else ""
        new_id = f" [{new['teacher_id']}]" if not same else ""
        what = (
            f"teacher {old.get('teacher')!r}{old_id} (dim {old.get('dim')})"
            if not same or old.get("dim") != new["dim"]
            else f"another front end ({old_ac})"
        )
        raise CacheMismatchError(
            f"{root}: holds embeddings of {what}; refusing to mix them with "
            f"teacher {new['teacher']!r}{new_id} at {new['audio_config']}. Use another --out."
        )
    for key in ("data_digest", "items", "shard_size"):
        if old.get(key) != new[key]:
            raise CacheMismatchError(
                f"{root}: was started over other data or shard size ({old.get('items')} items, "
                f"shard size {old.get('shard_size')}, data {old.get('data')!r}); now {new['items']} items, "
                f"shard size {new['shard_size']}. Re-run with the same --data, or use another --out."
            )
    kept = {k: old[k] for k in _TEACHER_KEYS if k in old}
    plan = {k: v for k, v in new.items() if k not in _TEACHER_KEYS}
    return {**plan, **kept}


# What an index records about its teacher; a resumed build keeps the first run's record.
_TEACHER_KEYS = ("teacher", "teacher_id", "teacher_licence", "logit_scale", "config_hash")


def _same_teacher(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The started cache's teacher is the new plan's: by identity, or for old indexes by name."""
    if old.get("teacher_id"):
        return old["teacher_id"] == new["teacher_id"]
    # Written before identities: same name, or the local files that name points at are the new teacher.
    name = str(old.get("teacher", ""))
    return name == new["teacher"] or identity_of_name(name) == new["teacher_id"]


def _finished(root: Path, k: int, dim: int | None = None) -> bool:
    return shard_problem(root, k, dim) is None


NOT_BUILT = "not built"


def shard_problem(root: Path, k: int, dim: int | None = None) -> str | None:
    """None when shard ``k`` is finished and readable; else what is wrong with it.

    ``NOT_BUILT`` when its ids file (written last) is absent. Anything else is a
    damaged shard (truncated or unreadable ``.npy``, row count not matching its ids):
    :func:`build_cache` rebuilds it, :func:`cache_summary` reports it.
    """
    arr_path, ids_path = root / _shard_names(k)[0], root / _shard_names(k)[1]
    if not ids_path.is_file():
        return NOT_BUILT
    if not arr_path.is_file():
        return f"{arr_path.name} missing"
    try:
        arr = np.load(arr_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        return f"{arr_path.name} unreadable ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
    try:
        ids = read_json(ids_path).get("ids")
    except (ValueError, OSError, AttributeError):
        return f"{ids_path.name} unreadable"
    if not isinstance(ids, list):
        return f"{ids_path.name} has no 'ids' list"
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim) or arr.dtype != np.float32:
        return f"{arr_path.name} holds {arr.dtype} {arr.shape}, expected float32 (n, {dim if dim is not None else 'D'})"
    if arr.shape[0] != len(ids):
        return f"{arr_path.name} has {arr.shape[0]} rows for {len(ids)} ids"
    return None


def damaged_shards(root: Path, n_shards: int, dim: int | None = None, complete: bool = False) -> dict[int, str]:
    """``{shard: problem}`` of the damaged shards (in a complete cache a missing shard is damaged too)."""
    found = {k: shard_problem(root, k, dim) for k in range(n_shards)}
    return {k: why for k, why in found.items() if why is not None and (complete or why != NOT_BUILT)}


def _embed_shard(
    teacher: Any,
    dataset: Dataset,
    start: int,
    stop: int,
    root: Path,
    k: int,
    batch_size: int,
    num_workers: int,
    bar: Any,
) -> None:
    from tinyclap.data.base import collate

    dim = int(teacher.dim)
    loader = DataLoader(
        Subset(dataset, range(start, stop)), batch_size=batch_size, num_workers=num_workers, collate_fn=collate
    )
    chunks: list[np.ndarray] = []
    ids: list[str] = []
    skipped: list[dict[str, str]] = []
    for batch in loader:
        skipped += [{"clip_id": s.clip_id, "path": s.path, "reason": s.reason} for s in batch.broken]
        if len(batch.ids):
            with torch.inference_mode():
                emb = teacher.embed_audio(batch.clips)
            emb = torch.as_tensor(emb).detach().to("cpu", torch.float32)
            if emb.shape != (len(batch.ids), dim):
                raise CacheError(
                    f"teacher {teacher.name!r} returned shape {tuple(emb.shape)} for {len(batch.ids)} clips; "
                    f"expected ({len(batch.ids)}, {dim})"
                )
            if not torch.isfinite(emb).all():
                bad = [i for i, row in zip(batch.ids, emb) if not torch.isfinite(row).all()]
                raise CacheError(f"teacher {teacher.name!r} gave non-finite embeddings for {bad[:3]}")
            # Teachers promise unit vectors; re-normalising in float32 costs nothing and makes it so.
            chunks.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
            ids += list(batch.ids)
        bar.update(len(batch.ids) + len(batch.broken))
    arr = np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)
    arr_name, ids_name = _shard_names(k)
    with atomic_path(root / arr_name) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr, dtype=np.float32))
    write_json(root / ids_name, {"range": [start, stop], "ids": ids, "skipped": skipped})


def build_cache(
    teacher: Any,
    datasets: Dataset | Sequence[Dataset],
    out_dir: str | Path,
    batch_size: int = 32,
    shard_size: int = 4096,
    num_workers: int = 0,
    progress: bool = True,
    env: DistEnv | None = None,
) -> EmbeddingCache:
    """Embed every item of ``datasets`` with ``teacher`` into ``out_dir``; returns the opened cache.

    Resumable (finished shards are kept), refuses to mix teachers/front ends
    (:class:`CacheMismatchError`), and shards the work across torchrun ranks.
    Datasets must yield clips at one AudioConfig whose sample rate is the
    teacher's. Broken files the datasets skip are listed in the shard ids files.
    """
    from tqdm.auto import tqdm

    env = env or setup("cpu")
    root = Path(out_dir)
    dataset = as_dataset(datasets)
    audio_config = audio_config_of(dataset)
    t_rate = teacher.audio_config.sample_rate
    if audio_config.sample_rate != t_rate:
        raise CacheError(
            f"data is at {audio_config.sample_rate} Hz but teacher {teacher.name!r} expects {t_rate} Hz; "
            "open the datasets with the teacher's AudioConfig"
        )
    if shard_size <= 0 or batch_size <= 0:
        raise ValueError(f"shard_size and batch_size must be positive (got {shard_size}, {batch_size})")
    plan = _plan(teacher, dataset, audio_config, shard_size)
    if plan["items"] == 0:
        raise CacheError(f"{describe(dataset)}: no items to embed")
    index_path = root / INDEX_NAME
    if index_path.is_file():
        plan = _check_plan(root, _read_index(index_path), plan)
    elif root.exists() and any(root.iterdir()):
        raise CacheError(f"{root}: folder exists and is not an embedding cache; choose an empty --out")
    damaged = damaged_shards(root, plan["n_shards"], plan["dim"]) if index_path.is_file() else {}
    barrier(env)  # every rank has checked before rank 0 writes
    if env.is_main and damaged:
        # A truncated shard (a full disk, a killed copy) is rebuilt instead of blocking every re-run.
        listed = "; ".join(f"shard {k}: {why}" for k, why in sorted(damaged.items()))
        print(f"note: {root}: rebuilding {len(damaged)} damaged shard(s) ({listed})", file=sys.stderr)
        for k in damaged:
            (root / _shard_names(k)[1]).unlink(missing_ok=True)  # its ids file marks it finished
    if env.is_main and (damaged or not index_path.is_file()):
        write_json(index_path, plan)  # (again) incomplete until every shard is sound
    barrier(env)

    n, size = plan["items"], plan["shard_size"]
    mine = [k for k in range(plan["n_shards"]) if k % env.world_size == env.rank]
    todo = [k for k in mine if not _finished(root, k, plan["dim"])]
    total_mine = sum(min(size, n - k * size) for k in mine)
    done_mine = total_mine - sum(min(size, n - k * size) for k in todo)
    with tqdm(
        total=total_mine,
        initial=done_mine,
        desc=f"cache {teacher.name}" + (f" [rank {env.rank}]" if env.distributed else ""),
        unit="clip",
        disable=not progress,
        position=env.rank,
    ) as bar:
        for k in todo:
            start, stop = k * size, min(n, (k + 1) * size)
            _embed_shard(teacher, dataset, start, stop, root, k, batch_size, num_workers, bar)
    barrier(env)
    if env.is_main:
        _finalise(root, plan)
    barrier(env)
    return EmbeddingCache.open(root)


def _finalise(root: Path, plan: dict[str, Any]) -> None:
    shards, count, skipped = [], 0, 0
    for k in range(plan["n_shards"]):
        arr_name, ids_name = _shard_names(k)
        if not _finished(root, k):
            raise CacheError(f"{root}: shard {k} missing after the build; re-run to finish it")
        meta = _read_shard_ids(root / ids_name)
        rows = int(_open_shard(root / arr_name).shape[0])
        if rows != len(meta["ids"]):
            raise CacheError(f"{root / arr_name}: {rows} rows but {len(meta['ids'])} ids")
        shards.append({"file": arr_name, "ids": ids_name, "count": rows})
        count += rows
        skipped += len(meta.get("skipped", []))
    write_json(root / INDEX_NAME, {**plan, "shards": shards, "count": count, "skipped": skipped, "complete": True})


def cache_summary(root: str | Path) -> str:
    """One line describing a cache folder (complete or not)."""
    root = Path(root)
    index = _read_index(root / INDEX_NAME)
    n_shards, dim = int(index["n_shards"]), int(index["dim"])
    damaged = damaged_shards(root, n_shards, dim, complete=bool(index.get("complete")))
    done = sum(1 for k in range(n_shards) if _finished(root, k, dim))
    if damaged:
        listed = "; ".join(f"shard {k}: {why}" for k, why in sorted(damaged.items()))
        state = (f"DAMAGED ({len(damaged)} of {n_shards} shards: {listed}; re-run the same `tinyclap cache` "
                 "command to rebuild them)")
    elif index.get("complete"):
        state = "complete"
    else:
        state = f"incomplete ({done}/{n_shards} shards)"
    count = index.get("count", "?")
    return (
        f"{root}: {count} embeddings x {index['dim']} from teacher {index['teacher']!r} "
        f"[{index['config_hash']}], {state}, {index.get('skipped', 0)} broken files skipped"
    )
