"""Reading a version's stored files a batch at a time (swcdata.registry.stored) and checking its content hash
beside the reader's work (Registry.reading): the same rows as the memory-mapped tables, in any batch size, and a
tampered or short file refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from swcdata.core.arrow import table_batches, take_rows
from swcdata.core.errors import DataError
from swcdata.registry.content import ContentCheckCancelled, content_hash
from swcdata.registry.store import Registry
from swcdata.registry.stored import StoredSplit
from swcdata.steps.validate import ValidateConfig, load_valid

SAMPLE = Path(__file__).resolve().parents[1] / "dataset" / "swc_sample.jsonl"


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """swc@v1 of the embedded sample, stored in several shards (so that a split is several stream files). The
    shard size is part of the content hash's format: it stays small while the module reads the version."""
    import swcdata.registry.content as content

    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    reg = Registry(tmp_path_factory.mktemp("stored") / "registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(content, "SHARD_ROWS", 30)
        reg.publish("swc", {"train": t.slice(0, 80), "validation": t.slice(80, 12), "test": t.slice(92)})
        yield reg


def test_batches_are_the_mapped_rows_in_any_batch_size(version: Registry) -> None:
    mapped, m = version.tables("swc@v1")
    stored, _ = version.splits("swc@v1")
    assert list(stored) == list(mapped) == ["train", "validation", "test"]
    assert len(stored["train"].paths) == 3  # (80 rows, 30 per shard)
    for name, split in stored.items():
        assert split.num_rows == mapped[name].num_rows and split.schema == mapped[name].schema
        for rows in (1, 7, 29, 30, 31, 1000):
            for columns in (None, ["id"], ["source", "instruction"]):
                got = list(table_batches(split, columns, rows))
                assert all(b.num_rows == rows for b in got[:-1]) and 0 < got[-1].num_rows <= rows
                want = mapped[name] if columns is None else mapped[name].select(columns)
                assert pa.concat_tables(got).equals(want)
    assert content_hash(stored) == content_hash(mapped) == m.content_hash


def test_a_subset_of_columns_is_copied_out_of_the_stream_bodies(version: Registry) -> None:
    """A batch of some columns does not keep the message bodies (the whole record batch) alive."""
    stored, _ = version.splits("swc@v1")
    batch = next(stored["train"].batches(["id"], 80))
    whole = next(stored["train"].batches(None, 80))
    assert batch.column("id").chunk(0).buffers()[2].size < whole.nbytes / 10


def test_take_gathers_rows_in_any_order_with_repeats(version: Registry) -> None:
    mapped, _ = version.tables("swc@v1")
    stored, _ = version.splits("swc@v1")
    rows = np.array([79, 0, 31, 31, 5, 60, 0], dtype=np.int64)
    for columns in (["id", "response"], ["source"]):
        assert take_rows(stored["train"], rows, columns).equals(take_rows(mapped["train"], rows, columns))
    assert take_rows(stored["train"], np.array([], dtype=np.int64), ["id"]).num_rows == 0
    with pytest.raises(IndexError):
        stored["train"].take(np.array([80]), ["id"])


def test_a_stream_shorter_than_its_count_is_refused(version: Registry) -> None:
    stored, _ = version.splits("swc@v1")
    s = stored["test"]
    liar = StoredSplit(s.ref, s.name, s.paths, s.schema, s.num_rows + 1)
    with pytest.raises(DataError, match="holds 12 rows; its manifest counts 13"):
        list(liar.batches())


def test_reading_checks_the_content_beside_the_block_and_stops_when_the_block_fails(version: Registry,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    with version.reading("swc@v1") as (splits, _m):
        assert sum(b.num_rows for b in table_batches(splits["train"], ["id"], 16)) == 80
    # a block that raises: the check is cancelled (its thread ends) and the block's error is what the caller sees
    seen: list[BaseException] = []
    real = Registry._check_content

    def watched(m, folder, dd, cancel=None):  # type: ignore[no-untyped-def]
        try:
            real(m, folder, dd, cancel)
        except BaseException as e:
            seen.append(e)
            raise

    gate = threading.Event()
    monkeypatch.setattr(Registry, "_check_content", staticmethod(watched))
    with pytest.raises(KeyError), version.reading("swc@v1"):
        gate.set()
        raise KeyError("the block failed")
    assert not [t for t in threading.enumerate() if t.name.startswith("verify ")]
    assert all(isinstance(e, ContentCheckCancelled) for e in seen)
