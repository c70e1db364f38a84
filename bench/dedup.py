"""swcdata dedup against datasketch, in the same run: records/s, peak RSS, recall on planted copies.

    python bench/dedup.py [--records 100000] [--big 1000000] [--datasketch-big] [--markdown]

Peer: datasketch MinHash (128 permutations, word 5-grams of the lowercased instruction+response,
`update_batch`) with `MinHashLSH(threshold=0.8)` insert + query and union-find, the way users
write it in notebooks. swcdata: the `swcdata dedup` CLI with its defaults (code-aware tokens,
identifiers abstracted, threshold 0.7). Both run as subprocesses; peak RSS is the sum over the
process tree, sampled every 50 ms. Recall is measured on the generator's planted copies
(`exact` and `near` kinds of bench/corpus.py: the seed line verbatim, or reflowed / reworded /
one number changed): the share of planted-copy pairs with the same parent that end in one cluster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO.parent / "shared" / "seed-data"
DATA = REPO / "bench" / ".data"
PY = sys.executable


# ----------------------------------------------------------------------------- measurement


def run_measured(cmd: list[str]) -> dict[str, Any]:
    """Run a command; wall time and peak RSS of its whole process tree."""
    # files, not pipes: a child that prints more than a pipe buffer would block while we poll
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [ps, *ps.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {err[-2000:]}")
    return {"wall": wall, "peak_rss_mb": peak / 2**20, "stdout": out}


# ----------------------------------------------------------------------------- the peer


def datasketch_dedup(path: str, threshold: float = 0.8, num_perm: int = 128) -> dict[str, Any]:
    """The notebook way: one MinHash per record, MinHashLSH, union-find over query results."""
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = []
    n = 0
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            rec = json.loads(line)
            words = (str(rec.get("instruction", "")) + "\n" + str(rec.get("response", ""))).lower().split()
            sh = {" ".join(words[j : j + 5]).encode() for j in range(max(len(words) - 4, 1))}
            m = MinHash(num_perm=num_perm)
            m.update_batch(list(sh))
            lsh.insert(i, m)
            hashes.append(m)
            n += 1
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    labels = [find(i) for i in range(n)]
    return {"records": n, "kept": len(set(labels)), "seconds": time.perf_counter() - t0, "labels": labels}


# ----------------------------------------------------------------------------- data


def corpus(n: int) -> Path:
    """The first n records of the generated corpus (generated on demand; git-ignored)."""
    DATA.mkdir(parents=True, exist_ok=True)
    big = DATA / "corpus-1m.jsonl"
    if not big.exists():
        subprocess.run([PY, str(REPO / "bench" / "corpus.py"), "--records", "1000000", "--out", str(big)], check=True)
    if n >= 1_000_000:
        return big
    sub = DATA / f"corpus-{n}.jsonl"
    if not sub.exists():
        with open(big, "rb") as src, open(sub, "wb") as dst:
            for i, line in enumerate(src):
                if i >= n:
                    break
                dst.write(line)
    return sub


def planted_pairs(n: int) -> dict[int, list[int]]:
    """Parent seed index -> corpus line indices of its planted exact/near copies."""
    sys.path.insert(0, str(REPO))
    from bench.corpus import generate_with_meta

    groups: dict[int, list[int]] = defaultdict(list)
    for i, (_line, meta) in enumerate(generate_with_meta(n, 0)):
        if meta.kind in ("exact", "near"):
            groups[meta.parent].append(i)
    return {p: g for p, g in groups.items() if len(g) > 1}


def recall(labels_by_line: dict[int, Any], groups: dict[int, list[int]]) -> float:
    hit = total = 0
    for g in groups.values():
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                total += 1
                la, lb = labels_by_line.get(g[a]), labels_by_line.get(g[b])
                hit += la is not None and la == lb
    return hit / total if total else float("nan")


def swcdata_labels(report: dict[str, Any], path: Path) -> dict[int, Any]:
    """0-based line -> cluster label (the kept record's line) from a dedup report."""
    labels: dict[int, Any] = {}
    for r in report["removed"]:
        labels[r["source"]["line"] - 1] = r["duplicate_of"]["source"]["line"] - 1
    with open(path, "rb") as f:
        for i, _ in enumerate(f):
            labels.setdefault(i, i)
    return labels


# ----------------------------------------------------------------------------- runs


def bench_swcdata(path: Path, tmp: Path) -> dict[str, Any]:
    rep_path = tmp / "report.json"
    cmd = [PY, "-m", "swcdata", "dedup", str(path), "--out", str(tmp / "kept.jsonl"), "--report", str(rep_path),
           "--workers", "0"]
    m = run_measured(cmd)
    rep = json.loads(rep_path.read_text())
    lines = rep["input"]["lines_read"]
    return {"tool": "swcdata dedup", "records": lines, "kept": rep["ledger"]["kept"], "wall": m["wall"],
            "rps": lines / m["wall"], "peak_rss_mb": m["peak_rss_mb"], "report": rep}


def bench_datasketch(path: Path) -> dict[str, Any]:
    code = (f"import json,sys; sys.path.insert(0, {str(REPO)!r}); from bench.dedup import datasketch_dedup; "
            f"r = datasketch_dedup({str(path)!r}); print(json.dumps(r))")
    m = run_measured([PY, "-c", code])
    r = json.loads(m["stdout"])
    return {"tool": "datasketch (128 perm, word 5-grams, LSH 0.8)", "records": r["records"], "kept": r["kept"],
            "wall": m["wall"], "rps": r["records"] / m["wall"], "peak_rss_mb": m["peak_rss_mb"],
            "labels": dict(enumerate(r["labels"]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="corpus size for the head-to-head run")
    ap.add_argument("--big", type=int, default=1_000_000, help="corpus size for swcdata alone (0 = skip)")
    ap.add_argument("--datasketch-big", action="store_true", help="also run datasketch on --big (slow: ~8 min)")
    ap.add_argument("--markdown", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args(argv)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        datasets: list[tuple[str, Path, dict[int, list[int]] | None]] = []
        if SEED_DIR.is_dir():
            seed = tmp / "seed.jsonl"
            with open(seed, "wb") as out:
                for f in sorted(SEED_DIR.glob("*.jsonl")):
                    data = f.read_bytes().replace(b"\r\n", b"\n")
                    out.write(data if data.endswith(b"\n") else data + b"\n")
            datasets.append(("seed corpus (6 files)", seed, None))
        datasets.append((f"generated {args.records:,}", corpus(args.records), planted_pairs(args.records)))
        for label, path, groups in datasets:
            ours = bench_swcdata(path, tmp)
            peer = bench_datasketch(path)
            ours_rec = recall(swcdata_labels(ours["report"], path), groups) if groups else float("nan")
            peer_rec = recall(peer["labels"], groups) if groups else float("nan")
            rows.append({"data": label, **{k: v for k, v in ours.items() if k != "report"}, "recall": ours_rec})
            rows.append({"data": label, **{k: v for k, v in peer.items() if k != "labels"}, "recall": peer_rec})
            print(f"{label}: swcdata {ours['wall']:.1f}s vs datasketch {peer['wall']:.1f}s "
                  f"({peer['wall'] / ours['wall']:.1f}x)", file=sys.stderr)
        if args.big:
            path = corpus(args.big)
            ours = bench_swcdata(path, tmp)
            rows.append({"data": f"generated {args.big:,}", **{k: v for k, v in ours.items() if k != "report"},
                         "recall": float("nan")})
            if args.datasketch_big:
                peer = bench_datasketch(path)
                rows.append({"data": f"generated {args.big:,}", **{k: v for k, v in peer.items() if k != "labels"},
                             "recall": float("nan")})
    table = render(rows, argv if argv is not None else sys.argv[1:])
    print(table)
    if args.markdown:
        results = REPO / "bench" / "RESULTS.md"
        text = results.read_text() if results.exists() else "# Benchmark results\n"
        results.write_text(text.rstrip("\n") + "\n\n" + table + "\n")
    return 0


def render(rows: list[dict[str, Any]], argv: list[str]) -> str:
    head = (f"## dedup throughput vs datasketch (issue 3)\n\n{dt.date.today()} · {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()} · "
            f"`python bench/dedup.py {' '.join(argv)}`\n\n"
            "| data | tool | records | kept | wall s | records/s | peak RSS MB | recall (planted copies) |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    def fmt_recall(x: float) -> str:
        return "" if x != x else f"{x:.3f}"  # NaN: no planted pairs in that data

    body = "".join(
        f"| {r['data']} | {r['tool']} | {r['records']:,} | {r['kept']:,} | {r['wall']:.1f} | {r['rps']:,.0f} | "
        f"{r['peak_rss_mb']:,.0f} | {fmt_recall(r['recall'])} |\n"
        for r in rows
    )
    ratios = []
    by_data: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_data[r["data"]][r["tool"].split()[0]] = r
    for data, tools in by_data.items():
        if "swcdata" in tools and "datasketch" in tools:
            s, d = tools["swcdata"], tools["datasketch"]
            ratios.append(f"- {data}: swcdata is **{d['wall'] / s['wall']:.1f}x** datasketch's throughput, "
                          f"peak RSS {s['peak_rss_mb']:,.0f} MB vs {d['peak_rss_mb']:,.0f} MB.")
    return head + body + "\n" + "\n".join(ratios)


if __name__ == "__main__":
    raise SystemExit(main())
