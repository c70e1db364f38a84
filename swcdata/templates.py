"""Instruction templates for augmentation, in the spirit of FLAN's templates.

Four task families: ``find`` (name the vulnerability), ``explain_fix`` (explain it and fix it),
``classify`` (give the SWC class) and ``rewrite`` (return a secure version). Each family has at
least eight *free* templates, which rephrase the whole request around the code (``{code}``), and a
few *framing* templates, which keep the record's own request (``{context}``: the instruction's prose
with the main code taken out) and only reframe it.

A template never asks for more than the response gives: a record only gets templates of its own
family (:func:`family_for` checks the family against the response: ``classify`` needs an SWC id
in the response, ``explain_fix``/``rewrite`` need code in it), and free templates are only used
when the original prose is a generic request (no inline code, no "focus on this line" details),
so no detail the response relies on is dropped. The choice is deterministic: a hash of the seed,
the record id, the family and the template id orders the family's templates, and variant ``k``
takes the ``k``-th (so the variants of one record use different templates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import xxhash

__all__ = [
    "FAMILIES",
    "TEMPLATES",
    "Template",
    "choose",
    "family_for",
    "get",
    "task_family",
    "templates",
]

FAMILIES: tuple[str, ...] = ("find", "explain_fix", "classify", "rewrite")


@dataclass(frozen=True, slots=True)
class Template:
    """One phrasing. ``text`` has a ``{code}`` slot and, for framing templates, a ``{context}`` slot."""

    id: str  # "<family>/<NN>"
    family: str
    text: str

    @property
    def uses_context(self) -> bool:
        return "{context}" in self.text

    @property
    def code_first(self) -> bool:
        """A framing template that shows the code before the record's own words."""
        return self.uses_context and self.text.index("{code}") < self.text.index("{context}")

    def render(self, code: str, context: str = "") -> str:
        return self.text.format(code=code, context=context)


# fmt: off
_FREE: dict[str, tuple[str, ...]] = {
    "find": (
        "What vulnerability does the following Solidity code contain?\n\n{code}",
        "Identify the security flaw in this smart contract code.\n\n{code}",
        "{code}\n\nWhich weakness is present in the code above?",
        "Audit the Solidity snippet below and name the vulnerability it contains.\n\n{code}",
        "Point out the vulnerability in the following smart contract excerpt.\n\n{code}",
        "Review this code as a smart-contract auditor would and describe the vulnerability you find.\n\n{code}",
        "Here is a piece of Solidity code:\n\n{code}\n\nWhat is wrong with it from a security standpoint?",
        "Detect the security issue in the following contract code.\n\n{code}",
        "Which security vulnerability can an attacker exploit in this Solidity code?\n\n{code}",
    ),
    "explain_fix": (
        "Explain the vulnerability in this Solidity code and show how to fix it.\n\n{code}",
        "{code}\n\nWhat is the security issue in the code above, and how should it be changed to fix it?",
        "Describe the weakness in the following code and provide a corrected version.\n\n{code}",
        "Find the bug in this smart contract code, explain why it is dangerous, and propose a fix.\n\n{code}",
        "As a security reviewer, explain what is unsafe in the code below and how to remediate it.\n\n{code}",
        "Identify the vulnerability in this code and suggest a secure modification.\n\n{code}",
        "The following Solidity code has a security problem. Explain it and give a fixed version.\n\n{code}",
        "Diagnose and fix the vulnerability in this snippet.\n\n{code}",
        "How would you fix the security issue in this code? Explain the issue as well.\n\n{code}",
    ),
    "classify": (
        "Which SWC class does the vulnerability in this code belong to?\n\n{code}",
        "Classify the following Solidity code by its SWC weakness identifier.\n\n{code}",
        "{code}\n\nWhat is the SWC registry id of the weakness shown above?",
        "Assign an SWC category to the vulnerability in this smart contract snippet.\n\n{code}",
        "Name the SWC entry that best describes the flaw in the code below.\n\n{code}",
        "Label this code with the matching Smart Contract Weakness Classification (SWC) id.\n\n{code}",
        "Which SWC identifier fits the following code best?\n\n{code}",
        "Determine the SWC category of the security issue in this code.\n\n{code}",
    ),
    "rewrite": (
        "Rewrite the following Solidity code so that it is secure.\n\n{code}",
        "Provide a secure version of this smart contract code.\n\n{code}",
        "{code}\n\nRewrite the code above to remove its vulnerability.",
        "Refactor this code to eliminate its security weakness.\n\n{code}",
        "Produce a hardened version of the following Solidity snippet.\n\n{code}",
        "Fix the code below and return the corrected version.\n\n{code}",
        "Rewrite this contract code following secure Solidity practices.\n\n{code}",
        "Return a safe rewrite of the following code.\n\n{code}",
    ),
}

_FRAME: dict[str, tuple[str, ...]] = {
    "find": (
        "You are auditing a Solidity smart contract for vulnerabilities. {context}\n\n{code}",
        "{code}\n\n{context}",
        "Code under review:\n\n{code}\n\nQuestion: {context}",
        "Security review of a smart contract.\n\n{context}\n\n{code}",
    ),
    "explain_fix": (
        "You are a smart-contract security engineer. {context}\n\n{code}",
        "{code}\n\n{context}",
        "Code to fix:\n\n{code}\n\nTask: {context}",
        "Smart contract remediation request.\n\n{context}\n\n{code}",
    ),
    "classify": (
        "You are classifying smart-contract weaknesses by SWC id. {context}\n\n{code}",
        "{code}\n\n{context}",
        "Code to classify:\n\n{code}\n\nQuestion: {context}",
        "SWC classification task.\n\n{context}\n\n{code}",
    ),
    "rewrite": (
        "You are hardening a Solidity smart contract. {context}\n\n{code}",
        "{code}\n\n{context}",
        "Code to rewrite:\n\n{code}\n\nTask: {context}",
        "Secure rewrite request.\n\n{context}\n\n{code}",
    ),
}
# fmt: on


def _build() -> dict[str, tuple[Template, ...]]:
    out: dict[str, tuple[Template, ...]] = {}
    for fam in FAMILIES:
        texts = _FREE[fam] + _FRAME[fam]
        out[fam] = tuple(Template(f"{fam}/{i:02d}", fam, t) for i, t in enumerate(texts, start=1))
    return out


TEMPLATES: dict[str, tuple[Template, ...]] = _build()
_BY_ID: dict[str, Template] = {t.id: t for ts in TEMPLATES.values() for t in ts}


def templates(family: str, *, free: bool | None = None) -> tuple[Template, ...]:
    """The templates of a family: all of them, only the free ones (``free=True``) or only the framing ones."""
    if family not in TEMPLATES:
        raise KeyError(f"unknown task family {family!r} (families: {', '.join(FAMILIES)})")
    ts = TEMPLATES[family]
    if free is None:
        return ts
    return tuple(t for t in ts if t.uses_context is not free)


def get(template_id: str) -> Template:
    return _BY_ID[template_id]


# ------------------------------------------------------------------------------ recognising a family

_REWRITE_RE = re.compile(r"\brewrit|\brefactor|\bsecure version|\bharden|\bre-?implement|\bsafe version", re.I)
_FIX_RE = re.compile(
    r"\bfix|\bmitigat|\bremedia|\bmodif|\brevis|\bpatch|\bcorrect(?:ed|ion)?\b|\bprevent|\bresolv|\bimprov|"
    r"\baddress (?:the|this|these|any|it)\b|\bsuggest|\bpropos|\brecommend|\bhow (?:can|could|should|would|to|do)\b|"
    r"\bchanges?\b|\bsafer\b",
    re.I,
)
_CLASSIFY_RE = re.compile(
    r"\bclassif|\bcategori[sz]|\bwhich (?:swc|category)\b|\bswc (?:id|identifier|class|category|number|entry)|"
    r"\b(?:what|which|name|give|determine|identify)\b[^.?!\n]{0,40}\bswc\b",
    re.I,
)
_FIND_RE = re.compile(
    r"vulnerab|\bissues?\b|\bflaws?\b|\bbugs?\b|weakness|\bproblems?\b|\brisks?\b|\bsecur|\bfind\b|\bidentify|"
    r"\bdetect|\banaly[sz]|\breview|\bexamin|\binspect|\baudit|\bevaluat|\bassess|\bwrong\b|\bexploit|\bunsafe\b|"
    r"\bconcerns?\b|\bexplain",
    re.I,
)
_SWC_ID_RE = re.compile(r"\bSWC[-\s]?\d{3}\b", re.I)


def _prose(instruction: str) -> str:
    """The instruction with every code span taken out (so identifiers like `fixFee` do not count)."""
    from swcdata.solidity import extract_code

    parts: list[str] = []
    pos = 0
    for s in extract_code(instruction):
        parts.append(instruction[pos : s.start])
        pos = s.end
    parts.append(instruction[pos:])
    return " ".join(parts)


def task_family(instruction: str) -> str | None:
    """The task family an instruction asks for, from keywords in its prose (code excluded), or None.

    The order matters: a request to rewrite or to fix may also mention finding the issue or the
    SWC id, so ``rewrite`` is checked first, then ``explain_fix``, ``classify`` and ``find``.
    """
    prose = _prose(instruction)
    if _REWRITE_RE.search(prose):
        return "rewrite"
    if _FIX_RE.search(prose):
        return "explain_fix"
    if _CLASSIFY_RE.search(prose):
        return "classify"
    if _FIND_RE.search(prose):
        return "find"
    return None


def _has_code(response: str) -> bool:
    from swcdata.solidity import extract_code

    return any(s.shape != "inline" or "{" in s.text or ";" in s.text for s in extract_code(response))


def family_for(instruction: str, response: str) -> str | None:
    """The family whose templates the response answers: :func:`task_family`, checked against the
    response. ``classify`` needs an SWC id in the response; ``explain_fix`` and ``rewrite`` need
    code in it. A family the response does not support falls back to ``find`` (every response
    of this data names or describes the weakness), and a request with no recognisable task to None."""
    fam = task_family(instruction)
    if fam is None:
        return None
    if fam == "classify" and not _SWC_ID_RE.search(response):
        return "find"
    if fam in ("explain_fix", "rewrite") and not _has_code(response):
        return "find"
    return fam


# ------------------------------------------------------------------------------ the choice


def _rank(seed: int, record_id: str, family: str, template_id: str) -> int:
    return xxhash.xxh3_64_intdigest(f"template\x1f{seed}\x1f{record_id}\x1f{family}\x1f{template_id}".encode())


def choose(record_id: str, family: str, k: int, seed: int = 0, *, generic: bool = True,
           points_ahead: bool = False) -> Template:
    """The template of variant ``k`` of a record: deterministic (a hash, never ``random``), and
    different for ``k = 0, 1, ...`` until the family's templates run out. ``generic=False`` (the
    prose carries details the response may rely on) restricts the choice to framing templates.
    ``points_ahead`` (the kept prose says "the following", "below", or ends with a colon) leaves out
    the framing templates that put the code before it."""
    pool = templates(family) if generic else templates(family, free=False)
    if points_ahead:
        pool = tuple(t for t in pool if not t.uses_context or not t.code_first)
    order = sorted(pool, key=lambda t: (_rank(seed, record_id, family, t.id), t.id))
    return order[k % len(order)]
