"""What `swcdata push` sends for v2 after v1 when 1% of the records changed, measured on the loopback Hub.

    python bench/hub_dedupe.py [--records 50000] [--change 0.01] [--seed 0] [--shard-sizes 500MB,4MB]

For each way of changing 1% of the records (`random`: edited records drawn at random over the whole version;
`contiguous`: one run of consecutive records edited, as when one input file is relabelled; `inserted`: as many
new records inserted at one place, which shifts every row after them), each shard size, and Parquet
content-defined chunking (CDC) on and off: a fresh loopback Hub (tests/hub_server.py, the real
huggingface_hub client, Xet off: LFS), push v1, then v2 (the same records, the changed ones with an edited
response and so a new id), and count the request body bytes the server received for v2: LFS uploads (whole
files) and commit payloads (small files inline). On an LFS
server a file is sent again only when its sha256 is new (the client skips files the server holds), so the
saving is per file: a shard without a changed record is not sent.

The Hub itself stores files with Xet, which deduplicates content-defined chunks (about 64 KiB) across
files and versions. The loopback server cannot speak Xet, so the last column is an ESTIMATE of what a
chunk-level store would receive for v2's files: the bytes of the chunks of v2's files that are not among
v1's chunks, chunked here with a gear-hash CDC of 64 KiB average (8 KiB min, 128 KiB max), not Xet's own
chunker. It shows whether CDC Parquet shards let a chunk store skip the unchanged data.

The records come from bench/corpus.py (needs ../shared/seed-data; else the embedded sample, repeated with
its lines renumbered). It prints the section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_TOKEN", "hf_bench_token_not_real")
os.environ["HF_HUB_DISABLE_XET"] = "1"  # the loopback server speaks LFS
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def records(n: int, seed: int, tmp: Path) -> Any:
    """n validated records as an Arrow table."""
    from swcdata.steps.validate import ValidateConfig, load_valid

    path = tmp / "corpus.jsonl"
    try:
        from swcdata.synthetic.corpus import generate

        with path.open("wb") as f:
            for line in generate(n, seed=seed):
                f.write(line + b"\n")
    except (OSError, FileNotFoundError):
        sample = (REPO / "dataset" / "swc_sample.jsonl").read_bytes().splitlines()
        with path.open("wb") as f:
            for i in range(n):
                f.write(sample[i % len(sample)].replace(b'"instruction": "', f'"instruction": "[{i}] '.encode(), 1)
                        + b"\n")
    table, _, _ = load_valid([path], ValidateConfig(check_code=False))
    return table


def changed(table: Any, share: float, seed: int, pattern: str) -> tuple[Any, int]:
    """The table with `share` of its records (at random, or one run of consecutive ones; seeded) given an edited
    response and a new id."""
    import pyarrow as pa

    from swcdata.core.text import record_id

    rows = table.to_pylist()
    rng = random.Random(seed)
    k = max(1, round(len(rows) * share))
    start = rng.randrange(len(rows) - k)
    if pattern == "inserted":
        new = [dict(r) for r in rows[start:start + k]]
        for r in new:
            r["response"] = (r["response"] or "") + " (A new record.)"
            r["id"] = record_id(r["instruction"], r["response"])
        return pa.Table.from_pylist(rows[:start] + new + rows[start:], schema=table.schema), k
    picked = rng.sample(range(len(rows)), k) if pattern == "random" else list(range(start, start + k))
    for i in picked:
        r = rows[i]
        r["response"] = (r["response"] or "") + " (Reviewed again: the finding stands.)"
        r["id"] = record_id(r["instruction"], r["response"])
    return pa.Table.from_pylist(rows, schema=table.schema), len(picked)


# ---- the chunk-level estimate -----------------------------------------------------------------

_AVG_BITS, _MIN, _MAX, _WINDOW = 16, 8 * 1024, 128 * 1024, 32
_GEAR = None


def chunks(data: bytes) -> list[bytes]:
    """Content-defined chunks: a gear hash over the last 32 bytes; a cut where 16 of its bits are zero (64 KiB
    on average), at least 8 KiB and at most 128 KiB apart."""
    import numpy as np

    global _GEAR
    if _GEAR is None:
        _GEAR = np.random.default_rng(0).integers(0, 2**63, 256, dtype=np.uint64)
    b = np.frombuffer(data, dtype=np.uint8)
    g = _GEAR[b]
    h = np.zeros(len(b), dtype=np.uint64)
    for k in range(_WINDOW):
        h[k:] += g[: len(b) - k] << np.uint64(k)
    mask = np.uint64(((1 << _AVG_BITS) - 1) << 16)
    candidates = np.nonzero((h & mask) == 0)[0] + 1
    cuts, start = [], 0
    for c in candidates.tolist():
        while c - start > _MAX:
            start += _MAX
            cuts.append(start)
        if c - start >= _MIN:
            cuts.append(c)
            start = c
    while len(data) - start > _MAX:
        start += _MAX
        cuts.append(start)
    bounds = [0, *cuts, len(data)]
    return [data[a:z] for a, z in itertools.pairwise(bounds) if z > a]


def new_chunk_bytes(old: list[bytes], new: list[bytes]) -> int:
    seen = {hashlib.sha256(c).digest() for data in old for c in chunks(data)}
    total = 0
    for data in new:
        for c in chunks(data):
            d = hashlib.sha256(c).digest()
            if d not in seen:
                seen.add(d)
                total += len(c)
    return total


# ---- one configuration ------------------------------------------------------------------------


def run(v1: Any, v2: Any, shard_size: str, cdc: bool, tmp: Path, pattern: str) -> dict[str, Any]:
    from hub_server import HubServer

    from swcdata.registry import hub
    from swcdata.registry.store import Registry

    tag = f"{pattern}-{shard_size}-{cdc}"
    home = tmp / f"reg-{tag}"
    reg = Registry(home)
    for table in (v1, v2):
        n = table.num_rows
        reg.publish("swc", {"train": table.slice(0, n * 8 // 10), "validation": table.slice(n * 8 // 10, n // 10),
                            "test": table.slice(n * 9 // 10)}, {"seed": 0})
    srv = HubServer().start()
    os.environ["HF_ENDPOINT"] = srv.url
    real = hub.content_defined_chunking
    hub.content_defined_chunking = lambda: cdc  # type: ignore[assignment]
    try:
        t = time.perf_counter()
        r1 = hub.push("swc@v1", "bench/swc", home=home, max_shard_size=shard_size,
                      work_dir=tmp / f"stage-v1-{tag}")
        t1 = time.perf_counter() - t
        v1_bytes = sum(srv.hub.received.values())
        srv.hub.received.clear()
        t = time.perf_counter()
        r2 = hub.push("swc@v2", "bench/swc", home=home, max_shard_size=shard_size,
                      work_dir=tmp / f"stage-v2-{tag}")
        t2 = time.perf_counter() - t
        got = dict(srv.hub.received)
    finally:
        hub.content_defined_chunking = real  # type: ignore[assignment]
        srv.stop()
    old_files = {f.path: (Path(r1.staging_dir or "") / f.path).read_bytes() for f in r1.files}
    new_files = {f.path: (Path(r2.staging_dir or "") / f.path).read_bytes() for f in r2.files}
    shards = [p for p in new_files if p.startswith("data/")]
    changed_shards = [p for p in shards if old_files.get(p) != new_files[p]]
    changed_files = [p for p in new_files if old_files.get(p) != new_files[p]]
    return {
        "pattern": pattern, "shard_size": shard_size, "cdc": cdc, "shards": len(shards),
        "changed_shards": len(changed_shards),
        "v2_bytes": r2.bytes, "v1_sent": v1_bytes, "sent": sum(got.values()), "lfs": got.get("lfs", 0),
        "commit": got.get("commit", 0), "estimate": new_chunk_bytes(list(old_files.values()),
                                                                    [new_files[p] for p in changed_files]),
        "push_v1_s": t1, "push_v2_s": t2,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-sizes", default="500MB,4MB")
    args = ap.parse_args(argv)
    import huggingface_hub
    import pyarrow

    with tempfile.TemporaryDirectory(prefix="hub-dedupe-") as d:
        tmp = Path(d)
        v1 = records(args.records, args.seed, tmp)
        rows = []
        for pattern in ("random", "contiguous", "inserted"):
            v2, n_changed = changed(v1, args.change, args.seed, pattern)
            rows += [run(v1, v2, size, cdc, tmp, pattern) for size in args.shard_sizes.split(",")
                     for cdc in (True, False)]
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"], capture_output=True,
                         text=True).stdout.strip() or platform.processor()
    print(f"## Hub: bytes sent for v2 after v1 (issue 23)\n\n### {dt.date.today().isoformat()} — {v1.num_rows:,} "
          f"records, {n_changed:,} changed ({args.change:.0%})\n")
    print(f"- machine: {cpu}, {os.cpu_count()} cores; huggingface_hub {huggingface_hub.__version__} (Xet off, LFS "
          f"upload), pyarrow {pyarrow.__version__}; the loopback Hub of tests/hub_server.py.")
    print(f"- command: `python bench/hub_dedupe.py --records {args.records} --change {args.change} --seed "
          f"{args.seed} --shard-sizes {args.shard_sizes}`\n")
    print("| 1% changed | --max-shard-size | CDC | shards | shards changed | v2 staged | v2 sent (LFS + commit + "
          "API) | of which LFS | chunk store estimate | push v1 / v2 |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['pattern']} | {r['shard_size']} | {'on' if r['cdc'] else 'off'} | {r['shards']} | "
              f"{r['changed_shards']} | "
              f"{r['v2_bytes']:,} | **{r['sent']:,}** ({r['sent'] / r['v2_bytes']:.0%}) | {r['lfs']:,} | "
              f"{r['estimate']:,} ({r['estimate'] / r['v2_bytes']:.0%}) | {r['push_v1_s']:.1f} s / "
              f"{r['push_v2_s']:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
