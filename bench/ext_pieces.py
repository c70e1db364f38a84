"""Each C piece's share of its command's wall time: the command with everything in C against the same
command with that one piece on its Python reference (`SWCDATA_NO_EXT=PIECE`, see swcdata/_native/__init__.py).

    python bench/ext_pieces.py --corpus /tmp/corpus-1m.jsonl [--only dedup] [--piece lsh] [--repeat 3]
                               [--json OUT]
    python bench/ext_pieces.py --corpus /tmp/corpus-1m.jsonl --stages [--reps 2]

The corpus comes from `python bench/corpus.py --records 1000000 --out /tmp/corpus-1m.jsonl`; smaller
commands read its first lines (written beside it). A piece's gain is the share of the command's wall
time that the C piece saves: (wall with the piece in Python - wall all in C) / wall with the piece
in Python, on the medians of --repeat rounds (all C and each piece in turn, all C once more at the
end). CPU seconds (the command's process tree) are given beside the wall: the cores are shared, and
where the wall moves without the CPU, other work took the cores. `--stages` times each piece inside
one process instead (see `stages`). The policy (README, "What is in C and
why"): a piece that saves under 5 % of its command's wall time is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SWCDATA = str(Path(sys.executable).with_name("swcdata"))

# command -> (records, pieces on its path); 200k and 100k where a run at 1M would take minutes. (Measured
# with this script and removed, bench/RESULTS.md: ascii_key on dedup and `validate --no-code --out`,
# swc_upper on validate, minhash and components on split and dedup.)
PLAN: dict[str, tuple[int, list[str]]] = {
    "validate": (200_000, ["extract", "lex"]),
    "dedup": (1_000_000, ["field_ids", "sign_forms", "lsh", "similarity"]),
    "split": (100_000, ["extract", "lex", "similarity"]),
    "stats": (1_000_000, ["tokens"]),
}


def _subset(corpus: Path, n: int) -> Path:
    """The first n lines of the corpus, in a file beside it (made once)."""
    path = corpus.with_name(f"{corpus.stem}-first{n}.jsonl")
    if not path.exists():
        with corpus.open("rb") as src, path.open("wb") as dst:
            for k, line in enumerate(src):
                if k == n:
                    break
                dst.write(line)
    return path


def _argv(command: str, data: Path, tmp: Path) -> list[str]:
    if command.startswith("validate"):
        argv = [SWCDATA, "validate", str(data), "--report", str(tmp / "report.json")]
        if "--no-code" in command:
            argv.append("--no-code")
        if "--out" in command:
            argv += ["--out", str(tmp / "valid.jsonl")]
        return argv
    if command == "dedup":
        return [SWCDATA, "dedup", str(data), "--out", str(tmp / "kept.jsonl"), "--report", str(tmp / "report.json")]
    if command == "split":
        return [SWCDATA, "split", str(data), "--out", str(tmp / "split"), "--report", str(tmp / "report.json")]
    if command == "stats":
        return [SWCDATA, "stats", str(data), "--report", str(tmp / "report.json")]
    raise ValueError(command)


def run(command: str, data: Path, off: str) -> dict[str, Any]:
    """One run of the command with SWCDATA_NO_EXT=off: wall and CPU seconds, and the backend its report names."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = {**os.environ, "SWCDATA_NO_EXT": off}
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(_argv(command, data, tmp), env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):  # (validate exits 1 on findings)
            raise RuntimeError(f"{command} with SWCDATA_NO_EXT={off!r} failed: {proc.stderr[-2000:]}")
        report = json.loads((tmp / "report.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": command, "off": off, "wall": round(wall, 2), "cpu": round(cpu, 2), "load": round(load, 2),
            "backend": report.get("backend", "(not in this report)")}


def _best(fn: Any, reps: int) -> float:
    """The fastest of `reps` wall times of fn()."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def stages(corpus: Path, reps: int) -> list[dict[str, Any]]:
    """Each piece timed in this process on its command's own inputs, in C and on its Python reference
    (the fastest of `reps` runs each): what the piece saves, with less of the shared machine's noise
    than whole commands. Pieces that run in the commands' worker processes (one per core) are timed on
    a share of the records; the command's saving is then scaled to its records and divided by the
    workers."""
    import numpy as np

    from swcdata import _native
    from swcdata.similarity import minhash, tokens
    from swcdata.solidity import lexer, spans
    from swcdata.steps import validate
    from swcdata.steps.dedup import _STEP, DedupConfig, table_signatures

    out: list[dict[str, Any]] = []

    def note(piece: str, command: str, work: str, t_c: float, t_py: float, scale: float) -> None:
        row = {"piece": piece, "command": command, "work": work, "c": round(t_c, 3), "python": round(t_py, 3),
               "saving_in_command": round((t_py - t_c) * scale, 2)}
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    def off(pieces: set[str], fn: Any) -> float:
        old = _native.OFF
        _native.OFF = frozenset(pieces)
        tokens._TABLES = None
        try:
            return _best(fn, reps)
        finally:
            _native.OFF = old
            tokens._TABLES = None

    workers = os.cpu_count() or 1
    # validate's per-record checks (in its workers), on the first 50,000 lines, chunk by chunk as the workers
    # take them; the tree-sitter outcomes cached by validate are dropped before each run
    lines = list(enumerate(_subset(corpus, 50_000).read_bytes().splitlines(), 1))
    cfg = validate.ValidateConfig()

    def check_all() -> None:
        validate._PARSED.clear()
        for k in range(0, len(lines), cfg.chunk_size):
            validate.check_lines("c.jsonl", lines[k : k + cfg.chunk_size], cfg, batch=False)

    scale = 200_000 / len(lines) / workers  # the validate command runs on 200,000 records
    t_c = _best(check_all, reps)
    for piece, module, name, python in (("extract", spans, "_C_EXTRACT", False),
                                        ("lex", lexer, "_lex", lexer._py_lex)):
        old = getattr(module, name)
        setattr(module, name, python)
        try:
            note(piece, "validate", "check_lines, 50,000 lines", t_c, _best(check_all, reps), scale)
        finally:
            setattr(module, name, old)

    # dedup at 1M: the token ids and signatures (its workers, on a share of the records it signs), then LSH and
    # similarities (this process)
    table, _, _ = validate.load_valid([corpus], validate.ValidateConfig(check_code=False), digest=False)
    ins, res = table.column("instruction").to_pylist(), table.column("response").to_pylist()
    ids = table.column("id").to_numpy(zero_copy_only=False)
    uniq = np.sort(np.unique(ids, return_index=True)[1])
    dcfg = DedupConfig()
    share = uniq[:100_000].tolist()
    jobs = [([ins[i] for i in share[a : a + _STEP]], [res[i] for i in share[a : a + _STEP]], dcfg.abstract_identifiers,
             dcfg.abstract_literals, dcfg.ngram, dcfg.num_perm, dcfg.seed) for a in range(0, len(share), _STEP)]

    def sign() -> None:
        for job in jobs:
            tokens.chunk_signatures(job)

    t_c = off(set(), sign)
    for piece in ("field_ids", "sign_forms"):
        note(piece, "dedup", f"chunk_signatures, {len(share):,} records", t_c, off({piece}, sign),
             len(uniq) / len(share) / workers)
    sig = table_signatures(table, dcfg, uniq)
    bands, rows = dcfg.lsh()
    pairs = minhash.candidate_pairs(sig, bands, rows)
    note("lsh", "dedup", f"candidate_pairs, {len(sig):,} signatures",
         off(set(), lambda: minhash.candidate_pairs(sig, bands, rows)),
         off({"lsh"}, lambda: minhash.candidate_pairs(sig, bands, rows)), 1.0)
    note("similarity", "dedup", f"similarity, {len(pairs):,} pairs", off(set(), lambda: minhash.similarity(sig, pairs)),
         off({"similarity"}, lambda: minhash.similarity(sig, pairs)), 1.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--only", action="append", choices=list(PLAN), help="commands to measure (default: all)")
    ap.add_argument("--json", type=Path, help="append each run to this JSON-lines file")
    ap.add_argument("--stages", action="store_true", help="time each piece in this process instead (see stages)")
    ap.add_argument("--reps", type=int, default=2, help="runs of each stage (the fastest counts)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of a command's runs (medians count)")
    ap.add_argument("--piece", action="append", help="only these pieces (default: every piece on the path)")
    args = ap.parse_args()
    if args.stages:
        found = stages(args.corpus, args.reps)
        if args.json:
            with args.json.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in found)
        return
    rows: list[str] = ["| command (records) | piece in Python | runs | wall s (median) | CPU s (median) | gain (wall) "
                       "| gain (CPU) | backend recorded |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for command in args.only or list(PLAN):
        n, pieces = PLAN[command]
        data = args.corpus if n >= 1_000_000 else _subset(args.corpus, n)
        pieces = [p for p in pieces if not args.piece or p in args.piece]
        runs: list[dict[str, Any]] = []
        order = [off for _ in range(args.repeat) for off in ["", *pieces]] + [""]  # all-C first and last
        for off in order:
            runs.append(run(command, data, off))
            print(json.dumps({**runs[-1], "records": n}), file=sys.stderr, flush=True)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps({**runs[-1], "records": n}) + "\n")
        med = {off: (statistics.median(r["wall"] for r in runs if r["off"] == off),
                     statistics.median(r["cpu"] for r in runs if r["off"] == off),
                     sum(r["off"] == off for r in runs), next(r["backend"] for r in runs if r["off"] == off))
               for off in ["", *pieces]}
        for off, (wall, cpu, count, backend) in med.items():
            gain = f"{(wall - med[''][0]) / wall:.1%}" if off else "-"
            gain_cpu = f"{(cpu - med[''][1]) / cpu:.1%}" if off else "-"
            row = (f"| {command} ({n:,}) | {off or '(none: all C)'} | {count} | {wall:.1f} | {cpu:.1f} | {gain} | "
                   f"{gain_cpu} | `{backend}` |")
            rows.append(row)
            print(row, flush=True)
    print("\n".join(rows))

if __name__ == "__main__":
    main()
