"""Choose the MinHash implementation for near-duplicate detection by measurement.

Candidates, all on the same shingle sets (word 5-grams of ``instruction + "\\n" + response``,
lowercased, whitespace-split; a record with fewer than 5 words has one shingle, all its words):

* datasketch 2.0 ``MinHash`` (128 perm, default ``affine32`` scheme, SHA-1 ``hashfunc``),
  one object per record with ``update_batch``; ``MinHash.bulk``; and the same with an
  xxhash ``hashfunc``;
* rensa 0.5 ``RMinHash`` (string tokens, and prehashed flat ``uint64`` buffers) and ``CMinHash``;
* numpy (this file): shingles hashed to ``uint64`` by a vectorised shingler, signatures for a
  whole batch with one affine hash per permutation over the flattened shingle array and
  ``np.minimum.reduceat`` per record (``minhash_signatures``); and a one-permutation-hashing
  variant with optimal densification (``oph_signatures``), O(shingles) instead of
  O(shingles x permutations).

Each candidate runs in a forked child process so that its peak RSS can be read from
``VmHWM``; the parent then scores the Jaccard estimate against exact Jaccard on pairs of
planted near-duplicates. LSH banding + candidate-pair generation is then timed for numpy
(vectorised banding) against datasketch ``MinHashLSH(threshold=0.8, num_perm=128)`` and
rensa ``RMinHashLSH``, on identical signatures and the same (b, r).

Usage::

    python bench/minhash_candidates.py [--records 100000] [--seed-dir ../shared/seed-data]

Prints a Markdown report and writes it to ``bench/results/minhash_candidates.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from swcdata.similarity.minhash import fmix64  # noqa: E402
from swcdata.synthetic.corpus import DEFAULT_SEED_DIR, generate_with_meta, seed_files  # noqa: E402

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

NUM_PERM = 128
SHINGLE = 5


# ============================================================================= shingling
def record_text(rec: dict[str, Any]) -> str:
    """The text that is shingled: instruction and response (a missing field is empty)."""
    ins = rec.get("instruction")
    res = rec.get("response")
    return (ins if isinstance(ins, str) else "") + "\n" + (res if isinstance(res, str) else "")


def py_shingles(text: str, k: int = SHINGLE) -> set[str]:
    """Reference shingler: the set of word k-grams (lowercased, ``str.split()``)."""
    w = text.lower().split()
    if len(w) < k:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


_SHINGLE_MUL = np.uint64(0x9E3779B97F4A7C15)


def hashed_shingles(texts: Sequence[str], k: int = SHINGLE) -> tuple[U64, I64]:
    """Vectorised shingler: one flat ``uint64`` array of shingle hashes and ``offsets``.

    Record ``i`` owns ``hashes[offsets[i]:offsets[i+1]]`` (duplicates kept: harmless for
    MinHash). Tokens come from pyarrow (``utf8_lower`` + ``utf8_split_whitespace``), are
    dictionary-encoded, and only the distinct tokens are hashed with xxh3-64 (stable across
    machines and versions). A shingle hash is ``fmix64`` of a polynomial over its k token
    hashes, computed for all windows at once on shifted views.
    Records with fewer than k tokens get one shingle of all their tokens; empty records none.
    """
    arr = pa.array(texts, type=pa.large_string())
    trimmed = pc.utf8_trim_whitespace(pc.utf8_lower(arr))
    toks = pc.utf8_split_whitespace(trimmed)
    lens = pc.list_value_length(toks).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(toks)
    blank = pc.equal(pc.utf8_length(trimmed), 0).to_numpy(zero_copy_only=False)
    if blank.any():  # arrow splits "" into [""]; str.split() gives []
        flat = flat.filter(pc.not_equal(flat, ""))
        lens[blank] = 0
    enc = pc.dictionary_encode(flat)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    vocab = enc.dictionary.to_pylist()
    vh = np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in vocab), dtype=np.uint64, count=len(vocab))
    th = vh[idx]
    m = len(th)
    n = len(lens)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=starts[1:])
    if m >= k:
        h = th[: m - k + 1].copy()
        for j in range(1, k):
            h *= _SHINGLE_MUL
            h += th[j : m - k + 1 + j]
        h = fmix64(h)
    else:
        h = np.zeros(0, dtype=np.uint64)
    nwin = np.maximum(lens - k + 1, 0)
    # window p (global token position) is valid iff it starts a full window inside its record
    rec_of_tok = np.repeat(np.arange(n, dtype=np.int64), lens)[: len(h)]
    valid = (np.arange(len(h), dtype=np.int64) - starts[:-1][rec_of_tok]) < nwin[rec_of_tok]
    out = h[valid]
    short = np.flatnonzero((lens > 0) & (lens < k))
    counts = nwin.copy()
    if len(short):  # rare: one shingle of all tokens, same polynomial over fewer tokens
        extra = np.empty(len(short), dtype=np.uint64)
        for t, r in enumerate(short):
            seg = [int(v) for v in th[starts[r] : starts[r + 1]]]
            acc = seg[0]
            for v in seg[1:]:
                acc = (acc * int(_SHINGLE_MUL) + v) & 0xFFFFFFFFFFFFFFFF
            extra[t] = fmix64(np.array([acc], dtype=np.uint64))[0]
        counts[short] = 1
        offs_full = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(nwin, out=offs_full[1:])
        pieces: list[np.ndarray] = []
        prev = 0
        for t, r in enumerate(short):
            pieces.append(out[prev : offs_full[r]])
            pieces.append(extra[t : t + 1])
            prev = offs_full[r]
        pieces.append(out[prev:])
        out = np.concatenate(pieces)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return out, offsets


# ===================================================================== numpy MinHash (c)
def _perm_params(num_perm: int, seed: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    dt = np.uint32 if bits == 32 else np.uint64
    a = gen.integers(0, 1 << (bits - 1), num_perm, dtype=dt, endpoint=False) * dt(2) + dt(1)  # odd
    b = gen.integers(0, (1 << bits) - 1, num_perm, dtype=dt, endpoint=True)
    return a, b


def _batches(offsets: I64, batch_tokens: int) -> list[tuple[int, int]]:
    """Split records [0, n) into runs whose shingle count is about ``batch_tokens``."""
    n = len(offsets) - 1
    out: list[tuple[int, int]] = []
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(offsets, offsets[lo] + batch_tokens, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        out.append((lo, hi))
        lo = hi
    return out


def minhash_signatures(
    hashes: U64,
    offsets: I64,
    num_perm: int = NUM_PERM,
    seed: int = 1,
    scheme: str = "affine32",
    batch_tokens: int = 1 << 17,
    threads: int = 1,
) -> U32:
    """MinHash signatures of many records at once: ``(n, num_perm)`` ``uint32``.

    ``hashes``/``offsets`` as returned by :func:`hashed_shingles`. For each permutation k,
    ``h_k(x) = a_k * x + b_k`` over the whole flattened batch, then ``np.minimum.reduceat``
    over record boundaries. Schemes:

    * ``affine32``: x = low 32 bits of the (already avalanched) shingle hash, arithmetic mod
      2^32 in uint32, ``a_k`` odd (a bijection) -- datasketch 2.0's default scheme.
    * ``mulshift64``: x = the 64-bit hash, ``a_k * x + b_k`` mod 2^64 (``a_k`` odd), minimum over
      the full 64-bit value, signature = its high 32 bits (multiply-add-shift hashing).
    * ``mersenne31``: the textbook ``(a x + b) mod p`` with p = 2^31 - 1 (x = hash mod p),
      reduction by Mersenne folding in uint64.

    Records without shingles get ``0xFFFFFFFF`` in every slot. Deterministic for a given seed.
    ``threads`` > 1 runs batches on a thread pool (numpy ufuncs release the GIL).
    """
    n = len(offsets) - 1
    sig = np.full((n, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    if n == 0:
        return sig
    counts = np.diff(offsets)
    if scheme == "affine32":
        a, b = _perm_params(num_perm, seed, 32)
        x_all = hashes.astype(np.uint32)  # low 32 bits
    elif scheme == "mulshift64":
        a, b = _perm_params(num_perm, seed, 64)
        x_all = hashes
    elif scheme == "mersenne31":
        p = np.uint64((1 << 31) - 1)
        gen = np.random.default_rng(seed)
        a = gen.integers(1, int(p), num_perm, dtype=np.uint64)
        b = gen.integers(0, int(p), num_perm, dtype=np.uint64)
        x_all = hashes & p  # 31-bit (bias negligible)
    else:
        raise ValueError(f"unknown scheme {scheme!r}")

    def run(lo: int, hi: int) -> None:
        s, e = int(offsets[lo]), int(offsets[hi])
        if e == s:
            return
        nonempty = counts[lo:hi] > 0
        starts = (offsets[lo:hi] - s)[nonempty]
        rows = np.arange(lo, hi)[nonempty]
        x = x_all[s:e]
        tmp = np.empty_like(x)
        out = np.empty((len(rows), num_perm), dtype=np.uint32)
        if scheme == "mersenne31":
            t2 = np.empty_like(x)
            for k in range(num_perm):
                np.multiply(x, a[k], out=tmp)
                np.add(tmp, b[k], out=tmp)
                np.right_shift(tmp, np.uint64(31), out=t2)
                np.bitwise_and(tmp, p, out=tmp)
                np.add(tmp, t2, out=tmp)  # now <= 2p: reduce before taking the minimum
                np.subtract(tmp, p, out=t2)  # wraps to a huge value where tmp < p
                np.minimum(tmp, t2, out=tmp)
                out[:, k] = np.minimum.reduceat(tmp, starts)
        elif scheme == "mulshift64":
            for k in range(num_perm):
                np.multiply(x, a[k], out=tmp)
                np.add(tmp, b[k], out=tmp)
                out[:, k] = np.minimum.reduceat(tmp, starts) >> np.uint64(32)
        else:
            for k in range(num_perm):
                np.multiply(x, a[k], out=tmp)
                np.add(tmp, b[k], out=tmp)
                out[:, k] = np.minimum.reduceat(tmp, starts)
        sig[rows] = out

    batches = _batches(offsets, batch_tokens)
    if threads > 1:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda lh: run(*lh), batches))
    else:
        for lo, hi in batches:
            run(lo, hi)
    return sig


# ====================================================== numpy one-permutation hashing (d)
def oph_signatures(hashes: U64, offsets: I64, num_perm: int = NUM_PERM, seed: int = 1) -> U32:
    """One-permutation hashing with optimal densification (Shrivastava 2017), vectorised.

    One hash per shingle: its top bits choose one of ``num_perm`` bins, the next 32 bits are
    the value; each bin keeps its minimum (``np.minimum.at``). An empty bin j copies the bin
    chosen by a fixed pseudo-random probe sequence ``R[j, t]`` (same for every record, so
    densification is consistent across records), first non-empty probe wins. ``num_perm``
    must be a power of two. Cost is O(shingles + n * num_perm) rather than
    O(shingles * num_perm).
    """
    if num_perm & (num_perm - 1):
        raise ValueError("num_perm must be a power of two")
    n = len(offsets) - 1
    bits = num_perm.bit_length() - 1
    counts = np.diff(offsets)
    v = fmix64(hashes ^ np.uint64(xxhash.xxh64_intdigest(str(seed).encode())))
    bins = (v >> np.uint64(64 - bits)).astype(np.int64)
    vals = ((v >> np.uint64(32 - bits)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    rec = np.repeat(np.arange(n, dtype=np.int64), counts)
    flat = np.full(n * num_perm, 0xFFFFFFFF, dtype=np.uint32)
    np.minimum.at(flat, rec * num_perm + bins, vals)
    sig = flat.reshape(n, num_perm)
    # occupancy (a bin can hold 0xFFFFFFFF legitimately only with prob 2^-32; ignore)
    filled = np.zeros(n * num_perm, dtype=bool)
    filled[rec * num_perm + bins] = True
    filled = filled.reshape(n, num_perm)
    rows, cols = np.nonzero(~filled & (counts > 0)[:, None])
    if len(rows):
        gen = np.random.default_rng(seed + 0x5EED)
        probes = gen.integers(0, num_perm, size=(num_perm, 4 * num_perm))
        dst_r, dst_c = rows, cols
        src_vals = np.empty(len(rows), dtype=np.uint32)
        pending = np.arange(len(rows))
        for t in range(probes.shape[1]):
            cand = probes[dst_c[pending], t]
            ok = filled[dst_r[pending], cand]
            src_vals[pending[ok]] = sig[dst_r[pending[ok]], cand[ok]]
            pending = pending[~ok]
            if not len(pending):
                break
        if len(pending):  # vanishingly rare: nearest filled bin to the right
            for i in pending:
                r, c = dst_r[i], dst_c[i]
                nz = np.flatnonzero(filled[r])
                j = nz[np.searchsorted(nz, c) % len(nz)]
                src_vals[i] = sig[r, j]
        sig[dst_r, dst_c] = src_vals
    return sig


# ====================================================================== LSH (numpy banding)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) exactly as datasketch's ``MinHashLSH`` chooses them (weights 0.5/0.5)."""
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(b), int(r)


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> U64:
    """``(n, bands)`` uint64 hash of each band of the signature matrix (row-wise mixing)."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    s64 = sig.astype(np.uint64)
    for bi in range(bands):
        h = np.full(n, (bi * int(_SHINGLE_MUL)) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
        for c in range(bi * rows, (bi + 1) * rows):
            h = fmix64(h ^ s64[:, c])
        out[:, bi] = h
    return out


def lsh_candidate_pairs(sig: np.ndarray, bands: int, rows: int, mode: str = "all") -> I64:
    """Candidate pairs ``(m, 2)`` (i < j, unique) of records sharing at least one band bucket.

    ``mode="all"``: every pair inside every bucket (what ``MinHashLSH.query`` returns).
    ``mode="star"``: each bucket member paired with the bucket's first member only -- enough
    for union-find clustering and linear in bucket size.
    """
    bh = band_hashes(sig, bands, rows)
    pairs: list[np.ndarray] = []
    for bi in range(bands):
        col = bh[:, bi]
        order = np.argsort(col, kind="stable")
        sc = col[order]
        brk = np.flatnonzero(np.diff(sc) != 0) + 1
        starts = np.concatenate(([0], brk))
        sizes = np.diff(np.concatenate((starts, [len(sc)])))
        multi = sizes > 1
        if not multi.any():
            continue
        st, sz = starts[multi], sizes[multi]
        if mode == "star":
            heads = np.repeat(order[st], sz - 1)
            members = order[np.repeat(st, sz - 1) + _ragged_arange(sz - 1) + 1]
            pairs.append(np.stack([heads, members], axis=1))
        else:
            # all pairs: for bucket of size s, (s choose 2) pairs
            for s_val in np.unique(sz):
                sel = st[sz == s_val]
                iu, ju = np.triu_indices(int(s_val), 1)
                idx = sel[:, None] + np.arange(int(s_val))[None, :]
                mem = order[idx]
                pairs.append(np.stack([mem[:, iu].ravel(), mem[:, ju].ravel()], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    p = np.concatenate(pairs).astype(np.int64)
    p.sort(axis=1)
    key = np.unique(p[:, 0] * sig.shape[0] + p[:, 1])
    return np.stack([key // sig.shape[0], key % sig.shape[0]], axis=1)


def _ragged_arange(sizes: np.ndarray) -> np.ndarray:
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(sizes)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - sizes, sizes)


# ============================================================================= candidates
@dataclass
class Candidate:
    name: str
    shingler: str  # "py" (str shingles), "py-bytes" or "vec" (uint64 hashes)
    sign: Callable[[Any], Any]  # ndarray, or a rensa RMinHashDigestMatrix (exported separately)
    repeats: int = 3
    note: str = ""


def _ds_per_record(hashfunc: Callable[[bytes], int] | None) -> Callable[[Any], np.ndarray]:
    def sign(sh: list[list[bytes]]) -> np.ndarray:
        from datasketch import MinHash

        out = np.empty((len(sh), NUM_PERM), dtype=np.uint32)
        for i, s in enumerate(sh):
            m = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=hashfunc) if hashfunc else MinHash(NUM_PERM, 1)
            m.update_batch(s)
            out[i] = m.hashvalues
        return out

    return sign


def _ds_bulk(sh: list[list[bytes]]) -> np.ndarray:
    from datasketch import MinHash

    ms = MinHash.bulk(sh, num_perm=NUM_PERM, seed=1)
    return np.stack([m.hashvalues for m in ms]).astype(np.uint32)


def _rensa_tokens(sh: list[list[str]]) -> Any:
    from rensa import RMinHash

    return RMinHash.digest_matrix_from_token_sets(sh, NUM_PERM, 42)


def _rensa_flat(hv: tuple[U64, I64]) -> Any:
    from rensa import RMinHash

    h, off = hv
    return RMinHash.digest_matrix_from_flat_token_hashes(h, off.astype(np.uint64), NUM_PERM, 42)


def _rensa_flat_rho(hv: tuple[U64, I64]) -> Any:
    from rensa import RMinHash

    h, off = hv
    return RMinHash.digest_matrix_from_flat_token_hashes_rho(h, off.astype(np.uint64), NUM_PERM, 42)


def _cminhash(sh: list[list[str]]) -> np.ndarray:
    from rensa import CMinHash

    return np.asarray(CMinHash.digests64_from_token_sets(sh, NUM_PERM, 42), dtype=np.uint64)


def _np(scheme: str) -> Callable[[Any], np.ndarray]:
    return lambda hv: minhash_signatures(hv[0], hv[1], scheme=scheme)


CANDIDATES: list[Candidate] = [
    Candidate("datasketch MinHash/rec update_batch (sha1)", "py-bytes", _ds_per_record(None), 1),
    Candidate("datasketch MinHash.bulk (sha1)", "py-bytes", _ds_bulk, 1),
    Candidate("datasketch MinHash/rec (xxh32 hashfunc)", "py-bytes", _ds_per_record(xxhash.xxh32_intdigest), 1),
    Candidate("rensa RMinHash matrix (str tokens)", "py", _rensa_tokens),
    Candidate("rensa RMinHash matrix (flat u64 hashes)", "vec", _rensa_flat),
    Candidate("rensa RMinHash rho (flat u64, sampled)", "vec", _rensa_flat_rho),
    Candidate("rensa CMinHash digests64 (str tokens)", "py", _cminhash),
    Candidate("numpy affine32 (a*x+b mod 2^32)", "vec", _np("affine32")),
    Candidate("numpy mulshift64 (a*x+b mod 2^64, hi32)", "vec", _np("mulshift64")),
    Candidate("numpy mersenne31 ((a*x+b) mod 2^31-1)", "vec", _np("mersenne31")),
    Candidate("numpy OPH + optimal densification", "vec", lambda hv: oph_signatures(hv[0], hv[1])),
]


def _shingle(kind: str, texts: list[str]) -> Any:
    if kind == "vec":
        return hashed_shingles(texts)
    if kind == "py":
        return [list(py_shingles(t)) for t in texts]
    return [[s.encode() for s in py_shingles(t)] for t in texts]


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _run_child(c: Candidate, texts: list[str], tmp: Path, tag: str) -> dict[str, Any]:
    """Run one candidate in a forked child; return its timings, RSS and signature path."""
    sig_path = tmp / f"{tag}.npy"
    res_path = tmp / f"{tag}.json"
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            gc.collect()
            rss0 = _status_kb("VmRSS:")
            t0 = time.perf_counter()
            sh = _shingle(c.shingler, texts)
            t_sh = time.perf_counter() - t0
            best = float("inf")
            sig = np.zeros(0)
            for _ in range(c.repeats):
                t0 = time.perf_counter()
                sig = c.sign(sh)
                best = min(best, time.perf_counter() - t0)
            t0 = time.perf_counter()
            if not isinstance(sig, np.ndarray):  # rensa matrix: no buffer protocol, only to_rows()
                sig = np.asarray(sig.to_rows(), dtype=np.uint32)
            t_export = time.perf_counter() - t0
            np.save(sig_path, sig)
            res = {"shingle_s": t_sh, "sign_s": best, "export_s": t_export, "rss0_kb": rss0,
                   "hwm_kb": _status_kb("VmHWM:")}
        except Exception as e:  # report, never crash the parent
            res = {"error": f"{type(e).__name__}: {e}"}
            code = 1
        res_path.write_bytes(orjson.dumps(res))
        os._exit(code)
    os.waitpid(pid, 0)
    res = orjson.loads(res_path.read_bytes())
    res["sig_path"] = str(sig_path)
    return res


# ================================================================================ accuracy
def exact_jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def estimate(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)


@dataclass
class PairSet:
    pairs: np.ndarray  # (m, 2)
    exact: np.ndarray  # (m,)
    source: str


def select_pairs(
    texts: list[str],
    candidate_pairs: np.ndarray,
    want: int,
    rng: np.random.Generator,
    source: str,
    lo: float = 0.3,
    hi: float = 1.0,
) -> PairSet:
    """Random pairs among ``candidate_pairs`` with ``lo <= exact Jaccard < hi``."""
    order = rng.permutation(len(candidate_pairs))
    cache: dict[int, set[str]] = {}

    def sh(i: int) -> set[str]:
        s = cache.get(i)
        if s is None:
            s = cache[i] = py_shingles(texts[i])
        return s

    keep: list[tuple[int, int]] = []
    js: list[float] = []
    for k in order:
        i, j = (int(v) for v in candidate_pairs[k])
        jac = exact_jaccard(sh(i), sh(j))
        if lo <= jac < hi:
            keep.append((i, j))
            js.append(jac)
            if len(keep) >= want:
                break
    return PairSet(np.array(keep, dtype=np.int64).reshape(-1, 2), np.array(js), source)


def same_parent_pairs(parents: np.ndarray, rng: np.random.Generator, cap: int = 400_000) -> np.ndarray:
    order = np.argsort(parents, kind="stable")
    sp = parents[order]
    brk = np.flatnonzero(np.diff(sp) != 0) + 1
    groups = np.split(order, brk)
    out: list[np.ndarray] = []
    for g in groups:
        if len(g) > 1:
            iu, ju = np.triu_indices(len(g), 1)
            out.append(np.stack([g[iu], g[ju]], axis=1))
    p = np.concatenate(out)
    if len(p) > cap:
        p = p[rng.choice(len(p), cap, replace=False)]
    return p


# ============================================================================ LSH bench
def bench_lsh(sig: np.ndarray, py_sh: list[list[str]] | None) -> list[dict[str, Any]]:
    rows_out: list[dict[str, Any]] = []
    n = sig.shape[0]
    b, r = lsh_params(0.8, NUM_PERM)
    for mode in ("all", "star"):
        best = float("inf")
        pairs = np.zeros((0, 2))
        for _ in range(3):
            t0 = time.perf_counter()
            pairs = lsh_candidate_pairs(sig, b, r, mode)
            best = min(best, time.perf_counter() - t0)
        rows_out.append({"impl": f"numpy banding ({mode} pairs)", "b_r": f"{b}x{r}", "insert_s": best,
                         "query_s": 0.0, "pairs": len(pairs), "n": n})
    # datasketch on identical signatures
    from datasketch import LeanMinHash, MinHashLSH

    t0 = time.perf_counter()
    lean = [LeanMinHash(seed=1, hashvalues=row, scheme="affine32") for row in sig]
    t_wrap = time.perf_counter() - t0
    lsh = MinHashLSH(threshold=0.8, num_perm=NUM_PERM)
    t0 = time.perf_counter()
    for i, m in enumerate(lean):
        lsh.insert(i, m, check_duplication=False)
    t_ins = time.perf_counter() - t0
    t0 = time.perf_counter()
    found: set[tuple[int, int]] = set()
    for i, m in enumerate(lean):
        for j in lsh.query(m):
            if j != i:
                found.add((i, j) if i < j else (j, i))
    t_q = time.perf_counter() - t0
    rows_out.append({"impl": "datasketch MinHashLSH(0.8, 128) insert+query", "b_r": f"{lsh.b}x{lsh.r}",
                     "insert_s": t_ins, "query_s": t_q, "pairs": len(found), "n": n,
                     "note": f"+{t_wrap:.2f}s to wrap rows in LeanMinHash"})
    del lsh, lean
    # rensa: needs bands dividing num_perm; run at 16x8 and compare with numpy at 16x8
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        p16 = lsh_candidate_pairs(sig, 16, 8, "all")
        best = min(best, time.perf_counter() - t0)
    rows_out.append({"impl": "numpy banding (all pairs)", "b_r": "16x8", "insert_s": best, "query_s": 0.0,
                     "pairs": len(p16), "n": n})
    if py_sh is not None:
        from rensa import RMinHash, RMinHashLSH

        mh = RMinHash.from_token_sets(py_sh, NUM_PERM, 42)
        rl = RMinHashLSH(0.8, NUM_PERM, 16)
        t0 = time.perf_counter()
        rl.insert_many(mh, 0)
        t_ins = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = rl.query_all(mh)
        t_q = time.perf_counter() - t0
        npairs = sum(len(c) - (1 if i in c else 0) for i, c in enumerate(res)) // 2
        rows_out.append({"impl": "rensa RMinHashLSH insert_many+query_all (own sigs)", "b_r": "16x8",
                         "insert_s": t_ins, "query_s": t_q, "pairs": npairs, "n": n})
        del mh, rl, res
    return rows_out


# ================================================================================== main
def load_seed_texts(seed_dir: Path) -> list[str]:
    texts: list[str] = []
    for f in seed_files(seed_dir):
        for line in f.read_bytes().splitlines():
            if line.strip():
                texts.append(record_text(orjson.loads(line)))
    return texts


def run_dataset(label: str, texts: list[str], parents: np.ndarray | None, tmp: Path,
                rng: np.random.Generator, lsh: bool) -> tuple[list[str], list[str]]:
    n = len(texts)
    results: dict[str, dict[str, Any]] = {}
    for ci, c in enumerate(CANDIDATES):
        print(f"[{label}] {c.name} ...", file=sys.stderr, flush=True)
        results[c.name] = _run_child(c, texts, tmp, f"{label}-{ci}")
    # pairs
    ref = results["numpy affine32 (a*x+b mod 2^32)"]
    if parents is not None:
        cand = same_parent_pairs(parents, rng)
        ps = select_pairs(texts, cand, 2000, rng, "same-parent (planted) pairs")
    else:
        ref_sig = np.load(ref["sig_path"])
        cand = lsh_candidate_pairs(ref_sig, 64, 2, "all")
        ps = select_pairs(texts, cand, 2000, rng, "LSH(64x2)-found pairs")
    table = [
        f"### {label}: {n:,} records, {len(ps.pairs):,} pairs ({ps.source}), "
        f"exact J in [0.3, 1): mean {ps.exact.mean():.3f}",
        "",
        "| candidate | shingles | shingle s | sign s | signatures/s | export s | MAE | max err | "
        "peak RSS MB | Δ RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in CANDIDATES:
        r = results[c.name]
        if "error" in r:
            table.append(f"| {c.name} | {c.shingler} | - | - | - | - | - | - | - | {r['error']} |")
            continue
        sig = np.load(r["sig_path"])
        err = np.abs(estimate(sig, ps.pairs) - ps.exact)
        table.append(
            f"| {c.name} | {c.shingler} | {r['shingle_s']:.2f} | {r['sign_s']:.2f} | "
            f"{n / r['sign_s']:,.0f} | {r['export_s']:.2f} | {err.mean():.4f} | {err.max():.3f} | "
            f"{r['hwm_kb'] / 1024:,.0f} | "
            f"{(r['hwm_kb'] - r['rss0_kb']) / 1024:,.0f} |"
        )
        del sig
    lsh_table: list[str] = []
    if lsh:
        sig = np.load(ref["sig_path"])
        py_sh = [list(py_shingles(t)) for t in texts]
        rows = bench_lsh(sig, py_sh)
        del py_sh
        lsh_table = [
            f"### LSH on {label}: {n:,} signatures (numpy affine32; datasketch on the same rows)",
            "",
            "| implementation | b x r | insert/band s | query s | total s | signatures/s | candidate pairs | note |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in rows:
            tot = row["insert_s"] + row["query_s"]
            lsh_table.append(
                f"| {row['impl']} | {row['b_r']} | {row['insert_s']:.2f} | {row['query_s']:.2f} | {tot:.2f} | "
                f"{row['n'] / tot:,.0f} | {row['pairs']:,} | {row.get('note', '')} |"
            )
    return table, lsh_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="MinHash candidates benchmark")
    ap.add_argument("--records", type=int, default=100_000, help="generated records (first N, seed 0)")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (bench/corpus.py)")
    ap.add_argument("--seed-dir", type=Path, default=DEFAULT_SEED_DIR)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "minhash_candidates.md")
    args = ap.parse_args(argv)
    try:
        seed_files(args.seed_dir)
    except FileNotFoundError as e:
        print(f"skipped: {e}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(12345)
    lines = [
        "# MinHash candidates",
        "",
        f"`python bench/minhash_candidates.py --records {args.records}` — "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
        f"datasketch {_version('datasketch')}, rensa {_version('rensa')}. 128 permutations, word 5-gram "
        "shingles of instruction+response (lowercased, whitespace-split). `sign s`: signing only "
        "(best of 3 for fast candidates, 1 run for datasketch), shingles prepared beforehand; "
        "`shingle s`: building that candidate's input (py = Python str sets, py-bytes = + encode, "
        "vec = vectorised uint64 shingle hashes). MAE = mean |estimate - exact Jaccard| on pairs with "
        "0.3 <= J < 1. Peak RSS = VmHWM of the forked child that shingled and signed (Δ = above the "
        "texts-only baseline). `export s`: rensa digest matrix -> numpy via `to_rows()` (it has no "
        "buffer protocol); 0 for candidates that produce numpy directly.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="minhash-bench-") as td:
        tmp = Path(td)
        seed_texts = load_seed_texts(args.seed_dir)
        t, _ = run_dataset("seed", seed_texts, None, tmp, rng, lsh=False)
        lines += [*t, ""]
        del seed_texts
        texts: list[str] = []
        parents: list[int] = []
        for line, meta in generate_with_meta(args.records, args.seed, args.seed_dir):
            texts.append(record_text(orjson.loads(line)))
            parents.append(meta.parent)
        t, lt = run_dataset(f"generated-{args.records // 1000}k", texts, np.array(parents), tmp, rng, lsh=True)
        lines += [*t, "", *lt, ""]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


if __name__ == "__main__":
    raise SystemExit(main())
