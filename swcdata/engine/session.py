"""Joining a Ray cluster, or starting one on this machine, for the Ray engine.

`ray_session(address)` joins the cluster at `address` (`--ray-address`), else at `RAY_ADDRESS`, else starts a local
one with this machine's cores (`ray.init()`); a session already started in this process (a test's, a notebook's)
is used as it is and left running. Ray Data is set up for results that do not depend on scheduling: blocks keep
their order (`preserve_order`), an error in a map function fails the run as itself (`max_errored_blocks` 0,
`raise_original_map_exception`), and progress bars are off (the CLI shows its own). Ray Data's per-operator
resource reservation is off: it holds part of the CPUs for each operator of a run, so that on a small cluster a
map's second task waits about a second for CPUs that are free (8 tasks of 1.8 s on 2 CPUs: 10.1 s with it, 7.6 s
without, as with Ray tasks alone); the engine's stages are materialized one after another, so no operator
starves another of CPUs. At 1M records on 2 CPUs this took `dedup --engine ray` from 46.9 s to 41.2 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from swcdata.core.errors import InputError
from swcdata.engine import require_ray


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """The `ray` module, initialised: joined to `address` (or RAY_ADDRESS), or a local cluster started for the
    block and shut down after it (one that was running before is left running)."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(address=target, num_cpus=None if target else num_cpus, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise InputError(f"cannot join the Ray cluster at {target}: {e}" if target else
                             f"cannot start a local Ray cluster: {e}",
                             hint="start one with `ray start --head`, then pass --ray-address or set RAY_ADDRESS"
                             if target else "check `ray status`; or pass --ray-address") from None
        started = True
    configure_data(ray)
    if not ray.available_resources().get("CPU"):  # (Ray Data's own warning of it is silenced: see configure_data)
        logging.getLogger(__name__).warning(
            "no CPU of the Ray cluster is free now: the run waits until its other jobs free some")
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def configure_data(ray: Any) -> None:
    """Ray Data settings the engine relies on: blocks in order; a map function's error fails the run (no block
    is dropped) and reaches the driver as itself (an InputError stays one); no progress bars; no per-operator
    reservation of resources (see the module)."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.max_errored_blocks = 0
    ctx.raise_original_map_exception = True
    ctx.enable_progress_bars = False
    ctx.op_resource_reservation_enabled = False
    with contextlib.suppress(AttributeError):
        ctx.print_on_execution_start = False
    # (Ray Data logs a line per execution and a note that its bars are off: the commands report for themselves;
    # its other warnings stay)
    for name in ("ray.data._internal.execution.streaming_executor", "ray.data._internal.progress"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Ray Data warns, once, that "the Dataset job will hang" when an execution starts while no CPU is free; between
    # two of the engine's stages, the CPUs of the one that just ended are often still leased for a moment, and the
    # warning would say that a run hangs which does not. Marked as given here; ray_session says it where the
    # cluster has no free CPU as the run starts.
    from ray.util.debug import log_once

    log_once("cpu_warning")
