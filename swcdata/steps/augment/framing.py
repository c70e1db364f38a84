"""Assembling a variant's text: each field rebuilt with its spans' new text (`rebuild`), and the
instruction, when a template rewrites its request, put together around its main code (`frame`,
`Plan`, `instruction`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from swcdata.steps.augment import templates
from swcdata.steps.augment.record import Cache, Field, is_body

__all__ = ["Frame", "Plan", "frame", "instruction", "obj", "rebuild"]


def _fence_pieces(before: str, code: str, after: str) -> tuple[str, str, str]:
    """The prose before, the fenced code and the prose after, for a span shown in a fence (see
    comments._fenceable)."""
    q = before[-1:] if before[-1:] in ("'", "`", '"') and after[:1] == before[-1:] else ""
    if q:
        before, after = before[:-1], after[1:]
    b = before.rstrip()
    a = after.lstrip(" \t")
    if a[:1] in (".", ","):
        a = a[1:]
    a = a.strip()
    return (b + "\n\n" if b else ""), f"```solidity\n{code}\n```", ("\n\n" + a if a else "")


def rebuild(f: Field, new: list[str], prose: Callable[[str], str] | None, a: int, b: int,
            fence: frozenset[int] = frozenset()) -> str:
    """Characters a..b of the field with each span replaced by its new text, the prose between them passed
    through `prose` (renaming), and the spans named in `fence` shown in a Markdown fence."""
    out: list[str] = []
    fenced: list[int] = []
    pos = a
    for i, (s, t) in enumerate(zip(f.spans, new, strict=True)):
        if s.start < a or s.end > b:
            continue
        out += [f.text[pos : s.start], t]
        if i in fence:
            fenced.append(len(out) - 1)
        pos = s.end
    out.append(f.text[pos:b])
    if prose is not None:
        out = [prose(x) if i % 2 == 0 else x for i, x in enumerate(out)]
    for k in fenced:
        out[k - 1], out[k], out[k + 1] = _fence_pieces(out[k - 1], out[k], out[k + 1])
    return "".join(out)


@dataclass(slots=True)
class Frame:
    """Where the instruction's main code sits: the span index and the code region (with its fence or
    quotes)."""

    span: int
    start: int
    end: int


def frame(f: Field) -> Frame | None:
    """The instruction's main code: its one span with statements (None when it has none or several)."""
    bodies = [i for i, s in enumerate(f.spans) if is_body(s)]
    if len(bodies) != 1:
        return None
    i = bodies[0]
    s, text = f.spans[i], f.text
    a, b = s.start, s.end
    if s.shape == "fence":
        a = text.rfind("```", 0, s.start)
        close = text.find("```", s.end)
        b = len(text) if close < 0 else close + 3
    elif a > 0 and b < len(text) and text[a - 1] in "'`\"" and text[b] == text[a - 1]:
        a, b = a - 1, b + 1
    return Frame(i, a, b)


_OBJ = {"function": "function", "constructor": "constructor", "modifier": "modifier", "fallback": "fallback function",
        "receive": "receive function"}


def obj(code: str, cache: Cache) -> str:
    """What a template calls the main code: function, modifier, constructor, contract or code."""
    fx = cache.facts(code)
    contracts = sum(d.kind == "contract" for d in fx.decls)
    if contracts:
        return "contract" if contracts == 1 and code.lstrip().startswith(("contract", "library", "interface",
                                                                          "abstract")) else "code"
    if len(fx.callables) == 1 and code.lstrip().startswith(("function", "modifier", "constructor", "fallback",
                                                             "receive")):
        c = fx.callables[0]
        return "fallback function" if c.kind == "function" and not c.name else _OBJ[c.kind]
    return "code"


@dataclass(slots=True)
class Plan:
    """How the record's instruction is rewritten: its family, main code, request and what the code is."""

    family: str
    frame: Frame
    request: templates.Request
    obj: str


def instruction(f: Field, new: list[str], prose: Callable[[str], str] | None, plan: Plan | None,
                tpl: templates.Template | None, fence: frozenset[int], key: int) -> str:
    """The variant's instruction: the field rebuilt (see `rebuild`), or, with a template, the template
    rendered around the main code with the request's own topic, focus and questions."""
    if tpl is None or plan is None:
        return rebuild(f, new, prose, 0, len(f.text), fence)
    frame, req = plan.frame, plan.request

    def text(parts: tuple[templates.Part, ...]) -> str:
        return "".join(p if isinstance(p, str) else rebuild(f, new, prose, p[0], p[1]) for p in parts)

    code = rebuild(f, new, prose, frame.start, frame.end, fence)
    return templates.render(tpl, code, obj=plan.obj, topics=req.topics, focus=[text(x) for x in req.focus],
                            before=[text(x) for x in req.before], after=[text(x) for x in req.after], key=key)
