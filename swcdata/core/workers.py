"""Worker processes that never outlive the command that started them.

Every process pool of swcdata is made by :func:`process_pool`, whose workers run :func:`init_worker`
first. A worker whose parent dies, even by ``kill -9`` (no cleanup of its own can run then), exits
within a second instead of waiting forever on its task queue, reparented to PID 1 with its memory:

* on Linux the kernel kills it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set as it starts);
* everywhere, a watchdog thread checks every half second that the parent is still there and ends
  the worker (``os._exit``) when it is not. It also covers the moment before the ``prctl`` call, and
  start methods where the worker's parent is a server process (``forkserver``).

(PR_SET_PDEATHSIG fires when the *thread* that started the worker ends: make pools in the thread that
uses them, as every caller does, never in a short-lived helper thread.)

A worker also takes SIGTERM's default action again (a forked worker would inherit the command's
handler, which turns SIGTERM into a clean stop of the *command*): a stopped job's workers go with it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

WATCH_INTERVAL_S = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one): the default number of workers,
    and the most that `--workers` takes."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def process_pool(max_workers: int, mp_context: BaseContext | None = None,
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor whose workers exit when this process dies (see the module). `initializer`
    (with `initargs`) runs in each worker after that is arranged."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp_context, initializer=init_worker,
                               initargs=(os.getpid(), initializer, initargs))


def init_worker(parent: int, then: Callable[..., object] | None = None, args: tuple[Any, ...] = ()) -> None:
    """Worker initializer: die with `parent` (the pid of the process that made the pool), then run `then(*args)`."""
    die_with_parent(parent)
    if then is not None:
        then(*args)


def die_with_parent(parent: int) -> None:
    """Make this process exit when `parent` does: PR_SET_PDEATHSIG on Linux when `parent` is this
    process's parent, and a watchdog thread everywhere."""
    import contextlib

    with contextlib.suppress(ValueError, OSError):  # (ValueError: not the main thread of the worker)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    direct = os.getppid() == parent
    if direct and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # (no prctl in this libc: the watchdog alone does it)
            pass

    def gone() -> bool:
        if direct:  # reparented: the parent is gone (a pid cannot be reused while we are its child)
            return os.getppid() != parent
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except OSError:  # (EPERM: a process of another user has that pid now; ours is gone)
            return True
        return False

    if gone():  # died before the prctl call took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            if gone():
                os._exit(1)

    threading.Thread(target=watch, name="swcdata-parent-watch", daemon=True).start()


class Background:
    """`fn(*args)` run in a daemon thread (a caller that fails before it needs the result does not wait for it);
    `result()` waits, then returns its value or raises its error. For work that releases the GIL (hashing, reading
    files) beside work of the calling thread."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "swcdata-background") -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(*args)
            except BaseException as e:  # (raised where the result is taken)
                self._error = e

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for it to end (its error, if any, is left for `result`)."""
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
