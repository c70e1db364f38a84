"""A version's data files, written a shard at a time: the folder `datasets.save_to_disk` writes
(`dataset_dict.json`; per split `state.json`, `dataset_info.json` and `data-0000i-of-0000n.arrow`), so that
`datasets.load_from_disk` reads a version as it is.

Each shard (`shards_of(rows)`: they depend on the split's row count alone) is written from fresh buffers of its
own rows (`record_table` on a worker; a copy of the slice here, or the canonical table itself when the split is
one shard) by `datasets`' `ArrowWriter` in batches, as `save_to_disk` writes a shard. So its file depends on its
rows alone, not on the table or the blocks it was cut from, nor on the machine: a local build writes a version's
shards one after another here (`write_tables`), and a Ray build's workers each write theirs
(`swcdata.engine.build`), with the same bytes. `write_shard` returns what the version needs of a shard: its rows,
its digest (content hash format 2: `swcdata.registry.content`), its category counts and its file's sha256;
`summary` joins them into the content hash, the counts and the file hashes.

`datasets` is imported inside the functions that need it (on a worker, once per process).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from swcdata.registry.content import (
    category_counts,
    combined_hash,
    record_table,
    shard_digest,
    shards_of,
    split_order,
)
from swcdata.registry.manifest import SplitCounts

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

DICT_FILE = "dataset_dict.json"
STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"
MAX_BATCH_ROWS = 1_000  # `datasets`' DEFAULT_MAX_BATCH_SIZE: rows per record batch of a shard file (fewer for big rows)
MAX_BATCH_BYTES = 100 << 20  # `datasets`' MAX_ROW_GROUP_SIZE (100MB): the bytes a record batch aims at most


class Shard(NamedTuple):
    """One written shard: where it lies in the version, and what the manifest needs of it."""

    split: str
    index: int
    rows: int
    digest: bytes  # (b"" when not hashed)
    categories: dict[str, int]
    path: str  # relative to the version folder
    sha256: str  # the file's ("" when not hashed)


def record_features() -> datasets.Features:
    """The `datasets` features of a record (RECORD_SCHEMA): the schema of every shard file."""
    import datasets

    from swcdata.core.records import RECORD_SCHEMA

    return datasets.Features.from_arrow_schema(RECORD_SCHEMA)


def shard_path(split: str, index: int, count: int) -> str:
    """A shard's file, relative to the version folder (`save_to_disk`'s name)."""
    return f"{split}/data-{index:05d}-of-{count:05d}.arrow"


def shard_count(rows: int) -> int:
    return len(shards_of(rows))


def fingerprint(content_hash: str, split: str) -> str:
    """The `datasets` fingerprint of a split (state.json): from the content hash, so that it is the same anywhere."""
    return hashlib.sha256(f"{content_hash}:{split}".encode()).hexdigest()[:16]


def write_shard(table: pa.Table, folder: Path, split: str, index: int, count: int, *, hashed: bool = True,
                canonical: bool = False) -> Shard:
    """Write the rows of shard `index` of `count` of `split` (the record columns, any chunks) under `folder`.
    `hashed`: also compute its digest and its file's sha256 (a worker's shard; the local build hashes the tables
    before it writes them, and the files after). `canonical`: the table is `record_table`'s already (checked, in
    fresh buffers of its own rows only), written as it is. A DataError names a row that does not fit the record
    schema."""
    from datasets.arrow_writer import ArrowWriter

    from swcdata.core.io import sha256_file

    canon = table if canonical else record_table(table, split, table.num_rows)
    path = folder / shard_path(split, index, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = batch_rows(canon)
    writer = ArrowWriter(features=record_features(), path=str(path), embed_local_files=True)
    try:
        for start in range(0, canon.num_rows, batch):
            writer.write_table(canon.slice(start, batch))
        writer.finalize()
    finally:
        writer.close()
    return Shard(split, index, canon.num_rows, shard_digest(canon) if hashed else b"", category_counts(canon),
                 shard_path(split, index, count), sha256_file(path) if hashed else "")


def batch_rows(table: pa.Table) -> int:
    """Rows per record batch of a shard file: `datasets`' rule (at most 1,000, fewer where rows are big)."""
    nbytes = table.nbytes
    return min(MAX_BATCH_ROWS, max(1, table.num_rows * MAX_BATCH_BYTES // nbytes) if nbytes > 0 else 1)


def write_metadata(folder: Path, shards: Mapping[str, int], content_hash: str) -> None:
    """The metadata `save_to_disk` writes beside the shards: `dataset_dict.json` (the splits, in their stored
    order) and per split `state.json` (its shard files, its fingerprint) and `dataset_info.json` (the features)."""
    import datasets
    from datasets.utils.py_utils import asdict  # (the one `save_to_disk` uses: it leaves out the unset fields)

    names = split_order(list(shards))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DICT_FILE).write_text(json.dumps({"splits": names}), encoding="utf-8")
    info = asdict(datasets.DatasetInfo(features=record_features()))
    info_text = json.dumps({key: info[key] for key in sorted(info)}, indent=2)
    for split in names:
        n = shards[split]
        state = {"_data_files": [{"filename": Path(shard_path(split, i, n)).name} for i in range(n)],
                 "_fingerprint": fingerprint(content_hash, split), "_format_columns": None, "_format_kwargs": {},
                 "_format_type": None, "_output_all_columns": False, "_split": split}
        (folder / split).mkdir(exist_ok=True)
        (folder / split / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        (folder / split / INFO_FILE).write_text(info_text, encoding="utf-8")


def write_tables(folder: Path, tables: Mapping[str, pa.Table], content_hash: str) -> None:
    """Every shard of every split, written here one after another, and the metadata (the local build's
    publication: the tables are `canonical`'s, their hash computed already)."""
    from swcdata.registry.content import _compact

    for split in split_order(list(tables)):
        table = tables[split]
        bounds = shards_of(table.num_rows)
        for i, (a, b) in enumerate(bounds):
            # (a split of one shard is written as it is; a shard of several, from fresh buffers of its own rows, as a
            # worker writes it: a record batch at the end of a slice would carry bytes of the rows after it)
            shard = table if len(bounds) == 1 else _compact(table.slice(a, b - a))
            write_shard(shard, folder, split, i, len(bounds), hashed=False, canonical=True)
    write_metadata(folder, {split: shard_count(t.num_rows) for split, t in tables.items()}, content_hash)


class Written(NamedTuple):
    """A version's data as its shards' writers reported it: the content hash, the counts per split (in stored
    order) and the sha256 of each shard file (relative path -> hex)."""

    content_hash: str
    counts: dict[str, SplitCounts]
    files: dict[str, str]


def summary(shards: Iterable[Shard], rows: Mapping[str, int]) -> Written:
    """Join the shards that wrote each split (`rows`: the rows each split holds; every one of its shards must be
    there, once) into the content hash (format 2), the counts and the file hashes."""
    by_split: dict[str, dict[int, Shard]] = {split: {} for split in rows}
    for s in shards:
        if s.split not in by_split or s.index in by_split[s.split]:
            raise AssertionError(f"shard {s.index} of split {s.split!r} was not expected, or came twice")
        by_split[s.split][s.index] = s
    parts: dict[str, tuple[int, list[bytes]]] = {}
    counts: dict[str, SplitCounts] = {}
    files: dict[str, str] = {}
    for split in split_order(list(rows)):
        bounds = shards_of(rows[split])
        got = by_split[split]
        if sorted(got) != list(range(len(bounds))):
            raise AssertionError(f"split {split!r}: shards {sorted(got)} written, {len(bounds)} expected")
        ordered = [got[i] for i in range(len(bounds))]
        for s, (a, b) in zip(ordered, bounds, strict=True):
            if s.rows != b - a:
                raise AssertionError(f"shard {s.index} of split {split!r} holds {s.rows:,} rows, not {b - a:,}")
            files[s.path] = s.sha256
        parts[split] = (rows[split], [s.digest for s in ordered])
        total: Counter[str] = Counter()
        for s in ordered:
            total.update(s.categories)
        counts[split] = SplitCounts(records=rows[split], by_category=dict(sorted(total.items())))
    return Written(combined_hash(parts), counts, files)
