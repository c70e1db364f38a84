"""The content hash: the identity of a version's data, computed from the records alone.

`content_hash` is the sha256 over the split names (sorted) and every row's canonical JSON (sorted keys), in row
order, after a fixed header (`HASH_FORMAT`). It does not depend on Arrow chunking, nullability flags, the machine
or the time, so the same records give the same hash anywhere. `canonical` is the step before publishing: it
checks the tables against the record schema, re-encodes them (one contiguous chunk, the splits in a fixed
order) and returns them with their hash and counts; the registry writes exactly these tables.

pyarrow and `datasets` are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import DataError
from swcdata.registry.manifest import SplitCounts

if TYPE_CHECKING:
    import pyarrow as pa

HASH_FORMAT = b"swcdata-content-hash/1\n"
SPLIT_ORDER = ("train", "validation", "test")
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name


def as_arrow(data: Any) -> pa.Table:
    """A pa.Table from a pa.Table or a `datasets.Dataset` (its rows in their visible order)."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if getattr(data, "_indices", None) is not None:  # a shuffled/selected Dataset: materialise its row order
        with quiet_datasets():
            data = data.flatten_indices()
    table = getattr(data, "data", None)
    table = getattr(table, "table", table)
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow Table or a datasets.Dataset, got {type(data).__name__}")
    return table


def _iter_row_json(table: pa.Table) -> Iterator[tuple[dict[str, Any], bytes]]:
    import orjson

    for batch in table.to_batches():
        for row in batch.to_pylist():
            yield row, orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _split_header(name: str, rows: int) -> bytes:
    return b"split\x00" + name.encode("utf-8") + b"\x00" + str(rows).encode() + b"\n"


def content_hash(dd: Mapping[str, Any]) -> str:
    """sha256 over the split names (sorted) and every row's canonical JSON (sorted keys), in row order.

    Independent of Arrow chunking, nullability flags, machine and time. Accepts a mapping of split name
    to `pa.Table` or `datasets.Dataset` (so a `DatasetDict` works too)."""
    h = hashlib.sha256(HASH_FORMAT)
    for name in sorted(dd):
        table = as_arrow(dd[name])
        h.update(_split_header(name, table.num_rows))
        for _, line in _iter_row_json(table):
            h.update(line)
            h.update(b"\n")
    return h.hexdigest()


def split_order(names: list[str]) -> list[str]:
    """Split names in the order they are stored: train, validation, test, then any other by name."""
    return [s for s in SPLIT_ORDER if s in names] + sorted(s for s in names if s not in SPLIT_ORDER)


def canonical(splits: Mapping[str, pa.Table]) -> tuple[dict[str, pa.Table], str, dict[str, SplitCounts]]:
    """Check and re-encode the tables (RECORD_SCHEMA, one contiguous chunk, fixed split order); return them
    with the content hash and the counts."""
    import pyarrow as pa

    from swcdata.core.records import RECORD_COLUMNS, RECORD_SCHEMA, table_from_rows

    if not splits:
        raise DataError("nothing to publish: no splits given")
    problems = []
    arrow: dict[str, pa.Table] = {}
    for name, data in splits.items():
        if not isinstance(name, str) or not _SPLIT_RE.match(name):
            problems.append(f"split name {name!r} is not valid: use letters, digits and '_' (e.g. 'train')")
            continue
        table = arrow[name] = as_arrow(data)
        missing = [c for c in RECORD_COLUMNS if c not in table.column_names]
        extra = [c for c in table.column_names if c not in RECORD_COLUMNS]
        if missing:
            problems.append(f"split {name!r} lacks the record columns: {', '.join(missing)}")
        if extra:
            problems.append(f"split {name!r} has columns that are not record columns: {', '.join(extra)} "
                            "(drop them before publishing)")
    if problems:
        raise DataError("cannot publish: " + "; ".join(problems))

    out: dict[str, pa.Table] = {}
    counts: dict[str, SplitCounts] = {}
    for name in split_order(list(splits)):
        table = arrow[name].select(list(RECORD_COLUMNS))
        try:
            rows = table.cast(RECORD_SCHEMA).to_pylist()
            canon = table_from_rows(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise DataError(f"cannot publish: split {name!r} does not fit the record schema: {e}") from None
        out[name] = canon
        by_cat = Counter(r["category"] for r in rows)
        counts[name] = SplitCounts(records=len(rows), by_category=dict(sorted(by_cat.items())))
    return out, content_hash(out), counts


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while the registry reads or writes (steps never print)."""
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()

