"""tree-sitter parsing of a code span.

:func:`parse` checks a span with tree-sitter-solidity, trying it as a source unit, inside a contract
body and inside a function body. The parser is created lazily so importing this module stays cheap.
A span longer than :data:`MAX_PARSE_CHARS` (or the caller's own bound) is never handed to tree-sitter:
:class:`CodeTooLarge` is raised instead (see there why).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

from swcdata.core import isolate as _isolate


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
# tree-sitter parsing
# --------------------------------------------------------------------------------------------

_WRAPPERS: tuple[tuple[str, str, str], ...] = (
    ("source", "", ""),
    ("contract", "contract __C {\n", "\n}"),
    ("function", "contract __C { function __f() public {\n", "\n} }"),
)

_TS: dict[str, Any] = {}

# The longest span (characters) handed to tree-sitter. tree-sitter 0.26 / tree-sitter-solidity 1.2.13
# overflow the C stack (SIGSEGV, in the GLR stack's recursive stack_node_add_link) on a long run of
# comments after a syntax error: a contract declared inside the function wrapping followed by
# ~58,300 line comments crashes with the usual 8 MiB stack (~29,000 with 4 MiB, ~116,000 with 16 MiB:
# the count scales with the stack, not with the comments' length). The shortest comment is 3
# characters (``//`` and a newline), so 100,000 characters hold at most ~33,300 of them: under the
# crash with 8 MiB, with 1.75x to spare. Real spans are far below it (fields over 16,384 characters
# are already outliers); a longer span is not parsed (validate says ``code-too-large``, augment leaves
# the record as it is).
MAX_PARSE_CHARS = 100_000


class CodeTooLarge(ValueError):
    """A span longer than the parse bound: tree-sitter is not run on it (see MAX_PARSE_CHARS)."""

    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(f"a code span of {chars:,} characters is over the parse bound of {limit:,}")
        self.chars, self.limit = chars, limit


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


# Per wrapping: its name and the UTF-8 text before and after the code (the function wrapping's
# second ending adds the ";" that makes a bare expression a statement); the one ParseResult of a
# clean parse in it (results are frozen, so one object serves every span).
_WRAPPED = tuple((name, pre.encode(), post.encode(), (";" + post).encode()) for name, pre, post in _WRAPPERS)
_CLEAN = tuple(ParseResult(True, name, 0) for name, _, _ in _WRAPPERS)


def _parse_in_order(code: str, order: tuple[int, ...], max_chars: int) -> tuple[ParseResult, Any, int]:
    """Parse `code` in the wrappings `order` names (indices into `_WRAPPERS`), stopping at the first
    without errors; else the attempt with the fewest ERROR+MISSING nodes. Returns the result, its
    tree and the byte offset of `code` in the parsed text. Raises CodeTooLarge when `code` is longer
    than `max_chars` (it never reaches tree-sitter then). Every parse of this module comes here."""
    if len(code) > max_chars:
        raise CodeTooLarge(len(code), max_chars)
    if _isolate.test_crash_mark is not None:  # (a test-only hook, armed in worker processes only)
        _isolate.test_crash(code)
    ts = _TS or _ts()
    parse_bytes = ts["parser"].parse
    body = code.encode("utf-8")
    bare_expr: bool | None = None
    best: tuple[ParseResult, Any, int] | None = None
    for k in order:
        _, pre_b, post_b, post_expr_b = _WRAPPED[k]
        if k == 2:
            if bare_expr is None:
                bare_expr = not code.rstrip().endswith((";", "}"))
            if bare_expr:  # an expression span (`a.b(c)`, `x + y`) becomes an expression statement
                post_b = post_expr_b
        tree = parse_bytes(pre_b + body + post_b)
        root = tree.root_node
        if not root.has_error:
            return _CLEAN[k], tree, len(pre_b)
        errors = _count_errors(root)
        if best is None or errors < best[0].error_count:
            best = (ParseResult(False, None, errors), tree, len(pre_b))
    assert best is not None
    return best


def _parse_best(code: str, max_chars: int) -> tuple[ParseResult, Any, int]:
    # Every top-level/contract-level Solidity item ends with ';' or '}', so for a bare expression only
    # the function wrapping can succeed: try it first (same ok/wrapper answer, one parse instead of three).
    if len(code) > max_chars:  # (before the rstrip below, which copies the span)
        raise CodeTooLarge(len(code), max_chars)
    bare_expr = not code.rstrip().endswith((";", "}"))
    return _parse_in_order(code, (2, 0, 1) if bare_expr else (0, 1, 2), max_chars)


# Cheap lexical cues (on the first word after blanks and comments) for the wrapping most likely to
# parse, so that a span is parsed once in the common case (see :func:`parse_check`).
_CUE_SKIP_RE = re.compile(r"(?:\s+|//[^\n]*|/\*[\s\S]*?\*/)*")
_CUE_SOURCE_RE = re.compile(r"(?:pragma|import|abstract|contract|library|interface)\b")
_CUE_MEMBER_RE = re.compile(
    r"(?:function|modifier|constructor|fallback|receive|event|struct|enum|mapping|using|error)\b"
    # a state variable: a type, then a visibility or constant keyword before any '=' or ';'
    r"|[A-Za-z_]\w*(?:\s*\[\w*\])*\s+(?:[A-Za-z_]\w*\s+)?(?:public|private|internal|constant|immutable)\b"
)
_ORDER_SOURCE = (0, 1, 2)
_ORDER_MEMBER = (1, 0, 2)
_ORDER_STATEMENT = (2, 0, 1)


def _wrapper_order(code: str) -> tuple[int, ...]:
    m = _CUE_SKIP_RE.match(code)
    i = m.end() if m else 0
    if _CUE_SOURCE_RE.match(code, i):
        return _ORDER_SOURCE
    if _CUE_MEMBER_RE.match(code, i):
        return _ORDER_MEMBER
    return _ORDER_STATEMENT


def parse_check(code: str, *, max_chars: int = MAX_PARSE_CHARS) -> ParseResult:
    """``ok`` and ``error_count`` exactly as :func:`parse` gives them, usually with a single parse.

    Whether some wrapping parses without errors, and the smallest error count when none does, do
    not depend on the order the wrappings are tried in, so the order is chosen from lexical cues:
    source unit first for ``pragma``/``import``/``contract``..., contract body first for members
    (``function``, ``modifier``, ``mapping``, state variables...), function body first for anything
    else (statements, expressions). ``wrapper`` is the wrapping that parsed, which may differ from
    :func:`parse`'s (the first in its fixed order) when several do. Raises :class:`CodeTooLarge`
    for a span longer than ``max_chars``.
    """
    if len(code) > max_chars:  # (before the cue regexes scan it)
        raise CodeTooLarge(len(code), max_chars)
    return _parse_in_order(code, _wrapper_order(code), max_chars)[0]


def parse(code: str, *, max_chars: int = MAX_PARSE_CHARS) -> ParseResult:
    """Parse ``code`` with tree-sitter-solidity, as-is, then inside ``contract __C { ... }``,
    then inside ``contract __C { function __f() public { ... } }``.

    ``ok``/``wrapper`` tell the first wrapping without ERROR/MISSING nodes; otherwise
    ``error_count`` is the smallest ERROR+MISSING count over the three attempts. In the
    function wrapping a ``;`` is appended when the code does not end with ``;`` or ``}``, so
    that an inline expression (``msg.sender.transfer(x)``) parses as an expression statement.
    A span longer than ``max_chars`` is not parsed: :class:`CodeTooLarge` is raised.
    """
    return _parse_best(code, max_chars)[0]


def identifier_nodes(code: str, *, max_chars: int = MAX_PARSE_CHARS) -> list[Identifier]:
    """Identifiers of ``code`` (from the best wrapping's tree), in source order.

    Identifiers introduced by the wrapper (``__C``, ``__f``) are excluded; offsets refer to
    ``code`` itself (characters and UTF-8 bytes). Raises :class:`CodeTooLarge` for a span longer
    than ``max_chars`` (it is not parsed).
    """
    _, tree, offset = _parse_best(code, max_chars)
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
