"""The run folder `runs/<run-id>/` and listing runs (imports neither torch nor transformers).

A run folder holds:

- `run.json`: a `RunInfo` (dataset `NAME@vN` and content hash, status, wall time, tokens/s, peak
  memory, library versions, device, attention, trainable parameters, length reports, final losses);
- `recipe.yaml`: the resolved recipe (file + overrides, every default filled in);
- `metrics.jsonl`: one line per Trainer log (train loss, eval loss, learning rate, ...);
- `adapter/`: the LoRA adapter and the tokenizer (`PeftModel.from_pretrained(base, adapter/)`);
- `base-model/`: for the tiny recipe only, the locally built base model and its tokenizer;
- `checkpoints/`: Trainer checkpoints, for `--resume`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RUN_FILE = "run.json"
RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
ADAPTER_DIR = "adapter"
BASE_DIR = "base-model"
CHECKPOINT_DIR = "checkpoints"


def utc_now() -> str:
    """The timestamps of run and evaluation records: UTC, ISO 8601, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class DatasetRef(BaseModel):
    """Which dataset version a run learned from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int | str
    content_hash: str

    def __str__(self) -> str:
        v = str(self.version)
        return f"{self.name}@{v if v.startswith('v') else 'v' + v}"


class RunInfo(BaseModel):
    """`runs/<run-id>/run.json`."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    status: Literal["running", "completed", "failed"] = "running"
    recipe: str
    base_model: str
    dataset: str = Field(description="NAME@vN")
    dataset_hash: str
    created: str
    finished: str | None = None
    wall_time_s: float | None = None
    train_runtime_s: float | None = None
    train_tokens: int | None = None
    tokens_per_s: float | None = None
    peak_memory_mib: float | None = None
    peak_memory_kind: str | None = None
    device: str | None = None
    world_size: int = 1
    attn_implementation: str | None = None
    quantized_layers: int | None = None
    target_modules: list[str] = Field(default_factory=list)
    trainable_params: int | None = None
    total_params: int | None = None
    global_steps: int | None = None
    first_train_loss: float | None = None
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    resumed_from: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    length_reports: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None


def read_run(run_dir: Path) -> RunInfo | None:
    p = run_dir / RUN_FILE
    if not p.is_file():
        return None
    try:
        return RunInfo.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def write_run(run_dir: Path, info: RunInfo) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / RUN_FILE)


def list_runs(output: Path) -> list[RunInfo]:
    """Every readable run under `output`, newest first."""
    if not output.is_dir():
        return []
    runs = [r for d in output.iterdir() if d.is_dir() and (r := read_run(d)) is not None]
    return sorted(runs, key=lambda r: (r.created, r.run_id), reverse=True)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    p = run_dir / METRICS_FILE
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = [p for p in (run_dir / CHECKPOINT_DIR).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None


def steps_done(run_dir: Path, info: RunInfo) -> int | None:
    """Optimiser steps a run has done: its recorded total, else (running or stopped) the last logged step
    or checkpoint, whichever is further."""
    if info.global_steps is not None:
        return info.global_steps
    logged = max((int(m.get("step", 0)) for m in _tail_metrics(run_dir)), default=0)
    ckpt = latest_checkpoint(run_dir)
    done = max(logged, int(ckpt.name.split("-")[-1]) if ckpt else 0)
    return done or None


def _tail_metrics(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return read_metrics(run_dir)
    except (OSError, ValueError):  # a line cut by a kill: the steps before it still count
        p = run_dir / METRICS_FILE
        rows = []
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows
