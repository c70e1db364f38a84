"""`build --engine ray`: the build's validate, dedup, split and augment on a Ray cluster (`RaySteps`, the runner that
`swcdata.registry.build.run_build` takes), with the same version as the local build.

Each step is the engine's (`validate_on_ray`, `dedup_on_ray`, `split_on_ray`, `augment_on_ray`); the records
pass between them as Ray Datasets with `_order`, their source files renamed to the published names on the
workers. The final splits are gathered on the driver, where the audit between them and the publication run (the
version's files and content hash are the local engine's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from swcdata.core.records import RECORD_SCHEMA
from swcdata.engine.blocks import mapped
from swcdata.registry.build import PublishedNames, Steps, renamed_sources
from swcdata.steps.dedup import CLUSTERS_SCHEMA, REMOVED_SCHEMA, DedupConfig
from swcdata.steps.split import SplitConfig
from swcdata.steps.validate import ValidateConfig


def _renamed(batch: pa.Table, names: dict[str, str]) -> pa.Table:
    """`PublishedNames.table` on a worker: `names` maps each input file, as the records name it, to its published
    name (computed on the driver, whose working folder the names depend on)."""
    return renamed_sources(batch, lambda f: names.get(f, f))


class RaySteps(Steps):
    """The build's steps on the Ray cluster at `address` (else RAY_ADDRESS, else one started for the build)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.ray: Any = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        from swcdata.engine.session import ray_session

        with ray_session(self.address) as ray:
            self.ray = ray
            try:
                yield ray
            finally:
                self.ray = None

    def validate(self, files: list[Path], cfg: ValidateConfig, names: PublishedNames) -> tuple[Any, Any, list[Any]]:
        from swcdata.engine.reading import validate_on_ray

        valid = validate_on_ray([str(f) for f in files], cfg)
        renamed = mapped(valid.records, _renamed, None, names={str(f): names(str(f)) for f in files})
        return renamed, valid.report, valid.quarantined

    def dedup(self, records: Any, cfg: DedupConfig) -> tuple[Any, Any]:
        from swcdata.engine.dedup import dedup_on_ray

        result = dedup_on_ray(records, cfg)
        # (the manifest stores the removed records: gathered here, as the splits are)
        result.report._removed = self._table(result.removed, REMOVED_SCHEMA)
        result.report._clusters = self._table(result.clusters, CLUSTERS_SCHEMA)
        return result.kept, result.report

    def split(self, records: Any, cfg: SplitConfig, holdout: pa.Table | None) -> tuple[dict[str, Any], Any]:
        from swcdata.engine.split import split_on_ray

        result = split_on_ray(records, cfg, holdout)
        return result.splits, result.report

    def augment(self, splits: dict[str, Any], cfg: Any) -> tuple[dict[str, Any], Any]:
        from swcdata.engine.augment import augment_on_ray

        result = augment_on_ray(splits, cfg)
        return result.splits, result.report

    def gather(self, splits: dict[str, Any]) -> dict[str, pa.Table]:
        """Each split as one table of RECORD_SCHEMA, in its order (the engine's columns dropped)."""
        return {name: self._table(ds, RECORD_SCHEMA) for name, ds in splits.items()}

    def _table(self, ds: Any, schema: pa.Schema) -> pa.Table:
        tables = [t.select(schema.names) for t in self.ray.get(ds.to_arrow_refs()) if t.num_rows]
        return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()
