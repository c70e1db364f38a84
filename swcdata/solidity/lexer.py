"""The one Solidity lexer: a deterministic token stream that ignores layout and comments.

:func:`code_tokens` / :func:`normalize_code` lex with a single regex (no tree-sitter) and give the
comparison key that dedup, audit and split use on ~1M records; augmentation tokenises with the same
token rules (:func:`tokens_with_offsets` adds the offsets it needs to rewrite code in place). The C
lexer (`_native/_fast.c`, ``lex``) mirrors :data:`TOKEN` and a test proves they agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from swcdata import _native
from swcdata._native import fast as _fast

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

# fmt: off
_KEYWORDS = frozenset([
    "abstract", "address", "anonymous", "as", "assembly", "bool", "break", "byte", "bytes", "calldata",
    "case", "catch", "constant", "constructor", "continue", "contract", "default", "delete", "do", "else",
    "emit", "enum", "error", "event", "external", "fallback", "false", "final", "fixed", "for", "from",
    "function", "global", "hex", "if", "immutable", "import", "indexed", "interface", "internal", "is", "let",
    "library", "mapping", "memory", "modifier", "new", "null", "override", "payable", "pragma", "private",
    "public", "pure", "receive", "return", "returns", "revert", "require", "assert", "solidity", "storage",
    "string", "struct", "super", "this", "throw", "true", "try", "type", "ufixed", "unchecked", "unicode",
    "using", "var", "view", "virtual", "while", "wei", "gwei", "ether", "szabo", "finney", "seconds",
    "minutes", "hours", "days", "weeks", "years", "after", "alias", "apply", "auto", "copyof", "define",
    "final", "implements", "in", "inline", "macro", "match", "mutable", "of", "partial", "promise",
    "reference", "relocatable", "sealed", "sizeof", "static", "supports", "switch", "typedef", "typeof",
])
# fmt: on

# fmt: off
_BUILTINS = frozenset([
    "msg", "sender", "value", "data", "sig", "gas", "block", "timestamp", "number", "coinbase", "difficulty",
    "gaslimit", "chainid", "basefee", "prevrandao", "blockhash", "blobhash", "blobbasefee", "tx", "origin",
    "gasprice", "now", "gasleft", "abi", "encode", "encodePacked", "encodeWithSelector",
    "encodeWithSignature", "encodeCall", "decode", "transfer", "send", "call", "delegatecall", "staticcall",
    "callcode", "balance", "code", "codehash", "keccak256", "sha256", "sha3", "ripemd160", "ecrecover",
    "addmod", "mulmod", "selfdestruct", "suicide", "length", "push", "pop", "selector", "interfaceId",
    "creationCode", "runtimeCode",
])
# fmt: on


def _elementary_types() -> frozenset[str]:
    names = {"int", "uint", "bytes", "byte", "fixed", "ufixed", "address", "bool", "string"}
    for n in range(8, 257, 8):
        names.add(f"int{n}")
        names.add(f"uint{n}")
    for n in range(1, 33):
        names.add(f"bytes{n}")
    return frozenset(names)


_TYPES = _elementary_types()
_KEEP = _KEYWORDS | _BUILTINS | _TYPES
_FIXED_RE = re.compile(r"u?fixed\d+x\d+\Z")

# --------------------------------------------------------------------------------------------
# Fast lexer
# --------------------------------------------------------------------------------------------

# One token; alternatives are distinguished by their first character, the commonest come first (the
# engine tries them in turn). Runs are possessive: no shorter run could be followed by what the
# alternative needs next, so the matches are the same.
_TOKEN = r"""
    [(){};,\[\]]                             # the commonest punctuation, single
    |[A-Za-z_]\w*+                          # identifier / keyword (ASCII)
    |\d\w*+(?:\.\d\w*+)?                     # number: 42, 0xff, 1e18, 1_000, 1.5
    |"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"        # string literals (one line)
    |'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'
    |>>>=|>>>|<<=|>>=|\*\*=?|=>|->|==|!=|<=|>=|&&|\|\||\+\+|--|[-+*/%&|^]=|<<|>>|:=
    |[^\s\w]                                # any other single character
"""
# The leading ``\s*+`` skips the blanks before a token inside the match (findall then returns the
# one group, the token): the same tokens as searching for the next token, without trying every
# alternative at each blank. _TOKEN_RE is for code without ``//`` or ``/*``; in _TOKEN_C_RE a comment
# is tried first (before the "/" operators) and matches outside the group, so findall gives ``""``
# for it, dropped by ``filter(None, ...)``.
_TOKEN_RE = re.compile(r"\s*+(" + _TOKEN + ")", re.VERBOSE | re.ASCII)
_TOKEN_C_RE = re.compile(r"\s*+(?://[^\n]*+|/\*[\s\S]*?(?:\*/|\Z)|(" + _TOKEN + "))", re.VERBOSE | re.ASCII)


_ABSTRACT_CACHE: dict[tuple[bool, bool], dict[str, str]] = {}
_ABSTRACT_CACHE_MAX = 500_000


def _abstract_token(t: str, identifiers: bool, literals: bool) -> str:
    c = t[0]
    if c.isdigit():
        return "NUM" if literals else t
    if c.isalpha() or c == "_":
        if identifiers and t not in _KEEP and not _FIXED_RE.match(t):
            return "ID"
        return t
    if literals and (c == '"' or c == "'") and len(t) > 1:
        return "STR"
    return t


def _py_lex(code: str) -> list[str]:
    """The raw tokens of ``code`` (the regex lexer; `_fast.lex` is the same in C)."""
    if "//" in code or "/*" in code:
        return list(filter(None, _TOKEN_C_RE.findall(code)))
    return _TOKEN_RE.findall(code)


_lex: Callable[[str], list[str]] = _fast.lex if _fast is not None and _native.on("lex") else _py_lex


def code_tokens(code: str, *, abstract_identifiers: bool = False, abstract_literals: bool = False) -> list[str]:
    """Lex ``code`` into tokens with a single regex (no tree-sitter).

    Comments and all whitespace are dropped; tokens are identifiers/keywords, numbers, string
    literals (one line, either quote), multi-character operators (``==``, ``+=``, ``=>``, ...)
    and single punctuation characters. Non-ASCII characters are single-character tokens.
    ``abstract_identifiers`` replaces every identifier that is not a Solidity keyword,
    elementary type or builtin (``msg``, ``sender``, ``transfer``, ``keccak256``, ...) by
    ``"ID"``; ``abstract_literals`` replaces numbers by ``"NUM"`` and string literals by ``"STR"``.
    """
    toks = _lex(code)
    if not (abstract_identifiers or abstract_literals):
        return toks
    key = (abstract_identifiers, abstract_literals)
    cache = _ABSTRACT_CACHE.get(key)
    if cache is None or len(cache) > _ABSTRACT_CACHE_MAX:
        cache = _ABSTRACT_CACHE[key] = {}
    # Look every token up in one C-level pass; only cache misses (rare once warm) go through Python.
    out: list[str | None] = list(map(cache.get, toks))
    if None in out:
        for k, a in enumerate(out):
            if a is None:
                t = toks[k]
                a = cache.get(t)  # (an earlier miss in this list may have filled it)
                if a is None:
                    a = cache[t] = _abstract_token(t, abstract_identifiers, abstract_literals)
                out[k] = a
    return out  # type: ignore[return-value]


def normalize_code(code: str) -> str:
    """Deterministic comparison key: ``" ".join(code_tokens(code))``."""
    return " ".join(code_tokens(code))


