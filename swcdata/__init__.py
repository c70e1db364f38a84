"""swcdata: trustworthy, versioned instruction data about Solidity vulnerabilities (SWC classes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import datasets

from swcdata.core.version import __version__

__all__ = ["__version__", "load"]


def load(ref: str, *, home: str | Path | None = None, verify: bool = True) -> datasets.DatasetDict:
    """Load a published version (`name@vN`, `name@latest`, `name` or `name@<hash prefix>`) from the registry
    (`home`, else $SWCDATA_HOME, else ./registry) as a `datasets.DatasetDict`, verified against its manifest.

    `hf://OWNER/NAME@vN` (or `@<branch or commit>`) names a version pushed to the Hugging Face Hub: it is pulled
    into the registry first, as `swcdata pull` does (downloaded when the registry does not hold it yet, refused
    when the data does not match the manifest that travels with it), then loaded from there."""
    if ref.strip().startswith("hf://"):
        from swcdata.registry.hub import pull

        ref = pull(ref, home=home).ref
    from swcdata.registry.store import load as _load

    return _load(ref, home=home, verify=verify)
