"""Wall time of the data commands on the embedded sample (`dataset/`, 105 lines), where start-up
(imports, worker pools) is most of the time, optionally beside another revision in the same run.

    python bench/startup.py [--against REV] [--repeat 5]

Each command runs as `python -m swcdata ...` in a fresh process, best of `--repeat` runs. With
`--against`, REV is checked out into a temporary git worktree and the same commands run from there
(its own package, the same interpreter and libraries), interleaved with this tree's runs so that
both see the same machine load. Prints a markdown table; figures go in bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "dataset/swc_sample.jsonl"
COMMANDS = [
    ["--help"],
    ["validate", SAMPLE, "--no-code"],
    ["validate", SAMPLE, "--out", "{tmp}/valid.jsonl"],
    ["dedup", SAMPLE, "--out", "{tmp}/kept.jsonl"],
    ["audit", "--reference", SAMPLE, "--candidate", SAMPLE],
    ["split", SAMPLE, "--out", "{tmp}/splits"],
]


def run_once(tree: Path, args: list[str], tmp: Path) -> float:
    argv = [a.replace("{tmp}", str(tmp)) for a in args]
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "swcdata", *argv], cwd=tree, capture_output=True, timeout=300)
    took = time.perf_counter() - t
    if r.returncode not in (0, 1):  # 1: the sample's deliberate defects
        raise SystemExit(f"{tree}: swcdata {' '.join(argv)} exited {r.returncode}:\n{r.stderr.decode()[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", help="a git revision to time beside this tree")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        trees = {"this tree": REPO}
        if args.against:
            other = tmp / "against"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.against], cwd=REPO,
                           check=True)
            trees[args.against] = other
        try:
            best: dict[str, dict[str, float]] = {name: {} for name in trees}
            for cmd in COMMANDS:
                label = "swcdata " + " ".join(cmd).replace(SAMPLE, "dataset/…").replace("{tmp}/", "")
                for _ in range(args.repeat):
                    for name, tree in trees.items():
                        took = run_once(tree, cmd, tmp)
                        best[name][label] = min(best[name].get(label, took), took)
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "against")], cwd=REPO, check=False)
    names = list(trees)
    print(f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    print(f"- machine: {platform.machine()}, Python {platform.python_version()}, {platform.system()} "
          f"{platform.release()}")
    print(f"- command: `python bench/startup.py{' --against ' + args.against if args.against else ''}"
          f" --repeat {args.repeat}` (best of {args.repeat}, wall clock of the whole process)\n")
    head = " | ".join(f"{n} (s)" for n in names)
    print(f"| command | {head} |" + (" ratio |" if len(names) > 1 else ""))
    print("| --- |" + " ---: |" * len(names) + (" ---: |" if len(names) > 1 else ""))
    for label in best[names[0]]:
        cells = " | ".join(f"{best[n][label]:.2f}" for n in names)
        ratio = f" {best[names[1]][label] / best[names[0]][label]:.2f}x |" if len(names) > 1 else ""
        print(f"| `{label}` | {cells} |{ratio}")


if __name__ == "__main__":
    main()
