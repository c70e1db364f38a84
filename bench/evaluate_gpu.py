"""Evaluation generation speed: batched (swcdata evaluate) against one prompt at a time (the seed notebooks),
in the same run, on the same prompts.

    python bench/evaluate_gpu.py                 # Gemma-2B and Gemma-7B shapes, 1000 prompts, 200 new tokens
    python bench/evaluate_gpu.py --smoke         # CPU, tiny Gemma-shaped model, a few prompts (a test runs this)

Nothing is downloaded: models are randomly initialised from the Gemma-2B / Gemma-7B config shapes,
written to a temporary folder and loaded through `from_pretrained` (4-bit NF4 by default, as
`swcdata evaluate` loads a QLoRA run's base; `--quant none` for bf16), with a BPE tokenizer trained on
the data. Speed does not depend on the weight values; so that both modes do exactly the same work,
every answer is forced to `--max-new-tokens` tokens (`min_new_tokens`), the worst case.

Batched: every prompt, `--batch-size` at a time, left-padded, longest first: the code path of
`swcdata evaluate` (`swcdata.finetune.generate.generate`). One at a time: batch size 1, measured on
`--sample` prompts spread evenly over the prompt list and extrapolated to all of them (one at a time
on 1000 prompts would take about an hour per model, as it did in the seed project: 3.27 s/record on
an H100). Reported: seconds per record in each mode, the speed-up, generated tokens/s and peak GPU
memory. Results go to `--out` as evaluate_gpu.json and evaluate_gpu.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.finetune_gpu import SHAPES, build_model_dir  # noqa: E402

SEED_SECONDS_PER_RECORD = 3.27  # the seed project's one-at-a-time evaluation on an H100
TARGET_SPEEDUP = 30.0


def die(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_prompts(path: Path, n: int, tok: Any) -> list[str]:
    """`n` prompts in the Instruction/Response format, cycling through the records of `path`."""
    from swcdata.finetune.data import INSTRUCTION_TEMPLATE
    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([path], ValidateConfig(check_code=False))
    instructions = table.column("instruction").to_pylist()
    if not instructions:
        die(f"{path} holds no valid record")
    return [(tok.bos_token or "") + INSTRUCTION_TEMPLATE.format(instruction=instructions[i % len(instructions)])
            for i in range(n)]


def load_model(model_dir: Path, quant: str, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    cuda = device == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa",
                              "device_map": {"": 0} if cuda else {"": "cpu"}}
    if quant == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True,
                                                           bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    model.config.use_cache = True
    if not cuda:  # the CPU kernel policy of `swcdata evaluate` (the tiny shape's 16-wide k/v cannot be packed)
        from swcdata.finetune.bnb_cpu import configure

        configure(model, training=False, compute_dtype=dtype)
    return model.eval()


def measure(name: str, model_dir: Path, prompts: list[str], tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from swcdata.finetune.generate import generate

    cuda = args.device == "cuda"
    model = load_model(model_dir, args.quant, args.device)
    model.generation_config.pad_token_id = tok.pad_token_id
    generate(model, tok, prompts[:2], batch_size=2, max_new_tokens=2)  # warm-up (kernels, allocator)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    n, new = len(prompts), args.max_new_tokens
    t0 = time.perf_counter()
    batched = generate(model, tok, prompts, batch_size=args.batch_size, max_new_tokens=new, min_new_tokens=new)
    batched_s = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    step = max(n // args.sample, 1)
    sample = prompts[::step][: args.sample]
    t0 = time.perf_counter()
    single = generate(model, tok, sample, batch_size=1, max_new_tokens=new, min_new_tokens=new)
    single_s = time.perf_counter() - t0
    spr_b, spr_1 = batched_s / n, single_s / len(sample)
    res = {
        "model": name, "quant": args.quant, "records": n, "max_new_tokens": new, "batch_size": args.batch_size,
        "batched_seconds": round(batched_s, 3), "batched_seconds_per_record": round(spr_b, 5),
        "batched_new_tokens_per_s": round(sum(a.new_tokens for a in batched) / batched_s, 1),
        "single_sample": len(sample), "single_seconds_measured": round(single_s, 3),
        "single_seconds_per_record": round(spr_1, 5),
        "single_seconds_extrapolated": round(spr_1 * n, 1),
        "single_new_tokens_per_s": round(sum(a.new_tokens for a in single) / single_s, 1),
        "speedup": round(spr_1 / spr_b, 2), "peak_gpu_mib": None if peak is None else round(peak, 0),
        "mean_prompt_tokens": round(sum(a.prompt_tokens for a in batched) / n, 1),
    }
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return res


def markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| model | weights | records | new tokens | batch | batched s/record | one-at-a-time s/record (sample) | "
             "speed-up | batched tokens/s | peak GPU MiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        peak = "-" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:,.0f}"
        ok = "meets" if r["speedup"] >= TARGET_SPEEDUP else "misses"
        lines.append(f"| {r['model']} | {r['quant']} | {r['records']} | {r['max_new_tokens']} | {r['batch_size']} | "
                     f"{r['batched_seconds_per_record']:.4f} | {r['single_seconds_per_record']:.4f} "
                     f"({r['single_sample']}) | {r['speedup']:.1f}x ({ok} {TARGET_SPEEDUP:.0f}x) | "
                     f"{r['batched_new_tokens_per_s']:,.0f} | {peak} |")
    lines += ["", f"One at a time was timed on the sample shown and extrapolated to all records; the seed project "
              f"took {SEED_SECONDS_PER_RECORD} s/record one at a time on an H100."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="gemma-2b,gemma-7b", help="comma-separated: gemma-2b, gemma-7b")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny model, 12 prompts, 8 new tokens, sample 3")
    p.add_argument("--data", type=Path, default=REPO / "dataset" / "swc_sample.jsonl",
                   help="JSONL whose instructions become the prompts (cycled to --records)")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--sample", type=int, default=24, help="prompts timed one at a time (then extrapolated)")
    p.add_argument("--quant", choices=["nf4", "none"], default="nf4")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder for the JSON and Markdown")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.models = "cpu", "tiny"
        args.records, args.max_new_tokens, args.sample = min(args.records, 12), min(args.max_new_tokens, 8), 3
        args.batch_size = min(args.batch_size, 8)
    if min(args.records, args.max_new_tokens, args.batch_size, args.sample) < 1:
        die("--records, --max-new-tokens, --batch-size and --sample must be >= 1")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        die("CUDA is not available: this benchmark measures GPU generation (torch "
            f"{torch.__version__}, {'a CPU-only build' if torch.version.cuda is None else 'no visible GPU'}). "
            "Run it on a CUDA machine, or smoke-test it here with --smoke.")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SHAPES]
    if unknown:
        die(f"unknown model shape(s): {', '.join(unknown)} (choose from gemma-2b, gemma-7b)")

    from swcdata.finetune.tokenizer import train_tokenizer
    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([args.data], ValidateConfig(check_code=False))
    texts = table.column("instruction").to_pylist() + table.column("response").to_pylist()
    tok = train_tokenizer(iter(texts), 768 if args.smoke else 16000)
    tok.padding_side = "left"
    prompts = load_prompts(args.data, args.records, tok)
    started = time.perf_counter()
    results = []
    for name in models:
        with tempfile.TemporaryDirectory(prefix=f"bench-eval-{name}-") as tmp:
            build_model_dir(SHAPES[name], len(tok), Path(tmp), args.device)
            r = measure(name, Path(tmp), prompts, tok, args)
            print(f"{name}: batched {r['batched_seconds_per_record']:.4f} s/record, one at a time "
                  f"{r['single_seconds_per_record']:.4f} s/record, {r['speedup']:.1f}x", file=sys.stderr)
            results.append(r)
    import importlib.metadata as im

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    versions = ", ".join(f"{n} {im.version(n)}" for n in ("torch", "transformers", "bitsandbytes"))
    command = "python bench/evaluate_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"### {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
              f"- machine: {gpu or platform.processor() or platform.machine()}; {versions}\n"
              f"- command: `{command.strip()}`\n"
              f"- prompts: {args.records} from `{args.data.name}` (Instruction/Response format), every answer forced "
              f"to {args.max_new_tokens} new tokens, greedy; weights {args.quant}, SDPA attention\n"
              f"- whole benchmark: {time.perf_counter() - started:.0f} s")
    md = markdown(results, header)
    print(md)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "evaluate_gpu.json").write_text(json.dumps(
            {"command": command.strip(), "machine": gpu or platform.machine(), "versions": versions,
             "results": results}, indent=2) + "\n", encoding="utf-8")
        (args.out / "evaluate_gpu.md").write_text(md, encoding="utf-8")
    except OSError as e:
        die(f"cannot write results to {args.out}: {e.strerror}")
    print(f"written to {args.out / 'evaluate_gpu.json'} and {args.out / 'evaluate_gpu.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
