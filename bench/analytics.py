"""Issue 21 (table work in polars): wall time and peak memory of `stats`, `diff` and split assignment, on an OLD
checkout and a NEW one, in one run.

    python bench/analytics.py [--old /tmp/wt-21base] [--new .] [--sizes 1m] [--assign-sizes 1m,10m]
        [--only stats,diff,assign] [--data bench/.data] [--json FILE] [--rss-cap-mb MB] [--prepare-only]

(The figures in bench/RESULTS.md, "Table work in polars (issue 21)": `--sizes 1m,4m --assign-sizes 1m,10m
--rss-cap-mb 17000`, then `--sizes 1m,10m --new-only 10m --only stats,diff`. A measurement whose process tree's
anonymous memory passes --rss-cap-mb, default 70 % of the machine's memory, is killed and shown as such.)

A checkout is a folder holding `swcdata/` with its C extension built in place. For the old side of issue 21:
`git worktree add /tmp/wt-21base b668e44 && cd /tmp/wt-21base && python setup.py -q build_ext --inplace`.

Each measurement is one subprocess, `env PYTHONPATH=<checkout> PYTHONSAFEPATH=1 <this python> ...`, run in a
scratch folder of its own with the caller's `SWCDATA_*` variables removed (SWCDATA_HOME set to the bench registry).
Before anything runs, each side proves that it imports swcdata from its checkout. Per measurement:
  - wall: the subprocess from start to exit (imports included: what a user waits for);
  - peak RSS: the larger of the child's own `ru_maxrss` (os.wait4: that child alone, not a running maximum over
    every child of this process) and the peak of its process tree's summed RSS, sampled every 50 ms with psutil.
    RSS counts the resident pages of the files a process maps (a version's Arrow files: page cache that the kernel
    can drop and read again), so the peak of the tree's anonymous memory (RssAnon in /proc/<pid>/status, the
    heap) is reported beside it, in parentheses.

What is measured, per size (old, then new; one run each: the machine is shared, so take ratios, not digits):
  - stats:  `swcdata stats bench-<size>@v2 --json`;
  - diff:   `swcdata diff bench-<size>@v1 bench-<size>@v2 --json`;
  - assign: `python bench/analytics.py assign --rows N`, a driver that builds the inputs of
    `swcdata.steps.split.assign_groups` (16-hex-digit ids, categories over SWC-100..136, 90 % single records and
    10 % in groups of 2 to 20, all from a fixed numpy seed: the same on both sides) and times the call alone
    (`inner_s`); it prints the sha256 of the split indices, which must be the same on both sides. The new side
    also runs `--columns arrow` (the Arrow columns that `split()` now passes instead of Python lists).
The stats and diff JSON of the two sides are compared too (timings and versions dropped): `same` in the table,
which names the keys that only the new side writes (every key of the old report must hold the same value).

The data (kept in --data, made once, by the NEW checkout, and reused by later runs):
  - corpus-<size>.jsonl: `python -m swcdata.synthetic.corpus --records N` (corpus-1m.jsonl may exist already);
  - registry/: `bench-<size>@v1` and `@v2`, published with the registry API (`Registry(home).publish`) from the
    corpus' valid records (`load_valid(..., ValidateConfig(check_code=False))`, a piece at a time, kept as a
    memory-mapped Arrow file), no dedup: v1 = the first 99 %, split 8/1/1 by the id's leading hex digits (6/2/2
    above 2.5M records: see `split_rule`); v2 = v1 less 1 % of its records, with 1 % edited (the response
    grows a sentence, so the id changes) and the last 1 % of the corpus added. `bench-tiny@v1/v2` (2,000 lines) is
    the smoke test that each side's stats and diff run before the long runs. The old checkout must read versions
    published by the new one (the manifest schema did not change): the smoke test proves it.

Results: a Markdown table on stdout (and the raw figures as JSON with --json).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
VOLATILE = {"seconds", "timings", "elapsed", "elapsed_s", "tool_version", "created_at", "wall_s"}


def parse_size(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if t[-1:] in "km" else t) * mult)


def size_name(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1_000}k" if n % 1_000 == 0 else str(n)


# --- running a measured subprocess -------------------------------------------------------------------------------


def side_env(checkout: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWCDATA_")}
    env.update(PYTHONPATH=str(checkout), PYTHONSAFEPATH="1", SWCDATA_HOME=str(home), PYTHONHASHSEED="0")
    return env


def rss_anon(pid: int) -> int:
    """A process's anonymous resident memory in bytes (RssAnon), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def measured(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 3600,
             cap_mb: float = float("inf")) -> dict[str, Any]:
    """Run `cmd`; its wall time, peak RSS (MB), exit code, stdout (text) and the tail of stderr. A process tree
    whose anonymous memory passes `cap_mb` is killed (`capped`: the machine is shared, and a measurement must not
    push it into swapping or the OOM killer)."""
    import psutil

    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    peak_tree = peak_anon = 0
    done, capped = threading.Event(), threading.Event()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)

        def sample() -> None:
            nonlocal peak_tree, peak_anon
            try:
                root = psutil.Process(proc.pid)
            except psutil.NoSuchProcess:
                return
            while not done.is_set():
                total = anon = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except (psutil.NoSuchProcess, psutil.ZombieProcess):
                            continue
                        anon += rss_anon(p.pid)
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    break
                peak_tree = max(peak_tree, total)
                peak_anon = max(peak_anon, anon)
                if anon > cap_mb * 2**20:  # (anonymous memory: the mapped files' pages are page cache)
                    capped.set()
                    for p in [*root.children(recursive=True), root]:
                        with contextlib.suppress(psutil.NoSuchProcess):
                            p.kill()
                    break
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    rss_mb = max(usage.ru_maxrss * 1024, peak_tree) / 2**20  # (ru_maxrss is in KiB on Linux)
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(rss_mb, 1), "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
            "tree_peak_mb": round(peak_tree / 2**20, 1), "anon_peak_mb": round(peak_anon / 2**20, 1),
            "rc": proc.returncode, "capped": capped.is_set(),
            "stdout": out_path.read_text(errors="replace"), "stderr_tail": err_path.read_text(errors="replace")[-2000:]}


def prove_imports(name: str, checkout: Path, home: Path) -> None:
    got = subprocess.run([sys.executable, "-c", "import swcdata; print(swcdata.__file__)"],
                         env=side_env(checkout, home), cwd="/tmp", capture_output=True, text=True,
                         check=True).stdout.strip()
    want = checkout.resolve() / "swcdata" / "__init__.py"
    if Path(got).resolve() != want:
        sys.exit(f"FATAL: the {name} side imports swcdata from {got}, not {want}")


def compare(old: Any, new: Any, path: str = "") -> tuple[bool, set[str]]:
    """(equal, keys only the new side has): objects equal once the keys that only the new side writes are dropped
    count as equal, and those keys are named."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) - set(new):
            return False, set()
        added = {f"{path}.{k}".lstrip(".") for k in set(new) - set(old)}
        for k in old:
            ok, more = compare(old[k], new[k], f"{path}.{k}")
            if not ok:
                return False, set()
            added |= more
        return True, added
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return False, set()
        added = set()
        for a, b in zip(old, new, strict=True):
            ok, more = compare(a, b, f"{path}[]")
            if not ok:
                return False, set()
            added |= more
        return True, added
    return old == new, set()


def normalized(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: normalized(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [normalized(v) for v in obj]
    return obj


# --- the data ------------------------------------------------------------------------------------------------------


def corpus_file(data: Path, n: int, new: Path) -> Path:
    path = data / f"corpus-{size_name(n)}.jsonl"
    if not path.exists():
        need = n * 1300  # (about 1.25 kB a record)
        free = shutil.disk_usage(data).free
        if free < need * 1.5:
            sys.exit(f"FATAL: {path} needs about {need / 1e9:.1f} GB and {free / 1e9:.1f} GB are free")
        print(f"generating {path} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "swcdata.synthetic.corpus", "--records", str(n), "--out", str(path),
                        "--workers", "2"], env=side_env(new, data / "registry"), cwd="/tmp", check=True)
    return path


def load_mapped(corpus: Path, rows: int, work: Path, piece_rows: int = 250_000) -> pa.Table:
    """The valid records of the first `rows` lines of `corpus`, memory-mapped from an Arrow file in `work` (made once):
    read `piece_rows` lines at a time, so that the validator's Python lists never hold more than a piece, with each
    record's `source` set back to the corpus and its line there."""
    import itertools

    import pyarrow as pa
    import pyarrow.compute as pc

    from swcdata.core.arrow import int64s, strings
    from swcdata.core.records import SOURCE_TYPE
    from swcdata.steps.validate import ValidateConfig, load_valid

    mapped = work / f".valid-{corpus.stem}-{rows}.arrow"
    if not mapped.exists():
        piece, tmp = work / ".piece.jsonl", work / ".valid.arrow.tmp"
        writer = None
        with corpus.open("rb") as f:
            for start in range(0, rows, piece_rows):
                lines = list(itertools.islice(f, min(piece_rows, rows - start)))
                if not lines:
                    break
                piece.write_bytes(b"".join(lines))
                del lines
                table, _, _ = load_valid([piece], ValidateConfig(check_code=False))
                line = pc.struct_field(table.column("source"), "line").combine_chunks()
                where = pa.StructArray.from_arrays([strings([str(corpus)] * table.num_rows),
                                                    int64s(line.to_numpy() + start)], fields=list(SOURCE_TYPE))
                table = table.set_column(table.schema.get_field_index("source"), table.schema.field("source"), where)
                if writer is None:
                    writer = pa.ipc.new_file(tmp, table.schema)
                writer.write_table(table, max_chunksize=65_536)
        assert writer is not None
        writer.close()
        piece.unlink()
        tmp.rename(mapped)
    return pa.ipc.open_file(pa.memory_map(str(mapped))).read_all()


def _take(table: pa.Table, rows: npt.NDArray[np.int64], step: int = 250_000, span: int = 500_000) -> pa.Table:
    """`table.take(rows)` for a table of over 2 GiB of strings: Arrow's take concatenates a chunked column first, and
    that overflows its 32-bit offsets. So each piece of `rows` (at most `step` of them, increasing, within `span`
    rows of each other) is taken from the slice of the table it lies in."""
    import numpy as np
    import pyarrow as pa

    from swcdata.core.arrow import int64s

    parts = []
    k = 0
    while k < len(rows):
        seg = rows[k : k + step]
        stop = np.flatnonzero((seg[1:] < seg[:-1]) | (seg[1:] - seg[0] >= span))
        end = k + (int(stop[0]) + 1 if len(stop) else len(seg))
        lo, hi = int(rows[k]), int(rows[end - 1])
        parts.append(table.slice(lo, hi - lo + 1).take(int64s(rows[k:end] - lo)))
        k = end
    return pa.concat_tables(parts) if parts else table.slice(0, 0)


SPLIT_RULES = {"8/1/1": (0, 0, 0, 0, 0, 0, 0, 0, 1, 2), "6/2/2": (0, 0, 0, 0, 0, 0, 1, 1, 2, 2)}
POSITIONAL = "8/1/1 by position"
BIG = 5_000_000  # from this size on, the versions are made without copies of the whole corpus in memory


def split_rule(rows: int) -> str:
    """8/1/1 by the id up to 2.5M records; 6/2/2 up to BIG (the 4M versions of the earlier measurement: before
    ad1717b, `Registry.publish` could not store a split of more than 2 GiB of text in one column); from BIG on,
    8/1/1 by position (the first 80 % of the records train, the next 10 % validation, the last 10 % test): each
    split is then a slice of the memory-mapped corpus, and publishing holds one copy of the version (its canonical
    tables, 12.5 GB at 10M) instead of two."""
    return "8/1/1" if rows <= 2_500_000 else "6/2/2" if rows < BIG else POSITIONAL


def _by_position(table: pa.Table) -> dict[str, pa.Table]:
    n = table.num_rows
    a, b = n * 8 // 10, n * 9 // 10
    return {"train": table.slice(0, a), "validation": table.slice(a, b - a), "test": table.slice(b)}


def _edited(part: pa.Table) -> pa.Table:
    """The records with a sentence added to their response (so a new id)."""
    import pyarrow.compute as pc

    from swcdata.core.arrow import strings
    from swcdata.core.text import record_ids

    response = pc.binary_join_element_wise(part.column("response"), " (Edited for the benchmark.)", "")
    part = part.set_column(part.schema.get_field_index("response"), part.schema.field("response"), response)
    new_ids = record_ids(part.column("instruction").to_pylist(), response.to_pylist())
    return part.set_column(part.schema.get_field_index("id"), part.schema.field("id"), strings(new_ids))


def _v2_mapped(table: pa.Table, nb: int, work: Path, piece: int = 250_000) -> pa.Table:
    """v2's records (v1's first `nb` less the dropped and edited ones, then the edited ones, then the rest of the
    corpus), written to an Arrow file in `work` a piece at a time and memory-mapped: no copy in memory."""
    import numpy as np
    import pyarrow as pa

    from swcdata.core.arrow import bools

    path, tmp = work / f".v2-{table.num_rows}.arrow", work / ".v2.arrow.tmp"
    with pa.ipc.new_file(tmp, table.schema) as writer:
        for which in ("kept", "edited"):
            for start in range(0, nb, piece):
                part = table.slice(start, min(piece, nb - start))
                k = np.arange(start, start + part.num_rows) % 100
                if which == "kept":
                    writer.write_table(part.filter(bools((k != 17) & (k != 53))), max_chunksize=65_536)
                else:
                    writer.write_table(_edited(part.filter(bools(k == 53))), max_chunksize=65_536)
        for start in range(nb, table.num_rows, piece):
            writer.write_table(table.slice(start, min(piece, table.num_rows - start)), max_chunksize=65_536)
    tmp.rename(path)
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def _by_split(table: pa.Table, rows: npt.NDArray[np.int64], rule: str) -> dict[str, pa.Table]:
    """The records `table[rows]` split by `rule` on the last decimal digit of their id's first 7 hex digits (8/1/1:
    0-7 train, 8 validation, 9 test; each split in the order of `rows`), taken in one pass and sliced: one copy of
    the version."""
    import numpy as np

    from swcdata.core.arrow import int64s

    ids = table.column("id").take(int64s(rows)).to_pylist()
    digit_to_split = SPLIT_RULES[rule]
    which = np.array([digit_to_split[int(i[:7], 16) % 10] for i in ids], dtype=np.int64)
    every = _take(table, rows[np.argsort(which, kind="stable")])
    bounds = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=3))]).tolist()
    return {name: every.slice(bounds[k], bounds[k + 1] - bounds[k])
            for k, name in enumerate(("train", "validation", "test"))}


def publish_versions(rows: int, corpus: Path, home: Path, name: str) -> dict[str, Any]:
    """(In the NEW checkout's process.) Publish `name@v1` and `name@v2` from the first `rows` lines of `corpus`."""
    import numpy as np
    import pyarrow as pa

    from swcdata.core.arrow import bools
    from swcdata.registry.store import Registry

    t0 = time.perf_counter()
    table = load_mapped(corpus, rows, home.parent)
    loaded = time.perf_counter() - t0
    n = table.num_rows
    nb = n - n // 100  # v1: the first 99 %; the last 1 % is what v2 adds
    reg = Registry(home)
    rule = split_rule(rows)
    if rule == POSITIONAL:  # (the disk holds the corpus, its Arrow copy, v2's input and two versions otherwise)
        corpus.unlink()
        m1, _ = reg.publish(name, _by_position(table.slice(0, nb)))
        v2 = _v2_mapped(table, nb, home.parent)
        m2, _ = reg.publish(name, _by_position(v2), {"parent": m1.ref})
        del v2
        (home.parent / f".v2-{table.num_rows}.arrow").unlink()
        return {"valid": n, "rule": rule, "v1": m1.ref, "v1_rows": nb, "v2": m2.ref, "v2_rows": m2.records,
                "load_s": round(loaded, 1), "total_s": round(time.perf_counter() - t0, 1)}
    m1, _ = reg.publish(name, _by_split(table, np.arange(nb, dtype=np.int64), rule))
    k = np.arange(nb)
    dropped, edited = k % 100 == 17, k % 100 == 53
    ed = _edited(table.slice(0, nb).filter(bools(edited)))
    both = pa.concat_tables([table, ed])  # (no copy: chunks side by side)
    v2_rows = np.concatenate([np.flatnonzero(~dropped & ~edited), n + np.arange(ed.num_rows), np.arange(nb, n)])
    m2, _ = reg.publish(name, _by_split(both, v2_rows, rule), {"parent": m1.ref})
    return {"valid": n, "rule": rule, "v1": m1.ref, "v1_rows": nb, "v2": m2.ref, "v2_rows": len(v2_rows),
            "load_s": round(loaded, 1), "total_s": round(time.perf_counter() - t0, 1)}


# --- the split-assignment driver -----------------------------------------------------------------------------------


def assign_inputs(rows: int) -> tuple[Any, list[str], list[str]]:
    import numpy as np

    rng = np.random.default_rng(21)
    names = [f"SWC-{k}" for k in range(100, 137)]
    ids = [f"{x:016x}" for x in rng.integers(0, 2**63, rows).tolist()]
    cats = [names[k] for k in rng.integers(0, len(names), rows).tolist()]
    sizes = rng.integers(2, 21, rows // 20)
    sizes = sizes[np.cumsum(sizes) <= rows // 10]  # 10 % of the records in groups of 2 to 20
    members = rng.permutation(rows)[: int(sizes.sum())]
    groups = np.arange(rows, dtype=np.int64)
    groups[members] = members[np.repeat(np.cumsum(sizes) - sizes, sizes)]  # (a group is named by its first member)
    return groups, cats, ids


def run_assign(rows: int, columns: str) -> dict[str, Any]:
    import numpy as np

    from swcdata.steps.split import assign_groups

    t0 = time.perf_counter()
    groups, cats, ids = assign_inputs(rows)
    if columns == "arrow":
        from swcdata.core.arrow import strings

        cats_in, ids_in = strings(cats), strings(ids)
        del cats, ids
    else:
        cats_in, ids_in = cats, ids  # type: ignore[assignment]
    built = time.perf_counter() - t0
    t = time.perf_counter()
    which = assign_groups(groups, cats_in, ids_in, (0.8, 0.1, 0.1), 0, True)
    inner = time.perf_counter() - t
    return {"rows": rows, "groups": len(np.unique(groups)), "inputs_s": round(built, 2),
            "inner_s": round(inner, 3), "sizes": np.bincount(which, minlength=3).tolist(),
            "sha256": hashlib.sha256(np.ascontiguousarray(which, dtype=np.int64).tobytes()).hexdigest()}


# --- the run -------------------------------------------------------------------------------------------------------


def mem(r: dict[str, Any]) -> str:
    return f"{r['peak_rss_mb']:,.0f} MB ({r.get('anon_peak_mb', 0):,.0f} MB)"


def same_text(row: dict[str, Any]) -> str:
    if not row["same"]:
        return "NO"
    keys = sorted({k.split(".")[-1] for k in row.get("new_keys", [])})
    return f"yes (new adds {', '.join(keys)})" if keys else "yes"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    p_pub = sub.add_parser("publish", help="(internal) publish bench versions")
    p_pub.add_argument("--rows", type=int, required=True)
    p_pub.add_argument("--corpus", type=Path, required=True)
    p_pub.add_argument("--home", type=Path, required=True)
    p_pub.add_argument("--name", required=True)
    p_as = sub.add_parser("assign", help="(internal) time assign_groups")
    p_as.add_argument("--rows", type=int, required=True)
    p_as.add_argument("--columns", choices=("lists", "arrow"), default="lists")
    ap.add_argument("--old", type=Path, default=Path("/tmp/wt-21base"))
    ap.add_argument("--new", type=Path, default=REPO)
    ap.add_argument("--sizes", default="1m", help="stats and diff sizes (e.g. 1m,4m)")
    ap.add_argument("--new-only", default="", help="sizes of --sizes measured on the new side only (the old side "
                    "holds about 3.9 GB per 1M records in stats and diff: 39 GB at 10M)")
    ap.add_argument("--assign-sizes", default="1m,10m")
    ap.add_argument("--only", default="stats,diff,assign")
    ap.add_argument("--data", type=Path, default=REPO / "bench" / ".data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/swcdata-analytics"))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--prepare-only", action="store_true", help="make the corpora and versions, measure nothing")
    ap.add_argument("--rss-cap-mb", type=float, default=None, help="kill a measurement whose process tree passes "
                    "this RSS (default: 70 %% of the machine's memory)")
    args = ap.parse_args()
    if args.cmd == "publish":
        print(json.dumps(publish_versions(args.rows, args.corpus, args.home, args.name)))
        return
    if args.cmd == "assign":
        print(json.dumps(run_assign(args.rows, args.columns)))
        return

    only = set(args.only.split(","))
    import psutil

    cap = args.rss_cap_mb or 0.7 * psutil.virtual_memory().total / 2**20
    home = (args.data / "registry").resolve()
    home.mkdir(parents=True, exist_ok=True)
    sides = {"old": args.old.resolve(), "new": args.new.resolve()}
    for name, ck in sides.items():
        prove_imports(name, ck, home)
    me = str(Path(__file__).resolve())
    results: list[dict[str, Any]] = []
    info: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "sides": {
        k: str(v) for k, v in sides.items()}, "published": {}}

    def versions(rows: int, name: str) -> None:
        if (home / name / "v2" / "manifest.json").exists():
            return
        corpus = corpus_file(args.data, max(rows, 1_000_000), sides["new"])
        print(f"publishing {name}@v1, @v2 from {corpus} ...", file=sys.stderr)
        r = measured([sys.executable, me, "publish", "--rows", str(rows), "--corpus", str(corpus), "--home",
                      str(home), "--name", name], side_env(sides["new"], home), args.work / f"publish-{name}",
                     cap_mb=cap)
        if r["rc"]:
            sys.exit(f"FATAL: publishing {name} failed:\n{r['stderr_tail']}")
        info["published"][name] = {**json.loads(r["stdout"]), "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}

    def commands(name: str) -> dict[str, list[str]]:
        py = [sys.executable, "-m", "swcdata"]
        return {"stats": [*py, "stats", f"{name}@v2", "--json"],
                "diff": [*py, "diff", f"{name}@v1", f"{name}@v2", "--json"]}

    if only & {"stats", "diff"}:
        versions(2_000, "bench-tiny")
        for side, ck in sides.items():  # the smoke test: both sides read the new side's versions
            for what, cmd in commands("bench-tiny").items():
                if what not in only:
                    continue
                r = measured(cmd, side_env(ck, home), args.work / f"smoke-{what}-{side}", timeout=600)
                if r["rc"] != 0:
                    sys.exit(f"FATAL: the {side} side's {what} fails on bench-tiny (rc {r['rc']}):\n{r['stderr_tail']}")
        for size in [parse_size(s) for s in args.sizes.split(",") if s]:
            name = f"bench-{size_name(size)}"
            versions(size, name)
            for what, cmd in commands(name).items():
                if what not in only or args.prepare_only:
                    continue
                row: dict[str, Any] = {"measure": what, "size": size_name(size)}
                outs: dict[str, Any] = {}
                for side, ck in sides.items():
                    if side == "old" and size_name(size) in args.new_only.split(","):
                        row[side], outs[side] = {"skipped": True, "wall_s": 0.0, "peak_rss_mb": 0.0, "rc": 0}, None
                        continue
                    print(f"{what} {name} {side} ...", file=sys.stderr, flush=True)
                    r = measured(cmd, side_env(ck, home), args.work / f"{what}-{name}-{side}", cap_mb=cap)
                    row[side] = {k: v for k, v in r.items() if k != "stdout"}
                    outs[side] = normalized(json.loads(r["stdout"])) if r["rc"] == 0 else None
                    if r["capped"]:
                        print(f"  killed: its RSS passed the cap of {cap:,.0f} MB", file=sys.stderr, flush=True)
                    print(f"  {r['wall_s']} s, {r['peak_rss_mb']} MB (anon {r['anon_peak_mb']} MB), rc {r['rc']}",
                          file=sys.stderr, flush=True)
                both = outs["old"] is not None and outs["new"] is not None
                same, added = compare(outs["old"], outs["new"]) if both else (False, set())
                row["same"] = same
                row["new_keys"] = sorted(added)
                row["command"] = " ".join(["swcdata", *cmd[3:]])
                results.append(row)
    if "assign" in only and not args.prepare_only:
        for size in [parse_size(s) for s in args.assign_sizes.split(",") if s]:
            row = {"measure": "assign", "size": size_name(size)}
            digests = {}
            for side, ck, cols in (("old", sides["old"], "lists"), ("new", sides["new"], "lists"),
                                   ("new_arrow", sides["new"], "arrow")):
                print(f"assign {size_name(size)} {side} ...", file=sys.stderr, flush=True)
                r = measured([sys.executable, me, "assign", "--rows", str(size), "--columns", cols],
                             side_env(ck, home), args.work / f"assign-{size_name(size)}-{side}")
                if r["rc"]:
                    sys.exit(f"FATAL: assign {side} failed:\n{r['stderr_tail']}")
                got = json.loads(r["stdout"])
                digests[side] = got["sha256"]
                row[side] = {**{k: v for k, v in r.items() if k != "stdout"}, **got}
                print(f"  call {got['inner_s']} s, process {r['wall_s']} s, {r['peak_rss_mb']} MB", file=sys.stderr,
                      flush=True)
            row["same"] = len(set(digests.values())) == 1
            row["command"] = f"python bench/analytics.py assign --rows {size}"
            results.append(row)

    print(f"\n{info['date']}; {info['machine']}; old {sides['old']}, new {sides['new']}\n")
    print("| measure | rows | old wall | new wall | old/new | old peak RSS (anon) | new peak RSS (anon) | old/new RSS "
          "| same output |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in results:
        o, n = row["old"], row["new"]
        if row["measure"] == "assign":
            ow, nw = o["inner_s"], n["inner_s"]
            a = row["new_arrow"]
            extra = f" (Arrow columns: {a['inner_s']:.2f} s)"
        else:
            ow, nw, extra = o["wall_s"], n["wall_s"], ""
        if o.get("skipped"):
            print(f"| {row['measure']} | {row['size']} | not run | {nw:.2f} s | - | - | {mem(n)} | - | - |")
            continue
        if o.get("capped") or n.get("capped") or o.get("rc") or n.get("rc"):
            def cell(r: dict[str, Any]) -> str:
                return (f"killed at the {cap:,.0f} MB cap after {r['wall_s']:.0f} s" if r.get("capped")
                        else f"{r['wall_s']:.2f} s (rc {r['rc']})" if r.get("rc") else f"{r['wall_s']:.2f} s")
            print(f"| {row['measure']} | {row['size']} | {cell(o)} | {cell(n)} | - | {mem(o)} | {mem(n)} | - | - |")
            continue
        print(f"| {row['measure']} | {row['size']} | {ow:.2f} s | {nw:.2f} s{extra} | {ow / max(nw, 1e-9):.1f}x "
              f"| {mem(o)} | {mem(n)} | "
              f"{o['peak_rss_mb'] / max(n['peak_rss_mb'], 1e-9):.1f}x | {same_text(row)} |")
    for name, p in info["published"].items():
        print(f"\npublished {name}: {p}")
    if args.json:
        args.json.write_text(json.dumps({**info, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
