"""Multi-GPU fine-tuning smoke test: FSDP-QLoRA on one GPU, and DDP / FSDP (/ DeepSpeed) on two.

    python bench/finetune_multigpu.py --out bench/results/multigpu   # on a CUDA machine
    python bench/finetune_multigpu.py --out /tmp/mg --plan           # print the commands, run nothing
    python bench/finetune_multigpu.py --out DIR --model Qwen/Qwen2.5-0.5B   # a small Hub model instead

Each mode is one `swcdata finetune ... --nproc N` command (the CLI re-runs itself under torchrun), on
the tiny recipe (`finetune/tiny-cpu.yaml`: a small random Llama built locally, no download) switched to
bf16 (4-bit storage = compute dtype = bf16, as FSDP-QLoRA needs), a few optimiser steps with a
checkpoint half-way (sharded under FSDP) and the final adapter gathered and saved:

- single-1gpu: plain training in one process (the baseline);
- fsdp-1gpu:   FSDP-QLoRA, one process (FSDP needs a process group even on one GPU);
- ddp-2gpu, fsdp-2gpu: two processes, when `torch.cuda.device_count() >= 2`;
- deepspeed-zero3-2gpu: two processes with finetune/deepspeed/zero3.json, when deepspeed is installed.

Recorded per mode: ok / failed, wall time, global steps, final train loss, peak GPU memory (rank 0's
`torch.cuda.max_memory_allocated`, from run.json), whether the adapter was written; a JSON and a
markdown summary go to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RECIPE = REPO / "finetune" / "tiny-cpu.yaml"
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"


@dataclass
class Mode:
    name: str
    nproc: int
    sets: list[str]
    needs_gpus: int = 1
    needs_module: str | None = None


def modes(args: argparse.Namespace) -> list[Mode]:
    fsdp = ["distributed.mode=fsdp"]
    out = [Mode("single-1gpu", 1, ["distributed.mode=auto"]),
           Mode("fsdp-1gpu", 1, fsdp),
           Mode("ddp-2gpu", 2, ["distributed.mode=ddp"], needs_gpus=2),
           Mode("fsdp-2gpu", 2, fsdp, needs_gpus=2),
           Mode("deepspeed-zero3-2gpu", 2, ["distributed.mode=deepspeed",
                                            "distributed.deepspeed_config=deepspeed/zero3.json"],
                needs_gpus=2, needs_module="deepspeed")]
    wanted = {m.strip() for m in args.modes.split(",")} if args.modes else None
    return [m for m in out if wanted is None or m.name in wanted]


def common_sets(args: argparse.Namespace) -> list[str]:
    sets = ["quantization.compute_dtype=bfloat16", "model.dtype=bfloat16", "training.bf16=true",
            f"training.max_steps={args.steps}", "training.logging_steps=1",
            f"training.save_steps={max(args.steps // 2, 1)}", f"training.eval_steps={args.steps}",
            "data.max_eval_examples=16", "training.optim=adamw_torch",
            "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=1"]
    if not args.keep_modules_to_save:
        # PEFT's FSDP guide: modules_to_save is untested with FSDP; the smoke test checks the core path
        sets.append("lora.modules_to_save=[]")
    if args.model:
        sets += ["model.source=hub", f"model.name={args.model}", "model.attn_implementation=sdpa"]
    return sets


def command(mode: Mode, args: argparse.Namespace, data_dir: Path, runs: Path, run_id: str) -> list[str]:
    cmd = [sys.executable, "-m", "swcdata", "finetune", str(data_dir), "--recipe", str(RECIPE),
           "--output", str(runs), "--run-id", run_id, "--json", "--nproc", str(mode.nproc)]
    for s in [*common_sets(args), *mode.sets]:
        cmd += ["--set", s]
    return cmd


def write_data(dest: Path) -> Path:
    """dataset/swc_sample.jsonl as a split folder (train + 20 validation records) for `swcdata finetune`."""
    from swcdata.steps.split_dir import write_split_dir
    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    n = table.num_rows
    write_split_dir({"train": table.slice(0, n - 20), "validation": table.slice(n - 20, 20)}, dest)
    return dest


def run_mode(mode: Mode, cmd: list[str], runs: Path, run_id: str, timeout: int) -> dict[str, Any]:
    row: dict[str, Any] = {"mode": mode.name, "nproc": mode.nproc, "command": " ".join(cmd)}
    print(f"== {mode.name}: {row['command']}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=timeout)
        rc, stderr = res.returncode, res.stderr
    except subprocess.TimeoutExpired as e:
        rc, stderr = 124, (e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or "")
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    row["returncode"] = rc
    info_path = runs / run_id / "run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    adapter = runs / run_id / "adapter" / "adapter_model.safetensors"
    row.update({
        "ok": rc == 0 and info.get("status") == "completed" and adapter.is_file(),
        "status": info.get("status"), "world_size": info.get("world_size"),
        "global_steps": info.get("global_steps"), "first_train_loss": info.get("first_train_loss"),
        "final_train_loss": info.get("final_train_loss"), "final_eval_loss": info.get("final_eval_loss"),
        "peak_gpu_mib_rank0": info.get("peak_memory_mib"), "tokens_per_s": info.get("tokens_per_s"),
        "adapter_written": adapter.is_file(), "error": info.get("error"),
    })
    if not row["ok"]:
        row["stderr_tail"] = stderr[-4000:]
    verdict = "ok" if row["ok"] else f"FAILED (exit {rc})"
    print(f"   {verdict} in {row['wall_s']} s; steps {row['global_steps']}, final loss {row['final_train_loss']}",
          file=sys.stderr, flush=True)
    return row


def _fmt(v: Any, spec: str = "{:.4g}") -> str:
    return "-" if v is None else spec.format(v) if isinstance(v, (int, float)) else str(v)


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| mode | processes | result | wall s | steps | loss first -> final | eval loss | "
             "peak GPU MiB (rank 0) | adapter |", "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in rows:
        result = "skipped: " + r["skipped"] if r.get("skipped") else ("ok" if r["ok"] else
                                                                      f"failed (exit {r['returncode']})")
        lines.append(f"| {r['mode']} | {r['nproc']} | {result} | {_fmt(r.get('wall_s'))} | "
                     f"{_fmt(r.get('global_steps'))} | {_fmt(r.get('first_train_loss'))} -> "
                     f"{_fmt(r.get('final_train_loss'))} | {_fmt(r.get('final_eval_loss'))} | "
                     f"{_fmt(r.get('peak_gpu_mib_rank0'), '{:,.0f}')} | "
                     f"{'yes' if r.get('adapter_written') else '-'} |")
    for r in rows:
        if not r.get("skipped") and not r["ok"]:
            lines += ["", f"#### {r['mode']}: error", "", "```", (r.get("error") or "")[:2000],
                      (r.get("stderr_tail") or "")[-2000:], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and the runs")
    p.add_argument("--plan", action="store_true", help="print the commands that would run, and run nothing")
    p.add_argument("--model", default=None, help="a small Hub model id (or local folder) instead of the tiny "
                   "random Llama")
    p.add_argument("--steps", type=int, default=10, help="optimiser steps per mode")
    p.add_argument("--modes", default=None, help="comma-separated subset: single-1gpu, fsdp-1gpu, ddp-2gpu, "
                   "fsdp-2gpu, deepspeed-zero3-2gpu")
    p.add_argument("--timeout", type=int, default=900, help="seconds per mode")
    p.add_argument("--keep-modules-to-save", action="store_true", help="keep the tiny recipe's "
                   "lora.modules_to_save=[lm_head] (untested with FSDP per PEFT)")
    args = p.parse_args(argv)
    out: Path = args.out.resolve()
    data_dir, runs = out / "data", out / "runs"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")

    if args.plan:
        for m in modes(args):
            need = f" (needs >= {m.needs_gpus} GPUs" + (f" and {m.needs_module}" if m.needs_module else "") + ")"
            print(f"# {m.name}{need if m.needs_gpus > 1 or m.needs_module else ''}")
            print(" ".join(command(m, args, data_dir, runs, f"{m.name}-{stamp}")))
        return 0

    import torch

    if not torch.cuda.is_available():
        print("error: CUDA is not available: this smoke test runs FSDP / DDP / DeepSpeed fine-tuning on GPUs "
              f"(torch {torch.__version__}, {'a CPU-only build' if torch.version.cuda is None else 'no visible GPU'})."
              " Run it on a CUDA machine; see what it would run with --plan. (2-process DDP on CPU is covered "
              "by tests/test_finetune.py::test_ddp_two_cpu_processes.)", file=sys.stderr)
        return 2
    from importlib.util import find_spec

    gpus = torch.cuda.device_count()
    out.mkdir(parents=True, exist_ok=True)
    write_data(data_dir)
    rows: list[dict[str, Any]] = []
    for m in modes(args):
        run_id = f"{m.name}-{stamp}"
        if gpus < m.needs_gpus:
            rows.append({"mode": m.name, "nproc": m.nproc, "ok": False, "skipped": f"{gpus} GPU(s) visible"})
            continue
        if m.needs_module and find_spec(m.needs_module) is None:
            rows.append({"mode": m.name, "nproc": m.nproc, "ok": False, "skipped": f"{m.needs_module} not installed"})
            continue
        rows.append(run_mode(m, command(m, args, data_dir, runs, run_id), runs, run_id, args.timeout))
        shutil.rmtree(runs / run_id / "checkpoints", ignore_errors=True)  # (keep --out small: adapters stay)

    import importlib.metadata as im

    versions = ", ".join(f"{n} {im.version(n)}" for n in ("torch", "transformers", "peft", "trl", "accelerate",
                                                           "bitsandbytes", "deepspeed") if find_spec(n))
    header = (f"### {datetime.now(UTC).isoformat(timespec='seconds')}: multi-GPU smoke test\n\n"
              f"- machine: {gpus} x {torch.cuda.get_device_name(0)} ({platform.node()}); {versions}\n"
              f"- command: `python bench/finetune_multigpu.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n"
              f"- model: {args.model or 'tiny random Llama (finetune/tiny-cpu.yaml)'}, bf16 compute and 4-bit "
              f"storage, {args.steps} steps, checkpoint at step {max(args.steps // 2, 1)}")
    md = markdown(rows, header)
    (out / "results.json").write_text(json.dumps({"gpus": gpus, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(md, encoding="utf-8")
    print(md)
    ran = [r for r in rows if not r.get("skipped")]
    return 0 if ran and all(r["ok"] for r in ran) else 1


if __name__ == "__main__":
    raise SystemExit(main())
