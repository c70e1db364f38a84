"""Code-level leaks: the same Solidity code under other prose is caught by code matching, in audit, split and
build; and on the seed corpus built with its test file as holdout, an independent check finds no test code in
train or validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from swcdata.similarity.codematch import CodeMatchConfig, code_pairs, record_code
from swcdata.steps.audit import AuditConfig, audit

REPO = Path(__file__).resolve().parents[1]

CLAIM = ("function claimTokens(address _token) public onlyOwner { if (_token == 0x0) { owner.transfer(this.balance); "
         "return; } ERC20 token = ERC20(_token); uint balance = token.balanceOf(this); token.transfer(owner, balance); "
         "ClaimedTokens(_token, owner, balance); }")
PURCHASE = ("function purchase() public payable { require(msg.value >= price); uint256 excess = msg.value - price; "
            "owner.transfer(price); msg.sender.transfer(excess); price = price * 2; owner = msg.sender; }")
OTHER = ("function setRate(uint256 newRate) external onlyAdmin { require(newRate > 0 && newRate < 1000); "
         "rate = newRate; emit RateChanged(rate); }")


def _table(rows: list[tuple[str, str, str]], file: str = "x.jsonl") -> pa.Table:
    from swcdata.core.records import RECORD_SCHEMA
    from swcdata.core.text import record_id

    return pa.Table.from_pylist([
        {"id": record_id(i, r), "instruction": i, "response": r, "category": c,
         "source": {"file": file, "line": k + 1}} for k, (i, r, c) in enumerate(rows)], schema=RECORD_SCHEMA)


def test_contained_contains_and_near_code() -> None:
    cfg = CodeMatchConfig()
    contract = f"contract Vault {{ uint price; {PURCHASE} {OTHER} }}"
    renamed = PURCHASE.replace("price", "cost").replace("excess", "change")
    a = record_code([f"Is this safe? '{PURCHASE}'", f"Check:\n\n{OTHER}", "No code here at all, only words."], cfg)
    b = record_code([f"Audit this contract:\n\n```solidity\n{contract}\n```", f"Look at `{renamed}` please"], cfg)
    p = code_pairs(a, b, cfg)
    got = {(int(i), int(j), k) for i, j, k in zip(p.i, p.j, p.kind, strict=True)}
    assert (0, 0, "contained") in got and (1, 0, "contained") in got  # two functions inside one contract
    assert (0, 1, "contained") in got  # a renamed copy is the same code once names are abstracted
    assert not any(i == 2 for i, _, _ in got)  # no code, no code match
    strict_names = CodeMatchConfig(abstract_identifiers=False)
    p2 = code_pairs(record_code([f"'{PURCHASE}'"], strict_names), record_code([f"`{renamed}`"], strict_names),
                    strict_names)
    assert not len(p2) or set(p2.kind) == {"near"}
    # the other direction: the reference's function sits inside the candidate's contract
    p3 = code_pairs(b[:1], a[:1], cfg)
    assert list(p3.kind) == ["contains"]


def test_one_line_fragments_are_not_code_matches() -> None:
    cfg = CodeMatchConfig()
    frag = "msg.sender.transfer(amount);"
    p = code_pairs(record_code([f"Why is `{frag}` risky?"], cfg), record_code([f"Fix `{frag}` here"], cfg), cfg)
    assert not len(p)


def test_a_test_function_inside_other_quoted_fragments_is_still_found() -> None:
    """A record that also quotes fragments of its code: each long enough span is matched on its own."""
    cfg = CodeMatchConfig()
    cand = record_code(["The calls `owner.transfer(price);` and `msg.sender.transfer(excess);` are risky."
                        f"\n\n{PURCHASE}"], cfg)
    ref = record_code([f"Review:\n\n{PURCHASE}"], cfg)
    assert list(code_pairs(cand, ref, cfg).kind) == ["contained"]


def test_audit_counts_code_pairs_apart_and_lists_label_conflicts() -> None:
    why = ("The owner sweeps the contract's ether and then every token balance to its own account; an external "
           "token contract is called before the event is logged, so a malicious token can call back into the "
           "sweeper while it runs, and the balance it reads may already be stale by the time it transfers. ")
    front = ("A miner or another user who watches the mempool sees the pending sweep and can place a transaction "
             "in front of it with a higher gas price, moving the balance first; the order of transactions in the "
             "block decides who ends up holding the tokens, which is the classic ordering dependence. ")
    ref = _table([(f"Which SWC class is this reentrancy?\n\n{CLAIM}", "SWC-107. " + why * 3, "SWC-107"),
                  (f"Review:\n\n{OTHER}", "Fine.", "SWC-101")])
    cand = _table([(f"Name the transaction-order issue in this token sweeper '{CLAIM}'", "SWC-114. " + front * 3,
                    "SWC-114"),
                   ("A question with no code, about gas.", "An answer about gas.", "SWC-101")], file="test.jsonl")
    rep = audit(ref, cand)
    s = rep.summary
    assert s.exact == 0 and s.near == 0 and s.code == 1 and s.code_pairs == 1 and s.label_conflicts == 1
    c = rep.candidates[0]
    assert c.status == "code" and c.leak and c.code_kind == "contained" and c.code_match is not None
    assert c.code_match.source.line == 1 and s.leaked == 1 and s.contamination_rate == 0.5
    [lc] = rep.label_conflicts
    assert (lc.candidate_category, lc.reference_category) == ("SWC-114", "SWC-107")
    # the code rule can be left out of the leak rules: reported, not a leak
    loose = audit(ref, cand, AuditConfig(leak_rules=["exact", "near"]))
    assert loose.summary.code == 1 and loose.summary.leaked == 0


def test_split_decontaminates_code_copies_and_groups_shared_code() -> None:
    from swcdata.steps.split import SplitConfig, split

    story = ("The order in which miners include the pending transactions decides who is paid, and a watcher of "
             "the mempool can jump ahead with more gas. ") * 3
    other = ("An external token is called before the state is final, so it may call back into the contract and "
             "read balances that are about to change. ") * 3
    holdout = _table([(f"Find the bug: '{CLAIM}'", "SWC-114. " + story, "SWC-114")], file="test.jsonl")
    rows = [(f"Explain the reentrancy in\n\n{CLAIM}\n\nin detail.", "It is SWC-107. " + other, "SWC-107")]
    import random

    vocab = [f"w{n}" for n in range(400)]
    prose = [" ".join(random.Random(k).choices(vocab, k=80)) for k in range(12)]  # unrelated prose, one code
    rows += [(f"Record {k}: {prose[k]} review\n\n{PURCHASE.replace('price', f'p{k}x')}", f"Answer {k}: {prose[k]}",
              "SWC-101") for k in range(12)]
    rows += [(f"Q{k} about `x{k} += {k};` only.", f"A{k} words words.", "SWC-101") for k in range(30)]
    table = _table(rows)
    parts, rep = split(table, SplitConfig(), holdout)
    assert [d.kind for d in rep.decontaminated] == ["code"] and rep.decontaminated[0].code_kind == "contained"
    assert len(rep.label_conflicts) == 1 and rep.records == table.num_rows
    # the twelve renamed copies of one function are one group: they land in one split
    where = {name for name, t in parts.items() if name != "test"
             for i in t.column("instruction").to_pylist() if "review" in i}
    assert len(where) == 1 and rep.code_groups >= 1
    # with the code rule off, the claimTokens record stays in train/validation
    _, loose = split(table, SplitConfig(leak_rules=["exact", "near"]), holdout)
    assert loose.decontaminated == []


def test_build_takes_the_leak_rules_from_its_audit_section(tmp_path: Path) -> None:
    from swcdata.core.errors import ConfigError
    from swcdata.registry.build import load_config

    cfg, _ = load_config(None, {"audit.ngram_counts_as_leak": True, "audit.code.min_tokens": 30})
    assert cfg.audit.ngram_counts_as_leak and cfg.audit.code.min_tokens == 30
    assert cfg.audit.leak_rules == ["exact", "near", "code"]
    with pytest.raises(ConfigError, match=r"set the leak rules in \[audit\]"):
        load_config(None, {"split.leak_rules": ["exact"]})
    with pytest.raises(ConfigError, match=r"audit\.leak_rules"):
        load_config(None, {"audit.leak_rules": ["exact", "fuzzy"]})


@pytest.fixture(scope="module")
def seed_holdout_build(tmp_path_factory: pytest.TempPathFactory, swc_files: list[Path], seed_test_file: Path
                       ) -> tuple[Path, dict]:
    """The five SWC files built with test_data.jsonl as the holdout, the default (strict) leak rules."""
    from swcdata.registry.build import BuildConfig, run_build

    home = tmp_path_factory.mktemp("registry")
    cfg = BuildConfig(name="seed", inputs=[str(f) for f in swc_files],
                      split={"holdout": [str(seed_test_file)]}, augment={"enabled": False})
    from swcdata.registry.store import Registry

    res = run_build(cfg, tmp_path_factory.mktemp("cfg"), home=home)
    manifest = json.loads((home / "seed" / f"v{res.version}" / "manifest.json").read_text())
    registry = Registry(home)  # (the per-record lists live in Parquet beside the manifest)
    manifest["removed_records"] = {kind: registry.removed_records(res.ref, kind)
                                   for kind in ("decontaminated", "label_conflicts")}
    return home / "seed" / f"v{res.version}", manifest


def test_no_test_code_in_train_by_an_independent_check(seed_holdout_build: tuple[Path, dict]) -> None:
    version, _ = seed_holdout_build
    for extra in ([], ["--abstract"]):
        res = subprocess.run([sys.executable, str(REPO / "bench" / "leak_check.py"), str(version), "--json", *extra],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
        found = json.loads(res.stdout)
        assert found["test_records"] == 999 and found["leaked"] == 0, found["examples"]
        assert res.returncode == 0


def test_the_build_reports_the_code_matches_it_removed_with_their_labels(seed_holdout_build: tuple[Path, dict]
                                                                         ) -> None:
    _, manifest = seed_holdout_build
    summary = next(s for s in manifest["steps"] if s["name"] == "split")["summary"]
    by_rule = summary["decontaminated_by_rule"]
    assert by_rule["code"] > 500 and by_rule["exact"] > 900  # the whole-record rule alone removed ~1,060
    assert summary["label_conflicts"] > 100
    removed = manifest["removed_records"]
    code = [d for d in removed["decontaminated"] if d["kind"] == "code"]
    assert len(code) == by_rule["code"] and all(d["code_kind"] in ("contained", "contains", "near") for d in code)
    conflicts = removed["label_conflicts"]
    assert len(conflicts) == summary["label_conflicts"]
    assert all(c["candidate_category"] != c["reference_category"] for c in conflicts)
    # the seed's own example: test line 9 (claimTokens, SWC-114) is the code of SWC-107.jsonl:858
    assert any(c["reference"]["source"]["line"] == 9 and c["candidate"]["source"]["line"] == 858
               and "SWC-107" in c["candidate"]["source"]["file"] for c in conflicts)
    audit_step = next(s for s in manifest["steps"] if s["name"] == "audit")
    pairs = [v for v in audit_step["summary"].values() if isinstance(v, dict)]
    assert len(pairs) == 3 and all(v["code"] == 0 and v["leaked"] == 0 for v in pairs)


def test_grouping_joins_identical_code_by_a_star_with_the_same_groups() -> None:
    """The split's code edges search only distinct code, yet give the components that every pair would."""
    import numpy as np

    from swcdata.similarity import minhash
    from swcdata.steps.split import SplitConfig, _code_edges

    cfg = SplitConfig()
    texts = [f"Case {k}: review\n\n{PURCHASE}" for k in range(6)] + [f"Other {k}:\n\n{OTHER}" for k in range(3)]
    texts += [f"Inside:\n\ncontract V {{ {PURCHASE} }}", "No code in this one at all, only words."]
    codes = record_code(texts, cfg.code)
    edges = _code_edges(codes, cfg)
    every = code_pairs(codes, None, cfg.code)
    n = len(texts)
    assert len(edges) < len(every)
    assert np.array_equal(minhash.components(edges, n),
                          minhash.components(np.stack([every.i, every.j], axis=1), n))
    labels = minhash.components(edges, n)
    assert len({int(labels[k]) for k in (*range(6), 9)}) == 1 and labels[10] == 10
