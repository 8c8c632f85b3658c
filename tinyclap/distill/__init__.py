"""Distillation: cache a teacher's embeddings once, then train a student on them.

- :mod:`~tinyclap.distill.cache`: ``build_cache``, ``EmbeddingCache`` (sharded mmap .npy + index)
- :mod:`~tinyclap.distill.train`: ``distill`` (stage 1 whole student, stage 2 projection only)
- :mod:`~tinyclap.distill.losses`: the tinyCLAP objective ``-mean cos(stopgrad(t), s)``
- :mod:`~tinyclap.distill.presets`: YAML recipes → ``DistillConfig``
- :mod:`~tinyclap.distill.checkpoints`, :mod:`~tinyclap.distill.log`: run folder files
- :mod:`~tinyclap.distill.ddp`: torchrun process groups, synchronised BatchNorm
- :mod:`~tinyclap.distill.augment`: student-side waveform augmentation

See docs/distillation.md.
"""

from tinyclap.distill.cache import CacheError, CacheMismatchError, EmbeddingCache, build_cache
from tinyclap.distill.losses import cosine_distillation_loss
from tinyclap.distill.presets import DistillConfig, make_config
from tinyclap.distill.train import DistillInterrupted, DistillResult, distill
from tinyclap.distill.validation import ZeroShotSet

__all__ = [
    "CacheError",
    "CacheMismatchError",
    "DistillConfig",
    "DistillInterrupted",
    "DistillResult",
    "EmbeddingCache",
    "ZeroShotSet",
    "build_cache",
    "cosine_distillation_loss",
    "distill",
    "make_config",
]
