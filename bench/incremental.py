"""Issue 24: an incremental build (v2 = v1's inputs + 5 % new records: signing only what v1's signature index lacks,
checking, augmenting and auditing only what the build cache lacks, reading only the input files it has not
prepared) against a full build of the same inputs in a fresh registry, in one run.

    python bench/incremental.py [--size 1m] [--new 0.05] [--data bench/.data] [--work /tmp/swcdata-incr]
        [--json FILE] [--augment/--no-augment] [--engine local|ray]

Inputs: the generated corpus `bench/.data/corpus-<size>.jsonl` (made once when missing) as v1's input, and NEW
records (`--new` of the corpus's size) generated with another seed (`corpus-<size>.new<pct>.jsonl`, made once).
Three builds, each `swcdata build --config CFG --home HOME --json` in a subprocess of its own:
  1. v1: the corpus, into registry A (its signature index is written);
  2. v2, incremental: the corpus + NEW, into registry A (its parent is v1: v1's index gives the signatures it holds,
     and v1's build cache the code findings and variants of the texts it saw);
  3. v2, full: the corpus + NEW, into a fresh registry B (nothing to reuse).
Reported: each build's wall time and its steps' timings; the incremental/full ratio of the whole build and of its
dedup step; the index's reused/signed counts and the cache's reused counts; and whether the two v2 are the same
(content hash, and the index files byte for byte). The target (issue 24): the incremental build at most 15 % of the
full build's time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from analytics import machine, parse_size, size_name

SWCDATA = str(Path(sys.executable).with_name("swcdata"))


def generated(path: Path, n: int, seed: int) -> Path:
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "swcdata.synthetic.corpus", "--records", str(n), "--seed", str(seed),
                        "--out", str(path), "--workers", "2"], check=True)
    return path


def build(cfg: Path, home: Path, engine: str) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    run = subprocess.run([SWCDATA, "build", "--config", str(cfg), "--home", str(home), "--json", "--engine", engine],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    if run.returncode != 0:
        sys.exit(f"build failed ({run.returncode}): {run.stderr[-2000:]}")
    return wall, json.loads(run.stdout)


def config(path: Path, inputs: list[Path], augment: bool) -> Path:
    path.write_text(f"name = \"c\"\ninputs = {json.dumps([str(p) for p in inputs])}\nseed = 0\n"
                    f"[augment]\nenabled = {str(augment).lower()}\n", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1m")
    ap.add_argument("--new", type=float, default=0.05)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / ".data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/swcdata-incr"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="Where every build runs (ray: a cluster started for each build, or RAY_ADDRESS).")
    args = ap.parse_args()
    n = parse_size(args.size)
    base = generated(args.data / f"corpus-{size_name(n)}.jsonl", n, 0)
    n_new = max(1, round(n * args.new))
    new = generated(args.data / f"corpus-{size_name(n)}.new{round(args.new * 100)}.jsonl", n_new, 7)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    a, b = args.work / "registry-a", args.work / "registry-b"
    v1_cfg = config(args.work / "v1.toml", [base], args.augment)
    v2_cfg = config(args.work / "v2.toml", [base, new], args.augment)
    runs = {}
    for label, cfg, home in (("v1 (full)", v1_cfg, a), ("v2 incremental", v2_cfg, a), ("v2 full", v2_cfg, b)):
        wall, result = build(cfg, home, args.engine)
        runs[label] = {"wall_s": round(wall, 2), "ref": result["ref"], "content_hash": result["content_hash"],
                       "timings": result["timings"], "index": {k: v for k, v in (result.get("index") or {}).items()
                                                               if k != "params"},
                       "cache": result.get("cache") or {}}
        print(f"{label}: {wall:.1f} s {result['timings']} {runs[label]['index']}", file=sys.stderr, flush=True)
    inc, full = runs["v2 incremental"], runs["v2 full"]
    same_index = (a / "c" / "v2" / "index" / "signatures.parquet").read_bytes() == \
        (b / "c" / "v1" / "index" / "signatures.parquet").read_bytes()
    out = {"machine": machine(), "size": n, "new": n_new, "augment": args.augment, "engine": args.engine, "runs": runs,
           "build_ratio": round(inc["wall_s"] / full["wall_s"], 3),
           "dedup_ratio": round(inc["timings"]["dedup"] / full["timings"]["dedup"], 3),
           "same_content": inc["content_hash"] == full["content_hash"], "same_index": same_index}
    print("| build | wall | validate | dedup | split | augment | index | audit | publish | signatures reused | signed "
          "| code checks reused | augmentation reused | input lines reused | audit features reused |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in runs.items():
        t = r["timings"]
        cells = [f"{t.get(k, 0):.1f} s" for k in ("validate", "dedup", "split", "augment", "index", "audit", "publish")]
        cache = [f"{c.get('reused', 0):,} of {c.get('texts', 0):,}" for c in (r["cache"].get(s, {})
                                                                             for s in ("checks", "augment", "inputs",
                                                                                       "audit"))]
        print(f"| {label} | {r['wall_s']:.1f} s | {' | '.join(cells)} | {r['index'].get('reused', 0):,} | "
              f"{r['index'].get('signed', 0):,} | {' | '.join(cache)} |")
    print(f"\nincremental / full: build {out['build_ratio']:.3f}, dedup step {out['dedup_ratio']:.3f}; same content "
          f"hash: {out['same_content']}; same index file: {same_index}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
