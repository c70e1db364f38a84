"""Inputs of the Ray engine's tests: record tables as Ray Datasets with `_order`, and generated corpora."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from swcdata.steps.validate import ValidateConfig, load_valid


def generated(seed_dir: Path, folder: Path, n: int) -> pa.Table:
    """n generated records (swcdata.synthetic.corpus: planted exact copies, near copies and renamed variants of
    seed records), validated (some are dropped, as in the seed data)."""
    from swcdata.synthetic.corpus import write_corpus

    path = folder / f"corpus-{n}.jsonl"
    write_corpus(n, path, seed=0, seed_dir=seed_dir, workers=1)
    return load_valid([path], ValidateConfig(check_code=False))[0]


def file_line_order(table: pa.Table) -> pa.Array:
    """`_order` as the Ray reader numbers records, file index << 40 | line: sparse, in the local order."""
    src = table.column("source").combine_chunks()
    names = src.field("file").to_pylist()
    files = {f: i for i, f in enumerate(dict.fromkeys(names))}
    file_index = np.array([files[f] for f in names], dtype=np.int64)
    return pa.array((file_index << 40) | src.field("line").to_numpy().astype(np.int64))


def ray_input(ray: Any, table: pa.Table, block: int, order: pa.Array | None = None,
              permutation: np.ndarray | None = None) -> Any:
    """The table as a materialized Ray Dataset in blocks of `block` records (the engine reads its input more than
    once), with `_order` (default: the row index), its rows optionally permuted first."""
    table = table.append_column("_order", order if order is not None else pa.array(np.arange(table.num_rows)))
    if permutation is not None:
        table = table.take(pa.array(permutation))
    return ray.data.from_arrow(table).repartition(target_num_rows_per_block=block, strict=True).materialize()


def collected(ray: Any, ds: Any) -> pa.Table:
    """A Ray Dataset's rows in its order, as one table."""
    tables = ray.get(ds.to_arrow_refs())
    return pa.concat_tables(tables) if tables else None  # type: ignore[return-value]
