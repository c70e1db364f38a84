"""Per-record state of the augment step: the lexing, parsing and declaration lookups memoised by span
text for one `augment` call (`Cache`), a record's fields and their code spans (`Field`, `Rec`), and
what a transform makes of them (`Edit`, built by `edit`). Tokens come from the one Solidity lexer
(`swcdata.solidity.lexer.tokens_with_offsets`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import xxhash

from swcdata.solidity import declarations, lexer, treesitter
from swcdata.solidity.lexer import Tok
from swcdata.solidity.spans import CodeSpan, extract_code

__all__ = ["WORDS_RE", "Cache", "Edit", "Field", "Rec", "edit", "h", "is_body"]

WORDS_RE = re.compile(r"\w+")


def h(*parts: object) -> int:
    """The hash every choice of the step is made by (a seed, a record id, a variant, a name...)."""
    return xxhash.xxh3_64_intdigest("\x1f".join(map(str, parts)).encode())


class Cache:
    """Lexing, parsing and identifier lookups, memoised by span text for one `augment` call."""

    def __init__(self, max_parse_chars: int = treesitter.MAX_PARSE_CHARS) -> None:
        self.toks: dict[str, list[Tok]] = {}
        self.ok: dict[str, bool] = {}
        self.fcts: dict[str, declarations.Facts] = {}
        self.bfcts: dict[str, declarations.Facts] = {}
        self.max_chars = max_parse_chars

    def tokens(self, code: str) -> list[Tok]:
        """The lexer's tokens, less any that is Unicode whitespace (a no-break space pasted with the code
        from a web page): the lexer keeps such a character as a token, as Solidity would reject it, but
        for rewriting code it is layout, so it counts as blank between tokens (a reflow drops it)."""
        t = self.toks.get(code)
        if t is None:
            t = lexer.tokens_with_offsets(code)
            if not code.isascii():
                t = [x for x in t if not (x[2] - x[1] == 1 and code[x[1]].isspace())]
            self.toks[code] = t
        return t

    def parses(self, code: str) -> bool:
        ok = self.ok.get(code)
        if ok is None and code in self.fcts:
            ok = self.ok[code] = self.fcts[code].ok
        if ok is None:
            try:
                ok = treesitter.parse(code, max_chars=self.max_chars).ok
            except treesitter.CodeTooLarge:  # (a transform grew a span past the bound: it cannot be checked)
                ok = False
            self.ok[code] = ok
        return ok

    def identifiers(self, code: str) -> list[treesitter.Identifier]:
        return self.facts(code).idents  # (records with spans over the bound are not augmented: see step._variants)

    def facts(self, code: str, bodies: bool = False) -> declarations.Facts:
        """The declarations, callables and identifiers of a span (tree-sitter), memoised; ``bodies``: with
        the callables' body facts (what comments are written from)."""
        memo = self.bfcts if bodies else self.fcts
        f = memo.get(code) or (None if bodies else self.bfcts.get(code))
        if f is None:
            try:
                f = declarations.facts(code, max_chars=self.max_chars, bodies=bodies)
            except treesitter.CodeTooLarge:
                f = declarations.Facts([], [], False)
            memo[code] = f
        return f


@dataclass(slots=True)
class Field:
    """One field of a record (instruction or response) and the code spans found in it."""

    text: str
    spans: list[CodeSpan]

    @classmethod
    def of(cls, text: str) -> Field:
        return cls(text, extract_code(text))


def is_body(s: CodeSpan) -> bool:
    """A span with statements (layout and comments apply), not a short inline expression."""
    return s.shape != "inline" or ("{" in s.text and len(s.text) >= 20)


@dataclass(slots=True)
class Rec:
    """A record being augmented: its fields, the words it uses (new names avoid them), and what the
    transforms found out once for all its variants."""

    id: str
    fields: tuple[Field, Field]
    words: set[str]
    candidates: list[tuple[str, str]] | None = None  # (name, role) in first-appearance order
    has_comments: bool | None = None


@dataclass(slots=True)
class Edit:
    """What a transform makes of a record: the new text of every code span, and how the prose changes."""

    spans: tuple[list[str], list[str]]  # new text of each span of the instruction / the response
    prose: Callable[[str], str] | None = None  # applied to the prose between spans (renaming)
    changed: list[tuple[str, str]] = field(default_factory=list)  # (before, after) of every changed span
    fence: frozenset[int] = frozenset()  # instruction spans to show in a Markdown fence (see comments._fenceable)


def edit(rec: Rec, new: tuple[list[str], list[str]], prose: Callable[[str], str] | None = None) -> Edit | None:
    """The edit, or None when it changes nothing that a record id can see (ids ignore whitespace runs)."""
    changed = [(s.text, t) for f, ts in zip(rec.fields, new, strict=True) for s, t in zip(f.spans, ts, strict=True)
               if s.text != t]
    if not any(a.split() != b.split() for a, b in changed):
        return None
    return Edit(new, prose, changed)
