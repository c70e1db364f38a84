"""Where the data steps run: `local` (this machine: processes of a pool, the default) or `ray` (a Ray cluster,
through Ray Data, when a corpus outgrows one machine). Both give the same results for the same inputs and config.

- `Engine`, `ENGINES`: the names; `choose` picks one from the command line, `swcdata.toml` and the default.
- `require_ray()`: the `ray` module, or an InputError that says how to install the `[ray]` extra.
- `swcdata.engine.session`: joining or starting a Ray cluster (`--ray-address`, `RAY_ADDRESS`).

The Ray engine's stages stand on the same pure functions as the local steps (validation of a run of lines, the
MinHash signature of a record, the keep rule), so that its results are the local engine's by construction, and
the tests check that they are. Ray is imported only where the `ray` engine is chosen.
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal

from swcdata.core.errors import InputError

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
RAY_EXTRA = "pip install 'swcdata[ray]'"


def choose(cli: str | None, configured: str | None = None) -> Engine:
    """The engine: the command line's `--engine`, else `engine = ...` from the config, else local."""
    value = cli if cli is not None else configured if configured is not None else "local"
    if value not in ENGINES:
        raise InputError(f"unknown engine {value!r}", hint=f"use one of: {', '.join(ENGINES)}")
    return value  # type: ignore[return-value]


def require_ray() -> ModuleType:
    """`ray` (with Ray Data), or an InputError naming the extra that installs it."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise InputError(f"--engine ray needs Ray Data, which is not installed ({e.msg})",
                         hint=f"{RAY_EXTRA} (or pip install 'ray[data]')") from None
    return ray
