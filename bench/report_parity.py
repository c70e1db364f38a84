"""Prove that a dedup report in the old layout (removed records and clusters inline in the JSON) and
one in the new layout (a JSON summary + Parquet files beside it) hold the same rows.

    python bench/report_parity.py OLD.json NEW.json [--markdown]

OLD.json: `swcdata dedup ... --report OLD.json` of a swcdata before the move (its `removed` and
`clusters` are lists in the JSON). NEW.json: the same command with the new code; its `lists.removed` and
`lists.clusters` name `NEW.removed.parquet` and `NEW.clusters.parquet` beside it. Both runs must read the
same input paths (the rows name their source file as given).

Checked, and printed as PASS or FAIL each (exit code 1 on any FAIL):
  - removed records: the same rows (id, source file and line, kind, similarity, duplicate_of id, file and
    line) in the same order (input order), compared as lists and as sets;
  - clusters: the same rows (representative, size, exact, near, min_similarity, categories), in the same
    order; the new `cluster` numbers are 0..n-1, and every removed record's cluster is the one its kept
    record represents;
  - the summary: config, bands, rows, ledger, category conflicts, candidate and verified pairs, the
    number of clusters, and the new `largest_clusters` (the 20 largest of the clusters file).
Then the sizes: the old JSON's bytes against the new JSON's + the two Parquet files'.

How bench/RESULTS.md's numbers were made (the old code from a git worktree of the commit before):
    git worktree add /tmp/wt-rep <old commit> && (cd /tmp/wt-rep && python setup.py -q build_ext --inplace)
    PYTHONPATH=/tmp/wt-rep python -m swcdata dedup IN --out old.jsonl --report old.json
    python -m swcdata dedup IN --out new.jsonl --report new.json
    python bench/report_parity.py old.json new.json
    git worktree remove --force /tmp/wt-rep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

LARGEST = 20
Row = tuple[Any, ...]


def _removed_row(r: dict[str, Any]) -> Row:
    d = r["duplicate_of"]
    return (r["id"], r["source"]["file"], r["source"]["line"], r["kind"], r["similarity"], d["id"],
            d["source"]["file"], d["source"]["line"])


def _cluster_row(c: dict[str, Any]) -> Row:
    rep = c["representative"]
    return (rep["id"], rep["source"]["file"], rep["source"]["line"], c["size"], c["exact"], c["near"],
            c["min_similarity"], tuple(c["categories"]))


def compare(old_path: Path, new_path: Path) -> tuple[list[tuple[str, bool, str]], dict[str, int]]:
    """The checks (name, passed, detail) and the sizes in bytes."""
    old = orjson.loads(old_path.read_bytes())
    new = orjson.loads(new_path.read_bytes())
    if not isinstance(old.get("removed"), list) or not isinstance(old.get("clusters"), list):
        raise SystemExit(f"{old_path}: not an old-layout dedup report (no inline removed / clusters lists)")
    lists = new.get("lists") or {}
    if not lists.get("removed") or not lists.get("clusters"):
        raise SystemExit(f"{new_path}: its lists were not written beside it ({lists.get('note')})")
    removed_file, clusters_file = new_path.parent / lists["removed"], new_path.parent / lists["clusters"]
    removed, clusters = pq.read_table(removed_file), pq.read_table(clusters_file)
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append((name, bool(ok), detail))

    new_removed = removed.to_pylist()
    a, b = [_removed_row(r) for r in old["removed"]], [_removed_row(r) for r in new_removed]
    first = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    check("removed records: same rows, same order", a == b,
          f"{len(a):,} old, {len(b):,} new" + (f"; first difference at row {first}: {a[first]} != {b[first]}"
                                               if first is not None else ""))
    check("removed records: same set", set(a) == set(b) and len(set(a)) == len(a),
          f"{len(set(a) - set(b)):,} only old, {len(set(b) - set(a)):,} only new")
    new_clusters = clusters.to_pylist()
    ca, cb = [_cluster_row(c) for c in old["clusters"]], [_cluster_row(c) for c in new_clusters]
    check("clusters: same rows, same order", ca == cb, f"{len(ca):,} old, {len(cb):,} new")
    numbers = [c["cluster"] for c in new_clusters]
    check("clusters: numbered 0..n-1", numbers == list(range(len(numbers))), "")
    rep_of = [c["representative"]["id"] for c in new_clusters]
    bad = sum(1 for r in new_removed if not (0 <= r["cluster"] < len(rep_of))
              or rep_of[r["cluster"]] != r["duplicate_of"]["id"])
    check("removed records: cluster = the kept record's cluster", bad == 0, f"{bad:,} rows disagree")
    for key in ("config", "bands", "rows", "ledger", "category_conflicts", "candidate_pairs", "verified_pairs"):
        check(f"summary: {key}", old.get(key) == new.get(key), f"{old.get(key)!r} / {new.get(key)!r}"
              if old.get(key) != new.get(key) else "")
    check("summary: clusters (count)", new.get("clusters") == len(old["clusters"]) == clusters.num_rows,
          f"{len(old['clusters']):,} old, {new.get('clusters')} new")
    largest = sorted(new_clusters, key=lambda c: (-c["size"], c["cluster"]))[:LARGEST]
    check("summary: largest_clusters = the largest rows of the clusters file",
          new.get("largest_clusters") == largest, "")
    sizes = {"old_json": old_path.stat().st_size, "new_json": new_path.stat().st_size,
             "new_removed_parquet": removed_file.stat().st_size, "new_clusters_parquet": clusters_file.stat().st_size}
    return checks, sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path, help="the old-layout report (inline removed / clusters)")
    ap.add_argument("new", type=Path, help="the new-layout report (its Parquet files beside it)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table of the checks")
    args = ap.parse_args(argv)
    checks, sizes = compare(args.old, args.new)
    ok = all(passed for _, passed, _ in checks)
    if args.markdown:
        print("| check | result | detail |\n| --- | --- | --- |")
        for name, passed, detail in checks:
            print(f"| {name} | {'PASS' if passed else 'FAIL'} | {detail} |")
    else:
        for name, passed, detail in checks:
            print(f"{'PASS' if passed else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""))
    new_total = sizes["new_json"] + sizes["new_removed_parquet"] + sizes["new_clusters_parquet"]
    print(f"sizes: old JSON {sizes['old_json']:,} B; new JSON {sizes['new_json']:,} B + removed Parquet "
          f"{sizes['new_removed_parquet']:,} B + clusters Parquet {sizes['new_clusters_parquet']:,} B = "
          f"{new_total:,} B ({new_total / max(sizes['old_json'], 1):.1%} of the old)")
    print("PARITY: PASS" if ok else "PARITY: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
