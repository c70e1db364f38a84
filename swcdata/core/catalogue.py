"""The SWC registry (SWC-100 to SWC-136): ids, titles and the words that name each class in text.

`keywords` are the phrases a human or a model uses for the class in prose. They are matched on
normalised text (see `swcdata.core.text.normalize_text`), so they are written lower-case and ASCII.
The order of `CATALOGUE` is the registry order; the seed project's keyword classifier scans it in
that order and takes the first class whose keyword occurs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class SWCClass:
    id: str
    title: str
    keywords: tuple[str, ...]


CATALOGUE: tuple[SWCClass, ...] = (
    SWCClass("SWC-100", "Function Default Visibility", ("default visibility", "function visibility")),
    SWCClass("SWC-101", "Integer Overflow and Underflow",
             ("integer overflow", "integer underflow", "overflow", "underflow", "arithmetic overflow",
              "wrap around", "wraparound")),
    SWCClass("SWC-102", "Outdated Compiler Version", ("outdated compiler", "old compiler version")),
    SWCClass("SWC-103", "Floating Pragma", ("floating pragma", "unlocked pragma")),
    SWCClass("SWC-104", "Unchecked Call Return Value",
             ("unchecked call return value", "unchecked return value", "return value of the call is not checked",
              "unchecked low-level call")),
    SWCClass("SWC-105", "Unprotected Ether Withdrawal", ("unprotected ether withdrawal", "unprotected withdrawal")),
    SWCClass("SWC-106", "Unprotected SELFDESTRUCT Instruction",
             ("unprotected selfdestruct", "selfdestruct", "suicide")),
    SWCClass("SWC-107", "Reentrancy", ("reentrancy", "re-entrancy", "reentrant", "re-entrant", "reentering",
                                       "re-entering", "reenter", "re-enter")),
    SWCClass("SWC-108", "State Variable Default Visibility", ("state variable default visibility",)),
    SWCClass("SWC-109", "Uninitialized Storage Pointer", ("uninitialized storage pointer", "uninitialised storage")),
    SWCClass("SWC-110", "Assert Violation", ("assert violation", "assertion violation", "assertion failure")),
    SWCClass("SWC-111", "Use of Deprecated Solidity Functions",
             ("deprecated solidity function", "deprecated function")),
    SWCClass("SWC-112", "Delegatecall to Untrusted Callee",
             ("delegatecall to untrusted callee", "untrusted delegatecall")),
    SWCClass("SWC-113", "DoS with Failed Call",
             ("dos with failed call", "denial of service with failed call", "failed call", "denial of service",
              "denial-of-service", "dos")),
    SWCClass("SWC-114", "Transaction Order Dependence",
             ("transaction order dependence", "transaction ordering dependence", "transaction-order dependence",
              "front-running", "front running", "frontrunning", "race condition", "tod")),
    SWCClass("SWC-115", "Authorization through tx.origin", ("tx.origin",)),
    SWCClass("SWC-116", "Block values as a proxy for time",
             ("timestamp dependence", "block values as a proxy for time")),
    SWCClass("SWC-117", "Signature Malleability", ("signature malleability",)),
    SWCClass("SWC-118", "Incorrect Constructor Name", ("incorrect constructor name",)),
    SWCClass("SWC-119", "Shadowing State Variables", ("shadowing state variable", "shadowed state variable")),
    SWCClass("SWC-120", "Weak Sources of Randomness from Chain Attributes",
             ("weak source of randomness", "weak sources of randomness", "weak randomness", "insecure randomness")),
    SWCClass("SWC-121", "Missing Protection against Signature Replay Attacks", ("signature replay", "replay attack")),
    SWCClass("SWC-122", "Lack of Proper Signature Verification", ("signature verification",)),
    SWCClass("SWC-123", "Requirement Violation", ("requirement violation",)),
    SWCClass("SWC-124", "Write to Arbitrary Storage Location", ("arbitrary storage", "write to arbitrary storage")),
    SWCClass("SWC-125", "Incorrect Inheritance Order", ("inheritance order",)),
    SWCClass("SWC-126", "Insufficient Gas Griefing", ("insufficient gas griefing", "gas griefing")),
    SWCClass("SWC-127", "Arbitrary Jump with Function Type Variable", ("arbitrary jump",)),
    SWCClass("SWC-128", "DoS With Block Gas Limit",
             ("dos with block gas limit", "denial of service with block gas limit", "block gas limit",
              "unbounded loop")),
    SWCClass("SWC-129", "Typographical Error", ("typographical error",)),
    SWCClass("SWC-130", "Right-To-Left-Override control character (U+202E)",
             ("right-to-left-override", "right-to-left override", "u+202e")),
    SWCClass("SWC-131", "Presence of unused variables", ("unused variable",)),
    SWCClass("SWC-132", "Unexpected Ether balance", ("unexpected ether balance",)),
    SWCClass("SWC-133", "Hash Collisions With Multiple Variable Length Arguments",
             ("hash collision",)),
    SWCClass("SWC-134", "Message call with hardcoded gas amount", ("hardcoded gas", "hard-coded gas")),
    SWCClass("SWC-135", "Code With No Effects", ("code with no effects", "no effect")),
    SWCClass("SWC-136", "Unencrypted Private Data On-Chain", ("unencrypted private data", "private data on-chain")),
)

BY_ID: dict[str, SWCClass] = {c.id: c for c in CATALOGUE}
ID_PATTERN = re.compile(r"^SWC-\d{3}$")
# An explicit class id in prose: "SWC-107", "SWC 107", "swc107".
MENTION_PATTERN = re.compile(r"\bswc[\s\-_]?(1[0-3]\d)\b", re.IGNORECASE)
_UPPER_MENTION = re.compile(r"SWC[\s\-_]?(1[0-3]\d)(?!\d)")  # a literal prefix: far faster to search


def mentioned_ids(text: str) -> set[str]:
    """Explicit SWC ids named in `text` that exist in the registry."""
    if "swc" in text or "Swc" in text:  # rare spellings: the general (slow) pattern
        return {i for m in MENTION_PATTERN.findall(text) if (i := f"SWC-{m}") in BY_ID}
    return upper_mentions(text) if "SWC" in text else set()


def upper_mentions(text: str) -> set[str]:
    """:func:`mentioned_ids` of a text that contains neither "swc" nor "Swc" (the caller knows)."""
    return {i for m in _UPPER_MENTION.findall(text) if (i := f"SWC-{m}") in BY_ID}


# A keyword also matches with an inflection ("overflows", "re-entered", "race conditions"): the text
# names the class the same way. Keywords under 4 characters ("dos", "tod") match only as they are.
_INFLECTION = r"(?:s|es|ed|ing)?"


@cache
def _keyword_pattern(cls_id: str) -> re.Pattern[str]:
    words = sorted(BY_ID[cls_id].keywords, key=len, reverse=True)
    alts = [re.escape(w) + (_INFLECTION if len(w) >= 4 else "") for w in words]
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + r")(?![a-z0-9])")


def first_keyword_class(normalized_text: str, candidates: tuple[str, ...] | None = None) -> str | None:
    """The seed project's rule: the first class, in catalogue order, one of whose keywords occurs."""
    ids = candidates if candidates is not None else tuple(BY_ID)
    for i in ids:
        if _keyword_pattern(i).search(normalized_text):
            return i
    return None
