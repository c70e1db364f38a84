"""Tests for swcdata.solidity: extraction shapes, the code-ish judgement, lexing, parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swcdata.solidity.lexer import code_tokens, normalize_code
from swcdata.solidity.spans import CodeSpan, extract_code, is_codeish, looks_like_code
from swcdata.solidity.treesitter import ParseResult, identifier_nodes, parse

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "seed-data"


def spans(text: str) -> list[CodeSpan]:
    out = extract_code(text)
    # invariants: offsets point at the text, spans are ordered and do not overlap
    last = 0
    for s in out:
        assert text[s.start : s.end] == s.text
        assert s.start >= last
        assert s.shape in {"fence", "inline", "block"}
        last = s.end
    return out


def texts(text: str) -> list[tuple[str, str]]:
    return [(s.shape, s.text) for s in spans(text)]


# ------------------------------------------------------------------------------ fences


def test_fence_with_language_tag() -> None:
    t = "Fix it like this:\n\n```solidity\nrequire(ok);\nx = 1;\n```\n\nThat is all."
    assert texts(t) == [("fence", "require(ok);\nx = 1;")]


def test_bare_fence_and_prose_after_closing_fence() -> None:
    t = "Code:\n```\nfunction f() public { a = b; }\n``` This ensures that the call is safe."
    assert texts(t) == [("fence", "function f() public { a = b; }")]


def test_unclosed_fence_runs_to_end() -> None:
    t = "Here:\n```solidity\ncontract A {\n  uint x;\n"
    assert texts(t) == [("fence", "contract A {\n  uint x;")]


def test_one_line_fence_without_language() -> None:
    assert texts("Use ```balances[a] -= v;``` instead.") == [("fence", "balances[a] -= v;")]


def test_two_fences_and_inline_between() -> None:
    t = "```solidity\na = 1;\n```\nthen `b.call()` and\n```\nc = 2;\n```"
    assert texts(t) == [("fence", "a = 1;"), ("inline", "b.call()"), ("fence", "c = 2;")]


# ------------------------------------------------------------------------------ inline


def test_backtick_inline_code() -> None:
    t = "The call `x.transfer(y)` may fail; prefer `call` over `transfer`."
    assert texts(t) == [("inline", "x.transfer(y)")]


def test_single_quoted_inline_with_apostrophes_in_prose() -> None:
    t = "It's the contract's problem: in 'owner.send(amount);' the result isn't checked."
    assert texts(t) == [("inline", "owner.send(amount);")]


def test_single_quoted_multiline_function_with_inner_quotes() -> None:
    code = (
        "function pay(address to) internal {\n"
        ' require(to != address(0), "can\'t pay zero");\n'
        " // we don't check the result here\n"
        " to.send(1);\n"
        " require(ok, 'failed');\n"
        "}"
    )
    t = f"In the following code, identify any issues:\n\n'{code}'"
    assert texts(t) == [("inline", code)]


def test_single_quote_with_inner_single_quoted_string() -> None:
    t = "The corrected code is: 'require(token.transfer(a, b), 'Transfer failed');'. Done."
    assert texts(t) == [("inline", "require(token.transfer(a, b), 'Transfer failed');")]


def test_quote_with_spaces_inside() -> None:
    t = "How do you fix this? ' function f() public { x += 1; } '"
    assert texts(t) == [("inline", "function f() public { x += 1; }")]


def test_names_and_phrases_in_quotes_are_not_code() -> None:
    t = (
        "This is an 'Assert Violation' (SWC-110). Follow the 'checks-effects-interactions' "
        "pattern, use `transfer` or `SafeMath`, see 'SafeMath.sol', and the users' funds are safe."
    )
    assert texts(t) == []


def test_unclosed_quote_around_code_is_still_found() -> None:
    t = "The corrected code should be: 'uint256 lastId = items.length; items[las"
    got = texts(t)
    assert got and got[0][1].startswith("uint256 lastId = items.length;")


# ------------------------------------------------------------------------------ blocks


def test_block_after_blank_line_with_trailing_question() -> None:
    code = "function add(uint a, uint b) public returns (uint) {\n    return a + b;\n}"
    t = f"Given the code snippet:\n\n{code} \n\nWhat vulnerability exists in this code?"
    assert texts(t) == [("block", code)]


def test_block_after_colon_on_same_line_with_prose_after() -> None:
    code = "function send(address to) public onlyOwner { to.transfer(1 ether); }"
    t = f"Examine the following code: {code} What issues exist?"
    assert texts(t) == [("block", code)]


def test_block_after_question_mark_on_same_line() -> None:
    code = "function setName(string _name) onlyAdmin() public { name = _name; }"
    assert texts(f"The following code has a flaw. How can it be fixed? {code}") == [("block", code)]


def test_whole_text_code_with_trailing_comment() -> None:
    t = 'function w() public { (bool ok,) = a.call{value: 1}(""); require(ok); } // Fixes SWC-107.'
    assert texts(t) == [("block", t)]


def test_whole_text_code_with_trailing_prose_same_line() -> None:
    code = "function w() public { x = 0; msg.sender.transfer(v); }"
    assert texts(code + " This modification addresses the issue.") == [("block", code)]


def test_statements_after_colon_then_prose() -> None:
    t = "The corrected code is: bool ok = t.transfer(a, n); require(ok, 'failed'); This ensures that it works."
    assert texts(t) == [("block", "bool ok = t.transfer(a, n); require(ok, 'failed');")]


def test_single_statement_block() -> None:
    t = "What might go wrong here?\n\nbalances[msg.sender] -= amount;\n\nExplain."
    assert texts(t) == [("block", "balances[msg.sender] -= amount;")]


def test_constructor_and_modifier_without_function_keyword() -> None:
    code = (
        "constructor(uint256 supply) public {\n    total = supply;\n}\n\n"
        "modifier onlyOwner {\n    require(msg.sender == owner);\n    _;\n}"
    )
    t = f"Review this:\n\n{code}\n\nAny issues?"
    assert texts(t) == [("block", code)]


def test_old_style_constructor_named_like_contract() -> None:
    code = "TokenERC20(uint256 initialSupply) public {\n    totalSupply = initialSupply * 10;\n}"
    assert texts(f"Check this:\n\n{code}") == [("block", code)]


def test_whole_contract_old_solidity() -> None:
    code = (
        "contract Bank is Owned {\n"
        "    uint public constant FEE = 1;\n"
        "    event Sent(address to);\n\n"
        "    function() payable { throw; }\n\n"
        "    function pay(address to) constant {\n"
        "        var amount = balances[to];\n"
        "        if (!to.send(amount)) throw;\n"
        "        Sent(to);\n"
        "    }\n"
        "}"
    )
    t = f"Inspect the following contract:\n\n{code}\n\nThe contract uses old syntax."
    assert texts(t) == [("block", code)]
    assert parse(code).ok


def test_label_line_ends_block() -> None:
    t = "x = a + b;\nFixed code:\nx = a.add(b);"
    assert texts(t) == [("block", "x = a + b;"), ("block", "x = a.add(b);")]


def test_multiline_expression_with_leading_minus_lines() -> None:
    code = "function d() internal {\n int x = a\n - 32075\n + b;\n}"
    assert texts(f"Look:\n\n{code}") == [("block", code)]


def test_plain_prose_has_no_code() -> None:
    t = (
        "The contract's owner can't withdraw funds: it's a denial of service. "
        "Use the pull-payment pattern, e.g. let users withdraw, and don't loop over all payees."
    )
    assert texts(t) == []
    assert not looks_like_code(t)


def test_empty_text() -> None:
    assert extract_code("") == []
    assert not looks_like_code("")


# ------------------------------------------------------------------------------ code-ish judgement


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("transfer", False),
        ("Assert Violation", False),
        ("checks-effects-interactions", False),
        ("SafeMath", False),
        ("SafeMath.sol", False),
        ("now", False),
        ("and/or", False),
        ("x.transfer(y)", True),
        ("transfer()", True),
        ("msg.sender", True),
        ("balances[to]", True),
        ("a + b", True),
        ("x -= 1", True),
        ("a == b", True),
        ("x = 1", True),
        ("uint256 amount", True),
        ("emit Transfer", True),
        ("_;", True),
        ("{ }", True),
    ],
)
def test_is_codeish(s: str, expected: bool) -> None:
    assert is_codeish(s) is expected


def test_codeish_fast_forms_match_the_plain_tests() -> None:
    """The one-search forms used for speed give the same yes/no as the plain regexes."""
    import random
    import re

    from swcdata.solidity import spans

    call = re.compile(r"[A-Za-z_$][\w$]*\s*\(")  # the plain form of the call/header test
    plain = [call if k == 1 else r for k, r in enumerate(spans._CODEISH_RES)]
    rng = random.Random(7)
    alphabet = "aZ_$1 \t\n(.[]=+-*/<>!é٣;{}'\""
    samples = ["transfer", "x.transfer(y)", "function  f (", "1abc(", "é(", "__(", "a1b2 \n (", "uint\u3000x", "ab٣"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(20000)]
    for s in samples:
        assert (spans._CODEISH_RES[1].search(s) is None) == (call.search(s) is None), s
        expected = any(r.search(s) for r in plain[1:])
        assert spans._codeish_rest(s) is expected, s
        if s.isidentifier() or spans._CODEISH_CHAR_RE.search(s) is None:
            assert not expected, s
        t = s.strip()
        want = len(t) >= 2 and (any(r.search(t) for r in plain))
        assert is_codeish(s) is want, s
        assert spans._is_codeish_trimmed(t) is want, s


def test_fast_span_constructor_builds_the_same_object() -> None:
    from swcdata.solidity import spans

    a = spans._span("x = 1;", 3, 9, "block")
    b = CodeSpan("x = 1;", 3, 9, "block")
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b) and type(a) is CodeSpan
    with pytest.raises(AttributeError):
        a.text = "y"  # type: ignore[misc]


def test_looks_like_code() -> None:
    assert looks_like_code("Given:\n\nfunction f() public { x = 1; }")
    assert looks_like_code("See ```solidity\nx\n```")
    assert looks_like_code("The line 'balances[a] = balances[a].sub(v);' underflows.")
    assert looks_like_code("the declaration 'bytes6 public symbol;' is short")
    assert looks_like_code("calling msg.sender.transfer(amount) may fail")
    assert not looks_like_code("The contract code is not safe; it is old.")
    assert not looks_like_code("Use 'require' instead of 'assert' (SWC-110).")


# ------------------------------------------------------------------------------ lexer


def test_code_tokens_basic() -> None:
    code = 'function f(uint a) { x += 1.5e3; // hi\n s = "a b"; /* c */ y == 0x1F; }'
    assert code_tokens(code) == [
        "function", "f", "(", "uint", "a", ")", "{", "x", "+=", "1.5e3", ";",
        "s", "=", '"a b"', ";", "y", "==", "0x1F", ";", "}",
    ]  # fmt: skip


def test_code_tokens_strings_keep_comment_markers() -> None:
    assert code_tokens('url = "http://x"; // gone') == ["url", "=", '"http://x"', ";"]


@pytest.mark.parametrize(("code", "tokens"), [
    # identifiers: [a-zA-Z$_][a-zA-Z0-9$_]* (Solidity's grammar)
    ("$x = a$b + _$;", ["$x", "=", "a$b", "+", "_$", ";"]),
    ("$ $$ 1$", ["$", "$$", "1", "$"]),
    # a decimal number's exponent may be negative; the grammar has no e+, and a hex number no exponent
    ("x = 2e-10 * 1.5E-3 + 1_000e-18;", ["x", "=", "2e-10", "*", "1.5E-3", "+", "1_000e-18", ";"]),
    ("1e+5 0x1e-5 1ae-3 1.e-3 1e-x", ["1e", "+", "5", "0x1e", "-", "5", "1ae", "-", "3", "1", ".", "e", "-", "3",
                                        "1e", "-", "x"]),
    ("a = b-1e-3;// 2e-1\n/* $c */ d", ["a", "=", "b", "-", "1e-3", ";", "d"]),
])  # fmt: skip
def test_code_tokens_identifiers_and_numbers_follow_the_grammar(code: str, tokens: list[str]) -> None:
    assert code_tokens(code) == tokens


def test_dollar_identifiers_are_abstracted() -> None:
    assert code_tokens("$x = y$ + $;", abstract_identifiers=True) == ["ID", "=", "ID", "+", "ID", ";"]
    assert code_tokens("x = 2e-10;", abstract_literals=True) == ["x", "=", "NUM", ";"]


def _offset_texts(code: str) -> list[str]:
    from swcdata.solidity.lexer import COMMENT, tokens_with_offsets

    return [code[a:b] for k, a, b in tokens_with_offsets(code) if k != COMMENT]


def test_tokens_with_offsets_kinds_and_comments() -> None:
    from swcdata.solidity.lexer import COMMENT, NUMBER, PUNCT, STRING, WORD, tokens_with_offsets

    code = 'a$ = 2e-10; // c\n/* d */ s = "x//y" >>>= é'
    got = [(k, code[a:b]) for k, a, b in tokens_with_offsets(code)]
    assert got == [(WORD, "a$"), (PUNCT, "="), (NUMBER, "2e-10"), (PUNCT, ";"), (COMMENT, "// c"),
                   (COMMENT, "/* d */"), (WORD, "s"), (PUNCT, "="), (STRING, '"x//y"'), (PUNCT, ">>>="),
                   (PUNCT, "é")]


def test_tokens_with_offsets_are_the_token_stream(seed_records: list[dict[str, object]]) -> None:
    """One lexer: less its comments, `tokens_with_offsets` gives exactly `code_tokens`' tokens (the seed
    data's code spans and whole fields, and random text)."""
    import random

    from swcdata.solidity import lexer

    n = 0
    for r in seed_records:
        for f in ("instruction", "response"):
            text = r.get(f)
            if isinstance(text, str):
                for piece in [text, *(s.text for s in extract_code(text))]:
                    assert _offset_texts(piece) == lexer._py_lex(piece)
                    n += 1
    assert n > 10_000
    rng = random.Random(3)
    alphabet = list(" \t\n\r\x0b/*\"'\\=<>!&|+-%^:.;(){}[]$aeEZ_019xé\u00a0")
    for _ in range(20_000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert _offset_texts(s) == lexer._py_lex(s), repr(s)


def test_normalize_ignores_comments_and_layout() -> None:
    a = "function f() public {\n    // pay\n    to.transfer(amount);\n}"
    b = "function f()  public { /* pay */ to.transfer( amount ); }"
    assert normalize_code(a) == normalize_code(b) == "function f ( ) public { to . transfer ( amount ) ; }"


def test_normalize_detects_real_changes() -> None:
    a = "function f() public { to.transfer(amount); }"
    assert normalize_code(a) != normalize_code(a.replace("transfer", "send"))
    assert normalize_code(a) != normalize_code(a.replace("amount", "amount + 1"))
    assert normalize_code("x = a - b;") != normalize_code("x = a + b;")
    assert normalize_code('require(ok, "a b");') != normalize_code('require(ok, "a  b");')


def test_abstract_identifiers_makes_consistent_renaming_equal() -> None:
    a = "function pay(address to, uint v) public { require(msg.sender == owner); to.transfer(v); }"
    b = "function send2(address dst, uint amt) public { require(msg.sender == admin); dst.transfer(amt); }"
    assert normalize_code(a) != normalize_code(b)
    ta = code_tokens(a, abstract_identifiers=True)
    assert ta == code_tokens(b, abstract_identifiers=True)
    # keywords, types and builtins survive
    for kept in ("function", "address", "uint", "public", "require", "msg", "sender", "transfer"):
        assert kept in ta
    assert "ID" in ta and "pay" not in ta
    # a different builtin is still a difference
    assert ta != code_tokens(b.replace("transfer", "send"), abstract_identifiers=True)


def test_abstract_literals() -> None:
    toks = code_tokens('x = 10 ** 18; require(ok, "bad"); y = 0xff;', abstract_literals=True)
    assert toks == ["x", "=", "NUM", "**", "NUM", ";", "require", "(", "ok", ",", "STR", ")", ";", "y", "=", "NUM", ";"]
    assert code_tokens("uint8 a = 1;", abstract_identifiers=True, abstract_literals=True) == [
        "uint8",
        "ID",
        "=",
        "NUM",
        ";",
    ]


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("code", "wrapper"),
    [
        ("pragma solidity ^0.4.24;\ncontract A { uint x; function f() public { x = 1; } }", "source"),
        ("function f(uint a) public returns (uint) { return a + 1; }", "source"),
        ("constructor(uint s) public { total = s; }", "contract"),
        ("modifier onlyOwner { require(msg.sender == owner); _; }", "contract"),
        ("uint256 public total;\nmapping(address => uint) balances;", "contract"),
        ("require(ok);\nbalances[a] -= v;\nemit Sent(a, v);", "function"),
        ("msg.sender.transfer(amount)", "function"),
        ('(bool ok, ) = to.call{value: v}("");', "function"),
    ],
)
def test_parse_wrappers(code: str, wrapper: str) -> None:
    r = parse(code)
    assert r == ParseResult(True, wrapper, 0)


def test_parse_failure_reports_errors() -> None:
    r = parse("function f( { ) ] this is not solidity")
    assert not r.ok and r.wrapper is None and r.error_count > 0


def test_identifier_nodes_offsets() -> None:
    code = "x = a + foo(b);"
    ids = identifier_nodes(code)
    assert [i.name for i in ids] == ["x", "a", "foo", "b"]
    for i in ids:
        assert code[i.start : i.end] == i.name
        assert code.encode()[i.start_byte : i.end_byte].decode() == i.name
    uni = 'require(ok, "é"); y = z;'
    names = {i.name: i for i in identifier_nodes(uni)}
    assert uni[names["z"].start : names["z"].end] == "z"
    assert names["z"].end_byte == len(uni.encode()) - 1


def test_import_is_cheap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, swcdata.solidity; print('tree_sitter' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ real data


def _seed_records() -> list[dict[str, object]]:
    if not SEED_DIR.is_dir():
        pytest.skip("../shared/seed-data not present: real-data tests need the seed corpus beside the repo")
    recs: list[dict[str, object]] = []
    for path in sorted(SEED_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                if isinstance(obj, dict):
                    recs.append(obj)
    return recs


@pytest.fixture(scope="module")
def seed_records() -> list[dict[str, object]]:
    return _seed_records()


@pytest.mark.parametrize("field", ["instruction", "response"])
def test_real_data_coverage(seed_records: list[dict[str, object]], field: str) -> None:
    looks = hits = 0
    for rec in seed_records:
        text = rec.get(field)
        if not isinstance(text, str) or not looks_like_code(text):
            continue
        looks += 1
        hits += bool(spans(text))
    assert looks > 5000  # the corpus is about code: the detector must fire on most records
    assert hits / looks >= 0.98


def test_real_data_spans_mostly_parse(seed_records: list[dict[str, object]]) -> None:
    total = ok = 0
    for rec in seed_records[::10]:
        for field in ("instruction", "response"):
            text = rec.get(field)
            if isinstance(text, str):
                for s in extract_code(text):
                    total += 1
                    ok += parse(s.text).ok
    assert total > 1000
    assert ok / total >= 0.9


PATHOLOGICAL = [
    "'x;\n" * 2000,  # unclosed quotes, each of whose scans used to walk to the end: quadratic
    "Lines:\n" + "'require(a > b);\n" * 2000,
    "'uint x = 1;\n" * 3000,
    "\nfunction f() " + "({['\"`" * 3000,  # openers that never close
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=["quotes", "quoted-lines", "quoted-decls", "openers"])
def test_no_quadratic_time_on_runs_of_unclosed_quotes(text: str) -> None:
    import time

    t0 = time.perf_counter()
    extract_code(text)
    assert time.perf_counter() - t0 < 2.0  # (seconds before the fix: 7, 7, 20+, 4)


@pytest.mark.parametrize("text", [t[:600] for t in PATHOLOGICAL] + ["'a(b' x 'c;\n'd(e;\n' f) 'g;' ok"])
def test_skipping_known_failing_quote_scans_changes_nothing(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipping the scans of quotes that a failed scan passed at depth 0 gives the spans of scanning
    every quote. (The other shortcut, more openers than closers left, is checked by
    bench/extraction_golden.py: identical spans on the seed data and 100,000 corpus records.)"""
    from swcdata.solidity import spans

    fast = extract_code(text)
    plain_scan = spans._scan_from

    def plain(text: str, pos: int, end: int, quote: str | None, failed: set[int] | None = None) -> tuple[int, bool]:
        return plain_scan(text, pos, end, quote, [])

    monkeypatch.setattr(spans, "_scan", plain)
    assert fast == extract_code(text)
