"""An independent code-level leak check of a published version: does any test record's vulnerable code
appear, token for token, in a train or validation record?

    python bench/leak_check.py swc@v1 [--home DIR] [--abstract] [--min-tokens 20] [--json]

Independent of swcdata's own matching on purpose: it finds code with its own rules (Markdown fences,
else the text from the first line that starts like Solidity), lexes it with its own regex (comments
and layout dropped), and compares whole token sequences by hash: a test record leaks when the code of
its instruction appears, as a contiguous run of tokens, in the code of any train/validation instruction or response
(equal code included). `--abstract` also
replaces identifiers by one symbol (names ignored). It reads the version's Arrow files through
`datasets` only (swcdata is used for nothing but finding the version folder). Exit 1 when it finds a
leak, so CI or a script can use it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)
START = re.compile(r"^[ \t]*(pragma|contract|library|interface|function|modifier|constructor|event|mapping|"
                   r"uint|int|address|bool|string|bytes|require|if|for|while|emit|return)\b", re.M)
TOKEN = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|[A-Za-z_$][\w$]*|\d[\w.]*|"
                   r"==|!=|<=|>=|&&|\|\||\+=|-=|\*=|/=|=>|\+\+|--|<<|>>|\*\*|\S", re.S)
KEYWORDS = set(re.findall(r"\S+", """pragma solidity contract library interface function modifier constructor event
emit mapping
struct enum public private internal external view pure payable returns return if else for while do break continue
require assert revert throw new delete memory storage calldata indexed anonymous constant immutable override virtual
uint uint8 uint16 uint32 uint64 uint128 uint256 int int8 int256 address bool string bytes bytes32 bytes4 byte var
true false msg sender value data block timestamp number now tx origin this send transfer call balance length push
keccak256 sha3 sha256 selfdestruct suicide wei ether gwei finney szabo seconds minutes hours days weeks years
is using try catch unchecked fallback receive abi encodePacked encode"""))


def code_of(text: str) -> str:
    fences = FENCE.findall(text)
    if fences:
        return "\n".join(fences)
    m = START.search(text)
    return text[m.start():] if m else ""


def tokens(code: str, abstract: bool) -> list[str]:
    out = []
    for t in TOKEN.findall(code):
        if t.startswith("//") or t.startswith("/*"):
            continue
        if abstract and (t[0].isalpha() or t[0] in "_$") and t not in KEYWORDS:
            t = "ID"
        out.append(t)
    return out


def stream(text: str, abstract: bool) -> list[str]:
    return tokens(code_of(text), abstract)


def check(version_dir: Path, abstract: bool, min_tokens: int) -> dict:
    """A test record leaks when its instruction's code (>= min_tokens tokens) appears as a contiguous token run
    inside the code of a train or validation instruction or response (equal code included)."""
    import datasets

    dd = datasets.load_from_disk(str(version_dir))
    sep = "\x00"
    haystacks: list[tuple[str, str, str, str]] = []  # (joined tokens, split, source, category)
    anchors: dict[str, set[int]] = defaultdict(set)  # first 8 tokens of every position -> haystack indices
    for split in ("train", "validation"):
        if split not in dd:
            continue
        for row in dd[split]:
            where = f"{row['source']['file']}:{row['source']['line']}"
            for field in ("instruction", "response"):
                toks = stream(row[field], abstract)
                if not toks:
                    continue
                k = len(haystacks)
                haystacks.append((sep + sep.join(toks) + sep, split, where, row["category"]))
                for i in range(max(len(toks) - 7, 1)):
                    anchors[sep.join(toks[i:i + 8])].add(k)
    leaks = []
    for row in dd["test"]:
        toks = stream(row["instruction"], abstract)
        if len(toks) < min_tokens:
            continue
        needle = sep + sep.join(toks) + sep
        hits = [h for h in sorted(anchors.get(sep.join(toks[:8]), ())) if needle in haystacks[h][0]]
        if hits:
            leaks.append({"test": f"{row['source']['file']}:{row['source']['line']}", "category": row["category"],
                          "tokens": len(toks),
                          "in": [{"split": haystacks[h][1], "source": haystacks[h][2], "category": haystacks[h][3]}
                                 for h in hits[:3]],
                          "same_label": any(haystacks[h][3] == row["category"] for h in hits)})
    return {"version": str(version_dir), "abstract_identifiers": abstract, "min_tokens": min_tokens,
            "test_records": len(dd["test"]), "leaked": len(leaks),
            "same_label": sum(1 for x in leaks if x["same_label"]), "examples": leaks[:10]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ref", help="NAME@vN (or a version folder)")
    p.add_argument("--home", type=Path, default=None)
    p.add_argument("--abstract", action="store_true", help="ignore identifier names")
    p.add_argument("--min-tokens", type=int, default=20)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    folder = Path(a.ref)
    if not folder.is_dir():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from swcdata.registry.store import Registry

        folder = Registry(a.home).path(a.ref)
    res = check(folder, a.abstract, a.min_tokens)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['leaked']} of {res['test_records']} test records have instruction code found verbatim in "
              f"train/validation ({res['same_label']} with the same label); identifiers "
              f"{'abstracted' if a.abstract else 'kept'}, code of >= {a.min_tokens} tokens")
        for x in res["examples"][:5]:
            print(f"  {x['test']} ({x['category']}) = {x['in'][0]['source']} ({x['in'][0]['category']})")
    return 1 if res["leaked"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
