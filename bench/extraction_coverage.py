"""Extraction coverage, parse rates and speed of ``swcdata.solidity`` on the real seed corpus.

Usage::

    python bench/extraction_coverage.py [SEED_DIR] [--json] [--misses N] [--no-speed]

SEED_DIR defaults to ``../shared/seed-data`` beside the repository. Coverage of a field is the
share of records whose field ``looks_like_code`` where ``extract_code`` returns at least one span.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from swcdata.solidity.lexer import code_tokens, normalize_code  # noqa: E402
from swcdata.solidity.spans import extract_code, looks_like_code  # noqa: E402
from swcdata.solidity.treesitter import parse  # noqa: E402

FIELDS = ("instruction", "response")


def load_records(seed_dir: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """(file name, line number, record) for every JSON object line of every ``*.jsonl``."""
    recs: list[tuple[str, int, dict[str, Any]]] = []
    for path in sorted(seed_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    recs.append((path.name, lineno, obj))
    return recs


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def measure(seed_dir: Path, *, speed: bool = True, misses: int = 0) -> dict[str, Any]:
    recs = load_records(seed_dir)
    cov: dict[str, dict[str, Any]] = {}
    miss_examples: list[dict[str, Any]] = []
    all_spans: list[tuple[str, str]] = []  # (shape, text)
    for field in FIELDS:
        per_file: dict[str, list[int]] = {}
        looks = hits = 0
        for fname, lineno, rec in recs:
            text = rec.get(field)
            if not isinstance(text, str):
                continue
            spans = extract_code(text)
            all_spans.extend((s.shape, s.text) for s in spans)
            if not looks_like_code(text):
                continue
            looks += 1
            pf = per_file.setdefault(fname, [0, 0])
            pf[0] += 1
            if spans:
                hits += 1
                pf[1] += 1
            elif len(miss_examples) < misses:
                miss_examples.append({"file": fname, "line": lineno, "field": field, "text": text})
        cov[field] = {
            "looks_like_code": looks,
            "extracted": hits,
            "coverage": hits / looks if looks else 1.0,
            "per_file": {
                f: {"looks": a, "extracted": b, "coverage": b / a if a else 1.0}
                for f, (a, b) in sorted(per_file.items())
            },
        }

    # parse success by shape and by wrapper
    shape_tot: Counter[str] = Counter()
    shape_ok: Counter[str] = Counter()
    wrappers: Counter[str] = Counter()
    t0 = time.perf_counter()
    for shape, code in all_spans:
        r = parse(code)
        shape_tot[shape] += 1
        if r.ok:
            shape_ok[shape] += 1
        wrappers[r.wrapper or "none"] += 1
    parse_s = time.perf_counter() - t0
    n_spans = len(all_spans)
    parse_info = {
        "spans": n_spans,
        "ok": sum(shape_ok.values()),
        "ok_share": sum(shape_ok.values()) / n_spans if n_spans else 1.0,
        "by_shape": {
            s: {"spans": shape_tot[s], "ok": shape_ok[s], "ok_share": shape_ok[s] / shape_tot[s]}
            for s in sorted(shape_tot)
        },
        "by_wrapper": {w: {"spans": c, "share": c / n_spans} for w, c in sorted(wrappers.items())},
        "spans_per_s": _rate(n_spans, parse_s),
    }

    result: dict[str, Any] = {"seed_dir": str(seed_dir), "records": len(recs), "coverage": cov, "parse": parse_info}

    if speed:
        texts = [
            (r.get("instruction") or "") + "\n" + (r.get("response") or "")
            for _, _, r in recs
            if isinstance(r.get("instruction"), str)
        ]
        pairs = [(r.get("instruction") or "", r.get("response") or "") for _, _, r in recs]
        rates: dict[str, float] = {}
        for name, fn in (
            ("normalize_code", lambda t: normalize_code(t)),
            ("code_tokens_abstract", lambda t: code_tokens(t, abstract_identifiers=True, abstract_literals=True)),
            ("looks_like_code", lambda t: looks_like_code(t)),
        ):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for t in texts:
                    fn(t)
                best = min(best, time.perf_counter() - t0)
            rates[f"{name}_records_per_s"] = _rate(len(texts), best)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for a, b in pairs:
                extract_code(a)
                extract_code(b)
            best = min(best, time.perf_counter() - t0)
        rates["extract_code_records_per_s"] = _rate(len(pairs), best)
        codes = [code for _, code in all_spans]
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for c in codes:
                normalize_code(c)
            best = min(best, time.perf_counter() - t0)
        rates["normalize_code_spans_per_s"] = _rate(len(codes), best)
        result["speed"] = rates
    if misses:
        result["misses"] = miss_examples
    return result


def render(res: dict[str, Any]) -> str:
    lines = [f"seed dir: {res['seed_dir']}  records: {res['records']}", "", "Extraction coverage"]
    lines.append(f"{'field':<12} {'file':<68} {'looks':>6} {'extr':>6} {'cov':>8}")
    for field, c in res["coverage"].items():
        for f, pf in c["per_file"].items():
            lines.append(f"{field:<12} {f:<68} {pf['looks']:>6} {pf['extracted']:>6} {pf['coverage']:>8.2%}")
        lines.append(f"{field:<12} {'ALL':<68} {c['looks_like_code']:>6} {c['extracted']:>6} {c['coverage']:>8.2%}")
    p = res["parse"]
    lines += [
        "",
        f"Parse (tree-sitter): {p['ok']}/{p['spans']} spans ok = {p['ok_share']:.2%}, {p['spans_per_s']:,.0f} spans/s",
    ]
    lines.append(f"{'shape':<10} {'spans':>7} {'ok':>7} {'ok share':>9}")
    for s, d in p["by_shape"].items():
        lines.append(f"{s:<10} {d['spans']:>7} {d['ok']:>7} {d['ok_share']:>9.2%}")
    lines.append(f"{'wrapper':<10} {'spans':>7} {'share':>9}")
    for w, d in p["by_wrapper"].items():
        lines.append(f"{w:<10} {d['spans']:>7} {d['share']:>9.2%}")
    if "speed" in res:
        lines += ["", "Speed (one core, instruction+response per record)"]
        for k, v in res["speed"].items():
            lines.append(f"{k:<36} {v:>12,.0f}")
    for m in res.get("misses", []):
        lines += ["", f"MISS {m['file']}:{m['line']} {m['field']}", m["text"][:1500]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed_dir", nargs="?", default=str(ROOT.parent / "shared" / "seed-data"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--misses", type=int, default=0, help="show up to N records with code but no span")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurements")
    args = ap.parse_args(argv)
    seed = Path(args.seed_dir)
    if not seed.is_dir():
        print(f"error: seed directory {seed} not found", file=sys.stderr)
        return 2
    res = measure(seed, speed=not args.no_speed, misses=args.misses)
    print(json.dumps(res, indent=2) if args.json else render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
