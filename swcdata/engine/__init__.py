"""Where the data steps run: `local` (this machine: processes of a pool, the default) or `ray` (a Ray cluster,
through Ray Data, when a corpus outgrows one machine). Both give the same results for the same inputs and config.

- `Engine`, `ENGINES`: the names; `choose` picks one from the command line, `engine = ...` in ./swcdata.toml and
  the default (local).
- `require_ray()`: the `ray` module, or an InputError that says how to install the `[ray]` extra.
- `swcdata.engine.session`: joining or starting a Ray cluster (`--ray-address`, `RAY_ADDRESS`).

The Ray engine's stages stand on the same pure functions as the local steps (validation of a run of lines, the
MinHash signature of a record, the keep rule), so that its results are the local engine's by construction, and
the tests check that they are. Ray is imported only where the `ray` engine is chosen.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Literal

from swcdata.core.errors import InputError

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
RAY_EXTRA = "pip install 'swcdata[ray]'"


CONFIG_FILE = Path("swcdata.toml")


def choose(cli: str | None, configured: str | None = None) -> Engine:
    """The engine: the command line's `--engine`, else `configured` (a build config's `engine`), else `engine =
    ...` in ./swcdata.toml, else local."""
    value = cli if cli is not None else configured if configured is not None else configured_engine() or "local"
    if value not in ENGINES:
        raise InputError(f"unknown engine {value!r}", hint=f"use one of: {', '.join(ENGINES)}")
    return value  # type: ignore[return-value]


def configured_engine(path: Path = CONFIG_FILE) -> str | None:
    """The top-level `engine` of ./swcdata.toml, where the file is there and sets it (a file that cannot be read
    is left to the command that reads it whole: `build` names its problems)."""
    import tomllib

    try:
        value = tomllib.loads(path.read_text(encoding="utf-8-sig")).get("engine")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if value is not None and not isinstance(value, str):
        raise InputError(f"{path}: engine must be a string, one of {', '.join(ENGINES)}")
    return value


def require_ray() -> ModuleType:
    """`ray` (with Ray Data), or an InputError naming the extra that installs it."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise InputError(f"--engine ray needs Ray Data, which is not installed ({e.msg})",
                         hint=f"{RAY_EXTRA} (or pip install 'ray[data]')") from None
    return ray
