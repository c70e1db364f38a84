"""swcdata: trustworthy, versioned instruction data about Solidity vulnerabilities (SWC classes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import datasets
    import polars as pl

from swcdata.core.version import __version__

__all__ = ["__version__", "load", "scan"]


def load(ref: str, *, home: str | Path | None = None, verify: bool = True) -> datasets.DatasetDict:
    """Load a published version (`name@vN`, `name@latest`, `name` or `name@<hash prefix>`) from the registry
    (`home`, else $SWCDATA_HOME, else ./registry) as a `datasets.DatasetDict`, verified against its manifest.

    `hf://OWNER/NAME@vN` (or `@<branch or commit>`) names a version pushed to the Hugging Face Hub: it is pulled
    into the registry first, as `swcdata pull` does (downloaded when the registry does not hold it yet, refused
    when the data does not match the manifest that travels with it), then loaded from there."""
    ref = _pulled(ref, home)
    from swcdata.registry.store import load as _load

    return _load(ref, home=home, verify=verify)


def scan(ref: str, *, split: str | None = None, home: str | Path | None = None, verify: bool = True) -> pl.LazyFrame:
    """A published version as a polars `LazyFrame`, verified against its manifest first exactly as `load` verifies
    it (every data file's sha256, then the content hash); `ref`, `home` and `hf://` refs as in `load`.

    Without `split`: the records of every split in stored order (train, validation, test, then any other), with a
    `split` column (String) after the record columns; `scan(ref).filter(pl.col("split") == "test")` reads the test
    split's files only. With `split="train"`: that split's records alone (no `split` column). Nothing is read
    until the query is collected, and then only the columns it selects, a batch of rows at a time."""
    ref = _pulled(ref, home)
    from swcdata.registry.store import scan as _scan

    return _scan(ref, home=home, split=split, verify=verify)


def _pulled(ref: str, home: str | Path | None) -> str:
    """`ref`, or for `hf://...` the ref of the version pulled into the registry (as `swcdata pull`)."""
    if ref.strip().startswith("hf://"):
        from swcdata.registry.hub import pull

        return pull(ref, home=home).ref
    return ref
