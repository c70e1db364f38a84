"""swcdata dedup against datasketch, in the same run: records/s, peak RSS, recall on planted copies.

    python bench/dedup.py [--records 100000] [--big 1000000] [--datasketch-big] [--no-seed] [--markdown]

Targets (issue 3): at least 10x datasketch's records/s at equal or better recall, 1M records in
under 50 s on 2 cores, and a lower peak RSS than datasketch. `--markdown` writes (or replaces) the
`## dedup (issue 3)` section of bench/RESULTS.md with the table and a PASS/MISS line per target.

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


def _planted_meta(n: int) -> tuple[list[int], list[str]]:
    """(parent, kind) of the first n generated records, cached next to the corpus (generating the
    metadata means generating the records: minutes at 1M)."""
    sys.path.insert(0, str(REPO))
    from swcdata.synthetic.corpus import generate_with_meta

    size = max(n, 1_000_000)
    cache = DATA / f"corpus-{size}.meta.json"
    if cache.exists():
        meta = json.loads(cache.read_text())
    else:
        parents, kinds = [], []
        for _line, m in generate_with_meta(size, 0):
            parents.append(m.parent)
            kinds.append(m.kind)
        meta = {"parent": parents, "kind": kinds}
        DATA.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(meta))
    return meta["parent"][:n], meta["kind"][:n]


def planted_pairs(n: int) -> dict[int, list[int]]:
    """Parent seed index -> corpus line indices of its planted exact/near copies."""
    parents, kinds = _planted_meta(n)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, (parent, kind) in enumerate(zip(parents, kinds, strict=True)):
        if kind in ("exact", "near"):
            groups[parent].append(i)
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
    """0-based line -> cluster label (the kept record's line) from a dedup report (its removed records: the
    Parquet file its `lists.removed` names, made absolute by bench_swcdata)."""
    import pyarrow.parquet as pq

    removed = pq.read_table(report["lists"]["removed"], columns=["source", "duplicate_of"])
    lines = removed.column("source").combine_chunks().field("line").to_pylist()
    kept = removed.column("duplicate_of").combine_chunks().field("source").field("line").to_pylist()
    labels: dict[int, Any] = {}
    for line, of in zip(lines, kept, strict=True):
        labels[line - 1] = of - 1
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
    rep["lists"]["removed"] = str(rep_path.parent / rep["lists"]["removed"])  # (beside the report)
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


SECTION = "## dedup (issue 3)"
TARGET_RATIO = 10.0
TARGET_BIG_SECONDS = 50.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="corpus size for the head-to-head run")
    ap.add_argument("--big", type=int, default=1_000_000, help="corpus size for swcdata alone (0 = skip)")
    ap.add_argument("--datasketch-big", action="store_true", help="also run datasketch on --big (slow: ~8 min)")
    ap.add_argument("--no-seed", action="store_true", help="skip the seed corpus")
    ap.add_argument("--markdown", action="store_true", help="write the section into bench/RESULTS.md")
    args = ap.parse_args(argv)

    started = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        datasets: list[tuple[str, Path, dict[int, list[int]] | None, bool]] = []
        if SEED_DIR.is_dir() and not args.no_seed:
            seed = tmp / "seed.jsonl"
            with open(seed, "wb") as out:
                for f in sorted(SEED_DIR.glob("*.jsonl")):
                    data = f.read_bytes().replace(b"\r\n", b"\n")
                    out.write(data if data.endswith(b"\n") else data + b"\n")
            datasets.append(("seed corpus (6 files)", seed, None, True))
        if args.records:
            datasets.append((f"generated {args.records:,}", corpus(args.records), planted_pairs(args.records), True))
        if args.big:
            datasets.append((f"generated {args.big:,}", corpus(args.big), planted_pairs(args.big), args.datasketch_big))
        for label, path, groups, with_peer in datasets:
            load = os.getloadavg()[0]
            ours = bench_swcdata(path, tmp)
            ours_rec = recall(swcdata_labels(ours["report"], path), groups) if groups else float("nan")
            rows.append({"data": label, **{k: v for k, v in ours.items() if k != "report"}, "recall": ours_rec,
                         "load": load, "timings": ours["report"]["timings"]})
            msg = f"{label}: swcdata {ours['wall']:.1f}s"
            if with_peer:
                load = os.getloadavg()[0]
                peer = bench_datasketch(path)
                peer_rec = recall(peer["labels"], groups) if groups else float("nan")
                rows.append({"data": label, **{k: v for k, v in peer.items() if k != "labels"}, "recall": peer_rec,
                             "load": load})
                msg += f" vs datasketch {peer['wall']:.1f}s ({peer['wall'] / ours['wall']:.1f}x)"
            print(msg, file=sys.stderr, flush=True)
    section = render(rows, argv if argv is not None else sys.argv[1:], started, args.big)
    print(section)
    if args.markdown:
        write_section(REPO / "bench" / "RESULTS.md", SECTION, section)
    return 0


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section that starts with `heading` (up to the next `## `) or append it; the
    rest of the file is left as it is."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = text.find("\n## ", start + len(heading))
        tail = "" if end < 0 else text[end + 1 :]
        text = text[:start] + section.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    path.write_text(text)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return (f"`nproc` {os.cpu_count()}, {model or platform.machine()}, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def render(rows: list[dict[str, Any]], argv: list[str], started: str, big: int) -> str:
    def fmt_recall(x: float) -> str:
        return "–" if x != x else f"{x:.3f}"  # NaN: no planted pairs in that data

    by_data: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_data[r["data"]][r["tool"].split()[0]] = r
    head = (f"{SECTION}\n\n"
            f"- date: {started}\n"
            f"- machine: {machine()}; the cores are shared with other work, so compare within one run "
            "(1-minute load average before each run in the table)\n"
            f"- command: `python bench/dedup.py {' '.join(argv)}`\n"
            "- swcdata: `python -m swcdata dedup FILE --out ... --report ... --workers 0` (defaults: code-aware "
            "tokens, identifiers abstracted, 128 permutations, 5-grams, threshold 0.7, 14 bands x 9 rows); the "
            "whole CLI run: reading and validating the JSONL, token streams, signatures, LSH, verification, "
            "report and output\n"
            "- datasketch: 128 permutations, word 5-grams of the lowercased instruction + response, "
            "`MinHashLSH(threshold=0.8)` insert + query, union-find (see `datasketch_dedup`)\n"
            "- peak RSS: sum over the process tree, sampled every 50 ms; recall: share of planted exact/near "
            "copy pairs (same seed parent, bench/corpus.py) that end in one cluster\n\n"
            "| data | tool | records | kept | wall s | records/s | ratio (vs datasketch) | peak RSS MB | "
            "recall (planted copies) | load |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    body = ""
    for r in rows:
        peer = by_data[r["data"]].get("datasketch")
        ratio = f"{r['rps'] / peer['rps']:.1f}x" if peer else "–"
        body += (f"| {r['data']} | {r['tool']} | {r['records']:,} | {r['kept']:,} | {r['wall']:.1f} | "
                 f"{r['rps']:,.0f} | {ratio} | {r['peak_rss_mb']:,.0f} | {fmt_recall(r['recall'])} | "
                 f"{r['load']:.1f} |\n")
    notes = []
    for data, tools in by_data.items():
        s = tools.get("swcdata")
        if s and "timings" in s:
            t = s["timings"]
            inner = t.get("total", 0.0)
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in t.items() if k != "total")
            notes.append(f"- {data}: swcdata phases: read + validate + write ≈ {s['wall'] - inner:.1f} s "
                         f"(wall minus the step), the step {inner:.1f} s ({phases}).")
    checks = []
    for data, tools in by_data.items():
        s, d = tools.get("swcdata"), tools.get("datasketch")
        if not (s and d):
            continue
        ratio = s["rps"] / d["rps"]
        checks.append(f"| ≥ {TARGET_RATIO:.0f}x datasketch records/s ({data}) | {ratio:.1f}x | "
                      f"{_verdict(ratio >= TARGET_RATIO)} |")
        if s["recall"] == s["recall"] and d["recall"] == d["recall"]:
            checks.append(f"| recall on planted copies ≥ datasketch's ({data}) | {s['recall']:.3f} vs "
                          f"{d['recall']:.3f} | {_verdict(s['recall'] >= d['recall'])} |")
        checks.append(f"| peak RSS < datasketch's ({data}) | {s['peak_rss_mb']:,.0f} MB vs "
                      f"{d['peak_rss_mb']:,.0f} MB | {_verdict(s['peak_rss_mb'] < d['peak_rss_mb'])} |")
    big_row = by_data.get(f"generated {big:,}", {}).get("swcdata") if big else None
    if big_row and big >= 1_000_000:
        checks.append(f"| {big:,} records in < {TARGET_BIG_SECONDS:.0f} s on 2 cores | {big_row['wall']:.1f} s | "
                      f"{_verdict(big_row['wall'] < TARGET_BIG_SECONDS)} |")
    out = head + body
    if notes:
        out += "\n" + "\n".join(notes) + "\n"
    if checks:
        out += "\n| target | measured | result |\n| --- | --- | --- |\n" + "\n".join(checks) + "\n"
    return out


if __name__ == "__main__":
    raise SystemExit(main())
