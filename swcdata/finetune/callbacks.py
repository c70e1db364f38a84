"""Trainer callbacks that make a run survive and say where it is.

- `MetricsJsonl`: every Trainer log appended to `metrics.jsonl` (main process).
- `CheckpointEvery`: a checkpoint when `save_minutes` have passed since the last one, so a long CPU
  run that is stopped loses minutes, not hours.
- `GracefulStop`: the first Ctrl-C or SIGTERM asks the Trainer to save a checkpoint at the end of the
  current step and stop; the run is then marked failed, ready for `--resume`. A second signal stops
  at once, as before.
- `RichProgress`: on a terminal, one bar with the step, the loss and the ETA, instead of
  transformers' tqdm bar and raw `{'loss': ...}` dicts.

Imported only by `swcdata.finetune.train` (transformers is imported here at module level).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from swcdata.finetune.runs import utc_now


class MetricsJsonl(TrainerCallback):
    """Appends every Trainer log (loss, eval_loss, learning rate, ...) to metrics.jsonl, main process only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time": utc_now(), **logs}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=float) + "\n")


class CheckpointEvery(TrainerCallback):
    """Ask for a checkpoint when `minutes` have passed since the start or the last checkpoint."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = minutes * 60.0
        self.clock = clock
        self.last = clock()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.clock() - self.last >= self.seconds:
            control.should_save = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.last = self.clock()


class GracefulStop(TrainerCallback):
    """The first SIGINT/SIGTERM: checkpoint at the end of this step, then stop; the second: stop now.

    Use as a context manager around `trainer.train()` (handlers are set only on the main thread and
    restored on exit). `stopped_by` names the signal after a graceful stop.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.stopped_by: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        self.stopped_by = signal.Signals(signum).name
        self._restore()  # a second signal takes the previous road: stop at once
        self.log(f"{self.stopped_by}: saving a checkpoint at the end of this step, then stopping "
                 "(send it again to stop at once)")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.stopped_by:
            control.should_save = True
            control.should_training_stop = True


def format_seconds(seconds: float) -> str:
    whole = max(0, round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RichProgress(TrainerCallback):
    """One rich progress bar on stderr: step / total, loss, learning rate, elapsed and ETA (main process)."""

    def __init__(self, console: Any = None) -> None:
        self.console = console
        self.progress: Any = None
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), transient=False,
                                 console=self.console or Console(stderr=True, highlight=False))
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.progress is None or not logs:
            return
        parts = []
        if "loss" in logs:
            parts.append(f"loss {float(logs['loss']):.4g}")
        if "eval_loss" in logs:
            parts.append(f"eval {float(logs['eval_loss']):.4g}")
        if parts:
            self.progress.update(self.task, loss=" ".join(parts))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the bar (also when training raised, so the terminal is left clean)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
