"""dedup: planted exact and near duplicates of real records are found, look-alike prose with different
code is not merged, the output is deterministic and the counts add up."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema as js
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.similarity.tokens import token_stream
from swcdata.steps.dedup import DedupConfig, dedup
from swcdata.steps.validate import ValidateConfig, load_valid

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


def _removed(rep: object) -> list[dict]:
    """The report's removed records as plain dicts (id, source, kind, similarity, duplicate_of, cluster)."""
    return rep.removed_table.to_pylist()  # type: ignore[attr-defined]


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
    [r] = _removed(rep)
    assert r["kind"] == "near" and r["source"]["line"] == 3 and r["duplicate_of"]["source"]["line"] == 1
    assert r["similarity"] >= DedupConfig().threshold and r["cluster"] == 0
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
    assert rep.ledger.kept == 2 and _removed(rep) == [] and rep.clusters == rep.clusters_table.num_rows == 0


def test_exact_duplicates_ignore_typography_case_and_layout(tmp_path: Path) -> None:
    a = {"instruction": "Why is ‘x’ unsafe?\nfunction f() { x += 1; }", "response": "It’s an overflow — use SafeMath.",
         "category": "SWC-101"}
    b = {"instruction": "why is 'x'   UNSAFE? function f() { x += 1; }", "response": "It's an overflow - use SafeMath.",
         "category": "SWC-110"}
    _, rep = dedup(_table(_write(tmp_path / "in.jsonl", [a, b])))
    assert rep.ledger.exact_duplicates == 1
    assert _removed(rep)[0]["duplicate_of"]["source"]["line"] == 1
    assert rep.category_conflicts == 1 and rep.largest_clusters[0].categories == ["SWC-101", "SWC-110"]
    assert rep.clusters_table.column("categories").to_pylist() == [["SWC-101", "SWC-110"]]


@pytest.mark.parametrize(("typographic", "plain"), [
    ("It\u00b4s", "It's"),  # acute accent (NFKC alone makes it a space and a combining accent)
    ("\u2033x\u2033", '"x"'),  # double prime (NFKC alone makes it two primes)
    ("It\u02bcs", "It's"),  # modifier letter apostrophe
    ("re\u00adentrancy", "reentrancy"),  # soft hyphen
    ("re\u2060entrancy", "reentrancy"),  # word joiner
    ("\uff02x\uff02 \u2026", '"x" ...'),  # fullwidth quote, ellipsis
])
def test_typography_folds_to_the_plain_text_id(typographic: str, plain: str) -> None:
    from swcdata.core.text import normalize_text, record_id

    assert normalize_text(typographic) == normalize_text(plain)
    assert record_id(typographic, "r") == record_id(plain, "r")


def test_keep_longest(tmp_path: Path) -> None:
    short = {"instruction": REENTRANT, "response": FIXED, "category": "SWC-107"}
    long = {**short, "response": FIXED + "\n\nAlternatively, add a nonReentrant modifier from OpenZeppelin."}
    t = _table(_write(tmp_path / "in.jsonl", [short, long]))
    _, first = dedup(t, DedupConfig(keep="first", threshold=0.5))
    _, longest = dedup(t, DedupConfig(keep="longest", threshold=0.5))
    assert _removed(first)[0]["source"]["line"] == 2 and _removed(longest)[0]["source"]["line"] == 1


def test_planted_duplicates_of_real_seed_records(swc_files: list[Path], tmp_path: Path) -> None:
    lines = swc_files[0].read_text(encoding="utf-8").splitlines()[:300]
    records = [json.loads(x) for x in lines]
    rec = records[10]
    exact = {**rec, "instruction": "  " + rec["instruction"].upper() + "  "}
    near = {**rec, "instruction": "Please review. " + rec["instruction"].replace("\n", "\n  ")}
    _write(tmp_path / "planted.jsonl", [exact, near])
    table, _, _ = load_valid([swc_files[0], tmp_path / "planted.jsonl"], ValidateConfig(check_code=False))
    _, rep = dedup(table)
    by_line = {(Path(r["source"]["file"]).name, r["source"]["line"]): r for r in _removed(rep)}
    assert by_line[("planted.jsonl", 1)]["kind"] == "exact"
    assert by_line[("planted.jsonl", 2)]["kind"] == "near"
    # both point at the record kept for seed line 11: line 11 itself, or what line 11 duplicates
    original = by_line.get((swc_files[0].name, 11))
    expected_line = original["duplicate_of"]["source"]["line"] if original else 11
    for key in (("planted.jsonl", 1), ("planted.jsonl", 2)):
        assert by_line[key]["duplicate_of"]["source"]["line"] == expected_line
        assert Path(by_line[key]["duplicate_of"]["source"]["file"]).name == swc_files[0].name
    assert rep.ledger.adds_up


def test_seed_corpus_counts_add_up(swc_files: list[Path]) -> None:
    table, vrep, _ = load_valid(swc_files, ValidateConfig(check_code=False))
    kept, rep = dedup(table)
    lg = rep.ledger
    assert vrep.ledger.lines_read == 5000 and vrep.ledger.quarantined == 2
    assert lg.records == 4998 == lg.kept + lg.exact_duplicates + lg.near_duplicates
    assert lg.exact_duplicates > 0 and lg.near_duplicates > 0 and kept.num_rows == lg.kept
    kept_ids = set(kept.column("id").to_pylist())
    removed = _removed(rep)
    assert all(r["duplicate_of"]["id"] in kept_ids for r in removed)  # always points at a kept record
    assert len(removed) == len({(r["source"]["file"], r["source"]["line"]) for r in removed})


def test_cli_dedup_is_deterministic_and_its_ledger_adds_up(tmp_path: Path) -> None:
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
    assert report["lists"]["removed"] == "r0.removed.parquet" and report["lists"]["clusters"] == "r0.clusters.parquet"
    removed = {r["source"]["line"]: r for r in pq.read_table(tmp_path / report["lists"]["removed"]).to_pylist()}
    assert removed[38]["kind"] == "exact" and removed[38]["duplicate_of"]["source"]["line"] == 21
    assert removed[76]["kind"] == "near" and removed[76]["duplicate_of"]["source"]["line"] == 41
    clusters = pq.read_table(tmp_path / report["lists"]["clusters"]).to_pylist()
    assert len(clusters) == report["clusters"] and [c["size"] for c in clusters] == [2, 2]
    assert {r["cluster"] for r in removed.values()} == {c["cluster"] for c in clusters}
    # the same report and lists each time (timings aside)
    for name in ("removed", "clusters"):
        assert pq.read_table(tmp_path / f"r0.{name}.parquet").equals(pq.read_table(tmp_path / f"r1.{name}.parquet"))


@pytest.mark.parametrize("args", [["--threshold", "0"], ["--keep", "biggest"]])
def test_cli_bad_config_exit_2(args: list[str], tmp_path: Path) -> None:
    r = runner.invoke(app, ["dedup", str(DATASET), "--out", str(tmp_path / "o.jsonl"), *args])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_fast_token_hashes_equal_the_text_path(swc_files: list[Path]) -> None:
    """The signature path (raw token -> cached hashes) gives the same token hashes as joining the
    token streams and hashing the whitespace-split text, including string literals with spaces."""
    from swcdata.similarity import minhash, tokens

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
    """The report's JSON is its summary: read back, it equals the report's own JSON; the per-record tables
    travel beside it (a copy keeps them, a report read from JSON has none and says where they are)."""
    from swcdata.steps.dedup import CLUSTERS_SCHEMA, REMOVED_SCHEMA, DedupReport

    table, _, _ = load_valid(swc_files[:2], ValidateConfig(check_code=False))
    _, rep = dedup(table)
    assert rep.removed_table.num_rows == rep.ledger.exact_duplicates + rep.ledger.near_duplicates > 3
    assert rep.clusters_table.num_rows == rep.clusters > 0
    assert rep.removed_table.schema == REMOVED_SCHEMA and rep.clusters_table.schema == CLUSTERS_SCHEMA
    text = rep.model_dump_json()
    assert '"duplicate_of"' not in text and "removed" not in json.loads(text)  # (no per-record list)
    again = DedupReport.model_validate_json(text)
    assert again.model_dump_json() == text
    with pytest.raises(ValueError, match=r"lists\.removed"):
        again.removed_table  # noqa: B018
    copy = rep.model_copy(update={"input": None})
    assert copy.removed_table is rep.removed_table and copy.clusters_table is rep.clusters_table
    sizes = [c.size for c in rep.largest_clusters]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == min(rep.clusters, 20)
    assert sizes[0] == max(rep.clusters_table.column("size").to_pylist())


def test_seed_report_lists_are_parquet_beside_a_small_json(seed_dir: Path, tmp_path: Path) -> None:
    """`dedup --report` on the seed corpus: a small JSON summary that names two Parquet files beside it,
    whose rows are the removed records and clusters of the step's clustering, computed here row by row
    from its arrays (what the report's JSON held inline before)."""
    import numpy as np

    from swcdata.core.io import resolve_inputs
    from swcdata.steps.dedup import cluster

    files = resolve_inputs([str(seed_dir)])
    table, _, _ = load_valid([str(p) for p in files], ValidateConfig(check_code=False))
    cfg = DedupConfig(workers=1)
    c = cluster(table, cfg, member_floor=cfg.member_floor())
    ids, src = table.column("id").to_pylist(), table.column("source").to_pylist()
    want_removed, want_sizes = set(), {}
    for i, f in enumerate(c.final.tolist()):
        want_sizes[f] = want_sizes.get(f, 0) + 1
        if f != i:
            exact = int(c.exact_rep[i]) == f
            sim = 1.0 if exact else round(float(c.sim_to_rep[c.exact_rep[i]]), 4)
            want_removed.add((ids[i], src[i]["file"], src[i]["line"], "exact" if exact else "near", ids[f],
                              src[f]["file"], src[f]["line"], sim))
    want_clusters = {(ids[f], src[f]["file"], src[f]["line"], n) for f, n in want_sizes.items() if n > 1}

    rep_path = tmp_path / "out" / "dedup.json"
    r = runner.invoke(app, ["dedup", str(seed_dir), "--out", str(tmp_path / "kept.jsonl"), "--report", str(rep_path),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in rep_path.parent.iterdir()) == ["dedup.clusters.parquet", "dedup.json",
                                                                 "dedup.removed.parquet"]
    report = json.loads(rep_path.read_text())
    js.validate(report, json.loads((SCHEMAS / "dedup-report.schema.json").read_text()))
    assert rep_path.stat().st_size < 20_000 and "removed" not in report  # (the old JSON: 932 KB here)
    removed = pq.read_table(rep_path.parent / report["lists"]["removed"])
    clusters = pq.read_table(rep_path.parent / report["lists"]["clusters"])
    got = {(r["id"], r["source"]["file"], r["source"]["line"], r["kind"], r["duplicate_of"]["id"],
            r["duplicate_of"]["source"]["file"], r["duplicate_of"]["source"]["line"], r["similarity"])
           for r in removed.to_pylist()}
    lg = report["ledger"]
    assert removed.num_rows == len(got) == len(want_removed) == lg["exact_duplicates"] + lg["near_duplicates"] > 1000
    assert got == want_removed
    rows = clusters.to_pylist()
    assert {(c["representative"]["id"], c["representative"]["source"]["file"], c["representative"]["source"]["line"],
             c["size"]) for c in rows} == want_clusters
    assert len(rows) == report["clusters"] and [c["cluster"] for c in rows] == list(range(len(rows)))
    # a removed record's cluster is the one its kept record represents; counts and similarities agree
    rep_of = {c["cluster"]: c["representative"]["id"] for c in rows}
    assert all(rep_of[r["cluster"]] == r["duplicate_of"]["id"] for r in removed.to_pylist())
    n_exact = np.bincount(removed.column("cluster").to_numpy()[removed.column("kind").to_numpy(False) == "exact"],
                          minlength=len(rows))
    assert [c["exact"] for c in rows] == n_exact.tolist()
    assert all(c["exact"] + c["near"] == c["size"] - 1 for c in rows)
    assert [c["cluster"] for c in report["largest_clusters"]] == [
        c["cluster"] for c in sorted(rows, key=lambda c: (-c["size"], c["cluster"]))[:20]]
    assert report["category_conflicts"] == sum(len(c["categories"]) > 1 for c in rows)


def test_dedup_lists_move_in_place_with_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report and its two Parquet files are one output: an interrupt while the last is written
    leaves the old three (and the kept records) as they were, and no temporary file."""
    from swcdata.core import arrow

    names = ["k.jsonl", "r.clusters.parquet", "r.json", "r.removed.parquet"]
    for name in names:
        (tmp_path / name).write_bytes(b"old\n")
    real, calls = arrow.write_parquet, []

    def interrupted(table: pa.Table, f: object) -> None:
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(table, f)  # type: ignore[arg-type]

    monkeypatch.setattr(arrow, "write_parquet", interrupted)
    args = ["dedup", str(DATASET), "--out", str(tmp_path / "k.jsonl"), "--report", str(tmp_path / "r.json")]
    r = runner.invoke(app, args)
    assert r.exit_code == 130 and len(calls) == 2, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert all((tmp_path / name).read_bytes() == b"old\n" for name in names)
    monkeypatch.setattr(arrow, "write_parquet", real)
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert pq.read_table(tmp_path / "r.removed.parquet").num_rows == 2


@pytest.mark.parametrize("report", [None, "-"])
def test_dedup_summary_says_when_lists_are_not_written(report: str | None, tmp_path: Path) -> None:
    """Without a --report file (none, or stdout) the summary says that the per-record lists were not
    written and how to get them; no Parquet file appears anywhere."""
    where = ["--report", report] if report else ["--json"]
    args = ["dedup", str(DATASET), "--out", str(tmp_path / "k.jsonl"), *where]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    report_json = json.loads(r.stdout)
    assert report_json["lists"]["removed"] is None and report_json["lists"]["clusters"] is None
    assert "not written" in report_json["lists"]["note"] and "--report FILE" in report_json["lists"]["note"]
    assert report_json["clusters"] == 2 and len(report_json["largest_clusters"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.jsonl"]


def test_signatures_do_not_depend_on_workers(swc_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.steps import dedup as d
    from swcdata.steps.dedup import table_signatures

    monkeypatch.setattr(d, "_STEP", 300)  # several chunks, on a pool
    table, _, _ = load_valid(swc_files[:3], ValidateConfig(check_code=False))
    one = table_signatures(table, DedupConfig(workers=1))
    two = table_signatures(table, DedupConfig(workers=2))
    rows = pa.array(range(0, table.num_rows, 3)).to_numpy()
    assert (one == two).all() and (table_signatures(table, DedupConfig(workers=2), rows) == one[rows]).all()


def test_unique_equals_numpy_unique() -> None:
    """minhash.unique (sort and mask) is np.unique for the 1-D integer arrays LSH feeds it."""
    import numpy as np

    from swcdata.similarity import minhash

    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 1000):
        for hi in (1, 5, 1 << 40):
            x = rng.integers(0, hi, n, dtype=np.int64)
            got = minhash.unique(x)
            assert got.dtype == x.dtype and np.array_equal(got, np.unique(x))


def test_hash_order_is_the_stable_argsort() -> None:
    """minhash.hash_order (a sort of each hash's high bits packed with its position, then the runs of equal high
    bits put in order) is np.argsort(kind="stable"): equal hashes in their order, and hashes that differ only in
    the bits the position takes (many of them: every run is fixed), below and above the size it sorts from."""
    import numpy as np

    from swcdata.similarity import minhash

    rng = np.random.default_rng(1)
    for n in (0, 1, 5, minhash._ORDER_BY_ARGSORT - 1, minhash._ORDER_BY_ARGSORT, 100_003):
        distinct = rng.integers(0, 2**64 - 1, max(1, n // 3), dtype=np.uint64, endpoint=True)
        for h in (distinct[rng.integers(0, len(distinct), n)],  # repeats
                  (distinct[rng.integers(0, len(distinct), n)] >> np.uint64(40) << np.uint64(40))
                  | rng.integers(0, 8, n).astype(np.uint64),  # high bits shared, low bits differ
                  np.full(n, 2**64 - 1, dtype=np.uint64), np.arange(n, 0, -1).astype(np.uint64)):
            got = minhash.hash_order(h)
            assert got.dtype == np.int64 and np.array_equal(got, np.argsort(h, kind="stable")), n
    h = rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True)[::2]  # (a strided view)
    assert np.array_equal(minhash.hash_order(h), np.argsort(h, kind="stable"))



def test_band_hashes_fold_each_band_as_the_definition_says() -> None:
    """minhash.band_hashes (in chunks of records, fmix64 in place) is, for every record and band, the band's
    seed folded with each of its slots by fmix64, computed one record at a time in Python integers; at record
    counts around the chunk size and for a banding that leaves slots out."""
    import numpy as np

    from swcdata.similarity import minhash

    mask = (1 << 64) - 1

    def fmix(x: int) -> int:
        for m in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
            x = ((x ^ (x >> 33)) * m) & mask
        return x ^ (x >> 33)

    rng = np.random.default_rng(3)
    for n, bands, rows in ((0, 4, 3), (1, 14, 9), (minhash._BAND_CHUNK + 1, 5, 7), (2 * minhash._BAND_CHUNK, 3, 2)):
        sig = rng.integers(0, 1 << 32, (n, 128), dtype=np.uint64).astype(np.uint32)
        got = minhash.band_hashes(sig, bands, rows)
        assert got.shape == (n, bands) and got.dtype == np.uint64
        for i in sorted({0, n // 2, n - 1} if n else set()):
            for b in range(bands):
                h = ((b + 1) * int(minhash._MUL)) & mask
                for c in range(b * rows, (b + 1) * rows):
                    h = fmix(h ^ int(sig[i, c]))
                assert int(got[i, b]) == h, (n, i, b)

def test_token_tables_are_bounded_and_restart_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-process lookup tables start afresh once they hold _CACHE_MAX entries, and the hashes
    after a restart are the same as before it."""
    from swcdata.similarity import tokens

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

    from swcdata.similarity import minhash

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

    import swcdata.steps.dedup as d
    from swcdata.steps.dedup import DedupConfig, dedup
    from swcdata.steps.validate import ValidateConfig, load_valid

    monkeypatch.setattr(d, "_STEP", 500)
    table, _, _ = load_valid(swc_files[:3], ValidateConfig(check_code=False))
    calls: list[tuple[int, int]] = []
    dedup(table, DedupConfig(workers=workers), progress=lambda done, total: calls.append((done, total)))
    unique = len(set(table.column("id").to_pylist()))  # one signature per exact group
    assert calls[0] == (0, unique) and calls[-1] == (unique, unique)
    assert all(b[0] > a[0] and b[1] == unique for a, b in itertools.pairwise(calls))
    assert len(calls) == 1 + -(-unique // 500)


def _chain(path: Path, seed: int = 5, words: int = 300, cut: int = 40) -> pa.Table:
    """Three records A ~ B ~ C: B is A with its first `cut` words replaced, C is B with its last `cut` replaced
    (A and B, B and C share about 0.76 of their 5-word shingles; A and C about 0.56)."""
    import random

    rng = random.Random(seed)
    vocab = [f"w{k}" for k in range(5000)]
    a = [rng.choice(vocab) for _ in range(words)]
    b = [rng.choice(vocab) for _ in range(cut)] + a[cut:]
    c = b[: words - cut] + [rng.choice(vocab) for _ in range(cut)]
    rows = [{"instruction": "Explain this.", "response": " ".join(t), "category": "SWC-107"} for t in (a, b, c)]
    return _table(_write(path, rows))


def test_guard_splits_off_the_far_end_of_a_chain(tmp_path: Path) -> None:
    """A ~ B ~ C with A and C below the member threshold: C is split off into a cluster of its own (kept), B stays
    a near duplicate of A; without the guard (member_threshold 0) the chain is one cluster and C goes too."""
    import numpy as np

    from swcdata.similarity import minhash
    from swcdata.steps.dedup import table_signatures

    table = _chain(tmp_path / "chain.jsonl")
    cfg = DedupConfig(num_perm=256, workers=1)
    sig = table_signatures(table, cfg)
    ab, bc, ac = minhash.similarity(sig, np.array([[0, 1], [1, 2], [0, 2]]))
    assert ab >= cfg.threshold and bc >= cfg.threshold and ac < cfg.member_floor() == 0.6  # (the premise)
    kept, report = dedup(table, cfg)
    assert kept.column("response").to_pylist() == table.column("response").take([0, 2]).to_pylist()
    assert report.split_off == 1 and report.ledger.near_duplicates == 1 and report.clusters == 1
    assert report.largest_clusters[0].split_off == 1 and report.clusters_table.column("split_off").to_pylist() == [1]
    assert report.removed_table.column("duplicate_of").to_pylist()[0]["source"]["line"] == 1
    kept, report = dedup(table, cfg.model_copy(update={"member_threshold": 0.0}))
    assert kept.num_rows == 1 and report.split_off == 0 and report.ledger.near_duplicates == 2
    assert min(report.removed_table.column("similarity").to_pylist()) < 0.6  # (the far end, kept in the chain)


def test_guarded_rounds_are_deterministic_and_settle_every_member() -> None:
    """`guarded` on a made-up similarity: a cluster 0..5 whose far members {3, 4, 5} form the next cluster around
    3, where 5 is far again and ends alone; another cluster {6, 7} untouched; no floor: the plain rule."""
    import numpy as np

    from swcdata.steps.dedup import guarded

    near = {frozenset(p) for p in ((0, 1), (0, 2), (3, 4), (6, 7))}

    def similar(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.array([0.9 if frozenset((a, b)) in near else 0.3 for a, b in zip(i.tolist(), j.tolist(),
                                                                                     strict=True)])

    labels = np.array([0, 0, 0, 0, 0, 0, 6, 6])
    priority = np.arange(8)  # (the input order)
    rep, sim, origin = guarded(labels, priority, similar, 0.6)
    assert rep.tolist() == [0, 0, 0, 3, 3, 5, 6, 6]
    assert sim.tolist() == [1.0, 0.9, 0.9, 1.0, 0.9, 1.0, 1.0, 0.9]
    assert origin.tolist() == [0, 0, 0, 0, 0, 0, 6, 6]  # (3, 4 and 5 split off the cluster of 0)
    again = guarded(labels[::-1].copy(), priority[::-1].copy(), lambda i, j: similar(7 - i, 7 - j), 0.6)
    assert (7 - again[0][::-1]).tolist() == rep.tolist()  # (the same clusters, whatever the element order)
    plain = guarded(labels, priority, similar, None)
    assert plain[0].tolist() == [0, 0, 0, 0, 0, 0, 6, 6] and (plain[2] == plain[0]).all()


def test_keep_none_removes_every_record_of_a_cluster(tmp_path: Path) -> None:
    """--keep none: no record of a cluster of more than one stays; the first of each cluster goes as a duplicate of
    its first other member, the others as before; the ledger adds up; records in no cluster stay."""
    base = {"instruction": REENTRANT, "response": FIXED, "category": "SWC-107"}
    variant = {"instruction": REENTRANT.replace("Find the vulnerability in", "Identify the security flaw in"),
               "response": FIXED, "category": "SWC-107"}
    other = {"instruction": "What is wrong here?\n\n```solidity\nfunction mint(address to, uint256 n) external "
             "onlyOwner {\n    totalSupply += n;\n    balanceOf[to] += n;\n}\n```",
             "response": "Integer overflow (SWC-101) on totalSupply before Solidity 0.8; use SafeMath.",
             "category": "SWC-101"}
    table = _table(_write(tmp_path / "in.jsonl", [base, other, variant, base]))
    kept, rep = dedup(table, DedupConfig(keep="none"))
    assert kept.column("source").to_pylist() == [{"file": str(tmp_path / "in.jsonl"), "line": 2}]
    assert rep.ledger.kept == 1 and rep.ledger.exact_duplicates == 1 and rep.ledger.near_duplicates == 2
    assert rep.ledger.adds_up and rep.clusters == 1
    rows = {r["source"]["line"]: (r["kind"], r["duplicate_of"]["source"]["line"], r["cluster"]) for r in _removed(rep)}
    assert rows == {1: ("near", 3, 0), 3: ("near", 1, 0), 4: ("exact", 1, 0)}  # (line 1: as its first other member's)
    _, first = dedup(table, DedupConfig(keep="first"))
    assert first.clusters_table.equals(rep.clusters_table)  # (the same clusters, named by their first record)
    r = runner.invoke(app, ["dedup", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "k.jsonl"), "--keep", "none",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ledger"]["kept"] == 1
