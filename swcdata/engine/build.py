"""`build --engine ray`: the build on a Ray cluster (`RaySteps`, the runner that `swcdata.registry.build.run_build`
takes), with the same version as the local build.

Each step is the engine's (`validate_on_ray`, `dedup_on_ray`, `split_on_ray`, `augment_on_ray`); the records
pass between them as Ray Datasets with `_order`, their source files renamed to the published names on the
workers. Then:

- the audit between the final splits is `audit_on_ray`: the larger split is the reference, scanned where it lies
  (its records numbered in their published order, `indexed`), and the smaller one (validation, test) comes to the
  driver as the candidates;
- the publication: each split is cut at its shard bounds (`Dataset.split_at_indices`, the bounds of the registry's
  `shards_of`), and one Ray task per shard writes its file into the version's temporary folder
  (`swcdata.registry.shards.write_shard`: the bytes the local build writes) and returns its digest, counts and
  file hash; the driver joins them (`shards.summary`: the content hash the local build computes) and writes the
  metadata, the manifest and the log line under the registry's lock (`Registry.publish_written`). A task that
  fails is retried by Ray and writes its shard again; on a cluster of several machines the registry must be on
  storage that every node mounts at the same path (the driver checks that it sees every shard).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from swcdata.core.records import RECORD_COLUMNS, RECORD_SCHEMA
from swcdata.engine.blocks import ORDER, SIG, broadcast, mapped, materialized, raised_as_locally, sig_column, sig_matrix
from swcdata.registry.build import PublishedNames, Steps, renamed_sources, unknown_rows
from swcdata.registry.content import shards_of
from swcdata.registry.shards import Shard, Written, shard_count, summary, write_metadata, write_shard
from swcdata.similarity.sigindex import SignatureIndex, first_of_each, key_array, keys_of
from swcdata.steps.dedup import CLUSTERS_SCHEMA, REMOVED_SCHEMA, DedupConfig, Signed, signed
from swcdata.steps.split import SplitConfig
from swcdata.steps.validate import ValidateConfig

if TYPE_CHECKING:
    from swcdata.registry.manifest import Manifest
    from swcdata.registry.store import Registry
    from swcdata.steps.audit import AuditConfig, AuditSummary


def _renamed(batch: pa.Table, names: dict[str, str]) -> pa.Table:
    """`PublishedNames.table` on a worker: `names` maps each input file, as the records name it, to its published
    name (computed on the driver, whose working folder the names depend on)."""
    return renamed_sources(batch, lambda f: names.get(f, f))


ShardHook = Callable[[str, int], None]  # called in the task with (split, shard index) before it writes


SIGNED = pa.schema([("tkey", pa.binary(16)), ("sig", SIG)])  # (a signature of a build's signature index)


def _unsigned(batch: pa.Table, cfg: DedupConfig, index: Any, known: Any, added: Any) -> pa.Table:
    """The signatures of the batch's records whose texts the broadcast `index` (nor `added`) lacks (one per distinct
    text; from the broadcast `known` where it holds them, else signed), as SIGNED rows."""
    table = batch.select(["instruction", "response"])
    rows, keys = unknown_rows(broadcast(index), table, broadcast(added))
    done = signed(table, cfg, rows, known=broadcast(known) if known is not None else None, keys=keys)
    return pa.Table.from_arrays([key_array(done.keys), sig_column(done.sig)], schema=SIGNED)


def _write_piece(folder: str, split: str, index: int, count: int, hook: ShardHook | None, *blocks: pa.Table
                 ) -> Shard:
    """A Ray task: write shard `index` of `count` of `split` from its blocks, in order (`write_shard`)."""
    if hook is not None:
        hook(split, index)
    tables = [b.select(list(RECORD_COLUMNS)) for b in blocks if b.num_rows]
    table = pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()
    return write_shard(table, Path(folder), split, index, count)


def indexed(ray: Any, ds: Any) -> Any:
    """`ds` with `_order` the row's position in it (0, 1, ...: unique, and sorting by it keeps the order), from its
    blocks' row counts: a task a block."""
    refs = ds.to_arrow_refs()
    counts = ray.get([ray.remote(_rows).remote(r) for r in refs])
    starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)[:-1]]).tolist() if counts else []
    renumber = ray.remote(_numbered)
    return ray.data.from_arrow_refs([renumber.remote(r, s) for r, s in zip(refs, starts, strict=True)])


def _rows(block: pa.Table) -> int:
    return block.num_rows


def _numbered(block: pa.Table, start: int) -> pa.Table:
    order = pa.array(np.arange(start, start + block.num_rows, dtype=np.int64))
    kept = block.drop_columns([c for c in block.column_names if c.startswith("_")])
    return kept.append_column(ORDER, order)


class RaySteps(Steps):
    """The build's steps on the Ray cluster at `address` (else RAY_ADDRESS, else one started for the build).
    `shard_hook`: called in each shard's task before it writes (a seam for tests that kill the worker)."""

    def __init__(self, address: str | None = None, *, shard_hook: ShardHook | None = None) -> None:
        self.address = address
        self.shard_hook = shard_hook
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

    prepares = False  # (every input is read on the workers: `prepared` is not used)
    audits_here = False  # (`audit_on_ray`: the local engine's `features` are not used)

    def validate(self, files: list[Path], cfg: ValidateConfig, names: PublishedNames,
                 checks: Any = None, prepared: Any = None) -> tuple[Any, Any, list[Any]]:
        """Validation on the workers (`checks`' memo broadcast to them, the checked texts gathered here)."""
        from swcdata.engine.reading import validate_on_ray

        valid = validate_on_ray([str(f) for f in files], cfg, checks=checks)
        renamed = mapped(valid.records, _renamed, None, names={str(f): names(str(f)) for f in files})
        return renamed, valid.report, valid.quarantined

    def dedup(self, records: Any, cfg: DedupConfig, known: SignatureIndex | None = None) -> tuple[Any, Any]:
        from swcdata.engine.dedup import dedup_on_ray

        result = dedup_on_ray(records, cfg, known=known)
        # (the version lists the removed records in its removed/duplicates.parquet, which the registry writes here:
        # gathered, a narrow row per removed record)
        result.report._removed = self._table(result.removed, REMOVED_SCHEMA)
        result.report._clusters = self._table(result.clusters, CLUSTERS_SCHEMA)
        if result.signed is not None:  # (the signatures of the version's index, gathered: 4 * num_perm bytes each)
            result.report._signed = self._signed(result.signed, cfg.num_perm, known)
            result.report.reused_signatures = result.report._signed.reused
        return result.kept, result.report

    def index(self, signed: Any, splits: dict[str, Any], cfg: DedupConfig,
              known: SignatureIndex | None = None) -> tuple[SignatureIndex, int, int]:
        """The local runner's index: the final splits' records that the dedup did not sign are signed on the
        workers (a map over each split, the index and `known` broadcast)."""
        params = cfg.index_params()
        index = signed.index(params) if signed is not None else SignatureIndex.empty(params)
        sign_cfg = cfg.model_copy(update={"workers": 1})
        added = SignatureIndex.empty(params)
        reused = 0
        at_index = self.ray.put(index)
        at_known = self.ray.put(known) if known is not None and len(known) else None
        for ds in splits.values():
            rows = mapped(ds, _unsigned, None, cfg=sign_cfg, index=at_index, known=at_known,
                          added=self.ray.put(added))
            more = self._signed(rows, cfg.num_perm, known, also=added)
            added, reused = added.merged(more.keys, more.sig), reused + more.reused
        return index.merged(added.keys, added.sig), len(added) - reused, reused

    def _signed(self, ds: Any, num_perm: int, known: SignatureIndex | None,
                also: SignatureIndex | None = None) -> Signed:
        """Signature rows (tkey, sig) of a Ray Dataset, gathered (a text once, none that `also` holds), with how
        many of them `known` holds."""
        rows = self._table(ds, SIGNED)
        keys, sig = keys_of(rows.column("tkey")), sig_matrix(rows.column("sig"), num_perm)
        first = first_of_each(keys)  # (a text in two blocks: once)
        if len(first) < len(keys):
            keys, sig = keys[first], sig[first]
        if also is not None and len(also) and len(keys):
            new = also.find(keys) < 0
            keys, sig = keys[new], sig[new]
        reused = int((known.find(keys) >= 0).sum()) if known is not None else 0
        return Signed(sig, keys, reused)

    def split(self, records: Any, cfg: SplitConfig, holdout: pa.Table | None, known: Any = None,
              features: Any = None) -> tuple[dict[str, Any], Any]:
        """The split on the cluster (`known` and `features` are the local engine's: the workers sign and read the
        code)."""
        from swcdata.engine.split import split_on_ray

        result = split_on_ray(records, cfg, holdout)
        return result.splits, result.report

    def augment(self, splits: dict[str, Any], cfg: Any, memo: Any = None) -> tuple[dict[str, Any], Any]:
        """Augmentation on the workers (`memo`'s memo broadcast to them, what became of each record gathered
        here)."""
        from swcdata.engine.augment import augment_on_ray

        result = augment_on_ray(splits, cfg, memo=memo)
        return result.splits, result.report

    def final(self, splits: dict[str, Any]) -> dict[str, Any]:
        """Each split materialized once (the audit and the publication read it several times)."""
        return {name: materialized(ds, None) for name, ds in splits.items()}

    def sizes(self, splits: dict[str, Any]) -> dict[str, int]:
        return {name: ds.count() for name, ds in splits.items()}

    def audit(self, reference: Any, candidate: Any, cfg: AuditConfig, known: Any = None,
              features: Any = None) -> AuditSummary:
        """`audit_on_ray` of the candidate split (gathered here) against the reference split (on the cluster,
        numbered in its order: an augmented split's variants share their record's `_order`; `features` is the local
        engine's)."""
        from swcdata.engine.audit import audit_on_ray

        return audit_on_ray(indexed(self.ray, reference), self._table(candidate, RECORD_SCHEMA), cfg).summary

    def publish(self, registry: Registry, name: str, splits: dict[str, Any], fields: dict[str, Any],
                extra_files: dict[str, Callable[[Path], None]] | None = None) -> tuple[Manifest, bool]:
        """The version written by the workers, a task per shard (see the module's docstring)."""
        ray = self.ray
        # (the engine's own columns, `_order` and `_sub`, are not the version's)
        schemas = {split: pa.schema([f for f in ds.schema().base_schema if not f.name.startswith("_")])
                   for split, ds in splits.items()}

        def write(folder: Path) -> Written:
            rows = self.sizes(splits)
            task = ray.remote(_write_piece).options(max_retries=3, retry_exceptions=False)
            pending = []
            for split, ds in splits.items():
                bounds = shards_of(rows[split])
                pieces = ds.split_at_indices([a for a, _ in bounds[1:]]) if len(bounds) > 1 else [ds]
                pending += [task.remote(str(folder), split, i, len(bounds), self.shard_hook, *piece.to_arrow_refs())
                            for i, piece in enumerate(pieces)]
            with raised_as_locally():
                shards: list[Shard] = ray.get(pending)
            written = summary(shards, rows)
            write_metadata(folder, {split: shard_count(n) for split, n in rows.items()}, written.content_hash)
            return written

        return registry.publish_written(name, schemas, write, fields, extra_files)

    def _table(self, ds: Any, schema: pa.Schema) -> pa.Table:
        tables = [t.select(schema.names) for t in self.ray.get(ds.to_arrow_refs()) if t.num_rows]
        return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()
