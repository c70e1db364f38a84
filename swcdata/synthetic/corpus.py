"""Deterministic generator of a large synthetic corpus derived from the seed data.

Every output record derives from a randomly chosen seed record (read from
``../shared/seed-data``; the seed data is never copied into the repository):

* ``exact`` (5 %): the seed line, byte for byte;
* ``near`` (5 %): whitespace reflow and/or a swapped lead verb and/or one changed number;
* ``varied`` (90 %): identifiers consistently renamed in instruction *and* response,
  numbers changed, whitespace/indentation reflowed, lead phrase varied, sometimes a
  ``/* comment */`` inserted after the first ``{``.

Seed defects stay in proportion because the parent is drawn uniformly: records that lack
``response`` in the seed lack it in the output too, and exact duplicates in the seed are
inherited.

The output is a pure function of ``(n, seed, seed files)``: records are generated in
fixed-size chunks, each with its own RNG seeded from ``(seed, chunk index)``, so the
number of worker processes does not change a byte.

Usage::

    python -m swcdata.synthetic.corpus --records 1000000 --out bench/.data/corpus-1m.jsonl [--seed 0]
        [--seed-dir ../shared/seed-data] [--workers 2] [--crlf] [--no-final-newline]

Library use::

    from swcdata.synthetic.corpus import generate, generate_with_meta
    for line in generate(1000, seed=0):  # bytes, one JSON object, no line terminator
        ...
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO_ROOT = Path(__file__).resolve().parents[2]  # (in a checkout: the seed data lies beside it)
DEFAULT_SEED_DIR = Path(os.environ.get("SWCDATA_SEED_DIR", REPO_ROOT.parent / "shared" / "seed-data"))
CHUNK = 4096  # records per RNG chunk; part of the output definition, do not change casually

P_EXACT = 0.05
P_NEAR = 0.05

# Identifier candidates: tokens that look like code names (underscore, camelCase or
# letters mixed with digits). Plain lowercase words are left alone (they appear in prose).
_IDENT_RE = re.compile(r"(?<![\w$])[A-Za-z_$][A-Za-z0-9_$]*(?![\w$])")
_NUMBER_RE = re.compile(r"(?<!SWC-)(?<![\w.$])\d+(?![\w.])")
_TEMPLATE_RE = re.compile(_IDENT_RE.pattern + "|" + _NUMBER_RE.pattern + r"|[{}]")
_KEEP_IDENTS = frozenset(
    (
        "encodePacked", "encodeWithSignature", "encodeWithSelector", "encodeCall", "abi",
        "keccak256", "sha256", "sha3", "ripemd160", "ecrecover", "addmod", "mulmod",
        "selfdestruct", "blockhash", "gasleft", "SafeMath", "SWC", "ERC20", "ERC721", "ERC1155",
        "ERC777", "EIP",
    )
)
_TYPE_RE = re.compile(r"^(?:u?int|bytes|fixed|ufixed)\d*(?:x\d+)?$|^[A-Z]+\d+$")

_WORDS = (
    "token", "vault", "pool", "stake", "reward", "fee", "owner", "admin", "user", "account",
    "amount", "balance", "value", "total", "supply", "price", "rate", "index", "count", "limit",
    "round", "epoch", "bonus", "share", "claim", "deposit", "withdraw", "payout", "refund", "bid",
    "auction", "order", "ticket", "player", "game", "prize", "lottery", "member", "vote",
    "proposal", "ledger", "escrow", "treasury", "wallet", "sender", "receiver", "target",
    "beneficiary", "manager", "registry", "asset", "item", "cap", "max", "min", "last", "next",
    "prev", "current", "pending", "locked", "unlocked", "frozen", "minted", "burned",
)
_LEAD_VERBS = (
    "Review", "Examine", "Analyze", "Inspect", "Evaluate", "Assess", "Check", "Audit", "Study",
)
_LEAD_PREFIXES = (
    "Security review task. ", "Question: ", "Please help with this. ", "Solidity audit: ",
    "Smart contract question. ", "Task: ", "Code review request. ",
)
_COMMENTS = (
    "/* checked */", "/* audit note */", "/* TODO: review */", "/* legacy code */",
    "/* see docs */", "/* do not modify */", "/* v2 */", "/* gas-sensitive */",
)
_REFLOWS: tuple[tuple[str, str], ...] = (
    ("\n    ", "\n  "),
    ("\n  ", "\n    "),
    ("\n    ", "\n\t"),
    ("; ", ";\n"),
    ("{ ", "{\n  "),
    (" }", "\n}"),
    ("\n\n", "\n"),
    ("\n", "\n\n"),
    ("  ", " "),
    (", ", ",  "),
)


@dataclass(frozen=True)
class SeedTemplate:
    """One seed record pre-compiled for fast variation with ``str.format``."""

    raw: bytes  # the seed line as it is in the file (CRLF stripped)
    fields: dict[str, str]  # non-templated fields (category, ...), in order
    order: tuple[str, ...]  # key order of the original record
    templates: dict[str, str]  # instruction/response as format strings with {k} slots
    slots: tuple[str, ...]  # original value of every slot (identifiers then numbers)
    is_ident: tuple[bool, ...]
    lead_verb: str  # the instruction's first word when it is a lead verb, else ""


@dataclass(frozen=True)
class Meta:
    """Where a generated record came from (for tests and benches: planted duplicates)."""

    parent: int  # index of the seed record (in load order)
    kind: str  # "exact" | "near" | "varied"


def _is_renameable(tok: str) -> bool:
    if tok in _KEEP_IDENTS or _TYPE_RE.match(tok):
        return False
    if "_" in tok or "$" in tok:
        return len(tok) > 1
    has_digit = any(c.isdigit() for c in tok)
    inner_upper = any(c.isupper() for c in tok[1:]) and any(c.islower() for c in tok)
    return inner_upper or (has_digit and any(c.isalpha() for c in tok))


def _compile(raw: bytes, rec: dict[str, object]) -> SeedTemplate:
    slot_index: dict[str, int] = {}
    slots: list[str] = []
    is_ident: list[bool] = []

    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok in ("{", "}"):
            return tok + tok
        ident = not tok[0].isdigit()
        if ident and not _is_renameable(tok):
            return tok
        k = slot_index.get(tok)
        if k is None:
            k = slot_index[tok] = len(slots)
            slots.append(tok)
            is_ident.append(ident)
        return f"{{{k}}}"

    templates: dict[str, str] = {}
    fields: dict[str, str] = {}
    for key, val in rec.items():
        if key in ("instruction", "response") and isinstance(val, str):
            templates[key] = _TEMPLATE_RE.sub(repl, val)
        else:
            fields[key] = val  # type: ignore[assignment]
    instr = rec.get("instruction")
    first = instr.split(" ", 1)[0] if isinstance(instr, str) else ""
    return SeedTemplate(
        raw=raw,
        fields=fields,
        order=tuple(rec.keys()),
        templates=templates,
        slots=tuple(slots),
        is_ident=tuple(is_ident),
        lead_verb=first if first in _LEAD_VERBS else "",
    )


def seed_files(seed_dir: Path | str = DEFAULT_SEED_DIR) -> list[Path]:
    d = Path(seed_dir)
    files = sorted(d.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(
            f"no seed data: {d} has no *.jsonl files (pass --seed-dir or set SWCDATA_SEED_DIR)"
        )
    return files


def load_seed(seed_dir: Path | str = DEFAULT_SEED_DIR) -> list[SeedTemplate]:
    """Read the seed JSONL files (CRLF or LF, with or without a final newline)."""
    out: list[SeedTemplate] = []
    for f in seed_files(seed_dir):
        for line in f.read_bytes().splitlines():
            if not line.strip():
                continue
            rec = orjson.loads(line)
            if isinstance(rec, dict):
                out.append(_compile(line, rec))
    return out


def _new_name(orig: str, rng: random.Random) -> str:
    lead = len(orig) - len(orig.lstrip("_$"))
    prefix = orig[:lead]
    w1, w2 = rng.choice(_WORDS), rng.choice(_WORDS)
    body = orig[lead:]
    if body.isupper() or (body.upper() == body and "_" in body):
        name = f"{w1.upper()}_{w2.upper()}"
    elif "_" in body and body.lower() == body:
        name = f"{w1}_{w2}"
    elif body[:1].isupper():
        name = w1.capitalize() + w2.capitalize()
    else:
        name = w1 + w2.capitalize()
    if rng.random() < 0.3:
        name += str(rng.randint(0, 9))
    return prefix + name


def _new_number(orig: str, rng: random.Random) -> str:
    if len(orig) > 1 and orig[0] == "0":  # keep zero-padded literals' width
        return "".join(rng.choice("0123456789") for _ in orig)
    d = len(orig)
    if d == 1:
        return str(rng.randint(0, 9))
    return str(rng.randint(10 ** (d - 1), 10**d - 1))


def _reflow(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 2)):
        a, b = rng.choice(_REFLOWS)
        text = text.replace(a, b)
    return text


def _insert_comment(text: str, rng: random.Random) -> str:
    pos = text.find("{")
    if pos < 0:
        return text
    return text[: pos + 1] + " " + rng.choice(_COMMENTS) + text[pos + 1 :]


def _vary_lead(instr: str, t: SeedTemplate, rng: random.Random) -> str:
    if t.lead_verb and rng.random() < 0.6:
        return rng.choice(_LEAD_VERBS) + instr[len(t.lead_verb) :]
    return rng.choice(_LEAD_PREFIXES) + instr


def _make(t: SeedTemplate, kind: str, rng: random.Random) -> bytes:
    slots = list(t.slots)
    if kind == "near":
        # one of: one number changed / whitespace only / lead verb swap
        nums = [i for i, ident in enumerate(t.is_ident) if not ident]
        if nums and rng.random() < 0.4:
            i = rng.choice(nums)
            slots[i] = _new_number(slots[i], rng)
    else:
        p_rename = rng.uniform(0.3, 0.9)
        for i, ident in enumerate(t.is_ident):
            if ident:
                if rng.random() < p_rename:
                    slots[i] = _new_name(slots[i], rng)
            elif rng.random() < 0.5:
                slots[i] = _new_number(slots[i], rng)
    rec: dict[str, str] = {}
    for key in t.order:
        tmpl = t.templates.get(key)
        if tmpl is None:
            rec[key] = t.fields[key]
            continue
        text = tmpl.format(*slots)
        if kind == "near":
            if rng.random() < 0.6:
                text = _reflow(text, rng)
            if key == "instruction" and t.lead_verb and rng.random() < 0.3:
                text = rng.choice(_LEAD_VERBS) + text[len(t.lead_verb) :]
        else:
            if rng.random() < 0.6:
                text = _reflow(text, rng)
            if rng.random() < 0.2:
                text = _insert_comment(text, rng)
            if key == "instruction" and rng.random() < 0.5:
                text = _vary_lead(text, t, rng)
        rec[key] = text
    return orjson.dumps(rec)


def _chunk(seeds: list[SeedTemplate], seed: int, chunk_idx: int, count: int) -> list[tuple[bytes, Meta]]:
    rng = random.Random(f"swcdata-corpus:{seed}:{chunk_idx}")
    out: list[tuple[bytes, Meta]] = []
    n_seeds = len(seeds)
    for _ in range(count):
        parent = rng.randrange(n_seeds)
        r = rng.random()
        t = seeds[parent]
        if r < P_EXACT:
            out.append((t.raw, Meta(parent, "exact")))
        elif r < P_EXACT + P_NEAR:
            out.append((_make(t, "near", rng), Meta(parent, "near")))
        else:
            out.append((_make(t, "varied", rng), Meta(parent, "varied")))
    return out


def generate_with_meta(
    n: int, seed: int = 0, seed_dir: Path | str = DEFAULT_SEED_DIR
) -> Iterator[tuple[bytes, Meta]]:
    """Yield ``(json_line_without_terminator, Meta)`` for ``n`` records, deterministically."""
    seeds = load_seed(seed_dir)
    for c in range((n + CHUNK - 1) // CHUNK):
        yield from _chunk(seeds, seed, c, min(CHUNK, n - c * CHUNK))


def generate(n: int, seed: int = 0, seed_dir: Path | str = DEFAULT_SEED_DIR) -> Iterator[bytes]:
    """Yield ``n`` JSON lines (bytes, no line terminator), deterministically."""
    for line, _ in generate_with_meta(n, seed, seed_dir):
        yield line


# ---------------------------------------------------------------------------- CLI / workers
_WORKER_SEEDS: list[SeedTemplate] = []


def _worker_init(seed_dir: str) -> None:
    global _WORKER_SEEDS
    if not _WORKER_SEEDS:
        _WORKER_SEEDS = load_seed(seed_dir)


def _worker_chunk(args: tuple[int, int, int, bytes]) -> bytes:
    seed, c, count, eol = args
    return eol.join(line for line, _ in _chunk(_WORKER_SEEDS, seed, c, count)) + eol


def write_corpus(
    n: int,
    out: Path,
    seed: int = 0,
    seed_dir: Path | str = DEFAULT_SEED_DIR,
    workers: int = 2,
    crlf: bool = False,
    final_newline: bool = True,
) -> int:
    """Stream ``n`` records to ``out`` (atomically via a temporary file); return bytes written."""
    global _WORKER_SEEDS
    eol = b"\r\n" if crlf else b"\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tasks = [(seed, c, min(CHUNK, n - c * CHUNK), eol) for c in range((n + CHUNK - 1) // CHUNK)]
    size = 0
    _WORKER_SEEDS = load_seed(seed_dir)  # inherited by forked workers
    with open(tmp, "wb", buffering=1 << 22) as fh:
        if workers <= 1:
            results: Iterator[bytes] = map(_worker_chunk, tasks)
            for i, buf in enumerate(results):
                if i == len(tasks) - 1 and not final_newline:
                    buf = buf[: -len(eol)]
                fh.write(buf)
                size += len(buf)
        else:
            from swcdata.core.workers import init_worker  # (workers that die with this process, even by kill -9)

            ctx = mp.get_context("fork")
            with ctx.Pool(workers, initializer=init_worker,
                          initargs=(os.getpid(), _worker_init, (str(seed_dir),))) as pool:
                for i, buf in enumerate(pool.imap(_worker_chunk, tasks, chunksize=1)):
                    if i == len(tasks) - 1 and not final_newline:
                        buf = buf[: -len(eol)]
                    fh.write(buf)
                    size += len(buf)
    os.replace(tmp, out)
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / ".data" / "corpus-1m.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed-dir", type=Path, default=DEFAULT_SEED_DIR)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--crlf", action="store_true", help="CRLF line endings (like five seed files)")
    ap.add_argument("--no-final-newline", action="store_true", help="omit the last line terminator")
    args = ap.parse_args(argv)
    try:
        seed_files(args.seed_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    size = write_corpus(
        args.records, args.out, args.seed, args.seed_dir, args.workers, args.crlf, not args.no_final_newline
    )
    dt = time.perf_counter() - t0
    print(
        f"wrote {args.records:,} records to {args.out} in {dt:.1f} s "
        f"({args.records / dt:,.0f} records/s, {size / 1e6:,.1f} MB, {size / dt / 1e6:,.1f} MB/s, "
        f"workers={args.workers})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
