"""How good an augmentation is, measured on (parent, variant) pairs.

The augment step measures every variant it adds (in the child process that made it, where tree-sitter
runs) and `swcdata stats` measures the variants of a dataset it reads (in an isolated child too); both
with :func:`measure` and :func:`summarise`, so the two reports agree:

* the share of each template and transform, and how far the most used template is above its fair share
  (its family's variants divided by the family's templates);
* the variants whose instruction only adds a header (or a footer) to the parent's prose: the parent's
  words, code left out, are a run at the end (or the start) of the variant's;
* the parse rate of the code before (parents) and after (variants): code spans with statements, as the
  validate step parses them;
* for renaming: how many renamed identifiers have a declared type or kind (tree-sitter, in the parent's
  code), and how many of those got a name from a pool that type may take names from
  (:func:`swcdata.steps.augment.namepools.allowed_roles`); bool variables renamed to an address or constant name are
  counted apart (there should be none);
* a few before/after pairs, drawn by a hash of the seed and the variant id, for a person to read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import xxhash
from pydantic import BaseModel, ConfigDict, Field

from swcdata.steps.augment import namepools

__all__ = ["AugmentQuality", "VariantQuality", "measure", "measure_isolated", "summarise"]

_WORD = re.compile(r"\w+")
_FENCE_MARK = re.compile(r"```[\w+#.-]*")  # (a fence and its language tag are no prose)
SAMPLES = 5
MIN_FAIR = 5  # variants per template below which a family's balance is not judged
_SAMPLE_CHARS = 1500


@dataclass(slots=True)
class VariantQuality:
    """What one variant is, measured against its parent."""

    header_only: bool = False
    spans_before: int = 0
    parsed_before: int = 0
    spans_after: int = 0
    parsed_after: int = 0
    renames: int = 0  # identifiers renamed
    renames_typed: int = 0  # of which the parent's code declares the type or kind
    renames_in_pool: int = 0  # of which the new name is in a pool of that type
    bool_off_type: list[str] = field(default_factory=list)  # "old -> new" of bool variables renamed off type

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.header_only, self.spans_before, self.parsed_before, self.spans_after, self.parsed_after,
                self.renames, self.renames_typed, self.renames_in_pool, tuple(self.bool_off_type))

    @classmethod
    def of(cls, t: tuple[Any, ...]) -> VariantQuality:
        return cls(*t[:8], list(t[8]))


def _prose_words(text: str, spans: list[Any]) -> list[str]:
    parts: list[str] = []
    pos = 0
    for s in spans:
        parts.append(text[pos : s.start])
        pos = s.end
    parts.append(text[pos:])
    return _WORD.findall(_FENCE_MARK.sub(" ", " ".join(parts)).lower())


def adds_only_header(parent: str, variant: str, parent_spans: list[Any], variant_spans: list[Any]) -> bool:
    """Does the variant's prose only add words before (a header) or after (a footer) the parent's prose,
    all of whose words it keeps as they are, in one run?"""
    p, v = _prose_words(parent, parent_spans), _prose_words(variant, variant_spans)
    if not p or len(v) <= len(p):
        return False
    return v[-len(p):] == p or v[: len(p)] == p


def _body(s: Any) -> bool:  # (validate's rule: inline fragments quoted in prose are not meant to parse alone)
    return s.shape != "inline" or ";" in s.text or "{" in s.text


def _declared_roles(decls: list[Any]) -> tuple[frozenset[str], str | None]:
    """The pools a name declared as `decls` may take a new name from, and its broad type ('bool', ...)."""
    from swcdata.solidity.declarations import type_kind

    kinds = {d.kind for d in decls}
    for k, roles in (("function", ("func_action", "func_view", "func_check")),
                     ("modifier", ("modifier_only", "modifier_state")), ("event", ("event",)),
                     ("contract", ("contract",)), ("struct", ("struct",)), ("enum", ("enum",))):
        if kinds == {k}:
            return frozenset(roles), k
    types = set()
    for d in decls:
        tk = type_kind(d.type)
        vk = None
        if tk in ("mapping", "array") and d.type:
            t = d.type
            while t.startswith("mapping") and "=>" in t:
                t = t[t.index("=>") + 2 : t.rindex(")") if ")" in t else len(t)].strip()
            vk = type_kind(t[: t.index("[")] if t.endswith("]") else t)
        types.add((tk, d.constant, vk))
    if len(types) != 1:
        return frozenset(), None
    tk, constant, vk = next(iter(types))
    core = decls[0].name.lstrip("_")
    constant = constant or (core.isupper() and any(c.isalpha() for c in core))  # (UPPER_CASE: a constant's style)
    if tk == "user":
        return frozenset(["record"]), tk
    return namepools.allowed_roles(tk, constant, vk), tk


def measure(parent: dict[str, Any], variant: dict[str, Any], parses: Callable[[str], bool],
            facts: Callable[[str], Any]) -> VariantQuality:
    """Measure one variant against its parent (see the module). ``parses`` and ``facts`` are the parse
    check and :func:`swcdata.solidity.declarations.facts` (memoised by the caller, which decides where tree-sitter
    runs)."""
    from swcdata.solidity.lexer import code_tokens
    from swcdata.solidity.spans import extract_code

    q = VariantQuality()
    before = {f: extract_code(parent[f] or "") for f in ("instruction", "response")}
    after = {f: extract_code(variant[f] or "") for f in ("instruction", "response")}
    q.header_only = adds_only_header(parent["instruction"], variant["instruction"], before["instruction"],
                                     after["instruction"])
    for f in ("instruction", "response"):
        for s in before[f]:
            if _body(s):
                q.spans_before += 1
                q.parsed_before += parses(s.text)
        for s in after[f]:
            if _body(s):
                q.spans_after += 1
                q.parsed_after += parses(s.text)
    if variant.get("transform") != "rename_identifiers":
        return q
    mapping: dict[str, str] = {}
    for f in ("instruction", "response"):
        # (a template may move the main code before or after other spans: pair spans by their shape)
        free: dict[str, list[str]] = {}
        for a in before[f]:
            free.setdefault(" ".join(code_tokens(a.text, abstract_identifiers=True)), []).append(a.text)
        for b in after[f]:
            same = free.get(" ".join(code_tokens(b.text, abstract_identifiers=True)))
            if not same:
                continue
            ta, tb = code_tokens(same.pop(0)), code_tokens(b.text)
            for x, y in zip(ta, tb, strict=True):
                if x != y and (x[:1].isalpha() or x[:1] in "_$"):
                    mapping.setdefault(x, y)
    decls: dict[str, list[Any]] = {}
    for f in ("instruction", "response"):
        for s in before[f]:
            for d in facts(s.text).decls:
                decls.setdefault(d.name, []).append(d)
    for old, new in mapping.items():
        q.renames += 1
        ds = decls.get(old)
        if not ds:
            continue
        allowed, tk = _declared_roles(ds)
        if tk is None:
            continue
        q.renames_typed += 1
        roles = namepools.roles_of(new)
        if roles & allowed:
            q.renames_in_pool += 1
        core = new.lstrip("_")
        if tk == "bool" and (not roles & {"bool_on", "bool_off", "bool_done"}
                             or (core.isupper() and any(c.isalpha() for c in core))):
            q.bool_off_type.append(f"{old} -> {new}")
    return q


# ------------------------------------------------------------------------------ the summary


class Sample(BaseModel):
    """One variant beside its parent, for a person to read (long texts are cut)."""

    model_config = ConfigDict(extra="forbid")

    parent_id: str
    id: str
    transform: str | None
    template: str | None
    instruction_before: str
    instruction_after: str
    response_before: str | None = Field(description="The parent's response; null when the variant's is the same.")
    response_after: str | None = None


class AugmentQuality(BaseModel):
    """How good the added variants are (see swcdata.steps.augment.quality)."""

    model_config = ConfigDict(extra="forbid")

    variants: int = Field(description="Variants measured.")
    templated: int = Field(0, description="Variants whose instruction a template rewrote.")
    template_shares: dict[str, float] = Field(default_factory=dict, description="Variants per template / variants "
                                              "('none': the record's own wording).")
    transform_shares: dict[str, float] = Field(default_factory=dict, description="Variants per transform / variants.")
    max_template_over_fair: float = Field(0.0, description="The most used template's variants over its fair share "
                                          "(its family's templated variants / the family's templates); 1.0 is "
                                          "perfectly even. Families with a fair share under 5 variants are left "
                                          "out: so few say nothing about balance.")
    max_template: str | None = Field(None, description="The template with that ratio.")
    header_only: int = Field(0, description="Variants whose instruction only adds a header (or a footer) to the "
                             "parent's prose.")
    header_only_share: float = 0.0
    parse_rate_before: float | None = Field(None, description="Parents' code spans with statements that parse.")
    parse_rate_after: float | None = Field(None, description="Variants' code spans with statements that parse.")
    renames: int = Field(0, description="Identifiers renamed (over all renaming variants).")
    renames_typed: int = Field(0, description="Renamed identifiers whose type or kind the parent's code declares.")
    renames_in_type_pool: int = Field(0, description="Of those, renamed to a name from a pool of that type.")
    type_pool_match_rate: float | None = None
    bool_renamed_off_type: list[str] = Field(default_factory=list, description="Bool variables renamed to an "
                                             "address or constant name (`old -> new`); should be empty.")
    not_measured: int = Field(0, description="Variants whose measuring crashed the parser (not counted above).")
    samples: list[Sample] = Field(default_factory=list)


def _share(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


@dataclass
class QualityTally:
    """`summarise`'s running sums over (parent, variant, quality) triples: added one at a time (`add`), merged in
    order from tallies of consecutive runs of variants (`merge`: the Ray engine's batches), summarised by
    `finish`. A pick's parent may be a key that `finish` resolves (the Ray engine fetches those few parents)."""

    seed: int = 0
    n: int = 0
    templated: int = 0
    header: int = 0
    not_measured: int = 0
    spans_before: int = 0
    parsed_before: int = 0
    spans_after: int = 0
    parsed_after: int = 0
    renames: int = 0
    typed: int = 0
    in_pool: int = 0
    by_template: Counter[str] = field(default_factory=Counter)
    by_transform: Counter[str] = field(default_factory=Counter)
    off: list[str] = field(default_factory=list)
    picks: list[tuple[int, str, Any, dict[str, Any]]] = field(default_factory=list)

    def add(self, parent: Any, variant: dict[str, Any], q: VariantQuality | None) -> None:
        self.n += 1
        self.by_template[variant.get("template") or "none"] += 1
        self.by_transform[variant.get("transform") or "none"] += 1
        self.templated += bool(variant.get("template"))
        rank = xxhash.xxh3_64_intdigest(f"sample\x1f{self.seed}\x1f{variant['id']}".encode())
        self.picks.append((rank, variant["id"], parent, variant))
        if len(self.picks) > 4 * SAMPLES:
            self._trim()
        if q is None:
            self.not_measured += 1
            return
        self.header += q.header_only
        self.spans_before += q.spans_before
        self.parsed_before += q.parsed_before
        self.spans_after += q.spans_after
        self.parsed_after += q.parsed_after
        self.renames += q.renames
        self.typed += q.renames_typed
        self.in_pool += q.renames_in_pool
        self.off += q.bool_off_type

    def _trim(self) -> None:
        self.picks = sorted(self.picks, key=lambda p: (p[0], p[1]))[:SAMPLES]

    def merge(self, other: QualityTally) -> None:
        """Add the tally of the variants that come after this one's."""
        for name in ("n", "templated", "header", "not_measured", "spans_before", "parsed_before", "spans_after",
                     "parsed_after", "renames", "typed", "in_pool"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_template.update(other.by_template)
        self.by_transform.update(other.by_transform)
        self.off += other.off
        self.picks += other.picks
        self._trim()

    def chosen(self) -> list[tuple[int, str, Any, dict[str, Any]]]:
        """The picks of the samples, in sample order."""
        return sorted(self.picks, key=lambda p: (p[0], p[1]))[:SAMPLES]

    def finish(self, parents: dict[Any, dict[str, Any]] | None = None) -> AugmentQuality:
        """The summary. `parents`: the parent record of each pick whose parent is a key (see the class)."""
        from swcdata.steps.augment import templates

        n, by_template = self.n, self.by_template
        fam_total: Counter[str] = Counter()
        for t, k in by_template.items():
            if t != "none":
                fam_total[t.split("/")[0]] += k
        worst, worst_ratio = None, 0.0
        for t, k in sorted(by_template.items()):
            fam = t.split("/")[0]
            if t == "none" or fam not in templates.TEMPLATES:
                continue
            fair = fam_total[fam] / len(templates.TEMPLATES[fam])
            if fair < MIN_FAIR:
                continue  # (a handful of variants per template says nothing about balance)
            ratio = k / fair if fair else 0.0
            if ratio > worst_ratio:
                worst, worst_ratio = t, ratio
        samples = []
        for _, _, parent, variant in self.chosen():
            if parents is not None and not isinstance(parent, dict):
                parent = parents[parent]
            same = parent["response"] == variant["response"]
            samples.append(Sample(
                parent_id=parent["id"], id=variant["id"], transform=variant.get("transform"),
                template=variant.get("template"), instruction_before=parent["instruction"][:_SAMPLE_CHARS],
                instruction_after=variant["instruction"][:_SAMPLE_CHARS],
                response_before=None if same else parent["response"][:_SAMPLE_CHARS],
                response_after=None if same else variant["response"][:_SAMPLE_CHARS]))
        measured = n - self.not_measured
        sb, pb, sa, pa, typed = self.spans_before, self.parsed_before, self.spans_after, self.parsed_after, self.typed
        return AugmentQuality(
            variants=n, templated=self.templated,
            template_shares={k: _share(v, n) for k, v in sorted(by_template.items(),
                                                                key=lambda kv: (-kv[1], kv[0]))},
            transform_shares={k: _share(v, n) for k, v in sorted(self.by_transform.items(),
                                                                 key=lambda kv: (-kv[1], kv[0]))},
            max_template_over_fair=round(worst_ratio, 3), max_template=worst,
            header_only=self.header, header_only_share=_share(self.header, measured),
            parse_rate_before=round(pb / sb, 4) if sb else None, parse_rate_after=round(pa / sa, 4) if sa else None,
            renames=self.renames, renames_typed=typed, renames_in_type_pool=self.in_pool,
            type_pool_match_rate=round(self.in_pool / typed, 4) if typed else None,
            bool_renamed_off_type=self.off[:50], not_measured=self.not_measured, samples=samples)


def summarise(rows: Iterable[tuple[dict[str, Any], dict[str, Any], VariantQuality | None]], seed: int = 0
              ) -> AugmentQuality:
    """The summary of measured (parent, variant, quality) triples (quality None: not measured)."""
    tally = QualityTally(seed)
    for parent, variant, q in rows:
        tally.add(parent, variant, q)
    return tally.finish()


def _measure_stream(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> Any:
    """Isolated child: the quality of each pair in turn (tree-sitter runs here)."""
    from swcdata.solidity import declarations, treesitter

    ok: dict[str, bool] = {}
    fx: dict[str, Any] = {}

    def parses(code: str) -> bool:
        r = ok.get(code)
        if r is None:
            try:
                r = ok[code] = treesitter.parse(code).ok
            except treesitter.CodeTooLarge:
                r = ok[code] = False
        return r

    def facts(code: str) -> Any:
        r = fx.get(code)
        if r is None:
            try:
                r = fx[code] = declarations.facts(code, bodies=False)
            except treesitter.CodeTooLarge:
                r = fx[code] = declarations.Facts([], [], False)
        return r

    for parent, variant in pairs:
        yield measure(parent, variant, parses, facts).as_tuple()


def measure_isolated(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[VariantQuality | None]:
    """:func:`measure` of every pair, in single-use child processes (a pair during which one dies is None)."""
    from swcdata.core.isolate import ChildCrashed, stream_isolated

    out: list[VariantQuality | None] = []
    i = 0
    while i < len(pairs):
        try:
            for t in stream_isolated(_measure_stream, pairs[i:]):
                out.append(VariantQuality.of(t))
                i += 1
        except ChildCrashed:
            out.append(None)
            i += 1
    return out
