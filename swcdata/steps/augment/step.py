"""`augment`: more training records from the train split, each with its lineage.

For every record of a targeted split (``train`` unless told otherwise) the step makes ``factor``
variants. Variant ``k`` applies one code-preserving transform to every code span of *both* fields
(the same way in the instruction and the response) and, where the record's task family is
recognised and its request can be said in other words without losing a detail, rewrites the
request with a template of that family (see :mod:`swcdata.steps.augment.templates`: the topic, the focus and the
specific questions of the record's own request are kept; a request that says more than a template
can keeps its own wording). The response keeps answering the same question, and the category never
changes. Records with a validate warning named in ``skip_findings`` (``noop-fix`` by default: the
"fix" repeats the vulnerable code) are kept but not augmented.

Transforms (chosen per record and ``k`` by a hash of the seed and the record id, never ``random``):

* ``rename_identifiers``: a consistent renaming of the contract's own identifiers (found with
  tree-sitter) to names from the pool of their type and role (:mod:`swcdata.steps.augment.namepools`: a ``bool``
  gets a flag of the same sense, an ``address`` a party, a ``uint`` an amount, a time, a rate or a
  count, a constant an UPPER_CASE name of its type, a function a verb phrase...; a name whose type
  neither its declaration nor its use tells is not renamed), in the code of both fields and where the
  prose quotes them (`` `name` ``, ``'name'``, ``name()``, camelCase/snake_case names). A name the
  prose refers to in plain words ("updates the external dependencies" for
  ``setExternalDependencies``) is not renamed, nor is a function the code calls without declaring
  it (unless its name says it only reads). Never renamed: keywords,
  types, built-ins (``msg.sender``, ``block``, ``transfer``, ``keccak256``, ``this``, ...), any name
  used after a ``.`` (members of external objects: ``token.transfer``, ``s.level``), external
  types and events (capitalised names the code does not declare: ``IERC20``, ``Transfer``) and the
  well-known names of ERC-20/721, Ownable, SafeMath, ReentrancyGuard, Pausable and AccessControl.
* ``reflow_layout``: whitespace between tokens only: one statement per line, indentation by depth
  (4 spaces, 2 spaces or tabs) and canonical spacing (after commas, around binary operators), or a
  compact one-line form without spaces inside brackets (only when there is no ``//`` comment).
* ``toggle_comments``: in the instruction's code only, removes every comment when it has some (the
  rest keeps its indentation), otherwise writes a NatSpec comment (``/// @notice``, ``/// @dev``,
  ``/** @dev */``) on the line above each function, modifier and constructor, indented like it, that
  says what tree-sitter shows about it: who may call it and what its body does ("Callable by anyone;
  it updates storage and sends ether."), never its name. Code that starts with the declaration and
  is not in a Markdown fence is shown in one (outside a fence, a leading comment would hide the
  code from the extractor) when it stands apart from the sentence around it. The response is the
  answer: its comments often are the explanation (``// fixed: checks before the call (SWC-107)``),
  so they are never touched.

Every transformed span is parsed again with tree-sitter: when a span that parsed before does not
parse after, the record is skipped for that transform (counted in ``skipped_parse_failures``) and
the next transform in the record's order is tried. The same happens (``skipped_code_lost``) when
the transformed text no longer yields the same code spans from :func:`swcdata.solidity.spans.extract_code`,
so later steps (validate, dedup, audit) still see the variant's code as code. A change that only
moves line breaks is no change here: record ids ignore whitespace runs, so such a variant would be
the same record; a transform counts as changing a record only when the id can see it.

tree-sitter is C and can crash on pathological code, so a record with a code span longer than
``max_parse_chars`` is not parsed and not augmented (``too_large``), and the work on the records runs
in a single-use child process (:func:`swcdata.core.isolate.stream_isolated`): a record during which it
dies is kept but not augmented (``parser_crashed``) and a fresh child goes on with the next one. Both
are named in the report's warnings.

Variants are then deduplicated by id against every record of every split and against each other;
what was dropped is counted. Records that already carry lineage are kept but not augmented again.
Splits that are not targeted come back unchanged. The report ends with the quality of the added
variants (:mod:`swcdata.steps.augment.quality`: template and transform shares, header-only variants, parse
rates, renames by type, five before/after pairs). The function does no I/O and prints nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swcdata.core.isolate import ChildCrashed, stream_isolated
from swcdata.core.records import table_from_rows
from swcdata.core.text import record_id
from swcdata.similarity.sigindex import key_bytes, keys_from_bytes
from swcdata.solidity import treesitter
from swcdata.solidity.spans import extract_code
from swcdata.steps.augment import framing, record, templates
from swcdata.steps.augment import quality as augment_quality
from swcdata.steps.augment.comments import toggle_comments
from swcdata.steps.augment.layout import reflow_layout
from swcdata.steps.augment.rename import rename_identifiers
from swcdata.steps.memo import Memo, MemoParams, usable

__all__ = [
    "EVAL_SPLITS",
    "NO_TRANSFORM",
    "TRANSFORMS",
    "TRANSFORM_ALIASES",
    "AugmentConfig",
    "AugmentReport",
    "SplitAugment",
    "augment",
    "resolve_transforms",
]

TransformName = Literal["rename_identifiers", "reflow_layout", "toggle_comments"]
TRANSFORMS: tuple[str, ...] = ("rename_identifiers", "reflow_layout", "toggle_comments")
TRANSFORM_ALIASES: dict[str, str] = {
    "rename": "rename_identifiers", "rename_identifiers": "rename_identifiers",
    "layout": "reflow_layout", "reflow": "reflow_layout", "reflow_layout": "reflow_layout",
    "comments": "toggle_comments", "toggle_comments": "toggle_comments",
}
NO_TRANSFORM = "none"  # `transform` of a variant that only a template changed
EVAL_SPLITS = frozenset({"validation", "valid", "val", "dev", "test", "eval", "evaluation"})


def resolve_transforms(names: list[str]) -> list[str]:
    """Full transform names from names or aliases (``rename``, ``layout``, ``comments``), order kept,
    duplicates dropped. Unknown names raise ValueError naming every one of them."""
    bad = [n for n in names if n.strip().lower() not in TRANSFORM_ALIASES]
    if bad:
        raise ValueError(f"unknown transform(s) {', '.join(map(repr, bad))}; choose from rename, layout, comments "
                         f"({', '.join(TRANSFORMS)})")
    out: list[str] = []
    for n in names:
        full = TRANSFORM_ALIASES[n.strip().lower()]
        if full not in out:
            out.append(full)
    return out


# ------------------------------------------------------------------------------ config and report


class AugmentConfig(BaseModel):
    """Every knob of the augment step."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    factor: int = Field(3, ge=1, le=64, description="Variants made per record (the originals are kept too).")
    transforms: list[TransformName] = Field(default_factory=lambda: list(TRANSFORMS), min_length=1,
                                            description="Enabled code transforms (aliases: rename, layout, comments).")
    templates: bool = Field(True, description="Rephrase instructions with templates of their task family.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of every choice; the same seed gives identical output.")
    splits: list[str] = Field(default_factory=lambda: ["train"], min_length=1, description="Splits to augment.")
    allow_eval_splits: bool = Field(False, description="Allow augmenting validation/test splits (with a warning).")
    max_parse_chars: int = Field(treesitter.MAX_PARSE_CHARS, ge=1,
                                 description="A record with a code span longer than this (characters) is not "
                                             "augmented: tree-sitter can crash on huge spans.")
    skip_findings: list[str] = Field(default_factory=lambda: ["noop-fix"],
                                     description="Validate warning rules (swcdata validate's rule names) whose "
                                                 "records are kept but not augmented: by default noop-fix, a "
                                                 "'fix' that repeats the vulnerable code (its variants would "
                                                 "teach the same wrong answer three more times).")

    @field_validator("skip_findings")
    @classmethod
    def _warning_rules(cls, v: list[str]) -> list[str]:
        from swcdata.steps.validate import warning_rules

        known = warning_rules()
        bad = [r for r in v if r not in known]
        if bad:
            raise ValueError(f"not a validate warning rule: {', '.join(map(repr, bad))} (rules: {', '.join(known)})")
        return list(dict.fromkeys(v))

    @field_validator("transforms", mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p for p in v.split(",") if p.strip()]
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return resolve_transforms(v)
        return v

    @field_validator("splits")
    @classmethod
    def _unique_splits(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(s.strip() for s in v if s.strip()))

    @model_validator(mode="after")
    def _eval_needs_flag(self) -> AugmentConfig:
        evals = [s for s in self.splits if s.lower() in EVAL_SPLITS]
        if evals and not self.allow_eval_splits:
            raise ValueError(f"augmenting evaluation split(s) {', '.join(evals)} needs allow_eval_splits "
                             "(--allow-eval-splits): augmented evaluation data no longer measures generalisation")
        return self


class SplitAugment(BaseModel):
    """What happened to one split. For an augmented split the variants add up:
    ``variants_attempted == variants_added + duplicates_dropped + no_effect + parse_failed``."""

    model_config = ConfigDict(extra="forbid")

    records_in: int
    augmented: bool
    sources: int = Field(0, description="Records used as parents (records that already carry lineage are not).")
    variants_attempted: int = Field(0, description="sources x factor.")
    variants_added: int = 0
    duplicates_dropped: int = Field(0, description="Variants whose id equals a record of any split or another variant.")
    no_effect: int = Field(0, description="Variants that no transform and no template could change.")
    parse_failed: int = Field(0, description="Variants for which every transform that changed something broke a "
                                             "parse (or hid the code) and no template applied.")
    too_large: int = Field(0, description="Records kept but not augmented (not sources): a code span is longer "
                                          "than max_parse_chars.")
    parser_crashed: int = Field(0, description="Records kept but not augmented (not sources): working on their "
                                               "code crashed the process (a tree-sitter crash).")
    skipped_by_finding: int = Field(0, description="Records kept but not augmented (not sources): they have a "
                                                   "validate warning named in skip_findings.")
    records_out: int

    @property
    def adds_up(self) -> bool:
        """The counts add up: every attempted variant is accounted for, and the records out are the
        records in plus the variants added."""
        return (self.variants_attempted == self.variants_added + self.duplicates_dropped + self.no_effect
                + self.parse_failed) and self.records_out == self.records_in + self.variants_added


class AugmentReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="AugmentReport")

    config: AugmentConfig
    splits: dict[str, SplitAugment]
    variants_by_transform: dict[str, int] = Field(description="Added variants per transform ('none' = template only).")
    variants_by_family: dict[str, int] = Field(description="Added variants per template family ('none' = no template).")
    variants_by_template: dict[str, int]
    skipped_parse_failures: dict[str, int] = Field(
        description="Per transform: records skipped for it because a span that parsed before no longer parsed.")
    skipped_code_lost: dict[str, int] = Field(
        description="Per transform: records skipped for it because its result changed which code spans the text "
                    "holds (e.g. a comment in front of unfenced code hides the code from the extractor).")
    no_change: dict[str, int] = Field(description="Per transform: records it had nothing to change in.")
    templates_dropped: int = Field(0, description="Variants whose template was dropped (the record's own wording "
                                   "kept) because the templated text changed which code spans it holds.")
    duplicates_dropped: int
    skipped_by_finding: dict[str, int] = Field(default_factory=dict, description="Records not augmented per "
                                               "skip_findings rule (a record with two such rules counts in both).")
    quality: augment_quality.AugmentQuality = Field(description="How good the added variants are: template and "
                                                    "transform shares, header-only variants, parse rates, renames "
                                                    "by type, and a few before/after pairs to read.")
    warnings: list[str]
    seconds: float

    @property
    def adds_up(self) -> bool:
        """Every split's counts add up (`SplitAugment.adds_up`)."""
        return all(s.adds_up for s in self.splits.values())


# ------------------------------------------------------------------------------ the step


_TRANSFORM_FNS: dict[str, Callable[[record.Rec, int, record.Cache], record.Edit | None]] = {
    "rename_identifiers": rename_identifiers,
    "reflow_layout": reflow_layout,
    "toggle_comments": toggle_comments,
}


@dataclass(slots=True)
class _Tally:
    by_transform: Counter[str] = field(default_factory=Counter)
    by_family: Counter[str] = field(default_factory=Counter)
    by_template: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    code_lost: Counter[str] = field(default_factory=Counter)
    templates_dropped: int = 0
    no_change: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Tally) -> None:
        """Add another tally's counts (one record's, from the child process that augmented it)."""
        for name in ("by_transform", "by_family", "by_template", "skipped", "code_lost", "no_change"):
            getattr(self, name).update(getattr(other, name))
        self.templates_dropped += other.templates_dropped


@dataclass(slots=True)
class _Result:
    """What became of one record: its variants (None: not augmented, see `skipped` and `too_large`) and
    how many attempts produced nothing. Each variant carries its quality under "_q" (taken off by the
    parent): swcdata.steps.augment.quality.VariantQuality.as_tuple()."""

    variants: list[dict[str, Any]] | None
    no_effect: int = 0
    parse_failed: int = 0
    skipped: tuple[str, ...] = ()  # the skip_findings rules the record has (then it is not augmented)


def _findings(row: dict[str, Any], cfg: AugmentConfig) -> set[str]:
    """The validate rules the record's content breaks (`swcdata.steps.validate.check_lines` on it)."""
    from swcdata.steps.validate import ValidateConfig, check_lines

    line = orjson.dumps({"instruction": row["instruction"], "response": row["response"], "category": row["category"]})
    vcfg = ValidateConfig(max_parse_chars=cfg.max_parse_chars, workers=1, max_chars=10**9, min_chars=0)
    return {rule for rule, *_ in check_lines("augment", [(1, line)], vcfg, batch=False).findings}


def _variants(row: dict[str, Any], cfg: AugmentConfig, cache: record.Cache, tally: _Tally) -> _Result:
    """The variants of one record (see _Result). A record with a code span too long to parse, or with a
    validate finding named in ``skip_findings``, is not augmented."""
    rid = row["id"]
    instr, resp = record.Field.of(row["instruction"]), record.Field.of(row["response"])
    if any(len(s.text) > cfg.max_parse_chars for f in (instr, resp) for s in f.spans):
        return _Result(None)
    if cfg.skip_findings:
        hit = _findings(row, cfg) & set(cfg.skip_findings)
        if hit:
            return _Result(None, skipped=tuple(sorted(hit)))
    words = {w.casefold() for w in record.WORDS_RE.findall(row["instruction"] + " " + row["response"])}
    rec = record.Rec(rid, (instr, resp), words)
    plan: framing.Plan | None = None
    family = templates.family_for(row["instruction"], row["response"]) if cfg.templates else None
    frame = framing.frame(instr) if family else None
    if family and frame is not None:
        req = templates.analyse(instr.text, instr.spans, frame.span, (frame.start, frame.end), family)
        if req is not None:
            plan = framing.Plan(family, frame, req, framing.obj(instr.spans[frame.span].text, cache))
    order = sorted(cfg.transforms, key=lambda t: (record.h(cfg.seed, rid, "transform", t), t))
    out: list[dict[str, Any]] = []
    res = _Result(out)
    for k in range(cfg.factor):
        tpl = None
        if plan is not None:
            tpl = templates.choose(rid, plan.family, k, cfg.seed, code_first=not plan.request.before)
        edit: record.Edit | None = None
        used = NO_TRANSFORM
        failed = False
        texts: list[str] = []
        for t in order[k % len(order) :] + order[: k % len(order)]:
            e = _TRANSFORM_FNS[t](rec, record.h(cfg.seed, rid, k, t), cache)
            if e is None:
                tally.no_change[t] += 1
                continue
            if any(cache.parses(before) and not cache.parses(after) for before, after in e.changed):
                tally.skipped[t] += 1
                failed = True
                continue
            texts = [framing.rebuild(f, ns, e.prose, 0, len(f.text), e.fence if i == 0 else frozenset())
                     for i, (f, ns) in enumerate(zip(rec.fields, e.spans, strict=True))]
            if any([x.text for x in extract_code(text)] != ns
                   for text, ns in zip(texts, e.spans, strict=True)):
                tally.code_lost[t] += 1  # the text's code is no longer found as the same spans
                failed = True
                continue
            edit, used = e, t
            break
        spans = edit.spans if edit else ([s.text for s in instr.spans], [s.text for s in resp.spans])
        prose = edit.prose if edit else None
        fence = edit.fence if edit else frozenset()
        key = record.h(cfg.seed, rid, k, "focus")
        new_instr = framing.instruction(instr, spans[0], prose, plan, tpl, fence, key)
        if tpl is not None and sorted(x.text for x in extract_code(new_instr)) != sorted(spans[0]):
            # the template's words changed where the extractor finds code (prose read as code after a
            # truncated block): the variant keeps the record's own wording
            tally.templates_dropped += 1
            tpl = None
            new_instr = framing.instruction(instr, spans[0], prose, plan, None, fence, key)
        new_resp = texts[1] if edit else resp.text
        new_id = record_id(new_instr, new_resp)
        if new_id == rid:
            if failed:
                res.parse_failed += 1
            else:
                res.no_effect += 1
            continue
        variant = {**row, "id": new_id, "instruction": new_instr, "response": new_resp, "parent_id": rid,
                   "transform": used, "template": tpl.id if tpl else None}
        variant["_q"] = augment_quality.measure(row, variant, cache.parses, cache.facts).as_tuple()
        out.append(variant)
    return res


_Out = tuple[_Result, _Tally]  # _variants's result and the record's tally


def _variants_stream(rows: list[dict[str, Any]], cfg: AugmentConfig) -> Iterator[_Out]:
    """Isolated child: the variants of each row in turn (see `_each_variants`)."""
    cache = record.Cache(cfg.max_parse_chars)
    for row in rows:
        tally = _Tally()
        yield _variants(row, cfg, cache, tally), tally


def _each_variants(rows: list[dict[str, Any]], cfg: AugmentConfig) -> Iterator[_Out | ChildCrashed]:
    """`_variants` of every row, in order, computed in a single-use child process (tree-sitter runs
    there: a crash in it costs the child, not the command). A row during which the child dies comes
    back as the ChildCrashed, and a fresh child goes on with the next row."""
    i = 0
    while i < len(rows):
        try:
            for out in stream_isolated(_variants_stream, rows[i:], cfg):
                i += 1
                yield out
        except ChildCrashed as e:
            i += 1
            yield e


_COUNTERS = ("by_transform", "by_family", "by_template", "skipped", "code_lost", "no_change")


def augment_params(cfg: AugmentConfig) -> MemoParams:
    """What a record's variants depend on: the whole config (and, in `MemoParams`, the code and grammar)."""
    return MemoParams(step="augment", config=cfg.model_dump(mode="json"))


class VariantMemo:
    """Augmentation kept by text (see `swcdata.steps.memo`): `known`, a memo of an earlier run's, gives what became
    of the records whose text (and category) it holds, so they are not worked on again (not used when made with
    other parameters: `note` says why); what became of every record of this run is collected into its memo
    (`memo()`; a record whose work crashed its process is not kept). Both engines (`augment_on_ray`)."""

    def __init__(self, cfg: AugmentConfig, known: Memo | None = None) -> None:
        self.params = augment_params(cfg)
        self.known, self.note = usable(known, self.params, "variants", "every record augmented")
        self.reused = 0
        self._keys: list[bytes] = []
        self._values: list[bytes | None] = []

    def take(self, rows: list[dict[str, Any]]) -> tuple[list[bytes], list[bytes | None]]:
        """The keys of `rows` and, for each, the memo's value (as it is kept: `_encoded`) where it holds the record's
        text with the record's category, else None."""
        keys = [key_bytes(row["instruction"], row["response"]) for row in rows]
        if self.known is None or not rows:
            return keys, [None] * len(rows)
        found = self.known.find(keys_from_bytes(b"".join(keys))).tolist()
        values = self.known.values
        return keys, [None if pos < 0 or not _of_category(values[pos], row) else values[pos]
                      for row, pos in zip(rows, found, strict=True)]

    def outcomes(self, rows: list[dict[str, Any]], cfg: AugmentConfig) -> Iterator[tuple[bytes, _Out | ChildCrashed]]:
        """Each record's key and what became of it, in order: from the memo where it holds the record (decoded as
        it is reached, while the child process works on the others), else augmented (`_each_variants`); each one
        collected into this run's memo (a crash is not)."""
        keys, kept = self.take(rows)
        results = _each_variants([row for row, value in zip(rows, kept, strict=True) if value is None], cfg)
        # (once a held value does not read, the rest are read at once, and the records of those that do not read
        # are augmented in one more child: a cache of such values costs two children, not one per record)
        ahead: dict[int, _Out | None] = {}
        unread: Iterator[_Out | ChildCrashed] | None = None
        for i, (key, row, value) in enumerate(zip(keys, rows, kept, strict=True)):
            got: _Out | ChildCrashed | None = None
            if value is not None:
                got = ahead.pop(i) if i in ahead else _decoded(_loads(value), row)
                if got is None and unread is None:
                    ahead = {j: _decoded(_loads(v), rows[j])
                             for j, v in enumerate(kept[i + 1 :], i + 1) if v is not None}
                    unread = _each_variants([row, *(rows[j] for j, out in ahead.items() if out is None)], cfg)
            if got is not None:
                self.reused += 1
                self._keys.append(key)
                self._values.append(value)
            else:
                source = results if value is None else unread
                assert source is not None  # (a held value that did not read made it)
                got = next(source)
                if not isinstance(got, ChildCrashed):
                    self.add(key, row, got)
            yield key, got

    @property
    def texts(self) -> int:
        """Records collected so far (taken from the memo or not)."""
        return len(self._keys)

    @property
    def values(self) -> list[bytes | None]:
        """The values collected so far, in order."""
        return self._values

    def add(self, key: bytes, row: dict[str, Any], out: _Out) -> None:
        self._keys.append(key)
        self._values.append(_encoded(row, out))

    def extend(self, keys: list[bytes], values: list[bytes]) -> None:
        """Add entries made elsewhere (`add` in the Ray engine's tasks), in order."""
        self._keys += keys
        self._values += values

    def memo(self) -> Memo:
        return Memo.of(self.params, keys_from_bytes(b"".join(self._keys)), self._values)


def _encoded(row: dict[str, Any], out: _Out) -> bytes:
    """What became of a record, as JSON (with its category: the skip_findings checks read it)."""
    result, t = out
    variants = None if result.variants is None else [
        [v["id"], v["instruction"], v["response"], v["transform"], v["template"], v["_q"]] for v in result.variants]
    return orjson.dumps({"category": row["category"], "variants": variants, "no_effect": result.no_effect,
                         "parse_failed": result.parse_failed, "skipped": result.skipped,
                         "tally": {name: dict(getattr(t, name)) for name in _COUNTERS},
                         "templates_dropped": t.templates_dropped})


def _loads(value: bytes) -> Any:
    """A kept value's JSON (None when it does not parse: then the record is augmented)."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _of_category(value: bytes | None, row: dict[str, Any]) -> bool:
    """Whether a kept value (`_encoded`: its category first) is of the record's category, read from its first bytes."""
    return value is not None and value.startswith(b'{"category":' + orjson.dumps(row["category"]) + b",")


def _decoded(value: Any, row: dict[str, Any]) -> _Out | None:
    """`_encoded`'s record result for `row` (a record of the same text), or None when its category differs or the
    value is not one `_encoded` writes (then the record is augmented)."""
    if not isinstance(value, dict) or value.get("category") != row["category"]:
        return None
    try:
        return _decode(value, row)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _decode(value: dict[str, Any], row: dict[str, Any]) -> _Out:
    counts = (value["no_effect"], value["parse_failed"], value["templates_dropped"])
    if not all(type(c) is int for c in counts) or not (value["variants"] is None or all(
            len(v) == 6 and all(type(x) is str for x in v[:4]) and (v[4] is None or type(v[4]) is str)
            and len(v[5]) == 9 for v in value["variants"])):
        raise ValueError("not a record's variants")
    variants = None if value["variants"] is None else [
        {**row, "id": vid, "instruction": ins, "response": resp, "parent_id": row["id"], "transform": tf,
         "template": tpl, "_q": (*q[:8], tuple(q[8]))} for vid, ins, resp, tf, tpl, q in value["variants"]]
    tally = _Tally(**{name: Counter(value["tally"][name]) for name in _COUNTERS},
                   templates_dropped=value["templates_dropped"])
    return _Result(variants, value["no_effect"], value["parse_failed"], tuple(value["skipped"])), tally


def _not_augmented(what: str, name: str, ids: list[str]) -> str:
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5:,} more" if len(ids) > 5 else "")
    return f"{len(ids):,} record(s) of {name!r} {what}: kept, not augmented (ids: {shown})"


def augment(splits: dict[str, pa.Table], config: AugmentConfig | None = None, *, memo: VariantMemo | None = None
            ) -> tuple[dict[str, pa.Table], AugmentReport]:
    """Augment the targeted splits (``config.splits``); return every split (untouched ones as they
    came) and a report. Pure: no I/O, no printing. Raises ValueError when a targeted split is missing.
    `memo`: augmentation kept by text (the records its memo holds are not worked on again; it collects this run's)."""
    cfg = config or AugmentConfig()
    t0 = time.perf_counter()
    warnings = targets_warnings(cfg, list(splits))
    seen: set[str] = set()
    for table in splits.values():
        seen.update(table.column("id").to_pylist())
    tally = _Tally()
    by_finding: Counter[str] = Counter()
    quality = augment_quality.QualityTally(cfg.seed)
    out: dict[str, pa.Table] = {}
    counts: dict[str, SplitAugment] = {}
    for name, table in splits.items():
        if name not in cfg.splits:
            out[name] = table
            counts[name] = SplitAugment(records_in=table.num_rows, augmented=False, records_out=table.num_rows)
            continue
        rows: list[dict[str, Any]] = []
        work = SplitWork()
        given = table.to_pylist()
        # (already a variant: augmenting it again would compound transforms)
        todo = [row for row in given if row.get("parent_id") is None]
        results = memo.outcomes(todo, cfg) if memo is not None else ((b"", got) for got in _each_variants(todo, cfg))
        for row in given:
            rows.append(row)
            got: _Out | ChildCrashed | None = None
            if row.get("parent_id") is None:
                got = next(results)[1]
            variants = work.account(row, got, tally, by_finding)
            for v in variants:
                q = v.pop("_q")
                if v["id"] in seen:
                    work.dropped += 1
                    continue
                seen.add(v["id"])
                rows.append(v)
                work.added += 1
                count_variant(v, tally)
                quality.add(row, v, augment_quality.VariantQuality.of(q))
        out[name] = table_from_rows(rows)
        counts[name] = work.summary(name, table.num_rows, len(rows), cfg, warnings)
    report = augment_report(cfg, counts, tally, by_finding, quality.finish(), warnings, t0)
    return out, report


def targets_warnings(cfg: AugmentConfig, names: list[str]) -> list[str]:
    """The warnings of the targeted splits (an evaluation split augmented); ValueError when one is missing from
    `names`, the splits there are."""
    missing = [s for s in cfg.splits if s not in names]
    if missing:
        raise ValueError(f"no split named {', '.join(map(repr, missing))} (splits: {', '.join(names) or 'none'})")
    return [f"augmented the evaluation split {s!r}: its scores no longer measure generalisation, and its variants "
            "resemble each other" for s in cfg.splits if s.lower() in EVAL_SPLITS]


@dataclass(slots=True)
class SplitWork:
    """What augmenting the records of one split (or of a run of them: the Ray engine's batches) came to, the
    records themselves aside: `account` takes each record's result in turn, `merge` adds a later run's."""

    sources: int = 0
    added: int = 0
    dropped: int = 0
    no_effect: int = 0
    parse_failed: int = 0
    lineage: int = 0
    skipped: int = 0
    too_large: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    why: set[str] = field(default_factory=set)

    def account(self, row: dict[str, Any], got: _Out | ChildCrashed | None, tally: _Tally,
                by_finding: Counter[str]) -> list[dict[str, Any]]:
        """Count one record's result (None: it carries lineage, and is not augmented) and return its variants
        (each with its quality under "_q"), which are not counted yet: some may be dropped as duplicates."""
        if got is None:
            self.lineage += 1
            return []
        if isinstance(got, ChildCrashed):
            self.crashed.append(row["id"])
            self.why.add(got.why)
            return []
        result, t = got
        if result.skipped:
            self.skipped += 1
            by_finding.update(result.skipped)
            return []
        if result.variants is None:
            self.too_large.append(row["id"])
            return []
        self.sources += 1
        tally.add(t)
        self.no_effect += result.no_effect
        self.parse_failed += result.parse_failed
        return result.variants

    def merge(self, other: SplitWork) -> None:
        for name in ("sources", "added", "dropped", "no_effect", "parse_failed", "lineage", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.too_large += other.too_large
        self.crashed += other.crashed
        self.why |= other.why

    def summary(self, name: str, records_in: int, records_out: int, cfg: AugmentConfig,
                warnings: list[str]) -> SplitAugment:
        """The split's counts, its warnings appended to `warnings`."""
        if self.lineage:
            warnings.append(f"{self.lineage} record(s) of {name!r} already carry lineage (parent_id); "
                            "they were kept but not augmented again")
        if self.too_large:
            warnings.append(_not_augmented(f"have a code span over max_parse_chars ({cfg.max_parse_chars:,} "
                                           "characters), which is not parsed", name, self.too_large))
        if self.crashed:
            warnings.append(_not_augmented(f"crashed the process working on their code "
                                           f"({', '.join(sorted(self.why))})", name, self.crashed))
        return SplitAugment(
            records_in=records_in, augmented=True, sources=self.sources, variants_attempted=self.sources * cfg.factor,
            variants_added=self.added, duplicates_dropped=self.dropped, no_effect=self.no_effect,
            parse_failed=self.parse_failed, too_large=len(self.too_large), parser_crashed=len(self.crashed),
            skipped_by_finding=self.skipped, records_out=records_out,
        )


def count_variant(v: dict[str, Any], tally: _Tally) -> None:
    """Count a variant that was added (by transform, template and template family)."""
    tally.by_transform[v["transform"]] += 1
    tally.by_template[v["template"] or "none"] += 1
    tally.by_family[v["template"].split("/")[0] if v["template"] else "none"] += 1


def augment_report(cfg: AugmentConfig, counts: dict[str, SplitAugment], tally: _Tally, by_finding: Counter[str],
                   quality: augment_quality.AugmentQuality, warnings: list[str], started: float) -> AugmentReport:
    """The report of an augmentation, from the splits' counts and the tallies over all of them."""
    return AugmentReport(
        config=cfg, splits=counts,
        variants_by_transform={t: tally.by_transform[t] for t in [*cfg.transforms, NO_TRANSFORM]},
        variants_by_family=dict(sorted(tally.by_family.items())),
        variants_by_template=dict(sorted(tally.by_template.items())),
        skipped_parse_failures={t: tally.skipped[t] for t in cfg.transforms},
        skipped_code_lost={t: tally.code_lost[t] for t in cfg.transforms},
        no_change={t: tally.no_change[t] for t in cfg.transforms}, templates_dropped=tally.templates_dropped,
        duplicates_dropped=sum(c.duplicates_dropped for c in counts.values()),
        skipped_by_finding=dict(sorted(by_finding.items())),
        quality=quality, warnings=warnings, seconds=round(time.perf_counter() - started, 3),
    )
