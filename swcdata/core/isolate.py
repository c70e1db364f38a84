"""Work that may crash in native code, run where a crash is survivable.

tree-sitter is C: a pathological input can overflow its stack (see ``solidity.treesitter.MAX_PARSE_CHARS``)
and kill the whole process with SIGSEGV, which no ``try`` can catch. The size bound keeps the known
crash away; this module is the second line of defence for the crashes nobody knows yet:

* :func:`stream_isolated` runs a generator function in a single-use child process and hands back
  what it yields as it comes. When the child dies, everything it yielded before is kept and
  :class:`ChildCrashed` (with the exit status) is raised: the caller knows exactly which item the
  child was working on, records that, and goes on with the rest in a fresh child.
* :class:`CrashTolerantPool` is a process pool whose tasks survive the death of a worker: a task
  lost with a broken pool is handed to a ``recover`` function (which re-runs it with
  :func:`stream_isolated`), and the next tasks go to a fresh pool.

Test-only hook: when the environment variable ``SWCDATA_TEST_CRASH_ON`` is set, a process that
entered through a worker entry (a validate pool task, an isolated child) and then is about to parse a
code span containing its value kills itself with SIGSEGV, as a tree-sitter crash would. It is read
only in those entries (:func:`arm_test_crash`), never in the command's own process, and exists so
that the tests can prove that a run survives a crashing worker.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

__all__ = ["TEST_CRASH_ENV", "ChildCrashed", "CrashTolerantPool", "arm_test_crash", "describe_exit",
           "stream_isolated"]

T = TypeVar("T")
R = TypeVar("R")

TEST_CRASH_ENV = "SWCDATA_TEST_CRASH_ON"
test_crash_mark: str | None = None  # (set only by arm_test_crash, in worker processes)


def arm_test_crash() -> None:
    """Worker entry: read the test-only crash hook (see the module)."""
    global test_crash_mark
    test_crash_mark = os.environ.get(TEST_CRASH_ENV) or None


def test_crash(code: str) -> None:
    """The test-only hook (see the module): die as a segfaulting parser would when armed and `code` has the mark."""
    if test_crash_mark is not None and test_crash_mark in code:
        die_by_sigsegv()


def die_by_sigsegv() -> None:
    """End this process as a segfault would (without faulthandler's traceback: a planned death)."""
    import faulthandler

    faulthandler.disable()
    os.kill(os.getpid(), signal.SIGSEGV)


def describe_exit(status: int | None) -> str:
    """A process's exit status in words: ``signal SIGSEGV`` for -11, ``exit status 3`` for 3."""
    if status is None:
        return "no exit status"
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"exit status {status}"


class ChildCrashed(Exception):
    """A child process died before it finished (a signal, or an exit without saying it was done)."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"the child process died ({describe_exit(status)})")
        self.status = status

    @property
    def why(self) -> str:
        return describe_exit(self.status)


_ITEM, _DONE, _ERROR = 0, 1, 2


def _child(conn: Any, parent: int, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...]) -> None:
    """Child entry of stream_isolated: send each item `fn(*args)` yields, then DONE (or the exception)."""
    from swcdata.core.workers import die_with_parent

    die_with_parent(parent)
    arm_test_crash()
    try:
        for item in fn(*args):
            conn.send((_ITEM, item))
        conn.send((_DONE, None))
    except BaseException as e:  # (raised again in the parent, as a pool would)
        try:
            conn.send((_ERROR, e))
        except Exception:  # (an exception that does not pickle)
            conn.send((_ERROR, RuntimeError(f"{type(e).__name__}: {e}")))
    finally:
        conn.close()


def stream_isolated(fn: Callable[..., Iterator[T]], *args: Any) -> Iterator[T]:
    """Run the generator function ``fn(*args)`` in a single-use child process and yield its items
    here as they come. When the child dies first, :class:`ChildCrashed` is raised after the items it
    sent; a Python exception in the child is raised here again. The child exits with this process."""
    ctx = multiprocessing.get_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, os.getpid(), fn, args), name="swcdata-isolated", daemon=True)
    # A forked child's collector would walk every object it inherited, writing to (and so copying) their
    # pages: frozen, they stay out of its collections. (This process unfreezes them at once.)
    gc.freeze()
    try:
        proc.start()
    finally:
        gc.unfreeze()
    send.close()
    finished = False
    try:
        while True:
            try:
                kind, value = recv.recv()
            except EOFError:  # the child died (a partly sent item reads as the end, too)
                break
            if kind == _ITEM:
                yield value
            elif kind == _DONE:
                finished = True
                break
            else:
                finished = True
                raise value
    finally:
        recv.close()
        if not finished and proc.is_alive():  # (the consumer stopped early, or an interrupt)
            proc.terminate()
        proc.join()
    if not finished:
        raise ChildCrashed(proc.exitcode)


class _Task(Generic[T, R]):
    __slots__ = ("args", "future", "pool")

    def __init__(self, args: T, future: Future[R] | None, pool: ProcessPoolExecutor | None) -> None:
        self.args, self.future, self.pool = args, future, pool


class CrashTolerantPool(Generic[T, R]):
    """Tasks ``fn(args)`` on a process pool that survive the death of a worker.

    A dead worker breaks a ProcessPoolExecutor: every task in it fails with BrokenProcessPool, and
    which one killed it is unknown. Here each task lost that way is handed to ``recover(args)``, in
    this process, when its result is asked for (``recover`` re-runs it in single-use processes, see
    :func:`stream_isolated`, and finds the item that crashes), and the tasks submitted from then on
    go to a fresh pool made by ``make``. Results are asked for in the caller's order, so they stay in
    input order. Python exceptions of a task are raised as they are.
    """

    def __init__(self, make: Callable[[], ProcessPoolExecutor], fn: Callable[[T], R],
                 recover: Callable[[T], R]) -> None:
        self._make, self._fn, self._recover = make, fn, recover
        self._pool: ProcessPoolExecutor | None = make()
        self.recovered = 0  # tasks handed to `recover`

    def submit(self, args: T) -> _Task[T, R]:
        if self._pool is None:
            self._pool = self._make()
        try:
            return _Task(args, self._pool.submit(self._fn, args), self._pool)
        except BrokenProcessPool:  # (broken since the last submit: a fresh pool takes this one)
            self._replace(self._pool)
            assert self._pool is not None
            return _Task(args, self._pool.submit(self._fn, args), self._pool)

    def result(self, task: _Task[T, R]) -> R:
        if task.future is not None:
            try:
                return task.future.result()
            except BrokenProcessPool:
                self._replace(task.pool)
        self.recovered += 1
        return self._recover(task.args)

    def _replace(self, broken: ProcessPoolExecutor | None) -> None:
        if broken is not None and broken is self._pool:
            broken.shutdown(wait=True, cancel_futures=True)  # (its workers are gone or being ended)
            self._pool = self._make()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> CrashTolerantPool[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
