"""Publish and verify 300,000 records with the swcdata of a given checkout: the local publication's cost, old
against new (the content hash of format 1 and `datasets.save_to_disk`, against format 2 and the shard writer).

    python bench/publish_formats.py CHECKOUT NAME [--table FILE]

TABLE: an Arrow IPC file of valid records (`/tmp/prof/t300k.arrow` by default: the first 300,000 lines of
bench/.data/corpus-1m.jsonl, validated); the version goes to a fresh registry /tmp/swcdata-publish-NAME. Time two
checkouts side by side with farm-bench (see bench/RESULTS.md):

    farm-bench -n 7 --timeout 900 --vs "python bench/publish_formats.py /tmp/wt-old old" -- \
        python bench/publish_formats.py . new
"""

from __future__ import annotations

import argparse
import shutil
import sys

ap = argparse.ArgumentParser()
ap.add_argument("checkout")
ap.add_argument("name")
ap.add_argument("--table", default="/tmp/prof/t300k.arrow")
args = ap.parse_args()
sys.path.insert(0, args.checkout)

import pyarrow as pa  # noqa: E402

from swcdata.registry.store import Registry  # noqa: E402

t = pa.ipc.open_file(pa.memory_map(args.table)).read_all()
home = f"/tmp/swcdata-publish-{args.name}"
shutil.rmtree(home, ignore_errors=True)
n = t.num_rows
splits = {"train": t.slice(0, int(n * .8)), "validation": t.slice(int(n * .8), n // 10), "test": t.slice(int(n * .9))}
reg = Registry(home)
m, _ = reg.publish("swc", splits, {"steps": []})
tables, _ = reg.tables("swc@v1")  # (verified: the file hashes and the content hash)
assert m.records == n
