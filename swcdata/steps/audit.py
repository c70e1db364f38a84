"""`audit`: is a candidate set (a test split, an evaluation file) contaminated by a reference set?

For every candidate record, four rules, each with the match's id and source:

- **exact**: the same record (same id);
- **near**: the MinHash estimate of the whole record's code-aware token stream is at or above the
  threshold (the same features as `dedup`);
- **code**: its Solidity code is inside a reference record's code, holds one, or is a near copy of it,
  whatever the prose around it says (`swcdata.similarity.codematch`); a code match with another category is a
  label conflict, listed apart;
- **ngram**: its longest word n-gram shared with any reference record -- the 13-gram rule of GPT-3
  and lm-evaluation-harness.

`leak_rules` says which of them make a leak (default: exact, near and code; the 13-gram rule is
reported, and counts only when asked, since templated prose shares 13-grams everywhere). The summary
gives the contamination rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from swcdata import _native
from swcdata.core.arrow import int64s, to_numpy
from swcdata.core.schema import BACKEND_DOC, Ledger, RecordRef, Source
from swcdata.similarity import minhash
from swcdata.similarity.codematch import CodeMatchConfig, CodePairs, code_pairs, record_code
from swcdata.similarity.sigindex import SignatureIndex
from swcdata.steps.dedup import DedupConfig, Progress, signed
from swcdata.steps.features import Features, Shingled, _words

Rule = Literal["exact", "near", "code", "ngram"]
STRICT_RULES: list[Rule] = ["exact", "near", "code"]


class LeakRules(BaseModel):
    """Which matches make a leak, and the code-level rule's knobs (shared by split, build and audit)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    leak_rules: list[Rule] = Field(default_factory=lambda: list(STRICT_RULES), description="The matches that count "
                                   "as a leak: exact (same record), near (whole-record MinHash), code (the Solidity "
                                   "code alone: contained or near), ngram (a shared overlap_n-gram of words). "
                                   "Default: the strict setting, exact + near + code.")
    code: CodeMatchConfig = Field(default_factory=CodeMatchConfig, description="The code-level rule.")
    overlap_n: int = Field(13, ge=4, le=64, description="Word n-gram length of the overlap rule (GPT-3: 13).")
    ngram_counts_as_leak: bool = Field(False, description="Also count a shared n-gram as a leak (the same as adding "
                                       "`ngram` to leak_rules).")

    def counts(self, rule: Rule) -> bool:
        return rule in self.leak_rules or (rule == "ngram" and self.ngram_counts_as_leak)


class AuditConfig(LeakRules):
    near: DedupConfig = Field(default_factory=DedupConfig, description="Near-duplicate features and threshold.")


Status = Literal["exact", "near", "code", "ngram", "clean"]


class CandidateResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source
    status: Status
    match: RecordRef | None = Field(None, description="The reference record matched exactly or nearly.")
    similarity: float | None = Field(None, description="Estimated Jaccard with the near match (1.0 when exact).")
    longest_ngram: int = Field(0, description="Length in words of the longest span shared with a reference record "
                               "(0 when no overlap_n-gram is shared).")
    ngram_match: RecordRef | None = None
    shared_text: str | None = Field(None, description="The longest shared span (first 300 characters).")
    code_match: RecordRef | None = Field(None, description="A reference record whose code matches this record's "
                                         "code (contained, containing, or near), if any.")
    code_kind: Literal["contained", "contains", "near"] | None = Field(
        None, description="contained: this record's code is inside the reference's; contains: the reference's code "
        "is inside this record's; near: estimated similarity of the code at or above the code threshold.")
    code_similarity: float | None = None
    code_matches: int = Field(0, description="Reference records whose code matches this record's.")
    leak: bool = Field(False, description="A leak under the configured leak_rules.")


class LabelConflict(BaseModel):
    """The same code under two categories: a candidate and a reference record whose code matches."""

    model_config = ConfigDict(extra="forbid")

    candidate: RecordRef
    candidate_category: str
    reference: RecordRef
    reference_category: str
    kind: Literal["contained", "contains", "near"]


class AuditSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference_records: int
    candidate_records: int
    exact: int
    near: int
    code: int = Field(0, description="Candidates matched at the code level only (no exact or near whole-record match).")
    code_pairs: int = Field(0, description="(candidate, reference) pairs whose code matches, counted apart from "
                            "whole-record matches.")
    label_conflicts: int = Field(0, description="Code pairs whose two records carry different categories.")
    ngram_only: int
    clean: int
    leaked: int
    contamination_rate: float = Field(description="leaked / candidate_records.")
    ngram_overlap_rate: float = Field(description="Share of candidates sharing at least one overlap_n-gram.")


class AuditReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="AuditReport")

    config: AuditConfig
    summary: AuditSummary
    candidates: list[CandidateResult]
    label_conflicts: list[LabelConflict] = Field(default_factory=list, description="Every code pair with two "
                                                 "different categories.")
    timings: dict[str, float]
    backend: str = Field(description=BACKEND_DOC)
    reference_input: Ledger | None = Field(None, description="How the reference lines were read (set when audit "
                                           "read files).")
    reference_versions: list[str] = Field(default_factory=list, description="Registry versions (name@vN) whose "
                                          "records are part of the reference, read from their own data.")
    candidate_input: Ledger | None = Field(None, description="How the candidate lines were read: a quarantined "
                                           "candidate line was not checked.")

    @property
    def unchecked(self) -> int:
        """Candidate lines set aside by the schema checks: not matched, so not proven clean."""
        return self.candidate_input.quarantined if self.candidate_input is not None else 0

    @property
    def leaked(self) -> list[CandidateResult]:
        return [c for c in self.candidates if c.leak]


def _longest_overlap(ref_words: Sequence[str], cand_words: Sequence[str], n: int, ref: Shingled | None = None,
                     cand: Shingled | None = None) -> tuple[npt.NDArray[np.int64], ...]:
    """Per candidate: longest shared span in words (0 if none), the index of a reference record holding
    its first n-gram, and the word offset of the span in the candidate. `ref`, `cand`: the two sets' n-grams
    where they are at hand (`Shingled.of` the words)."""
    ref = ref if ref is not None else Shingled.of(ref_words, n)
    rh, rrec, order, rh_sorted, rrec_sorted = ref.h, ref.rec, ref.order, ref.h_sorted, ref.rec_sorted
    ch, coff = (cand.h, cand.off) if cand is not None else minhash.shingle_hashes(list(cand_words), n,
                                                                                  short_whole=False)
    m = len(coff) - 1
    longest = np.zeros(m, dtype=np.int64)
    ref_of = np.full(m, -1, dtype=np.int64)
    start_of = np.zeros(m, dtype=np.int64)
    if len(ch) == 0 or len(rh) == 0:
        return longest, ref_of, start_of
    by_hash = minhash.hash_order(ch)  # (looked up in ascending order: each search starts where the last ended)
    pos = np.empty(len(ch), dtype=np.int64)
    pos[by_hash] = np.searchsorted(rh_sorted, ch[by_hash])
    pos_c = np.minimum(pos, len(rh_sorted) - 1)
    hit = rh_sorted[pos_c] == ch
    crec = np.repeat(np.arange(m, dtype=np.int64), np.diff(coff))
    # runs of consecutive hits inside one record: window j and j+1 overlap in n-1 words
    new_run = hit & ~np.concatenate(([False], hit[:-1] & (crec[1:] == crec[:-1])))
    run_id = np.cumsum(new_run) - 1
    idx = np.flatnonzero(hit)
    if len(idx) == 0:
        return longest, ref_of, start_of
    run_len = np.bincount(run_id[idx], minlength=int(run_id[idx].max()) + 1)
    run_start = np.flatnonzero(new_run)
    run_rec = crec[run_start]
    best = np.lexsort((run_start, -run_len, run_rec))  # per record: longest run, earliest first
    first = np.ones(len(best), dtype=bool)
    first[1:] = run_rec[best][1:] != run_rec[best][:-1]
    # A run of consecutive candidate n-grams that each occur in *some* reference is an upper bound:
    # it may be stitched from several records (or places). The longest run is kept when one reference
    # holds its whole span (then no other run can be longer); otherwise the candidate's exact longest
    # span is computed from the positions of its n-grams in the references.
    for r in best[first]:
        rec = int(run_rec[r])
        start = int(run_start[r] - coff[rec])
        length = int(run_len[r] + n - 1)
        span = " ".join(cand_words[rec].split()[start:start + length])
        lo, hi = np.searchsorted(rh_sorted, ch[run_start[r]], side="left"), np.searchsorted(rh_sorted, ch[run_start[r]],
                                                                                           side="right")
        holder = next((int(x) for x in dict.fromkeys(rrec_sorted[lo:hi].tolist())
                       if f" {span} " in f" {ref_words[x]} "), -1)
        if holder < 0:
            length, holder, start = _exact_longest(ch[coff[rec]:coff[rec + 1]], rh, rrec, rh_sorted, order)
            length += n - 1
        longest[rec], ref_of[rec], start_of[rec] = length, holder, start
    return longest, ref_of, start_of


def _exact_longest(cand: npt.NDArray[np.uint64], rh: npt.NDArray[np.uint64], rrec: npt.NDArray[np.int64],
                   rh_sorted: npt.NDArray[np.uint64], order: npt.NDArray[np.int64]) -> tuple[int, int, int]:
    """(n-grams in the longest run that one reference holds contiguously, that reference, the run's
    first n-gram in the candidate) for one candidate's n-gram hashes: a run along each diagonal of
    (candidate position, reference position) matches."""
    best, best_ref, best_start = 0, -1, 0
    prev: dict[int, int] = {}  # global reference n-gram index -> run length ending there
    # (all the searches at once, uint64 against uint64: a Python int searched one at a time made numpy cast the
    # whole reference array to float64 on every call, 1 ms each)
    los = np.searchsorted(rh_sorted, cand, side="left").tolist()
    his = np.searchsorted(rh_sorted, cand, side="right").tolist()
    for k, (lo, hi) in enumerate(zip(los, his, strict=True)):
        cur: dict[int, int] = {}
        for g in order[lo:hi].tolist():
            run = prev.get(g - 1, 0) + 1 if g > 0 and rrec[g - 1] == rrec[g] else 1
            cur[g] = run
            if run > best:
                best, best_ref, best_start = run, int(rrec[g]), k - run + 1
        prev = cur
    return best, best_ref, best_start


# The audit's second banding targets this much below the threshold (LSH at the threshold itself
# misses about 30 % of pairs at 0.76 with 14 bands of 9 rows).
AUDIT_SENSITIVITY = 0.2


def audit(reference: pa.Table, candidate: pa.Table, config: AuditConfig | None = None, *,
          progress: Progress | None = None, known: SignatureIndex | None = None,
          features: Features | None = None) -> AuditReport:
    """Match every candidate record against the reference set (exact, near, shared n-gram).
    `progress` follows the signing of both sets' records; `known`: a signature index of the near rule's
    parameters (a reference version's) whose signatures are taken instead of signing; `features`: what the rules
    read of each table, kept across the audits of one set of tables (computed here where it lacks them)."""
    cfg = config or AuditConfig()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    # (the candidates' ids and sources become Python in the report, a result per candidate; the reference's stay
    # Arrow, and only the records a result names are read: see `audit_report`)
    nr, nc = reference.num_rows, candidate.num_rows

    # each candidate's first reference record with the same id (index_in keeps a value's first position), or -1
    exact = np.full(nc, -1, dtype=np.int64)
    if nr and nc:
        found = pc.index_in(candidate.column("id"), value_set=reference.column("id").combine_chunks())
        # (-1 as an array: a Python scalar would make pyarrow import pandas, see swcdata.core.arrow)
        exact = to_numpy(pc.coalesce(found.cast(pa.int64()), int64s(exact))).astype(np.int64)
    timings["exact"] = time.perf_counter() - t0

    near = np.full(nc, -1, dtype=np.int64)
    near_sim = np.zeros(nc)
    if nr and nc:
        t = time.perf_counter()
        both = pa.concat_tables([reference.select(["instruction", "response"]),
                                 candidate.select(["instruction", "response"])])
        usable = known is not None and not known.params.differences(cfg.near.index_params())
        sig = signed(both, cfg.near, known=known if usable else None, progress=progress).sig
        timings["minhash"] = time.perf_counter() - t
        t = time.perf_counter()
        # Recall first (a missed match is a leak called clean): every pair of a bucket, not its star
        # around the lowest index (a reference that does not match would hide one that does), and a
        # second, more sensitive banding; every pair is verified at the threshold below.
        # (only the pairs between the two sets: `cross_pairs`, as `candidate_pairs` of both gives them)
        sensitive = minhash.lsh_params(max(0.05, cfg.near.threshold - AUDIT_SENSITIVITY), cfg.near.num_perm)
        cross = minhash.union_pairs(minhash.cross_pairs(sig[:nr], sig[nr:], *cfg.near.lsh()),
                                    minhash.cross_pairs(sig[:nr], sig[nr:], *sensitive), nc) + np.array([0, nr])
        sims = minhash.similarity(sig, cross)
        ok = sims >= cfg.near.threshold
        cross, sims = cross[ok], sims[ok]
        # best match per candidate: highest similarity, then lowest reference index
        order = np.lexsort((cross[:, 0], -sims, cross[:, 1]))
        cand = cross[order, 1] - nr
        firsts = np.ones(len(order), dtype=bool)
        firsts[1:] = cand[1:] != cand[:-1]
        near[cand[firsts]] = cross[order, 0][firsts]
        near_sim[cand[firsts]] = sims[order][firsts]
        timings["lsh"] = time.perf_counter() - t

    t = time.perf_counter()
    if features is not None:
        cp = code_pairs(features.codes(candidate, cfg), features.codes(reference, cfg), cfg.code,
                        b_side=features.code_side(reference, cfg))
    else:
        cp = code_pairs(record_code(candidate.column("instruction").to_pylist(), cfg.code),
                        record_code(reference.column("instruction").to_pylist(), cfg.code), cfg.code)
    timings["code"] = time.perf_counter() - t

    t = time.perf_counter()
    n = cfg.overlap_n
    cand_words: Sequence[str]
    if features is not None:  # (words made only for the records whose n-grams are shared)
        cand_words = features.words(candidate)
        longest, ngram_ref, ngram_start = _longest_overlap(features.words(reference), cand_words, n,
                                                           features.shingled(reference, cfg),
                                                           features.shingled(candidate, cfg))
    else:
        cand_words = _words(candidate)
        longest, ngram_ref, ngram_start = _longest_overlap(_words(reference), cand_words, n)
    timings["ngram"] = time.perf_counter() - t
    ref_columns = [c for c in ("id", "source", "category") if c in reference.column_names]
    return audit_report(cfg, candidate, nr, Matches(exact, near, near_sim, cp, longest, ngram_ref, ngram_start),
                        cand_words, lambda keys: reference.select(ref_columns).take(int64s(keys)), timings, t0)


class Matches(NamedTuple):
    """What the rules found for each candidate, reference records named by a key that sorts as the reference's
    order (locally its row; on Ray its `_order`), -1 for none: the first exact match, the best near match and its
    similarity, the code pairs (`j`: keys), the longest shared n-gram span in words, a reference holding it and
    its word offset in the candidate."""

    exact: npt.NDArray[np.int64]
    near: npt.NDArray[np.int64]
    near_sim: npt.NDArray[np.float64]
    code: CodePairs
    longest: npt.NDArray[np.int64]
    ngram_ref: npt.NDArray[np.int64]
    ngram_start: npt.NDArray[np.int64]


def audit_report(cfg: AuditConfig, candidate: pa.Table, reference_records: int, m: Matches,
                 cand_words: Sequence[str],
                 refs: Callable[[npt.NDArray[np.int64]], pa.Table], timings: dict[str, float],
                 started: float) -> AuditReport:
    """The report of the matches: a result per candidate, the label conflicts and the summary. `refs(keys)`: the
    reference records of those keys (sorted, distinct) in that order, as id, source (and category) columns."""
    exact, near, near_sim, cp, longest, ngram_ref, ngram_start = m
    c_ids: list[str] = candidate.column("id").to_pylist()
    c_src: list[dict] = candidate.column("source").to_pylist()
    nr, nc = reference_records, len(c_ids)
    best_code = _best_code_match(cp, nc)
    named = np.unique(np.concatenate([exact, near, ngram_ref, cp.j.astype(np.int64) if len(cp) else exact[:0]]))
    named = named[named >= 0]
    named_rows = refs(named)
    refs_of = dict(zip(named.tolist(), named_rows.select(["id", "source"]).to_pylist(), strict=True))

    def ref(i: int) -> RecordRef:
        r = refs_of[i]
        return RecordRef(id=r["id"], source=Source(**r["source"]))

    n_code = np.bincount(cp.i, minlength=nc) if len(cp) else np.zeros(nc, dtype=np.int64)
    results: list[CandidateResult] = []
    for j in range(nc):
        status: Status
        if exact[j] >= 0:
            status, match, sim = "exact", ref(int(exact[j])), 1.0
        elif near[j] >= 0:
            status, match, sim = "near", ref(int(near[j])), round(float(near_sim[j]), 4)
        elif best_code[j] >= 0:
            status, match, sim = "code", None, None
        else:
            status, match, sim = ("ngram" if longest[j] else "clean"), None, None
        k = int(best_code[j])
        shared = None
        if longest[j]:
            words = cand_words[j].split()
            shared = " ".join(words[ngram_start[j] : ngram_start[j] + longest[j]])[:300]
        results.append(CandidateResult(
            id=c_ids[j], source=Source(**c_src[j]), status=status, match=match, similarity=sim,
            longest_ngram=int(longest[j]), ngram_match=ref(int(ngram_ref[j])) if ngram_ref[j] >= 0 else None,
            shared_text=shared, code_match=ref(int(cp.j[k])) if k >= 0 else None,
            code_kind=cp.kind[k] if k >= 0 else None,
            code_similarity=float(cp.similarity[k]) if k >= 0 else None, code_matches=int(n_code[j]),
            leak=bool((exact[j] >= 0 and cfg.counts("exact")) or (near[j] >= 0 and cfg.counts("near"))
                      or (k >= 0 and cfg.counts("code")) or (longest[j] and cfg.counts("ngram")))))
    conflicts: list[LabelConflict] = []
    if "category" in named_rows.column_names and "category" in candidate.column_names:
        r_cat = dict(zip(named.tolist(), named_rows.column("category").to_pylist(), strict=True))
        c_cat: list[str] = candidate.column("category").to_pylist()
        conflicts = [LabelConflict(candidate=RecordRef(id=c_ids[a], source=Source(**c_src[a])),
                                   candidate_category=c_cat[a], reference=ref(b), reference_category=r_cat[b],
                                   kind=kind)
                     for a, b, kind in zip(cp.i.tolist(), cp.j.tolist(), cp.kind, strict=True)
                     if c_cat[a] != r_cat[b]]
    counts = {s: sum(1 for r in results if r.status == s) for s in ("exact", "near", "code", "ngram", "clean")}
    leaked = sum(1 for r in results if r.leak)
    timings["total"] = time.perf_counter() - started
    summary = AuditSummary(
        reference_records=nr, candidate_records=nc, exact=counts["exact"], near=counts["near"], code=counts["code"],
        code_pairs=len(cp), label_conflicts=len(conflicts),
        ngram_only=counts["ngram"], clean=counts["clean"], leaked=leaked,
        contamination_rate=round(leaked / nc, 4) if nc else 0.0,
        ngram_overlap_rate=round(int((longest > 0).sum()) / nc, 4) if nc else 0.0,
    )
    return AuditReport(config=cfg, summary=summary, candidates=results, label_conflicts=conflicts,
                       timings={k: round(v, 3) for k, v in timings.items()}, backend=_native.backend())


def _best_code_match(cp: CodePairs, n: int) -> npt.NDArray[np.int64]:
    """Per candidate, the index into `cp` of its strongest code match (containment before near, then the
    highest similarity, then the lowest reference index), or -1."""
    best = np.full(n, -1, dtype=np.int64)
    if not len(cp):
        return best
    rank = np.array([0 if k != "near" else 1 for k in cp.kind])
    order = np.lexsort((cp.j, -cp.similarity, rank, cp.i))
    first = np.ones(len(order), dtype=bool)
    first[1:] = cp.i[order][1:] != cp.i[order][:-1]
    best[cp.i[order][first]] = order[first]
    return best
