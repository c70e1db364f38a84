"""swcdata: trustworthy, versioned instruction data about Solidity vulnerabilities (SWC classes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import datasets

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(ref: str, *, home: str | Path | None = None, verify: bool = True) -> datasets.DatasetDict:
    """Load a published version (`name@vN`, `name@latest`, `name` or `name@<hash prefix>`) from the registry
    (`home`, else $SWCDATA_HOME, else ./registry) as a `datasets.DatasetDict`, verified against its manifest."""
    from swcdata.registry import load as _load

    return _load(ref, home=home, verify=verify)
