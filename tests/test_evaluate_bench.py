"""The GPU evaluation benchmark: fails fast without CUDA, and its CPU smoke run writes JSON and Markdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "evaluate_gpu.py"


def test_bench_fails_fast_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    res = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 2
    assert "CUDA is not available" in res.stderr and "--smoke" in res.stderr


def test_bench_smoke_measures_batched_and_one_at_a_time(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(BENCH), "--smoke", "--out", str(tmp_path)], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((tmp_path / "evaluate_gpu.json").read_text())
    (r,) = data["results"]
    assert r["model"] == "tiny" and r["records"] == 12 and r["max_new_tokens"] == 8 and r["single_sample"] == 3
    assert r["batched_seconds_per_record"] > 0 and r["single_seconds_per_record"] > 0
    assert r["speedup"] == pytest.approx(r["single_seconds_per_record"] / r["batched_seconds_per_record"], rel=0.05)
    # every answer is forced to max_new_tokens in both modes, so both do the same work
    # (from the per-record time: 5 decimals, where the smoke run's total seconds are a fraction of a second)
    assert r["batched_new_tokens_per_s"] == pytest.approx(8 / r["batched_seconds_per_record"], rel=0.01)
    md = (tmp_path / "evaluate_gpu.md").read_text()
    assert "| tiny | nf4 | 12 | 8 | 8 |" in md and "extrapolated" in md
