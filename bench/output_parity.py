"""Prove that two checkouts of swcdata (an OLD commit and a NEW one, e.g. before and after a refactor) give the
same outputs for `validate`, `dedup`, `split` and `build`, on the real seed corpus and on a generated corpus.

    python bench/output_parity.py --old OLD_CHECKOUT --new NEW_CHECKOUT [--records 100000] [--work DIR]
        [--markdown] [--seed-only] [--allow-key-rename OLD=NEW ...] [--seed-dir DIR]

A checkout is a folder holding `swcdata/` with its C extension built in it (`setup.py build_ext --inplace`; the
`_fast*.so` may lie anywhere under swcdata/). For a commit: `git worktree add /tmp/wt-old <commit>`, then
`cd /tmp/wt-old && python setup.py -q build_ext --inplace`.

How each side runs: `env PYTHONPATH=<checkout> PYTHONSAFEPATH=1 <this python> -m swcdata ...` in its own scratch
folder (`<work>/<dataset>/old|new`; relative output names, so no scratch path enters the data), with every
`SWCDATA_*` variable of the caller's environment removed. --work (default /tmp/swcdata-output-parity) holds the
scratch folders, the generated corpus and the build config; each dataset's folder is replaced at every run, and a
non-empty --work this script did not make is refused. Before any command, each side proves where it imports
from: `python -c "import swcdata; print(swcdata.__file__)"` under the same environment must name the checkout's
swcdata/ (not the editable install of the venv), and every `_fast*.so` under the checkout's swcdata/ must import
from there. The script fails loudly otherwise (FATAL on stderr, exit code 2).

Inputs, the same files for both sides (never copied into a repository):
  - `seed`: every /work/shared/seed-data/*.jsonl (--seed-dir), by absolute path;
  - `corpus-N`: N records (--records, default 100,000; skipped with --seed-only) generated ONCE per run with the
    OLD checkout's bench/corpus.py (`--seed 0 --seed-dir SEED_DIR`, run in the old checkout), in <work>/corpus/.

The commands, per dataset and side (options at their defaults unless named; the split seed is the default one,
so a changed default shows):
  1. validate INPUTS --out clean.jsonl --quarantine q.jsonl --report validate.json --json
  2. dedup clean.jsonl --out dedup.jsonl --report dedup.json --json
     (writes dedup.removed.parquet and dedup.clusters.parquet beside dedup.json)
  3. split dedup.jsonl --out splitdir --report split.json --json
  4. build --config <work>/config/swcdata.toml --set inputs=[INPUTS] --home registry --json
     (the OLD checkout's swcdata.toml, copied once and shared, with its inputs replaced by the dataset's files)

What is compared, each a PASS or FAIL line (exit code 1 on any FAIL):
  - exit codes: the same on both sides, and an expected one (validate 0 or 1: the seed data has errors; else 0);
  - data files, byte for byte (sha256; a JSONL difference names its first differing line): clean.jsonl,
    q.jsonl, dedup.jsonl, splitdir/{train,validation,test}.jsonl, and every file of each published registry
    version except manifest.json (the Arrow shards, dataset_info.json, state.json, dataset_dict.json,
    removed/*.parquet); the same set of files on both sides;
  - Parquet and Arrow rows: dedup.removed.parquet, dedup.clusters.parquet, each split's Arrow shards and each
    removed/<kind>.parquet of a registry version: the same schema (a column only on one side is a FAIL) and the
    same rows in the same order;
  - JSON, after `normalize` (below), compared key by key: the three --report files and the --json stdout of
    every command (the build's result: content hash, ledger, counts, contamination, findings), each version's
    manifest.json (the digests of its data files, row counts, splits, every step's config and summary, seed,
    license, lineage: parent, inputs with their sha256, ledger, the removed lists' counts and paths) and the
    registry log.jsonl. A key present on one side only is a FAIL naming its path (`ledger.balanced: old only`);
    a documented rename is declared with --allow-key-rename OLD=NEW (repeatable): the old side's key OLD (a key
    name, or a dotted path suffix such as `ledger.balanced`) is renamed NEW before comparing, so the values are
    still compared. Objects compare as mappings: the same keys in another order pass, with a note naming where.

What is ignored (`normalize` drops these keys wherever they appear, and each comparison prints the ones it
dropped; see VOLATILE_KEYS and VOLATILE_PATHS):
  - timings: seconds, elapsed, elapsed_s, duration, duration_s, durations, wall_s, timings, records_per_second;
  - timestamps: created_at, logged_at, timestamp, started_at, finished_at;
  - which code ran: backend ("c", "python"; printed as a note when the two sides differ);
  - the tool's version and git state: tool_version, git, git_commit, git_sha, git_describe, and the
    validate report's top-level `version` (swcdata's version; the build's `version` is the registry version
    number and is compared);
  - host information: host, hostname, platform, python_version, cpu_count;
  - the manifest digests manifest_digest and parent_digest: sha256 over manifest fields that include
    created_at, so they differ on every publish (the data they stand for is compared file by file above).
  Absolute paths differing only by the side: every string has the side's scratch folder replaced by
  `<scratch>` and its checkout folder by `<checkout>` before comparing (counted in the detail).

Not compared: stderr (progress, warnings), the wall times (printed as a table, for information).

bench/RESULTS.md's table: the same command with --markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

MARKER = ".output-parity-work"  # a --work folder holds this file; a foreign non-empty folder is refused
MAX_DIFFS = 8  # differences listed per failed check (all are counted)

# Keys dropped wherever they appear (any depth), with the reason. Everything else is compared.
VOLATILE_KEYS: dict[str, str] = {
    **dict.fromkeys(("seconds", "elapsed", "elapsed_s", "duration", "duration_s", "durations", "wall_s", "timings",
                     "records_per_second"), "timing"),
    **dict.fromkeys(("created_at", "logged_at", "timestamp", "started_at", "finished_at"), "timestamp"),
    "backend": "which code ran (C extension or Python)",
    **dict.fromkeys(("tool_version", "git", "git_commit", "git_sha", "git_describe"), "tool version / git state"),
    **dict.fromkeys(("host", "hostname", "platform", "python_version", "cpu_count"), "host information"),
    **dict.fromkeys(("manifest_digest", "parent_digest"), "digest over fields that include created_at"),
}
# Keys dropped at one dotted path from the root of one kind of JSON only (the same name elsewhere is compared).
VOLATILE_PATHS: dict[str, tuple[str, ...]] = {
    "validate": ("version",),  # swcdata's __version__ (a build result's `version` is the registry version: compared)
}


def fatal(message: str) -> NoReturn:
    """A run that cannot prove anything (a checkout that does not import from itself, no inputs): exit 2."""
    print(f"FATAL {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


@dataclass
class Check:
    dataset: str
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Side:
    label: str  # "old" | "new"
    checkout: Path
    scratch: Path = Path()
    times: dict[str, float] = field(default_factory=dict)
    backends: set[str] = field(default_factory=set)


@dataclass
class Rename:
    parents: tuple[str, ...]  # the path suffix the key must sit under (empty: anywhere)
    old: str
    new: str
    applied: int = 0

    @classmethod
    def parse(cls, spec: str) -> Rename:
        if spec.count("=") != 1:
            fatal(f"--allow-key-rename {spec!r}: expected OLD=NEW, e.g. ledger.balanced=adds_up")
        a, b = (s.strip() for s in spec.split("="))
        pa_, pb = a.split("."), b.split(".")
        if not all(pa_) or not all(pb) or (len(pb) > 1 and pb[:-1] != pa_[:-1]):
            fatal(f"--allow-key-rename {spec!r}: NEW is a key name, or the same dotted path as OLD "
                             "with another last key")
        return cls(tuple(pa_[:-1]), pa_[-1], pb[-1])

    def __str__(self) -> str:
        return ".".join((*self.parents, self.old)) + f" -> {self.new}"


# ---- normalising and comparing JSON ------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def normalize(obj: Any, *, kind: str = "", replace: tuple[tuple[str, str], ...] = (),
              dropped: Counter[str] | None = None, rewritten: Counter[str] | None = None, _path: str = "") -> Any:
    """`obj` with the volatile keys removed: every key named in VOLATILE_KEYS (at any depth) and the root-anchored
    dotted paths VOLATILE_PATHS[kind]. Each dropped key's path (list indices as `[]`) is counted in `dropped`.
    In every string, each (old, placeholder) of `replace` is substituted (a side's scratch and checkout folders);
    the strings changed are counted in `rewritten`."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            p = _join(_path, str(k))
            if k in VOLATILE_KEYS or p in VOLATILE_PATHS.get(kind, ()):
                if dropped is not None:
                    dropped[p] += 1
                continue
            out[k] = normalize(v, kind=kind, replace=replace, dropped=dropped, rewritten=rewritten, _path=p)
        return out
    if isinstance(obj, list):
        return [normalize(v, kind=kind, replace=replace, dropped=dropped, rewritten=rewritten, _path=f"{_path}[]")
                for v in obj]
    if isinstance(obj, str) and replace:
        s = obj
        for old, new in replace:
            if old in s:
                s = s.replace(old, new)
        if s != obj and rewritten is not None:
            rewritten[_path] += 1
        return s
    return obj


def apply_renames(obj: Any, renames: list[Rename], _parts: tuple[str, ...] = ()) -> Any:
    """The old side's `obj` with each declared rename applied (a key OLD under the rename's parent path suffix
    becomes NEW, its value kept)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            name = k
            for r in renames:
                if k == r.old and (not r.parents or _parts[-len(r.parents):] == r.parents) and r.new not in obj:
                    name = r.new
                    r.applied += 1
                    break
            out[name] = apply_renames(v, renames, (*_parts, str(k)))
        return out
    if isinstance(obj, list):
        return [apply_renames(v, renames, _parts) for v in obj]
    return obj


def _short(v: Any, n: int = 80) -> str:
    s = orjson.dumps(v, default=str).decode()
    return s if len(s) <= n else s[: n - 1] + "…"


def diff(old: Any, new: Any, path: str = "", order: list[str] | None = None) -> Iterator[str]:
    """Every difference between two normalised JSON values: `path: old only`, `path: new only`,
    `path: OLD != NEW`, `path: N items != M items`. Objects are compared as mappings: the same keys in another
    order are no difference, but are noted in `order` (when given)."""
    here = path or "(root)"
    if isinstance(old, dict) and isinstance(new, dict):
        for k in old:
            if k not in new:
                yield f"{_join(path, k)}: old only"
        for k in new:
            if k not in old:
                yield f"{_join(path, k)}: new only"
        for k in old:
            if k in new:
                yield from diff(old[k], new[k], _join(path, k), order)
        if order is not None and [k for k in old if k in new] != [k for k in new if k in old]:
            order.append(here)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            yield f"{here}: {len(old):,} items != {len(new):,} items"
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            yield from diff(a, b, f"{path}[{i}]", order)
    elif type(old) is not type(new) or old != new:
        yield f"{here}: {_short(old)} != {_short(new)}"


# ---- the checks --------------------------------------------------------------------------------------------


class Comparer:
    """Collects the checks of one run; each method compares one pair of outputs."""

    def __init__(self, renames: list[Rename], verbose: bool = True) -> None:
        self.checks: list[Check] = []
        self.renames = renames
        self.verbose = verbose

    def add(self, dataset: str, name: str, ok: bool, detail: str = "") -> None:
        c = Check(dataset, name, bool(ok), detail)
        self.checks.append(c)
        if self.verbose:
            print(f"{'PASS' if c.ok else 'FAIL'}  {dataset}/{name}" + (f"  ({detail})" if detail else ""), flush=True)

    def missing(self, dataset: str, name: str, paths: dict[str, Path]) -> bool:
        gone = [s for s, p in paths.items() if not p.exists()]
        if gone:
            self.add(dataset, name, False, f"missing on the {' and '.join(gone)} side: "
                     + ", ".join(str(paths[s]) for s in gone))
        return bool(gone)

    def json_values(self, dataset: str, name: str, kind: str, values: dict[str, Any], sides: dict[str, Side]) -> None:
        dropped: Counter[str] = Counter()
        rewritten: Counter[str] = Counter()
        norm = {}
        for s, v in values.items():
            side = sides[s]
            replace = tuple((str(p), ph) for p, ph in ((side.scratch, "<scratch>"), (side.checkout, "<checkout>"),
                                                        (side.scratch.resolve(), "<scratch>"),
                                                        (side.checkout.resolve(), "<checkout>")))
            for b in _backends(v):
                side.backends.add(b)
            v = apply_renames(v, self.renames) if s == "old" else v
            norm[s] = normalize(v, kind=kind, replace=replace, dropped=dropped, rewritten=rewritten)
        order: list[str] = []
        diffs = list(diff(norm["old"], norm["new"], order=order))
        ignored = sorted({re.sub(r"\[\d+\]", "[]", p) for p in dropped})
        bits = []
        if order:
            bits.append("note: the same keys in another order at " + ", ".join(order[:4]))
        if ignored:
            bits.append("ignored: " + ", ".join(ignored[:12]) + (f", +{len(ignored) - 12} more" if len(ignored) > 12
                                                                  else ""))
        if rewritten:
            bits.append(f"{sum(rewritten.values())} path string(s) rewritten")
        if diffs:
            shown = "; ".join(diffs[:MAX_DIFFS]) + (f"; +{len(diffs) - MAX_DIFFS} more" if len(diffs) > MAX_DIFFS
                                                    else "")
            self.add(dataset, name, False, f"{len(diffs)} difference(s): {shown}" + (f"; {'; '.join(bits)}"
                                                                                      if bits else ""))
        else:
            self.add(dataset, name, True, "equal" + (f"; {'; '.join(bits)}" if bits else ""))

    def json_files(self, dataset: str, name: str, kind: str, paths: dict[str, Path], sides: dict[str, Side],
                   jsonl: bool = False) -> None:
        if self.missing(dataset, name, paths):
            return
        values: dict[str, Any] = {}
        for s, p in paths.items():
            try:
                raw = p.read_bytes()
                values[s] = [orjson.loads(x) for x in raw.splitlines() if x.strip()] if jsonl else orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                self.add(dataset, name, False, f"{s} side: not JSON ({e})")
                return
        self.json_values(dataset, name, kind, values, sides)

    def stdout_json(self, dataset: str, name: str, kind: str, stdouts: dict[str, bytes],
                    sides: dict[str, Side]) -> None:
        values: dict[str, Any] = {}
        for s, raw in stdouts.items():
            try:
                values[s] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.add(dataset, name, False, f"{s} side: stdout is not one JSON value ({_short(raw[:200])})")
                return
        self.json_values(dataset, name, kind, values, sides)

    def bytes_equal(self, dataset: str, name: str, paths: dict[str, Path]) -> None:
        if self.missing(dataset, name, paths):
            return
        h = {s: _sha256(p) for s, p in paths.items()}
        size = {s: p.stat().st_size for s, p in paths.items()}
        if h["old"] == h["new"]:
            lines = _count_lines(paths["old"]) if paths["old"].suffix == ".jsonl" else None
            self.add(dataset, name, True, "byte-identical: " + (f"{lines:,} lines, " if lines is not None else "")
                     + f"{size['old']:,} B, sha256 {h['old'][:12]}")
            return
        detail = f"bytes differ: {size['old']:,} B sha256 {h['old'][:12]} != {size['new']:,} B sha256 {h['new'][:12]}"
        if paths["old"].suffix == ".jsonl":
            detail += "; " + _first_line_difference(paths["old"], paths["new"])
        self.add(dataset, name, False, detail)

    def tables(self, dataset: str, name: str, tables: dict[str, pa.Table]) -> None:
        """The same schema and the same rows, in the same order."""
        old, new = tables["old"], tables["new"]
        rows = f"{old.num_rows:,} rows x {old.num_columns} columns"
        if not old.schema.equals(new.schema, check_metadata=False):
            o = {f.name: str(f.type) for f in old.schema}
            n = {f.name: str(f.type) for f in new.schema}
            diffs = [f"{c}: old only" for c in o if c not in n] + [f"{c}: new only" for c in n if c not in o]
            diffs += [f"{c}: {o[c]} != {n[c]}" for c in o if c in n and o[c] != n[c]]
            if list(o) != list(n) and not diffs:
                diffs.append(f"column order {list(o)} != {list(n)}")
            self.add(dataset, name, False, "schema differs: " + "; ".join(diffs[:MAX_DIFFS]))
            return
        if old.num_rows != new.num_rows:
            self.add(dataset, name, False, f"{old.num_rows:,} rows != {new.num_rows:,} rows")
            return
        if old.equals(new):
            self.add(dataset, name, True, f"same rows: {rows}")
            return
        step = 10_000
        for start in range(0, old.num_rows, step):
            a, b = old.slice(start, step).to_pylist(), new.slice(start, step).to_pylist()
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                if x != y:
                    cols = [k for k in x if x.get(k) != y.get(k)]
                    self.add(dataset, name, False, f"{rows}; first differing row {start + i:,}, columns {cols}: "
                             + "; ".join(f"{k}: {_short(x.get(k), 60)} != {_short(y.get(k), 60)}" for k in cols[:3]))
                    return
        self.add(dataset, name, False, f"{rows}; Table.equals is false, but every row compares equal (types?)")

    def parquet(self, dataset: str, name: str, paths: dict[str, Path]) -> None:
        if self.missing(dataset, name, paths):
            return
        self.tables(dataset, name, {s: pq.read_table(p) for s, p in paths.items()})


def _backends(v: Any) -> Iterator[str]:
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "backend" and isinstance(x, str):
                yield x
            else:
                yield from _backends(x)
    elif isinstance(v, list):
        for x in v:
            yield from _backends(x)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _first_line_difference(a: Path, b: Path) -> str:
    with a.open("rb") as fa, b.open("rb") as fb:
        for n, (x, y) in enumerate(zip(fa, fb, strict=False), 1):
            if x != y:
                at = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
                lo = max(0, at - 40)
                return (f"first difference at line {n:,}, byte {at}: old …{x[lo:at + 40]!r}… "
                        f"new …{y[lo:at + 40]!r}…")
    la, lb = _count_lines(a), _count_lines(b)
    return f"one file is a prefix of the other ({la:,} lines old, {lb:,} new)"


# ---- running the two checkouts -----------------------------------------------------------------------------


def side_env(checkout: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWCDATA_") and k not in ("PYTHONPATH",
                                                                                           "PYTHONHOME")}
    env["PYTHONPATH"] = str(checkout)
    env["PYTHONSAFEPATH"] = "1"
    return env


def verify_import(side: Side) -> list[str]:
    """Prove that `swcdata` and its C extension come from the side's checkout; lines to print, or exit 2 (`fatal`)."""
    pkg = (side.checkout / "swcdata").resolve()
    env = side_env(side.checkout)
    r = subprocess.run([sys.executable, "-c", "import swcdata; print(swcdata.__file__)"], cwd=side.scratch, env=env,
                       capture_output=True, text=True)
    where = Path(r.stdout.strip()).resolve() if r.returncode == 0 and r.stdout.strip() else None
    if where is None or not where.is_relative_to(pkg):
        fatal(f"{side.label}: `import swcdata` with PYTHONPATH={side.checkout} did not come from "
                         f"{pkg}: {r.stdout.strip() or r.stderr.strip()[-500:]}")
    sos = sorted(p for p in pkg.rglob("_fast*.so") if "__pycache__" not in p.parts)
    if not sos:
        fatal(f"{side.label}: no compiled _fast*.so under {pkg} (build it: cd {side.checkout} && "
                         f"{sys.executable} setup.py -q build_ext --inplace)")
    lines = [f"{side.label}: swcdata from {where}"]
    for so in sos:
        mod = ".".join(("swcdata", *so.relative_to(pkg).parent.parts, so.name.split(".")[0]))
        probe = f"import importlib; print(importlib.import_module({mod!r}).__file__)"
        r = subprocess.run([sys.executable, "-c", probe], cwd=side.scratch, env=env, capture_output=True, text=True)
        got = Path(r.stdout.strip()).resolve() if r.returncode == 0 and r.stdout.strip() else None
        if got != so.resolve():
            fatal(f"{side.label}: {mod} did not import from {so}: "
                             f"{r.stdout.strip() or r.stderr.strip()[-500:]}")
        lines.append(f"{side.label}: extension {mod} from {so}")
    return lines


def run_cli(side: Side, step: str, args: list[str]) -> tuple[int, bytes]:
    """`python -m swcdata ARGS` for one side in its scratch folder: (exit code, stdout). stderr goes to a file."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "swcdata", *args], cwd=side.scratch, env=side_env(side.checkout),
                       capture_output=True)
    side.times[step] = time.perf_counter() - t
    (side.scratch / f"{step}.stdout").write_bytes(r.stdout)
    (side.scratch / f"{step}.stderr").write_bytes(r.stderr)
    return r.returncode, r.stdout


def _rmtree(path: Path) -> None:
    """Remove a scratch folder (registry versions are made read-only: their folders are made writable first)."""
    if path.exists():
        for d, _dirs, _files in os.walk(path):
            os.chmod(d, os.stat(d).st_mode | stat.S_IRWXU)
        shutil.rmtree(path)


def prepare_work(work: Path) -> None:
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        fatal(f"--work {work}: not empty and not made by this script (no {MARKER}); pick another")
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()


def generate_corpus(old: Path, records: int, seed_dir: Path, work: Path) -> tuple[Path, float]:
    """N records from the OLD checkout's bench/corpus.py (run in the old checkout), once for both sides."""
    gen = old / "bench" / "corpus.py"
    if not gen.exists():
        fatal(f"no generator {gen}")
    out = work / "corpus" / f"corpus-{records}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "bench/corpus.py", "--records", str(records), "--out", str(out), "--seed",
                        "0", "--seed-dir", str(seed_dir)], cwd=old, env=side_env(old), capture_output=True, text=True)
    if r.returncode != 0:
        fatal(f"{gen} failed (exit {r.returncode}): {r.stderr.strip()[-1000:]}")
    return out, time.perf_counter() - t


def build_config(old: Path, work: Path) -> Path:
    """The OLD checkout's swcdata.toml, copied once into <work>/config/ (the same config and base folder for both
    sides; its inputs are replaced by --set)."""
    src = old / "swcdata.toml"
    if not src.exists():
        fatal(f"no build config {src}")
    dst = work / "config" / "swcdata.toml"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _toml_list(paths: list[Path]) -> str:
    return "[" + ", ".join(orjson.dumps(str(p)).decode() for p in paths) + "]"


def _version_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _arrow_split(folder: Path) -> pa.Table:
    shards = sorted(folder.glob("data-*.arrow"))
    tables = []
    for s in shards:
        with pa.OSFile(str(s)) as f:
            tables.append(pa.ipc.open_stream(f).read_all())
    return pa.concat_tables(tables) if tables else pa.table({})


def compare_registry(cmp: Comparer, dataset: str, sides: dict[str, Side]) -> None:
    """Every published version of the two registries: files, bytes, Arrow rows per split, removed lists, manifest;
    and each name's log."""
    homes = {s: side.scratch / "registry" for s, side in sides.items()}
    if cmp.missing(dataset, "build: registry", homes):
        return
    names = {s: sorted(p.name for p in h.iterdir() if p.is_dir() and not p.name.startswith(".")) for s, h in
             homes.items()}
    if names["old"] != names["new"] or not names["old"]:
        cmp.add(dataset, "build: registry names", False, f"{names['old']} != {names['new']}")
        return
    for name in names["old"]:
        versions = {s: sorted(p.name for p in (h / name).iterdir() if p.is_dir() and re.fullmatch(r"v\d+", p.name))
                    for s, h in homes.items()}
        if versions["old"] != versions["new"]:
            cmp.add(dataset, f"build: {name} versions", False, f"{versions['old']} != {versions['new']}")
            continue
        for v in versions["old"]:
            ref = f"{name}@{v}"
            folders = {s: h / name / v for s, h in homes.items()}
            files = {s: _version_files(f) for s, f in folders.items()}
            only = sorted(set(files["old"]) ^ set(files["new"]))
            cmp.add(dataset, f"build: {ref} files", not only,
                    f"{len(files['old'])} files" if not only else "only on one side: " + ", ".join(
                        f"{r} ({'old' if r in files['old'] else 'new'})" for r in only))
            data = [r for r in files["old"] if r in files["new"] and r != "manifest.json"]
            differ = [r for r in data if _sha256(files["old"][r]) != _sha256(files["new"][r])]
            cmp.add(dataset, f"build: {ref} data files byte-identical", not differ,
                    f"{len(data)} files (all but manifest.json)" if not differ else "differ: " + ", ".join(differ))
            dd = folders["old"] / "dataset_dict.json"
            splits = orjson.loads(dd.read_bytes()).get("splits", []) if dd.exists() else []
            for split in splits:
                split_dirs = {s: f / split for s, f in folders.items()}
                if not cmp.missing(dataset, f"build: {ref} {split} rows", split_dirs):
                    cmp.tables(dataset, f"build: {ref} {split} rows (Arrow)",
                               {s: _arrow_split(d) for s, d in split_dirs.items()})
            for r in sorted(x for x in files["old"] if x.startswith("removed/") and x.endswith(".parquet")):
                cmp.parquet(dataset, f"build: {ref} {r} rows", {s: f / r for s, f in folders.items()})
            cmp.json_files(dataset, f"build: {ref} manifest.json", "manifest",
                           {s: f / "manifest.json" for s, f in folders.items()}, sides)
        cmp.json_files(dataset, f"build: {name} log.jsonl", "log", {s: h / name / "log.jsonl" for s, h in
                                                                     homes.items()}, sides, jsonl=True)


def run_dataset(cmp: Comparer, dataset: str, inputs: list[Path], sides: dict[str, Side], config: Path,
                work: Path) -> None:
    """The four commands on both sides, then every comparison."""
    base = work / dataset
    _rmtree(base)
    for s, side in sides.items():
        side.scratch = base / s
        side.scratch.mkdir(parents=True)
        side.times = {}
        for line in verify_import(side):
            print(f"# {dataset}: {line}", flush=True)
    ins = [str(p) for p in inputs]
    commands: list[tuple[str, list[str], set[int]]] = [
        ("validate", ["validate", *ins, "--out", "clean.jsonl", "--quarantine", "q.jsonl", "--report",
                      "validate.json", "--json"], {0, 1}),
        ("dedup", ["dedup", "clean.jsonl", "--out", "dedup.jsonl", "--report", "dedup.json", "--json"], {0}),
        ("split", ["split", "dedup.jsonl", "--out", "splitdir", "--report", "split.json", "--json"], {0}),
        ("build", ["build", "--config", str(config), "--set", f"inputs={_toml_list(inputs)}", "--home", "registry",
                   "--json"], {0}),
    ]
    for step, args, expected in commands:
        results = {}
        for s, side in sides.items():
            print(f"# {dataset}: {s}: swcdata {step} ...", flush=True)
            results[s] = run_cli(side, step, args)
        rcs = {s: rc for s, (rc, _) in results.items()}
        bad = [s for s, rc in rcs.items() if rc not in expected]
        detail = f"old {rcs['old']}, new {rcs['new']}"
        if bad:
            detail += "; " + "; ".join(f"{s} stderr: {_tail(sides[s].scratch / f'{step}.stderr')}" for s in bad)
        cmp.add(dataset, f"{step}: exit code", rcs["old"] == rcs["new"] and not bad, detail)
        cmp.stdout_json(dataset, f"{step}: --json stdout", step, {s: out for s, (_, out) in results.items()}, sides)

    def pair(rel: str) -> dict[str, Path]:
        return {s: side.scratch / rel for s, side in sides.items()}

    cmp.bytes_equal(dataset, "validate: clean.jsonl", pair("clean.jsonl"))
    cmp.bytes_equal(dataset, "validate: q.jsonl", pair("q.jsonl"))
    cmp.json_files(dataset, "validate: validate.json", "validate", pair("validate.json"), sides)
    cmp.bytes_equal(dataset, "dedup: dedup.jsonl", pair("dedup.jsonl"))
    cmp.json_files(dataset, "dedup: dedup.json", "dedup", pair("dedup.json"), sides)
    for lst in ("removed", "clusters"):
        cmp.parquet(dataset, f"dedup: dedup.{lst}.parquet rows", pair(f"dedup.{lst}.parquet"))
    split_files = {s: sorted(p.name for p in (side.scratch / "splitdir").glob("*")) if (side.scratch / "splitdir")
                   .is_dir() else [] for s, side in sides.items()}
    cmp.add(dataset, "split: files", split_files["old"] == split_files["new"] and bool(split_files["old"]),
            f"{split_files['old']}" + ("" if split_files["old"] == split_files["new"] else f" != {split_files['new']}"))
    for name in split_files["old"]:
        cmp.bytes_equal(dataset, f"split: splitdir/{name}", pair(f"splitdir/{name}"))
    cmp.json_files(dataset, "split: split.json", "split", pair("split.json"), sides)
    compare_registry(cmp, dataset, sides)


def _tail(path: Path, n: int = 300) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return (text[-n:] if text else "(empty)").replace("\n", " | ")


# ---- main --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="the old checkout (a folder holding swcdata/)")
    ap.add_argument("--new", type=Path, required=True, help="the new checkout (a folder holding swcdata/)")
    ap.add_argument("--records", type=int, default=100_000, help="records of the generated corpus (100,000)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/swcdata-output-parity"),
                    help="scratch folder (default /tmp/swcdata-output-parity; its datasets' folders are replaced)")
    ap.add_argument("--seed-dir", type=Path, default=Path("/work/shared/seed-data"), help="the seed corpus")
    ap.add_argument("--seed-only", action="store_true", help="the seed corpus only, no generated corpus")
    ap.add_argument("--markdown", action="store_true", help="also print Markdown tables (for bench/RESULTS.md)")
    ap.add_argument("--allow-key-rename", action="append", default=[], metavar="OLD=NEW",
                    help="a documented key rename: the old side's key OLD (name or dotted path suffix) is compared "
                    "as NEW (repeatable)")
    args = ap.parse_args(argv)
    if args.records < 1:
        fatal(f"--records {args.records}: give a positive number (or --seed-only)")
    renames = [Rename.parse(r) for r in args.allow_key_rename]
    sides = {"old": Side("old", args.old.resolve()), "new": Side("new", args.new.resolve())}
    for side in sides.values():
        if not (side.checkout / "swcdata").is_dir():
            fatal(f"--{side.label} {side.checkout}: no swcdata/ folder in it")
    if sides["old"].checkout == sides["new"].checkout:
        print("WARNING: --old and --new are the same folder", file=sys.stderr)
    seed_files = sorted(args.seed_dir.glob("*.jsonl"))
    if not seed_files:
        fatal(f"no *.jsonl in {args.seed_dir}")
    work = args.work.resolve()
    prepare_work(work)
    config = build_config(sides["old"].checkout, work)
    new_toml = sides["new"].checkout / "swcdata.toml"
    if not new_toml.exists() or new_toml.read_bytes() != config.read_bytes():
        print(f"# NOTE: the new checkout's swcdata.toml differs from the old one's (or is absent); both sides build "
              f"with the old one's ({config})", flush=True)
    print(f"# python {sys.executable}; work {work}; ignored keys: {', '.join(VOLATILE_KEYS)}; "
          + "; ".join(f"{k} report root: {', '.join(v)}" for k, v in VOLATILE_PATHS.items()), flush=True)
    if renames:
        print("# declared key renames (old -> new): " + ", ".join(map(str, renames)), flush=True)

    cmp = Comparer(renames)
    walls: dict[str, float] = {}
    times: dict[str, dict[str, dict[str, float]]] = {}
    datasets: list[tuple[str, list[Path]]] = [("seed", seed_files)]
    gen_s = None
    if not args.seed_only:
        corpus, gen_s = generate_corpus(sides["old"].checkout, args.records, args.seed_dir, work)
        print(f"# generated {corpus} ({_count_lines(corpus):,} lines, {corpus.stat().st_size:,} B, "
              f"sha256 {_sha256(corpus)[:12]}) in {gen_s:.1f} s with the old checkout's bench/corpus.py", flush=True)
        datasets.append((f"corpus-{args.records}", [corpus]))
    for name, inputs in datasets:
        t = time.perf_counter()
        run_dataset(cmp, name, inputs, sides, config, work)
        walls[name] = time.perf_counter() - t
        times[name] = {s: dict(side.times) for s, side in sides.items()}
        back = {s: sorted(side.backends) for s, side in sides.items()}
        if back["old"] != back["new"]:
            print(f"# NOTE {name}: the reports name other backends (ignored): old {back['old']}, new {back['new']}")
        for side in sides.values():
            side.backends = set()

    ok = all(c.ok for c in cmp.checks)
    for r in renames:
        print(f"# declared rename {r}: applied to {r.applied} key(s) of the old side"
              + ("" if r.applied else " (NOTE: it matched nothing)"))
    print("\nwall times (s, each command as a subprocess):")
    for name in times:
        cells = ", ".join(f"{step} {times[name]['old'].get(step, float('nan')):.1f} / "
                          f"{times[name]['new'].get(step, float('nan')):.1f}" for step in times[name]["old"])
        print(f"  {name}: old / new: {cells}; dataset total (both sides and the checks) {walls[name]:.1f}")
    if args.markdown:
        print("\n| dataset | check | result | detail |\n| --- | --- | --- | --- |")
        for c in cmp.checks:
            detail = c.detail.replace("|", "\\|")
            print(f"| {c.dataset} | {c.name} | {'PASS' if c.ok else 'FAIL'} | {detail} |")
        print("\n| dataset | command | old s | new s |\n| --- | --- | --- | --- |")
        for name in times:
            for step in times[name]["old"]:
                print(f"| {name} | {step} | {times[name]['old'][step]:.1f} | "
                      f"{times[name]['new'].get(step, float('nan')):.1f} |")
    fails = [c for c in cmp.checks if not c.ok]
    print(f"\n{len(cmp.checks) - len(fails)} PASS, {len(fails)} FAIL" + (f" (corpus generated in {gen_s:.1f} s)"
                                                                          if gen_s is not None else ""))
    print("OUTPUT PARITY: PASS" if ok else "OUTPUT PARITY: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
