"""Near-duplicates planted into real seed records, and how well dedup finds them.

The planting behind `bench/dedup_curve.py` (which chose dedup's defaults: recall >= 0.95 at precision
>= 0.98 on planted pairs) and behind the tests that hold dedup to those targets: a base set of mutually
distinct seed records, a near-duplicate variant of some of them (identifiers renamed, code reflowed,
lead phrase reworded, a comment line added) and hard negatives (the same prose, different code), scored
by precision and recall over the pairs that dedup's clusters imply. Seed records are read from the
folder given (never copied into the repository).
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
import pyarrow as pa

from swcdata.similarity import minhash
from swcdata.solidity.lexer import code_tokens
from swcdata.solidity.spans import CodeSpan, extract_code, is_codeish
from swcdata.steps.dedup import DedupConfig, dedup, record_signatures
from swcdata.steps.validate import ValidateConfig, load_valid

DEFAULT_SEED_DIR = Path(os.environ.get("SWCDATA_SEED_DIR",
                                     Path(__file__).resolve().parents[3] / "shared" / "seed-data"))

# The aggressive pre-dedup that makes the base set mutually non-duplicate.
PREFILTER = DedupConfig(threshold=0.5, ngram=3, abstract_identifiers=True, workers=1)

TARGET_RECALL = 0.95
TARGET_PRECISION = 0.98

# ============================================================================= planting: the edits

# fmt: off
_NAME_WORDS = (
    "user", "token", "total", "pending", "reward", "stake", "vault", "pool", "fee", "holder", "account",
    "deposit", "claim", "amount", "limit", "rate", "index", "count", "cap", "supply", "price", "payout",
    "share", "credit", "debt", "asset", "fund", "escrow", "ledger", "quota", "bid", "order", "epoch",
    "target", "payee", "recipient", "wallet", "treasury", "bonus", "grant",
)
_COMMENTS = (
    "// TODO: review this before deployment", "// NOTE: audited version", "// check the state first",
    "// update bookkeeping", "// see issue #42", "// external interaction below", "// keep in sync with docs",
    "// gas: this loop may be long", "// FIXME: edge cases", "// added for clarity",
)
# (lead phrase at the start of the instruction, rewordings)
_LEADS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Identify the vulnerability in", ("Find the security flaw in", "Spot the weakness in")),
    ("Identify and correct the", ("Find and fix the", "Locate and repair the")),
    ("Identify and fix the", ("Find and repair the", "Locate and correct the")),
    ("Identify any potential issues", ("Point out any possible problems", "List any likely problems")),
    ("Review the following", ("Take a look at the following", "Go over the following")),
    ("Examine the following", ("Inspect the code below and the following", "Study the following")),
    ("Examine the", ("Look closely at the", "Scrutinise the")),
    ("Analyze the following", ("Study the following", "Assess the following")),
    ("Analyze the", ("Assess the", "Study the")),
    ("Consider the following", ("Look at the following", "Take the following")),
    ("Consider the", ("Look at the", "Take the")),
    ("Evaluate the following", ("Assess the following", "Judge the following")),
    ("Inspect the following", ("Check the following", "Go through the following")),
    ("In the following", ("Within the following", "Inside the following")),
    ("What issues might be", ("Which problems could be", "What problems may be")),
    ("What potential issues", ("Which possible problems", "What likely problems")),
    ("What is the security", ("Which is the security", "What would be the security")),
    ("The following code contains", ("The code below has", "This code includes")),
    ("The following code", ("The code below", "This code")),
    ("The following function", ("The function below", "This function")),
    ("Please explain the vulnerability", ("Explain the weakness", "Describe the vulnerability")),
    ("Here is a", ("Below is a", "This is a")),
    ("Given the code snippet", ("For the snippet", "Looking at the code snippet")),
    ("How can the", ("In what way can the", "How could the")),
    ("Fix the", ("Repair the", "Correct the")),
    ("Address the", ("Deal with the", "Resolve the")),
)
_LEAD_PREFIXES = ("Security review: ", "Audit request: ", "Quick question: ", "As an auditor, answer this: ")
# fmt: on
_LEAD_RES = tuple((re.compile(r"\s*" + re.escape(lead) + r"\b"), alts) for lead, alts in _LEADS)

# String literals and comments are kept verbatim by the reflow; only the layout between them changes.
_OPAQUE_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|//[^\n]*|/\*[\s\S]*?(?:\*/|\Z)')
_WS_RE = re.compile(r"\s+")
_TIGHT_RE = re.compile(r"\s*([(){}\[\];,])\s*")


def _word_re(names: Sequence[str]) -> re.Pattern[str]:
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(r"(?<![\w$])(?:" + alt + r")(?![\w$])")


def user_identifiers(code: str) -> list[str]:
    """Identifiers of ``code`` that are not keywords, elementary types or builtins (in first-seen order)."""
    raw = code_tokens(code)
    abstracted = code_tokens(code, abstract_identifiers=True)
    seen: dict[str, None] = {}
    for t, a in zip(raw, abstracted, strict=True):
        if a == "ID" and t != "ID":
            seen.setdefault(t, None)
    return list(seen)


def _codeish_name(name: str) -> bool:
    """camelCase, snake_case, with digits or a leading underscore: unlikely to be an English word."""
    body = name.lstrip("_$")
    return name != body or "_" in body or any(c.isdigit() for c in body) or (
        any(c.isupper() for c in body[1:]) and any(c.islower() for c in body)
    ) or body[:1].isupper()


def new_name(orig: str, rng: random.Random, taken: set[str]) -> str:
    """A plausible replacement of ``orig`` in the same naming style, not in ``taken``."""
    lead = len(orig) - len(orig.lstrip("_$"))
    prefix, body = orig[:lead], orig[lead:]
    while True:
        w1, w2 = rng.sample(_NAME_WORDS, 2)
        if body.isupper() and len(body) > 1:
            name = f"{w1.upper()}_{w2.upper()}"
        elif "_" in body and body.lower() == body:
            name = f"{w1}_{w2}"
        elif body[:1].isupper():
            name = w1.capitalize() + w2.capitalize()
        else:
            name = w1 + w2.capitalize()
        name = prefix + name
        if name not in taken:
            return name


def rename_identifiers(instruction: str, response: str, rng: random.Random,
                       k_range: tuple[int, int] = (2, 4)) -> tuple[str, str, dict[str, str]] | None:
    """Rename 2-4 user identifiers of the record's code consistently in both fields (word boundaries).
    None when the code has fewer than two renameable identifiers."""
    idents: dict[str, None] = {}
    for text in (instruction, response):
        for span in extract_code(text):
            for name in user_identifiers(span.text):
                idents.setdefault(name, None)
    cands = [n for n in idents if len(n) >= 3 and n != "ID"]
    cands.sort(key=lambda n: not _codeish_name(n))  # stable: code-looking names first
    preferred = [n for n in cands if _codeish_name(n)]
    pool = preferred if len(preferred) >= k_range[0] else cands
    if len(pool) < k_range[0]:
        return None
    k = min(rng.randint(*k_range), len(pool))
    chosen = rng.sample(pool, k)
    taken = set(_WS_RE.split(instruction + " " + response)) | set(idents)
    mapping: dict[str, str] = {}
    for n in chosen:
        mapping[n] = new_name(n, rng, taken)
        taken.add(mapping[n])
    pat = _word_re(list(mapping))

    def sub(m: re.Match[str]) -> str:
        return mapping[m.group()]

    return pat.sub(sub, instruction), pat.sub(sub, response), mapping


def _segments(code: str) -> list[tuple[bool, str]]:
    """(opaque, text) pieces: string literals and comments are opaque."""
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _OPAQUE_RE.finditer(code):
        if m.start() > pos:
            out.append((False, code[pos : m.start()]))
        out.append((True, m.group()))
        pos = m.end()
    if pos < len(code):
        out.append((False, code[pos:]))
    return out


def _expand(code: str, indent: str) -> str:
    """One statement per line, re-indented by brace depth (string literals and comments intact)."""
    out: list[str] = []
    depth = paren = 0
    at_line_start = True

    def newline() -> None:
        nonlocal at_line_start
        while out and out[-1] == " ":
            out.pop()
        if out and out[-1] != "\n":
            out.append("\n")
        at_line_start = True

    def emit(s: str) -> None:
        nonlocal at_line_start
        if at_line_start:
            if s == " ":
                return
            out.append(indent * depth)
            at_line_start = False
        out.append(s)

    for opaque, text in _segments(code):
        if opaque:
            emit(text)
            if text.startswith("//"):
                newline()
            continue
        for ch in _WS_RE.sub(" ", text):
            if ch == "{":
                emit(ch)
                depth += 1
                newline()
            elif ch == "}":
                depth = max(depth - 1, 0)
                newline()
                emit(ch)
                newline()
            elif ch == ";":
                emit(ch)
                if paren == 0:
                    newline()
            else:
                if ch == "(":
                    paren += 1
                elif ch == ")":
                    paren = max(paren - 1, 0)
                emit(ch)
    return "".join(out).rstrip()


def _compact(code: str, tight: bool) -> str:
    """All layout collapsed to single spaces (a newline kept after line comments); ``tight`` also
    drops spaces around brackets and separators."""
    parts: list[str] = []
    for opaque, text in _segments(code):
        if opaque:
            parts.append(text + ("\n" if text.startswith("//") else ""))
        else:
            t = _WS_RE.sub(" ", text)
            parts.append(_TIGHT_RE.sub(r"\1", t) if tight else t)
    return "".join(parts).strip()


def reflow_code(code: str, rng: random.Random) -> str:
    """Whitespace/indentation reflow: a one-liner is expanded to one statement per line (2, 4 spaces
    or a tab), a multi-line body is re-indented differently or compacted to one line."""
    multiline = "\n" in code.strip()
    r = rng.random()
    if not multiline:
        if r < 0.8:
            return _expand(code, rng.choice(("  ", "    ", "\t")))
        return _compact(code, tight=True)
    if r < 0.5:
        return _compact(code, tight=rng.random() < 0.5)
    return _expand(code, rng.choice(("  ", "   ", "\t")))


def insert_comment(code: str, rng: random.Random) -> str:
    """A ``// comment`` line after the first ``{`` (else after the first ``;``, else before the code)."""
    comment = rng.choice(_COMMENTS)
    for ch in "{;":
        pos = 0
        for opaque, text in _segments(code):
            if not opaque and ch in text:
                at = pos + text.index(ch) + 1
                line_start = code.rfind("\n", 0, at) + 1
                indent = code[line_start:][: len(code[line_start:]) - len(code[line_start:].lstrip(" \t"))]
                inner = indent + ("    " if ch == "{" else "")
                rest = code[at:]
                if rest.startswith("\n"):  # keep the next line's indentation
                    nxt = rest[1:]
                    inner = nxt[: len(nxt) - len(nxt.lstrip(" \t"))] or inner
                    return code[:at] + "\n" + inner + comment + rest
                return code[:at] + "\n" + inner + comment + "\n" + inner + rest.lstrip(" \t")
            pos += len(text)
    return comment + "\n" + code


def reword_lead(instruction: str, rng: random.Random) -> str:
    """Reword the lead phrase of the instruction (a known phrase, else a prefix before the first clause)."""
    for pat, alts in _LEAD_RES:
        m = pat.match(instruction)
        if m is not None:
            ws = instruction[: len(instruction) - len(instruction.lstrip())]
            return ws + rng.choice(alts) + instruction[m.end() :]
    body = instruction.lstrip()
    if body[:1].isupper() and not body.startswith(("I ", "I'")):
        body = body[0].lower() + body[1:]
    return rng.choice(_LEAD_PREFIXES) + body


def _blocks(text: str) -> list[CodeSpan]:
    return [s for s in extract_code(text) if s.shape != "inline"]


def _edit_blocks(text: str, rng: random.Random, comment: bool) -> tuple[str, bool]:
    """Reflow every code block of ``text``; insert a comment in the first one when ``comment``."""
    spans = _blocks(text)
    out = text
    done = False
    for i, s in reversed(list(enumerate(spans))):
        new = reflow_code(s.text, rng)
        if comment and i == 0:
            new = insert_comment(new, rng)
            done = True
        out = out[: s.start] + new + out[s.end :]
    return out, done


def make_variant(instruction: str, response: str, rng: random.Random) -> tuple[str, str] | None:
    """All four edits; None when the record has too few identifiers or no code block."""
    if not (_blocks(instruction) or _blocks(response)):
        return None
    renamed = rename_identifiers(instruction, response, rng)
    if renamed is None:
        return None
    ins, res, _ = renamed
    ins, commented = _edit_blocks(ins, rng, comment=True)
    res, _ = _edit_blocks(res, rng, comment=not commented)
    ins = reword_lead(ins, rng)
    if not (_blocks(ins) or _blocks(res)):
        return None
    return ins, res


def _statements(blocks: Sequence[CodeSpan]) -> list[str]:
    """One-line statements of code blocks (for inline code in prose)."""
    out: list[str] = []
    for b in blocks:
        for part in _compact(b.text, tight=False).split(";"):
            part = part.strip().lstrip("{}").strip()
            if part and "\n" not in part and "`" not in part and "'" not in part and len(part) <= 80:
                out.append(part + ";")
    return out


def make_hard_negative(a_ins: str, a_res: str, c_ins: str, c_res: str) -> tuple[str, str] | None:
    """The prose of record A with the code of record C (same template, different code): A's code
    blocks become C's blocks, A's code-like inline spans become statements of C's code.
    None when A's instruction or C has no code block."""
    c_blocks_i, c_blocks_r = _blocks(c_ins), _blocks(c_res)
    if not _blocks(a_ins) or not (c_blocks_i or c_blocks_r):
        return None
    stmts = _statements(c_blocks_i + c_blocks_r) or ["return;"]

    def swap(text: str, theirs: list[CodeSpan]) -> str:
        out = text
        spans = [sp for sp in extract_code(text) if sp.shape != "inline" or is_codeish(sp.text)]
        nb = sum(1 for sp in spans if sp.shape != "inline")
        ni = len(spans) - nb
        for sp in reversed(spans):
            if sp.shape == "inline":
                ni -= 1
                new = stmts[ni % len(stmts)]
            else:
                nb -= 1
                new = theirs[nb % len(theirs)].text
            out = out[: sp.start] + new + out[sp.end :]
        return out

    return swap(a_ins, c_blocks_i or c_blocks_r), swap(a_res, c_blocks_r or c_blocks_i)


# ============================================================================= the planted table


def seed_paths(seed_dir: Path) -> list[Path]:
    """The five per-category seed files."""
    files = sorted(seed_dir.glob("solidity_vunerability_SWC-*.jsonl"))
    if len(files) != 5:
        raise FileNotFoundError(f"expected 5 per-category seed files in {seed_dir}, found {len(files)}")
    return files


def base_pool(seed_dir: Path, prefilter: DedupConfig = PREFILTER) -> pa.Table:
    """Valid records of the per-category seed files that survive an aggressive near-dedup."""
    table, _, _ = load_valid([str(p) for p in seed_paths(seed_dir)], ValidateConfig(check_code=False, workers=1))
    kept, _ = dedup(table, prefilter)
    return kept


@dataclass(slots=True)
class Planted:
    """The base records plus planted ones in one table, and the ground truth as row indices."""

    table: pa.Table
    n_base: int
    variants: list[tuple[int, int]] = field(default_factory=list)  # (base row, variant row)
    hard: list[tuple[int, int]] = field(default_factory=list)  # (prose donor row, hard negative row)

    @property
    def planted_rows(self) -> set[int]:
        return {v for _, v in self.variants} | {h for _, h in self.hard}


def plant(pool: pa.Table, n_base: int, n_plant: int, n_hard: int, seed: int = 0) -> Planted:
    """Sample ``n_base`` base records from ``pool`` and plant ``n_plant`` variants and ``n_hard``
    hard negatives (code donors are pool records outside the base set)."""
    rng = random.Random(seed)
    n = pool.num_rows
    if n_base > n:
        raise ValueError(f"--base {n_base} exceeds the {n} mutually non-duplicate seed records")
    order = list(range(n))
    rng.shuffle(order)
    base_rows = sorted(order[:n_base])
    donor_rows = order[n_base:]
    base = pool.take(pa.array(base_rows, type=pa.int64()))
    ins: list[str] = base.column("instruction").to_pylist()
    res: list[str] = base.column("response").to_pylist()
    cat: list[str] = base.column("category").to_pylist()
    d_ins: list[str] = pool.column("instruction").to_pylist()
    d_res: list[str] = pool.column("response").to_pylist()

    candidates = list(range(n_base))
    rng.shuffle(candidates)
    out: list[dict[str, str]] = []
    kinds: list[tuple[Literal["variant", "hard"], int]] = []
    used: set[int] = set()
    for b in candidates:
        if len(used) >= n_plant:
            break
        v = make_variant(ins[b], res[b], random.Random(f"{seed}:variant:{b}"))
        if v is not None:
            out.append({"instruction": v[0], "response": v[1], "category": cat[b]})
            kinds.append(("variant", b))
            used.add(b)
    donors = iter(c for c in donor_rows if _blocks(d_ins[c]) or _blocks(d_res[c]))
    n_h = 0
    for a in candidates:
        if n_h >= n_hard:
            break
        if a in used or not _blocks(ins[a]):
            continue
        c = next(donors, None)
        if c is None:
            break
        h = make_hard_negative(ins[a], res[a], d_ins[c], d_res[c])
        if h is not None:
            out.append({"instruction": h[0], "response": h[1], "category": cat[a]})
            kinds.append(("hard", a))
            used.add(a)
            n_h += 1
    planted_tab = _load_records(out)
    # load_valid may quarantine a planted line: map rows back by source line (1-based)
    lines: list[int] = [s["line"] for s in planted_tab.column("source").to_pylist()]
    table = pa.concat_tables([base, planted_tab])
    result = Planted(table=table, n_base=n_base)
    for row, line in enumerate(lines):
        kind, b = kinds[line - 1]
        (result.variants if kind == "variant" else result.hard).append((b, n_base + row))
    return result


def _load_records(records: list[dict[str, str]]) -> pa.Table:
    with tempfile.TemporaryDirectory(prefix="dedup-curve-") as tmp:
        path = Path(tmp) / "planted.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
        table, _, _ = load_valid([str(path)], ValidateConfig(check_code=False, workers=1))
    return table


# ============================================================================= scoring


@dataclass(slots=True)
class Score:
    threshold: float
    ngram: int
    abstract_identifiers: bool
    num_perm: int
    precision: float
    recall: float
    seconds: float
    predicted: int  # predicted pairs involving a planted record
    true_positives: int
    hard_merged: int  # hard negatives that ended in a cluster with any other record

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def passes(self) -> bool:
        """The target, and no hard negative merged."""
        return self.recall >= TARGET_RECALL and self.precision >= TARGET_PRECISION and self.hard_merged == 0

    @property
    def key(self) -> tuple[int, bool, float]:
        return (self.ngram, self.abstract_identifiers, self.threshold)


def clusters_of(table: pa.Table, cfg: DedupConfig) -> tuple[np.ndarray, float]:
    """Run dedup; return each row's cluster label (the row index of its kept representative) and seconds."""
    t = time.perf_counter()
    _, rep = dedup(table, cfg)
    seconds = time.perf_counter() - t
    ids: list[str] = table.column("id").to_pylist()
    row_of = {i: r for r, i in enumerate(ids)}
    if len(row_of) != len(ids):
        raise ValueError("record ids are not unique in the planted table")
    label = np.arange(len(ids))
    removed = rep.removed_table
    dup_of = removed.column("duplicate_of").combine_chunks().field("id").to_pylist()
    for rid, of in zip(removed.column("id").to_pylist(), dup_of, strict=True):
        label[row_of[rid]] = row_of[of]
    return label, seconds


def score(planted: Planted, cfg: DedupConfig) -> Score:
    label, seconds = clusters_of(planted.table, cfg)
    planted_rows = np.zeros(len(label), dtype=bool)
    planted_rows[list(planted.planted_rows)] = True
    sizes = np.bincount(label, minlength=len(label))
    planted_per = np.bincount(label, weights=planted_rows.astype(np.int64), minlength=len(label)).astype(np.int64)
    pairs = sizes * (sizes - 1) // 2 - (sizes - planted_per) * (sizes - planted_per - 1) // 2
    predicted = int(pairs.sum())
    tp = sum(1 for b, v in planted.variants if label[b] == label[v])
    hard_merged = sum(1 for _, h in planted.hard if sizes[label[h]] > 1)
    precision = tp / predicted if predicted else 1.0
    recall = tp / len(planted.variants) if planted.variants else 0.0
    return Score(cfg.threshold, cfg.ngram, cfg.abstract_identifiers, cfg.num_perm, precision, recall, seconds,
                 predicted, tp, hard_merged)


def pair_similarities(planted: Planted, cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """Estimated Jaccard (MinHash, as dedup sees it) of (base, variant) and (prose donor, hard negative)."""
    t = planted.table
    sig = record_signatures(t.column("instruction").to_pylist(), t.column("response").to_pylist(), cfg)
    true = minhash.similarity(sig, np.asarray(planted.variants, dtype=np.int64).reshape(-1, 2))
    hard = minhash.similarity(sig, np.asarray(planted.hard, dtype=np.int64).reshape(-1, 2))
    return true, hard


