"""The ``reflow_layout`` transform: whitespace between tokens only, either one statement per line with
indentation by depth (4 spaces, 2 spaces or tabs) and canonical spacing, or a compact one-line form
(only when there is no ``//`` comment)."""

from __future__ import annotations

from typing import Any

from swcdata.solidity.lexer import COMMENT, NUMBER, PUNCT, STRING, WORD, Tok
from swcdata.steps.augment.record import Cache, Edit, Rec, edit, h, is_body

__all__ = ["reflow_layout"]

_LAYOUT_STYLES: tuple[tuple[str, str], ...] = (("expand", "    "), ("expand", "  "), ("expand", "\t"), ("compact", ""))


def _block_braces(code: str, toks: list[Tok]) -> set[int]:
    """Indices of `{`/`}` tokens that delimit statement blocks (content with `;` or a nested block),
    as opposed to call options (`{value: x}`), struct literals, enums and empty bodies."""
    blocks: set[int] = set()
    stack: list[list[Any]] = []  # [index of "{", has statements]
    for i, (kind, a, b) in enumerate(toks):
        if kind != PUNCT:
            continue
        c = code[a:b]
        if c == "{":
            stack.append([i, False])
        elif c == ";" and stack:
            stack[-1][1] = True
        elif c == "}":
            if not stack:
                blocks.add(i)  # unmatched: truncated code, treat as a block end
                continue
            j, is_block = stack.pop()
            if is_block:
                blocks.update((i, j))
                if stack:
                    stack[-1][1] = True
    for j, is_block in stack:  # unclosed (truncated) blocks
        if is_block:
            blocks.add(j)
    return blocks


_OPEN = {"{": "}", "(": ")", "[": "]"}
_CLOSE = frozenset("})]")
_NO_BREAK_AFTER_BLOCK = frozenset([";", ",", ")", "]", ".", "else", "catch", "while"])
_BINARY = frozenset(["=", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=",
                     ">>>=", "&&", "||", "=>", "<", ">", "*", "/", "%", "**", "<<", ">>", ">>>", "&", "|", "^", ":="])
_NOT_OPERAND = frozenset(["return", "emit", "revert", "require", "assert", "else", "case", "in"])
_TIGHT_BEFORE = frozenset([",", ";", ")", "]", "."])
_TIGHT_AFTER = frozenset(["(", "[", "."])
_SPACE_BEFORE_PAREN = frozenset(["if", "for", "while", "returns", "catch"])


def _binary_ops(code: str, toks: list[Tok], texts: list[str]) -> list[bool]:
    """Which tokens are binary operators (a '+'/'-' only when it follows an operand)."""
    out = [False] * len(toks)
    prev: int | None = None
    for i, (kind, _, _) in enumerate(toks):
        if kind == COMMENT:
            continue
        t = texts[i]
        if kind == PUNCT:
            if t in _BINARY:
                out[i] = True
            elif t in ("+", "-") and prev is not None:
                pk, pt = toks[prev][0], texts[prev]
                out[i] = (pk in (NUMBER, STRING) or (pk == WORD and pt not in _NOT_OPERAND)
                          or pt in (")", "]"))
        prev = i
    return out


def _spaced(i: int, toks: list[Tok], texts: list[str], binary: list[bool], blocks: set[int], gap: str) -> str:
    """The space between tokens i-1 and i on one line, in the canonical spaced style."""
    pk, k = toks[i - 1][0], toks[i][0]
    prev, cur = texts[i - 1], texts[i]
    if pk == COMMENT or k == COMMENT:
        return gap
    if k == PUNCT and cur in _TIGHT_BEFORE:
        return ""
    if pk == PUNCT and prev in _TIGHT_AFTER:
        return ""
    if prev == "," or binary[i] or binary[i - 1]:
        return " "
    if cur == "{" and (prev == ")" or (pk == WORD and i in blocks)):
        return " "
    if cur == "(" and prev in _SPACE_BEFORE_PAREN:
        return " "
    return gap


def _reflow(code: str, toks: list[Tok], mode: str, unit: str) -> str:
    """Re-lay-out one span by rewriting only the whitespace between tokens.

    ``expand``: one statement per line, indentation by bracket depth with ``unit``, a space after
    commas, around binary operators and before block braces, none inside brackets.
    ``compact``: everything on one line, no space inside brackets or before ``,``/``;`` (not done when
    the code has a ``//`` comment, which would swallow the rest of the line)."""
    n = len(toks)
    if n < 2:
        return code
    texts = [code[a:b] for _, a, b in toks]
    gaps = [code[: toks[0][1]]] + [code[toks[i - 1][2] : toks[i][1]] for i in range(1, n)] + [code[toks[-1][2] :]]
    if mode == "compact":
        if any(k == COMMENT and texts[i].startswith("//") for i, (k, _, _) in enumerate(toks)):
            return code
        for i in range(1, n):
            if toks[i - 1][0] == COMMENT or toks[i][0] == COMMENT:
                gaps[i] = " " if gaps[i] else ""
            elif texts[i - 1] in ("(", "[", "{") or texts[i] in (")", "]", "}", ",", ";", "."):
                gaps[i] = ""
            elif "\n" in gaps[i]:
                gaps[i] = " "
        return "".join(g + t for g, t in zip(gaps, [*texts, ""], strict=True)).strip()
    blocks = _block_braces(code, toks)
    binary = _binary_ops(code, toks, texts)
    stack: list[str] = []
    for i in range(n):
        kind = toks[i][0]
        t = texts[i]
        if i > 0:
            nl = gaps[i].count("\n")
            prev = texts[i - 1]
            if nl == 0 and not (kind == COMMENT and t.startswith("//")) and (
                    (prev == "{" and i - 1 in blocks) or (t == "}" and i in blocks)
                    or (prev == ";" and (not stack or stack[-1] == "{"))
                    or (prev == "}" and i - 1 in blocks and t not in _NO_BREAK_AFTER_BLOCK)):
                nl = 1
            if nl:
                depth = len(stack) - (1 if kind == PUNCT and t in _CLOSE and stack else 0)
                gaps[i] = "\n" * min(nl, 2) + unit * depth
            else:
                gaps[i] = _spaced(i, toks, texts, binary, blocks, gaps[i])
        if kind == PUNCT:
            if t in _OPEN:
                stack.append(t)
            elif t in _CLOSE and stack:
                stack.pop()
    return "".join(g + t for g, t in zip(gaps, [*texts, ""], strict=True)).strip()


def reflow_layout(rec: Rec, key: int, cache: Cache) -> Edit | None:
    """The record's statement spans in the first layout style (in an order `key` gives) that changes
    something a record id can see, or None when none does."""
    for mode, unit in sorted(_LAYOUT_STYLES, key=lambda s: (h(key, "layout", *s), s)):
        new = tuple([_reflow(s.text, cache.tokens(s.text), mode, unit) if is_body(s) else s.text for s in f.spans]
                    for f in rec.fields)
        e = edit(rec, (new[0], new[1]))
        if e is not None:
            return e
    return None
