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

import functools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import xxhash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swcdata.core.isolate import ChildCrashed, stream_isolated
from swcdata.core.records import table_from_rows
from swcdata.core.text import record_id
from swcdata.solidity import declarations, lexer, treesitter
from swcdata.solidity.spans import CodeSpan, extract_code
from swcdata.steps.augment import namepools, templates
from swcdata.steps.augment import quality as augment_quality

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
    def balanced(self) -> bool:
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
    def balanced(self) -> bool:
        return all(s.balanced for s in self.splits.values())


# ------------------------------------------------------------------------------ vocabulary

# fmt: off
_EXTRA_RESERVED = frozenset([
    "this", "super", "now", "msg", "block", "tx", "abi", "require", "assert", "revert", "keccak256", "sha3",
    "selfdestruct", "suicide", "type", "max", "min", "concat", "wrap", "unwrap", "_", "lock", "constructor",
    "receive", "fallback", "emit", "event", "modifier", "function", "returns", "let", "leave", "switch", "case",
    "value", "gas", "salt",  # call options: `{value: v}`, `new C{salt: s}()`
])
_WELL_KNOWN = frozenset([
    # ERC-20 / ERC-721 / ERC-1155 / ERC-2612
    "transfer", "transferFrom", "approve", "allowance", "balanceOf", "totalSupply", "decimals", "name", "symbol",
    "increaseAllowance", "decreaseAllowance", "mint", "burn", "burnFrom", "ownerOf", "getApproved",
    "setApprovalForAll", "isApprovedForAll", "tokenURI", "supportsInterface", "onERC721Received",
    "onERC1155Received", "onERC1155BatchReceived", "balanceOfBatch", "safeBatchTransferFrom", "permit", "nonces",
    "DOMAIN_SEPARATOR", "ERC20", "ERC721", "ERC1155", "IERC20", "IERC721", "IERC1155", "ERC777",
    "Transfer", "Approval", "ApprovalForAll", "TransferSingle", "TransferBatch",
    # SafeERC20 / Address / SafeMath / ECDSA / Strings
    "safeTransfer", "safeTransferFrom", "safeApprove", "safeIncreaseAllowance", "safeDecreaseAllowance",
    "sendValue", "functionCall", "functionCallWithValue", "functionStaticCall", "functionDelegateCall", "isContract",
    "verifyCallResult", "add", "sub", "mul", "div", "mod", "tryAdd", "trySub", "tryMul", "tryDiv", "recover",
    "toEthSignedMessageHash", "toString", "toHexString",
    # Ownable / AccessControl / Pausable / ReentrancyGuard / Context
    "owner", "onlyOwner", "transferOwnership", "renounceOwnership", "OwnershipTransferred", "nonReentrant",
    "whenNotPaused", "whenPaused", "paused", "onlyRole", "hasRole", "grantRole", "revokeRole", "renounceRole",
    "getRoleAdmin", "_msgSender", "_msgData", "Ownable", "ReentrancyGuard", "Pausable", "SafeMath", "SafeERC20",
    "Context", "Initializable", "AccessControl", "_mint", "_burn", "_transfer", "_approve", "_safeMint",
    "_safeTransfer", "_setupRole", "_grantRole", "_revokeRole", "_checkOwner", "_checkRole", "_beforeTokenTransfer",
    "_afterTokenTransfer", "_spendAllowance", "_pause", "_unpause", "_transferOwnership", "_setApprovalForAll",
    "_exists", "_isApprovedOrOwner", "_setTokenURI", "_baseURI", "initializer", "onlyInitializing",
    # oracles / DEX routers commonly called without a dot
    "latestRoundData", "latestAnswer", "getReserves", "getAmountsOut", "getAmountOut",
])
# fmt: on
_RESERVED = lexer._KEEP | _EXTRA_RESERVED  # keywords, elementary types and built-ins of swcdata.solidity

_DECL_PARENTS = frozenset([
    "contract_declaration", "interface_declaration", "library_declaration", "struct_declaration", "struct_member",
    "enum_declaration", "event_definition", "event_parameter", "error_declaration", "error_parameter",
    "state_variable_declaration", "modifier_definition", "function_definition", "parameter", "variable_declaration",
    "constant_variable_declaration", "user_defined_type_definition",
])
_TYPE_DECL_PARENTS = frozenset([
    "contract_declaration", "interface_declaration", "library_declaration", "struct_declaration", "enum_declaration",
    "event_definition", "error_declaration", "user_defined_type_definition",
])
_KEY_PARENTS = frozenset(["call_struct_argument", "struct_field_assignment"])


_LEX = re.compile(
    r"""
    (//[^\n]*|/\*[\s\S]*?(?:\*/|\Z))                          # 1 comment
    |("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')                # 2 string literal (one line)
    |(\d\w*(?:\.\d\w*)?(?:(?<=[eE])[-+]\d+)?)                  # 3 number (1e18, 0xff, 1.5, 2e-3)
    |([A-Za-z_$][\w$]*)                                       # 4 word: identifier or keyword
    |(>>>=|>>>|<<=|>>=|\*\*=?|=>|->|==|!=|<=|>=|&&|\|\||\+\+|--|[-+*/%&|^]=|<<|>>|:=|\S)   # 5 punctuation
    """,
    re.VERBOSE,
)
_COMMENT, _STRING, _NUMBER, _WORD, _PUNCT = 1, 2, 3, 4, 5
Tok = tuple[int, int, int]  # kind, start, end
_WORDS_RE = re.compile(r"\w+")
_CODE_SHAPED = re.compile(r"[a-z0-9][A-Z]|_|\d")
_CODE_ITEM = re.compile(r"\s+(?:function|modifier|variable|mapping|event|array|contract|parameter|constant|struct)\b")
# NatSpec forms of an added comment: (first line, continuation, last line) around the text; one-line forms
# have only the first. `{ind}` is the declaration's indentation.
_NATSPEC: tuple[tuple[str, ...], ...] = (
    ("/// @notice {text}",),
    ("/// @dev {text}",),
    ("/** @dev {text} */",),
    ("/**", "{ind} * @dev {text}", "{ind} */"),
)
_LAYOUT_STYLES: tuple[tuple[str, str], ...] = (("expand", "    "), ("expand", "  "), ("expand", "\t"), ("compact", ""))


def _h(*parts: object) -> int:
    return xxhash.xxh3_64_intdigest("\x1f".join(map(str, parts)).encode())


# ------------------------------------------------------------------------------ per-record state


class _Cache:
    """Lexing, parsing and identifier lookups, memoised by span text for one `augment` call."""

    def __init__(self, max_parse_chars: int = treesitter.MAX_PARSE_CHARS) -> None:
        self.toks: dict[str, list[Tok]] = {}
        self.ok: dict[str, bool] = {}
        self.fcts: dict[str, declarations.Facts] = {}
        self.bfcts: dict[str, declarations.Facts] = {}
        self.max_chars = max_parse_chars

    def tokens(self, code: str) -> list[Tok]:
        t = self.toks.get(code)
        if t is None:
            t = self.toks[code] = [(m.lastindex or _PUNCT, m.start(), m.end()) for m in _LEX.finditer(code)]
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
        return self.facts(code).idents  # (records with spans over the bound are not augmented: see _variants)

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
class _Field:
    text: str
    spans: list[CodeSpan]

    @classmethod
    def of(cls, text: str) -> _Field:
        return cls(text, extract_code(text))


def _is_body(s: CodeSpan) -> bool:
    """A span with statements (layout and comments apply), not a short inline expression."""
    return s.shape != "inline" or ("{" in s.text and len(s.text) >= 20)


@dataclass(slots=True)
class _Rec:
    id: str
    fields: tuple[_Field, _Field]
    words: set[str]
    candidates: list[tuple[str, str]] | None = None  # (name, role) in first-appearance order
    has_comments: bool | None = None


@dataclass(slots=True)
class _Edit:
    spans: tuple[list[str], list[str]]  # new text of each span of the instruction / the response
    prose: Callable[[str], str] | None = None  # applied to the prose between spans (renaming)
    changed: list[tuple[str, str]] = field(default_factory=list)  # (before, after) of every changed span
    fence: frozenset[int] = frozenset()  # instruction spans to show in a Markdown fence (see _fenceable)


def _edit(rec: _Rec, new: tuple[list[str], list[str]], prose: Callable[[str], str] | None = None) -> _Edit | None:
    """The edit, or None when it changes nothing that a record id can see (ids ignore whitespace runs)."""
    changed = [(s.text, t) for f, ts in zip(rec.fields, new, strict=True) for s, t in zip(f.spans, ts, strict=True)
               if s.text != t]
    if not any(a.split() != b.split() for a, b in changed):
        return None
    return _Edit(new, prose, changed)


# ------------------------------------------------------------------------------ rename_identifiers


def _prose_stems(rec: _Rec, cache: _Cache) -> set[str]:
    """Word stems of what the record says in plain words: its prose outside the code, and the comments in
    the code. Quoted names (`x`, 'x'), camelCase/snake_case words and names followed by "function",
    "variable"... are left out: the renaming rewrites those with the code."""
    parts: list[str] = []
    for f in rec.fields:
        pos = 0
        for s in f.spans:
            parts.append(f.text[pos : s.start])
            pos = s.end
            parts += [s.text[a:b] for k, a, b in cache.tokens(s.text) if k == _COMMENT]
        parts.append(f.text[pos:])
    text = _QUOTED_NAME.sub(" ", " ".join(parts))
    text = _ITEM_MENTION.sub(" ", text)
    return {_stem(w.lower()) for w in set(_WORDS_RE.findall(text)) if not _CODE_SHAPED.search(w)}


_QUOTED_NAME = re.compile(r"`[^`\n]*`|'[\w.$()]*'|\"[\w.$()]*\"|\b\w+\(\)")
_ITEM_MENTION = re.compile(r"\b\w+(?=\s+(?:function|modifier|variable|mapping|event|array|contract|parameter|constant"
                           r"|struct)\b)")
_NAME_STOP = frozenset(["get", "set", "is", "has", "can", "do", "the", "of", "for", "and", "to", "on", "by", "new",
                        "old", "tmp", "temp", "my", "all", "from", "with", "val", "var", "num", "str"])


@functools.lru_cache(maxsize=1 << 16)
def _stem(w: str) -> str:
    for suf, rep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: len(w) - len(suf)] + rep
            break
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


def _named_in_prose(name: str, stems: set[str]) -> bool:
    """Does the prose refer to `name` in plain words: every content word of the name (camelCase and
    snake_case split, short and filler words left out) among the prose's words? ("updates the external
    dependencies" refers to `setExternalDependencies`.)"""
    words = [w for w in namepools.split_words(name) if len(w) >= 3 and w not in _NAME_STOP]
    return bool(words) and all(_stem(w) in stems for w in words)


@dataclass(slots=True)
class _Usage:
    """How the code uses a name: the evidence for the type of a name it does not declare."""

    bool_: int = 0
    addr: int = 0
    time: int = 0
    num: int = 0
    map_: int = 0
    list_: int = 0


_ARITH = frozenset(["+", "-", "*", "/", "%", "+=", "-=", "*=", "/=", "<", ">", "<=", ">=", "**"])
_COND = frozenset(["if", "require", "assert", "while"])


def _use(code: str, toks: list[Tok], j: int, u: _Usage) -> None:
    """Add what token j's use says about its name: `x.length`/`x.push` (array), `x[k]` (mapping),
    `payable(x)`, `x.transfer(v)`, `x == msg.sender`, `x != address(0)` (address), `!x`, `x && y`,
    `if (x)`, `x = true` (bool), `x + 1`, `x -= y` (number), `now > x`, `x = block.timestamp` (time)."""
    def tx(i: int) -> str:
        return code[toks[i][1] : toks[i][2]] if 0 <= i < len(toks) else ""

    prev, prev2, nxt, nxt2 = tx(j - 1), tx(j - 2), tx(j + 1), tx(j + 2)
    if nxt == "." and nxt2 in ("length", "push", "pop"):
        u.list_ += 1
    elif nxt == "[":
        u.map_ += 1
    if (prev == "(" and prev2 == "payable") or (nxt == "." and nxt2 in ("transfer", "send", "call", "balance",
                                                                         "delegatecall")):
        u.addr += 1
    if (nxt in ("=", "==", "!=") and nxt2 in ("msg", "tx") and tx(j + 4) in ("sender", "origin")) or (
            prev in ("==", "!=") and prev2 in ("sender", "origin") and tx(j - 4) in ("msg", "tx")):
        u.addr += 1
    if nxt in ("==", "!=") and nxt2 == "address":
        u.addr += 1
    if nxt not in (".", "[", "(") and (prev == "!" or nxt in ("&&", "||") or prev in ("&&", "||")
                                       or (nxt in ("=", "==", "!=") and nxt2 in ("true", "false"))
                                       or (prev == "(" and prev2 in _COND and nxt == ")")):
        u.bool_ += 1
    if ((nxt in _ARITH or nxt == "=") and (nxt2 == "now" or (nxt2 == "block" and tx(j + 4) == "timestamp"))) or (
            prev in _ARITH and (prev2 == "now" or (prev2 == "timestamp" and tx(j - 4) == "block"))):
        u.time += 1
    if (nxt in _ARITH or prev in _ARITH) and nxt not in (".", "[", "("):
        u.num += 1


_AMOUNT_WORDS = frozenset(["balance", "balances", "deposit", "deposits", "amount", "amounts", "token", "tokens",
                           "fund", "funds", "allowed", "allowance", "share", "shares", "stake", "stakes",
                           "contribution", "contributions", "credit", "credits", "reward", "rewards", "bid", "bids",
                           "payment", "payments", "invested", "spent", "paid", "ether", "eth", "wei"])
_FLAG_WORDS = frozenset(["is", "has", "whitelist", "whitelisted", "blacklist", "blacklisted", "approved", "frozen",
                         "registered", "claimed", "voted", "allowlisted", "banned", "authorized", "admins",
                         "enabled"])


def _guess_role(name: str, u: _Usage) -> str | None:
    """The pool of a name the code does not declare, from its uses; None when they do not tell."""
    if u.map_ or u.list_:
        if u.list_ or u.bool_ or u.addr:
            return None  # (an array of what? or a mapping used as something else)
        words = set(namepools.split_words(name))
        if words & _FLAG_WORDS:
            return "map_flag"
        if words & _AMOUNT_WORDS:
            return "map_amount"
        return None
    if u.bool_ and not (u.addr or u.num or u.time):
        return namepools.bool_role(name)
    if u.addr and not (u.bool_ or u.num or u.time):
        return "addr"
    if (u.num or u.time) and not (u.bool_ or u.addr):
        return namepools.num_role(name, u.time > 0)
    return None


def _value_kind(type_text: str) -> str | None:
    """The kind of a mapping's innermost value or an array's element."""
    t = type_text.strip()
    while t.startswith("mapping") and "=>" in t:
        t = t[t.index("=>") + 2 : t.rindex(")") if ")" in t else len(t)].strip()
    if t.endswith("]"):
        t = t[: t.index("[")].strip()
    return declarations.type_kind(t)


def _var_role(name: str, decls: list[declarations.Decl], structs: set[str], u: _Usage) -> str | None:
    """The pool of a declared variable from its declared type (and, for numbers, its name and use)."""
    kinds = set()
    for d in decls:
        tk = declarations.type_kind(d.type)
        vk = _value_kind(d.type) if tk in ("mapping", "array") and d.type else None
        if tk == "user" and d.type and d.type.split()[0] in structs:
            tk = "struct"
        kinds.add((tk, d.constant, vk))
    if len(kinds) != 1:
        return None  # (declared with different types in different places: not worth the risk)
    tk, constant, vk = next(iter(kinds))
    core = name.lstrip("_")
    if constant or (core.isupper() and any(c.isalpha() for c in core)):
        if tk in ("uint", "int"):
            r = namepools.num_role(name, u.time > 0)
            return "const_" + ("time" if r.startswith("time") else r if r == "rate" else "amount")
        return "const_addr" if tk == "address" else None
    if tk == "struct":
        return "record"
    roles = namepools.allowed_roles(tk, False, vk)
    if not roles:
        return None
    if tk == "bool":
        return namepools.bool_role(name)
    if len(roles) > 1:  # a number: an amount, a time, a rate or a count
        return namepools.num_role(name, u.time > 0)
    return next(iter(roles))


_VIEW_PREFIXES = ("get", "calc", "calculate", "compute", "current", "total", "view", "pending", "query", "read")
_CHECK_PREFIXES = ("is", "has", "can", "should", "check")


def _func_role(name: str, callables: list[declarations.Callable_]) -> str:
    if callables:
        view = any(c.mutability in ("view", "pure", "constant") for c in callables)
        if view:
            return "func_check" if any(c.returns_bool for c in callables) else "func_view"
        return "func_action"
    first = namepools.split_words(name)[:1]
    if first and first[0] in _CHECK_PREFIXES:
        return "func_check"
    if first and first[0] in _VIEW_PREFIXES:
        return "func_view"
    return "func_action"


def _candidates(rec: _Rec, cache: _Cache) -> list[tuple[str, str]]:
    """The record's renameable identifiers with the pool each takes its new name from (see
    swcdata.steps.augment.namepools), in first-appearance order. The pool comes from what tree-sitter says the code
    declares (`bool`, `address`, `uint`, `mapping(...)`, a function, an event, a contract...), or, for a
    name the code uses without declaring it, from how it is used; a name neither tells is not renamed, nor
    is a name that the prose refers to in plain words."""
    members: set[str] = set()
    called: set[str] = set()
    usage: dict[str, _Usage] = {}
    parents: dict[str, set[str]] = {}
    order: dict[str, None] = {}
    decls: dict[str, list[declarations.Decl]] = {}
    callables: dict[str, list[declarations.Callable_]] = {}
    for f in rec.fields:
        for s in f.spans:
            code = s.text
            toks = [t for t in cache.tokens(code) if t[0] != _COMMENT]
            for j, (kind, a, b) in enumerate(toks):
                if kind != _WORD:
                    continue
                w = code[a:b]
                if w in _RESERVED:
                    continue
                if j > 0 and code[toks[j - 1][1] : toks[j - 1][2]] == ".":
                    members.add(w)
                if j + 1 < len(toks) and code[toks[j + 1][1] : toks[j + 1][2]] == "(":
                    called.add(w)
                _use(code, toks, j, usage.setdefault(w, _Usage()))
            for ident in cache.identifiers(code):
                parents.setdefault(ident.name, set()).add(ident.parent)
                order.setdefault(ident.name)
            fx = cache.facts(code)
            for d in fx.decls:
                decls.setdefault(d.name, []).append(d)
            for c in fx.callables:
                if c.name:
                    callables.setdefault(c.name, []).append(c)
    structs = {n for n, ds in decls.items() if any(d.kind == "struct" for d in ds)}
    stems: set[str] | None = None
    out: list[tuple[str, str]] = []
    for name in order:
        core = name.lstrip("_")
        if (len(core) < 3 or name in _RESERVED or name in _WELL_KNOWN or name in members
                or not name.isascii() or "$" in name):
            continue
        ps = parents[name]
        if ps & _KEY_PARENTS and "struct_member" not in ps:
            # a key (`Bid({bidder: bidder})`, `{salt: salt}`) of a struct the code does not declare, or of
            # call options: renaming the variable of the same name would rename the key with it
            continue
        ds = decls.get(name, [])
        kinds = {d.kind for d in ds}
        u = usage.get(name, _Usage())
        role: str | None
        if kinds & {"contract", "struct", "enum", "event", "error", "modifier", "function"}:
            if len(kinds) > 1:
                continue
            (k,) = kinds
            if k == "function":
                role = _func_role(name, callables.get(name, []))
            elif k == "modifier":
                role = "modifier_only" if core.startswith("only") else "modifier_state"
            elif k == "error":
                role = None
            else:
                role = k
        elif ds:
            role = _var_role(name, ds, structs, u)
        elif core[0].isupper():
            if core.isupper() and any(c.isalpha() for c in core) and "user_defined_type" not in ps:
                guess = _guess_role(name, u) or ""  # an UPPER_CASE constant declared elsewhere
                role = ("const_addr" if guess == "addr" else "const_time" if guess.startswith("time")
                        else "const_rate" if guess == "rate"
                        else "const_amount" if guess in ("amount", "count", "index") else None)
            else:
                role = None  # an external type, interface or event: part of an API the code does not own
        elif "modifier_invocation" in ps:
            role = "modifier_only" if core.startswith("only") else "modifier_state"
        elif name in called:  # a function the code does not declare: renamed only when its name says it reads
            role = _func_role(name, [])
            role = role if role != "func_action" else None  # (`sqrt(x)` must not become `releaseFunds(x)`)
        else:
            role = _guess_role(name, u)
        if role is None:
            continue
        if stems is None:
            stems = _prose_stems(rec, cache)
        if _named_in_prose(name, stems):
            continue  # the prose says what it is in plain words: a new name would contradict it
        out.append((name, role))
    return out


def _rename_map(rec: _Rec, key: int, cands: list[tuple[str, str]]) -> dict[str, str]:
    used: set[str] = set()
    mapping: dict[str, str] = {}
    orders: dict[str, list[str]] = {}
    for name, role in cands:
        pool = orders.get(role)
        if pool is None:
            pool = orders[role] = sorted(namepools.POOLS[role], key=lambda n: (_h(key, role, n), n))
        prefix = name[: len(name) - len(name.lstrip("_"))]
        new = None
        for suffix in ("", "2", "3", "4", "5", "6", "7", "8", "9"):
            for base in pool:
                cand = prefix + base + suffix
                if cand not in used and cand.casefold() not in rec.words and cand not in _RESERVED:
                    new = cand
                    break
            if new:
                break
        if new is None:  # pragma: no cover - needs hundreds of identifiers in one record
            continue
        used.add(new)
        mapping[name] = new
    return mapping


_NAME_RE = re.compile(r"(?<![\w$.])([A-Za-z_$][\w$]*)(?![\w$])")


def _prose_renamer(mapping: dict[str, str]) -> Callable[[str], str]:
    """Rename identifiers in prose where the prose clearly means the code: quoted (`x`, 'x', "x"),
    called (x()), named as a code item (the x function) or code-shaped (camelCase, snake_case, x1)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        new = mapping.get(name)
        if new is None:
            return name
        text, a, b = m.string, m.start(1), m.end(1)
        before = text[a - 1] if a > 0 else ""
        after = text[b] if b < len(text) else ""
        if (_CODE_SHAPED.search(name.lstrip("_")) or name.startswith("_")
                or (before in ("`", "'", '"') and after == before) or "`" in (before, after) or after == "("
                or _CODE_ITEM.match(text, b)):
            return new
        return name

    def rename(text: str) -> str:
        return _NAME_RE.sub(repl, text) if text else text

    return rename


def _rename_code(code: str, toks: list[Tok], mapping: dict[str, str], prose: Callable[[str], str]) -> str:
    out: list[str] = []
    pos = 0
    prev = ""
    for kind, a, b in toks:
        if kind == _COMMENT:
            new = prose(code[a:b])
            if new != code[a:b]:
                out += [code[pos:a], new]
                pos = b
            continue
        if kind == _WORD and prev != ".":
            new_name = mapping.get(code[a:b])
            if new_name is not None:
                out += [code[pos:a], new_name]
                pos = b
        prev = code[a:b]
    out.append(code[pos:])
    return "".join(out)


def _rename(rec: _Rec, key: int, cache: _Cache) -> _Edit | None:
    if rec.candidates is None:
        rec.candidates = _candidates(rec, cache)
    if not rec.candidates:
        return None
    mapping = _rename_map(rec, key, rec.candidates)
    if not mapping:  # pragma: no cover
        return None
    prose = _prose_renamer(mapping)
    new = tuple([_rename_code(s.text, cache.tokens(s.text), mapping, prose) for s in f.spans] for f in rec.fields)
    return _edit(rec, (new[0], new[1]), prose)


# ------------------------------------------------------------------------------ reflow_layout


def _block_braces(code: str, toks: list[Tok]) -> set[int]:
    """Indices of `{`/`}` tokens that delimit statement blocks (content with `;` or a nested block),
    as opposed to call options (`{value: x}`), struct literals, enums and empty bodies."""
    blocks: set[int] = set()
    stack: list[list[Any]] = []  # [index of "{", has statements]
    for i, (kind, a, b) in enumerate(toks):
        if kind != _PUNCT:
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
        if kind == _COMMENT:
            continue
        t = texts[i]
        if kind == _PUNCT:
            if t in _BINARY:
                out[i] = True
            elif t in ("+", "-") and prev is not None:
                pk, pt = toks[prev][0], texts[prev]
                out[i] = (pk in (_NUMBER, _STRING) or (pk == _WORD and pt not in _NOT_OPERAND)
                          or pt in (")", "]"))
        prev = i
    return out


def _spaced(i: int, toks: list[Tok], texts: list[str], binary: list[bool], blocks: set[int], gap: str) -> str:
    """The space between tokens i-1 and i on one line, in the canonical spaced style."""
    pk, k = toks[i - 1][0], toks[i][0]
    prev, cur = texts[i - 1], texts[i]
    if pk == _COMMENT or k == _COMMENT:
        return gap
    if k == _PUNCT and cur in _TIGHT_BEFORE:
        return ""
    if pk == _PUNCT and prev in _TIGHT_AFTER:
        return ""
    if prev == "," or binary[i] or binary[i - 1]:
        return " "
    if cur == "{" and (prev == ")" or (pk == _WORD and i in blocks)):
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
        if any(k == _COMMENT and texts[i].startswith("//") for i, (k, _, _) in enumerate(toks)):
            return code
        for i in range(1, n):
            if toks[i - 1][0] == _COMMENT or toks[i][0] == _COMMENT:
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
            if nl == 0 and not (kind == _COMMENT and t.startswith("//")) and (
                    (prev == "{" and i - 1 in blocks) or (t == "}" and i in blocks)
                    or (prev == ";" and (not stack or stack[-1] == "{"))
                    or (prev == "}" and i - 1 in blocks and t not in _NO_BREAK_AFTER_BLOCK)):
                nl = 1
            if nl:
                depth = len(stack) - (1 if kind == _PUNCT and t in _CLOSE and stack else 0)
                gaps[i] = "\n" * min(nl, 2) + unit * depth
            else:
                gaps[i] = _spaced(i, toks, texts, binary, blocks, gaps[i])
        if kind == _PUNCT:
            if t in _OPEN:
                stack.append(t)
            elif t in _CLOSE and stack:
                stack.pop()
    return "".join(g + t for g, t in zip(gaps, [*texts, ""], strict=True)).strip()


def _layout(rec: _Rec, key: int, cache: _Cache) -> _Edit | None:
    for mode, unit in sorted(_LAYOUT_STYLES, key=lambda s: (_h(key, "layout", *s), s)):
        new = tuple([_reflow(s.text, cache.tokens(s.text), mode, unit) if _is_body(s) else s.text for s in f.spans]
                    for f in rec.fields)
        e = _edit(rec, (new[0], new[1]))
        if e is not None:
            return e
    return None


# ------------------------------------------------------------------------------ toggle_comments


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
    if not any(k == _COMMENT for k, _, _ in toks):
        return code
    n = len(toks)
    gaps = [code[: toks[0][1]]] + [code[toks[i - 1][2] : toks[i][1]] for i in range(1, n)] + [code[toks[-1][2] :]]
    out_toks: list[str] = []
    out_gaps = [gaps[0]]
    last_kept = max((i for i, t in enumerate(toks) if t[0] != _COMMENT), default=-1)
    lead = ""  # the indentation of the first kept token when comments before it went
    for i, (kind, a, b) in enumerate(toks):
        if kind == _COMMENT:
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


def _fenceable(f: _Field, i: int) -> bool:
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


def _fence_pieces(before: str, code: str, after: str) -> tuple[str, str, str]:
    """The prose before, the fenced code and the prose after, for a span shown in a fence (see _fenceable)."""
    q = before[-1:] if before[-1:] in ("'", "`", '"') and after[:1] == before[-1:] else ""
    if q:
        before, after = before[:-1], after[1:]
    b = before.rstrip()
    a = after.lstrip(" \t")
    if a[:1] in (".", ","):
        a = a[1:]
    a = a.strip()
    return (b + "\n\n" if b else ""), f"```solidity\n{code}\n```", ("\n\n" + a if a else "")


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


def _comments(rec: _Rec, key: int, cache: _Cache) -> _Edit | None:
    ins, resp = rec.fields
    if rec.has_comments is None:  # (the instruction's: the response's comments are part of the answer)
        rec.has_comments = any(k == _COMMENT for s in ins.spans for k, _, _ in cache.tokens(s.text))
    fence: set[int] = set()
    if rec.has_comments:
        new = [_strip_comments(s.text, cache.tokens(s.text)) for s in ins.spans]
    else:
        new = []
        for i, s in enumerate(ins.spans):
            if not _is_body(s):
                new.append(s.text)
                continue
            cs = cache.facts(s.text, bodies=True).callables
            text, need = _insert_comments(s.text, cs, _h(key, "comments", i), _fenceable(ins, i), s.shape == "fence")
            new.append(text)
            if need:
                fence.add(i)
    e = _edit(rec, (new, [s.text for s in resp.spans]))
    if e is not None:
        e.fence = frozenset(fence)
    return e


_TRANSFORM_FNS: dict[str, Callable[[_Rec, int, _Cache], _Edit | None]] = {
    "rename_identifiers": _rename,
    "reflow_layout": _layout,
    "toggle_comments": _comments,
}


# ------------------------------------------------------------------------------ assembling a variant


def _rebuild(f: _Field, new: list[str], prose: Callable[[str], str] | None, a: int, b: int,
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
class _Frame:
    """Where the instruction's main code sits: the span index and the code region (with its fence or
    quotes)."""

    span: int
    start: int
    end: int


def _frame(f: _Field) -> _Frame | None:
    """The instruction's main code: its one span with statements (None when it has none or several)."""
    bodies = [i for i, s in enumerate(f.spans) if _is_body(s)]
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
    return _Frame(i, a, b)


_OBJ = {"function": "function", "constructor": "constructor", "modifier": "modifier", "fallback": "fallback function",
        "receive": "receive function"}


def _obj(code: str, cache: _Cache) -> str:
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
class _Plan:
    """How the record's instruction is rewritten: its family, main code, request and what the code is."""

    family: str
    frame: _Frame
    request: templates.Request
    obj: str


def _instruction(f: _Field, new: list[str], prose: Callable[[str], str] | None, plan: _Plan | None,
                 tpl: templates.Template | None, fence: frozenset[int], key: int) -> str:
    if tpl is None or plan is None:
        return _rebuild(f, new, prose, 0, len(f.text), fence)
    frame, req = plan.frame, plan.request

    def text(parts: tuple[templates.Part, ...]) -> str:
        return "".join(p if isinstance(p, str) else _rebuild(f, new, prose, p[0], p[1]) for p in parts)

    code = _rebuild(f, new, prose, frame.start, frame.end, fence)
    return templates.render(tpl, code, obj=plan.obj, topics=req.topics, focus=[text(x) for x in req.focus],
                            before=[text(x) for x in req.before], after=[text(x) for x in req.after], key=key)


# ------------------------------------------------------------------------------ the step


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
    import orjson

    from swcdata.steps.validate import ValidateConfig, check_lines

    line = orjson.dumps({"instruction": row["instruction"], "response": row["response"], "category": row["category"]})
    vcfg = ValidateConfig(max_parse_chars=cfg.max_parse_chars, workers=1, max_chars=10**9, min_chars=0)
    return {rule for rule, *_ in check_lines("augment", [(1, line)], vcfg, batch=False).findings}


def _variants(row: dict[str, Any], cfg: AugmentConfig, cache: _Cache, tally: _Tally) -> _Result:
    """The variants of one record (see _Result). A record with a code span too long to parse, or with a
    validate finding named in ``skip_findings``, is not augmented."""
    rid = row["id"]
    instr, resp = _Field.of(row["instruction"]), _Field.of(row["response"])
    if any(len(s.text) > cfg.max_parse_chars for f in (instr, resp) for s in f.spans):
        return _Result(None)
    if cfg.skip_findings:
        hit = _findings(row, cfg) & set(cfg.skip_findings)
        if hit:
            return _Result(None, skipped=tuple(sorted(hit)))
    words = {w.casefold() for w in _WORDS_RE.findall(row["instruction"] + " " + row["response"])}
    rec = _Rec(rid, (instr, resp), words)
    plan: _Plan | None = None
    family = templates.family_for(row["instruction"], row["response"]) if cfg.templates else None
    frame = _frame(instr) if family else None
    if family and frame is not None:
        req = templates.analyse(instr.text, instr.spans, frame.span, (frame.start, frame.end), family)
        if req is not None:
            plan = _Plan(family, frame, req, _obj(instr.spans[frame.span].text, cache))
    order = sorted(cfg.transforms, key=lambda t: (_h(cfg.seed, rid, "transform", t), t))
    out: list[dict[str, Any]] = []
    res = _Result(out)
    for k in range(cfg.factor):
        tpl = None
        if plan is not None:
            tpl = templates.choose(rid, plan.family, k, cfg.seed, code_first=not plan.request.before)
        edit: _Edit | None = None
        used = NO_TRANSFORM
        failed = False
        texts: list[str] = []
        for t in order[k % len(order) :] + order[: k % len(order)]:
            e = _TRANSFORM_FNS[t](rec, _h(cfg.seed, rid, k, t), cache)
            if e is None:
                tally.no_change[t] += 1
                continue
            if any(cache.parses(before) and not cache.parses(after) for before, after in e.changed):
                tally.skipped[t] += 1
                failed = True
                continue
            texts = [_rebuild(f, ns, e.prose, 0, len(f.text), e.fence if i == 0 else frozenset())
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
        key = _h(cfg.seed, rid, k, "focus")
        new_instr = _instruction(instr, spans[0], prose, plan, tpl, fence, key)
        if tpl is not None and sorted(x.text for x in extract_code(new_instr)) != sorted(spans[0]):
            # the template's words changed where the extractor finds code (prose read as code after a
            # truncated block): the variant keeps the record's own wording
            tally.templates_dropped += 1
            tpl = None
            new_instr = _instruction(instr, spans[0], prose, plan, None, fence, key)
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
    cache = _Cache(cfg.max_parse_chars)
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


def _not_augmented(what: str, name: str, ids: list[str]) -> str:
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5:,} more" if len(ids) > 5 else "")
    return f"{len(ids):,} record(s) of {name!r} {what}: kept, not augmented (ids: {shown})"


def augment(splits: dict[str, pa.Table], config: AugmentConfig | None = None
            ) -> tuple[dict[str, pa.Table], AugmentReport]:
    """Augment the targeted splits (``config.splits``); return every split (untouched ones as they
    came) and a report. Pure: no I/O, no printing. Raises ValueError when a targeted split is missing."""
    cfg = config or AugmentConfig()
    t0 = time.perf_counter()
    missing = [s for s in cfg.splits if s not in splits]
    if missing:
        raise ValueError(f"no split named {', '.join(map(repr, missing))} (splits: {', '.join(splits) or 'none'})")
    warnings: list[str] = []
    for s in cfg.splits:
        if s.lower() in EVAL_SPLITS:
            warnings.append(f"augmented the evaluation split {s!r}: its scores no longer measure generalisation, "
                            "and its variants resemble each other")
    seen: set[str] = set()
    for table in splits.values():
        seen.update(table.column("id").to_pylist())
    tally = _Tally()
    by_finding: Counter[str] = Counter()
    measured: list[tuple[dict[str, Any], dict[str, Any], augment_quality.VariantQuality]] = []
    out: dict[str, pa.Table] = {}
    counts: dict[str, SplitAugment] = {}
    dropped_total = 0
    for name, table in splits.items():
        if name not in cfg.splits:
            out[name] = table
            counts[name] = SplitAugment(records_in=table.num_rows, augmented=False, records_out=table.num_rows)
            continue
        rows: list[dict[str, Any]] = []
        sources = added = dropped = no_effect = parse_failed = lineage = skipped = 0
        too_large: list[str] = []
        crashed: list[str] = []
        why: set[str] = set()
        given = table.to_pylist()
        # (already a variant: augmenting it again would compound transforms)
        results = _each_variants([row for row in given if row.get("parent_id") is None], cfg)
        for row in given:
            rows.append(row)
            if row.get("parent_id") is not None:
                lineage += 1
                continue
            got = next(results)
            if isinstance(got, ChildCrashed):
                crashed.append(row["id"])
                why.add(got.why)
                continue
            result, t = got
            if result.skipped:
                skipped += 1
                by_finding.update(result.skipped)
                continue
            if result.variants is None:
                too_large.append(row["id"])
                continue
            sources += 1
            tally.add(t)
            no_effect += result.no_effect
            parse_failed += result.parse_failed
            for v in result.variants:
                q = v.pop("_q")
                if v["id"] in seen:
                    dropped += 1
                    continue
                seen.add(v["id"])
                rows.append(v)
                measured.append((row, v, augment_quality.VariantQuality.of(q)))
                added += 1
                tally.by_transform[v["transform"]] += 1
                tally.by_template[v["template"] or "none"] += 1
                tally.by_family[v["template"].split("/")[0] if v["template"] else "none"] += 1
        if lineage:
            warnings.append(f"{lineage} record(s) of {name!r} already carry lineage (parent_id); "
                            "they were kept but not augmented again")
        if too_large:
            warnings.append(_not_augmented(f"have a code span over max_parse_chars ({cfg.max_parse_chars:,} "
                                           "characters), which is not parsed", name, too_large))
        if crashed:
            warnings.append(_not_augmented(f"crashed the process working on their code ({', '.join(sorted(why))})",
                                           name, crashed))
        dropped_total += dropped
        out[name] = table_from_rows(rows)
        counts[name] = SplitAugment(
            records_in=table.num_rows, augmented=True, sources=sources, variants_attempted=sources * cfg.factor,
            variants_added=added, duplicates_dropped=dropped, no_effect=no_effect, parse_failed=parse_failed,
            too_large=len(too_large), parser_crashed=len(crashed), skipped_by_finding=skipped, records_out=len(rows),
        )
    report = AugmentReport(
        config=cfg, splits=counts,
        variants_by_transform={t: tally.by_transform[t] for t in [*cfg.transforms, NO_TRANSFORM]},
        variants_by_family=dict(sorted(tally.by_family.items())),
        variants_by_template=dict(sorted(tally.by_template.items())),
        skipped_parse_failures={t: tally.skipped[t] for t in cfg.transforms},
        skipped_code_lost={t: tally.code_lost[t] for t in cfg.transforms},
        no_change={t: tally.no_change[t] for t in cfg.transforms}, templates_dropped=tally.templates_dropped,
        duplicates_dropped=dropped_total, skipped_by_finding=dict(sorted(by_finding.items())),
        quality=augment_quality.summarise(measured, cfg.seed), warnings=warnings,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return out, report
