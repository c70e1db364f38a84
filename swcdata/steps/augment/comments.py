"""The ``toggle_comments`` transform, in the instruction's code only: removes every comment when it has
some, otherwise writes a NatSpec comment above each function, modifier and constructor that says what
tree-sitter shows about it (who may call it and what its body does), never its name."""

from __future__ import annotations

from swcdata.solidity import declarations
from swcdata.solidity.lexer import COMMENT, Tok
from swcdata.steps.augment.record import Cache, Edit, Field, Rec, edit, h, is_body

__all__ = ["toggle_comments"]

# NatSpec forms of an added comment: (first line, continuation, last line) around the text; one-line forms
# have only the first. `{ind}` is the declaration's indentation.
_NATSPEC: tuple[tuple[str, ...], ...] = (
    ("/// @notice {text}",),
    ("/// @dev {text}",),
    ("/** @dev {text} */",),
    ("/**", "{ind} * @dev {text}", "{ind} */"),
)


def _merge_gap(before: str, after: str, at_start: bool, at_end: bool) -> str:
    """The whitespace left where a comment was removed, from the gaps before and after it."""
    if at_start or at_end:
        return ""  # spans are trimmed: no leading or trailing whitespace
    if "\n" in before and "\n" in after:  # a comment on a line of its own: drop the line
        return before[: before.rfind("\n") + 1] + after.rsplit("\n", 1)[-1]
    if "\n" in before:
        return before
    if "\n" in after:  # a trailing comment: the line break after it stays
        return after
    return " " if before or after else ""


def _strip_comments(code: str, toks: list[Tok]) -> str:
    if not any(k == COMMENT for k, _, _ in toks):
        return code
    n = len(toks)
    gaps = [code[: toks[0][1]]] + [code[toks[i - 1][2] : toks[i][1]] for i in range(1, n)] + [code[toks[-1][2] :]]
    out_toks: list[str] = []
    out_gaps = [gaps[0]]
    last_kept = max((i for i, t in enumerate(toks) if t[0] != COMMENT), default=-1)
    lead = ""  # the indentation of the first kept token when comments before it went
    for i, (kind, a, b) in enumerate(toks):
        if kind == COMMENT:
            if not out_toks and "\n" in gaps[i + 1]:
                lead = gaps[i + 1].rsplit("\n", 1)[-1]
            out_gaps[-1] = _merge_gap(out_gaps[-1], gaps[i + 1], not out_toks, i > last_kept)
        else:
            out_toks.append(code[a:b])
            out_gaps.append(gaps[i + 1])
    out = "".join(g + t for g, t in zip(out_gaps, [*out_toks, ""], strict=True)).strip()
    return _dedent_rest(out, lead) if lead and not lead.strip() else out


def _dedent_rest(code: str, ind: str) -> str:
    """`code` whose first line lost the indentation `ind` (a comment line before it went, and spans are
    trimmed): the other lines lose it too, so that the nesting reads as before."""
    lines = code.split("\n")
    if not all(ln.startswith(ind) or not ln.strip() for ln in lines[1:]):
        return code
    return "\n".join([lines[0], *(ln[len(ind):] if ln.strip() else ln for ln in lines[1:])])


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _describe(c: declarations.Callable_) -> str:
    """What a comment above a callable says: who may call it and what its body does, from the facts
    tree-sitter gives (never its name repeated)."""
    if c.kind == "constructor":
        who = "Runs once, when the contract is deployed"
    elif c.kind == "modifier":
        who = "Guards the functions it modifies"
        if c.checks_sender:
            who += " and reverts unless the caller passes its check"
        elif c.checks:
            who += " and reverts when its condition fails"
    elif c.kind == "receive":
        who = "Runs when the contract receives plain ether"
    elif c.kind == "fallback":
        who = "Runs when a call matches no function" + (" or brings plain ether" if c.mutability == "payable"
                                                        else "")
    elif c.modifiers:
        who = "Restricted by " + _and([f"`{m}`" for m in c.modifiers[:3]])
    elif c.visibility in ("internal", "private"):
        who = "Internal helper"
    else:
        who = "Callable by anyone"
    does: list[str] = []
    if c.mutability == "view" or c.mutability == "constant":
        does.append("reads state without changing it")
    elif c.mutability == "pure":
        does.append("computes a value without reading state")
    elif c.mutability == "payable" and c.kind not in ("receive", "fallback"):
        does.append("accepts ether")
    if c.writes and c.mutability not in ("view", "pure", "constant"):
        does.append("updates storage")
    if c.sends_ether:
        does.append("sends ether")
    if c.calls_out and not (c.sends_ether and c.destroys):
        does.append("calls another contract")
    if c.emits:
        does.append("emits " + _and([f"`{e}`" for e in dict.fromkeys(c.emits[:2])]))
    if c.loops:
        does.append("loops")
    if c.destroys:
        does.append("can destroy the contract")
    if c.kind == "modifier":
        does = []
    text = who + ("; it " + _and(does) if does else "")
    return text + "."


def _fenceable(f: Field, i: int) -> bool:
    """Can span i of the text be shown in a Markdown fence without breaking the sentence around it? It
    must stand apart: after a colon, a full stop or a line break (or at the start) and before a line
    break, a full stop or the end (its quotes, if any, go)."""
    s = f.spans[i]
    if s.shape == "fence":
        return False
    before, after = f.text[: s.start], f.text[s.end :]
    q = before[-1:] if before[-1:] in ("'", "`", '"') and after[:1] == before[-1:] else ""
    if q:
        before, after = before[:-1], after[1:]
    b = before.rstrip(" \t")
    a = after.lstrip(" \t")
    return (not b or b.endswith(("\n", ":", ".", "?", "!"))) and (not a or a[0] == "\n" or (
        a[0] in ".," and (len(a) == 1 or a[1] in " \n")))


def _insert_comments(code: str, cs: list[declarations.Callable_], key: int, fence_ok: bool, fenced: bool
                     ) -> tuple[str, bool]:
    """A NatSpec comment on the line above each callable that starts a line of the code, indented like it
    and saying what the facts say (see _describe). A callable at the very start of code that is not in a
    fence gets one only when ``fence_ok`` (the span is then shown in a fence: outside one, a comment at its
    start would hide the code from the extractor). Returns the code and whether it needs the fence."""
    form = _NATSPEC[key % len(_NATSPEC)]
    out: list[str] = []
    pos = 0
    need_fence = False
    for c in cs:
        p = c.start
        if not c.has_body or p < pos:
            continue
        ls = code.rfind("\n", 0, p) + 1
        ind = code[ls:p]
        if ind.strip():
            continue  # not the first thing on its line: there is no line above it to write on
        if p == 0 and not fenced:
            if not fence_ok:
                continue
            need_fence = True
        text = _describe(c)
        lines = [form[0].format(text=text, ind=ind), *(x.format(text=text, ind=ind) for x in form[1:])]
        out += [code[pos:p], ("\n" + ind).join(lines) + "\n" + ind]
        pos = p
    out.append(code[pos:])
    return "".join(out), need_fence


def toggle_comments(rec: Rec, key: int, cache: Cache) -> Edit | None:
    """The instruction's code without its comments, or, when it has none, with a comment above each
    callable (the form chosen by `key`); the response is never touched. None when nothing changes."""
    ins, resp = rec.fields
    if rec.has_comments is None:  # (the instruction's: the response's comments are part of the answer)
        rec.has_comments = any(k == COMMENT for s in ins.spans for k, _, _ in cache.tokens(s.text))
    fence: set[int] = set()
    if rec.has_comments:
        new = [_strip_comments(s.text, cache.tokens(s.text)) for s in ins.spans]
    else:
        new = []
        for i, s in enumerate(ins.spans):
            if not is_body(s):
                new.append(s.text)
                continue
            cs = cache.facts(s.text, bodies=True).callables
            text, need = _insert_comments(s.text, cs, h(key, "comments", i), _fenceable(ins, i), s.shape == "fence")
            new.append(text)
            if need:
                fence.add(i)
    e = edit(rec, (new, [s.text for s in resp.spans]))
    if e is not None:
        e.fence = frozenset(fence)
    return e
