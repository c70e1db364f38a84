"""`dedup`: exact and code-aware near-duplicate removal, with a reason for every removed record.

Exact duplicates share a record id (the hash of the normalised instruction + response: NFKC,
typography folded, whitespace collapsed, case folded). Near duplicates are found with MinHash +
LSH over k-gram shingles of a *code-aware token stream*: the Solidity code extracted from both
fields, lexed with comments and layout removed (identifiers and literals optionally abstracted so
that a consistent renaming does not hide a copy), interleaved with the normalised words of the
prose around it. LSH candidates are verified against the threshold with the signatures, and
connected components of the verified pairs are the clusters. Each cluster keeps one deterministic
representative (the first in input order, or the longest); every other member is removed and
points at it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from swcdata import minhash
from swcdata.schema import Ledger, Source
from swcdata.text import normalize_text

_WORD = re.compile(r"\w+")


class DedupConfig(BaseModel):
    """Every knob of the dedup step (defaults chosen by the curve in bench/RESULTS.md)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.7, gt=0, le=1, description="Estimated Jaccard similarity at or above which two "
                             "records are near duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    ngram: int = Field(5, ge=1, le=32, description="Tokens per shingle.")
    bands: int | None = Field(None, ge=1, description="LSH bands (default: chosen from threshold and num_perm).")
    keep: Literal["first", "longest"] = Field("first", description="Which member of a cluster is kept.")
    abstract_identifiers: bool = Field(True, description="Replace code identifiers by one symbol before shingling.")
    abstract_literals: bool = Field(False, description="Replace code number/string literals by one symbol.")
    near: bool = Field(True, description="Find near duplicates (off: exact duplicates only).")
    seed: int = Field(1, description="Seed of the MinHash permutations.")
    workers: int = Field(0, ge=0, description="Processes that build token streams; 0 = one per CPU core.")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands is not None and self.bands > self.num_perm:
            raise ValueError(f"bands ({self.bands}) cannot exceed num_perm ({self.num_perm})")
        return self

    def lsh(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        return minhash.lsh_params(self.threshold, self.num_perm)


# --------------------------------------------------------------------------- the token stream


def _prose_tokens(text: str) -> list[str]:
    return _WORD.findall(normalize_text(text)) if text and not text.isspace() else []


def token_stream(text: str, *, abstract_identifiers: bool = True, abstract_literals: bool = False) -> list[str]:
    """Code-aware tokens of one field: prose words (normalised) and lexed code, in text order."""
    from swcdata import solidity

    out: list[str] = []
    pos = 0
    for span in solidity.extract_code(text):
        out += _prose_tokens(text[pos : span.start])
        out += solidity.code_tokens(span.text, abstract_identifiers=abstract_identifiers,
                                    abstract_literals=abstract_literals)
        pos = span.end
    out += _prose_tokens(text[pos:])
    return out


def _streams(args: tuple[list[str], list[str], bool, bool]) -> list[str]:
    instructions, responses, ids, lits = args
    # Tokens are joined by spaces for the vectorised shingler; a string literal containing spaces
    # simply yields several tokens, the same way every time.
    return [
        " ".join(token_stream(i, abstract_identifiers=ids, abstract_literals=lits)) + " \x00 "
        + " ".join(token_stream(r, abstract_identifiers=ids, abstract_literals=lits))
        for i, r in zip(instructions, responses, strict=True)
    ]


def token_streams(instructions: Sequence[str], responses: Sequence[str], cfg: DedupConfig) -> list[str]:
    """Token streams of many records, on `cfg.workers` processes for large inputs (order kept)."""
    n = len(instructions)
    workers = cfg.workers or (os.cpu_count() or 1)
    step = 2000
    jobs = [(list(instructions[i : i + step]), list(responses[i : i + step]), cfg.abstract_identifiers,
             cfg.abstract_literals) for i in range(0, n, step)]
    if workers <= 1 or n < 4 * step:
        return [s for job in jobs for s in _streams(job)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [s for part in pool.map(_streams, jobs) for s in part]


def record_signatures(instructions: Sequence[str], responses: Sequence[str], cfg: DedupConfig) -> minhash.U32:
    streams = token_streams(instructions, responses, cfg)
    hashes, offsets = minhash.shingle_hashes(streams, cfg.ngram)
    return minhash.signatures(hashes, offsets, cfg.num_perm, cfg.seed)


# --------------------------------------------------------------------------- report


class RecordRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source


class Removed(BaseModel):
    """A removed record and the kept record it duplicates."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source
    kind: Literal["exact", "near"]
    similarity: float = Field(description="1.0 for exact duplicates; estimated Jaccard with the kept record.")
    duplicate_of: RecordRef


class Cluster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    representative: RecordRef
    size: int
    exact: int = Field(description="Members removed as exact duplicates.")
    near: int = Field(description="Members removed as near duplicates.")
    min_similarity: float
    categories: list[str] = Field(description="Distinct categories in the cluster (more than one = label conflict).")


class DedupLedger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int = Field(description="Valid records that entered the step.")
    kept: int
    exact_duplicates: int
    near_duplicates: int

    @property
    def balanced(self) -> bool:
        return self.records == self.kept + self.exact_duplicates + self.near_duplicates


class DedupReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="DedupReport")

    config: DedupConfig
    input: Ledger | None = Field(None, description="How the input lines were read (set when dedup read files).")
    bands: int
    rows: int
    ledger: DedupLedger
    clusters: list[Cluster]
    removed: list[Removed]
    category_conflicts: int = Field(description="Clusters whose members carry different categories.")
    candidate_pairs: int
    verified_pairs: int
    timings: dict[str, float]
    records_per_second: float


# --------------------------------------------------------------------------- the step


def _ref(ids: list[str], sources: list[dict], i: int) -> RecordRef:
    return RecordRef(id=ids[i], source=Source(**sources[i]))


def _representatives(labels: npt.NDArray[np.int64], priority: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each element, the index of its group's representative: the element with the smallest
    `priority` in its group (ties impossible: priority includes the input position)."""
    order = np.lexsort((priority, labels))
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    head_of_sorted = order[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
    rep = np.empty(len(labels), dtype=np.int64)
    rep[order] = head_of_sorted
    return rep


def _priority(table: pa.Table, keep: str) -> npt.NDArray[np.int64]:
    n = table.num_rows
    pos = np.arange(n, dtype=np.int64)
    if keep == "first":
        return pos
    import pyarrow.compute as pc

    length = (pc.utf8_length(table.column("instruction")).to_numpy(zero_copy_only=False).astype(np.int64)
              + pc.utf8_length(table.column("response")).to_numpy(zero_copy_only=False).astype(np.int64))
    return (length.max(initial=0) - length) * (n + 1) + pos  # longest first, then input order


@dataclass(slots=True)
class Clustering:
    """Cluster structure of a record table: every record's exact representative and final (kept)
    representative, and its estimated similarity to the latter."""

    exact_rep: npt.NDArray[np.int64]
    final: npt.NDArray[np.int64]
    sim_to_rep: npt.NDArray[np.float64]
    bands: int
    rows: int
    candidate_pairs: int
    verified_pairs: int
    timings: dict[str, float]


def cluster(table: pa.Table, cfg: DedupConfig, *, all_pairs: bool = False, verify_threshold: float | None = None,
            extra_bandings: Sequence[tuple[int, int]] = ()) -> Clustering:
    """Exact groups by id, then connected components of verified near-duplicate pairs among one
    representative per exact group.

    For leak-free splitting the clusters must contain every pair that a later audit could find:
    `all_pairs` verifies every pair inside each LSH bucket (not only those with the bucket's first
    member), `verify_threshold` verifies below the audit's threshold (a margin for estimation
    error), and `extra_bandings` adds more sensitive (bands, rows) bucketings to the config's own."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    n = table.num_rows
    priority = _priority(table, cfg.keep)
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    _, exact_label = np.unique(ids, return_inverse=True) if n else (None, np.zeros(0, dtype=np.int64))
    exact_rep = _representatives(exact_label.astype(np.int64), priority)
    uniq = np.flatnonzero(exact_rep == np.arange(n))
    timings["exact"] = time.perf_counter() - t0

    bands, rows = cfg.lsh()
    final = exact_rep.copy()
    sim_to_rep = np.ones(n)
    n_candidates = n_verified = 0
    if cfg.near and len(uniq) > 1:
        t = time.perf_counter()
        sub = table.take(pa.array(uniq))
        streams = token_streams(sub.column("instruction").to_pylist(), sub.column("response").to_pylist(), cfg)
        timings["tokens"] = time.perf_counter() - t
        t = time.perf_counter()
        hashes, offsets = minhash.shingle_hashes(streams, cfg.ngram)
        del streams
        sig = minhash.signatures(hashes, offsets, cfg.num_perm, cfg.seed)
        del hashes
        timings["minhash"] = time.perf_counter() - t
        t = time.perf_counter()
        pairs = minhash.candidate_pairs(sig, bands, rows, all_pairs=all_pairs)
        for b, r in extra_bandings:
            more = minhash.candidate_pairs(sig, b, r, all_pairs=all_pairs)
            pairs = np.unique(np.concatenate([pairs, more]), axis=0)
        sims = minhash.similarity(sig, pairs)
        ok = pairs[sims >= (cfg.threshold if verify_threshold is None else verify_threshold)]
        n_candidates, n_verified = len(pairs), len(ok)
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        m = len(uniq)
        graph = coo_matrix((np.ones(len(ok), dtype=np.int8), (ok[:, 0], ok[:, 1])), shape=(m, m))
        _, comp = connected_components(graph, directed=False)
        near_rep_local = _representatives(comp.astype(np.int64), priority[uniq])
        near_rep = uniq[near_rep_local]  # global index of each unique record's final representative
        final[uniq] = near_rep
        final = final[exact_rep]  # exact duplicates follow their exact representative
        moved = np.flatnonzero(near_rep != uniq)
        if len(moved):
            s = minhash.similarity(sig, np.stack([moved, near_rep_local[moved]], axis=1))
            sim_to_rep[uniq[moved]] = s
        timings["lsh"] = time.perf_counter() - t
    return Clustering(exact_rep, final, sim_to_rep, bands, rows, n_candidates, n_verified, timings)


def dedup(table: pa.Table, config: DedupConfig | None = None) -> tuple[pa.Table, DedupReport]:
    """Remove exact and near duplicates from a record table. Returns the kept records (input order)
    and a report that names, for every removed record, the kept record it duplicates."""
    cfg = config or DedupConfig()
    t0 = time.perf_counter()
    n = table.num_rows
    ids: list[str] = table.column("id").to_pylist()
    sources: list[dict] = table.column("source").to_pylist()
    categories: list[str] = table.column("category").to_pylist()
    c = cluster(table, cfg)
    exact_rep, final, sim_to_rep, timings = c.exact_rep, c.final, c.sim_to_rep, c.timings
    bands, rows, n_candidates, n_verified = c.bands, c.rows, c.candidate_pairs, c.verified_pairs

    kept_mask = final == np.arange(n)
    removed: list[Removed] = []
    n_exact = n_near = 0
    for i in np.flatnonzero(~kept_mask):
        # exact: the kept record is its exact twin; near: the kept record only resembles it
        kind: Literal["exact", "near"] = "exact" if final[i] == exact_rep[i] else "near"
        sim = 1.0 if kind == "exact" else float(sim_to_rep[exact_rep[i]])
        if kind == "exact":
            n_exact += 1
        else:
            n_near += 1
        removed.append(Removed(id=ids[i], source=Source(**sources[i]), kind=kind, similarity=round(sim, 4),
                               duplicate_of=_ref(ids, sources, int(final[i]))))
    clusters = _clusters(final, exact_rep, sim_to_rep, ids, sources, categories)
    kept = table.filter(pa.array(kept_mask))
    total = time.perf_counter() - t0
    timings["total"] = total
    report = DedupReport(
        config=cfg, bands=bands, rows=rows,
        ledger=DedupLedger(records=n, kept=int(kept_mask.sum()), exact_duplicates=n_exact, near_duplicates=n_near),
        clusters=clusters, removed=removed,
        category_conflicts=sum(1 for c in clusters if len(c.categories) > 1),
        candidate_pairs=n_candidates, verified_pairs=n_verified,
        timings={k: round(v, 3) for k, v in timings.items()},
        records_per_second=round(n / total, 1) if total > 0 else 0.0,
    )
    return kept, report


def _clusters(final: npt.NDArray[np.int64], exact_rep: npt.NDArray[np.int64], sim: npt.NDArray[np.float64],
              ids: list[str], sources: list[dict], categories: list[str]) -> list[Cluster]:
    n = len(final)
    sizes = np.bincount(final, minlength=n)
    out = []
    members_by_rep: dict[int, list[int]] = {}
    for i in np.flatnonzero(sizes[final] > 1):
        members_by_rep.setdefault(int(final[i]), []).append(int(i))
    for rep in sorted(members_by_rep):
        members = members_by_rep[rep]
        others = [i for i in members if i != rep]
        exact = sum(1 for i in others if exact_rep[i] == rep)
        sims = [1.0 if exact_rep[i] == rep else float(sim[exact_rep[i]]) for i in others]
        out.append(Cluster(representative=_ref(ids, sources, rep), size=len(members), exact=exact,
                           near=len(others) - exact, min_similarity=round(min(sims), 4),
                           categories=sorted({categories[i] for i in members})))
    return out
