"""Issue 22: the local engine against `--engine ray` on the same corpus, in one run: wall time, the driver's peak RSS
and the whole process tree's, and whether the outputs are identical.

    python bench/engine.py [--sizes 1m,4m] [--data bench/.data] [--work /tmp/swcdata-engine] [--json FILE]
        [--only validate,dedup,audit,split,augment,build] [--ray-address ADDRESS] [--engines local,ray]

For each size N (a generated corpus, `bench/.data/corpus-<N>.jsonl`, made once by `python -m
swcdata.synthetic.corpus --records N` when missing) and each command, the local engine, then the ray engine, each
in a subprocess of its own (a fresh local Ray cluster per run, started by the command, unless --ray-address names
one):
  - validate: `swcdata validate CORPUS --no-code --out valid.jsonl --quarantine q.jsonl --report r.json`;
  - dedup:    `swcdata dedup CORPUS --out kept.jsonl --quarantine q.jsonl --report r.json` (the report's
    per-record lists beside it as Parquet);
  - audit:    `swcdata audit -r CORPUS -c HELD --report r.json`, HELD every 100th line of the corpus
    (`corpus-<N>.held.jsonl`, made once): a test set of 1 % checked against the whole corpus;
  - split:    `swcdata split CORPUS --out DIR --report r.json --holdout HELD`;
  - augment:  `swcdata augment SPLITS --out DIR --factor 1 --report r.json`, SPLITS the local split's DIR;
  - build:    `swcdata build --config CFG --home DIR --json` (CFG: the corpus as input, HELD as the holdout, the
    default steps); identical: the same content hash and ledger.
Per run: wall seconds (the command from start to exit, Python and Ray start-up included: what a user waits for);
the driver's peak RSS (the command's own process, sampled every 50 ms with psutil) and of its anonymous memory
(RssAnon: what it holds itself, without the object store's shared pages that reading a block maps into it); the
peak of the whole process tree's summed RSS (with Ray: its GCS, raylet and workers, which the command starts as its
descendants) and of its anonymous memory (RssAnon: without the mapped files' page cache, shared memory of the
object store included).
Identical: every output file byte for byte (Parquet lists as tables), the JSON reports less their timings.

Results: a Markdown table on stdout (and the figures as JSON with --json). The targets (issue 22): Ray's wall time
within 2x of the local engine at 1M on 2 cores; the driver's peak RSS under 1.5 GB at 1M and not growing with the
corpus beyond that (1M against 4M).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from analytics import machine, parse_size, rss_anon, size_name

REPO = Path(__file__).resolve().parents[1]
SWCDATA = str(Path(sys.executable).with_name("swcdata"))
VOLATILE = {"seconds", "timings", "records_per_second", "backend", "elapsed_s"}


def corpus(data: Path, n: int) -> Path:
    path = data / f"corpus-{size_name(n)}.jsonl"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "swcdata.synthetic.corpus", "--records", str(n), "--out", str(path),
                        "--workers", "2"], check=True)
    return path


def measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run `cmd` in `cwd`: wall seconds, exit code, the driver's peak RSS and the process tree's (MB)."""
    import psutil

    cwd.mkdir(parents=True, exist_ok=True)
    peak = {"driver": 0, "driver_anon": 0, "tree": 0, "tree_anon": 0}
    done = threading.Event()
    t0 = time.perf_counter()
    with (cwd / "stdout.txt").open("wb") as out, (cwd / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)

        def sample() -> None:
            root = psutil.Process(proc.pid)
            while not done.is_set():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                    peak["driver"] = max(peak["driver"], root.memory_info().rss)
                    peak["driver_anon"] = max(peak["driver_anon"], rss_anon(proc.pid))
                    total = anon = 0
                    for p in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                            total += p.memory_info().rss
                            anon += rss_anon(p.pid)
                    peak["tree"], peak["tree_anon"] = max(peak["tree"], total), max(peak["tree_anon"], anon)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
    return {"wall_s": round(wall, 2), "rc": rc, **{f"{k}_mb": round(v / 2**20, 1) for k, v in peak.items()},
            "stderr_tail": (cwd / "stderr.txt").read_text(errors="replace")[-1500:]}


def held(data: Path) -> Path:
    """Every 100th line of the corpus: the candidates of the audit, the holdout of split and build."""
    path = data.with_name(data.name.replace(".jsonl", ".held.jsonl"))
    if not path.exists():
        with data.open("rb") as f, path.open("wb") as out:
            for i, line in enumerate(f):
                if i % 100 == 0:
                    out.write(line)
    return path


def argv(command: str, data: Path, out: Path, engine: str, address: str | None, work: Path) -> list[str]:
    engine_args = ["--engine", engine, *(["--ray-address", address] if address and engine == "ray" else [])]
    report = ["--report", str(out / "r.json")]
    if command == "audit":
        return [SWCDATA, "audit", "-r", str(data), "-c", str(held(data)), *report, *engine_args]
    if command == "split":
        return [SWCDATA, "split", str(data), "--out", str(out / "splits"), "--holdout", str(held(data)), *report,
                *engine_args]
    if command == "augment":
        splits = work / f"split-{data.stem.removeprefix('corpus-')}-local" / "splits"
        if not splits.is_dir():
            sys.exit(f"FATAL: augment reads the local split's folder {splits}: run --only split,augment")
        return [SWCDATA, "augment", str(splits), "--out", str(out / "augmented"), "--factor", "1", *report,
                *engine_args]
    if command == "build":
        out.mkdir(parents=True, exist_ok=True)
        cfg = out / "build.toml"
        cfg.write_text(f'inputs = ["{data}"]\n[split]\nholdout = ["{held(data)}"]\n')
        return [SWCDATA, "build", "--config", str(cfg), "--home", str(out / "registry"), "--json", *engine_args]
    base = [SWCDATA, command, str(data), "--quarantine", str(out / "q.jsonl"), *report, *engine_args]
    if command == "validate":
        return [*base, "--no-code", "--out", str(out / "valid.jsonl")]
    return [*base, "--out", str(out / "kept.jsonl")]


def same_outputs(a: Path, b: Path) -> tuple[bool, list[str]]:
    """Every output file of run a equals run b's (reports less their timings, Parquet as tables)."""
    import pyarrow.parquet as pq

    differ: list[str] = []
    if (a / "registry").is_dir():  # (build: the version's identity and ledger, from its JSON result)
        ra, rb = (json.loads((p / "stdout.txt").read_text()) for p in (a, b))
        same = all(ra[k] == rb[k] for k in ("ref", "content_hash", "ledger", "counts", "contamination"))
        return same, [] if same else ["the build results"]
    skip = ("stdout.txt", "stderr.txt", "build.toml")
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and p.name not in skip)
    if names != sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and p.name not in skip):
        return False, ["the runs wrote different files"]
    for name in names:
        pa_, pb = a / name, b / name
        if name.endswith(".json"):
            ja, jb = (json.loads(p.read_text()) for p in (pa_, pb))
            same = {k: v for k, v in ja.items() if k not in VOLATILE} == {k: v for k, v in jb.items()
                                                                          if k not in VOLATILE}
        elif name.endswith(".parquet"):
            same = pq.read_table(pa_).equals(pq.read_table(pb))
        else:
            same = _same_bytes(pa_, pb)
        if not same:
            differ.append(name)
    return not differ, differ


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 22), fb.read(1 << 22)
            if x != y:
                return False
            if not x:
                return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1m,4m")
    ap.add_argument("--only", default="validate,dedup")
    ap.add_argument("--data", type=Path, default=REPO / "bench" / ".data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/swcdata-engine"))
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--engines", default="local,ray", help="ray alone: the outputs compared with a local run's folder "
                    "left by an earlier run (its wall time is not this run's: no ratio)")
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWCDATA_")}
    env.pop("RAY_ADDRESS", None)
    rows: list[dict[str, Any]] = []
    for size in [parse_size(s) for s in args.sizes.split(",") if s]:
        data = corpus(args.data, size)
        for command in args.only.split(","):
            runs = {}
            for engine in engines:
                out = args.work / f"{command}-{size_name(size)}-{engine}"
                if out.exists():
                    shutil.rmtree(out)
                print(f"{command} {size_name(size)} {engine} ...", file=sys.stderr, flush=True)
                r = measured(argv(command, data, out, engine, args.ray_address, args.work), out, env)
                print(f"  {r['wall_s']} s, driver {r['driver_mb']} MB, tree {r['tree_mb']} MB, rc {r['rc']}",
                      file=sys.stderr, flush=True)
                if r["rc"] not in ((0, 1) if command == "validate" else (0,)):  # (validate: 1 = findings)
                    # (audit: exit 0 without --fail-on-leak)
                    sys.exit(f"FATAL: {command} --engine {engine} failed (rc {r['rc']}):\n{r['stderr_tail']}")
                runs[engine] = r
            same, differ = same_outputs(args.work / f"{command}-{size_name(size)}-local",
                                        args.work / f"{command}-{size_name(size)}-ray")
            rows.append({"command": command, "size": size_name(size), **runs, "identical": same, "differ": differ})
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}; {machine()}\n")
    print("| command | records | local wall | ray wall | ray/local | local driver RSS | ray driver RSS (anon) "
          "| ray tree RSS (anon) | identical outputs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        lo, ra = row.get("local"), row["ray"]
        local = (f"{lo['wall_s']:.1f} s", f"{ra['wall_s'] / max(lo['wall_s'], 1e-9):.2f}x",
                 f"{lo['driver_mb']:,.0f} MB") if lo else ("-", "-", "-")
        print(f"| {row['command']} | {row['size']} | {local[0]} | {ra['wall_s']:.1f} s | {local[1]} | {local[2]} | "
              f"{ra['driver_mb']:,.0f} MB ({ra['driver_anon_mb']:,.0f} MB) "
              f"| {ra['tree_mb']:,.0f} MB ({ra['tree_anon_mb']:,.0f} MB) | "
              f"{'yes' if row['identical'] else 'NO: ' + ', '.join(row['differ'])} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
