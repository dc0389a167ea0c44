"""A worker process that ends with its parent: no worker outlives the command that started it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: prctl's option for the signal a process gets when its parent dies (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: how often the watching thread looks at the parent
WATCH_INTERVAL_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid``, its parent, dies (call it first thing in a worker)."""
    _kernel_kill_on_parent_death()
    if os.getppid() != parent_pid:  # the parent died before the kernel was asked
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="provenance-parent-watch", daemon=True).start()


def _kernel_kill_on_parent_death() -> bool:
    """Ask Linux to send SIGKILL to this process when its parent (the thread that started it) ends."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl here: the watching thread is the only guard
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)  # adopted by init (or a subreaper): the driver is gone


__all__ = ["PR_SET_PDEATHSIG", "WATCH_INTERVAL_S", "die_with_parent"]
