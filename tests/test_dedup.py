"""dedup: planted exact and near duplicates of real records are found, look-alike prose with different
code is not merged, the output is deterministic and the counts add up."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema as js
import pyarrow as pa
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from swcdata.cli import app
from swcdata.dedup import DedupConfig, dedup
from swcdata.tokens import token_stream
from swcdata.validate import ValidateConfig, load_valid

runner = CliRunner()
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
DATASET = Path(__file__).resolve().parents[1] / "dataset"

REENTRANT = ("Find the vulnerability in this function:\n\n```solidity\nfunction withdraw(uint256 amount) public {\n"
             "    require(balances[msg.sender] >= amount);\n    (bool ok, ) = msg.sender.call{value: amount}(\"\");\n"
             "    require(ok);\n    balances[msg.sender] -= amount;\n}\n```")
FIXED = ("Reentrancy (SWC-107): the balance is updated after the external call. Update it first:\n\n```solidity\n"
         "function withdraw(uint256 amount) public {\n    require(balances[msg.sender] >= amount);\n"
         "    balances[msg.sender] -= amount;\n    (bool ok, ) = msg.sender.call{value: amount}(\"\");\n"
         "    require(ok);\n}\n```")


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _table(path: Path) -> pa.Table:
    table, _, _ = load_valid([path], ValidateConfig(check_code=False))
    return table


def _rename(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return text


def test_token_stream_abstracts_code_but_keeps_prose() -> None:
    toks = token_stream("Reentrancy in `msg.sender.call{value: amt}(\"\")` here", abstract_identifiers=True)
    assert toks[0] == "reentrancy" and "msg" in toks and "call" in toks and "amt" not in toks


def test_renamed_commented_reflowed_copy_is_a_near_duplicate(tmp_path: Path) -> None:
    base = {"instruction": REENTRANT, "response": FIXED, "category": "SWC-107"}
    mapping = {"withdraw": "takeOut", "amount": "value_", "balances": "ledger", "ok": "sent"}
    variant = {
        "instruction": _rename(REENTRANT, mapping).replace("Find the vulnerability in", "Identify the security flaw in")
        .replace("    require(", "  // check the caller's balance first\n        require(", 1),
        "response": _rename(FIXED, mapping).replace("\n    ", "\n\t"),
        "category": "SWC-107",
    }
    other = {"instruction": "What is wrong here?\n\n```solidity\nfunction mint(address to, uint256 n) external "
             "onlyOwner {\n    totalSupply += n;\n    balanceOf[to] += n;\n}\n```",
             "response": "Integer overflow (SWC-101) on totalSupply before Solidity 0.8; use SafeMath.",
             "category": "SWC-101"}
    kept, rep = dedup(_table(_write(tmp_path / "in.jsonl", [base, other, variant])))
    assert rep.ledger.near_duplicates == 1 and rep.ledger.kept == 2
    [r] = rep.removed
    assert r.kind == "near" and r.source.line == 3 and r.duplicate_of.source.line == 1
    assert r.similarity >= DedupConfig().threshold
    assert kept.column("source").to_pylist() == [{"file": str(tmp_path / "in.jsonl"), "line": 1},
                                                  {"file": str(tmp_path / "in.jsonl"), "line": 2}]


def test_similar_prose_with_different_code_is_not_merged(tmp_path: Path) -> None:
    prose = "Examine the following function for potential vulnerabilities and suggest a fix:\n\n"
    a = {"instruction": prose + "function pay(address to) public { to.transfer(address(this).balance); }",
         "response": "A failed transfer reverts the whole call (SWC-113); let recipients withdraw instead.",
         "category": "SWC-113"}
    b = {"instruction": prose + "function add(uint8 x, uint8 y) public pure returns (uint8) { return x + y; }",
         "response": "x + y can overflow uint8 (SWC-101); use checked arithmetic or SafeMath.",
         "category": "SWC-101"}
    _, rep = dedup(_table(_write(tmp_path / "in.jsonl", [a, b])))
    assert rep.ledger.kept == 2 and rep.removed == []


def test_exact_duplicates_ignore_typography_case_and_layout(tmp_path: Path) -> None:
    a = {"instruction": "Why is ‘x’ unsafe?\nfunction f() { x += 1; }", "response": "It’s an overflow — use SafeMath.",
         "category": "SWC-101"}
    b = {"instruction": "why is 'x'   UNSAFE? function f() { x += 1; }", "response": "It's an overflow - use SafeMath.",
         "category": "SWC-110"}
    _, rep = dedup(_table(_write(tmp_path / "in.jsonl", [a, b])))
    assert rep.ledger.exact_duplicates == 1
    assert rep.removed[0].duplicate_of.source.line == 1
    assert rep.category_conflicts == 1 and rep.clusters[0].categories == ["SWC-101", "SWC-110"]


@pytest.mark.parametrize(("typographic", "plain"), [
    ("It\u00b4s", "It's"),  # acute accent (NFKC alone makes it a space and a combining accent)
    ("\u2033x\u2033", '"x"'),  # double prime (NFKC alone makes it two primes)
    ("It\u02bcs", "It's"),  # modifier letter apostrophe
    ("re\u00adentrancy", "reentrancy"),  # soft hyphen
    ("re\u2060entrancy", "reentrancy"),  # word joiner
    ("\uff02x\uff02 \u2026", '"x" ...'),  # fullwidth quote, ellipsis
])
def test_typography_folds_to_the_plain_text_id(typographic: str, plain: str) -> None:
    from swcdata.text import normalize_text, record_id

    assert normalize_text(typographic) == normalize_text(plain)
    assert record_id(typographic, "r") == record_id(plain, "r")


def test_keep_longest(tmp_path: Path) -> None:
    short = {"instruction": REENTRANT, "response": FIXED, "category": "SWC-107"}
    long = {**short, "response": FIXED + "\n\nAlternatively, add a nonReentrant modifier from OpenZeppelin."}
    t = _table(_write(tmp_path / "in.jsonl", [short, long]))
    _, first = dedup(t, DedupConfig(keep="first", threshold=0.5))
    _, longest = dedup(t, DedupConfig(keep="longest", threshold=0.5))
    assert first.removed[0].source.line == 2 and longest.removed[0].source.line == 1


def test_planted_duplicates_of_real_seed_records(swc_files: list[Path], tmp_path: Path) -> None:
    lines = swc_files[0].read_text(encoding="utf-8").splitlines()[:300]
    records = [json.loads(x) for x in lines]
    rec = records[10]
    exact = {**rec, "instruction": "  " + rec["instruction"].upper() + "  "}
    near = {**rec, "instruction": "Please review. " + rec["instruction"].replace("\n", "\n  ")}
    _write(tmp_path / "planted.jsonl", [exact, near])
    table, _, _ = load_valid([swc_files[0], tmp_path / "planted.jsonl"], ValidateConfig(check_code=False))
    _, rep = dedup(table)
    by_line = {(Path(r.source.file).name, r.source.line): r for r in rep.removed}
    assert by_line[("planted.jsonl", 1)].kind == "exact"
    assert by_line[("planted.jsonl", 2)].kind == "near"
    # both point at the record kept for seed line 11: line 11 itself, or what line 11 duplicates
    original = by_line.get((swc_files[0].name, 11))
    expected_line = original.duplicate_of.source.line if original else 11
    for key in (("planted.jsonl", 1), ("planted.jsonl", 2)):
        assert by_line[key].duplicate_of.source.line == expected_line
        assert Path(by_line[key].duplicate_of.source.file).name == swc_files[0].name
    assert rep.ledger.balanced


def test_seed_corpus_counts_add_up(swc_files: list[Path]) -> None:
    table, vrep, _ = load_valid(swc_files, ValidateConfig(check_code=False))
    kept, rep = dedup(table)
    lg = rep.ledger
    assert vrep.ledger.lines_read == 5000 and vrep.ledger.quarantined == 2
    assert lg.records == 4998 == lg.kept + lg.exact_duplicates + lg.near_duplicates
    assert lg.exact_duplicates > 0 and lg.near_duplicates > 0 and kept.num_rows == lg.kept
    kept_ids = set(kept.column("id").to_pylist())
    assert all(r.duplicate_of.id in kept_ids for r in rep.removed)  # always points at a kept record
    assert len(rep.removed) == len({(r.source.file, r.source.line) for r in rep.removed})


def test_cli_dedup_is_deterministic_and_balanced(tmp_path: Path) -> None:
    outs = []
    for k in range(2):
        o, r = tmp_path / f"kept{k}.jsonl", tmp_path / f"r{k}.json"
        res = runner.invoke(app, ["dedup", str(DATASET), "--out", str(o), "--report", str(r), "--workers", "1"])
        assert res.exit_code == 0, res.output
        outs.append(o.read_bytes())
    assert outs[0] == outs[1]
    report = json.loads((tmp_path / "r0.json").read_text())
    js.validate(report, json.loads((SCHEMAS / "dedup-report.schema.json").read_text()))
    inp, lg = report["input"], report["ledger"]
    assert inp["lines_read"] == inp["blank_lines"] + inp["quarantined"] + lg["kept"] + lg["exact_duplicates"] \
        + lg["near_duplicates"]
    kept = [json.loads(x) for x in outs[0].decode().splitlines()]
    assert len(kept) == lg["kept"] and all("id" in k and "source" in k for k in kept)
    removed = {r["source"]["line"]: r for r in report["removed"]}
    assert removed[38]["kind"] == "exact" and removed[38]["duplicate_of"]["source"]["line"] == 21
    assert removed[76]["kind"] == "near" and removed[76]["duplicate_of"]["source"]["line"] == 41


@pytest.mark.parametrize("args", [["--threshold", "0"], ["--keep", "biggest"]])
def test_cli_bad_config_exit_2(args: list[str], tmp_path: Path) -> None:
    r = runner.invoke(app, ["dedup", str(DATASET), "--out", str(tmp_path / "o.jsonl"), *args])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_fast_token_hashes_equal_the_text_path(swc_files: list[Path]) -> None:
    """The signature path (raw token -> cached hashes) gives the same token hashes as joining the
    token streams and hashing the whitespace-split text, including string literals with spaces."""
    from swcdata import minhash, tokens

    records = [json.loads(x) for x in swc_files[1].read_text(encoding="utf-8").splitlines()[:200]]
    # and fields that are not ASCII: typography, a ligature, "ß" (case folding), odd blanks, in prose and code
    odd = ["Stra\u00dfe \u201cQuoted\u201d \ufb01le\u2014dash:\n`x = a\u00a0+ b;` and \u00c9t\u00e9 \u2028 end",
           "The \u2019fix\u2019:\n```\nuint \u00e9l\u00e8ve = 1; // \u00df\n```\nDone \x1c now."]
    ins = [str(r.get("instruction") or "") for r in records] + ['Call `f("a b  c")` /* x y */ now', "", *odd]
    res = [str(r.get("response") or "") for r in records] + ["```\nstring s = 'p q';\n```", "", *odd[::-1]]
    for ids, lits in ((True, False), (False, False), (True, True)):
        fast = tokens.token_hashes(ins, res, abstract_identifiers=ids, abstract_literals=lits)
        slow = minhash.token_hashes(tokens.record_streams(ins, res, abstract_identifiers=ids, abstract_literals=lits))
        assert (fast[0] == slow[0]).all() and (fast[1] == slow[1]).all()


def test_report_models_round_trip(swc_files: list[Path]) -> None:
    """The report's entries (built without per-entry validation) equal their validated JSON."""
    from swcdata.dedup import DedupReport

    table, _, _ = load_valid(swc_files[:2], ValidateConfig(check_code=False))
    _, rep = dedup(table)
    assert rep.removed and rep.clusters
    again = DedupReport.model_validate_json(rep.model_dump_json())
    assert again == rep and again.model_dump_json() == rep.model_dump_json()
    assert rep.removed[0].model_copy(update={"similarity": 0.5}).similarity == 0.5


def test_report_json_is_pydantics_own_bytes(swc_files: list[Path]) -> None:
    """The report writer splices the removed records in from orjson, in slices: the bytes are exactly
    what pydantic writes for the same report (and for a list of the same entries)."""
    from swcdata import removed as rm
    from swcdata.console import write_report_to
    from swcdata.removed import RemovedList

    table, _, _ = load_valid(swc_files[:2], ValidateConfig(check_code=False))
    _, rep = dedup(table)
    assert isinstance(rep.removed, RemovedList) and len(rep.removed) > 3
    own = rep.__pydantic_serializer__.to_json(rep, indent=2) + b"\n"
    as_list = rep.model_copy(update={"removed": list(rep.removed)})
    assert as_list.__pydantic_serializer__.to_json(as_list, indent=2) + b"\n" == own

    def written(report: object) -> bytes:
        buf = io.BytesIO()
        write_report_to(buf, report)
        return buf.getvalue()

    assert written(rep) == own
    for writer in (rm._fast, None):  # the C writer and orjson's slices (builds without the extension)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rm, "_fast", writer)
            assert written(rep) == own
            mp.setattr(rm, "_SLICE", 2)  # many slices, and a last one of one entry or two
            mp.setattr(rm, "_C_SLICE", 2)
            assert written(rep) == own
    empty = rep.model_copy(update={"removed": RemovedList([], [], [], [], [], [], [])})
    assert written(empty) == empty.__pydantic_serializer__.to_json(empty, indent=2) + b"\n"


def test_removed_list_reads_like_a_list_of_entries(tmp_path: Path) -> None:
    """Odd file names, both kinds, similarities that need rounding care: entries, equality,
    slicing and the JSON bytes match a plain list of Removed models."""
    from swcdata import removed as rm
    from swcdata.console import write_report_to
    from swcdata.removed import Removed, RemovedList
    from swcdata.schema import RecordRef, Source

    files = ['a "quoted" \\ file\t.jsonl', "données/ü.jsonl", "x\x00\x01\b\n\f\r\x1f\x7f\u2028\U0001f600/.jsonl"]
    rows = [("id0", files[0], 1), ("id1", files[1], 7), ("id2", files[2], 3), ("id3", files[0], 12)]
    entries = RemovedList([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], at=[1, 2, 3],
                          of=[0, 0, 2], exact=[True, False, False], similarity=[1.0, 0.0001, 0.0062])
    plain = [Removed(id=rows[a][0], source=Source(file=rows[a][1], line=rows[a][2]), kind=k, similarity=s,
                     duplicate_of=RecordRef(id=rows[o][0], source=Source(file=rows[o][1], line=rows[o][2])))
             for a, o, k, s in ((1, 0, "exact", 1.0), (2, 0, "near", 0.0001), (3, 2, "near", 0.0062))]
    assert entries == plain and plain == entries and list(entries) == plain and len(entries) == 3
    assert entries[-1] == plain[-1] and entries[1:] == plain[1:] and entries != plain[:2]
    assert RemovedList.of_entries(plain) == entries
    with pytest.raises(IndexError):
        entries[3]

    class Holder(BaseModel):
        count: int
        removed: RemovedList
        after: list[str]

    held = Holder(count=3, removed=entries, after=["z"])
    listed = Holder(count=3, removed=plain, after=["z"])  # a list is taken in as columns
    assert isinstance(listed.removed, RemovedList) and listed == held
    for writer in (rm._fast, None):  # the C writer and orjson's slices
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rm, "_fast", writer)
            buf = io.BytesIO()
            write_report_to(buf, held)
            assert buf.getvalue() == held.__pydantic_serializer__.to_json(held, indent=2) + b"\n"
    assert Holder.model_validate_json(buf.getvalue()) == held
    assert json.loads(buf.getvalue())["removed"][0]["source"]["file"] == files[1]


def test_signatures_do_not_depend_on_workers(swc_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata import dedup as d
    from swcdata.dedup import table_signatures

    monkeypatch.setattr(d, "_STEP", 300)  # several chunks, on a pool
    table, _, _ = load_valid(swc_files[:3], ValidateConfig(check_code=False))
    one = table_signatures(table, DedupConfig(workers=1))
    two = table_signatures(table, DedupConfig(workers=2))
    rows = pa.array(range(0, table.num_rows, 3)).to_numpy()
    assert (one == two).all() and (table_signatures(table, DedupConfig(workers=2), rows) == one[rows]).all()


def test_unique_equals_numpy_unique() -> None:
    """minhash.unique (sort and mask) is np.unique for the 1-D integer arrays LSH feeds it."""
    import numpy as np

    from swcdata import minhash

    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 1000):
        for hi in (1, 5, 1 << 40):
            x = rng.integers(0, hi, n, dtype=np.int64)
            got = minhash.unique(x)
            assert got.dtype == x.dtype and np.array_equal(got, np.unique(x))


def test_token_tables_are_bounded_and_restart_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-process lookup tables start afresh once they hold _CACHE_MAX entries, and the hashes
    after a restart are the same as before it."""
    from swcdata import tokens

    ins = [f"Fix `balance{k} -= amount{k};` in the vault number {k}." for k in range(300)]
    res = [f"Use `require(balance{k} >= amount{k}); balance{k} -= amount{k};` first." for k in range(300)]
    monkeypatch.setattr(tokens, "_TABLES", None)
    monkeypatch.setattr(tokens, "_CACHE_MAX", 500)
    first = tokens.token_hashes(ins[:150], res[:150])
    tables = tokens._TABLES
    assert tables is not None
    tokens.token_hashes(ins[150:], res[150:])  # past the bound: the next call restarts
    assert tables.entries() > 500
    again = tokens.token_hashes(ins[:150], res[:150])
    assert tokens._TABLES is not tables and tokens._TABLES.entries() <= tables.entries()
    assert (again[0] == first[0]).all() and (again[1] == first[1]).all()


def test_components_equal_scipy_connected_components() -> None:
    """minhash.components (numpy union-find) gives scipy's partition, each node labelled with the
    smallest node of its component, on random graphs, a long chain and no edges."""
    import numpy as np

    from swcdata import minhash

    scipy_sparse = pytest.importorskip("scipy.sparse")
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    rng = np.random.default_rng(0)
    chain = np.stack([np.arange(999, 0, -1), np.arange(998, -1, -1)], axis=1)  # 999-998-...-0, worst order
    cases = [(rng.integers(0, n, (k, 2)), n) for n, k in ((1, 1), (10, 4), (500, 300), (5000, 6000))]
    for pairs, n in [*cases, (chain, 1000), (np.zeros((0, 2), dtype=np.int64), 7)]:
        labels = minhash.components(pairs, n)
        graph = scipy_sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, want = csgraph.connected_components(graph, directed=False)
        assert len(set(zip(labels.tolist(), want.tolist(), strict=True))) == len(set(want.tolist()))
        assert len(set(labels.tolist())) == len(set(want.tolist()))
        first = np.full(n, n)
        np.minimum.at(first, labels, np.arange(n))
        assert (first[labels] == labels).all()  # a component's label is its smallest node


@pytest.mark.parametrize("workers", [1, 2])
def test_signing_progress_counts_every_record_once(workers: int, swc_files: list[Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """dedup reports the signing as (done, total) after each chunk: from 0 to every unique record,
    never backwards, on one process and on a pool."""
    import itertools

    import swcdata.dedup as d
    from swcdata.dedup import DedupConfig, dedup
    from swcdata.validate import ValidateConfig, load_valid

    monkeypatch.setattr(d, "_STEP", 500)
    table, _, _ = load_valid(swc_files[:3], ValidateConfig(check_code=False))
    calls: list[tuple[int, int]] = []
    dedup(table, DedupConfig(workers=workers), progress=lambda done, total: calls.append((done, total)))
    unique = len(set(table.column("id").to_pylist()))  # one signature per exact group
    assert calls[0] == (0, unique) and calls[-1] == (unique, unique)
    assert all(b[0] > a[0] and b[1] == unique for a, b in itertools.pairwise(calls))
    assert len(calls) == 1 + -(-unique // 500)
