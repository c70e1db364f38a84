"""A published version as the reference of `dedup --against` and `audit --reference`: its records read from the
version's own data (verified against its manifest and content hash), never from the files it was built from, and
their MinHash signatures from its signature index when that index was made with the parameters asked for."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from swcdata.core.records import RECORD_COLUMNS, RECORD_SCHEMA
from swcdata.registry.manifest import Manifest
from swcdata.registry.store import Registry
from swcdata.steps.against import Reference
from swcdata.steps.dedup import DedupConfig, Progress, signed

VERSION_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}@(v\d+|latest|[0-9a-f]{4,64})$")


def is_version_ref(text: str) -> bool:
    """Whether an argument names a registry version (name@vN, name@latest, name@<hash prefix>) rather than a file:
    a path that exists is a file."""
    return bool(VERSION_REF.match(text)) and not Path(text).exists()


def version_records(registry: Registry, ref: str) -> tuple[pa.Table, Manifest]:
    """Every record of a version (its splits in stored order, the record columns), verified; and its manifest."""
    tables, m = registry.tables(ref)
    parts = [t.select(list(RECORD_COLUMNS)).cast(RECORD_SCHEMA) for t in tables.values()]
    return (pa.concat_tables(parts) if parts else RECORD_SCHEMA.empty_table()), m


def version_reference(registry: Registry, ref: str, cfg: DedupConfig, progress: Progress | None = None) -> Reference:
    """The version's records with their signatures (`steps.against.Reference`): from its signature index where it
    holds them with `cfg`'s parameters, else signed from the version's data (the note says which and why). An index
    that does not match the version's manifest is a DataError."""
    table, m = version_records(registry, ref)
    name = m.ref
    index = registry.signature_index(m) if cfg.near else None
    if not cfg.near:
        note = "exact duplicates only: no signatures"
    elif index is None:
        note = f"{name} has no signature index: its records were signed from its data"
    elif differences := index.params.differences(cfg.index_params()):
        note = (f"the signature index of {name} was made with other parameters ({'; '.join(differences)}): not used, "
                "its records were signed afresh from its data")
        index = None
    else:
        note = f"signatures read from the signature index of {name}"
    if cfg.near and table.num_rows:
        done = signed(table, cfg, known=index, progress=progress)
        sig, reused = done.sig, done.reused
    else:
        import numpy as np

        from swcdata.similarity.minhash import EMPTY

        sig, reused = np.full((table.num_rows, cfg.num_perm), EMPTY, np.uint32), 0  # (no near match)
    if index is not None and reused < table.num_rows:
        note += f" ({table.num_rows - reused:,} signed from its data: not in the index)"
    return Reference.of(name, table.column("id").combine_chunks(), table.column("source").combine_chunks(), sig,
                        reused, note, cfg)
