"""augment_quality: what a variant is, measured against its parent."""

from __future__ import annotations

from swcdata.solidity import declarations, treesitter
from swcdata.solidity.spans import extract_code
from swcdata.steps.augment.quality import adds_only_header, measure, summarise

CODE = "function f(bool ok, address to) public {\n    if (!ok) { to.transfer(1); }\n}"


def _header(parent: str, variant: str) -> bool:
    return adds_only_header(parent, variant, extract_code(parent), extract_code(variant))


def test_a_header_or_footer_in_front_of_the_same_words_is_header_only() -> None:
    parent = f"Find the bug:\n\n{CODE}"
    assert _header(parent, f"Security review of a smart contract.\n\nFind the bug:\n\n{CODE}")
    assert _header(parent, f"Find the bug:\n\n{CODE}\n\nThanks.")
    assert not _header(parent, f"Identify the vulnerability in this function:\n\n{CODE}")
    assert not _header(parent, parent)  # (the record's own words: no header)
    assert not _header(parent, f"Find the bug:\n\n```solidity\n{CODE}\n```")  # (a fence is no prose)


def _row(instruction: str, rid: str, **kw: object) -> dict:
    return {"id": rid, "instruction": instruction, "response": "Fixed.", "parent_id": None, "transform": None,
            "template": None, **kw}


def test_renames_are_checked_against_the_declared_types_pool() -> None:
    parent = _row(f"Find the bug:\n\n{CODE}", "p")
    good = _row(f"Find the bug:\n\n{CODE.replace('ok', 'settled').replace('to', 'payee')}", "v1", parent_id="p",
                transform="rename_identifiers")
    bad = _row(f"Find the bug:\n\n{CODE.replace('ok', 'recipient').replace('to', 'FEE_RATE')}", "v2", parent_id="p",
               transform="rename_identifiers")
    facts = lambda c: declarations.facts(c, bodies=False)  # noqa: E731
    parses = lambda c: treesitter.parse(c).ok  # noqa: E731
    q1, q2 = measure(parent, good, parses, facts), measure(parent, bad, parses, facts)
    assert (q1.renames, q1.renames_typed, q1.renames_in_pool, q1.bool_off_type) == (2, 2, 2, [])
    assert (q2.renames_typed, q2.renames_in_pool, q2.bool_off_type) == (2, 0, ["ok -> recipient"])
    assert q1.spans_before == q1.parsed_before == q1.spans_after == q1.parsed_after == 1
    s = summarise([(parent, good, q1), (parent, bad, q2)])
    assert (s.renames_typed, s.renames_in_type_pool, s.type_pool_match_rate) == (4, 2, 0.5)
    assert s.bool_renamed_off_type == ["ok -> recipient"] and len(s.samples) == 2
    assert s.transform_shares == {"rename_identifiers": 1.0} and s.header_only == 0
