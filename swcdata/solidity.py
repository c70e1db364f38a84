"""Solidity code in instruction text: extraction, fast lexing/normalisation, tree-sitter parsing.

Three independent tools live here:

* :func:`extract_code` finds every code span in a piece of prose (Markdown fences, backtick and
  single-quoted inline code, unquoted code blocks after a blank line or a colon, whole-text
  code bodies). It is regex/scanner based and never calls tree-sitter.
* :func:`code_tokens` / :func:`normalize_code` are a pure-regex lexer giving a deterministic,
  layout- and comment-insensitive comparison key (used by dedup on ~1M records).
* :func:`parse` checks a span with tree-sitter-solidity, trying it as a source unit, inside a
  contract body and inside a function body. The parser is created lazily so importing this
  module stays cheap.

:func:`looks_like_code` is a deliberately separate, cheap detector ("does this text contain
Solidity at all?") used as the denominator when measuring extraction coverage.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CodeSpan",
    "Identifier",
    "ParseResult",
    "code_tokens",
    "extract_code",
    "identifier_nodes",
    "is_codeish",
    "looks_like_code",
    "normalize_code",
    "parse",
]


@dataclass(frozen=True, slots=True)
class CodeSpan:
    """One piece of code inside a text. Invariant: ``source[start:end] == text``."""

    text: str
    start: int
    end: int
    shape: str  # "fence" | "inline" | "block"


@dataclass(frozen=True, slots=True)
class ParseResult:
    ok: bool
    wrapper: str | None
    error_count: int


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier found by tree-sitter; offsets are relative to the code passed in."""

    name: str
    start: int  # character offsets into the code string
    end: int
    start_byte: int  # byte offsets into code.encode("utf-8")
    end_byte: int
    parent: str  # tree-sitter type of the parent node (e.g. "function_definition")


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

# fmt: off
_KEYWORDS = frozenset([
    "abstract", "address", "anonymous", "as", "assembly", "bool", "break", "byte", "bytes", "calldata",
    "case", "catch", "constant", "constructor", "continue", "contract", "default", "delete", "do", "else",
    "emit", "enum", "error", "event", "external", "fallback", "false", "final", "fixed", "for", "from",
    "function", "global", "hex", "if", "immutable", "import", "indexed", "interface", "internal", "is", "let",
    "library", "mapping", "memory", "modifier", "new", "null", "override", "payable", "pragma", "private",
    "public", "pure", "receive", "return", "returns", "revert", "require", "assert", "solidity", "storage",
    "string", "struct", "super", "this", "throw", "true", "try", "type", "ufixed", "unchecked", "unicode",
    "using", "var", "view", "virtual", "while", "wei", "gwei", "ether", "szabo", "finney", "seconds",
    "minutes", "hours", "days", "weeks", "years", "after", "alias", "apply", "auto", "copyof", "define",
    "final", "implements", "in", "inline", "macro", "match", "mutable", "of", "partial", "promise",
    "reference", "relocatable", "sealed", "sizeof", "static", "supports", "switch", "typedef", "typeof",
])
# fmt: on

# fmt: off
_BUILTINS = frozenset([
    "msg", "sender", "value", "data", "sig", "gas", "block", "timestamp", "number", "coinbase", "difficulty",
    "gaslimit", "chainid", "basefee", "prevrandao", "blockhash", "blobhash", "blobbasefee", "tx", "origin",
    "gasprice", "now", "gasleft", "abi", "encode", "encodePacked", "encodeWithSelector",
    "encodeWithSignature", "encodeCall", "decode", "transfer", "send", "call", "delegatecall", "staticcall",
    "callcode", "balance", "code", "codehash", "keccak256", "sha256", "sha3", "ripemd160", "ecrecover",
    "addmod", "mulmod", "selfdestruct", "suicide", "length", "push", "pop", "selector", "interfaceId",
    "creationCode", "runtimeCode",
])
# fmt: on


def _elementary_types() -> frozenset[str]:
    names = {"int", "uint", "bytes", "byte", "fixed", "ufixed", "address", "bool", "string"}
    for n in range(8, 257, 8):
        names.add(f"int{n}")
        names.add(f"uint{n}")
    for n in range(1, 33):
        names.add(f"bytes{n}")
    return frozenset(names)


_TYPES = _elementary_types()
_KEEP = _KEYWORDS | _BUILTINS | _TYPES
_FIXED_RE = re.compile(r"u?fixed\d+x\d+\Z")

# --------------------------------------------------------------------------------------------
# Fast lexer
# --------------------------------------------------------------------------------------------

# One capturing group: comments match with an empty group and are filtered out. Alternatives are
# distinguished by their first character, so the order only matters for "/" (comment before op).
_TOKEN_RE = re.compile(
    r"""
    \d\w*(?:\.\d\w*)?                       # number: 42, 0xff, 1e18, 1_000, 1.5
    |\w+                                    # identifier / keyword (ASCII)
    |[(){};,\[\]]                            # the commonest punctuation, single
    |"[^"\\\n]*(?:\\.[^"\\\n]*)*"           # string literals (one line)
    |'[^'\\\n]*(?:\\.[^'\\\n]*)*'
    |//[^\n]*|/\*[\s\S]*?(?:\*/|\Z)           # comments (filtered out afterwards)
    |>>>=|>>>|<<=|>>=|\*\*=?|=>|->|==|!=|<=|>=|&&|\|\||\+\+|--|[-+*/%&|^]=|<<|>>|:=
    |[^\s\w]                                # any other single character
    """,
    re.VERBOSE | re.ASCII,
)


_ABSTRACT_CACHE: dict[tuple[bool, bool], dict[str, str]] = {}
_ABSTRACT_CACHE_MAX = 500_000


def _abstract_token(t: str, identifiers: bool, literals: bool) -> str:
    c = t[0]
    if c.isdigit():
        return "NUM" if literals else t
    if c.isalpha() or c == "_":
        if identifiers and t not in _KEEP and not _FIXED_RE.match(t):
            return "ID"
        return t
    if literals and (c == '"' or c == "'") and len(t) > 1:
        return "STR"
    return t


def code_tokens(code: str, *, abstract_identifiers: bool = False, abstract_literals: bool = False) -> list[str]:
    """Lex ``code`` into tokens with a single regex (no tree-sitter).

    Comments and all whitespace are dropped; tokens are identifiers/keywords, numbers, string
    literals (one line, either quote), multi-character operators (``==``, ``+=``, ``=>``, ...)
    and single punctuation characters. Non-ASCII characters are single-character tokens.
    ``abstract_identifiers`` replaces every identifier that is not a Solidity keyword,
    elementary type or builtin (``msg``, ``sender``, ``transfer``, ``keccak256``, ...) by
    ``"ID"``; ``abstract_literals`` replaces numbers by ``"NUM"`` and string literals by ``"STR"``.
    """
    toks: list[str] = _TOKEN_RE.findall(code)
    if "//" in code or "/*" in code:
        toks = [t for t in toks if t[0] != "/" or len(t) == 1 or t[1] not in "/*"]
    if not (abstract_identifiers or abstract_literals):
        return toks
    key = (abstract_identifiers, abstract_literals)
    cache = _ABSTRACT_CACHE.get(key)
    if cache is None or len(cache) > _ABSTRACT_CACHE_MAX:
        cache = _ABSTRACT_CACHE[key] = {}
    get = cache.get
    out: list[str] = []
    append = out.append
    for t in toks:
        a = get(t)
        if a is None:
            a = cache[t] = _abstract_token(t, abstract_identifiers, abstract_literals)
        append(a)
    return out


def normalize_code(code: str) -> str:
    """Deterministic comparison key: ``" ".join(code_tokens(code))``."""
    return " ".join(code_tokens(code))


# --------------------------------------------------------------------------------------------
# "Is this code?" judgements
# --------------------------------------------------------------------------------------------

_DECL_KW = (
    r"(?:u?int\d*|bytes\d*|byte|address|bool|string|mapping|function|contract|library|interface|"
    r"modifier|event|emit|struct|enum|return|returns|throw|var|delete|constructor|pragma|using)"
)

# Evidence that a short quoted span is code rather than a name or a quoted phrase.
_CODEISH_RES = (
    re.compile(r"[;{}]"),  # statement terminator or body
    re.compile(r"[A-Za-z_$][\w$]*\s*\("),  # call / header:  transfer(), require(x)
    re.compile(r"\w\s*\[[^\]]*\]"),  # indexing: balances[msg.sender]
    re.compile(r"==|!=|<=|>=|&&|\|\||\+=|-=|\*=|/=|%=|=>|\+\+|--|<<|>>|\*\*"),  # compound operators
    re.compile(r"[\w)\]]\s*=\s*[\w(\"'!-]"),  # assignment
    re.compile(r"[\w)\]]\s+[-+*/%<>]\s+[\w(]"),  # binary operator with spaces: a + b, x - 1
    re.compile(r"[\w)\]][+*%<>][\w(]"),  # tight binary operator (not '-' or '/': hyphen-ated, and/or)
    re.compile(r"(?<![\w.])[A-Za-z_]\w+\.(?!(?:sol|js|ts|md|json|txt|py)\b)[A-Za-z_]\w+"),  # member access
    re.compile(r"\b" + _DECL_KW + r"\s+[A-Za-z_]\w*"),  # keyword + identifier: uint256 x, emit E
)


def is_codeish(s: str) -> bool:
    """True when a (short, quoted) string has code-ish content.

    A bare name (``transfer``, ``'Assert Violation'``, ``now``) or a quoted phrase
    (``'checks-effects-interactions'``) is *not* code. Code needs at least one of: a ``;`` or a
    brace, a call/header ``name(``, indexing ``a[i]``, an operator (assignment, comparison,
    compound, arithmetic with operands), member access ``msg.sender`` (but not ``File.sol``),
    or a declaration keyword followed by an identifier (``uint256 amount``, ``emit Transfer``).
    """
    s = s.strip()
    if len(s) < 2:
        return False
    return any(r.search(s) for r in _CODEISH_RES)


# Independent, cheap detector for "this text contains Solidity code" (coverage denominator).
_LOOKS_RE = re.compile(
    r"""
    ```                                                     # a Markdown fence
    |[{}]                                                   # braces never occur in this prose
    |\b(?:function|modifier|event)\s+[A-Za-z_]\w*\s*\(      # declarations
    |\bconstructor\s*\(|\bfunction\s*\(\s*\)
    |\b(?:contract|library|interface)\s+[A-Za-z_]\w*\s*(?:is\s+[A-Z_]\w*|\{)
    |\bpragma\s+solidity\b
    |[=(][^;\n]{0,300}?[\w)\]"']\s*;                        # a statement: assignment or call, then ';'
    |\b(?:u?int\d*|bytes\d*|address|bool|string)(?:\[\d*\])*\s+                  # a declaration
      (?:(?:public|private|internal|constant|immutable|memory|storage|calldata)\s+)*[A-Za-z_]\w*\s*[;=]
    |(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\s*(?:\{[^{}\n]*\}\s*)?\([^()\n]*\)   # a member call: a.b(c)
    """,
    re.VERBOSE,
)


def looks_like_code(text: str) -> bool:
    """Cheap detector: does ``text`` contain Solidity code at all?

    Independent of :func:`extract_code` (it is the denominator of extraction coverage): true when
    the text has a Markdown fence, a brace, a declaration header (``function f(``,
    ``constructor(``, ``contract C {``, ``pragma solidity``), or a statement - an ``=`` or ``(``
    followed on the same line by a ``;`` after a code-ish character.
    """
    return bool(text) and _LOOKS_RE.search(text) is not None


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

_FENCE_RE = re.compile(r"```(?:[ \t]*[\w+#.-]*[ \t]*\n)?(.*?)(?:```|\Z)", re.S)

_LVALUE = r"[A-Za-z_$][\w$]*(?:\s*\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]|\.[A-Za-z_$][\w$]*)*"
_TYPE = (
    r"(?:u?int\d*|bytes\d*|byte|address(?:\s+payable)?|bool|string|var|u?fixed[\dx]*|[A-Z]\w*"
    r"|mapping\s*\([^)\n]*\))(?:\s*\[\w*\])*"
)
_MODS = r"(?:(?:memory|storage|calldata|public|private|internal|external|constant|immutable|payable|override)\s+)*"

# Where a code block may start (applied at a line start, the text start, or after a colon).
_CODE_START = (
    r"(?:"
    r"pragma\s+solidity\b|import\s+[\"'{*]"
    r"|(?:abstract\s+)?contract\s+[A-Za-z_]\w*\s*(?:is\b[^{};\n]*)?\{"
    r"|(?:library|interface)\s+[A-Za-z_]\w*\s*(?:is\b[^{};\n]*)?\{"
    r"|function\s*[A-Za-z_$]?[\w$]*\s*\("
    r"|constructor\s*\(|fallback\s*\(|receive\s*\(\s*\)"
    r"|modifier\s+[A-Za-z_]\w*\s*[({]"
    r"|event\s+[A-Za-z_]\w*\s*\("
    r"|(?:struct|enum)\s+[A-Za-z_]\w*\s*\{"
    r"|using\s+[A-Za-z_]\w*\s+for\b|mapping\s*\(|let\s+[A-Za-z_]\w*\s*:="
    r"|(?:require|assert|revert)\s*\("
    r"|(?:if|for|while)\s*\(|do\s*\{|else\b\s*[{i]|unchecked\s*\{|assembly\s*\{"
    r"|emit\s+[A-Za-z_]\w*\s*\("
    r"|return\b[^\n.]*;|return\s*\(|throw\s*;|delete\s+" + _LVALUE + r"\s*;"
    r"|\(\s*(?:bool|uint\d*|bytes\d*|address)\b[^)\n]*\)\s*="
    r"|" + _TYPE + r"\s+" + _MODS + r"[A-Za-z_$][\w$]*\s*[=;]"
    r"|" + _LVALUE + r"\s*(?:[-+*/%|&^]|<<|>>)?=(?![=>])"
    r"|" + _LVALUE + r"\s*(?:\+\+|--)\s*;"
    r"|(?:\+\+|--)\s*" + _LVALUE + r"\s*;"
    r"|" + _LVALUE + r"\s*(?:\{[^{}\n]*\}\s*)?\([^\n]*\)\s*;"
    r"|[A-Za-z_]\w*\s*\([^()]*\)\s*(?:[A-Za-z_]\w*(?:\([^()\n]*\))?\s*)*\{"  # Name(args) mods { (old ctor)
    r"|_\s*;"
    r")"
)

# Candidate starts: a backtick, a single quote that opens (not an apostrophe), or a code block
# start at the text start / a line start / after a colon.
# Candidate starts: a backtick, a single quote that opens (not an apostrophe), or a code block
# start at the text start / a line start / after a colon / after a sentence end. A cheap char-class
# search finds the places; the (costly) code-start test runs only there.
_CAND_CHARS_RE = re.compile(r"[`'\n:.?!]")
_SQ_OPEN_RE = re.compile(r"'(?=[^\s']|[ \t]+" + _CODE_START + r")")
_BLOCK_AT_RE = re.compile(r"[ \t]*(?=" + _CODE_START + r")")
_NOT_BEFORE_QUOTE = frozenset("'’`$_")


def _next_candidate(text: str, i: int, b: int) -> tuple[str, int, int] | None:
    """(kind, start, content start) of the next candidate at or after ``i``; kind in bt/sq/blk."""
    if i < b and (i == 0 or text[i - 1] == "\n"):
        m = _BLOCK_AT_RE.match(text, i, b)
        if m is not None:
            return "blk", i, m.end()
    search = _CAND_CHARS_RE.search
    while True:
        m = search(text, i, b)
        if m is None:
            return None
        j = m.start()
        c = text[j]
        i = j + 1
        if c == "`":
            return "bt", j, j + 1
        if c == "'":
            if j > 0:
                p = text[j - 1]
                if p.isalnum() or p in _NOT_BEFORE_QUOTE:
                    continue
            if _SQ_OPEN_RE.match(text, j, b):
                return "sq", j, j + 1
            continue
        if c in ".?!":
            if j + 1 >= b or text[j + 1] != " ":
                continue
            i = j + 2
        bm = _BLOCK_AT_RE.match(text, i, b)
        if bm is not None:
            return "blk", i, bm.end()


_CODE_START_RE = re.compile(r"[ \t]*" + _CODE_START)
_SCAN_RE = re.compile(r"[(){}\[\];\"'`\n/]")
_DQ_STR_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_SQ_STR_RE = re.compile(r"'(?:[^'\\\n]|\\.)*'")

# fmt: off
_STOPWORDS = frozenset([
    "the", "a", "an", "this", "that", "these", "those", "to", "of", "and", "or", "be", "is", "are", "was",
    "were", "will", "would", "can", "could", "should", "may", "might", "it", "its", "with", "by", "which",
    "when", "where", "how", "what", "we", "you", "your", "not", "also", "has", "have", "from", "on", "at",
    "into", "because", "ensures", "ensure", "so", "than", "there", "their", "they", "here", "here’s",
    "here's", "in", "if", "for", "any", "does", "do", "such", "all", "as",
])
# fmt: on
_WORD_RUN_RE = re.compile(r"[A-Za-z0-9][\w.'’-]*,?(?:[ \t]+[A-Za-z0-9][\w.'’-]*,?){2,}")
_WORD_RE = re.compile(r"[A-Za-z0-9][\w.'’-]*")
_LIST_MARK_RE = re.compile(r"(?:#{1,6}\s|\*\*|[-*+]\s+[A-Za-z*`]|\d+[.)]\s+[A-Z*`])")


def _prose_at(text: str, pos: int, end: int) -> bool:
    """Does an English sentence (not code) start at ``pos``?"""
    m = _WORD_RUN_RE.match(text, pos, end)
    if m is None:
        return False
    words = _WORD_RE.findall(m.group())[:6]
    stops = sum(1 for w in words if w.lower().rstrip(".,") in _STOPWORDS)
    if stops >= 2:
        return True
    return stops >= 1 and words[0][0].isupper() and words[0] not in _KEEP


def _line_end(text: str, pos: int, end: int) -> int:
    e = text.find("\n", pos, end)
    return end if e < 0 else e


def _prose_line(text: str, pos: int, end: int, top: bool = True) -> bool:
    """Is the line starting at ``pos`` (already past leading blanks) prose?

    ``top``: the code before is at brace depth 0, where a label line ("Fixed code:") or a
    Markdown list item also ends the code; inside braces only an English sentence does.
    """
    le = _line_end(text, pos, end)
    line = text[pos:le].rstrip()
    if not line:
        return False
    if line.startswith(("//", "/*", "*")) and not line.startswith("**"):
        return False
    if top and (line.endswith(":") or _LIST_MARK_RE.match(line)):
        return True
    return _prose_at(text, pos, le)


def _codeish_line(text: str, pos: int, end: int) -> bool:
    le = _line_end(text, pos, end)
    line = text[pos:le].strip()
    if not line:
        return False
    if line[0] in "{}/*)" or line.startswith("_;"):
        return True
    if _CODE_START_RE.match(line):
        return True
    core = line.split("//", 1)[0].rstrip()
    return core.endswith((";", "{", "}", ",", "(")) and is_codeish(core)


def _skip_blank_lines(text: str, pos: int, end: int) -> tuple[int, int]:
    """From just after a newline, skip blank lines; return (first non-blank char, blank count)."""
    blanks = 0
    i = pos
    while i < end:
        j = i
        while j < end and text[j] in " \t\r":
            j += 1
        if j < end and text[j] == "\n":
            blanks += 1
            i = j + 1
            continue
        return j, blanks
    return end, blanks


def _scan(text: str, pos: int, end: int, quote: str | None) -> tuple[int, bool]:
    """Scan Solidity code from ``pos``.

    Block mode (``quote is None``): returns (end of code, True); code ends where prose starts
    after a complete unit, at a blank line followed by non-code, or at the region end.
    Quote mode: returns (index of the closing quote, True), or (pos, False) when the quote does
    not close as code (the caller then treats the quote as an apostrophe or a prose quote).
    """
    depth = 0
    i = pos
    last_sig = pos  # end of the last non-space code character
    scan = _SCAN_RE.search
    while True:
        m = scan(text, i, end)
        if m is None:
            if quote is not None:
                return pos, False
            return (end if depth > 0 else max(last_sig, _rstrip_end(text, pos, end))), True
        j = m.start()
        c = text[j]
        if c == "\n":
            if j > i:
                last_sig = _rstrip_end(text, i, j) if text[i:j].strip() else last_sig
            nxt, blanks = _skip_blank_lines(text, j + 1, end)
            if nxt >= end:
                if quote is not None:
                    return pos, False
                return _rstrip_end(text, pos, j), True
            if _prose_line(text, nxt, end, depth <= 0):
                if quote is not None:
                    return pos, False
                return _rstrip_end(text, pos, j), True
            if quote is None and depth == 0:
                prev = text[last_sig - 1] if last_sig > pos else ""
                complete = prev in ";}"
                if (blanks or complete) and not _codeish_line(text, nxt, end):
                    return _rstrip_end(text, pos, j), True
            i = nxt
            continue
        if c == '"':
            sm = _DQ_STR_RE.match(text, j, end)
            i = sm.end() if sm else j + 1
            last_sig = i
            continue
        if c == "'":
            if quote == "'" and depth <= 0:
                if j + 1 >= end or not (text[j + 1].isalnum() or text[j + 1] == "_"):
                    return j, True
                i = j + 1
                continue
            sm = _SQ_STR_RE.match(text, j, end)
            if sm is None and quote is None and depth == 0:
                # an unmatched quote after code in block mode: prose starts here
                return _rstrip_end(text, pos, j), True
            i = sm.end() if sm else j + 1
            last_sig = i
            continue
        if c == "`":
            if quote is None:
                return _rstrip_end(text, pos, j), True
            i = j + 1
            continue
        if c == "/":
            nc = text[j + 1] if j + 1 < end else ""
            if nc == "/":
                le = _line_end(text, j, end)
                if quote == "'" and depth <= 0:
                    q = _closing_quote_in(text, j + 2, le)
                    if q >= 0:
                        return q, True
                i = le
                continue
            if nc == "*":
                ce = text.find("*/", j + 2, end)
                i = end if ce < 0 else ce + 2
                continue
            i = j + 1
            continue
        if c in "([{":
            depth += 1
            i = j + 1
            last_sig = i
            continue
        if c in ")]}":
            depth -= 1
            i = j + 1
            if depth < 0:
                if quote is not None:
                    return pos, False
                return _rstrip_end(text, pos, j), True
            last_sig = i
            # prose right after ")" at top level, or after "}" at any depth (unbalanced/truncated code)
            if quote is None and (depth == 0 or c == "}") and _prose_after(text, i, end):
                return i, True
            continue
        # c == ";"
        i = j + 1
        last_sig = i
        if quote is None and _prose_after(text, i, end):
            return i, True


_AFTER_RE = re.compile(r"[ \t]*[.,:]?[ \t]*")


def _prose_after(text: str, pos: int, end: int) -> bool:
    m = _AFTER_RE.match(text, pos, end)
    p = m.end() if m else pos
    return p < end and text[p] not in "\n" and _prose_at(text, p, _line_end(text, p, end))


_CLOSE_IN_COMMENT_RE = re.compile(r"'(?![\w])")


def _closing_quote_in(text: str, a: int, b: int) -> int:
    m = _CLOSE_IN_COMMENT_RE.search(text, a, b)
    return -1 if m is None else m.start()


def _rstrip_end(text: str, a: int, b: int) -> int:
    while b > a and text[b - 1].isspace():
        b -= 1
    return b


_TRAIL_PUNCT = ".,:"


def _trimmed(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    # a sentence full stop / comma right after the code: "... }." -> "... }"
    while b - 1 > a and text[b - 1] in _TRAIL_PUNCT and text[b - 2] in ";})":
        b -= 1
    return a, b


_SAME_LINE_QUOTE_RE = re.compile(r"'([^'\n]+)'(?![\w])")


def _scan_region(text: str, a: int, b: int, out: list[CodeSpan]) -> None:
    i = a
    while i < b:
        cand = _next_candidate(text, i, b)
        if cand is None:
            return
        kind, s, content = cand
        if kind == "bt":
            close = text.find("`", s + 1, b)
            if close < 0:
                i = s + 1
                continue
            x, y = _trimmed(text, s + 1, close)
            if y > x and is_codeish(text[x:y]):
                out.append(CodeSpan(text[x:y], x, y, "inline"))
            i = close + 1
        elif kind == "sq":
            close, ok = _scan(text, s + 1, b, "'")
            if not ok:
                fm = _SAME_LINE_QUOTE_RE.match(text, s, b)
                if fm is not None:
                    close = fm.end(1)
                elif _CODE_START_RE.match(text, s + 1, b):
                    # an unclosed (truncated) or comment-swallowed quote around code: scan it as a block
                    stop, _ = _scan(text, s + 1, b, None)
                    x, y = _trimmed(text, s + 1, stop)
                    if y > x and text[y - 1] == "'":
                        y = _rstrip_end(text, x, y - 1)
                    if y > x and is_codeish(text[x:y]):
                        out.append(CodeSpan(text[x:y], x, y, "block"))
                    i = max(stop, s + 1)
                    continue
                else:
                    i = s + 1
                    continue
            x, y = _trimmed(text, s + 1, close)
            if y > x and is_codeish(text[x:y]):
                out.append(CodeSpan(text[x:y], x, y, "inline"))
            i = close + 1
        else:  # block
            start = content
            stop, _ = _scan(text, start, b, None)
            x, y = _trimmed(text, start, stop)
            if y > x and is_codeish(text[x:y]):
                out.append(CodeSpan(text[x:y], x, y, "block"))
            i = max(stop, start + 1)


def extract_code(text: str) -> list[CodeSpan]:
    """Every code span in ``text``, in order, non-overlapping (``text[s.start:s.end] == s.text``).

    Shapes: ``fence`` (Markdown fences, language tag stripped; an unclosed fence runs to the end),
    ``inline`` (backtick or single-quoted spans whose content is code-ish, see
    :func:`is_codeish`; apostrophes in prose are not quotes), ``block`` (unquoted code starting
    at the text start, a line start or after a colon, ending where prose resumes).
    """
    if not text:
        return []
    out: list[CodeSpan] = []
    pos = 0
    n = len(text)
    if "```" in text:
        for fm in _FENCE_RE.finditer(text):
            if fm.start() > pos:
                _scan_region(text, pos, fm.start(), out)
            x, y = _trimmed(text, fm.start(1), fm.end(1))
            if y > x:
                out.append(CodeSpan(text[x:y], x, y, "fence"))
            pos = fm.end()
    if pos < n:
        _scan_region(text, pos, n, out)
    return out


# --------------------------------------------------------------------------------------------
# tree-sitter parsing
# --------------------------------------------------------------------------------------------

_WRAPPERS: tuple[tuple[str, str, str], ...] = (
    ("source", "", ""),
    ("contract", "contract __C {\n", "\n}"),
    ("function", "contract __C { function __f() public {\n", "\n} }"),
)

_TS: dict[str, Any] = {}


def _ts() -> dict[str, Any]:
    """Lazily build (once) the tree-sitter parser and error query."""
    if not _TS:
        import tree_sitter
        import tree_sitter_solidity

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            lang = tree_sitter.Language(tree_sitter_solidity.language())
        _TS["parser"] = tree_sitter.Parser(lang)
        try:
            _TS["query"] = tree_sitter.Query(lang, "(ERROR) @e (MISSING) @m")
            _TS["cursor"] = tree_sitter.QueryCursor
        except Exception:  # pragma: no cover - older bindings without (MISSING) queries
            _TS["query"] = None
    return _TS


def _count_errors(root: Any) -> int:
    if not root.has_error:
        return 0
    ts = _TS
    q = ts.get("query")
    if q is not None:
        caps = ts["cursor"](q).captures(root)
        return sum(len(v) for v in caps.values()) or 1
    count = 0  # pragma: no cover
    stack = [root]  # pragma: no cover
    while stack:  # pragma: no cover
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            count += 1
        if node.has_error:
            stack.extend(node.children)
    return count or 1  # pragma: no cover


def _parse_best(code: str) -> tuple[ParseResult, Any, int]:
    ts = _ts()
    parser = ts["parser"]
    body = code.encode("utf-8")
    bare_expr = not code.rstrip().endswith((";", "}"))
    order: tuple[tuple[str, str, str], ...] = _WRAPPERS
    if bare_expr:
        # Every top-level/contract-level Solidity item ends with ';' or '}', so only the function
        # wrapping can succeed: try it first (same ok/wrapper answer, one parse instead of three).
        order = (_WRAPPERS[2], _WRAPPERS[0], _WRAPPERS[1])
    best: tuple[ParseResult, Any, int] | None = None
    for name, pre, post in order:
        pre_b = pre.encode()
        if name == "function" and bare_expr:
            post = ";" + post  # an expression span (`a.b(c)`, `x + y`) becomes an expression statement
        tree = parser.parse(pre_b + body + post.encode())
        errors = _count_errors(tree.root_node)
        if errors == 0:
            return ParseResult(True, name, 0), tree, len(pre_b)
        if best is None or errors < best[0].error_count:
            best = (ParseResult(False, None, errors), tree, len(pre_b))
    assert best is not None
    return best


def parse(code: str) -> ParseResult:
    """Parse ``code`` with tree-sitter-solidity, as-is, then inside ``contract __C { ... }``,
    then inside ``contract __C { function __f() public { ... } }``.

    ``ok``/``wrapper`` tell the first wrapping without ERROR/MISSING nodes; otherwise
    ``error_count`` is the smallest ERROR+MISSING count over the three attempts. In the
    function wrapping a ``;`` is appended when the code does not end with ``;`` or ``}``, so
    that an inline expression (``msg.sender.transfer(x)``) parses as an expression statement.
    """
    return _parse_best(code)[0]


def identifier_nodes(code: str) -> list[Identifier]:
    """Identifiers of ``code`` (from the best wrapping's tree), in source order.

    Identifiers introduced by the wrapper (``__C``, ``__f``) are excluded; offsets refer to
    ``code`` itself (characters and UTF-8 bytes).
    """
    _, tree, offset = _parse_best(code)
    body = code.encode("utf-8")
    nbytes = len(body)
    ascii_only = nbytes == len(code)
    found: list[Identifier] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "identifier":
            sb, eb = node.start_byte - offset, node.end_byte - offset
            if sb >= 0 and eb <= nbytes:
                if ascii_only:
                    cs, ce = sb, eb
                else:
                    cs = len(body[:sb].decode("utf-8", "replace"))
                    ce = cs + len(body[sb:eb].decode("utf-8", "replace"))
                parent = node.parent.type if node.parent is not None else ""
                found.append(Identifier(code[cs:ce], cs, ce, sb, eb, parent))
            continue
        stack.extend(reversed(node.children))
    return found
