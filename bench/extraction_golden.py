"""Golden-output check and speed of ``extract_code`` / ``code_tokens``.

Computes stable SHA-256 digests of the outputs of :func:`swcdata.solidity.spans.extract_code` and
:func:`swcdata.solidity.lexer.code_tokens` over

* every record of the seed files (``../shared/seed-data/*.jsonl``), and
* the first ``--corpus-n`` (default 50,000) records of the synthetic corpus
  (``bench/.data/corpus-1m.jsonl``),

and compares them with the digests saved in ``bench/.data/extraction_golden.json`` (written with
``--save``; ``bench/.data`` is git-ignored). Optimisations of the extractor/lexer must keep every
digest identical. It also prints records/s (best of ``--repeat`` runs, one core) of
``extract_code`` over the first ``--speed-n`` (default 20,000) corpus records (instruction and
response), and of ``code_tokens`` (plain and ``abstract_identifiers=True``) over the spans found
in those records.

Usage::

    python bench/extraction_golden.py --save        # record the baseline
    python bench/extraction_golden.py               # compare (exit 1 on mismatch) + speed
    python bench/extraction_golden.py --no-digest   # speed only
    python bench/extraction_golden.py --no-speed    # digests only

Digest sections (each a SHA-256 over ``repr`` of per-field results, in record order):

* ``extract``: ``(start, end, shape, text)`` of every span of every field;
* ``tokens``: ``code_tokens`` of every span text, plain / ``abstract_identifiers`` /
  ``abstract_identifiers`` + ``abstract_literals``;
* ``tokens_text``: ``code_tokens`` of each whole field text, plain and ``abstract_identifiers``
  (exercises comments/strings/odd characters the spans rarely contain).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from swcdata.solidity.lexer import code_tokens  # noqa: E402
from swcdata.solidity.spans import extract_code  # noqa: E402

SEED_DIR = Path(os.environ.get("SWCDATA_SEED_DIR", ROOT.parent / "shared" / "seed-data"))
CORPUS = ROOT / "bench" / ".data" / "corpus-1m.jsonl"
GOLDEN = ROOT / "bench" / ".data" / "extraction_golden.json"
FIELDS = ("instruction", "response")


def _fields(obj: object) -> tuple[str, str]:
    """(instruction, response) of a record; missing or non-string fields read as ``""``."""
    if not isinstance(obj, dict):
        return "", ""
    a, b = obj.get("instruction"), obj.get("response")
    return (a if isinstance(a, str) else ""), (b if isinstance(b, str) else "")


def _line_fields(path: Path) -> Iterator[tuple[str, str] | None]:
    """Each non-blank line's (instruction, response), or None for a line that is not JSON."""
    with path.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None
                continue
            yield _fields(obj)


def seed_records(seed_dir: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(seed_dir.glob("*.jsonl")):
        yield from (f for f in _line_fields(path) if f is not None)


def corpus_records(path: Path, n: int) -> list[tuple[str, str]]:
    """The first ``n`` non-blank lines of the corpus (read lazily: only those lines are read); a line
    that is not JSON counts, with empty fields."""
    return [f if f is not None else _fields(None) for f in itertools.islice(_line_fields(path), n)]


def digests(records: list[tuple[str, str]]) -> dict[str, str]:
    h_ext = hashlib.sha256()
    h_tok = hashlib.sha256()
    h_txt = hashlib.sha256()
    for rec in records:
        for text in rec:
            spans = extract_code(text)
            h_ext.update(repr([(s.start, s.end, s.shape, s.text) for s in spans]).encode("utf-8", "surrogatepass"))
            for s in spans:
                toks = (
                    code_tokens(s.text),
                    code_tokens(s.text, abstract_identifiers=True),
                    code_tokens(s.text, abstract_identifiers=True, abstract_literals=True),
                )
                h_tok.update(repr(toks).encode("utf-8", "surrogatepass"))
            toks = (code_tokens(text), code_tokens(text, abstract_identifiers=True))
            h_txt.update(repr(toks).encode("utf-8", "surrogatepass"))
    return {"extract": h_ext.hexdigest(), "tokens": h_tok.hexdigest(), "tokens_text": h_txt.hexdigest()}


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed(records: list[tuple[str, str]], repeat: int) -> dict[str, float]:
    def run_extract() -> None:
        for a, b in records:
            extract_code(a)
            extract_code(b)

    codes = [s.text for a, b in records for s in (*extract_code(a), *extract_code(b))]

    def run_tokens() -> None:
        for c in codes:
            code_tokens(c)

    def run_tokens_abs() -> None:
        for c in codes:
            code_tokens(c, abstract_identifiers=True)

    n = len(records)
    t_ext = _best(run_extract, repeat)
    t_tok = _best(run_tokens, repeat)
    t_abs = _best(run_tokens_abs, repeat)
    return {
        "records": n,
        "spans": len(codes),
        "extract_code_records_per_s": n / t_ext,
        "code_tokens_spans_per_s": len(codes) / t_tok,
        "code_tokens_records_per_s": n / t_tok,
        "code_tokens_abstract_spans_per_s": len(codes) / t_abs,
        "code_tokens_abstract_records_per_s": n / t_abs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed-dir", type=Path, default=SEED_DIR)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--golden", type=Path, default=GOLDEN)
    ap.add_argument("--corpus-n", type=int, default=50_000, help="corpus records for the digests")
    ap.add_argument("--speed-n", type=int, default=20_000, help="corpus records for the speed measurement")
    ap.add_argument("--repeat", type=int, default=3, help="speed runs (best is reported)")
    ap.add_argument("--save", action="store_true", help="write the digests as the new golden file")
    ap.add_argument("--no-digest", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args(argv)

    status = 0
    if not args.no_digest:
        t0 = time.perf_counter()
        seed = list(seed_records(args.seed_dir))
        corpus = corpus_records(args.corpus, args.corpus_n)
        got = {
            "seed_records": len(seed),
            "corpus_records": len(corpus),
            "seed": digests(seed),
            "corpus": digests(corpus),
        }
        print(f"digests over {len(seed)} seed + {len(corpus)} corpus records in {time.perf_counter() - t0:.1f}s")
        if args.save:
            args.golden.parent.mkdir(parents=True, exist_ok=True)
            args.golden.write_text(json.dumps(got, indent=2) + "\n")
            print(f"saved golden digests to {args.golden}")
        elif not args.golden.exists():
            print(f"no golden file at {args.golden}; run with --save first", file=sys.stderr)
            status = 2
        else:
            want = json.loads(args.golden.read_text())
            for part in ("seed", "corpus"):
                for key, value in got[part].items():
                    ok = want.get(part, {}).get(key) == value
                    print(f"  {part:<7} {key:<12} {'OK' if ok else 'MISMATCH'}  {value[:16]}")
                    status |= 0 if ok else 1
            for key in ("seed_records", "corpus_records"):
                if want.get(key) != got[key]:
                    print(f"  {key}: golden {want.get(key)} != now {got[key]}")
                    status |= 1
            print("golden: " + ("MATCH" if status == 0 else "MISMATCH"))
    if not args.no_speed:
        recs = corpus_records(args.corpus, args.speed_n)
        r = speed(recs, args.repeat)
        print(
            f"speed (best of {args.repeat}, {r['records']} records, {r['spans']} spans):\n"
            f"  extract_code              {r['extract_code_records_per_s']:>10,.0f} records/s\n"
            f"  code_tokens               {r['code_tokens_spans_per_s']:>10,.0f} spans/s"
            f"  ({r['code_tokens_records_per_s']:,.0f} records/s)\n"
            f"  code_tokens abstract_ids  {r['code_tokens_abstract_spans_per_s']:>10,.0f} spans/s"
            f"  ({r['code_tokens_abstract_records_per_s']:,.0f} records/s)"
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
