"""The Ray engine's audit (`swcdata.engine.audit.audit_on_ray`) gives exactly the local `audit`'s report.

The seed corpus's test file checked against its five training files (exact copies, near copies, code pasted
into other records, shared n-grams and label conflicts are all there), at reference blocks of 500 and 7 records;
and a reference with 300 variants of one record, so that LSH buckets exceed `minhash.MAX_BUCKET` and only their
head is paired, as the local step pairs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from ray_inputs import ray_input

from swcdata.steps.audit import AuditConfig, audit
from swcdata.steps.validate import ValidateConfig, load_valid

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def test_table(seed_test_file: Path) -> pa.Table:
    return load_valid([seed_test_file], ValidateConfig(check_code=False))[0]


def _assert_same(ray: Any, reference: pa.Table, candidate: pa.Table, cfg: AuditConfig, block: int,
                 rows_per_block: int) -> Any:
    from swcdata.engine.audit import audit_on_ray

    local = audit(reference, candidate, cfg)
    got = audit_on_ray(ray_input(ray, reference, block), candidate, cfg, rows_per_block=rows_per_block)
    assert got.model_dump(exclude={"timings"}) == local.model_dump(exclude={"timings"})
    return local


@pytest.mark.parametrize(("block", "rows_per_block", "rules"), [(500, 1000, ["exact", "near", "code"]),
                                                               (7, 350, ["exact", "near", "code", "ngram"])])
def test_seed_test_file_against_the_seed_corpus(ray_cluster: Any, seed_table: pa.Table, test_table: pa.Table,
                                                block: int, rows_per_block: int, rules: list[str]) -> None:
    report = _assert_same(ray_cluster, seed_table, test_table, AuditConfig(leak_rules=rules), block,  # type: ignore[arg-type]
                          rows_per_block)
    s = report.summary
    assert s.exact + s.near > 0 and s.code_pairs > 0 and s.label_conflicts > 0 and s.ngram_overlap_rate > 0


def test_buckets_over_the_pairing_bound(ray_cluster: Any, seed_table: pa.Table) -> None:
    base = seed_table.slice(0, 1).to_pylist()[0]

    def variant(k: int) -> dict[str, Any]:
        return {**base, "id": f"{k:016x}", "response": base["response"] + f" (note {k})",
                "source": {"file": "variants.jsonl", "line": k + 1}}

    from swcdata.core.records import table_from_rows

    reference = pa.concat_tables([seed_table.slice(1, 200), table_from_rows([variant(k) for k in range(300)])])
    candidate = pa.concat_tables([table_from_rows([variant(1000), variant(1001)]), seed_table.slice(500, 20)])
    report = _assert_same(ray_cluster, reference, candidate, AuditConfig(), 50, 100)
    assert report.summary.near >= 2
