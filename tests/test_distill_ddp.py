"""Data parallelism on CPU: 2 gloo processes build the same cache and train the same student
as one process with the same global batch (BatchNorm synchronised, augmentation keyed per item)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_tiny import ProjTeacher, synth, tiny_student
from tinyclap.distill.cache import EmbeddingCache, build_cache
from tinyclap.distill.train import distill

# 21 items, global batch 8: batches of 8, 8, 5 (split 3 + 2 over the ranks). SGD, not Adam: Adam
# divides each gradient by its own magnitude, so a gradient that is zero in exact arithmetic (a BatchNorm
# bias followed by another BatchNorm) but 1e-9 in float32 moves by +-lr on a sign flip; the rounding of
# a 2-rank sum and a 1-process sum differ in exactly those bits. SGD shows the runs agree to rounding.
# One memory layout on both sides (channels_last "auto" would pick NHWC for the single process only:
# other kernels, other rounding, which this tiny student amplifies to ~1e-3 in 6 steps).
OPTS = dict(preset="quick", epochs=2, batch_size=8, seed=3, val_split=0.0, progress=False, optimizer="sgd",
            channels_last="no",
            lr=0.05, **{"augment.enabled": True})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, opts: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from tinyclap.distill.ddp import setup, teardown

    env = setup("cpu")
    try:
        data = synth(21)
        cache = build_cache(ProjTeacher(), data, Path(root) / "cache", batch_size=4, shard_size=5,
                            progress=False, env=env)
        student = tiny_student(seed=7, dropout=False)  # dropout masks cannot match across process layouts
        distill(student, cache, data, out_dir=Path(root) / "run", env=env, **opts)
    finally:
        teardown(env)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from tinyclap.checkpoint import load_checkpoint

    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), OPTS), nprocs=2, join=True,
                       start_method="spawn")

    torch.set_num_threads(1)
    data = synth(21)
    single_cache = build_cache(ProjTeacher(), data, tmp_path / "one" / "cache", batch_size=4, shard_size=5,
                               progress=False)
    ddp_cache = EmbeddingCache.open(tmp_path / "ddp" / "cache")
    assert ddp_cache.ids == single_cache.ids
    np.testing.assert_allclose(np.asarray(ddp_cache.embeddings), np.asarray(single_cache.embeddings), atol=1e-6)

    student = tiny_student(seed=7, dropout=False)
    result = distill(student, single_cache, data, out_dir=tmp_path / "one" / "run", **OPTS)
    ddp_state, ddp_meta = load_checkpoint(tmp_path / "ddp" / "run" / "last.json", kind="student")
    single = student.state_dict()
    assert ddp_state.keys() == single.keys()
    for key, value in single.items():  # weights and BatchNorm running statistics
        torch.testing.assert_close(ddp_state[key].float(), value.float(), atol=2e-5, rtol=1e-4, msg=key)
    assert ddp_meta["step"] == result.global_step == 6
    ddp_loss = ddp_meta["metrics"]["train_loss"]
    assert ddp_loss == pytest.approx(result.history[-1]["train_loss"], abs=1e-5)
    # rank 0 alone wrote the run folder
    assert sorted(p.name for p in (tmp_path / "ddp" / "run").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "run").iterdir())
