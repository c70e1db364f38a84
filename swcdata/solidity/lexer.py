"""The one Solidity lexer: a deterministic token stream that ignores layout and comments.

:func:`code_tokens` / :func:`normalize_code` lex with a single regex (no tree-sitter) and give the
comparison key that dedup, audit and split use on ~1M records; augmentation tokenises with the same
token rules (:func:`tokens_with_offsets` adds the kinds and offsets it needs to rewrite code in place).
The rules are defined once, as the ``*_RX`` pieces below; the C lexer (`_native/_fast.c`, ``lex``)
mirrors them and tests/test_fast.py proves they agree.
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
# The token rules
# --------------------------------------------------------------------------------------------

# The one definition of a token, in pieces (regexes applied with re.ASCII: ``\s`` is
# [ \t\n\r\f\v], ``\w`` is [A-Za-z0-9_], ``\d`` is [0-9]). Both compiled forms below are built from
# these pieces, and the C lexer (`_native/_fast.c`, ``next_token``) mirrors them. Runs are possessive:
# no shorter run could be followed by what the piece needs next, so the matches are the same.
#
# From Solidity's grammar (docs.soliditylang.org, "Lexical grammar"): an identifier is
# [a-zA-Z$_][a-zA-Z0-9$_]*; a decimal number may end in an exponent that may be negative (``2e-10``;
# the grammar has no ``e+``). A number is otherwise read loosely, to the end of its word (``0xff``,
# ``1_000``, ``1e18``, ``1.5``, ``1ether`` as written), and a hex number never takes a signed exponent
# (``0x1e-5`` is ``0x1e - 5``).
COMMENT_RX = r"//[^\n]*+|/\*[\s\S]*?(?:\*/|\Z)"  # a block comment left open runs to the end
PUNCT_RX = r"[(){};,\[\]]"  # the commonest punctuation, single
IDENT_RX = r"[A-Za-z_$][\w$]*+"  # identifier / keyword (ASCII)
NUMBER_RX = (r"\d[\d_]*+(?:\.\d[\d_]*+)?[eE]-\d\w*+"  # decimal with a negative exponent: 2e-10, 1.5E-3
             r"|\d\w*+(?:\.\d\w*+)?")  # any other: 42, 0xff, 1e18, 1_000, 1.5
STRING_RX = r""""[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"|'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'"""  # one line
OPERATOR_RX = r">>>=|>>>|<<=|>>=|\*\*=?|=>|->|==|!=|<=|>=|&&|\|\||\+\+|--|[-+*/%&|^]=|<<|>>|:="
OTHER_RX = r"[^\s\w]"  # any other single character (non-ASCII ones included)

# Token kinds of `tokens_with_offsets` (the group numbers of _OFFSETS_RE)
COMMENT, STRING, NUMBER, WORD, PUNCT = 1, 2, 3, 4, 5
Tok = tuple[int, int, int]  # kind, start, end (character offsets into the code)

# --------------------------------------------------------------------------------------------
# Fast lexer
# --------------------------------------------------------------------------------------------

# One token; alternatives are distinguished by their first character, the commonest come first (the
# engine tries them in turn).
_TOKEN = "|".join([PUNCT_RX, IDENT_RX, NUMBER_RX, STRING_RX, OPERATOR_RX, OTHER_RX])
# The leading ``\s*+`` skips the blanks before a token inside the match (findall then returns the
# one group, the token): the same tokens as searching for the next token, without trying every
# alternative at each blank. _TOKEN_RE is for code without ``//`` or ``/*``; in _TOKEN_C_RE a comment
# is tried first (before the "/" operators) and matches outside the group, so findall gives ``""``
# for it, dropped by ``filter(None, ...)``.
_TOKEN_RE = re.compile(r"\s*+(" + _TOKEN + ")", re.ASCII)
_TOKEN_C_RE = re.compile(r"\s*+(?:" + COMMENT_RX + "|(" + _TOKEN + "))", re.ASCII)
# The same tokens with their kind (the number of the group that matched) and comments kept.
_OFFSETS_RE = re.compile("|".join(f"({rx})" for rx in (COMMENT_RX, STRING_RX, NUMBER_RX, IDENT_RX,
                                                        "|".join([PUNCT_RX, OPERATOR_RX, OTHER_RX]))), re.ASCII)


_ABSTRACT_CACHE: dict[tuple[bool, bool], dict[str, str]] = {}
_ABSTRACT_CACHE_MAX = 500_000


def _abstract_token(t: str, identifiers: bool, literals: bool) -> str:
    c = t[0]
    if c.isdigit():
        return "NUM" if literals else t
    if c.isalpha() or c == "_" or c == "$":
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


def tokens_with_offsets(code: str) -> list[Tok]:
    """Every token of ``code`` as ``(kind, start, end)``, comments included (kind `COMMENT`); the
    others are the tokens of :func:`code_tokens` (``code[start:end]`` for each, in order), of kind
    `STRING`, `NUMBER`, `WORD` (identifier or keyword) or `PUNCT` (operators, punctuation and any
    other single character). The blanks between tokens are what the offsets leave out. For code
    that is rewritten in place (augmentation)."""
    return [(m.lastindex or PUNCT, m.start(), m.end()) for m in _OFFSETS_RE.finditer(code)]


_lex: Callable[[str], list[str]] = _fast.lex if _fast is not None and _native.on("lex") else _py_lex


def code_tokens(code: str, *, abstract_identifiers: bool = False, abstract_literals: bool = False) -> list[str]:
    """Lex ``code`` into tokens with a single regex (no tree-sitter).

    Comments and all whitespace are dropped; tokens are identifiers/keywords (``$`` included, as
    in Solidity), numbers (``2e-10`` is one), string literals (one line, either quote),
    multi-character operators (``==``, ``+=``, ``=>``, ...) and single punctuation characters.
    Non-ASCII characters are single-character tokens.
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


