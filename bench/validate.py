"""Throughput and peak memory of ``swcdata validate`` beside two floors measured in the same run.

Usage::

    python bench/validate.py [--records 1000000] [--full-records 200000] [--corpus PATH]
        [--json] [--markdown]

What it measures, in this order (issue 2, item 9):

1. **Floor A**: ``pyarrow.json.read_json`` over the whole corpus. The corpus inherits seed defects
   (duplicate keys, wrong types) on which pyarrow refuses the whole file, so the file is read in
   blocks of ~32 MiB, each one pyarrow block; a line pyarrow refuses is dropped (its row number is
   in the error) and the block is read again. The floor is the time of the successful reads; the
   retries are reported beside it.
2. **swcdata reader**: ``swcdata.core.io.iter_chunks`` alone over the corpus (what the main process of
   ``validate`` has to do whatever the checks), for reference.
3. **schema-level**: ``swcdata validate CORPUS --no-code --json`` as a subprocess (the real CLI),
   with records/s from its report, wall time, and the peak RSS of its process tree (polled every
   50 ms, RSS summed over the process and all its descendants) and of its largest single process.
4. **Floor B**: tree-sitter alone on the code spans of the first ``--full-records`` records: the
   spans ``validate`` parses (every span ``extract_code`` finds in instruction and response, less
   inline fragments without ``;`` or ``{``), pre-extracted (untimed), sent in chunks to a pool of 1
   and of 2 processes that time only ``Parser.parse`` (one parse per span, no wrapping). The rate
   of a pool is the sum of its workers' spans / parse seconds; the equivalent records/s divides by
   the spans per record. The 2-process floor is measured twice, before and after the full run,
   and the ratio uses the faster one.
5. **full checks**: ``swcdata validate SUBSET --json --workers 0`` on the first ``--full-records``
   records (written to a temporary file under ``bench/.data``), with the same RSS polling and the
   CPU seconds of the main process and of the workers.

The corpus is generated with ``bench/corpus.py`` when absent (``bench/.data`` is git-ignored).
``--markdown`` appends the table to ``bench/RESULTS.md`` under ``## validate (issue 2)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / ".data"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## validate (issue 2)"
GIB = 1 << 30
MIB = 1 << 20

TARGET_SCHEMA_RPS = 100_000.0
TARGET_FULL_RATIO = 0.80
TARGET_RSS = 2 * GIB

SPAN_CHUNK = 2000  # spans per unit of work sent to the floor-B pool
BLOCK_BYTES = 32 * MIB  # floor-A block size


# --------------------------------------------------------------------------- helpers


def default_corpus(records: int) -> Path:
    name = "corpus-1m.jsonl" if records == 1_000_000 else f"corpus-{records}.jsonl"
    return DATA / name


def ensure_corpus(path: Path, records: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[bench] generating {records} records into {path} ...", file=sys.stderr)
    subprocess.run([sys.executable, str(ROOT / "bench" / "corpus.py"), "--records", str(records),
                    "--out", str(path)], check=True)


def loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return -1.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- floor A: pyarrow


def _blocks(path: Path, block_bytes: int) -> Iterator[list[bytes]]:
    """Non-blank lines of ``path`` in lists of about ``block_bytes`` bytes."""
    with path.open("rb") as fh:
        rest = b""
        while True:
            buf = fh.read(block_bytes)
            if not buf:
                break
            buf = rest + buf
            cut = buf.rfind(b"\n")
            if cut < 0:
                rest = buf
                continue
            rest = buf[cut + 1:]
            yield [ln for ln in buf[:cut].split(b"\n") if ln.strip()]
        if rest.strip():
            yield [rest]


@dataclass
class FloorA:
    whole_file_error: str | None = None
    rows: int = 0
    refused_lines: int = 0
    refusal_examples: list[str] = field(default_factory=list)
    read_seconds: float = 0.0  # successful read_json calls only
    retry_seconds: float = 0.0  # read_json calls that failed on a line
    wall_seconds: float = 0.0  # everything, including splitting the file into blocks in Python
    records_per_second: float = 0.0


def floor_pyarrow(path: Path) -> FloorA:
    import pyarrow.json as pj

    res = FloorA()
    t_all = time.perf_counter()
    try:  # the plain call first: if it works, that is the floor
        t0 = time.perf_counter()
        table = pj.read_json(path)
        res.read_seconds = time.perf_counter() - t0
        res.rows = table.num_rows
        del table
    except Exception as e:
        res.whole_file_error = str(e)[:200]
        res.read_seconds = 0.0
        row_re = re.compile(r"in row (\d+)")
        for lines in _blocks(path, BLOCK_BYTES):
            while lines:
                data = b"\n".join(lines)
                opts = pj.ReadOptions(block_size=len(data) + 1)  # one block: row numbers are exact
                t0 = time.perf_counter()
                try:
                    table = pj.read_json(io.BytesIO(data), read_options=opts)
                except Exception as err:
                    res.retry_seconds += time.perf_counter() - t0
                    m = row_re.search(str(err))
                    if m is None or int(m.group(1)) >= len(lines):  # cannot locate the line: drop the block
                        res.refused_lines += len(lines)
                        break
                    del lines[int(m.group(1))]
                    res.refused_lines += 1
                    if len(res.refusal_examples) < 3:
                        res.refusal_examples.append(re.sub(r"\s+", " ", str(err))[:120])
                    continue
                res.read_seconds += time.perf_counter() - t0
                res.rows += table.num_rows
                del table
                break
    res.wall_seconds = time.perf_counter() - t_all
    total = res.rows + res.refused_lines
    res.records_per_second = total / res.read_seconds if res.read_seconds > 0 else 0.0
    return res


# --------------------------------------------------------------------------- swcdata reader alone


def reader_alone(path: Path, chunk_size: int = 500) -> dict[str, float]:
    from swcdata.core.io import FileStats, iter_chunks

    st = FileStats(str(path))
    t0 = time.perf_counter()
    n = 0
    for ch in iter_chunks(path, st, chunk_size):
        n += len(ch.lines)
    secs = time.perf_counter() - t0
    return {"records": n, "seconds": secs, "records_per_second": n / secs if secs > 0 else 0.0}


# --------------------------------------------------------------------------- floor B: tree-sitter


def _extract_lines(lines: list[bytes]) -> tuple[int, int, list[bytes]]:
    """(records, all spans, spans validate parses) of a list of JSONL lines."""
    import orjson

    from swcdata.solidity.spans import extract_code

    spans: list[bytes] = []
    n_all = 0
    for raw in lines:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        for name in ("instruction", "response"):
            value = obj.get(name)
            if not isinstance(value, str):
                continue
            for s in extract_code(value):
                n_all += 1
                if s.shape != "inline" or ";" in s.text or "{" in s.text:
                    spans.append(s.text.encode("utf-8"))
    return len(lines), n_all, spans


_PARSER: Any = None


def _init_parser() -> None:
    import warnings

    import tree_sitter_solidity as tss
    from tree_sitter import Language, Parser

    global _PARSER
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _PARSER = Parser(Language(tss.language()))


def _parse_chunk(spans: list[bytes]) -> tuple[int, int, float, int]:
    """(pid, spans, parse seconds, spans whose tree has errors); only ``Parser.parse`` is timed."""
    parse = _PARSER.parse
    errors = 0
    t0 = time.perf_counter()
    for s in spans:
        tree = parse(s)
        errors += tree.root_node.has_error  # an attribute read; costs next to nothing
    secs = time.perf_counter() - t0
    return os.getpid(), len(spans), secs, errors


@dataclass
class FloorB:
    processes: int
    spans: int
    parse_seconds_per_worker: dict[int, float]
    spans_per_second: float  # sum over workers of spans / parse seconds
    records_per_second: float  # spans_per_second / spans per record
    outer_wall_seconds: float  # pool.map wall, including pickling the spans
    spans_with_errors: int


def floor_tree_sitter(chunks: list[list[bytes]], processes: int, spans_per_record: float) -> FloorB:
    from swcdata.core.workers import init_worker  # (workers that die with this process, even by kill -9)

    ctx = mp.get_context("spawn")
    with ctx.Pool(processes, initializer=init_worker, initargs=(os.getpid(), _init_parser)) as pool:
        pool.map(_parse_chunk, [[b"contract A {}"]] * processes * 2)  # warm up: start and import
        t0 = time.perf_counter()
        results = pool.map(_parse_chunk, chunks, chunksize=1)
        wall = time.perf_counter() - t0
    per_n: dict[int, int] = {}
    per_s: dict[int, float] = {}
    errors = 0
    for pid, n, secs, err in results:
        per_n[pid] = per_n.get(pid, 0) + n
        per_s[pid] = per_s.get(pid, 0.0) + secs
        errors += err
    rate = sum(per_n[p] / per_s[p] for p in per_n if per_s[p] > 0)
    return FloorB(processes, sum(per_n.values()), {i: round(s, 3) for i, s in enumerate(per_s.values())},
                  rate, rate / spans_per_record if spans_per_record else 0.0, wall, errors)


# --------------------------------------------------------------------------- the CLI under a poller


@dataclass
class CliRun:
    command: list[str]
    exit_code: int
    wall_seconds: float
    report_seconds: float
    records: int
    valid: int
    quarantined: int
    records_per_second: float  # from the report (excludes interpreter start-up)
    wall_records_per_second: float
    peak_tree_rss: int
    peak_single_rss: int
    max_processes: int
    main_cpu_seconds: float
    worker_cpu_seconds: float
    status: str


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("swcdata")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "swcdata"]


def run_cli(args: list[str], interval: float = 0.05) -> CliRun:
    cmd = [*_cli(), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=errf, env={**os.environ, "NO_COLOR": "1"})
        root = psutil.Process(proc.pid)
        peak_tree = peak_single = max_procs = 0
        cpu: dict[int, float] = {}
        stop = threading.Event()

        def poll() -> None:
            nonlocal peak_tree, peak_single, max_procs
            while not stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    procs = []
                total = 0
                for p in procs:
                    try:
                        with p.oneshot():
                            rss = p.memory_info().rss
                            ct = p.cpu_times()
                    except psutil.Error:
                        continue
                    total += rss
                    peak_single = max(peak_single, rss)
                    cpu[p.pid] = ct.user + ct.system
                peak_tree = max(peak_tree, total)
                max_procs = max(max_procs, len(procs))
                stop.wait(interval)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        code = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        out.seek(0)
        raw = out.read()
        errf.seek(0)
        err_text = errf.read().decode("utf-8", "replace")
    if code not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err_text[-2000:]}")
    rep = json.loads(raw)
    led = rep["ledger"]
    main_cpu = cpu.pop(proc.pid, 0.0)
    return CliRun(
        command=["swcdata", *args], exit_code=code, wall_seconds=wall, report_seconds=rep["seconds"],
        records=led["records"], valid=led["valid"], quarantined=led["quarantined"],
        records_per_second=rep["records_per_second"], wall_records_per_second=led["records"] / wall,
        peak_tree_rss=peak_tree, peak_single_rss=peak_single, max_processes=max_procs,
        main_cpu_seconds=main_cpu, worker_cpu_seconds=sum(cpu.values()), status=rep["status"],
    )


# --------------------------------------------------------------------------- where the time goes


class _CountingParser:
    """Stands in for swcdata's tree-sitter parser: counts and times every ``parse`` call."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0
        self.seconds = 0.0

    def parse(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.real.parse(data, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def sample_breakdown(path: Path, n: int = 2000) -> dict[str, Any] | None:
    """``check_lines`` in this process on the first ``n`` records, schema-only and with every check,
    without building Arrow batches (the path of ``swcdata validate`` without ``--out``, which the
    CLI rows measure), with swcdata's parser wrapped to count and time ``Parser.parse`` (relies on the private
    ``swcdata.solidity.treesitter._ts`` cache; returns None when that is gone)."""
    from swcdata.solidity import treesitter
    from swcdata.steps.validate import ValidateConfig, check_lines

    lines: list[tuple[int, bytes]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.strip():
                lines.append((lineno, raw.rstrip(b"\r\n")))
                if len(lines) >= n:
                    break
    try:
        ts = treesitter._ts()
        real = ts["parser"]
    except Exception:
        return None
    from swcdata.steps import validate as swc_validate

    check_lines("sample", lines[:100], ValidateConfig(check_code=True))  # warm up imports and compiled regexes
    swc_validate._PARSED.clear()  # (validate's parse cache: start cold, as a worker does)
    t0 = time.perf_counter()
    check_lines("sample", lines, ValidateConfig(check_code=False), batch=False)
    schema_s = time.perf_counter() - t0
    counting = _CountingParser(real)
    ts["parser"] = counting
    try:
        t0 = time.perf_counter()
        check_lines("sample", lines, ValidateConfig(check_code=True), batch=False)
        full_s = time.perf_counter() - t0
    finally:
        ts["parser"] = real
    _, _, spans = _extract_lines([raw for _, raw in lines])
    k = len(lines)
    return {"records": k, "schema_us_per_record": schema_s / k * 1e6, "full_us_per_record": full_s / k * 1e6,
            "parse_us_per_record": counting.seconds / k * 1e6, "parse_share": counting.seconds / full_s,
            "parse_calls": counting.calls, "parsed_spans": len(spans),
            "parses_per_span": counting.calls / len(spans) if spans else 0.0}


# --------------------------------------------------------------------------- orchestration


def head_lines(src: Path, dst: Path, n: int) -> int:
    """Copy the first ``n`` non-blank lines of ``src`` to ``dst``; return how many were copied."""
    k = 0
    with src.open("rb") as fi, dst.open("wb") as fo:
        for line in fi:
            if not line.strip():
                continue
            fo.write(line if line.endswith(b"\n") else line + b"\n")
            k += 1
            if k >= n:
                break
    return k


def extract_spans(path: Path, processes: int) -> tuple[int, int, list[bytes]]:
    def groups() -> Iterator[list[bytes]]:
        with path.open("rb") as fh:
            buf: list[bytes] = []
            for line in fh:
                if line.strip():
                    buf.append(line)
                    if len(buf) >= 2000:
                        yield buf
                        buf = []
            if buf:
                yield buf

    n_rec = n_all = 0
    spans: list[bytes] = []
    from swcdata.core.workers import init_worker

    with mp.get_context("spawn").Pool(processes, initializer=init_worker, initargs=(os.getpid(),)) as pool:
        for r, a, s in pool.imap(_extract_lines, groups()):
            n_rec += r
            n_all += a
            spans.extend(s)
    return n_rec, n_all, spans


def measure(corpus: Path, full_records: int, cores: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"arch": platform.machine(), "cores": cores, "cpu": cpu_model(),
                    "python": platform.python_version(),
                    "memory_gib": round(psutil.virtual_memory().total / GIB, 1)},
        "corpus": {"path": str(corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus),
                   "bytes": corpus.stat().st_size},
        "load": {},
    }
    t_start = time.perf_counter()

    log("floor A: pyarrow.json.read_json ...")
    out["load"]["floor_a"] = loadavg()
    out["floor_a"] = asdict(floor_pyarrow(corpus))

    log("swcdata reader alone (iter_chunks) ...")
    out["reader"] = reader_alone(corpus)

    log("swcdata validate --no-code ...")
    out["load"]["schema"] = loadavg()
    out["schema"] = asdict(run_cli(["validate", str(corpus), "--no-code", "--json"]))

    with tempfile.TemporaryDirectory(dir=DATA, prefix="validate-bench-") as tmp:
        total_records = out["schema"]["records"]
        if full_records >= total_records:
            subset = corpus
            n_subset = total_records
        else:
            subset = Path(tmp) / f"subset-{full_records}.jsonl"
            n_subset = head_lines(corpus, subset, full_records)
        out["subset_records"] = n_subset

        log(f"floor B: extracting code spans of {n_subset} records (untimed) ...")
        t0 = time.perf_counter()
        n_rec, n_all, spans = extract_spans(subset, cores)
        spr = len(spans) / n_rec if n_rec else 0.0
        out["spans"] = {"records": n_rec, "all_spans": n_all, "parsed_spans": len(spans),
                        "spans_per_record": spr, "extract_wall_seconds": time.perf_counter() - t0}
        chunks = [spans[i:i + SPAN_CHUNK] for i in range(0, len(spans), SPAN_CHUNK)]
        del spans

        log("floor B: tree-sitter on 1 process ...")
        out["load"]["floor_b1"] = loadavg()
        out["floor_b1"] = asdict(floor_tree_sitter(chunks, 1, spr))
        log(f"floor B: tree-sitter on {cores} processes (before) ...")
        out["load"]["floor_b2_before"] = loadavg()
        out["floor_b2_before"] = asdict(floor_tree_sitter(chunks, cores, spr))

        log(f"swcdata validate (all checks, --workers 0) on {n_subset} records ...")
        out["load"]["full"] = loadavg()
        out["full"] = asdict(run_cli(["validate", str(subset), "--json", "--workers", "0"]))

        log("in-process sample of check_lines (where the time goes) ...")
        out["sample"] = sample_breakdown(subset)

        log(f"floor B: tree-sitter on {cores} processes (after) ...")
        out["load"]["floor_b2_after"] = loadavg()
        out["floor_b2_after"] = asdict(floor_tree_sitter(chunks, cores, spr))

    best = max((out["floor_b2_before"], out["floor_b2_after"]), key=lambda f: f["records_per_second"])
    out["floor_b2_records_per_second"] = best["records_per_second"]
    out["full_ratio"] = out["full"]["records_per_second"] / best["records_per_second"]
    out["full_ratio_each"] = [out["full"]["records_per_second"] / f["records_per_second"]
                              for f in (out["floor_b2_before"], out["floor_b2_after"])]
    # CPU per record, less sensitive to other load on the machine than rates are
    out["cpu_us_per_record"] = {
        "floor_b_parse": 1e6 / out["floor_b1"]["records_per_second"],
        "full_main": out["full"]["main_cpu_seconds"] / out["full"]["records"] * 1e6,
        "full_workers": out["full"]["worker_cpu_seconds"] / out["full"]["records"] * 1e6,
        "schema_main": out["schema"]["main_cpu_seconds"] / out["schema"]["records"] * 1e6,
        "schema_workers": out["schema"]["worker_cpu_seconds"] / out["schema"]["records"] * 1e6,
    }
    out["full_1m_estimate_seconds"] = total_records / out["full"]["records_per_second"]
    out["bench_wall_seconds"] = time.perf_counter() - t_start
    return out


# --------------------------------------------------------------------------- rendering


def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def _mib(b: int) -> str:
    return f"{b / MIB:,.0f} MiB"


def _ok(cond: bool) -> str:
    return "**PASS**" if cond else "**MISS**"


def render(r: dict[str, Any], command: str) -> str:
    m, a, s, f = r["machine"], r["floor_a"], r["schema"], r["full"]
    b1, bb, ba = r["floor_b1"], r["floor_b2_before"], r["floor_b2_after"]
    sp = r["spans"]
    cores = m["cores"]
    ld = r["load"]
    lines = [
        f"### {r['date']}",
        "",
        f"- machine: `{m['arch']}`, {cores} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}"
        " — the cores are shared with other work, so only ratios within this run mean much",
        f"- command: `{command}`",
        f"- corpus: `{r['corpus']['path']}` ({_n(s['records'])} records, {r['corpus']['bytes'] / GIB:.2f} GiB); "
        f"full checks and floor B on the first {_n(r['subset_records'])} records "
        f"({_n(sp['parsed_spans'])} parsed spans of {_n(sp['all_spans'])} extracted, "
        f"{sp['spans_per_record']:.3f} per record)",
        f"- 1-minute load average before each step: floor A {ld['floor_a']}, schema {ld['schema']}, "
        f"floor B 1p {ld['floor_b1']}, 2p {ld['floor_b2_before']}, full {ld['full']}, 2p again {ld['floor_b2_after']}",
        f"- whole benchmark: {r['bench_wall_seconds']:.0f} s",
        "",
        "| measurement | records/s | wall | peak RSS (tree / largest process) | target | result |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    a_note = ""
    if a["whole_file_error"]:
        a_note = (f" — whole file refused (`{a['whole_file_error'][:70]}`), read in 32 MiB blocks; "
                  f"{a['refused_lines']} line(s) refused and dropped, retries {a['retry_seconds']:.1f} s not counted")
    lines.append(f"| floor A: `pyarrow.json.read_json`, {_n(a['rows'] + a['refused_lines'])} lines{a_note} | "
                 f"{_n(a['records_per_second'])} | {a['read_seconds']:.1f} s (all: {a['wall_seconds']:.1f} s) "
                 "| – | – | – |")
    rd = r["reader"]
    lines.append(f"| reference: swcdata reader alone (`io.iter_chunks`, no decoding) | "
                 f"{_n(rd['records_per_second'])} | {rd['seconds']:.1f} s | – | – | – |")
    lines.append(
        f"| swcdata `validate --no-code` (schema-level), {_n(s['records'])} records "
        f"(main CPU {s['main_cpu_seconds']:.0f} s, workers CPU {s['worker_cpu_seconds']:.0f} s) | "
        f"{_n(s['records_per_second'])} (wall: {_n(s['wall_records_per_second'])}) | {s['wall_seconds']:.1f} s | "
        f"{_mib(s['peak_tree_rss'])} / {_mib(s['peak_single_rss'])} | ≥ {_n(TARGET_SCHEMA_RPS)} records/s | "
        f"{_ok(s['records_per_second'] >= TARGET_SCHEMA_RPS)} |")
    lines.append(
        f"| schema-level peak RSS at {_n(s['records'])} records (process tree) | – | – | "
        f"{_mib(s['peak_tree_rss'])} | < 2 GiB | {_ok(s['peak_tree_rss'] < TARGET_RSS)} |")
    lines.append(
        f"| floor B: tree-sitter alone, 1 process ({_n(b1['spans_per_second'])} spans/s) | "
        f"{_n(b1['records_per_second'])} | {b1['outer_wall_seconds']:.1f} s | – | – | – |")
    for label, fb in (("before", bb), ("after", ba)):
        lines.append(
            f"| floor B: tree-sitter alone, {cores} processes, {label} the full run "
            f"({_n(fb['spans_per_second'])} spans/s) | {_n(fb['records_per_second'])} | "
            f"{fb['outer_wall_seconds']:.1f} s | – | – | – |")
    lines.append(
        f"| swcdata `validate` all checks, `--workers 0`, {_n(f['records'])} records "
        f"(main CPU {f['main_cpu_seconds']:.0f} s, workers CPU {f['worker_cpu_seconds']:.0f} s) | "
        f"{_n(f['records_per_second'])} (wall: {_n(f['wall_records_per_second'])}) | {f['wall_seconds']:.1f} s | "
        f"{_mib(f['peak_tree_rss'])} / {_mib(f['peak_single_rss'])} | "
        f"≥ 80 % of floor B on {cores} processes (best: {_n(r['floor_b2_records_per_second'])}) | "
        f"{r['full_ratio'] * 100:.0f} % (each: {', '.join(f'{x * 100:.0f} %' for x in r['full_ratio_each'])}) "
        f"{_ok(r['full_ratio'] >= TARGET_FULL_RATIO)} |")
    lines.append(
        f"| full-check peak RSS at {_n(f['records'])} records (process tree) | – | – | "
        f"{_mib(f['peak_tree_rss'])} | < 2 GiB | {_ok(f['peak_tree_rss'] < TARGET_RSS)} |")
    cpu = r["cpu_us_per_record"]
    lines += [
        "",
        f"CPU per record (polled CPU times; less sensitive to the machine's other load than the rates): "
        f"schema-level {cpu['schema_main']:.0f} µs in the main process + {cpu['schema_workers']:.0f} µs in the "
        f"workers; all checks {cpu['full_main']:.0f} µs main + {cpu['full_workers']:.0f} µs workers; floor B "
        f"{cpu['floor_b_parse']:.0f} µs of `Parser.parse` per record (1 process).",
    ]
    smp = r.get("sample")
    if smp:
        lines += [
            "",
            "In-process sample (`check_lines(batch=False)`, the CLI's path without `--out`, on the first "
            f"{_n(smp['records'])} records, one core): schema-only "
            f"{smp['schema_us_per_record']:.0f} µs/record; all checks {smp['full_us_per_record']:.0f} µs/record, "
            f"of which `Parser.parse` {smp['parse_us_per_record']:.0f} µs ({smp['parse_share'] * 100:.0f} %), "
            f"{smp['parse_calls']:,} parse calls for {smp['parsed_spans']:,} parsed spans "
            f"({smp['parses_per_span']:.2f} per span; floor B makes 1; validate parses a span in the wrapping its "
            "first word points to, tries the others only when that fails, and parses a repeated span once).",
        ]
    lines += [
        "",
        f"Floor B times only `Parser.parse` inside the workers (one parse per span, no wrapping); a pool's rate is "
        f"the sum of its workers' spans / parse seconds, and records/s divides by {sp['spans_per_record']:.3f} "
        f"spans per record. {bb['spans_with_errors']:,} of {bb['spans']:,} spans have syntax errors in the bare "
        "parse (most parse in validate's wrapping; a span that parses in none is parsed in all three). "
        f"A full-check run over all {_n(s['records'])} records would take about "
        f"{r['full_1m_estimate_seconds'] / 60:.0f} min at the measured rate "
        f"(`--full-records {s['records']}` runs it).",
        "",
    ]
    return "\n".join(lines)


def append_markdown(block: str, path: Path = RESULTS) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if SECTION not in text.splitlines():
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{block}"
    else:
        lines = text.split("\n")
        start = lines.index(SECTION)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        head, section, tail = lines[:start], lines[start:end], lines[end:]
        while section and not section[-1].strip():
            section.pop()
        new = [*section, "", *block.rstrip("\n").split("\n"), ""]
        text = "\n".join([*head, *new, *(["", *tail] if tail else [])])
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="corpus size to generate when absent")
    ap.add_argument("--full-records", type=int, default=200_000, help="records for floor B and the full checks")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus JSONL (default bench/.data/corpus-1m.jsonl)")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    ap.add_argument("--markdown", action="store_true", help=f"append the table to bench/RESULTS.md ({SECTION})")
    ns = ap.parse_args(argv)
    corpus = (ns.corpus or default_corpus(ns.records)).resolve()
    ensure_corpus(corpus, ns.records)
    DATA.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    command = "python bench/validate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res = measure(corpus, ns.full_records, cores)
    res["command"] = command.strip()
    block = render(res, command.strip())
    if ns.json:
        print(json.dumps(res, indent=2))
    else:
        print(block)
    if ns.markdown:
        append_markdown(block)
        log(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
