"""The optional C speed-ups (swcdata/_native/_fast.c, _extract.c) give exactly what the Python code they
replace gives.

The lexer and the code extractor are compared with their Python versions on the seed data, on the
generated corpus (renamed identifiers, reflowed layout, inserted comments) and on random text built
from the characters and pieces that matter to them; the token lookups through `tokens.token_hashes`
with and without the extension; signatures, LSH keys and similarities with their numpy references; stats'
token counts with Python's own `re.findall` (seed data, random and malformed text, Arrow slices and nulls).
The extension's own safety: a refused init holds nothing, the IdTable is seen by the garbage
collector and survives a lookup that uses it; and the one switch (`swcdata._native`) that every report
records. CI also runs this file against an AddressSanitizer build (.ci/run).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from swcdata import _native
from swcdata.similarity import tokens
from swcdata.solidity import lexer, spans

fast = pytest.importorskip("swcdata._native._fast",
                           reason="the C extension is not built here (no C compiler at install)")
if os.environ.get("SWCDATA_NO_EXT", "").strip() in ("1", "true", "yes", "all"):
    pytest.skip("SWCDATA_NO_EXT: the C extension is switched off for this run (these tests compare it with the Python "
                "references)", allow_module_level=True)


def _fields(paths: list[Path]) -> list[str]:
    out: list[str] = []
    for p in paths:
        for line in p.read_bytes().splitlines():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out += [v for k in ("instruction", "response") if isinstance(v := obj.get(k), str)]
    return out


EDGES = [
    "", " ", "\t\n\r\x0b\x0c", "\x1c", "a", "_", "$x", "0x1f", "1.5e3", "1.", "1..2", "1.a", "a.1", "x1.2",
    '"', "'", '"abc', "'abc", '"a\\"b"', "'a\\'b'", '"a\\\nb"', '"a\\', "'\\\\'", '"a\nb"', '"" ""',
    "//", "/", "/*", "/**/", "/*/", "/* a */ b", "a // b\nc", "a /* b", "a/=b", "a//=b", "x /*/ y */ z",
    ">>>=", ">>>", ">>=", ">>", ">=", ">", "<<=", "<<", "<=", "<", "**=", "**", "*=", "=>", "==", "->", "--",
    "-=", "!=", "&&", "&=", "||", "|=", "++", "+=", "%=", "^=", ":=", ">>>>=", "====", "a=>b", "!==",
    "é", "x\u00a0y", "\u2028", "名前 = 1;", "\U0001f600", "a\u0301b", "٣", "ﬁ", "uint256 x = 10**18;",
    'emit Transfer(msg.sender, to, amount); // note "quoted"',
    # the one lexer's rules: `$` in identifiers, a negative exponent in a decimal number (never in a hex one,
    # never `e+`), and both inside comments and strings
    "$", "$$", "a$", "$a1$", "_$_", "1$", "x.$y", "$1", "2e-10", "2E-10", "1.5e-3", "1_000e-18", "1e-3ether",
    "1e-", "1e-x", "1e--3", "1e+5", "0x1e-5", "0X1E-5", "1ae-3", "1.e-3", "1.5e-3.5", "1__e-3", "1.5_e-2",
    "9e-9e-9", "x-1e-3", "a = b-1e-3;// 2e-1\n/* $c */ d", '"$a 1e-3" $b', "'2e-10' // $x", "1e-3/* $ */e-4",
]


@pytest.mark.parametrize("code", EDGES)
def test_lex_edges(code: str) -> None:
    assert fast.lex(code) == lexer._py_lex(code)


def test_lex_random_text_agrees() -> None:
    rng = random.Random(20261201)
    alphabet = list(" \t\n\r\x0b\x0c\x1c/*\"'\\=<>!&|+-%^:.;(){}[]aZ_09xé€\U0001F600\u00a0\u2028")
    for _ in range(60_000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert fast.lex(s) == lexer._py_lex(s), repr(s)


def test_lex_random_numbers_and_identifiers_agree() -> None:
    """Random text built from what numbers and identifiers are made of (digits, e/E, x, '_', '.', '-',
    '+', '$') and the comment and string markers around them."""
    rng = random.Random(20261206)
    pieces = [*"0123456789eExX_.-+$a ", "//", "/*", "*/", '"', "'", "\n", "0x", "1e-", "e-", "$x"]
    for _ in range(60_000):
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        assert fast.lex(s) == lexer._py_lex(s), repr(s)
        assert fast.lex(s, 1, len(s) - 1) == lexer._py_lex(s[1:-1]), repr(s)


def test_lex_bounds_are_a_slice() -> None:
    text = "say `x += 1;` then // c\n y"
    for a in range(len(text) + 1):
        for b in range(a, len(text) + 1):
            assert fast.lex(text, a, b) == lexer._py_lex(text[a:b])


def test_lex_refuses_non_strings() -> None:
    with pytest.raises(TypeError):
        fast.lex(b"bytes")  # type: ignore[arg-type]


def _assert_same_lexing(texts: list[str]) -> None:
    assert texts
    for t in texts:
        assert fast.lex(t) == lexer._py_lex(t)
        found = spans.extract_code(t)
        assert found == spans._py_extract_code(t), t[:300]
        for s in found:
            assert fast.lex(t, s.start, s.end) == lexer._py_lex(s.text)


def test_lex_agrees_on_the_seed_data(seed_files: list[Path]) -> None:
    _assert_same_lexing(_fields(seed_files))


def test_lex_agrees_on_the_embedded_sample() -> None:
    _assert_same_lexing(_fields(sorted(Path(__file__).resolve().parents[1].joinpath("dataset").glob("*.jsonl"))))


def test_extract_agrees_on_the_generated_corpus(seed_dir: Path) -> None:
    from swcdata.synthetic.corpus import generate

    texts = [v for line in generate(2000, seed=11, seed_dir=seed_dir)
             for k in ("instruction", "response") if isinstance(v := orjson.loads(line).get(k), str)]
    _assert_same_lexing(texts)


PIECES = [
    '`', '```', '```solidity\n', '``` sol x\n', "'", '"', '\n', '\n\n', ' ', '\t', ':', '. ', '? ', '! ', ';', '{',
    '}', '(', ')', '[', ']', '//', '/*', '*/', '/', 'x = y;', 'function f() public {', 'return a;', 'msg.sender',
    'The ', 'the ', 'is ', 'a ', 'uint256 x = 1;', 'emit E(a);', 'require(x);', 'Here’s ', "here's ",
    'mapping(address => uint) b;', 'contract C {', 'if (a) {', '- ', '1. ', '# ', '**', '\\', 'é', '名前', '\xa0',
    '\r\n', 'Fixed code:', 'This is the fix.', 'balances[msg.sender] -= amount;', '_;', '++i;', 'delete x;', '\u212a',
    'İs', '\u2028', '$x', 'x.y(z);', 'Token(a) public {', 'address payable to;', 'Owner public x;', '٣. ', "'code'",
    '`a + b`', "don't ",
]


def test_extract_random_pieces_agree() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        t = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))
        assert spans.extract_code(t) == spans._py_extract_code(t), repr(t)


CODE_START_PIECES = [
    "pragma", "solidity", "import", " ", "\t", "\n", '"', "'", "{", "}", "*", "abstract", "contract", "library",
    "interface", "is", "Xis", "This", "A", "x", "_", "$", "function", "constructor", "fallback", "receive", "(", ")",
    "modifier", "event", "struct", "enum", "using", "for", "mapping", "let", ":=", ":", "=", "require", "assert",
    "revert", "if", "while", "do", "else", "unchecked", "assembly", "emit", "return", "throw", ";", ".", "delete", "[",
    "]", "bool", "uint", "uint256", "bytes32", "address", "payable", "public", "memory", "++", "--", "+", "-", "=>",
    "==", "<<", ">>", "<<=", ">>=", "+=", "int", "byte", "bytes", "string", "var", "fixed128x18", "ufixed", "Token",
    "é", "٣", "x1", "a.b", ",", "0", "private", "view", "override", "\u00a0", "returns", "İ", "uint8[]", "ß",
]


def test_code_start_agrees_with_its_regex() -> None:
    """The C code-start test against spans._CODE_START at every position (and a cut end) of random text."""
    regex = re.compile(spans._CODE_START)
    rng = random.Random(3)
    for _ in range(4000):
        t = "".join(rng.choice(CODE_START_PIECES) for _ in range(rng.randint(1, 12)))
        for p in range(len(t)):
            for end in (len(t), rng.randint(p, len(t))):
                assert fast.code_start_at(t, p, end) == (regex.match(t, p, end) is not None), (t, p, end)
    with pytest.raises(IndexError):
        fast.code_start_at("abc", 2, 5)


def test_code_start_agrees_on_the_seed_data(seed_files: list[Path]) -> None:
    regex = re.compile(spans._CODE_START)
    for t in _fields(seed_files)[:400]:
        for p in range(len(t)):
            assert fast.code_start_at(t, p, len(t)) == (regex.match(t, p) is not None), (t[p : p + 80],)


CODEISH_PIECES = [
    "a", "x1", "_", "$", "$x", ".", "File.sol", "a.json", "a.js", "x.jsx", "msg.sender", "(", ")", "[", "]", "=", "==",
    "!", "!=", "<", ">", "<=", ">=", "&", "&&", "|", "||", "+", "++", "+=", "-", "--", "-=", "*", "**", "*=", "/", "/=",
    "%", "%=", "=>", "<<", ">>", " ", "\t", "\n", '"', "'", "é", "٣", "uint", "uint256", "int8", "bytes32", "byte",
    "address", "bool", "string", "mapping", "function", "returns", "return", "emit", "var", "Transfer", "1", "ab.cd",
    ".py", "k.md", "é.x", "f (", "a [", "\u00a0", "x.txt", "y.ts", "..", "A.b", "_.c", "ﬁ", "İ", ",",
]


def test_codeish_agrees_with_python() -> None:
    rng = random.Random(5)
    for _ in range(40_000):
        t = "".join(rng.choice(CODEISH_PIECES) for _ in range(rng.randint(1, 10))).strip()
        assert fast.codeish(t) == spans._is_codeish_trimmed(t), repr(t)


def test_extract_spans_are_code_spans() -> None:
    text = "Use `a = b;` here:\n\n```\nx = 1;\n```"
    found = fast.extract_spans(text)
    assert [type(s) for s in found] == [spans.CodeSpan] * 2
    assert [(s.text, s.shape) for s in found] == [("a = b;", "inline"), ("x = 1;", "fence")]
    assert all(text[s.start : s.end] == s.text for s in found)
    with pytest.raises(TypeError):
        fast.extract_spans(None)  # type: ignore[arg-type]


def test_extract_init_is_all_or_nothing() -> None:
    """A refused extract_init keeps no reference (1000 refused calls used to hold 4 more each) and
    leaves the extractor's state as it was: the stop words of a refused list are not half written."""
    args = (lexer._KEEP, spans._STOPWORDS, spans.CodeSpan, spans._SHAPES)
    descriptors = [spans.CodeSpan.__dict__[k] for k in ("text", "start", "end", "shape")]
    junk = [f"zz{k}" for k in range(64)]  # every stop word slot, then one too many
    refused = [([*junk, "more"], ValueError), ([*junk[:3], "Upper"], ValueError), ([*junk[:3], 7], ValueError),
               ([*junk[:3], ""], ValueError), (5, TypeError)]
    before = [sys.getrefcount(d) for d in descriptors], sys.getrefcount(args[2])
    try:
        for stops, error in refused:
            for _ in range(200):
                with pytest.raises(error):
                    fast.extract_init(args[0], stops, args[2], args[3])
        assert ([sys.getrefcount(d) for d in descriptors], sys.getrefcount(args[2])) == before
        rng = random.Random(8)
        for _ in range(3000):
            t = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))
            assert spans.extract_code(t) == spans._py_extract_code(t), repr(t)
    finally:
        fast.extract_init(*args)


def test_id_table_is_collected_in_a_cycle() -> None:
    """An IdTable is a container the garbage collector sees: a lookup that holds its own table is freed."""
    import gc
    import weakref

    class Lookup(dict[str, int]):
        table: object = None

    lookup = Lookup(a=1)
    table = fast.IdTable(lookup)
    lookup.table = table
    assert gc.is_tracked(table)
    fast.word_ids(["a"], table, bytearray())
    ref = weakref.ref(lookup)
    del lookup, table
    gc.collect()
    assert ref() is None


def test_id_table_survives_a_lookup_that_uses_it() -> None:
    """A miss's __missing__ may use the same table (and make it grow): the token is stored once, in
    the table as it is after the call."""

    class Reentrant(dict[str, int]):
        table: object = None
        busy = False

        def __missing__(self, key: str) -> int:
            if key == "outer" and not self.busy:
                self.busy = True  # the inner look-up of "outer" stores it, among words enough to grow the table
                fast.word_ids([f"w{k}" for k in range(2000)] + ["outer"], self.table, bytearray())
                return self["outer"]
            i = self[key] = len(self)
            return i

    lookup = Reentrant()
    table = lookup.table = fast.IdTable(lookup)
    words = ["outer", *(f"w{k}" for k in range(0, 2000, 7))]
    for method in ("word", "field"):
        out = bytearray()
        if method == "word":
            fast.word_ids(words, table, out)
        else:
            assert fast.field_ids(" ".join(words), table, table, out)
        assert np.frombuffer(out, dtype=np.int64).tolist() == [lookup[w] for w in words]
        assert len(table) == len(lookup) == 2001


def _token_hashes(ins: list[str], res: list[str], monkeypatch: pytest.MonkeyPatch, ext: bool,
                  **kw: bool) -> tuple[np.ndarray, np.ndarray]:
    with monkeypatch.context() as m:
        m.setattr(tokens, "_fast", fast if ext else None)
        m.setattr(tokens, "_TABLES", None)  # fresh lookups: the misses go through both paths too
        return tokens.token_hashes(ins, res, **kw)


@pytest.mark.parametrize("kw", [{}, {"abstract_identifiers": False}, {"abstract_literals": True}])
def test_token_hashes_agree_on_generated_corpus(seed_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                kw: dict[str, bool]) -> None:
    from swcdata.synthetic.corpus import generate

    recs = [orjson.loads(line) for line in generate(1500, seed=7, seed_dir=seed_dir)]
    ins = [r.get("instruction") or "" for r in recs]
    res = [r.get("response") or "" for r in recs]
    ins += ["Fix `x = y;` — naïve code: 'uint a = 1;'", "名前 `a = b;`", ""]  # non-ASCII fields, an empty one
    res += ["« x += 1; »\n\nfunction f() public { y = 2; }", "ok", "   "]
    h1, o1 = _token_hashes(ins, res, monkeypatch, True, **kw)
    h0, o0 = _token_hashes(ins, res, monkeypatch, False, **kw)
    assert np.array_equal(o1, o0)
    assert np.array_equal(h1, h0)
    # and both are the readable definition
    ref_h, ref_o = tokens.minhash.token_hashes(tokens.record_streams(ins, res, **kw))
    assert np.array_equal(h1, ref_h) and np.array_equal(o1, ref_o)


def test_token_hashes_agree_on_fields_that_are_not_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields that are not ASCII take the C path too: their prose words in C where every character
    folds to a separator, through `_prose_tokens` otherwise. Random fields made of every character
    of the typography fold (text._FOLD: those folded to a separator, to nothing, to "..."),
    accented letters, ideograms and code pieces give the hashes of the Python path."""
    from swcdata.core.text import _FOLD

    rng = random.Random(11)
    pieces = [*_FOLD, "é", "É", "ß", "名前", "\ufb01", " ", "  ", "\n", "word", "Word_1", "x", "'", '"', "-",
              "`x = y;`", "`a`", "```solidity\nuint a = 1; // ’ note\n```", "function f() public { x += 1; }",
              "msg.sender", "require(a == b);", "\n\n", "á\u0301", "\u00bd"]
    ins = ["".join(rng.choices(pieces, k=rng.randint(0, 40))) for _ in range(1500)]
    res = ["".join(rng.choices(pieces, k=rng.randint(0, 40))) for _ in range(1500)]
    ins += [f"ab{c}cd {c}x{c} é{c}" for c in _FOLD]  # each folded character between two words
    res += [f"`y{c}z = 1;` t{c}u" for c in _FOLD]
    h1, o1 = _token_hashes(ins, res, monkeypatch, True)
    h0, o0 = _token_hashes(ins, res, monkeypatch, False)
    assert np.array_equal(o1, o0) and np.array_equal(h1, h0)


def test_token_hashes_agree_on_dollar_names_and_negative_exponents(monkeypatch: pytest.MonkeyPatch) -> None:
    """dedup's C path (`field_ids`, with the lexer's `next_token`) and its Python path agree where the one
    lexer's rules matter: `$` in names (abstracted like any identifier) and numbers like 2e-10."""
    rng = random.Random(5)
    pieces = ["`$x = y$ + 2e-10;`", "```solidity\nuint a$ = 1.5e-3; // $note 1e-5\n```", "$", "a$b", "1e-3",
              "0x1e-5", "1e+5", "function $f() public { $v -= 1_000e-18; }", " ", "\n", "word", "`a`"]
    ins = ["".join(rng.choices(pieces, k=rng.randint(0, 12))) for _ in range(800)]
    res = ["".join(rng.choices(pieces, k=rng.randint(0, 12))) for _ in range(800)]
    for kw in ({}, {"abstract_identifiers": False}, {"abstract_literals": True}):
        h1, o1 = _token_hashes(ins, res, monkeypatch, True, **kw)
        h0, o0 = _token_hashes(ins, res, monkeypatch, False, **kw)
        assert np.array_equal(o1, o0) and np.array_equal(h1, h0)
        ref_h, ref_o = tokens.minhash.token_hashes(tokens.record_streams(ins, res, **kw))
        assert np.array_equal(h1, ref_h) and np.array_equal(o1, ref_o)


def test_field_ids_needs_prose_words_for_fields_that_are_not_ascii() -> None:
    prose, code = fast.IdTable(tokens._Lookup(tokens._Forms(), None)), fast.IdTable({})
    with pytest.raises(TypeError, match="callable"):
        fast.field_ids("é", prose, code, bytearray(), 3)
    with pytest.raises(TypeError, match="list of str"):
        fast.field_ids("é", prose, code, bytearray(), lambda seg: ("x",))
    with pytest.raises(ZeroDivisionError):
        fast.field_ids("é", prose, code, bytearray(), lambda seg: 1 / 0)
    out = bytearray()
    assert fast.field_ids("a\u2019b", prose, code, out, lambda seg: 1 / 0)  # folds to a separator: no call
    assert len(out) == 16


class _Numbering(dict[str, int]):
    """A token lookup that numbers tokens in order of first sight, in a numbering it may share."""

    def __init__(self, numbers: dict[str, int]) -> None:
        super().__init__()
        self.numbers = numbers

    def __missing__(self, key: str) -> int:
        i = self[key] = self.numbers.setdefault(key, len(self.numbers))
        return i


def test_field_ids_takes_ascii_fields_in_text_order() -> None:
    """Prose words (lower-cased) and code tokens in text order; a non-ASCII field is left to Python."""
    numbers: dict[str, int] = {}
    prose, code = fast.IdTable(_Numbering(numbers)), fast.IdTable(_Numbering(numbers))
    out = bytearray()
    assert fast.field_ids("é `x = 1;`", prose, code, out) is False and out == bytearray()
    text = "A `x = 1;` b `y = 2;` c"
    assert len(spans.extract_code(text)) == 2
    assert fast.field_ids(text, prose, code, out) is True
    tokens = ["a", "x", "=", "1", ";", "b", "y", "=", "2", ";", "c"]
    assert np.frombuffer(out, dtype=np.int64).tolist() == [numbers[t] for t in tokens]


def test_id_table_answers_as_its_lookup_does() -> None:
    """Hits, misses, a table that grows, lower-casing, wide characters and a failing lookup."""
    seen: dict[str, int] = {}
    table = fast.IdTable(_Numbering(seen))
    words = [f"w{k % 3000}" for k in range(20_000)] + ["é", "名前", "\U0001f600", "a" * 600]
    out = bytearray()
    fast.word_ids(words, table, out)
    assert np.frombuffer(out, dtype=np.int64).tolist() == [seen[w] for w in words]
    assert len(table) == len(seen)
    out = bytearray()
    assert fast.field_ids("Hello HELLO hello W1", table, table, out)
    assert np.frombuffer(out, dtype=np.int64).tolist() == [seen["hello"]] * 3 + [seen["w1"]]

    class Failing(dict[str, int]):
        def __missing__(self, key: str) -> int:
            raise KeyError(key)

    with pytest.raises(KeyError):
        fast.word_ids(["x"], fast.IdTable(Failing()), bytearray())
    with pytest.raises(TypeError):
        fast.IdTable([])  # type: ignore[arg-type]


def test_no_ext_environment_variable_selects_the_python_lexer() -> None:
    code = "from swcdata.solidity import lexer; print(lexer._lex is lexer._py_lex)"
    env = {**os.environ, "SWCDATA_NO_EXT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    env["SWCDATA_NO_EXT"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


_RECORDED = """
import json, warnings
from swcdata.solidity import lexer, spans
from swcdata import _native
from swcdata.similarity import minhash
from swcdata.similarity import tokens
from swcdata.steps.audit import audit
from swcdata.steps.dedup import dedup
from swcdata.steps.validate import ValidateConfig, load_valid

table, vrep, _ = load_valid(["dataset/swc_sample.jsonl"], ValidateConfig(check_code=False, workers=1), digest=False)
kept, drep = dedup(table)
arep = audit(kept.slice(0, 20), kept.slice(20, 20))
print(json.dumps([_native.backend(), vrep.backend, drep.backend, arep.backend, sorted(_native.OFF),
                  lexer._lex is lexer._py_lex, not spans._C_EXTRACT,
                  tokens._c_field_ids(), _native.on("lsh")]))
"""


@pytest.mark.parametrize(("setting", "backend", "off"), [
    ("", "c", set()), ("0", "c", set()), ("1", "python", set(_native.PIECES)),
    ("lex,extract", "c (python: extract, lex)", {"lex", "extract"}),
    (" field_ids , LSH,nope", "c (python: field_ids, lsh)", {"field_ids", "lsh"}),
])
def test_one_switch_and_every_report_records_it(setting: str, backend: str, off: set[str]) -> None:
    """SWCDATA_NO_EXT picks the backend in one place (all pieces, or a comma list of them; an unknown
    piece is named in a warning), and the validate, dedup and audit reports say which one ran."""
    env = {**os.environ, "SWCDATA_NO_EXT": setting}
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _RECORDED], env=env, cwd=repo, capture_output=True, text=True,
                         check=True)
    got = orjson.loads(out.stdout)
    assert got[:4] == [backend] * 4
    assert set(got[4]) == off
    assert got[5:] == ["lex" in off, "extract" in off, "field_ids" not in off, "lsh" not in off]
    assert ("unknown piece(s) nope" in out.stderr) == ("nope" in setting)


def test_similarity_into_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.similarity import minhash

    rng = np.random.default_rng(1)
    sig = rng.integers(0, 6, (500, 128), dtype=np.uint32)
    pairs = rng.integers(0, 500, (4000, 2), dtype=np.int64)
    with monkeypatch.context() as m:
        m.setattr(minhash, "_fast", None)
        expected = minhash.similarity(sig, pairs)
    assert np.array_equal(minhash.similarity(sig, pairs), expected)
    half = sig[:, ::2]  # not contiguous: copied first
    assert np.array_equal(minhash.similarity(half, pairs), (half[pairs[:, 0]] == half[pairs[:, 1]]).mean(1))
    with pytest.raises(ValueError, match="fit"):
        fast.similarity_into(sig, 128, np.array([[0, 500]], dtype=np.int64), np.empty(1))


def _lsh_both(sig: np.ndarray, bands: int, rows: int, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    from swcdata.similarity import minhash

    with_c = minhash.candidate_pairs(sig, bands, rows)
    with monkeypatch.context() as m:
        m.setattr(minhash, "_fast", None)
        expected = minhash.candidate_pairs(sig, bands, rows)
    assert np.array_equal(with_c, expected), (bands, rows)
    return with_c


def test_lsh_star_keys_equal_the_sorted_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets from hash tables give the pairs that sorting the band hashes gives: few distinct values
    (many shared buckets, big and small), empty rows, bandings that leave slots unused."""
    rng = np.random.default_rng(2)
    sig = rng.integers(0, 3, (3000, 64), dtype=np.uint32)
    sig[::11] = 0xFFFFFFFF  # no shingles: never a candidate
    sig[5::13, :8] = 0xFFFFFFFF  # some empty slots only: still a candidate
    for bands, rows in ((16, 4), (8, 8), (5, 3), (1, 64), (64, 1), (3, 7)):
        pairs = _lsh_both(sig, bands, rows, monkeypatch)
        assert (len(pairs) > 1000) == (rows < 64) and not np.isin(pairs, np.arange(0, 3000, 11)).any()
    assert _lsh_both(sig[:1], 4, 4, monkeypatch).shape == (0, 2)
    assert _lsh_both(np.full((5, 16), 0xFFFFFFFF, dtype=np.uint32), 4, 4, monkeypatch).shape == (0, 2)


def test_lsh_star_keys_agree_on_seed_signatures(swc_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.steps.dedup import DedupConfig, table_signatures
    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid(swc_files, ValidateConfig(check_code=False))
    sig = table_signatures(table, DedupConfig(workers=1))
    for bands, rows in ((14, 9), (20, 5), (9, 13)):
        assert len(_lsh_both(sig, bands, rows, monkeypatch)) > 100


def test_lsh_star_keys_checks_its_arguments() -> None:
    sig = np.zeros((4, 8), dtype=np.uint32)
    for k, bands, rows in ((8, 3, 3), (0, 1, 1), (8, 0, 2), (8, 2, 0), (3, 1, 1)):
        with pytest.raises(ValueError, match="fit"):
            fast.lsh_star_keys(sig, k, bands, rows)
    with pytest.raises(TypeError, match="bytes"):
        fast.lsh_star_keys(sig.astype(np.uint64), 8, 2, 4)
    keys = np.frombuffer(fast.lsh_star_keys(sig, 8, 2, 4), dtype=np.int64)
    assert sorted(keys.tolist()) == [1, 2, 3]  # every row in one bucket with row 0: keys 0 * 4 + j


def test_lsh_band_hashes_equal_the_numpy_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    """minhash.band_hashes in C is its numpy reference (chunks of records, fmix64 in place): bandings that leave
    slots unused, one row, no rows, a signature array that is not contiguous; bad shapes are refused."""
    from swcdata.similarity import minhash

    rng = np.random.default_rng(3)
    sig = rng.integers(0, 2**32 - 1, (5000, 64), dtype=np.uint32, endpoint=True)
    sig[::7] = 0xFFFFFFFF
    for part, bands, rows in ((sig, 16, 4), (sig, 5, 3), (sig, 1, 64), (sig[:1], 64, 1), (sig[:0], 4, 4),
                              (sig[::3, :40], 4, 10)):
        got = minhash.band_hashes(part, bands, rows)
        with monkeypatch.context() as m:
            m.setattr(minhash, "_fast", None)
            expected = minhash.band_hashes(part, bands, rows)
        assert got.dtype == np.uint64 and got.shape == (len(part), bands) and np.array_equal(got, expected)
    out = np.empty((4, 2), dtype=np.uint64)
    for k, bands, rows, into in ((8, 3, 3, out), (0, 1, 1, out), (8, 2, 0, out), (8, 2, 4, out[:3])):
        with pytest.raises(ValueError, match="fit"):
            fast.lsh_band_hashes(np.zeros((4, 8), dtype=np.uint32), k, bands, rows, into)


def test_sign_forms_equals_the_numpy_path(seed_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chunk_signatures through sign_forms gives the signatures of token_hashes + shingles + signatures,
    for several shingle sizes and permutation counts, on generated records (multi-hash forms, short
    and empty fields included)."""
    from swcdata.similarity import minhash
    from swcdata.similarity.tokens import chunk_signatures, token_hashes
    from swcdata.synthetic.corpus import generate

    gen = [orjson.loads(line) for line in generate(1500, seed=5, seed_dir=seed_dir)]
    gen = [r for r in gen if isinstance(r.get("instruction"), str) and isinstance(r.get("response"), str)]
    ins = [r["instruction"] for r in gen] + ["", "a", "x = 1;", 'say "two words" twice']
    res = [r["response"] for r in gen] + ["", "", "b c", "```solidity\nstring s = \"a b c\";\n```"]
    for ngram, num_perm, ids, lits in ((5, 128, True, False), (1, 64, False, False), (3, 17, True, True),
                                       (12, 128, False, True)):
        got = chunk_signatures((ins, res, ids, lits, ngram, num_perm, 4))
        th, toff = token_hashes(ins, res, abstract_identifiers=ids, abstract_literals=lits)
        want = minhash.signatures(*minhash.shingles_of_token_hashes(th, toff, ngram), num_perm, 4)
        assert np.array_equal(got, want), (ngram, num_perm)


def test_sign_forms_checks_its_arguments() -> None:
    from swcdata.similarity import minhash

    a, b = minhash.perm_params(4, 1)
    ids, ends = np.array([0, 1, 1], dtype=np.int64), np.array([0, 2, 3], dtype=np.int64)
    start, count = np.array([0, 1], dtype=np.int64), np.array([1, 2], dtype=np.int64)
    pool = np.arange(1, 4, dtype=np.uint64)
    sig = np.full((2, 4), minhash.EMPTY, dtype=np.uint32)
    fast.sign_forms(ids, ends, start, count, pool, 2, True, a, b, sig)
    assert (sig != minhash.EMPTY).all()
    bad = [(np.array([0, 2], dtype=np.int64), ends, start, count, pool),  # form 2 does not exist
           (ids, np.array([0, 2, 4], dtype=np.int64), start, count, pool),  # past the end of ids
           (ids, ends, start, np.array([1, 3], dtype=np.int64), pool)]  # past the end of the pool
    for args in bad:
        with pytest.raises(ValueError, match="fit"):
            fast.sign_forms(*args, 2, True, a, b, sig)
    with pytest.raises(ValueError, match="fit"):
        fast.sign_forms(ids, ends, start, count, pool, 0, True, a, b, sig)


def test_lsh_star_keys_by_band_shares_are_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands taken in shares (as threads take them) give, merged, the keys of all bands at once;
    candidate_pairs in threads gives the pairs of one thread."""
    from swcdata.similarity import minhash

    rng = np.random.default_rng(5)
    sig = rng.integers(0, 4, (4000, 64), dtype=np.uint32)
    sig[::17] = 0xFFFFFFFF
    whole = np.sort(np.frombuffer(fast.lsh_star_keys(sig, 64, 16, 4), dtype=np.int64))
    for cuts in ((0, 8, 16), (0, 1, 15, 16), (0, 5, 6, 11, 16)):
        parts = [np.frombuffer(fast.lsh_star_keys(sig, 64, 16, 4, lo, hi), dtype=np.int64)
                 for lo, hi in itertools.pairwise(cuts)]
        assert np.array_equal(np.unique(np.concatenate(parts)), whole)
    serial = minhash.candidate_pairs(sig, 16, 4)
    monkeypatch.setattr(minhash, "_PARALLEL_MIN", 1)
    assert np.array_equal(minhash.candidate_pairs(sig, 16, 4), serial)
    pairs = np.stack([rng.integers(0, 4000, 5000), rng.integers(0, 4000, 5000)], axis=1)
    threaded = minhash.similarity(sig, pairs)
    monkeypatch.setattr(minhash, "_PARALLEL_MIN", 10**12)
    assert np.array_equal(threaded, minhash.similarity(sig, pairs))
    for lo, hi in ((0, 0), (3, 2), (-1, 4), (0, 17)):
        with pytest.raises(ValueError, match="fit"):
            fast.lsh_star_keys(sig, 64, 16, 4, lo, hi)


def test_id_table_abstracts_identifiers_without_storing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A code table with identifiers abstracted answers a new identifier in C (the abstract id),
    without a lookup entry; kept words (keywords, types, builtins, fixed-point types) still go through
    the lookup. Same hashes as the Python path."""
    code = ("fixed128x18 ufixed8x1 fixedx1 fixed1x ufixed fixed uint256 x _ _a1 msg.sender Transfer ID "
            "fixed12x3y function f() { a1 += b_2; }")
    ins, res = [f"`{code}`", "names: `alpha beta` and `fixed8x8`"], [f"```\n{code}\n```", "`gamma`"]
    h1, o1 = _token_hashes(ins, res, monkeypatch, True)
    h0, o0 = _token_hashes(ins, res, monkeypatch, False)
    assert np.array_equal(h1, h0) and np.array_equal(o1, o0)

    lookup = tokens._Lookup(tokens._Forms(), lambda tok: lexer._abstract_token(tok, True, False))
    table = fast.IdTable(lookup, keep=frozenset(lexer._KEEP), abstract_id=lookup.forms.id_of("ID"))
    out = bytearray()
    fast.code_ids("x = y1 + fixed8x8 + uint8 + zz;", 0, 100, table, out)
    ids = np.frombuffer(out, dtype=np.int64)
    assert ids[0] == ids[2] == ids[-2] == lookup.forms.id_of("ID")
    assert set(lookup) == {"=", "+", "fixed8x8", "uint8", ";"} and len(table) == 8
    for bad in ({"keep": frozenset()}, {"abstract_id": 3}, {"keep": {"a"}, "abstract_id": 1}):
        with pytest.raises((ValueError, TypeError)):
            fast.IdTable({}, **bad)


# ---- stats' token counts (piece "tokens": evaluation.lengths.count_tokens, _tokens.c) -------------------------------

_FINDALL = re.compile(r"\w+|[^\w\s]")


def _findall_counts(texts: list[str | None]) -> list[int]:
    return [len(_FINDALL.findall(t or "")) for t in texts]


def _token_alphabet() -> list[str]:
    """ASCII (controls included), Latin-1, combining marks, numerals Python's \\w takes ('½', '²', ...),
    connector punctuation it does not, CJK, astral letters, digits and emoji, private use, and every
    whitespace code point of Python's \\s (read from `re` itself)."""
    from swcdata.evaluation import lengths

    space = [chr(c) for lo, hi in lengths._class_ranges()[1].tolist() for c in range(lo, hi + 1)]
    assert {"\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000"} <= set(space)
    return [*map(chr, range(128)), *map(chr, range(0x80, 0x100)), *space,
            "\u0300", "\u0301", "\u036f", "\u0483", "\u0903", "\u20d0", "\u200d", "\ufe0f",
            "½", "²", "³", "¼", "٣", "߀", "Ⅻ", "〇", "①", "‿", "⁀", "﹏", "·",
            "名", "前", "語", "가", "ひ", "ー", "、", "。", "\U0001d7ce", "\U0001d7ff", "\U00010400", "\U00020000",
            "\U0001f600", "\U0001f44d", "\U0001f3fd", "\ue000", "\ufffd", "\ufeff", "\U0010ffff"]


def _random_texts(n: int, seed: int) -> list[str]:
    """Random texts: from the whole alphabet, or mostly ASCII words with a rare other code point (the
    64-byte ASCII blocks of the C counter and its way out of them), 0 to ~400 code points."""
    rng = random.Random(seed)
    alphabet = _token_alphabet()
    ascii_pieces = ["x", "ab", "_", "9", "0x1f", " ", "  ", "\n", ".", ",", ";", "(", ")", "{", "}", "=", "'", "\t",
                    "\x1c", "\x7f", "\x00", "uint256", "msg.sender"]
    out = []
    for _ in range(n):
        size = rng.choice((0, 1, 2, 5, 12, 13, 40, 63, 64, 65, 127, 128, 200, 400))
        if rng.random() < 0.4:
            out.append("".join(rng.choice(alphabet) for _ in range(size)))
        else:
            rare = rng.choice((0.0, 0.005, 0.02, 0.1))
            out.append("".join(rng.choice(alphabet) if rng.random() < rare else rng.choice(ascii_pieces)
                               for _ in range(size)))
    return out


def _count_tokens(texts: list[str | None], monkeypatch: pytest.MonkeyPatch, ext: bool) -> list[int]:
    import polars as pl

    from swcdata.evaluation import lengths

    with monkeypatch.context() as m:
        if not ext:
            m.setattr(lengths, "_fast", None)
        got = lengths.count_tokens(pl.Series("t", texts, dtype=pl.String))
    assert got.dtype == pl.Int64 and got.name == "t" and got.len() == len(texts)
    return got.to_list()


def _raw_counts(texts: list[str | None], layout: str) -> list[int]:
    """The C counter on the buffers of an Arrow array of `layout` (string, large_string, string_view)."""
    import pyarrow as pa

    from swcdata.evaluation import lengths

    lengths._c_classes()
    arr = pa.array(texts, type=getattr(pa, layout)())
    out = np.full(len(arr), -1, dtype=np.int64)
    validity, index, *data = arr.buffers()
    if layout == "string_view":
        fast.count_tokens_views(out, index, [b"" if d is None else d for d in data], validity, arr.offset)
    else:
        fast.count_tokens(out, data[0] or b"", index, 8 if layout == "large_string" else 4, validity, arr.offset)
    return out.tolist()


def test_count_tokens_agrees_on_the_seed_data(seed_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _fields(seed_files)
    assert len(texts) > 1000
    want = _findall_counts(texts)
    assert _count_tokens(texts, monkeypatch, True) == want
    assert _count_tokens(texts, monkeypatch, False) == want
    assert _raw_counts(texts, "large_string") == want


def test_count_tokens_agrees_on_random_text(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _random_texts(30_000, seed=20261207)
    want = _findall_counts(texts)
    assert sum(want) > 1_000_000
    got = _count_tokens(texts, monkeypatch, True)
    for t, g, w in zip(texts, got, want, strict=True):
        assert g == w, repr(t)
    for layout in ("string", "large_string", "string_view"):
        assert _raw_counts(texts, layout) == want, layout
    assert _count_tokens(texts[:5000], monkeypatch, False) == want[:5000]


def test_count_tokens_every_code_point_alone_and_after_a_word() -> None:
    """Each code point's class, through the C table: alone ("" -> 0 tokens, word or other -> 1) and after
    "a" (a word one joins the run); and runs of each crossing the 64-byte blocks."""
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = points + ["a" + p for p in points]
    assert _raw_counts(texts, "large_string") == _findall_counts(texts)
    long = [p * 70 + "x" + p * 3 for p in points[::97]] + ["x" * 63 + p + "y" for p in points[::89]]
    assert _raw_counts(long, "large_string") == _findall_counts(long)


@pytest.mark.parametrize("ext", [True, False])
def test_count_tokens_nulls_empties_and_slices(ext: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import polars as pl

    from swcdata.evaluation import lengths

    texts = [None, "", "a b", None, " ", "x" * 13, "héllo, wörld!", "", "½²3 名前\u3000=\x1c1;", "a\u0301b"] * 7
    want = _findall_counts(texts)
    assert _count_tokens(texts, monkeypatch, ext) == want
    with monkeypatch.context() as m:
        if not ext:
            m.setattr(lengths, "_fast", None)
        whole = pl.Series("t", texts, dtype=pl.String)
        for a, b in ((0, 0), (3, 1), (1, 17), (5, 44), (9, 61), (70, 0)):
            got = lengths.count_tokens(whole.slice(a, b))
            assert got.to_list() == want[a:a + b] and got.name == "t" and got.dtype == pl.Int64
        chunked = pl.concat([whole.slice(0, 20), whole.slice(33, 30), whole.slice(5, 4)], rechunk=False)
        assert chunked.n_chunks() == 3
        assert lengths.count_tokens(chunked).to_list() == want[:20] + want[33:63] + want[5:9]
        assert lengths.count_tokens(pl.Series("n", [None, None])).to_list() == [0, 0]  # dtype Null
        empty = lengths.count_tokens(pl.Series("e", [], dtype=pl.String))
        assert empty.to_list() == [] and empty.dtype == pl.Int64
        assert lengths.count_tokens(pl.Series("s", ["a.b"]).cast(pl.Categorical)).to_list() == [3]


def test_count_tokens_on_sliced_arrow_arrays() -> None:
    import pyarrow as pa

    from swcdata.evaluation import lengths

    lengths._c_classes()
    texts = [None if i % 7 == 3 else "ab, c" * (i % 5) + "é" * (i % 3) for i in range(100)]
    want = _findall_counts(texts)
    for layout in ("string", "large_string", "string_view"):
        whole = pa.array(texts, type=getattr(pa, layout)())
        for a, b in ((0, 100), (1, 50), (13, 87), (99, 1), (50, 0)):
            arr = whole.slice(a, b)
            out = np.full(b, -1, dtype=np.int64)
            validity, index, *data = arr.buffers()
            if layout == "string_view":
                fast.count_tokens_views(out, index, data, validity, arr.offset)
            else:
                fast.count_tokens(out, data[0], index, 8 if layout == "large_string" else 4, validity=validity,
                                  offset=arr.offset)
            assert out.tolist() == want[a:a + b], (layout, a, b)


def test_count_tokens_malformed_utf8() -> None:
    """Bytes that are not UTF-8 never make the counter read outside a string; each byte that starts no
    valid sequence counts as one code point, neither word nor space: exactly what findall counts on the
    bytes decoded with surrogateescape (one lone surrogate, a [^\\w\\s] token, per such byte)."""
    from swcdata.evaluation import lengths

    lengths._c_classes()
    rng = random.Random(20261208)
    pieces = [b"a", b"_", b" ", b".", b"\xc3\xa9", b"\xe5\x90\x8d", b"\xf0\x9f\x98\x80", b"\xc3", b"\xe5\x90",
              b"\xf0\x9f", b"\xf0\x9f\x98", b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf",
              b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\xfe", b"\xf8\x88\x80\x80\x80",
              b"\xe2\x80\xa8", b"\xc2\xa0", b"\xc2\xbd"]
    blobs = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 90))) for _ in range(20_000)]
    blobs += [bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))) for _ in range(5_000)]
    blobs += [b"x" * k + tail for k in (0, 60, 61, 62, 63, 64, 127) for tail in (b"\xf0", b"\xe5\x90", b"\xf0\x9f\x98")]
    offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
    out = np.full(len(blobs), -1, dtype=np.int64)
    fast.count_tokens(out, b"".join(blobs), offsets, 8)
    assert out.tolist() == [len(_FINDALL.findall(b.decode("utf-8", "surrogateescape"))) for b in blobs]
    for i, b in enumerate(blobs[:3000]):  # each alone in a buffer of its own size: the end is the buffer's end
        one = np.zeros(1, dtype=np.int64)
        fast.count_tokens(one, bytes(b), np.array([0, len(b)], dtype=np.int32), 4)
        assert one[0] == out[i]
    views = np.zeros(len(blobs[:3000]) * 4, dtype=np.int32)  # string views: inline up to 12 bytes
    big = b"".join(blobs[:3000])
    at = 0
    for i, b in enumerate(blobs[:3000]):
        views[4 * i] = len(b)
        if len(b) <= 12:
            views.view(np.uint8)[16 * i + 4:16 * i + 4 + len(b)] = np.frombuffer(b, dtype=np.uint8)
        else:
            views[4 * i + 2:4 * i + 4] = (0, at)
        at += len(b)
    out3 = np.full(3000, -1, dtype=np.int64)
    fast.count_tokens_views(out3, views, [big])
    assert out3.tolist() == out[:3000].tolist()


def test_count_tokens_checks_its_arguments() -> None:
    from swcdata.evaluation import lengths

    lengths._c_classes()
    out = np.zeros(2, dtype=np.int64)
    data = b"abc def"
    for offsets, width in (([0, 3, 8], 8), ([0, 4, 3], 8), ([-1, 3, 7], 8), ([0, 3], 8), ([0, 3, 7], 5)):
        with pytest.raises(ValueError):
            fast.count_tokens(out, data, np.array(offsets, dtype=np.int64), width)
    with pytest.raises(ValueError):  # a string past its data, the rows before it counted
        fast.count_tokens(out, data, np.array([0, 3, 9], dtype=np.int32), 4)
    with pytest.raises(ValueError):
        fast.count_tokens(np.zeros(3, dtype=np.int8), data, np.array([0, 3, 7], dtype=np.int64), 8)
    with pytest.raises(ValueError):  # validity shorter than offset + n bits
        fast.count_tokens(out, data, np.array([0, 1, 2, 3, 4, 5, 6, 7] * 2, dtype=np.int64), 8, b"\xff", 7)
    with pytest.raises(BufferError):
        fast.count_tokens(bytes(16), data, np.array([0, 3, 7], dtype=np.int64), 8)  # out not writable
    fast.count_tokens(out, data, np.array([0, 3, 7], dtype=np.int64), 8, b"\x02")  # the first null
    assert out.tolist() == [0, 1]
    view = np.zeros(4, dtype=np.int32)
    for v, bufs in (((13, 0, 0, 0), [b"x" * 13]), ((13, 0, 1, 0), [b"x" * 13]), ((13, 0, 0, 1), [b"x" * 13]),
                    ((-1, 0, 0, 0), []), ((13, 0, -1, 0), [b"x" * 13])):
        view[:] = v
        if v == (13, 0, 0, 0):
            fast.count_tokens_views(out[:1], view, bufs)
            assert out[0] == 1
            continue
        with pytest.raises(ValueError):
            fast.count_tokens_views(out[:1], view, bufs)
    with pytest.raises(ValueError):
        fast.count_tokens_views(out, view, [])  # 2 counts, 1 view
    with pytest.raises(TypeError):
        fast.count_tokens_views(out[:1], view, [None])
    with pytest.raises(ValueError):
        fast.token_classes_init(np.array([[5, 4]], dtype=np.uint32), np.zeros((0, 2), dtype=np.uint32))
    with pytest.raises(ValueError):
        fast.token_classes_init(np.array([[0, 0x110000]], dtype=np.uint32), np.zeros((0, 2), dtype=np.uint32))
    with pytest.raises(ValueError):  # a code point in both
        fast.token_classes_init(np.array([[0x20, 0x41]], dtype=np.uint32), np.array([[0x20, 0x20]], dtype=np.uint32))
    assert _raw_counts(["a b.c"], "string") == [4]  # a refused init left the classes as they were


def test_count_tokens_with_other_ascii_classes() -> None:
    """Classes whose ASCII part is not Python's ('$' a word character, '\\x1c' not a space): the counter
    leaves its SSE2 blocks (which have Python's ASCII classes built in) for the code point loop."""
    from swcdata.evaluation import lengths

    word, space = lengths._class_ranges()
    other_space = np.array([r for r in space.tolist() if r != [0x1C, 0x20]] + [[0x1D, 0x20]], dtype=np.uint32)
    try:
        fast.token_classes_init(np.concatenate([word, [[ord("$"), ord("$")]]]).astype(np.uint32), other_space)
        texts = [*_random_texts(3000, seed=20261209), "a$b $ \x1c$x\x1c", "$" * 100]
        want = [len(re.findall(r"[\w$]+|[^\w\s$]|\x1c", t)) for t in texts]
        assert _raw_counts(texts, "large_string") == want
    finally:
        fast.token_classes_init(word, space)
    assert _raw_counts(["a$b \x1c"], "string") == [3]  # Python's classes again


def test_count_tokens_in_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter releases the GIL: counts in threads at once are the counts one by one."""
    from concurrent.futures import ThreadPoolExecutor

    texts = _random_texts(4000, seed=20261210)
    want = _findall_counts(texts)
    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(lambda _: _count_tokens(texts, monkeypatch, True), range(8)):
            assert got == want


def test_no_ext_tokens_setting_counts_with_polars() -> None:
    code = ("import polars as pl; from swcdata import _native; from swcdata.evaluation import lengths; "
            "print(_native.on('tokens'), lengths.count_tokens(pl.Series(['a½ b,\\x1c名 😀', None])).to_list())")
    for setting, on in (("tokens", "False"), ("lex", "True")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "SWCDATA_NO_EXT": setting},
                             capture_output=True, text=True, check=True)
        assert out.stdout.split(None, 1) == [on, "[5, 0]\n"]
