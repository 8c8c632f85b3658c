"""Graceful stop for long training loops: Ctrl-C or SIGTERM ends the step, then the loop saves and stops.

Shared by ``distill`` and ``pretrain``: the loop checks :attr:`StopFlag.requested`
at step boundaries; a second signal stops at once (no save).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["StopFlag", "graceful_stop"]


class StopFlag:
    """First SIGINT/SIGTERM: finish the step, save, stop. Second: stop at once (no save)."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(f"\n{name}: finishing this step and saving (press Ctrl-C again to stop at once)", flush=True)


@contextmanager
def graceful_stop(flag: StopFlag) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``flag`` inside the block (main thread only: signals cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, flag.handle)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
