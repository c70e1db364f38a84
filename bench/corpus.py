"""The synthetic corpus of the benchmarks: `python bench/corpus.py --records N --out FILE` is
`python -m swcdata.synthetic.corpus` (see there: a deterministic corpus derived from the seed data)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swcdata.synthetic.corpus import main

if __name__ == "__main__":
    sys.exit(main())
