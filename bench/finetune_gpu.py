"""QLoRA training throughput: the seed notebooks' setup against swcdata's recipe, on the same data and token budget.

    python bench/finetune_gpu.py                       # Gemma-2B and Gemma-7B shapes on the GPU
    python bench/finetune_gpu.py --markdown            # ... and append the table to bench/RESULTS.md
    python bench/finetune_gpu.py --device cpu --tiny   # smoke test without a GPU (also: --dry-run)

Nothing is downloaded: models are randomly initialised from the Gemma-2B / Gemma-7B config shapes
(written to a temporary folder, then loaded in 4-bit NF4 through `from_pretrained` like a Hub model),
and the tokenizer is a BPE trained on the data. Throughput does not depend on the weights' values.

The two setups, each for `--steps` timed optimiser steps after `--warmup` steps, rows of `--seq-len`
tokens, `--batch` rows per step (the same sequence budget):

- seed: every example padded to seq-len (no packing), eager attention, LoRA r=16 on q/k/v only,
  loss on prompt and response, Instruction/Response text;
- swcdata: best-fit-decreasing packing to seq-len, padding-free with per-example position ids, SDPA
  (flash-attention 2 when installed on compute capability >= 8.0), LoRA r=16 on every attention and
  MLP linear layer, loss on the response only.

Reported: useful (non-pad) tokens/s, the padded share of computed tokens, peak GPU memory
(`torch.cuda.max_memory_allocated`), and MFU = 6 x params x useful tokens/s / peak bf16 FLOP/s
(params excluding the input embedding; gradient-checkpointing recompute not counted as useful).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# dense bf16 peak FLOP/s by GPU name fragment (no sparsity)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0,
               "4090": 165.0, "3090": 71.0, "V100": 125.0, "T4": 65.0}

SHAPES: dict[str, dict[str, int]] = {
    # google/gemma-2b config.json
    "gemma-2b": {"vocab_size": 256000, "hidden_size": 2048, "intermediate_size": 16384, "num_hidden_layers": 18,
                 "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256},
    # google/gemma-7b config.json (codegemma-7b has the same shape)
    "gemma-7b": {"vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
                 "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256},
    "tiny": {"vocab_size": 0, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32},  # widths bitsandbytes packs
}


@dataclass
class Result:
    model: str
    setup: str
    attention: str
    targets: str
    loss_on: str
    steps: int
    seconds: float
    useful_tokens: int
    computed_tokens: int
    loss_tokens: int
    peak_mib: float
    params: int
    peak_tflops: float | None

    @property
    def tokens_per_s(self) -> float:
        return self.useful_tokens / self.seconds

    @property
    def padded_share(self) -> float:
        return 1 - self.useful_tokens / self.computed_tokens if self.computed_tokens else 0.0

    @property
    def mfu(self) -> float | None:
        if not self.peak_tflops:
            return None
        return 6 * self.params * self.tokens_per_s / (self.peak_tflops * 1e12)


def die(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_records(path: Path, limit: int | None) -> Any:
    import datasets

    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([path], ValidateConfig(check_code=False))
    ds = datasets.Dataset(table)
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def build_model_dir(shape: dict[str, int], vocab: int, dest: Path, device: str) -> None:
    """Random init from the config shape, saved in bf16 (fp32 on CPU) so from_pretrained can quantise it."""
    import torch
    from transformers import AutoModelForCausalLM, GemmaConfig

    cfg = GemmaConfig(**{**shape, "vocab_size": shape["vocab_size"] or vocab}, max_position_embeddings=8192,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device("cuda" if device == "cuda" else "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.save_pretrained(dest)
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def seed_batches(records: Any, tok: Any, seq_len: int, batch: int) -> list[dict[str, Any]]:
    """The seed notebooks: Instruction/Response text, right-truncated, padded to seq_len, loss on everything."""
    from swcdata.finetune.data import INSTRUCTION_TEMPLATE

    texts = [(tok.bos_token or "") + INSTRUCTION_TEMPLATE.format(instruction=r["instruction"]) + r["response"]
             + tok.eos_token for r in records]
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=seq_len, padding="max_length",
              return_tensors="pt")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    out = []
    for i in range(0, len(texts) - batch + 1, batch):
        out.append({"input_ids": enc["input_ids"][i:i + batch], "attention_mask": enc["attention_mask"][i:i + batch],
                    "labels": labels[i:i + batch]})
    return out or [{"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}]


def swcdata_batches(records: Any, tok: Any, seq_len: int, batch: int) -> list[dict[str, Any]]:
    """swcdata: chat rendering, response-only labels, BFD packing, padding-free collation."""
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from swcdata.finetune.data import build_split
    from swcdata.finetune.recipe import DataSection

    ds, _ = build_split(records, tok, DataSection(max_length=seq_len, packing=True), "train")
    packed = pack_dataset(ds, seq_len, "bfd")
    collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)
    rows = list(packed)
    return [collate(rows[i:i + batch]) for i in range(0, max(len(rows) - batch + 1, 1), batch)]


def run_setup(name: str, setup: str, model_dir: Path, batches: list[dict[str, Any]], args: argparse.Namespace,
              peak_tflops: float | None) -> Result:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from swcdata.finetune.model import flash_attention_status, resolve_target_modules

    cuda = args.device == "cuda"
    compute = torch.bfloat16 if cuda else torch.float32
    if setup == "seed":
        attn, targets, loss_on = "eager", ["q_proj", "k_proj", "v_proj"], "prompt + response"
    else:
        attn = "flash_attention_2" if flash_attention_status()[0] else "sdpa"
        targets, loss_on = None, "response"
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=compute)
    model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=q, dtype=compute,
                                                 attn_implementation=attn,
                                                 device_map={"": 0} if cuda else {"": "cpu"})
    model.config.use_cache = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    targets = targets or resolve_target_modules(model, "all-linear")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets,
                                             task_type="CAUSAL_LM"))
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    # 4-bit weights count as their unquantised size: numel of a packed uint8 tensor is half
    params += sum(m.weight.numel() for m in model.modules() if type(m).__name__ == "Linear4bit")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dev = torch.device("cuda" if cuda else "cpu")

    def step(b: dict[str, Any]) -> None:
        inputs = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in b.items()}
        with torch.autocast(dev.type, dtype=compute, enabled=cuda):
            loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    cyc = itertools.cycle(batches)
    for _ in range(args.warmup):
        step(next(cyc))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    useful = computed = loss_tokens = 0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        b = next(cyc)
        step(b)
        computed += int(b["input_ids"].numel())
        useful += int(b["attention_mask"].sum()) if "attention_mask" in b else int(b["input_ids"].numel())
        loss_tokens += int((b["labels"] != -100).sum())
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = Result(name, setup, attn, ", ".join(targets), loss_on, args.steps, seconds, useful, computed, loss_tokens,
                 peak, params, peak_tflops)
    model = opt = None
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return res


def table(results: list[Result], cuda: bool) -> str:
    head = ("| model | setup | attention | LoRA targets | loss on | useful tokens/s | padded share | "
            f"peak {'GPU' if cuda else 'RSS'} MiB | MFU | speed-up |")
    lines = [head, "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    base: dict[str, float] = {}
    for r in results:
        base.setdefault(r.model, r.tokens_per_s)
        mfu = f"{r.mfu:.1%}" if r.mfu is not None else "n/a"
        lines.append(f"| {r.model} | {r.setup} | {r.attention} | {r.targets} | {r.loss_on} | {r.tokens_per_s:,.0f} | "
                     f"{r.padded_share:.0%} | {r.peak_mib:,.0f} | {mfu} | {r.tokens_per_s / base[r.model]:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="gemma-2b,gemma-7b", help="comma-separated: gemma-2b, gemma-7b")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny Gemma-shaped model instead (smoke test)")
    p.add_argument("--dry-run", action="store_true", help="same as --device cpu --tiny --steps 2 --warmup 1")
    p.add_argument("--data", type=Path, default=REPO / "dataset" / "swc_sample.jsonl")
    p.add_argument("--limit", type=int, default=None, help="use the first N records")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4, help="rows of seq-len tokens per step (the sequence budget)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's dense bf16 peak")
    p.add_argument("--markdown", action="store_true", help="append the table to bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.dry_run:
        args.device, args.tiny, args.steps, args.warmup = "cpu", True, 2, 1
        args.seq_len = min(args.seq_len, 512)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        die("CUDA is not available: this benchmark measures GPU training (torch "
            f"{torch.__version__}, {'a CPU-only build' if torch.version.cuda is None else 'no visible GPU'}). "
            "Run it on a CUDA machine, or smoke-test it here with --dry-run (= --device cpu --tiny).")
    cuda = args.device == "cuda"
    gpu = torch.cuda.get_device_name(0) if cuda else None
    peak_tflops = args.peak_tflops or (next((v for k, v in PEAK_TFLOPS.items() if gpu and k in gpu), None)
                                       if cuda else None)
    models = ["tiny"] if args.tiny else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SHAPES]
    if unknown:
        die(f"unknown model shape(s): {', '.join(unknown)} (choose from gemma-2b, gemma-7b)")

    from swcdata.finetune.tokenizer import train_tokenizer

    records = load_records(args.data, args.limit)
    tok = train_tokenizer((t for r in records for t in (r["instruction"], r["response"])),
                          768 if args.tiny else 16000)
    seed_b = seed_batches(records, tok, args.seq_len, args.batch)
    ours_b = swcdata_batches(records, tok, args.seq_len, args.batch)
    results: list[Result] = []
    started = time.perf_counter()
    for name in models:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            build_model_dir(SHAPES[name], len(tok), Path(tmp), args.device)
            for setup, batches in (("seed", seed_b), ("swcdata", ours_b)):
                r = run_setup(name, setup, Path(tmp), batches, args, peak_tflops)
                print(f"{name} {setup}: {r.tokens_per_s:,.0f} useful tokens/s, peak {r.peak_mib:,.0f} MiB",
                      file=sys.stderr)
                results.append(r)
    md = table(results, cuda)
    import importlib.metadata as im

    versions = ", ".join(f"{n} {im.version(n)}" for n in ("torch", "transformers", "peft", "bitsandbytes", "trl"))
    fa = "installed" if __import__("importlib.util").util.find_spec("flash_attn") else "not installed"
    header = (f"### {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
              f"- machine: {gpu or platform.processor() or platform.machine()}"
              f"{f', peak {peak_tflops:g} TFLOP/s bf16' if peak_tflops else ''}; {versions}; flash_attn {fa}\n"
              f"- command: `python bench/finetune_gpu.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n"
              f"- data: `{args.data.relative_to(REPO) if args.data.is_relative_to(REPO) else args.data}` "
              f"({len(records)} records), {args.batch} rows x {args.seq_len} tokens per step, {args.steps} timed "
              f"steps after {args.warmup}; 4-bit NF4 + double quant, LoRA r=16, gradient checkpointing in both\n"
              f"- whole benchmark: {time.perf_counter() - started:.0f} s\n")
    print(header)
    print(md)
    if args.markdown:
        path = REPO / "bench" / "RESULTS.md"
        text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
        if "## finetune (issue 6)" not in text:
            text = text.rstrip("\n") + "\n\n## finetune (issue 6)\n"
        path.write_text(text.rstrip("\n") + "\n\n" + header + "\n" + md + "\n", encoding="utf-8")
        print(f"appended to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
