"""Reading and validating JSONL on Ray (swcdata.engine.reading, issue 22): the results are the local engine's.

`plan_units` numbers every line as `iter_units` does at any byte block size (random files: blank lines, CRLF,
BOM, lines longer than a unit, with or without a final newline), and `validate_on_ray` gives the valid records
(sorted by `_order`), the quarantined lines and the report of `load_valid` on the seed corpus, the embedded
sample and a hostile corpus, at byte blocks of 1 (the small corpus only), 7, 500 and 1 MiB bytes and 1, 7 or
500 units per group (a row of the validation map, a Ray task); with the code checks on a small input too.
`load_valid_on_ray` (the records gathered into one table) once per corpus. A worker killed during a map task
changes nothing (Ray Data runs the task again); a line that kills the process checking its code every time gets
`parser-crashed` as locally; a task whose worker dies on every try fails the run with Ray Data's no-progress
error and a note on it, never a partial result.

All the tests share the session's Ray cluster (`ray_cluster`: 2 CPUs).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from swcdata.core import isolate
from swcdata.core.errors import InputError
from swcdata.core.io import BOM, FileStats, LineUnit, iter_units, read_unit, split_unit
from swcdata.engine.reading import (
    ORDER,
    ORDER_SHIFT,
    ORDERED_SCHEMA,
    load_valid_on_ray,
    plan_units,
    validate_on_ray,
)
from swcdata.steps.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
MIB = 1 << 20
VOLATILE = {"seconds", "records_per_second", "backend"}
MARK = "CrashMeOnRay"

pytestmark = pytest.mark.usefixtures("ray_cluster")


# ---- helpers ---------------------------------------------------------------------------------------------


def sample_lines(n: int) -> list[bytes]:
    """The first n lines of the embedded sample that are valid records."""
    return [x for x in SAMPLE.read_bytes().splitlines() if b'"response"' in x][:n]


def record(instruction: str, **extra: Any) -> bytes:
    return json.dumps({"instruction": instruction, "response": "Use a reentrancy guard and update state first.",
                       "category": "SWC-107", **extra}).encode()


def lines_of(units: list[LineUnit]) -> tuple[list[tuple[str, int, bytes]], dict[str, int], dict[str, int]]:
    """The non-blank lines the units hold (file, number, raw), and the blank and CRLF lines per file."""
    out: list[tuple[str, int, bytes]] = []
    blank: dict[str, int] = {}
    crlf: dict[str, int] = {}
    for u in units:
        lines, b, c = split_unit(read_unit(u), u.first_line, u.offset == 0)
        out += [(u.file, n, raw) for n, raw in lines]
        blank[u.file] = blank.get(u.file, 0) + b
        crlf[u.file] = crlf.get(u.file, 0) + c
    return out, blank, crlf


def local_units(files: list[Path], max_lines: int, max_bytes: int) -> tuple[list[LineUnit], list[FileStats]]:
    units: list[LineUnit] = []
    stats = []
    for p in files:
        st = FileStats(str(p))
        units += iter_units(p, st, max_lines, max_bytes)
        stats.append(st)
    return units, stats


def record_blocks(v: Any) -> list[pa.Table]:
    """The blocks of the records Dataset of a validate_on_ray result."""
    import ray

    return ray.get(v.records.to_arrow_refs())


def records_of(v: Any, blocks: list[pa.Table] | None = None) -> pa.Table:
    """The records Dataset of a validate_on_ray result (or its `blocks`), checked block by block, sorted by
    `_order`."""
    blocks = record_blocks(v) if blocks is None else blocks
    assert blocks and all(b.schema.equals(ORDERED_SCHEMA) for b in blocks)
    table = pa.concat_tables(blocks)
    order = table[ORDER].to_pylist()
    assert order == sorted(order) and len(set(order)) == len(order)  # (the blocks are in input order already)
    return table.sort_by(ORDER).drop_columns([ORDER])


def assert_same(got: tuple[pa.Table, Any, list[Any]], want: tuple[pa.Table, Any, list[Any]]) -> None:
    table, report, quarantined = got
    local_table, local_report, local_quarantined = want
    assert table.schema.equals(local_table.schema)
    assert table.equals(local_table)
    assert quarantined == local_quarantined  # (file, line, text or raw bytes, every reason)
    assert report.model_dump(exclude=VOLATILE) == local_report.model_dump(exclude=VOLATILE)
    assert report.ledger.adds_up


def run_case(files: list[Any], cfg: ValidateConfig, *, table: bool = False, **options: Any) -> None:
    """validate_on_ray (and with `table` load_valid_on_ray too) equals load_valid."""
    want = load_valid(files, cfg, digest=options.get("digest", True))
    v = validate_on_ray(files, cfg, **options)
    assert v.recovered == 0
    blocks = record_blocks(v)
    assert_same((records_of(v, blocks), v.report, v.quarantined), want)
    if options.get("rows_per_block") == 1:
        assert len(blocks) == v.units  # (one group, one row of the map, one block, per unit)
    if table:
        assert_same(load_valid_on_ray(files, cfg, **options), want)


# ---- corpora -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Small files with every kind of trouble a line can be in (and a 200 kB line)."""
    d = tmp_path_factory.mktemp("hostile")
    v = sample_lines(6)
    mixed = [
        v[0], b"", b"   \t", b'{"instruction": "caf\xe9 au lait", "response": "x", "category": "SWC-107"}',
        b'{"instruction": "broken", ', b"[1, 2, 3]", b'"just a string"', b"42", b"null",
        b'{"a": 1}\r{"b": 2}',  # (a CR inside the line)
        json.dumps({"instruction": "Explain the bug.", "response": "", "category": "SWC-107"}).encode(),
        json.dumps({"instruction": "What is wrong here?", "response": "Nothing at all here.",
                    "category": "swc-107"}).encode(),
        json.dumps({"instruction": "What is wrong here?", "response": "Nothing at all here.",
                    "category": "SWC-999"}).encode(),
        record("Find the bug:\n```solidity\ncontract A { function f() public { msg.sender.call(\"\"); } }\n```",
               id="0123456789abcdef", source={"file": "elsewhere.jsonl", "line": 7}, origin="forum",
               metadata={"big": 123456789012345678901234567890}),
        b'{"instruction": "Which SWC is this?", "instruction": "Which SWC id fits this?", '
        b'"response": "SWC-107 reentrancy, clearly.", "category": "SWC-107"}',
        v[1] + b"\r",  # (a CRLF line)
        v[2],
    ]
    files = {
        "mixed.jsonl": b"\n".join(mixed),  # (no final newline)
        "bom.jsonl": BOM + b"\r\n".join([v[3], v[4], b"", b"  ", v[5]]) + b"\r\n",
        "empty.jsonl": b"",
        "blank.jsonl": b"\n\n \n\t\n",
        "long.jsonl": b"\n".join([v[0], record("Review this. " + "x" * 200_000), b"", v[1] + b"\r"]),
        "one.jsonl": v[2],
    }
    out = []
    for name, data in files.items():
        (d / name).write_bytes(data)
        out.append(d / name)
    assert (d / "long.jsonl").stat().st_size > 200_000
    return out


def random_file(rng: random.Random) -> bytes:
    """Random lines: blank and blank-looking ones, CRLF, CRs inside, lines longer than a unit's bytes, a BOM,
    with or without a final newline."""
    lines = []
    for _ in range(rng.randint(0, 30)):
        r = rng.random()
        if r < 0.15:
            body = b""
        elif r < 0.25:
            body = rng.choice([b" ", b"\t", b" \t  "])
        elif r < 0.32:
            body = b"y" * rng.randint(51, 400)
        else:
            body = bytes(rng.choice(b'ab{}":, \r\xc3\xa9') for _ in range(rng.randint(1, 40)))
        lines.append(body + (b"\r\n" if rng.random() < 0.3 else b"\n"))
    data = b"".join(lines)
    if data and rng.random() < 0.4:
        data = data[:-1]  # (no final newline; a CRLF line leaves its CR)
    if rng.random() < 0.15:
        data = BOM + data
    return data


# ---- planning ----------------------------------------------------------------------------------------------


def test_plan_units_numbers_lines_as_iter_units_at_every_block_size(tmp_path: Path) -> None:
    rng = random.Random(22)
    files = []
    for i in range(40):
        p = tmp_path / f"r{i:02}.jsonl"
        p.write_bytes(b"" if i == 0 else BOM if i == 1 else b"\n" if i == 2 else random_file(rng))
        files.append(p)
    assert any(p.read_bytes().startswith(BOM) for p in files[3:])
    assert any(not p.read_bytes().endswith(b"\n") for p in files[3:])
    for max_lines, max_bytes in ((3, 50), (500, 4 * MIB)):
        want_units, want_stats = local_units(files, max_lines, max_bytes)
        want = lines_of(want_units)
        for block_bytes in (1, 2, 3, 7, 64, 500, MIB):
            n_blocks = sum(-(-p.stat().st_size // block_bytes) for p in files)
            # (three or four items of the planning map, each a Ray task: the default makes one of small inputs)
            plan = plan_units(files, block_bytes, max_lines=max_lines, max_bytes=max_bytes,
                              blocks_per_task=max(1, n_blocks // 3))
            assert plan.files == files
            assert plan.stats == want_stats, block_bytes  # (sha256, bytes, lines, BOM, final newline)
            assert lines_of(plan.units) == want, block_bytes
            assert plan.blocks == n_blocks
            by_file: dict[str, list[LineUnit]] = {}
            for u in plan.units:
                assert 1 <= u.lines <= max_lines and (u.size <= max_bytes or u.lines == 1)
                by_file.setdefault(u.file, []).append(u)
            for p, st in zip(files, want_stats, strict=True):
                units = by_file.get(str(p), [])  # the units tile the file, their lines follow on
                assert [u.offset for u in units] == [sum(u.size for u in units[:k]) for k in range(len(units))]
                assert sum(u.size for u in units) == st.bytes and sum(u.lines for u in units) == st.lines
                assert [u.first_line for u in units] == [1 + sum(u.lines for u in units[:k])
                                                         for k in range(len(units))]
    plan = plan_units(files[:12], 500, blocks_per_task=1, digest=False)  # (an item, a task, per block)
    assert plan.blocks > 12 and all(st.sha256 == "" for st in plan.stats)
    assert lines_of(plan.units) == lines_of(local_units(files[:12], 500, 4 * MIB)[0])


def test_plan_units_on_the_hostile_corpus_at_one_byte_blocks(hostile: list[Path]) -> None:
    want_units, want_stats = local_units(hostile, 500, 4 * MIB)
    plan = plan_units(hostile, 1)
    assert plan.stats == want_stats
    assert lines_of(plan.units) == lines_of(want_units)
    assert [st.had_bom for st in plan.stats] == [False, True, False, False, False, False]
    assert [st.final_newline for st in plan.stats] == [False, True, True, True, False, False]


def test_a_compressed_input_is_refused_as_locally(tmp_path: Path) -> None:
    p = tmp_path / "data.jsonl"
    p.write_bytes(b"\x1f\x8b\x08\x00rest")
    with pytest.raises(InputError) as local:
        load_valid([p])
    with pytest.raises(InputError) as on_ray:
        validate_on_ray([p])
    assert on_ray.value.message == local.value.message


def test_a_file_changed_while_it_is_read_is_an_input_error(tmp_path: Path) -> None:
    p = tmp_path / "growing.jsonl"
    p.write_bytes(b"\n".join(sample_lines(3)) + b"\n")
    more = sample_lines(1)[0] + b"\n"

    def append(units: list[LineUnit]) -> None:  # (in the worker, before the units are read)
        with open(units[0].file, "ab") as f:
            f.write(more)

    with pytest.raises(InputError, match=r"growing.jsonl changed while it was read: its size changed") as e:
        validate_on_ray([p], ValidateConfig(check_code=False), task_hook=append)
    assert type(e.value) is InputError and e.value.args == (e.value.message,)  # (itself, not Ray's wrapper)


# ---- validation: equal to the local engine -----------------------------------------------------------------


def test_validate_on_ray_equals_local_on_the_hostile_corpus(hostile: list[Path]) -> None:
    for cfg in (ValidateConfig(check_code=False, chunk_size=3, max_findings_per_rule=1),
                ValidateConfig(check_code=False, drop_findings=["duplicate-key", "outlier-length"])):
        run_case(hostile, cfg, block_bytes=1, rows_per_block=1)
        run_case(hostile, cfg, block_bytes=7, rows_per_block=7)
        run_case(hostile, cfg, block_bytes=500, rows_per_block=500)
        run_case(hostile, cfg, block_bytes=MIB)
    run_case(hostile, ValidateConfig(check_code=True, chunk_size=2), block_bytes=7, rows_per_block=1)
    empty, blank = hostile[2], hostile[3]
    run_case([empty], ValidateConfig(check_code=False), table=True)  # (no unit at all: an empty Dataset, the schema)
    run_case([empty, blank], ValidateConfig(check_code=False), block_bytes=1)  # (units, but no record)


def test_validate_on_ray_equals_local_on_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    sample = "dataset/swc_sample.jsonl"  # (relative: the workers open it by its absolute path)
    run_case([sample], ValidateConfig(check_code=True), block_bytes=7, rows_per_block=7)
    run_case([sample], ValidateConfig(check_code=False, chunk_size=10), block_bytes=500, rows_per_block=1,
             table=True)
    run_case([sample], ValidateConfig(check_code=False, chunk_size=7, max_findings_per_rule=3), block_bytes=MIB)
    run_case([sample, SAMPLE], ValidateConfig(check_code=False), digest=False)  # (the same file twice: once)


def test_validate_on_ray_equals_local_on_the_seed_corpus(seed_files: list[Path]) -> None:
    run_case(seed_files, ValidateConfig(check_code=False), block_bytes=MIB, table=True)
    run_case(seed_files, ValidateConfig(check_code=False, max_findings_per_rule=1), block_bytes=500,
             rows_per_block=500)
    run_case(seed_files, ValidateConfig(check_code=False, chunk_size=100), block_bytes=7, rows_per_block=7)


def test_quarantined_lines_can_go_to_a_callback(hostile: list[Path]) -> None:
    cfg = ValidateConfig(check_code=False, chunk_size=2)
    taken: list[Any] = []
    v = validate_on_ray(hostile, cfg, block_bytes=7, on_quarantine=taken.extend)
    _, report, quarantined = load_valid(hostile, cfg)
    assert v.quarantined == [] and taken == quarantined
    assert report.ledger == v.report.ledger and v.report.ledger.quarantined == len(taken) >= 10
    order = records_of(v)  # (_order: the file's index in the input order, then the line)
    assert order.num_rows == v.report.ledger.valid
    first = v.records.take(1)[0]
    assert first[ORDER] >> ORDER_SHIFT == 0 and first[ORDER] & ((1 << ORDER_SHIFT) - 1) == first["source"]["line"]


def test_records_streamed_to_a_callback_are_the_materialized_ones(hostile: list[Path], seed_files: list[Path]) -> None:
    """`on_records` takes the valid records group by group, in input order, as the checks end: the same records,
    report and quarantine as locally; the result then keeps no records Dataset."""
    empty, blank = hostile[2], hostile[3]
    for files, cfg, options in (
            (hostile, ValidateConfig(check_code=False, chunk_size=3, max_findings_per_rule=1),
             {"block_bytes": 7, "rows_per_block": 7}),
            (seed_files, ValidateConfig(check_code=False), {"block_bytes": 500, "rows_per_block": 500}),
            (seed_files, ValidateConfig(check_code=False), {}),  # (the cluster's own grouping)
            ([empty, blank], ValidateConfig(check_code=False), {"block_bytes": 1})):
        taken: list[pa.Table] = []
        v = validate_on_ray(files, cfg, on_records=taken.append, **options)
        assert v.records is None and all(t.num_rows for t in taken)
        want = load_valid(files, cfg)
        if taken:
            assert_same((records_of(None, taken), v.report, v.quarantined), want)
        else:
            assert want[0].num_rows == 0 and v.report.model_dump(exclude=VOLATILE) == want[1].model_dump(
                exclude=VOLATILE)


def test_validation_groups_share_the_lines_equally() -> None:
    """Without the code checks, the groups are about TASKS_PER_CPU a CPU, of equal lines to within a unit, and
    never over _GROUP_SCALE times the local task; with them, a unit a group."""
    from types import SimpleNamespace

    import numpy as np

    from swcdata.engine import reading
    from swcdata.engine.blocks import TASKS_PER_CPU
    from swcdata.steps.validate import TASK_LINES

    for units, cpus in ((2_000, 2), (2_000, 16), (37, 2), (1, 4), (300_000, 2)):
        lines = np.full(units, 500, dtype=np.int64)
        lines[-1] = 123
        plan = SimpleNamespace(unit_file=np.zeros(units, np.int64), unit_lines=lines,
                               unit_size=lines * 1000)
        bounds = reading._groups(plan, ValidateConfig(check_code=False), None, cpus)  # type: ignore[arg-type]
        assert bounds[0] == 0 and bounds[-1] == units and (np.diff(bounds) > 0).all()
        per_group = np.add.reduceat(lines, bounds[:-1])
        assert per_group.max() <= TASK_LINES * reading._GROUP_SCALE
        if lines.sum() >= TASKS_PER_CPU * cpus * TASK_LINES * reading._GROUP_SCALE:
            assert len(per_group) >= TASKS_PER_CPU * cpus
        elif lines.sum() >= TASKS_PER_CPU * cpus * TASK_LINES:
            assert len(per_group) == TASKS_PER_CPU * cpus, (units, cpus, len(per_group))
        assert len(per_group) < 3 or per_group[:-1].max() - per_group[:-1].min() <= 500, (units, cpus)
        coded = reading._groups(plan, ValidateConfig(check_code=True), None, cpus)  # type: ignore[arg-type]
        assert np.array_equal(coded, np.arange(units + 1))


# ---- failures ----------------------------------------------------------------------------------------------


def test_a_worker_killed_during_a_task_changes_nothing(tmp_path: Path) -> None:
    marks, retries = tmp_path / "marks", tmp_path / "retries"
    marks.mkdir()
    retries.mkdir()

    def die_once(units: list[LineUnit]) -> None:  # (in the worker: the first try of every group kills it)
        name = f"{Path(units[0].file).name}-{units[0].first_line}"
        if not (marks / name).exists():
            (marks / name).write_text(str(os.getpid()))
            os._exit(1)
        (retries / name).write_text(str(os.getpid()))

    cfg = ValidateConfig(check_code=False, chunk_size=10)
    want = load_valid([SAMPLE], cfg)
    v = validate_on_ray([SAMPLE], cfg, block_bytes=4096, rows_per_block=7, task_hook=die_once)
    died = {p.name: int(p.read_text()) for p in marks.iterdir()}
    again = {p.name: int(p.read_text()) for p in retries.iterdir()}
    assert len(died) == -(-v.units // 7) >= 2 and again.keys() == died.keys()  # (each group died once, ran again)
    assert all(again[name] != pid for name, pid in died.items())  # (in another worker process)
    assert v.recovered == 0  # (nothing was checked again line by line)
    assert_same((records_of(v), v.report, v.quarantined), want)  # (each group counts once)


def test_a_line_that_kills_its_worker_every_time_gets_parser_crashed_as_locally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = tmp_path / "crash.jsonl"
    code = (f"Find the bug:\n\n```solidity\ncontract {MARK} {{\n    function f() public "
            "{ msg.sender.call{value: 1}(\"\"); }\n}\n```")
    crash.write_bytes(b"\n".join([*sample_lines(2), record(code), *sample_lines(3)[2:]]) + b"\n")
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"\n".join(sample_lines(4)) + b"\n")
    files = [other, crash]
    cfg = ValidateConfig(check_code=True, chunk_size=2)
    monkeypatch.setenv(isolate.TEST_CRASH_ENV, MARK)  # (the local engine's workers and recovery children)
    want = load_valid(files, cfg)
    assert [r.rule for r in want[1].rules if r.rule == "parser-crashed"] == ["parser-crashed"]
    name = str(crash)
    calls = tmp_path / "calls"

    def arm(units: list[LineUnit]) -> None:  # (in the worker: the crash hook, armed for the crash file's groups)
        with open(calls, "a") as f:
            f.write(f"{units[0].file}:{units[0].first_line}\n")
        if any(u.file == name for u in units):  # (read by the single-use children that run the code checks)
            os.environ[isolate.TEST_CRASH_ENV] = MARK
        else:
            os.environ.pop(isolate.TEST_CRASH_ENV, None)

    v = validate_on_ray(files, cfg, block_bytes=64, task_hook=arm)
    assert v.recovered == 1  # (the crash file's unit holding the line: its child died)
    groups = calls.read_text().split()
    assert len(groups) == len(set(groups)) == v.units  # (no Ray worker died: no group ran twice)
    assert_same((records_of(v), v.report, v.quarantined), want)


def test_a_worker_that_dies_on_every_try_fails_the_run_with_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    from ray.data.exceptions import ExecutionTimeoutError

    tries = tmp_path / "tries"

    def die(units: list[LineUnit]) -> None:  # (in the worker: every try of every group kills it)
        with open(tries, "a") as f:
            f.write(f"{os.getpid()}\n")
        os._exit(1)

    # Ray Data runs the task again without end; its no-progress guard (30 minutes by default) ends the run.
    monkeypatch.setattr(ray.data.DataContext.get_current(), "execution_no_progress_timeout_s", 4)
    with pytest.raises(ExecutionTimeoutError) as e:
        validate_on_ray([SAMPLE], ValidateConfig(check_code=False), task_hook=die)
    assert "dies on every try" in " ".join(getattr(e.value, "__notes__", []))
    assert tries.read_text()  # (it ran, and died: how often depends on how fast Ray starts a worker again)
