"""The ``rename_identifiers`` transform: a consistent renaming of the contract's own identifiers to names
from the pool of their type and role (:mod:`swcdata.steps.augment.namepools`), in the code of both
fields and where the prose quotes them (see :mod:`swcdata.steps.augment.step` for what is never renamed)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from swcdata.solidity import declarations, lexer
from swcdata.solidity.lexer import COMMENT, WORD, Tok
from swcdata.steps.augment import namepools
from swcdata.steps.augment.record import WORDS_RE, Cache, Edit, Rec, edit, h

__all__ = ["rename_identifiers"]

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
_KEY_PARENTS = frozenset(["call_struct_argument", "struct_field_assignment"])  # keys, not variables

_CODE_SHAPED = re.compile(r"[a-z0-9][A-Z]|_|\d")
_CODE_ITEM = re.compile(r"\s+(?:function|modifier|variable|mapping|event|array|contract|parameter|constant|struct)\b")


def _prose_stems(rec: Rec, cache: Cache) -> set[str]:
    """Word stems of what the record says in plain words: its prose outside the code, and the comments in
    the code. Quoted names (`x`, 'x'), camelCase/snake_case words and names followed by "function",
    "variable"... are left out: the renaming rewrites those with the code."""
    parts: list[str] = []
    for f in rec.fields:
        pos = 0
        for s in f.spans:
            parts.append(f.text[pos : s.start])
            pos = s.end
            parts += [s.text[a:b] for k, a, b in cache.tokens(s.text) if k == COMMENT]
        parts.append(f.text[pos:])
    text = _QUOTED_NAME.sub(" ", " ".join(parts))
    text = _ITEM_MENTION.sub(" ", text)
    return {_stem(w.lower()) for w in set(WORDS_RE.findall(text)) if not _CODE_SHAPED.search(w)}


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


def _candidates(rec: Rec, cache: Cache) -> list[tuple[str, str]]:
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
            toks = [t for t in cache.tokens(code) if t[0] != COMMENT]
            for j, (kind, a, b) in enumerate(toks):
                if kind != WORD:
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


def _rename_map(rec: Rec, key: int, cands: list[tuple[str, str]]) -> dict[str, str]:
    used: set[str] = set()
    mapping: dict[str, str] = {}
    orders: dict[str, list[str]] = {}
    for name, role in cands:
        pool = orders.get(role)
        if pool is None:
            pool = orders[role] = sorted(namepools.POOLS[role], key=lambda n: (h(key, role, n), n))
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
        if kind == COMMENT:
            new = prose(code[a:b])
            if new != code[a:b]:
                out += [code[pos:a], new]
                pos = b
            continue
        if kind == WORD and prev != ".":
            new_name = mapping.get(code[a:b])
            if new_name is not None:
                out += [code[pos:a], new_name]
                pos = b
        prev = code[a:b]
    out.append(code[pos:])
    return "".join(out)


def rename_identifiers(rec: Rec, key: int, cache: Cache) -> Edit | None:
    """The record renamed (`key` orders the name pools), or None when it has no name to rename."""
    if rec.candidates is None:
        rec.candidates = _candidates(rec, cache)
    if not rec.candidates:
        return None
    mapping = _rename_map(rec, key, rec.candidates)
    if not mapping:  # pragma: no cover
        return None
    prose = _prose_renamer(mapping)
    new = tuple([_rename_code(s.text, cache.tokens(s.text), mapping, prose) for s in f.spans] for f in rec.fields)
    return edit(rec, (new[0], new[1]), prose)
