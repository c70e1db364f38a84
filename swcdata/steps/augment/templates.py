"""Instruction templates for augmentation, in the spirit of FLAN's templates: the request said in other words.

Five task families: ``find`` (name the vulnerability), ``review`` (the seed's own "review / analyze
the following code for potential issues"), ``explain_fix`` (explain it and fix it), ``classify``
(give the SWC class) and ``rewrite`` (return a secure version), with eight to ten phrasings each.
A template rewrites the whole request: it never puts a header in front of the record's own words.
Its code comes after a sentence that ends with a colon, or first with the question after it; never
inside a sentence.

:func:`analyse` reads what the record's request says around its main code, sentence by sentence:
the vulnerability it names (the *topic*: "reentrancy"), what it asks to focus on (its own words:
"the line 'x = y;'", "fund transfers"), and the sentences a template cannot say for it:
descriptions before the code ("The following constructor initializes ...") and specific questions
after it, which are kept as they are. A sentence that asks for something and says more than a
template can ("Port this pre-0.8 function to 0.8 ...") makes the record keep its own wording: no
detail the response relies on is dropped.

A template never asks for more than the response gives: a record only gets templates of its own
family (:func:`family_for` checks the family against the response: ``classify`` needs an SWC id
in the response, ``explain_fix``/``rewrite`` need code in it). The choice is deterministic and
balanced: a hash of the seed, the record id, the family and the template id orders the family's
templates, and variant ``k`` takes the ``k``-th, so the variants of one record use different
templates and, over a build, each template gets about its fair share (code-first templates are left
out only for records that keep a description before the code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import xxhash

__all__ = [
    "FAMILIES",
    "TEMPLATES",
    "Request",
    "Template",
    "analyse",
    "choose",
    "family_for",
    "get",
    "render",
    "task_family",
    "templates",
]

FAMILIES: tuple[str, ...] = ("find", "review", "explain_fix", "classify", "rewrite")


@dataclass(frozen=True, slots=True)
class Template:
    """One phrasing of a request. ``text`` has a ``{code}`` slot, after a sentence that ends with a
    colon or at the very start (then a question follows the code), and may use ``{obj}`` (function,
    modifier, constructor, contract, code), ``{a_obj}`` (a function, some code), ``{topic_}``
    ("reentrancy " or nothing) and ``{for_topic}`` (" for reentrancy" or nothing)."""

    id: str  # "<family>/<NN>"
    family: str
    text: str

    @property
    def code_first(self) -> bool:
        """The code comes first and the request after it (no prose may precede it)."""
        return self.text.startswith("{code}")


# fmt: off
_TEXTS: dict[str, tuple[str, ...]] = {
    "find": (
        "Identify the {topic_}vulnerability in this {obj}:\n\n{code}",
        "Point out the {topic_}weakness in the following Solidity {obj}:\n\n{code}",
        "Audit this {obj}{for_topic} and name the vulnerability you find:\n\n{code}",
        "{code}\n\nWhich {topic_}vulnerability is present in the {obj} above?",
        "Here is {a_obj} from a smart contract:\n\n{code}\n\nWhat {topic_}vulnerability can an attacker exploit in it?",
        "Determine which {topic_}vulnerability makes the following {obj} unsafe:\n\n{code}",
        "Spot the {topic_}bug in this Solidity {obj}:\n\n{code}",
        "Name the {topic_}vulnerability in the code below and say where it occurs:\n\n{code}",
        "{code}\n\nWhat is the {topic_}vulnerability in this {obj}?",
        "Look for the {topic_}vulnerability in this Solidity {obj} and describe it:\n\n{code}",
    ),
    "review": (
        "Review this Solidity {obj}{for_topic} and report any security issues:\n\n{code}",
        "Examine the {obj} below{for_topic} and list the potential problems you find:\n\n{code}",
        "Perform a security review of the following {obj}{for_topic}:\n\n{code}",
        "{code}\n\nDoes the {obj} above have any {topic_}security issues? Explain what you find.",
        "As a smart contract auditor, go through this {obj}{for_topic} and report what you find:\n\n{code}",
        "Assess the security of the following Solidity {obj}{for_topic}:\n\n{code}",
        "Check the code below{for_topic} and describe any potential issue:\n\n{code}",
        "Here is {a_obj} from a smart contract:\n\n{code}\n\nWhat potential {topic_}issues do you see in it?",
        "Inspect this {obj}{for_topic} and explain any risk it carries:\n\n{code}",
        "Analyze the following Solidity {obj}{for_topic} and point out anything that could go wrong:\n\n{code}",
    ),
    "explain_fix": (
        "Explain the {topic_}vulnerability in this Solidity {obj} and show how to fix it:\n\n{code}",
        "{code}\n\nWhat is the {topic_}security issue in the {obj} above, and how should it be changed to fix it?",
        "Describe the {topic_}weakness in the following {obj} and provide a corrected version:\n\n{code}",
        "Find the {topic_}bug in this {obj}, explain why it is dangerous, and propose a fix:\n\n{code}",
        "As a security reviewer, explain the {topic_}risk in the {obj} below and how to remediate it:\n\n{code}",
        "Identify the {topic_}vulnerability in this {obj} and suggest a secure modification:\n\n{code}",
        "The following Solidity {obj} has a {topic_}security problem. Explain it and give a fixed version:\n\n{code}",
        "Diagnose and fix the {topic_}vulnerability in this {obj}:\n\n{code}",
        "Here is a Solidity {obj}:\n\n{code}\n\nHow would you fix its {topic_}vulnerability? "
        "Explain the issue as well.",
        "Walk through the {topic_}flaw in the {obj} below, then change the code so that it is safe:\n\n{code}",
    ),
    "classify": (
        "Classify the vulnerability in this {obj} by its SWC identifier:\n\n{code}",
        "{code}\n\nWhich SWC registry entry describes the weakness in the {obj} above?",
        "Assign an SWC category to the vulnerability in the following {obj}:\n\n{code}",
        "Name the SWC entry that best describes the flaw in the {obj} below:\n\n{code}",
        "Label this Solidity {obj} with the matching Smart Contract Weakness Classification (SWC) id:\n\n{code}",
        "Here is a Solidity {obj}:\n\n{code}\n\nWhich SWC identifier fits its vulnerability best?",
        "Determine the SWC category of the security issue in this {obj}:\n\n{code}",
        "Map the vulnerability in the following {obj} to the SWC registry:\n\n{code}",
    ),
    "rewrite": (
        "Rewrite the following Solidity {obj} to remove its {topic_}vulnerability:\n\n{code}",
        "Provide a secure version of this {obj} that fixes the {topic_}issue:\n\n{code}",
        "{code}\n\nRewrite the {obj} above so that the {topic_}vulnerability is gone.",
        "Refactor this {obj} to eliminate its {topic_}weakness:\n\n{code}",
        "Produce a hardened version of the following Solidity {obj}, free of the {topic_}flaw:\n\n{code}",
        "Fix the {topic_}vulnerability in the {obj} below and return the corrected code:\n\n{code}",
        "Rewrite this {obj} following secure Solidity practices, addressing its {topic_}vulnerability:\n\n{code}",
        "Return a safe rewrite of the following {obj}, with the {topic_}issue removed:\n\n{code}",
    ),
}
# How a focus the record's request named is said (after the request): the record's own words for it.
_FOCUS: tuple[str, ...] = (
    "Pay particular attention to {x}.",
    "Focus on {x}.",
    "Look closely at {x}.",
    "Consider {x} in particular.",
)
# fmt: on


def _build() -> dict[str, tuple[Template, ...]]:
    return {fam: tuple(Template(f"{fam}/{i:02d}", fam, t) for i, t in enumerate(_TEXTS[fam], start=1))
            for fam in FAMILIES}


TEMPLATES: dict[str, tuple[Template, ...]] = _build()
_BY_ID: dict[str, Template] = {t.id: t for ts in TEMPLATES.values() for t in ts}


def templates(family: str) -> tuple[Template, ...]:
    """The templates of a family."""
    if family not in TEMPLATES:
        raise KeyError(f"unknown task family {family!r} (families: {', '.join(FAMILIES)})")
    return TEMPLATES[family]


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
_REVIEW_RE = re.compile(r"^\W*(?:please\s+)?(?:review|analy[sz]e|examine|evaluate|assess|inspect|audit|consider|check"
                        r"|look)\b", re.I)
_SWC_ID_RE = re.compile(r"\bSWC[-\s]?\d{3}\b", re.I)


def _prose(instruction: str) -> str:
    """The instruction with every code span taken out (so identifiers like `fixFee` do not count)."""
    from swcdata.solidity.spans import extract_code

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
    SWC id, so ``rewrite`` is checked first, then ``explain_fix``, ``classify``, and ``find``, which is
    ``review`` when the request opens with a review verb (review, analyze, examine, evaluate, ...).
    """
    prose = _prose(instruction)
    if _REWRITE_RE.search(prose):
        return "rewrite"
    if _FIX_RE.search(prose):
        return "explain_fix"
    if _CLASSIFY_RE.search(prose):
        return "classify"
    if _FIND_RE.search(prose):
        return "review" if _REVIEW_RE.match(prose) else "find"
    return None


def _has_code(response: str) -> bool:
    from swcdata.solidity.spans import extract_code

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


# ------------------------------------------------------------------------------ reading the request

Part = str | tuple[int, int]  # literal text, or a range of the instruction (rebuilt by the caller)


@dataclass(frozen=True, slots=True)
class Request:
    """What an instruction asks around its main code, read from its prose, so that a template can say
    the same thing in other words: the task family, the vulnerability it names (``topic``), what it asks
    to focus on (``focus``: phrases of its own, such as "the line 'x = y;'" or "fund transfers"), and
    the sentences a template cannot say for it: descriptions before the code (``before``) and specific
    questions after it (``after``), kept as they are. Texts are lists of parts: literal strings and
    ranges of the instruction (which the caller rebuilds with the variant's code and names)."""

    family: str
    topics: tuple[str, ...]
    focus: tuple[tuple[Part, ...], ...]
    before: tuple[tuple[Part, ...], ...]
    after: tuple[tuple[Part, ...], ...]


# The words a request may use without saying anything a template does not say too: verbs of asking,
# the code's own nouns, the family's nouns, hedges and function words.
_VOCAB_TEXT = """
a an the this that these those it its it's their there here following below above provided given shown
attached presented snippet code function functions modifier modifiers constructor contract contracts smart
solidity implementation logic excerpt method piece segment fragment block part section program source
in of for to and or with within on at by from as into about any all some each such every both whole
is are be been being was were has have had do does did can could would should might may will must shall
what which where why how whether if when
review reviewing analyze analyse analyzing analysing analysis examine examining evaluate evaluating assess
assessing inspect inspecting audit auditing check checking consider considering look looking identify
identifying find finding detect detecting determine determining discuss discussing describe describing
explain explaining explanation point out spot highlight list name note
please you your me us we i kindly help tell let know
potential potentially possible possibly any existing present exist exists arise occur occurring lead
cause result could introduce introduces contain contains containing have suffer suffers affect affecting
security secure safety safe vulnerability vulnerabilities vulnerable issue issues problem problems flaw flaws
bug bugs weakness weaknesses risk risks risky concern concerns error errors threat threats
exploit exploits exploitable attack attacks attacker
fix fixes fixed fixing correct corrected correction corrections revise revised revision modify modified
modification modifications mitigate mitigating mitigation remediate remediation resolve resolving resolution
address addressing improve improved improvement improvements suggest suggesting suggestion suggestions
propose proposing proposal provide providing offer give update updated version versions change changes
recommend recommendation recommendations prevent preventing avoid avoiding eliminate secure safer
rewrite rewritten refactor refactored harden hardened
classify classification category categorize categorise swc registry id identifier class entry type label
also then so further additionally finally first
related relevant regarding concerning specific specifically particular particularly especially
focus focusing focused attention way ways
execution executing execute during impact impacts functionality functioning function's reliability reliable
operation process proper properly correctly correctness unintended unexpected behavior behaviour behave work
works working intended they them one ones optimization optimizations optimize approach solution enhance
securely safely necessary more best see found indicate overall general generally robust robustness
ethereum take line lines statement arithmetic prone susceptible due exposed expose original reads read follows
alternative alternatives fits fit applies apply matches match describes describe best show
"""
_VOCAB = frozenset(_VOCAB_TEXT.split())

_TOPICS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((k, re.compile(p, re.I)) for k, p in (
    ("reentrancy", r"\bre-?entran(?:cy|t|ce)\b"),
    ("overflow", r"\b(?:integer\s+|arithmetic\s+)?(?:over|under)flows?\b(?:\s*(?:and|or|/)\s*(?:over|under)flows?\b)?"),
    ("assert", r"\bassert(?:ion)?\s+(?:violations?|failures?)\b"),
    ("dos", r"\bdenial[\s-]+of[\s-]+service\b|\bDoS\b"),
    ("failed-call", r"\bfailed\s+(?:external\s+)?calls?\b|\bunchecked\s+(?:external\s+|low[\s-]level\s+)?calls?\b"),
    ("tod", r"\btransaction[\s-]+order(?:ing)?(?:[\s-]+dependen(?:ce|cy|t))?\b|\bfront[\s-]?running\b"
            r"|\brace\s+conditions?\b"),
    ("timestamp", r"\btimestamp[\s-]+dependen(?:ce|cy)\b"),
    ("swc", r"\bSWC[\s-]?\d{3}\b"),
))
# topic -> (adjective form, noun form); overflow is refined by what the prose says (see _topic_forms)
_TOPIC_FORMS = {
    "reentrancy": ("reentrancy", "reentrancy"),
    "overflow": ("integer overflow", "integer overflow"),
    "underflow": ("integer underflow", "integer underflow"),
    "overflow/underflow": ("overflow/underflow", "integer overflow and underflow"),
    "assert": ("assert-violation", "assert violations"),
    "dos": ("denial-of-service", "denial of service"),
    "failed-call": ("failed-call", "failed calls"),
    "tod": ("transaction-ordering", "transaction order dependence"),
    "timestamp": ("timestamp-dependence", "timestamp dependence"),
}

_END = (r"(?=\s*(?:[.?!;:](?:\s|$)|$|,\s*(?:and|or|then|which|so|but|as|while|to|if|and\s+then|particularly"
        r"|especially|specifically|notably|focusing|with)\b"
        r"|\s+and\s+(?:suggest|provide|explain|describe|propose|recommend|identify|determine|discuss|give|show"
        r"|offer|fix|rewrite|refactor|point|list|detail|outline)\b|\s+to\s+(?:identify|determine|detect|find|see)\b))")
_X = r"(?P<x>[^.?!;:\n]+?)"
_LEADS = (
    r"(?:,\s*)?(?:and\s+|while\s+)?(?:particularly|especially|specifically|notably|mainly|in\s+particular)\s*,?\s*"
    r"(?:(?:when\s+it\s+comes\s+to|with\s+(?:regard|respect)\s+to|in\s+relation\s+to|in\s+terms\s+of"
    r"|as\s+it\s+relates\s+to|(?:that\s+are\s+)?related\s+to|relating\s+to|(?:focusing|concentrating)\s+on|in|on|at"
    r"|around"
    r"|regarding|concerning|about|with|for|within)\s+)?",
    r"(?:,\s*)?(?:and\s+|while\s+)?(?:with\s+(?:a\s+|an\s+)?(?:special\s+|particular\s+|specific\s+)?(?:focus|emphasis)"
    r"\s+on|focusing(?:\s+(?:especially|specifically|particularly|mainly))?\s+on|concentrating\s+on"
    r"|paying\s+(?:special\s+|particular\s+|close\s+)?attention\s+to|looking\s+(?:closely\s+)?at)\s+",
    r"(?:,\s*)?\b(?:issues?|problems?|concerns?|risks?|vulnerabilit(?:y|ies)|flaws?|bugs?|weakness(?:es)?)\s+"
    r"(?:(?:that\s+)?(?:may|might|could|can)\s+(?:arise|occur|happen|exist)\s+)?(?:with|in|of|during|when|while"
    r"|for)\s+",
    r"(?:,\s*)?\b(?:(?:that\s+are\s+|that\s+might\s+be\s+)?related\s+to|relating\s+to|regarding|concerning"
    r"|with\s+(?:regard|respect)\s+to|in\s+relation\s+to|in\s+(?:its|their|the)\s+handling\s+of|in\s+how\s+it\s+handles"
    r"|around|involving|associated\s+with)\s+",
)
_FOCUS_RES = tuple(re.compile(lead + _X + _END, re.I) for lead in _LEADS)
_Q = "(?:['`\"“‘]?\x00+['`\"”’]?|`[^`\n]+`|'[\\w.$()]+')"
_LINE_RE = re.compile(r"\b(?:in|at|on)\s+(?P<x>(?:the\s+)?(?:line|statement|expression|call|condition|check"
                      r"|assignment|operation)s?)\s*:?\s*(?P<q>" + _Q + r"(?:\s*(?:,|and|, and)\s*" + _Q + r")*)", re.I)
_SUBJ_RE = re.compile(r"\b(?:the|this)\s+(?:" + _Q + r"\s+)?(?:(?:following|given|provided|solidity|smart|contract"
                      r"|internal|public|external|private|payable|fallback)\s+)*(?:[a-z]+(?:-[a-z]+)*\s+){0,2}?"
                      r"(?:function|modifier|constructor|contract|code\s+snippet|snippet|code|implementation)\b",
                      re.I)
_WHICH_RE = re.compile(r"^(?:please\s+)?(?:review|examine|analy[sz]e|evaluate|consider|inspect|audit|check|look\s+at)"
                       r"\s+(?P<subj>the\s+(?:" + _Q + r"|following(?:\s+solidity)?)\s+(?:function|modifier"
                       r"|constructor|contract|code))(?:\s+(?:below|above|provided))?,?\s+(?:which|that)\s+"
                       r"(?P<rest>[^:]+?)\s*[:.]?$", re.I)
_WORD_RE = re.compile(r"[A-Za-z0-9_][\w'’-]*")  # (a number is a word: "Solidity 0.8" says something)
_IDENT_RE = re.compile(r"[A-Za-z_$][\w$]*")


def _sentences(masked: str, a: int, b: int) -> list[tuple[int, int]]:
    """Sentence ranges of masked[a:b] (code is masked, so its punctuation does not split)."""
    out: list[tuple[int, int]] = []
    start = a
    i = a
    while i < b:
        ch = masked[i]
        end = None
        if ch == "\n":
            end = i
        elif ch in ".?!:" and (i + 1 >= b or masked[i + 1] in " \t\n"):
            end = i + 1
        if end is not None:
            if masked[start:end].strip():
                out.append((start, end))
            start = end if ch != "\n" else i + 1
        i += 1
    if masked[start:b].strip():
        out.append((start, b))
    trimmed = []
    for s, e in out:
        while s < e and masked[s] in " \t\n":
            s += 1
        while e > s and masked[e - 1] in " \t\n":
            e -= 1
        trimmed.append((s, e))
    return trimmed


def _topics_in(text: str) -> list[str]:
    found: list[str] = []
    for key, rx in _TOPICS:
        for m in rx.finditer(text):
            t = key
            if key == "overflow":
                w = m.group(0).lower()
                t = "overflow/underflow" if ("over" in w and "under" in w) else ("underflow" if "under" in w
                                                                                 else "overflow")
            elif key == "swc":
                t = "SWC-" + re.sub(r"\D", "", m.group(0))
            if t not in found:
                found.append(t)
    return found


def _known(word: str) -> bool:
    w = word.lower().strip("'’-")
    w = w[:-2] if w.endswith(("'s", "’s")) else w
    if w in _VOCAB:
        return True
    for suf in ("s", "es", "d", "ed", "ing"):
        if w.endswith(suf) and (w[: -len(suf)] in _VOCAB or w[: -len(suf)] + "e" in _VOCAB):
            return True
    return False


def _covered(text: str, names: frozenset[str] = frozenset()) -> bool:
    """Do the words left in a sentence say nothing beyond what a template says? (``names``: the main code's
    identifiers, which the code shows anyway.)"""
    return "\x00" not in text and all(_known(w) or w in names for w in _WORD_RE.findall(text))


def analyse(instruction: str, spans: list[Any], main: int, frame: tuple[int, int], family: str) -> Request | None:
    """Read the request around the main code (``spans[main]``, shown at ``frame``: its characters with
    its fence or quotes). None when a sentence both asks for something and says more than a template can
    (its details would be lost): then the record keeps its own wording."""
    names = frozenset(_IDENT_RE.findall(spans[main].text))
    masked_chars = list(instruction)
    for k, s in enumerate(spans):
        if k != main:  # (a quoted name of the main code is no detail: the code shows it)
            masked_chars[s.start : s.end] = " " * (s.end - s.start) if s.text in names else "\x00" * (s.end - s.start)
    masked = "".join(masked_chars)
    topics: list[str] = []
    focus: list[tuple[Part, ...]] = []
    before: list[tuple[Part, ...]] = []
    after: list[tuple[Part, ...]] = []
    replaced = 0
    for lo, hi, kept in ((0, frame[0], before), (frame[1], len(instruction), after)):
        for a, b in _sentences(masked, lo, hi):
            sent = masked[a:b]
            m = _WHICH_RE.match(sent)
            if m:  # "Review the `f` function below, which does X:" -> "The `f` function does X."
                sa, sb = a + m.start("subj"), a + m.end("subj")
                ra, rb = a + m.start("rest"), a + m.end("rest")
                kept.append(("T", (sa + 1, sb), " ", (ra, rb), "."))
                continue
            cut: list[tuple[int, int]] = []
            found_focus: list[tuple[Part, ...]] = []
            for rx in (_LINE_RE, *_FOCUS_RES):
                for fm in rx.finditer(sent):
                    if any(x < fm.end() and fm.start() < y for x, y in cut):
                        continue
                    if rx is _LINE_RE:
                        found_focus.append(((a + fm.start("x"), a + fm.end("x")), " ",
                                            (a + fm.start("q"), a + fm.end("q"))))
                    else:
                        x = fm.group("x")
                        if _SUBJ_RE.search(x):
                            continue  # ("issue in the following function be resolved": not a focus)
                        ts = _topics_in(x)
                        rest = x
                        for _, trx in _TOPICS:
                            rest = trx.sub(" ", rest)
                        if ts and _covered(rest):
                            topics += [t for t in ts if t not in topics]
                        elif _covered(x):
                            pass  # ("related to security in its implementation": nothing to focus on)
                        else:
                            found_focus.append(((a + fm.start("x"), a + fm.end("x")),))
                    cut.append((fm.start(), fm.end()))
            rest_chars = list(sent)
            for x, y in cut:
                rest_chars[x:y] = " " * (y - x)
            rest = "".join(rest_chars)
            ts = _topics_in(rest)
            for _, trx in _TOPICS:
                rest = trx.sub(" ", rest)
            rest = _SUBJ_RE.sub(" ", rest)
            if _covered(rest, names):
                topics += [t for t in ts if t not in topics]
                focus += found_focus
                replaced += 1
                continue
            if _asks(sent) or (kept is before and sent.rstrip().endswith("?")):
                return None  # a request with details of its own: a template would drop them or ask twice
            kept.append(((a, b),))
    if len(topics) > 2 or not replaced:
        return None  # (nothing to rewrite: a template would only add a request to the record's own)
    if not before and not after and not focus and not topics and family not in FAMILIES:
        return None  # pragma: no cover
    return Request(family, tuple(topics), tuple(focus), tuple(before), tuple(after))


_ASK_RE = re.compile(r"^\W*(?:to\s+[^,]{1,60},\s*)?(?:please\s+|now\s+|then\s+|also\s+)?(?:review|analy[sz]e"
                     r"|examine|evaluate|assess|inspect|audit|check|consider|look|identify|find|detect|determine|discuss|describe|explain|point|spot"
                     r"|fix|resolve|address|mitigate|suggest|propose|provide|give|rewrite|refactor|modify|update"
                     r"|correct|revise|improve|secure|classify|name|list|show|tell|assess|investigate|ensure"
                     r"|implement|add|use|replace|remove|make|focus|pay|can you|could you|would you)\b", re.I)


def _asks(sentence: str) -> bool:
    """Is the sentence a request (imperative, or "can you ...")? A question or description is kept as it is."""
    return _ASK_RE.match(sentence) is not None


def _topic_forms(topics: tuple[str, ...]) -> tuple[str, str]:
    adj, noun = [], []
    for t in topics:
        a, n = _TOPIC_FORMS.get(t, (t, t))
        adj.append(a)
        noun.append(n)
    if not adj:
        return "", ""
    join = " and ".join
    return join(adj) + " ", " for " + join(noun)


def render(tpl: Template, code: str, *, obj: str, topics: tuple[str, ...] = (), focus: list[str] | None = None,
           before: list[str] | None = None, after: list[str] | None = None, key: int = 0) -> str:
    """The instruction a template makes: the record's kept description first, then the template's request
    with the code, the focus the record named, and its kept questions last."""
    topic_, for_topic = _topic_forms(topics)
    a_obj = "some code" if obj == "code" else ("an " if obj[0] in "aeiou" else "a ") + obj
    text = tpl.text.format(code=code, obj=obj, a_obj=a_obj, topic_=topic_, for_topic=for_topic)
    if focus:
        line = _FOCUS[key % len(_FOCUS)].format(x=" and ".join(focus))
        text += ("\n\n" if tpl.text.endswith("{code}") else " ") + line
    if before:
        head = " ".join(b.strip().removesuffix(":").rstrip() for b in before)
        if head[-1:] not in ".?!":
            head += "."
        text = head + " " + text
    if after:
        text += "\n\n" + " ".join(a.strip() for a in after)
    return text


# ------------------------------------------------------------------------------ the choice


def _rank(seed: int, record_id: str, family: str, template_id: str) -> int:
    return xxhash.xxh3_64_intdigest(f"template\x1f{seed}\x1f{record_id}\x1f{family}\x1f{template_id}".encode())


def choose(record_id: str, family: str, k: int, seed: int = 0, *, code_first: bool = True) -> Template:
    """The template of variant ``k`` of a record: deterministic (a hash of the seed, the record id and the
    template id orders the family's templates; never ``random``) and different for ``k = 0, 1, ...``
    until the family's templates run out. Each template is as likely as any other, so over a build every
    template of a family gets about its fair share. ``code_first=False`` (the record keeps a description
    that must come before the code) leaves out the templates that open with the code."""
    pool = templates(family)
    if not code_first:
        pool = tuple(t for t in pool if not t.code_first)
    order = sorted(pool, key=lambda t: (_rank(seed, record_id, family, t.id), t.id))
    return order[k % len(order)]
