"""The GPU fine-tuning benchmark: fails fast without CUDA, and its CPU dry run works end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "finetune_gpu.py"


def test_bench_fails_fast_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    res = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 2
    assert "CUDA is not available" in res.stderr and "--dry-run" in res.stderr


def test_bench_dry_run_prints_the_comparison_table() -> None:
    res = subprocess.run([sys.executable, str(BENCH), "--dry-run", "--limit", "24", "--seq-len", "256"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line for line in res.stdout.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 2
    seed, ours = rows
    assert "| seed | eager | q_proj, k_proj, v_proj | prompt + response |" in seed
    assert "| swcdata | sdpa |" in ours and "gate_proj" in ours and "| response |" in ours
    assert "| 0% |" in ours  # packing: no padding computed
