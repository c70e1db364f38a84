"""Code inside prose: every code span of an instruction or a response.

:func:`extract_code` finds Markdown fences, backtick and single-quoted inline code, unquoted code
blocks after a blank line or a colon, and whole-text code bodies. It is regex/scanner based and never
calls tree-sitter (`_native/_extract.c` is the same scanner in C). :func:`looks_like_code` is a
deliberately separate, cheap detector ("does this text contain Solidity at all?") used as the
denominator when measuring extraction coverage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from swcdata import _native
from swcdata._native import fast as _fast
from swcdata.solidity.lexer import _KEEP


@dataclass(frozen=True, slots=True)
class CodeSpan:
    """One piece of code inside a text. Invariant: ``source[start:end] == text``."""

    text: str
    start: int
    end: int
    shape: str  # "fence" | "inline" | "block"



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
    # call / header: transfer(), require(x). As a yes/no test this is ``[A-Za-z_$][\w$]*\s*\(``
    # written to try each word once: that one (searched) starts at every letter of a word and
    # backtracks over the rest of it, quadratic in a word's length. A match starting inside a word
    # exists iff one starts at the word's first letter (the rest of the word is ``[\w$]``).
    re.compile(r"(?<![\w$])(?>[\w$]*?[A-Za-z_$])[\w$]*+\s*+\("),
    re.compile(r"\w\s*\[[^\]]*\]"),  # indexing: balances[msg.sender]
    re.compile(r"==|!=|<=|>=|&&|\|\||\+=|-=|\*=|/=|%=|=>|\+\+|--|<<|>>|\*\*"),  # compound operators
    re.compile(r"[\w)\]]\s*=\s*[\w(\"'!-]"),  # assignment
    re.compile(r"[\w)\]]\s+[-+*/%<>]\s+[\w(]"),  # binary operator with spaces: a + b, x - 1
    re.compile(r"[\w)\]][+*%<>][\w(]"),  # tight binary operator (not '-' or '/': hyphen-ated, and/or)
    re.compile(r"(?<![\w.])[A-Za-z_]\w+\.(?!(?:sol|js|ts|md|json|txt|py)\b)[A-Za-z_]\w+"),  # member access
    re.compile(r"\b" + _DECL_KW + r"\s+[A-Za-z_]\w*"),  # keyword + identifier: uint256 x, emit E
)
# Every test but the first needs "(", "[", an operator character, "." or a blank. An identifier has
# none of them, so ``s.isidentifier()`` (one C call, where this search costs ~40 ns a character)
# rejects most bare names; any other string without one fails every test anyway.
_CODEISH_CHAR_RE = re.compile(r"[(\[=!<>&|+\-*/%.\s]")
_CALL, _INDEX, _COMPOUND, _ASSIGN, _SPACED, _TIGHT, _MEMBER, _DECL = (r.search for r in _CODEISH_RES[1:])
# Every match of _COMPOUND, _ASSIGN, _SPACED and _TIGHT contains one of these characters.
_OP_CHAR = re.compile(r"[-+*/%<>=&|]").search


def _codeish_rest(s: str) -> bool:
    """``any(r.search(s) for r in _CODEISH_RES[1:])``, without the searches that cannot match.

    Each search costs a match attempt at every position (~50 ns a character, whatever the
    pattern), so a test runs only when ``s`` has a character that every match of it contains:
    ``.`` (member access), ``(`` (call), ``[`` (indexing), an operator character (the four
    operator tests). The declaration test has no such character and runs last.
    """
    if "." in s and _MEMBER(s):
        return True
    if "(" in s and _CALL(s):
        return True
    if "[" in s and _INDEX(s):
        return True
    if _OP_CHAR(s) is not None and (_ASSIGN(s) or _COMPOUND(s) or _SPACED(s) or _TIGHT(s)):
        return True
    return _DECL(s) is not None


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
    # ``;``/braces (the first test, by far the commonest hit) by substring search, then the others.
    if ";" in s or "{" in s or "}" in s:
        return True
    if s.isidentifier():  # a bare name (no character of _CODEISH_CHAR_RE, which every other test needs)
        return False
    return _codeish_rest(s)


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

# ```` ```lang\n ... ``` ````; the content runs to the first ```` ``` ```` (or the end). Written as
# possessive runs instead of a lazy ``(.*?)(?:```|\Z)``: the same match, without a test per character.
_FENCE_RE = re.compile(r"```(?:[ \t]*[\w+#.-]*[ \t]*\n)?((?:[^`]++|`(?!``))*+)(?:```|\Z)")

_LVALUE = r"[A-Za-z_$][\w$]*(?:\s*\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]|\.[A-Za-z_$][\w$]*)*"
_TYPE = (
    r"(?:u?int\d*|bytes\d*|byte|address(?:\s+payable)?|bool|string|var|u?fixed[\dx]*|[A-Z]\w*"
    r"|mapping\s*\([^)\n]*\))(?:\s*\[\w*\])*"
)
_MODS = r"(?:(?:memory|storage|calldata|public|private|internal|external|constant|immutable|payable|override)\s+)*"

# Where a code block may start (applied at a line start, the text start, or after a colon).
# Only ever used as a yes/no test (in lookaheads and ``match(...) is not None``), so the order of the
# alternatives is irrelevant. They come in two groups: branches led by a keyword or punctuation
# (each fails on its first characters in prose: the regex engine skips alternatives whose leading
# literal does not match), and branches led by an arbitrary identifier (a type or an lvalue), which
# are costly on prose because they backtrack over words. The latter run only behind a cheap guard,
# a necessary condition for each of them (see _CODE_START_ID_GUARD).
_CODE_START_KW = (
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
    r"|(?:\+\+|--)\s*" + _LVALUE + r"\s*;"
    r"|_\s*;"
)
_CODE_START_ID = (
    _TYPE + r"\s+" + _MODS + r"[A-Za-z_$][\w$]*\s*[=;]"
    r"|" + _LVALUE + r"\s*(?:[-+*/%|&^]|<<|>>)?=(?![=>])"
    r"|" + _LVALUE + r"\s*(?:\+\+|--)\s*;"
    r"|" + _LVALUE + r"\s*(?:\{[^{}\n]*\}\s*)?\([^\n]*\)\s*;"
    # Name(args) mods { (old ctor). Possessive words: with ``\w*`` the engine would also try every
    # split of a word into several (``ab`` = ``a`` ``b``), exponential in the words before a "{" that
    # never comes; a split covers the same text, so the answer is the same.
    r"|[A-Za-z_]\w*+\s*\([^()]*\)\s*(?:[A-Za-z_]\w*+(?:\([^()\n]*\))?\s*)*\{"
)
# Necessary condition for every _CODE_START_ID branch. Each starts with a whole word W (a shorter
# prefix would be followed by a word character, which no branch accepts after its first word),
# followed by one of:
#   * ``\s*`` and one of ``[ . + - * / % | & ^ < > = ( {`` - an lvalue's index/member/operator/call,
#     ``Name(``, an array type ``T[``, ``mapping(``;
#   * ``\s+`` and a declaration's next word: a modifier keyword (or ``payable`` of ``address payable``)
#     followed by a space or ``[``, or the declared name (a whole word) followed by ``=`` or ``;``.
# Prose ("The function ...", "This adjustment ...") fails it after two words, without backtracking.
_CODE_START_ID_GUARD = (
    r"[A-Za-z_$][\w$]*+(?:\s*[\[.\-+*/%|&^<>=({]"
    r"|\s+(?:(?:memory|storage|calldata|public|private|internal|external|constant|immutable|payable|override)[\s\[]"
    r"|[A-Za-z_$][\w$]*+\s*[=;]))"
)
# (every _CODE_START_KW branch starts with a lower-case letter, "(", "+", "-" or "_": sentences,
# which start with a capital, skip them all in one test)
_CODE_START = (
    r"(?:(?=[a-z(+\-_])(?:" + _CODE_START_KW + r")|(?=" + _CODE_START_ID_GUARD + r")(?:" + _CODE_START_ID + r"))"
)

# Candidate starts: a backtick, a single quote that opens (not an apostrophe: see _CAND), or a
# code block start at the text start / a line start / after a colon / after a sentence end
# (". ", "? ", "! ").
_BLOCK_AT_RE = re.compile(r"[ \t]*(?=" + _CODE_START + r")")
_BLOCK_AFTER = r"([ \t]*)(?=" + _CODE_START + r")"


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
# Three or more words on a line. _prose_at only looks at the first six, so the match stops there
# ({2,5}); words are possessive (a shorter word would be followed by a word character, where only
# ",", a blank or the end may follow), so no backtracking on lines that are not prose.
_WORD_RUN_RE = re.compile(r"[A-Za-z0-9][\w.'’-]*+,?(?:[ \t]+[A-Za-z0-9][\w.'’-]*+,?){2,5}")
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
    le = text.find("\n", pos, end)
    if le < 0:
        le = end
    if not top:
        # Only a sentence counts; _prose_at needs a letter or digit first, so it is already false
        # on a blank (after rstrip) or comment line.
        return _prose_at(text, pos, le)
    line = text[pos:le].rstrip()
    if not line:
        return False
    if line.startswith(("//", "/*", "*")) and not line.startswith("**"):
        return False
    if line.endswith(":") or _LIST_MARK_RE.match(line):
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


# After a newline: the blank lines (group 1, possibly none) and the blanks that lead the next
# non-blank line (only " ", tab and CR count as blanks here).
_BLANK_LINES_RE = re.compile(r"((?:[ \t\r]*\n)*)[ \t\r]*")


# Fast runs for _scan. _scan visits every bracket, ";", quote, "/", backtick and newline; most of
# those visits do nothing but move on (and adjust the depth). A run regex consumes, in one match,
# a stretch of elements whose visits are known to change nothing else:
#   * string literals; ";" (in block mode: when no sentence can follow, see _R_NO_PROSE);
#   * inside brackets (depth > 0): comments, and newlines (with the blank lines after them) before
#     a line that cannot be a sentence (see _R_MAYBE_PROSE) - at depth > 0 a newline only checks
#     for a sentence (the other end-of-code tests need depth 0);
#   * whole bracket groups, nested up to _RUN_LEVELS deep, of such elements (a group leaves the
#     depth unchanged; in block mode no sentence may follow a "}", nor the outer closer at depth 0).
# ``last_sig`` is only read at depth 0 in block mode. There, every element of a run ends on a
# character that sets it (string end, ";" or closer), so after a run ending at ``r > i`` the state
# is simply ``i = last_sig = r``; at depth > 0 (and in quote mode) it is dead: it is set again by
# the closer that brings the depth back to 0. Anything else (a backtick, an unmatched quote, the
# closing quote, a possible sentence, a lone "{" or "}", a depth-0 newline or comment) ends the run
# and is handled by the general loop exactly as before. The elements start with distinct
# characters and repeat possessively, so a run is exactly the sequence of visits _scan makes.
_RUN_LEVELS = 4


def _ascii_words_re(words: frozenset[str]) -> str:
    """Regex (a trie, fast to reject) for ``words``, ASCII letters matched in either case."""
    trie: dict[str, dict] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        alts = [
            (f"[{ch.upper()}{ch}]" if ch.isascii() and ch.isalpha() else re.escape(ch)) + emit(node[ch])
            for ch in sorted(node)
            if ch
        ]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and "" not in node else "(?:" + "|".join(alts) + ")"
        return body + ("?" if "" in node else "")

    return emit(trie)


_R_WORD = r"[A-Za-z0-9][\w.'’-]*+"  # == _WORD_RE (possessive)
# A necessary condition for _prose_at: a word run whose first six words include a stop word. A
# word is a stop word when ``w.lower().rstrip(".,")`` is one; words start with an ASCII letter or
# digit and the only non-ASCII character that lowercases to ASCII is the Kelvin sign (to "k", in no
# stop word), so matching the ASCII letters in either case is the same test.
_R_MAYBE_PROSE = (
    f"(?={_WORD_RUN_RE.pattern})(?:{_R_WORD},?+[ \\t]++){{0,5}}?" + _ascii_words_re(_STOPWORDS) + r"\.*+(?![\w.'’-])"
)
# after ";" / a closer: a necessary condition for _prose_after is false
_R_NO_PROSE = r"(?![ \t]*[.,:]?[ \t]*" + _R_MAYBE_PROSE + r")"
# Characters with no visit (in quote mode a backtick is a no-op visit too). A lone "/" (division)
# is a no-op visit that does not set ``last_sig``: an element at depth > 0 and in quote mode, but
# at depth 0 in block mode part of the no-op characters before an element (_R_FILLS_SLASH), so that
# a run never ends on it.
_R_FILLS = r"[^(){}\[\];\"'`\n/]*+"
_R_FILLS_Q = r"[^(){}\[\];\"'\n/]*+"
_R_SLASH = r"/(?![/*])"
_R_FILLS_SLASH = f"{_R_FILLS}(?:{_R_SLASH}{_R_FILLS})*+"
_R_DQ = r'"(?:[^"\\\n]|\\.)*+"'  # == _DQ_STR_RE
_R_SQ = r"'(?:[^'\\\n]|\\.)*+'"  # == _SQ_STR_RE
_R_SQB = r"'(?:(?:[^'\\\n]|\\.)*+')?+"  # at depth > 0: a string, else a lone quote
_R_SEMI_B = ";" + _R_NO_PROSE  # block mode: ";" is followed by a prose test
_R_COMMENT = r"//[^\n]*+|/\*[\s\S]*?\*/"  # depth > 0 only (a closed /* comment)
# a newline at depth > 0, the blank lines after it, the next line's indent; code must go on there
_R_NL = r"\n(?:[ \t\r]*+\n)*+[ \t\r]*+(?=.)(?!" + _R_MAYBE_PROSE + r")"


def _bracket_group(fills: str, elems: str, after_brace: str, levels: int) -> str:
    """A bracket group of ``elems`` and nested groups, separated by ``fills``, up to ``levels``
    deep. Like _scan, it does not pair bracket kinds (``(]`` is a group); ``after_brace`` follows
    every ``}`` (block mode tests for prose after any ``}``)."""
    g = ""
    for _ in range(levels):
        inner = elems + ("|" + g if g else "")
        g = r"[(\[{]" + fills + "(?:(?:" + inner + ")" + fills + r")*+(?:[)\]]|\}" + after_brace + ")"
    return g


_R_IN_B = f"{_R_NL}|{_R_SEMI_B}|{_R_DQ}|{_R_SQB}|{_R_SLASH}|{_R_COMMENT}"  # block mode, depth > 0
_R_IN_Q = f"{_R_NL}|;|{_R_DQ}|{_R_SQB}|{_R_SLASH}|{_R_COMMENT}"  # quote mode, depth > 0
_R_GROUP_B = _bracket_group(_R_FILLS, _R_IN_B, _R_NO_PROSE, _RUN_LEVELS)
_R_GROUP_Q = _bracket_group(_R_FILLS_Q, _R_IN_Q, "", _RUN_LEVELS)
# Runs: (no-op characters, then an element)*. Block mode at depth 0: an unmatched "'" ends the
# code and the outer closer is followed by a prose test; quote mode at depth 0: a "'" may close.
_RUN_B0 = f"(?:{_R_FILLS_SLASH}(?:(?:{_R_GROUP_B}){_R_NO_PROSE}|{_R_SEMI_B}|{_R_DQ}|{_R_SQ}))*+"
_RUN_B1 = f"(?:{_R_FILLS}(?:{_R_IN_B}|{_R_GROUP_B}))*+"
_RUN_Q0 = f"(?:{_R_FILLS_Q}(?:{_R_GROUP_Q}|;|{_R_DQ}|{_R_SLASH}))*+"
_RUN_Q1 = f"(?:{_R_FILLS_Q}(?:{_R_IN_Q}|{_R_GROUP_Q}))*+"

# The next candidate after a position (see _scan_region), in one search. Every branch starts with
# a literal trigger character, so the regex engine skips to those characters with a fast
# character-set scan; the code-start test runs only there. Branches:
#   * a backtick; group 1 is the content when a closing backtick follows (an unclosed backtick is
#     no candidate, the search goes on after it);
#   * a single quote that is not an apostrophe (not after a word character - ``\w`` is exactly
#     ``str.isalnum()`` or ``_`` - nor after ``'’`$``) and opens (a non-blank follows, or blanks
#     and a code start). Group 2 is the content when its _scan is a single run up to the closing
#     quote (not followed by a word character): then ``_scan(text, s + 1, b, "'")`` is
#     ``(m.end(2), True)``; otherwise (no group) the caller runs _scan;
#   * a block start after a newline / a colon / a sentence end: the group that matched (3 to 7)
#     spans the blanks before the code.
_SQ_RUN = _RUN_Q0 + f"{_R_FILLS_Q}(?:/(?![/*]){_R_FILLS_Q})*+"  # a quote-mode run, then no-op characters
_CAND = "|".join(
    [
        r"`([^`]*+)`",
        f"'(?<![\\w'’`$]')(?=[^\\s']|[ \\t]+{_CODE_START})(?:({_SQ_RUN})'(?!\\w))?",
        *(f"{trigger}{_BLOCK_AFTER}" for trigger in (r"\n", ":", r"\. ", r"\? ", "! ")),
    ]
)

# The big scanner regexes take ~80 ms to compile, so they are compiled on first use (not at import):
# (_CAND search, _RUN_B0 / _RUN_B1 / _RUN_Q0 / _RUN_Q1 match).
_SCANNERS: tuple[Any, ...] = ()


def _scanners() -> tuple[Any, ...]:
    global _SCANNERS
    if not _SCANNERS:
        cand, b0, b1, q0, q1 = map(re.compile, (_CAND, _RUN_B0, _RUN_B1, _RUN_Q0, _RUN_Q1))
        _SCANNERS = (cand.search, b0.match, b1.match, q0.match, q1.match)
    return _SCANNERS


def _scan(text: str, pos: int, end: int, quote: str | None, failed: set[int] | None = None) -> tuple[int, bool]:
    """Scan Solidity code from ``pos``.

    Block mode (``quote is None``): returns (end of code, True); code ends where prose starts
    after a complete unit, at a blank line followed by non-code, or at the region end.
    Quote mode: returns (index of the closing quote, True), or (pos, False) when the quote does
    not close as code (the caller then treats the quote as an apostrophe or a prose quote).

    ``failed`` (quote mode): positions ``q`` of quotes whose own scan ``_scan(text, q + 1, end, "'")``
    is known to fail. A failing scan adds every quote it passed at depth 0 without closing there:
    from that quote on it is in exactly the state of a fresh scan from ``q + 1`` (depth 0, quote
    mode; ``pos`` and ``last_sig`` only matter in block mode), so that scan fails too. The caller
    then skips those scans: without this, a run of unclosed quotes costs quadratic time.
    """
    passed: list[int] = []
    r = _scan_from(text, pos, end, quote, passed)
    if failed is not None and not r[1]:
        failed.update(passed)
    return r


def _scan_from(text: str, pos: int, end: int, quote: str | None, passed: list[int]) -> tuple[int, bool]:
    depth = 0
    closers = -1  # quote mode: closing brackets after the first deep opener (an upper bound for the rest)
    i = pos
    last_sig = pos  # end of the last non-space code character
    scan = _SCAN_RE.search
    _, b0, b1, q0, q1 = _SCANNERS or _scanners()
    run_top, run_in = (b0, b1) if quote is None else (q0, q1)
    while True:
        r = (run_in if depth else run_top)(text, i, end).end()
        if r > i:
            i = last_sig = r
        m = scan(text, i, end)
        if m is None:
            if quote is not None:
                return pos, False
            return (end if depth > 0 else max(last_sig, _rstrip_end(text, pos, end))), True
        j = m.start()
        c = text[j]
        if c == "\n":
            if j > i and quote is None:  # (last_sig only matters in block mode)
                seg = text[i:j].rstrip()
                if seg:
                    last_sig = i + len(seg)
            bm = _BLANK_LINES_RE.match(text, j + 1, end)
            nxt = bm.end()
            blanks = bm.end(1) > j + 1
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
                passed.append(j)
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
            if quote is not None and depth > 2:
                # A quote closes only at depth 0: with fewer closers left than open brackets it never
                # will, and the scan would only walk on to fail at the end (quadratic over many quotes).
                if closers < 0:
                    closers = text.count(")", j, end) + text.count("]", j, end) + text.count("}", j, end)
                if depth > closers:
                    return pos, False
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


def _is_codeish_trimmed(s: str) -> bool:
    """:func:`is_codeish` of a string without surrounding whitespace (as _trimmed leaves it)."""
    if len(s) < 2:
        return False
    if ";" in s or "{" in s or "}" in s:
        return True
    if s.isidentifier():
        return False
    return _codeish_rest(s)


# ``CodeSpan(t, x, y, shape)`` costs a Python ``__init__`` frame and four ``object.__setattr__``
# calls (frozen dataclass); setting the slots directly builds the same object in half the time.
# (CodeSpan has no defaults and no ``__post_init__``; tests check ``_span(...) == CodeSpan(...)``.)
_new_object = object.__new__
_set_text, _set_start, _set_end, _set_shape = (CodeSpan.__dict__[f].__set__ for f in ("text", "start", "end", "shape"))


def _span(t: str, x: int, y: int, shape: str) -> CodeSpan:
    o = _new_object(CodeSpan)
    _set_text(o, t)
    _set_start(o, x)
    _set_end(o, y)
    _set_shape(o, shape)
    return o


def _scan_region(text: str, a: int, b: int, out: list[CodeSpan]) -> None:
    """Append the spans of ``text[a:b]`` (no fences there) to ``out``.

    Candidates, in order: a block start at the region start when it is the text start or a line
    start, then those of _CAND searched from the end of the previous one. (After a span,
    ``text[i - 1]`` is a quote, a backtick or code, never a newline, so the line-start test can
    only succeed at the region start.)
    """
    search = (_SCANNERS or _scanners())[0]
    failed: set[int] = set()  # quotes whose quote-mode scan fails (see _scan)
    trimmed = _trimmed
    codeish = _is_codeish_trimmed
    span = _span
    append = out.append
    i = a
    m0 = _BLOCK_AT_RE.match(text, a, b) if a < b and (a == 0 or text[a - 1] == "\n") else None
    while i < b:
        if m0 is not None:  # a block at the region start
            g, s, content = 0, a, m0.end()
            m0 = None
        else:
            m = search(text, i, b)
            if m is None:
                return
            g = m.lastindex
            s = m.start()
        if g == 1:  # backtick span
            x, y = trimmed(text, s + 1, m.end(1))
            if y > x and codeish(t := text[x:y]):
                append(span(t, x, y, "inline"))
            i = m.end()
            continue
        if g is None or g == 2:  # single quote
            if g == 2:
                close = m.end(2)
            else:
                close, ok = (s + 1, False) if s in failed else _scan(text, s + 1, b, "'", failed)
                if not ok:
                    fm = _SAME_LINE_QUOTE_RE.match(text, s, b)
                    if fm is not None:
                        close = fm.end(1)
                    elif _CODE_START_RE.match(text, s + 1, b):
                        # an unclosed (truncated) or comment-swallowed quote around code: scan it as a block
                        stop, _ = _scan(text, s + 1, b, None)
                        x, y = trimmed(text, s + 1, stop)
                        if y > x and text[y - 1] == "'":
                            y = _rstrip_end(text, x, y - 1)
                        if y > x and is_codeish(t := text[x:y]):
                            append(span(t, x, y, "block"))
                        i = max(stop, s + 1)
                        continue
                    else:
                        i = s + 1
                        continue
            x, y = trimmed(text, s + 1, close)
            if y > x and codeish(t := text[x:y]):
                append(span(t, x, y, "inline"))
            i = close + 1
            continue
        # block
        if g:
            content = m.end(g)
        stop, _ = _scan(text, content, b, None)
        x, y = trimmed(text, content, stop)
        # (``;``/braces: the commonest code-ish case, tested here without the call)
        if y - x > 1 and (";" in (t := text[x:y]) or "{" in t or "}" in t or codeish(t)):
            append(span(t, x, y, "block"))
        i = max(stop, content + 1)


def _py_extract_code(text: str) -> list[CodeSpan]:
    """`extract_code` in Python (the C extension's `extract_spans` gives the same spans)."""
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
                out.append(_span(text[x:y], x, y, "fence"))
            pos = fm.end()
    if pos < n:
        _scan_region(text, pos, n, out)
    return out


_SHAPES = ("fence", "inline", "block")  # the span shapes, in the order of _extract.c's shape codes
if _fast is not None:  # (also where extract runs in Python: the C token ids find spans with it)
    _fast.extract_init(_KEEP, _STOPWORDS, CodeSpan, _SHAPES)
_C_EXTRACT = _native.on("extract")


def extract_code(text: str) -> list[CodeSpan]:
    """Every code span in ``text``, in order, non-overlapping (``text[s.start:s.end] == s.text``).

    Shapes: ``fence`` (Markdown fences, language tag stripped; an unclosed fence runs to the end),
    ``inline`` (backtick or single-quoted spans whose content is code-ish, see
    :func:`is_codeish`; apostrophes in prose are not quotes), ``block`` (unquoted code starting
    at the text start, a line start or after a colon, ending where prose resumes).
    """
    if not text:
        return []
    if _fast is None or not _C_EXTRACT:
        return _py_extract_code(text)
    return _fast.extract_spans(text)


