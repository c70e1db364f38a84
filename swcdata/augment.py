"""`augment`: more training records from the train split, each with its lineage.

For every record of a targeted split (``train`` unless told otherwise) the step makes ``factor``
variants. Variant ``k`` applies one code-preserving transform to every code span of *both* fields
(the same way in the instruction and the response) and, where the record's task family is
recognised, rephrases the instruction with a template of that family (see
:mod:`swcdata.templates`). The response keeps answering the same question, and the category never
changes.

Transforms (chosen per record and ``k`` by a hash of the seed and the record id, never ``random``):

* ``rename_identifiers``: a consistent renaming of the contract's own identifiers (found with
  tree-sitter) to names from a curated pool, in the code of both fields and where the prose quotes
  them (`` `name` ``, ``'name'``, ``name()``, camelCase/snake_case names). Never renamed: keywords,
  types, built-ins (``msg.sender``, ``block``, ``transfer``, ``keccak256``, ``this``, ...), any name
  used after a ``.`` (members of external objects: ``token.transfer``, ``s.level``), external
  types and events (capitalised names the code does not declare: ``IERC20``, ``Transfer``) and the
  well-known names of ERC-20/721, Ownable, SafeMath, ReentrancyGuard, Pausable and AccessControl.
* ``reflow_layout``: whitespace between tokens only: one statement per line, indentation by depth
  (4 spaces, 2 spaces or tabs) and canonical spacing (after commas, around binary operators), or a
  compact one-line form without spaces inside brackets (only when there is no ``//`` comment).
* ``toggle_comments``: in the instruction's code only, removes every comment when it has some,
  otherwise inserts neutral comments (``// function withdraw``) above each declaration (inside the
  first body when the code is not fenced, so that it still starts with code), or one for the whole
  snippet. The response is the answer: its comments often are the explanation (``// fixed: checks
  before the call (SWC-107)``), so they are never touched.

Every transformed span is parsed again with tree-sitter: when a span that parsed before does not
parse after, the record is skipped for that transform (counted in ``skipped_parse_failures``) and
the next transform in the record's order is tried. The same happens (``skipped_code_lost``) when
the transformed text no longer yields the same code spans from :func:`swcdata.solidity.extract_code`,
so later steps (validate, dedup, audit) still see the variant's code as code. A change that only
moves line breaks is no change here: record ids ignore whitespace runs, so such a variant would be
the same record; a transform counts as changing a record only when the id can see it.

tree-sitter is C and can crash on pathological code, so a record with a code span longer than
``max_parse_chars`` is not parsed and not augmented (``too_large``), and the work on the records runs
in a single-use child process (:func:`swcdata.isolate.stream_isolated`): a record during which it
dies is kept but not augmented (``parser_crashed``) and a fresh child goes on with the next one. Both
are named in the report's warnings.

Variants are then deduplicated by id against every record of every split and against each other;
what was dropped is counted. Records that already carry lineage are kept but not augmented again.
Splits that are not targeted come back unchanged. The function does no I/O and prints nothing.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import xxhash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swcdata import solidity, templates
from swcdata.isolate import ChildCrashed, stream_isolated
from swcdata.records import table_from_rows
from swcdata.solidity import CodeSpan
from swcdata.text import record_id

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
    max_parse_chars: int = Field(solidity.MAX_PARSE_CHARS, ge=1,
                                 description="A record with a code span longer than this (characters) is not "
                                             "augmented: tree-sitter can crash on huge spans.")

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
    "getRoleAdmin", "_msgSender", "_msgData", "_mint", "_burn", "_transfer", "_approve", "_safeMint",
    "_safeTransfer", "_setupRole", "_grantRole", "_revokeRole", "_checkOwner", "_checkRole", "_beforeTokenTransfer",
    "_afterTokenTransfer", "_spendAllowance", "_pause", "_unpause", "_transferOwnership", "_setApprovalForAll",
    "_exists", "_isApprovedOrOwner", "_setTokenURI", "_baseURI", "initializer", "onlyInitializing",
    # oracles / DEX routers commonly called without a dot
    "latestRoundData", "latestAnswer", "getReserves", "getAmountsOut", "getAmountOut",
])
# fmt: on
_RESERVED = solidity._KEEP | _EXTRA_RESERVED  # keywords, elementary types and built-ins of swcdata.solidity

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

# fmt: off
_POOLS: dict[str, tuple[str, ...]] = {
    "func": (
        "processPayment", "settleAccount", "executePayout", "claimReward", "releaseFunds", "distributeShares",
        "updateLedger", "handleDeposit", "finalizeRound", "collectFees", "redeemShares", "payoutWinner",
        "refundBidder", "sweepBalance", "allocateTokens", "registerMember", "closePosition", "rebalancePool",
        "withdrawStake", "depositCollateral", "settleTrade", "creditAccount", "debitAccount", "startAuction",
        "endAuction", "placeBid", "buyTickets", "drawWinner", "lockFunds", "unlockFunds", "harvestYield",
        "liquidatePosition", "repayLoan", "borrowAssets", "mintShares", "burnShares", "setRate", "updatePrice",
        "configureFees", "pauseSale", "resumeSale", "forwardPayment", "splitRevenue", "vestTokens",
        "releaseVested", "swapAssets", "bridgeOut", "bridgeIn", "submitOrder", "cancelOrder",
    ),
    "modifier": (
        "onlyAdmin", "onlyOperator", "onlyManager", "onlyGovernor", "whenActive", "whenOpen", "onlyKeeper",
        "onlyTreasurer", "onlyController", "whenLive", "onlyCurator", "onlyGuardian", "onlyMinter", "whenUnlocked",
    ),
    "bool": (
        "success", "sent", "paid", "done", "settled", "approved", "isActive", "isOpen", "locked", "finalized",
        "enabled", "valid", "accepted", "delivered", "executed", "claimedFlag",
    ),
    "addr": (
        "recipient", "beneficiary", "account", "operator", "treasuryWallet", "feeRecipient", "winner", "bidder",
        "seller", "buyer", "payee", "admin", "manager", "target", "receiver", "custodian", "depositor", "claimant",
    ),
    "num": (
        "payout", "stake", "credit", "feeAmount", "shareAmount", "quota", "limitAmount", "total", "remaining",
        "pending", "bidAmount", "entryFee", "roundId", "unitPrice", "supplyCap", "owed", "collateral", "debt",
        "principal", "interest", "deadline", "startTime", "endTime", "allocation", "epoch", "ticketPrice", "jackpot",
        "prizePool", "highestBid", "minBid", "totalStaked", "totalDeposits", "delta", "fee", "rate", "amountDue",
        "reward", "netAmount", "grossAmount", "cap",
    ),
    "map": (
        "deposits", "holdings", "creditOf", "stakeOf", "depositOf", "rewardOf", "lastClaim", "owedTo", "sharesOf",
        "claimedBy", "ledger", "escrowOf", "pendingOf", "allowanceOf", "contributions", "refunds",
    ),
    "list": (
        "participants", "payees", "members", "recipientList", "bidders", "holderList", "queue", "entries", "orders",
        "tickets", "claims", "investors",
    ),
    "var": (
        "payout", "stake", "credit", "reserve", "treasury", "vault", "ledger", "counter", "total", "remaining",
        "pending", "escrow", "collateral", "position", "record", "entry", "details", "config", "snapshot", "pool",
        "target", "recipient", "account", "beneficiary", "operator", "winner", "quota", "allocation", "holding",
        "deposit", "claim", "order", "ticket", "round", "share",
    ),
    "const": (
        "MAX_PAYOUT", "FEE_RATE", "MIN_DEPOSIT", "LOCK_PERIOD", "TREASURY_ADDRESS", "BASE_UNIT", "REWARD_RATE",
        "MAX_SUPPLY_CAP", "ROUND_LENGTH", "GRACE_PERIOD", "PRECISION", "MIN_STAKE", "MAX_BID", "TICKET_PRICE",
        "FEE_DENOMINATOR", "VESTING_PERIOD", "MAX_PARTICIPANTS", "DEFAULT_RATE",
    ),
    "type": (
        "Vault", "Treasury", "Escrow", "Crowdsale", "Lottery", "Auction", "Registry", "StakingPool", "Marketplace",
        "Exchange", "Fundraiser", "Wallet", "Ledger", "Bank", "Raffle", "Game", "Distributor", "Splitter",
        "Position", "Order", "Bid", "Ticket", "Member", "Round",
    ),
    "event": (
        "FundsReleased", "PaymentMade", "Deposited", "Withdrawn", "RewardClaimed", "RoundClosed", "BidPlaced",
        "WinnerPaid", "SharesMinted", "FeesCollected", "PositionClosed", "OrderFilled", "StakeUpdated",
        "RefundIssued", "PriceUpdated",
    ),
}
# fmt: on

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
_DECL_KW = {"function": "function", "modifier": "modifier", "constructor": "", "receive": "", "fallback": "",
            "contract": "contract", "interface": "interface", "library": "library"}

# (line comment, block comment, snippet line comment, snippet block comment)
_COMMENT_STYLES: tuple[tuple[str, str, str, str], ...] = (
    ("// {kind} {name}", "/* {kind} {name} */", "// code under review", "/* code under review */"),
    ("/// @dev {kind} {name}", "/** @dev {kind} {name} */", "// excerpt", "/* excerpt */"),
    ("// ---- {name} ----", "/* ---- {name} ---- */", "// ---- snippet ----", "/* ---- snippet ---- */"),
    ("// {name}", "/* {name} */", "// Solidity excerpt", "/* Solidity excerpt */"),
)
_LAYOUT_STYLES: tuple[tuple[str, str], ...] = (("expand", "    "), ("expand", "  "), ("expand", "\t"), ("compact", ""))


def _h(*parts: object) -> int:
    return xxhash.xxh3_64_intdigest("\x1f".join(map(str, parts)).encode())


# ------------------------------------------------------------------------------ per-record state


class _Cache:
    """Lexing, parsing and identifier lookups, memoised by span text for one `augment` call."""

    def __init__(self, max_parse_chars: int = solidity.MAX_PARSE_CHARS) -> None:
        self.toks: dict[str, list[Tok]] = {}
        self.ok: dict[str, bool] = {}
        self.idents: dict[str, list[solidity.Identifier]] = {}
        self.max_chars = max_parse_chars

    def tokens(self, code: str) -> list[Tok]:
        t = self.toks.get(code)
        if t is None:
            t = self.toks[code] = [(m.lastindex or _PUNCT, m.start(), m.end()) for m in _LEX.finditer(code)]
        return t

    def parses(self, code: str) -> bool:
        ok = self.ok.get(code)
        if ok is None:
            try:
                ok = solidity.parse(code, max_chars=self.max_chars).ok
            except solidity.CodeTooLarge:  # (a transform grew a span past the bound: it cannot be checked)
                ok = False
            self.ok[code] = ok
        return ok

    def identifiers(self, code: str) -> list[solidity.Identifier]:
        ids = self.idents.get(code)
        if ids is None:
            try:
                ids = solidity.identifier_nodes(code, max_chars=self.max_chars)
            except solidity.CodeTooLarge:  # (records with such spans are not augmented: see _variants)
                ids = []
            self.idents[code] = ids
        return ids


@dataclass(slots=True)
class _Field:
    text: str
    spans: list[CodeSpan]
    line_start: list[bool]  # does the span start a line of the text?

    @classmethod
    def of(cls, text: str) -> _Field:
        spans = solidity.extract_code(text)
        return cls(text, spans, [s.start == 0 or text[s.start - 1] == "\n" for s in spans])


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


def _edit(rec: _Rec, new: tuple[list[str], list[str]], prose: Callable[[str], str] | None = None) -> _Edit | None:
    """The edit, or None when it changes nothing that a record id can see (ids ignore whitespace runs)."""
    changed = [(s.text, t) for f, ts in zip(rec.fields, new, strict=True) for s, t in zip(f.spans, ts, strict=True)
               if s.text != t]
    if not any(a.split() != b.split() for a, b in changed):
        return None
    return _Edit(new, prose, changed)


# ------------------------------------------------------------------------------ rename_identifiers


def _candidates(rec: _Rec, cache: _Cache) -> list[tuple[str, str]]:
    """The record's renameable identifiers with their role (func, modifier, var, const, type, event)."""
    members: set[str] = set()
    called: set[str] = set()
    typed: dict[str, str] = {}
    used_as: dict[str, str] = {}
    parents: dict[str, set[str]] = {}
    order: dict[str, None] = {}
    for f in rec.fields:
        for s in f.spans:
            code = s.text
            toks = [t for t in cache.tokens(code) if t[0] != _COMMENT]
            for j, (kind, a, b) in enumerate(toks):
                if kind != _WORD:
                    continue
                if j > 0 and code[toks[j - 1][1] : toks[j - 1][2]] == ".":
                    members.add(code[a:b])
                if j + 1 < len(toks) and code[toks[j + 1][1] : toks[j + 1][2]] == "(":
                    called.add(code[a:b])
                if code[a:b] not in typed:
                    vtype = _declared_type(code, toks, j)
                    if vtype:
                        typed[code[a:b]] = vtype
                    else:
                        guess = _usage_type(code, toks, j)
                        if guess:
                            used_as.setdefault(code[a:b], guess)
            for ident in cache.identifiers(code):
                parents.setdefault(ident.name, set()).add(ident.parent)
                order.setdefault(ident.name)
    out: list[tuple[str, str]] = []
    for name in order:
        core = name.lstrip("_")
        if (len(name) < 2 or not core or name in _RESERVED or name in _WELL_KNOWN or name in members
                or not name.isascii() or "$" in name):
            continue
        ps = parents[name]
        if ps & _KEY_PARENTS and "struct_member" not in ps:
            # a key (`Bid({bidder: bidder})`, `{salt: salt}`) of a struct the code does not declare, or of
            # call options: renaming the variable of the same name would rename the key with it
            continue
        if core.isupper() and any(c.isalpha() for c in core):
            if "user_defined_type" in ps and not ps & _TYPE_DECL_PARENTS:
                continue  # ERC20, IERC721: an external type written in capitals
            role = "const"
        elif core[0].isupper():
            if not ps & _TYPE_DECL_PARENTS:
                continue  # an external type, interface or event: part of an API the code does not own
            role = "event" if "event_definition" in ps else "type"
        elif ps & {"modifier_definition", "modifier_invocation"}:
            role = "modifier"
        elif "function_definition" in ps or name in called:
            role = "func"
        else:
            role = typed.get(name) or used_as.get(name, "var")
        out.append((name, role))
    return out


_DECL_SKIP = frozenset(["public", "private", "internal", "external", "constant", "immutable", "memory", "storage",
                        "calldata", "payable", "indexed", "override", "transient"])
_NUM_TYPE = re.compile(r"u?int\d*\Z")


def _declared_type(code: str, toks: list[Tok], j: int) -> str | None:
    """The pool for a name declared at token j (`bool ok`, `address payable to`, `uint256 public x`,
    `mapping(...) balances`, `uint[] list`), from the tokens before it; None when it is not a declaration."""
    i = j - 1
    while i >= 0 and toks[i][0] == _WORD and code[toks[i][1] : toks[i][2]] in _DECL_SKIP:
        i -= 1
    if i < 0:
        return None
    t = code[toks[i][1] : toks[i][2]]
    if t == "bool":
        return "bool"
    if t == "address":
        return "addr"
    if _NUM_TYPE.match(t):
        return "num"
    if t == "]":
        return "list"
    if t == ")":
        depth = 0
        while i >= 0:
            c = code[toks[i][1] : toks[i][2]]
            depth += c == ")"
            depth -= c == "("
            if depth == 0:
                break
            i -= 1
        if i > 0 and code[toks[i - 1][1] : toks[i - 1][2]] == "mapping":
            return "map"
    return None


_ARITH = frozenset(["+", "-", "*", "/", "%", "+=", "-=", "*=", "/=", "<", ">", "<=", ">=", "**"])


def _usage_type(code: str, toks: list[Tok], j: int) -> str | None:
    """A guess of the pool for an undeclared name from how token j uses it: `x.length` (list), `x[k]`
    (map), `payable(x)`, `x.transfer(...)`, `x = msg.sender` (addr), `x + 1`, `x -= y` (num)."""
    def tx(i: int) -> str:
        return code[toks[i][1] : toks[i][2]] if 0 <= i < len(toks) else ""

    nxt, nxt2 = tx(j + 1), tx(j + 2)
    if nxt == "." and nxt2 == "length":
        return "list"
    if nxt == "[":
        return "map"
    if (tx(j - 1) == "(" and tx(j - 2) == "payable") or (nxt == "." and nxt2 in ("transfer", "send", "call")):
        return "addr"
    if nxt == "=" and tx(j + 2) in ("msg", "tx") and tx(j + 4) in ("sender", "origin"):
        return "addr"
    if nxt in _ARITH or tx(j - 1) in _ARITH:
        return "num"
    return None


def _rename_map(rec: _Rec, key: int, cands: list[tuple[str, str]]) -> dict[str, str]:
    used: set[str] = set()
    mapping: dict[str, str] = {}
    orders: dict[str, list[str]] = {}
    for name, role in cands:
        pool = orders.get(role)
        if pool is None:
            pool = orders[role] = sorted(_POOLS[role], key=lambda n: (_h(key, role, n), n))
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
    for i, (kind, a, b) in enumerate(toks):
        if kind == _COMMENT:
            out_gaps[-1] = _merge_gap(out_gaps[-1], gaps[i + 1], not out_toks, i > last_kept)
        else:
            out_toks.append(code[a:b])
            out_gaps.append(gaps[i + 1])
    return "".join(g + t for g, t in zip(out_gaps, [*out_toks, ""], strict=True)).strip()


def _insert_comments(code: str, toks: list[Tok], style: tuple[str, str, str, str], line_start: bool,
                     fence: bool) -> str:
    """Neutral comments above each declaration (function, modifier, constructor, contract, ...), or one
    for the whole snippet. Outside a Markdown fence the code must still start with code (the extractor
    finds unfenced code by its first token), so a comment due at the very start goes inside the first
    body instead, right after its `{`."""
    line_fmt, block_fmt, snip_line, snip_block = style
    sig = [t for t in toks if t[0] != _COMMENT]
    if not sig:
        return code
    inserts: list[tuple[int, str, str]] = []  # position, line form, block form
    for j, (kind, a, b) in enumerate(sig):
        word = code[a:b]
        if kind != _WORD or word not in _DECL_KW:
            continue
        if j > 0 and code[sig[j - 1][1] : sig[j - 1][2]] not in ("{", "}", ";"):
            continue
        nxt = code[sig[j + 1][1] : sig[j + 1][2]] if j + 1 < len(sig) else ""
        if word in ("constructor", "receive", "fallback"):
            kind_s, name = "", word
        elif j + 1 < len(sig) and sig[j + 1][0] == _WORD:
            kind_s, name = _DECL_KW[word], nxt
        elif word == "function" and nxt == "(":
            kind_s, name = "", "fallback"
        else:
            continue
        fill = {"kind": kind_s, "name": name}
        inserts.append((a, " ".join(line_fmt.format(**fill).split()), " ".join(block_fmt.format(**fill).split())))
    if not inserts:
        inserts.append((sig[0][1], snip_line, snip_block))
    if not fence and inserts[0][0] == sig[0][1]:
        _, line_c, block_c = inserts.pop(0)
        brace = next((a for k, a, b in sig if k == _PUNCT and code[a:b] == "{"), None)
        if brace is not None and (not inserts or brace < inserts[0][0]):
            inserts.insert(0, (brace + 1, "", block_c))
    out: list[str] = []
    pos = 0
    for p, line_c, block_c in inserts:
        ls = code.rfind("\n", 0, p) + 1
        prefix = code[ls:p]
        out.append(code[pos:p])
        if line_c and prefix.strip() == "" and (ls > 0 or line_start):
            out.append(f"{line_c}\n{prefix}")
        elif code[p - 1 : p] == "{":  # inside a body, right after its brace
            out.append(f" {block_c}")
        else:
            out.append(f"{block_c} ")
        pos = p
    out.append(code[pos:])
    return "".join(out)


def _comments(rec: _Rec, key: int, cache: _Cache) -> _Edit | None:
    ins, resp = rec.fields
    if rec.has_comments is None:  # (the instruction's: the response's comments are part of the answer)
        rec.has_comments = any(k == _COMMENT for s in ins.spans for k, _, _ in cache.tokens(s.text))
    if rec.has_comments:
        new = [_strip_comments(s.text, cache.tokens(s.text)) for s in ins.spans]
    else:
        style = _COMMENT_STYLES[_h(key, "comments") % len(_COMMENT_STYLES)]
        new = [_insert_comments(s.text, cache.tokens(s.text), style, ls, s.shape == "fence") if _is_body(s)
               else s.text for s, ls in zip(ins.spans, ins.line_start, strict=True)]
    return _edit(rec, (new, [s.text for s in resp.spans]))


_TRANSFORM_FNS: dict[str, Callable[[_Rec, int, _Cache], _Edit | None]] = {
    "rename_identifiers": _rename,
    "reflow_layout": _layout,
    "toggle_comments": _comments,
}


# ------------------------------------------------------------------------------ assembling a variant


def _rebuild(f: _Field, new: list[str], prose: Callable[[str], str] | None, a: int, b: int) -> str:
    out: list[str] = []
    pos = a
    for s, t in zip(f.spans, new, strict=True):
        if s.start < a or s.end > b:
            continue
        out += [f.text[pos : s.start], t]
        pos = s.end
    out.append(f.text[pos:b])
    if prose is not None:
        out = [prose(x) if i % 2 == 0 else x for i, x in enumerate(out)]
    return "".join(out)


_DETAIL_RE = re.compile(r"\bline|\bfocus|specific|particular|\bcalled\b|\bnamed\b|\bvariable|\bparameter|\bmapping"
                        r"|\bstatement|\bcall\b|\bcalls\b|`|'[\w.]+'|\"[\w.]+\"|“|‘", re.I)


@dataclass(slots=True)
class _Frame:
    """Where the instruction's main code sits: the code region (with its fence or quotes), the span index,
    and whether the prose around it is a generic request that a free template may replace."""

    span: int
    start: int
    end: int
    generic: bool


def _frame(f: _Field) -> _Frame | None:
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
    before, after = text[:a], text[b:]
    others = len(f.spans) > 1
    prose = before + " " + after
    generic = (not others and len(prose.split()) <= 30 and not _DETAIL_RE.search(prose)
               and not after.strip(" \t\n.,;:!?"))
    return _Frame(i, a, b, generic)


_POINTS_AHEAD = re.compile(r"\b(?:following|below|as follows)\b", re.IGNORECASE)


def _points_ahead(f: _Field, frame: _Frame) -> bool:
    """Does the prose kept around the main code point ahead at it ("the following", "below", a colon)?"""
    before = f.text[: frame.start]
    return before.rstrip().endswith(":") or _POINTS_AHEAD.search(before + " " + f.text[frame.end :]) is not None


def _context(before: str, after: str, colon: bool = False) -> str:
    """The instruction's prose without its main code: the text before it (a trailing colon kept when
    the code follows it in the template, ``colon``, else made a full stop) and the text after it (a
    leading full stop or comma dropped), as one paragraph when the original ran on after the code,
    else as two."""
    head = before.strip()
    if not (colon and head.endswith(":")):
        head = head.rstrip(":").rstrip()
    if head and head[-1] not in ".?!:":
        head += "."
    tail = after.strip().lstrip(".,;:").strip()
    if not tail:
        return head
    sep = "\n\n" if "\n" in after[: len(after) - len(after.lstrip())] else " "
    return head + sep + tail if head else tail


def _instruction(f: _Field, new: list[str], prose: Callable[[str], str] | None, frame: _Frame | None,
                 tpl: templates.Template | None) -> str:
    if tpl is None or frame is None:
        return _rebuild(f, new, prose, 0, len(f.text))
    code = _rebuild(f, new, prose, frame.start, frame.end)
    context = _context(_rebuild(f, new, prose, 0, frame.start), _rebuild(f, new, prose, frame.end, len(f.text)),
                       colon=tpl.uses_context and not tpl.code_first)
    return tpl.render(code, context)


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


def _variants(row: dict[str, Any], cfg: AugmentConfig, cache: _Cache, tally: _Tally
              ) -> tuple[list[dict[str, Any]] | None, int, int]:
    """The variants of one record, plus how many produced nothing (no effect, parse failure); None
    for the variants when a code span of the record is too long to parse (it is not augmented)."""
    rid = row["id"]
    instr, resp = _Field.of(row["instruction"]), _Field.of(row["response"])
    if any(len(s.text) > cfg.max_parse_chars for f in (instr, resp) for s in f.spans):
        return None, 0, 0
    words = {w.casefold() for w in _WORDS_RE.findall(row["instruction"] + " " + row["response"])}
    rec = _Rec(rid, (instr, resp), words)
    family = templates.family_for(row["instruction"], row["response"]) if cfg.templates else None
    frame = _frame(instr) if family else None
    ahead = frame is not None and _points_ahead(instr, frame)
    order = sorted(cfg.transforms, key=lambda t: (_h(cfg.seed, rid, "transform", t), t))
    out: list[dict[str, Any]] = []
    no_effect = parse_failed = 0
    for k in range(cfg.factor):
        tpl = None
        if family and frame is not None:
            tpl = templates.choose(rid, family, k, cfg.seed, generic=frame.generic, points_ahead=ahead)
        edit: _Edit | None = None
        used = NO_TRANSFORM
        failed = False
        for t in order[k % len(order) :] + order[: k % len(order)]:
            e = _TRANSFORM_FNS[t](rec, _h(cfg.seed, rid, k, t), cache)
            if e is None:
                tally.no_change[t] += 1
                continue
            if any(cache.parses(before) and not cache.parses(after) for before, after in e.changed):
                tally.skipped[t] += 1
                failed = True
                continue
            texts = [_rebuild(f, ns, e.prose, 0, len(f.text)) for f, ns in zip(rec.fields, e.spans, strict=True)]
            if any([x.text for x in solidity.extract_code(text)] != ns
                   for text, ns in zip(texts, e.spans, strict=True)):
                tally.code_lost[t] += 1  # the text's code is no longer found as the same spans
                failed = True
                continue
            edit, used = e, t
            break
        spans = edit.spans if edit else ([s.text for s in instr.spans], [s.text for s in resp.spans])
        prose = edit.prose if edit else None
        new_instr = _instruction(instr, spans[0], prose, frame, tpl)
        if tpl is not None and sorted(x.text for x in solidity.extract_code(new_instr)) != sorted(spans[0]):
            # the template's words changed where the extractor finds code (prose read as code after a
            # truncated block): the variant keeps the record's own wording
            tally.templates_dropped += 1
            tpl = None
            new_instr = _instruction(instr, spans[0], prose, frame, None)
        new_resp = texts[1] if edit else resp.text
        new_id = record_id(new_instr, new_resp)
        if new_id == rid:
            if failed:
                parse_failed += 1
            else:
                no_effect += 1
            continue
        out.append({**row, "id": new_id, "instruction": new_instr, "response": new_resp, "parent_id": rid,
                    "transform": used, "template": tpl.id if tpl else None})
    return out, no_effect, parse_failed


_Out = tuple[list[dict[str, Any]] | None, int, int, _Tally]  # _variants's result and the record's tally


def _variants_stream(rows: list[dict[str, Any]], cfg: AugmentConfig) -> Iterator[_Out]:
    """Isolated child: the variants of each row in turn (see `_each_variants`)."""
    cache = _Cache(cfg.max_parse_chars)
    for row in rows:
        tally = _Tally()
        variants, no_effect, parse_failed = _variants(row, cfg, cache, tally)
        yield variants, no_effect, parse_failed, tally


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
    out: dict[str, pa.Table] = {}
    counts: dict[str, SplitAugment] = {}
    dropped_total = 0
    for name, table in splits.items():
        if name not in cfg.splits:
            out[name] = table
            counts[name] = SplitAugment(records_in=table.num_rows, augmented=False, records_out=table.num_rows)
            continue
        rows: list[dict[str, Any]] = []
        sources = added = dropped = no_effect = parse_failed = lineage = 0
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
            variants, ne, pf, t = got
            if variants is None:
                too_large.append(row["id"])
                continue
            sources += 1
            tally.add(t)
            no_effect += ne
            parse_failed += pf
            for v in variants:
                if v["id"] in seen:
                    dropped += 1
                    continue
                seen.add(v["id"])
                rows.append(v)
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
            too_large=len(too_large), parser_crashed=len(crashed), records_out=len(rows),
        )
    report = AugmentReport(
        config=cfg, splits=counts,
        variants_by_transform={t: tally.by_transform[t] for t in [*cfg.transforms, NO_TRANSFORM]},
        variants_by_family=dict(sorted(tally.by_family.items())),
        variants_by_template=dict(sorted(tally.by_template.items())),
        skipped_parse_failures={t: tally.skipped[t] for t in cfg.transforms},
        skipped_code_lost={t: tally.code_lost[t] for t in cfg.transforms},
        no_change={t: tally.no_change[t] for t in cfg.transforms}, templates_dropped=tally.templates_dropped,
        duplicates_dropped=dropped_total, warnings=warnings,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return out, report
