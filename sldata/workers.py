"""What every worker process of this toolkit does first: die with its parent.

One home for it, used by `sldata.pool`'s workers (extract-pose, pkl2h5), the
validate pool, and the isolated h5 writer (`sldata.h5.isolated`).
Without it a killed run leaves workers behind that hold memory (a MediaPipe
graph is ~400 MB) and, worse, inherited file descriptors: a forked worker
shares its parent's output lock, so an orphan would keep the output locked and
block the rerun.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process exit when the process that started it is gone.

    Linux delivers SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); a
    watchdog thread that polls the parent pid covers other systems and the race
    where the parent died before the prctl call.
    """
    parent_pid = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="sldata-parent-watchdog", daemon=True).start()

