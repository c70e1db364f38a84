"""Vectorised MinHash and LSH banding over token streams (numpy).

Chosen by measurement against datasketch and rensa on the same shingles (bench/minhash_candidates.py,
figures in bench/RESULTS.md): this affine-32 numpy scheme has datasketch's estimation error (it is
datasketch 2.0's hash family, run over all records of a batch at once instead of one record at a
time), far faster, with no per-record Python objects and the signatures as one uint32 array (no
export step); a faster signer would save little, as signing is not where dedup spends its time.

* `shingle_hashes`: space-separated token streams -> one flat uint64 array of k-gram hashes and
  per-record offsets. Distinct tokens are hashed once with xxh3-64 (stable on every machine); a
  shingle is `fmix64` of a polynomial over its k token hashes, computed on shifted views.
* `signatures`: `(n, num_perm)` uint32, `h_k(x) = a_k * x + b_k mod 2^32`, minimum per record
  with `np.minimum.reduceat`.
* `lsh_params` / `candidate_pairs`: banding with the (bands, rows) that minimise the false
  positive + false negative areas around the threshold, buckets found by sorting band hashes
  (with the C extension, the star pairs come from one hash table per band: the same pairs, with no
  sort).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import xxhash

from swcdata import _native
from swcdata._native import fast as _fast

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

EMPTY = np.uint32(0xFFFFFFFF)
_MUL = np.uint64(0x9E3779B97F4A7C15)


def unique(x: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """Sorted distinct values of a 1-D integer array: ``np.unique(x)``, by sort and mask. numpy 2.4's
    ``np.unique`` hashes first, which is far slower than a sort on int64 pair keys like these: it made
    LSH most of dedup's time."""
    s = np.sort(x)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


_ORDER_BY_ARGSORT = 1 << 15  # (below this many values, `np.argsort` is as fast)


def hash_order(h: U64) -> I64:
    """``np.argsort(h, kind="stable")`` of 64-bit hashes (equal values in their order), by a sort of values: the
    high bits of each hash and its position packed into one uint64 are sorted (``np.sort``, vectorised), and the
    rare runs whose high bits agree but whose hashes differ are put in order again. The same permutation, in any
    case: 0.8-1.7 s for 17M hashes where the stable argsort takes 3.0-3.4 s (bench/RESULTS.md)."""
    n = len(h)
    bits = max(1, (n - 1).bit_length())
    if n < _ORDER_BY_ARGSORT or bits > 40:
        return np.argsort(h, kind="stable")
    shift, mask = np.uint64(bits), np.uint64((1 << bits) - 1)
    packed = np.right_shift(h, shift)
    np.left_shift(packed, shift, out=packed)
    np.bitwise_or(packed, np.arange(n, dtype=np.uint64), out=packed)
    packed.sort()
    order = np.bitwise_and(packed, mask).view(np.int64)
    s = h[order]
    bad = np.flatnonzero(s[1:] < s[:-1])
    if len(bad):  # (a run of one high part, in position order, holding other hashes: put in (hash, position) order)
        high = np.right_shift(packed, shift)
        starts = np.unique(np.searchsorted(high, high[bad], side="left"))
        ends = np.searchsorted(high, high[starts], side="right")
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            run = order[lo:hi]
            order[lo:hi] = run[np.argsort(h[run], kind="stable")]
    return order


_S33, _FMIX1, _FMIX2 = np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


def fmix64(x: U64) -> U64:
    """MurmurHash3's 64-bit finaliser (a bijection), vectorised with wrapping arithmetic."""
    x = x ^ (x >> _S33)
    x = x * _FMIX1
    x = x ^ (x >> _S33)
    x = x * _FMIX2
    return x ^ (x >> _S33)


def token_hashes(streams: Sequence[str]) -> tuple[U64, I64]:
    """Hash every whitespace-separated token: flat uint64 array and per-record token offsets."""
    import pyarrow.compute as pc

    from swcdata.core.arrow import bools, strings, to_numpy

    arr = strings(streams, large=True)
    toks = pc.utf8_split_whitespace(arr)
    lens = to_numpy(pc.list_value_length(toks)).astype(np.int64)
    flat = pc.list_flatten(toks)
    empty = to_numpy(pc.utf8_length(flat)) == 0  # "" -> [""] in arrow, [] in str.split
    if empty.any():
        parent = to_numpy(pc.list_parent_indices(toks))
        lens = lens - np.bincount(parent[empty], minlength=len(lens))
        flat = flat.filter(bools(~empty))
    enc = pc.dictionary_encode(flat)
    idx = to_numpy(enc.indices)
    vocab = enc.dictionary.to_pylist()
    vh = np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in vocab), dtype=np.uint64, count=len(vocab))
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return vh[idx], offsets


def shingle_hashes(streams: Sequence[str], k: int, *, short_whole: bool = True) -> tuple[U64, I64]:
    """k-gram shingle hashes of token streams: (flat hashes, offsets). A record with fewer than k
    tokens gets one shingle of all its tokens (none with `short_whole=False`); an empty record none.
    Window j of record i starts at token j of that record."""
    th, toff = token_hashes(streams)
    return shingles_of_token_hashes(th, toff, k, short_whole=short_whole)


def shingles_of_token_hashes(th: U64, toff: I64, k: int, *, short_whole: bool = True) -> tuple[U64, I64]:
    """`shingle_hashes` from already hashed tokens (flat token hashes and per-record offsets)."""
    n = len(toff) - 1
    lens = np.diff(toff)
    m = len(th)
    # polynomial over the next k tokens for every start position (windows may cross records;
    # those are dropped below). Shorter tails use fewer terms, which also serves short records.
    h = th.copy()
    room = np.repeat(toff[1:], lens) - np.arange(m)  # tokens left in the record from each position
    nxt = np.empty(m, dtype=np.uint64)
    for j in range(1, k):
        nxt[: m - j] = th[j:]
        nxt[max(m - j, 0) :] = 0
        nxt[room <= j] = 0
        h *= _MUL
        h += nxt
    h = fmix64(h)
    nwin = np.where(lens >= k, lens - k + 1, np.minimum(lens, 1) if short_whole else 0)
    # window j of record i is kept when j < nwin[i]: a ragged prefix of each record's positions
    starts = toff[:-1]
    edges = np.bincount(starts, minlength=m + 1) - np.bincount(starts + nwin, minlength=m + 1)
    keep = np.cumsum(edges[:m]) > 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nwin, out=offsets[1:])
    return h[keep], offsets


def perm_params(num_perm: int, seed: int) -> tuple[U32, U32]:
    """The permutations' parameters (a odd, b) of `signatures` for a seed."""
    gen = np.random.default_rng(seed)
    a = gen.integers(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd: a bijection
    b = gen.integers(0, (1 << 32) - 1, num_perm, dtype=np.uint32, endpoint=True)
    return a, b


def signatures(hashes: U64, offsets: I64, num_perm: int, seed: int, batch: int = 1 << 17) -> U32:
    """MinHash signatures `(n, num_perm)` uint32; records without shingles get EMPTY everywhere."""
    n = len(offsets) - 1
    sig = np.full((n, num_perm), EMPTY, dtype=np.uint32)
    if n == 0 or len(hashes) == 0:
        return sig
    a, b = perm_params(num_perm, seed)
    x_all = hashes.astype(np.uint32)  # low 32 bits of an avalanched hash
    counts = np.diff(offsets)
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(offsets, offsets[lo] + batch, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        s, e = int(offsets[lo]), int(offsets[hi])
        if e > s:
            nonempty = counts[lo:hi] > 0
            starts = (offsets[lo:hi] - s)[nonempty]
            rows = np.arange(lo, hi)[nonempty]
            x = x_all[s:e]
            tmp = np.empty_like(x)
            out = np.empty((len(rows), num_perm), dtype=np.uint32)
            for k in range(num_perm):
                np.multiply(x, a[k], out=tmp)
                np.add(tmp, b[k], out=tmp)
                out[:, k] = np.minimum.reduceat(tmp, starts)
            sig[rows] = out
        lo = hi
    return sig


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising the weighted false-positive and
    false-negative areas of the S-curve `1 - (1 - s^r)^b` around `threshold`. (Kept per arguments: 20-30 ms a call,
    and a build asks for the same few several times in each step.)"""
    best: tuple[float, int, int] | None = None
    lo = np.linspace(0.0, threshold, 200)
    hi = np.linspace(threshold, 1.0, 200)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(1 - (1 - lo**r) ** b, lo)
            fn = np.trapezoid((1 - hi**r) ** b, hi)
            err = fp * fp_weight + fn * fn_weight
            if best is None or err < best[0] - 1e-12:
                best = (err, b, r)
    assert best is not None
    return best[1], best[2]


_BAND_CHUNK = 2048  # records a pass of `band_hashes` takes: their columns (2048 x 8 bytes each) stay in the cache


def band_hashes(sig: U32, bands: int, rows: int) -> U64:
    """Each record's hash of each band (its `rows` signature slots folded with `fmix64`), (n, bands).

    Computed `_BAND_CHUNK` records at a time, their slots transposed so that each is one contiguous column and
    `fmix64` runs in place: 3.6x faster than folding strided columns of the whole matrix (0.17 s against 0.62 s
    for 250k records, 14 bands of 9 rows), the same values."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    if _fast is not None and _native.on("lsh") and n:  # (the same values, row by row: 0.49 s for 1M, not 1.29)
        _fast.lsh_band_hashes(np.ascontiguousarray(sig, dtype=np.uint32), sig.shape[1], bands, rows, out)
        return out
    tmp = np.empty(min(_BAND_CHUNK, n), dtype=np.uint64)
    for lo in range(0, n, _BAND_CHUNK):
        cols = np.ascontiguousarray(sig[lo : lo + _BAND_CHUNK, : bands * rows].T).astype(np.uint64)
        t = tmp[: cols.shape[1]]
        for bi in range(bands):
            h = np.full(cols.shape[1], np.uint64(((bi + 1) * int(_MUL)) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
            for c in range(bi * rows, (bi + 1) * rows):
                np.bitwise_xor(h, cols[c], out=h)
                _fmix64_into(h, t)
            out[lo : lo + _BAND_CHUNK, bi] = h
    return out


def _fmix64_into(x: U64, t: U64) -> None:
    """`fmix64` of x, in place (t: scratch of x's length)."""
    for m in (_FMIX1, _FMIX2):
        np.right_shift(x, _S33, out=t)
        np.bitwise_xor(x, t, out=x)
        np.multiply(x, m, out=x)
    np.right_shift(x, _S33, out=t)
    np.bitwise_xor(x, t, out=x)


def ragged_arange(sizes: I64) -> I64:
    """0..sizes[0]-1, 0..sizes[1]-1, ... as one array."""
    ends = np.cumsum(sizes)
    return np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) - np.repeat(ends - sizes, sizes)


MAX_BUCKET = 256
"""`candidate_pairs(all_pairs=True)` pairs every member of a bucket of up to this many records (larger ones: a star)."""


def candidate_pairs(sig: U32, bands: int, rows: int, *, all_pairs: bool = False, max_bucket: int = MAX_BUCKET) -> I64:
    """Unique pairs (i < j) of records that share a band bucket. By default each bucket contributes
    its members paired with the bucket's lowest index (a star: linear in the bucket size, enough for
    connected components of near-identical records). With `all_pairs`, every pair of each bucket of
    up to `max_bucket` members (larger buckets still give their star). Records with no shingles
    never match."""
    n = sig.shape[0]
    if _fast is not None and _native.on("lsh") and not all_pairs and n:  # the same keys from hash tables, not sorts
        return _pairs_of_keys(_star_keys(np.ascontiguousarray(sig, dtype=np.uint32), bands, rows), n)
    valid = (sig != EMPTY).any(axis=1)
    idx = np.flatnonzero(valid)
    bh = band_hashes(sig[valid] if len(idx) < n else sig, bands, rows)
    keys: list[I64] = []  # a pair (i < j) as the one number i * n + j, deduplicated band by band
    for bi in range(bands):
        col = bh[:, bi]
        order = np.lexsort((idx, col))
        sc = col[order]
        brk = np.flatnonzero(sc[1:] != sc[:-1]) + 1
        del sc
        starts = np.concatenate(([0], brk)).astype(np.int64)
        sizes = np.diff(np.concatenate((starts, [len(order)]))).astype(np.int64)
        multi = sizes > 1
        if not multi.any():
            continue
        st, sz = starts[multi], sizes[multi]
        first = np.repeat(st, sz - 1)
        heads = idx[order[first]]  # the bucket's lowest index (ties in a bucket sort by index)
        members = idx[order[first + ragged_arange(sz - 1) + 1]]
        keys.append(unique(heads * n + members))
        if all_pairs:
            for s_val in unique(sz[(sz > 2) & (sz <= max_bucket)]):
                sel = st[sz == s_val]
                iu, ju = np.triu_indices(int(s_val), 1)
                mem = idx[order[sel[:, None] + np.arange(int(s_val))[None, :]]]
                a, b = mem[:, iu].ravel(), mem[:, ju].ravel()
                keys.append(unique(np.minimum(a, b) * n + np.maximum(a, b)))
        if len(keys) > 1 and sum(map(len, keys)) > 4 * n:  # keep the union compact as it grows
            keys = [unique(np.concatenate(keys))]
    if not keys:
        return np.zeros((0, 2), dtype=np.int64)
    return _pairs_of_keys(unique(np.concatenate(keys)) if len(keys) > 1 else keys[0], n)


def cross_pairs(sig_a: U32, sig_b: U32, bands: int, rows: int, *, max_bucket: int = MAX_BUCKET) -> I64:
    """The pairs (i, j), i a row of `sig_a` and j a row of `sig_b`, that `candidate_pairs(all_pairs=True)` of the
    two stacked (a first) gives between the two sets, without the pairs inside either: every (a, b) pair of a
    bucket of up to `max_bucket` members, and in a larger one its lowest a record paired with each of its b
    records. Sorted by (i, j). Linear in the larger set for each band: an audit of a few thousand candidates against
    a large reference does not pair the reference's records with one another."""
    va = np.flatnonzero((sig_a != EMPTY).any(axis=1))
    vb = np.flatnonzero((sig_b != EMPTY).any(axis=1))
    nb = len(sig_b)
    if not len(va) or not len(vb):
        return np.zeros((0, 2), dtype=np.int64)
    ha, hb = band_hashes(sig_a[va], bands, rows), band_hashes(sig_b[vb], bands, rows)
    keys: list[I64] = []
    for bi in range(bands):
        ka, kb = ha[:, bi], hb[:, bi]
        order = hash_order(ka)  # (by key, then row: a bucket's lowest a record first)
        sk = ka[order]
        lo, hi = np.searchsorted(sk, kb, side="left"), np.searchsorted(sk, kb, side="right")
        in_a = hi - lo
        hit = np.flatnonzero(in_a > 0)
        if not len(hit):
            continue
        kh = kb[hit]
        _, inv, in_b = np.unique(kh, return_inverse=True, return_counts=True)
        big = in_a[hit] + in_b[inv] > max_bucket
        star = hit[big]
        keys.append(va[order[lo[star]]] * nb + vb[star])
        full = hit[~big]
        if len(full):
            counts = in_a[full]
            at = np.repeat(np.arange(len(full)), counts)
            a = va[order[lo[full][at] + ragged_arange(counts)]]
            keys.append(a * nb + vb[full][at])
    if not keys:
        return np.zeros((0, 2), dtype=np.int64)
    return _pairs_of_keys(unique(np.concatenate(keys)), nb)


_PARALLEL_MIN = 100_000  # rows (or pairs) from which the C loops below share the work out among threads


def _threads(items: int) -> int:
    return max(1, min(os.cpu_count() or 1, 4)) if items >= _PARALLEL_MIN else 1


def _star_keys(sig: U32, bands: int, rows: int) -> I64:
    """`_fast.lsh_star_keys` of all bands, sorted: in threads that take a share of the bands each
    (the C loop runs without the GIL), their keys merged."""
    assert _fast is not None
    threads = min(_threads(len(sig)), bands)
    if threads == 1:
        return np.sort(np.frombuffer(_fast.lsh_star_keys(sig, sig.shape[1], bands, rows), dtype=np.int64))
    cuts = np.linspace(0, bands, threads + 1).round().astype(int).tolist()
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda lo_hi: np.frombuffer(_fast.lsh_star_keys(sig, sig.shape[1], bands, rows,
                                                                                *lo_hi), dtype=np.int64),
                              pairwise(cuts)))
    return unique(np.concatenate(parts))  # a pair found in two shares is one pair


def _pairs_of_keys(key: I64, n: int) -> I64:
    """Pairs (i, j) from their keys i * n + j, as rows of an (k, 2) array."""
    return np.stack([key // n, key % n], axis=1)


def union_pairs(a: I64, b: I64, n: int) -> I64:
    """The distinct pairs of two `candidate_pairs` results over the same n records, sorted as
    `candidate_pairs` sorts them."""
    both = np.concatenate([a, b])
    return _pairs_of_keys(unique(both[:, 0] * n + both[:, 1]), n)


def similarity(sig: U32, pairs: I64) -> npt.NDArray[np.float64]:
    """Estimated Jaccard similarity of each pair: the share of equal signature slots."""
    if len(pairs) == 0:
        return np.zeros(0)
    out = np.empty(len(pairs))
    if _fast is not None and _native.on("similarity"):  # the same shares, counted in C, in threads
        sig, pairs = np.ascontiguousarray(sig, dtype=np.uint32), np.ascontiguousarray(pairs, dtype=np.int64)
        cuts = np.linspace(0, len(pairs), _threads(len(pairs)) + 1).round().astype(int).tolist()
        if len(cuts) == 2:
            _fast.similarity_into(sig, sig.shape[1], pairs, out)
            return out
        with ThreadPoolExecutor(len(cuts) - 1) as pool:
            list(pool.map(lambda lo_hi: _fast.similarity_into(sig, sig.shape[1], pairs[lo_hi[0] : lo_hi[1]],
                                                              out[lo_hi[0] : lo_hi[1]]), pairwise(cuts)))
        return out
    for s in range(0, len(pairs), 1 << 16):
        p = pairs[s : s + (1 << 16)]
        out[s : s + len(p)] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


def components(pairs: I64, n: int) -> I64:
    """Connected components of the graph on nodes 0..n-1 whose edges are `pairs`: each node's label
    is the smallest node of its component.

    Union-find in rounds, all edges at once: every edge between two different trees hooks the root
    of the larger label onto the smaller (the smallest such label wins), then pointer jumping
    flattens every tree to its root. Parents only ever point to smaller nodes, so there are no
    cycles and a root is its component's smallest node; each round merges every tree that still has
    an edge out of it with another, so about log2(n) rounds suffice. Edges inside one tree are
    dropped as soon as they are found."""
    parent = np.arange(n, dtype=np.int64)
    if not len(pairs):
        return parent
    u, v = pairs[:, 0], pairs[:, 1]
    while True:
        pu, pv = parent[u], parent[v]
        live = pu != pv
        if not live.any():
            return parent
        u, v, pu, pv = u[live], v[live], pu[live], pv[live]
        np.minimum.at(parent, np.maximum(pu, pv), np.minimum(pu, pv))
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
