"""`swcdata finetune REF --dry-run`: what a run will do, before anyone rents a GPU.

`plan_run` loads no model weights and needs no GPU. It resolves the recipe (and says where each
value came from: the recipe file, `--set`, or the default), tokenizes the data exactly as a run
would (same prompt rendering, same truncation policy), packs it with TRL's own best-fit-decreasing
packer, and counts the steps with the Trainer's own arithmetic, so its truncation and step counts
are the ones the real run then logs. The architecture comes from a weightless (meta-device) copy
built from the model's config, read from a local folder or the Hub cache; LoRA targets are
resolved from it, and a GPU memory estimate is given against `gpu_memory_gib`.

The report models import nothing heavy (they are registered in `swcdata.cli.schema`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from swcdata.finetune.data import LengthReport

if TYPE_CHECKING:
    import datasets

    from swcdata.finetune.recipe import Recipe
    from swcdata.finetune.runs import DatasetRef

GIB = 2**30
CUDA_OVERHEAD_GIB = 0.75  # CUDA context, cuBLAS workspace and allocator slack (typical, measured on A100/H100)
_OPTIMIZER_BYTES = {"paged_adamw_8bit": 2, "adamw_8bit": 2, "adamw_bnb_8bit": 2, "paged_adamw_32bit": 8,
                    "adamw_torch": 8, "adamw_torch_fused": 8, "adamw_hf": 8, "sgd": 0, "adafactor": 4}


class ResolvedValue(BaseModel):
    """One recipe value and where it came from."""

    key: str = Field(description="Dotted path, e.g. lora.r.")
    value: Any
    source: Literal["recipe", "--set", "default"]


class SplitPlan(BaseModel):
    """One split as the tokenizer sees it, and as the packer packs it."""

    lengths: LengthReport
    rows: int = Field(description="Training rows after packing (examples when packing is off).")
    packing_efficiency: float = Field(description="Tokens / (rows x max_length): the share of each row that is data.")


class ModelPlan(BaseModel):
    """The architecture, read from the model's config without weights."""

    name: str
    config_source: str = Field(description="Where the config came from: a local folder, the Hub cache, the Hub, "
                               "the tiny recipe's shape, or `unreachable: <why>`.")
    architecture: str | None = None
    parameters: int | None = None
    quantized_parameters: int | None = Field(None, description="Parameters of the linear layers loaded in 4 bit.")
    target_modules: list[str] = Field(default_factory=list)
    lora_parameters: int | None = None
    unpackable_on_avx512_cpu: list[str] = Field(default_factory=list, description="4-bit layers whose shape "
                                                "bitsandbytes' packed AVX-512 BF16 CPU kernel cannot take (they run "
                                                "on its reference kernel there).")


class MemoryEstimate(BaseModel):
    """GPU memory of one training process, in GiB (an estimate: see `notes` for the formula)."""

    weights_4bit: float
    weights_other: float = Field(description="Embeddings, norms, lm_head in the model dtype.")
    lora_and_saved_modules: float
    gradients: float
    optimizer: float
    activations_with_checkpointing: float
    activations_without_checkpointing: float
    logits: float = Field(description="Logits and their fp32 loss copy for one micro-batch.")
    overhead: float
    total: float = Field(description="With or without gradient checkpointing, as the recipe says.")
    gpu_memory: float
    fits: bool
    notes: list[str] = Field(default_factory=list)


class RunPlan(BaseModel):
    """`swcdata finetune --dry-run`: the resolved recipe, the data as the tokenizer sees it, steps, memory."""

    dataset: str
    dataset_hash: str
    recipe: str
    recipe_file: str | None
    values: list[ResolvedValue]
    tokenizer_source: str
    prompt_format: str | None = None
    splits: list[SplitPlan] = Field(default_factory=list)
    world_size: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    sequences_per_step: int = Field(description="Packed rows per optimiser step, all processes together.")
    steps_per_epoch: int | None = None
    epochs: float | None = None
    total_steps: int | None = None
    tokens_per_step: float | None = Field(None, description="Mean training tokens per optimiser step.")
    max_tokens_per_step: int
    model: ModelPlan
    memory: MemoryEstimate | None = None
    warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# ---- the recipe's values and their sources -----------------------------------------------------

def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def resolved_values(recipe: Recipe, recipe_file: Path | None, overrides: list[str]) -> list[ResolvedValue]:
    """Every leaf value of the resolved recipe, with its source (the last of --set, the file, the default)."""
    import yaml

    from swcdata.finetune.recipe import parse_override

    in_file: dict[str, Any] = {}
    if recipe_file is not None:
        try:
            in_file = _flatten(yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError):
            in_file = {}
    set_keys = {".".join(parse_override(o)[0]) for o in overrides}
    out = []
    for key, value in _flatten(recipe.model_dump(mode="json")).items():
        parts = key.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if prefixes & set_keys:
            source: Literal["recipe", "--set", "default"] = "--set"
        elif key in in_file or any(p in in_file for p in prefixes):
            source = "recipe"
        else:
            source = "default"
        out.append(ResolvedValue(key=key, value=value, source=source))
    return out


# ---- tokenizer and config without weights -------------------------------------------------------

def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _from_local_or_hub(loader: Callable[..., Any], name: str, **kwargs: Any) -> tuple[Any, str]:
    """(object, source): a local folder, the Hub cache, then the Hub itself (unless HF_HUB_OFFLINE)."""
    if Path(name).is_dir():
        return loader(name, **kwargs), f"local folder {name}"
    try:
        return loader(name, local_files_only=True, **kwargs), "Hub cache"
    except (OSError, ValueError) as cached:
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            raise OSError(f"not in the Hub cache and HF_HUB_OFFLINE is set ({_first_line(cached)})") from None
    return loader(name, **kwargs), "Hub"


def _tokenizer(recipe: Recipe, train: datasets.Dataset) -> tuple[Any, str]:
    if recipe.model.source == "tiny":
        from swcdata.finetune.tokenizer import train_split_tokenizer

        return train_split_tokenizer(train, recipe.model.tiny.vocab_size), "trained on the train split (tiny recipe)"
    from transformers import AutoTokenizer

    tok, source = _from_local_or_hub(AutoTokenizer.from_pretrained, recipe.model.name,
                                     revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    return tok, source


def _config(recipe: Recipe, vocab: int | None) -> tuple[Any, str]:
    if recipe.model.source == "tiny":
        from transformers import LlamaConfig

        t = recipe.model.tiny
        return LlamaConfig(vocab_size=vocab or t.vocab_size, hidden_size=t.hidden_size,
                           intermediate_size=t.intermediate_size, num_hidden_layers=t.num_hidden_layers,
                           num_attention_heads=t.num_attention_heads, num_key_value_heads=t.num_key_value_heads,
                           max_position_embeddings=t.max_position_embeddings, tie_word_embeddings=False), \
            "the tiny recipe's shape"
    from transformers import AutoConfig

    return _from_local_or_hub(AutoConfig.from_pretrained, recipe.model.name, revision=recipe.model.revision,
                              trust_remote_code=recipe.model.trust_remote_code)


def _model_plan(recipe: Recipe, vocab: int | None, warnings: list[str]) -> tuple[ModelPlan, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from swcdata.core.errors import ConfigError
    from swcdata.finetune.bnb_cpu import packable
    from swcdata.finetune.model import _is_linear, resolve_target_modules

    plan = ModelPlan(name=recipe.model.name, config_source="")
    try:
        config, plan.config_source = _config(recipe, vocab)
    except Exception as e:  # no network, gated, not found: the plan goes on without the architecture
        plan.config_source = f"unreachable: {_first_line(e)}"
        warnings.append(f"the config of {recipe.model.name} could not be read from a local folder or the Hub cache "
                        f"({_first_line(e)}): no LoRA targets or memory estimate (download it once with network, "
                        "or point model.name at a local copy)")
        return plan, None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=recipe.model.trust_remote_code)
    plan.architecture = type(model).__name__
    plan.parameters = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    linears = [(n, m) for n, m in model.named_modules() if n and _is_linear(m) and m is not head]
    if recipe.quantization.load_in_4bit:
        plan.quantized_parameters = sum(m.weight.numel() for _, m in linears)
        plan.unpackable_on_avx512_cpu = [n for n, m in linears
                                         if packable(m.out_features, m.in_features, 64) is not None]
    try:
        plan.target_modules = resolve_target_modules(model, recipe.lora.target_modules)
    except ConfigError as e:
        warnings.extend(e.problems)
    targets = set(plan.target_modules)
    lora = sum(recipe.lora.r * (m.in_features + m.out_features) for n, m in linears if n.rsplit(".", 1)[-1] in targets)
    saved = sum(p.numel() for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in recipe.lora.modules_to_save
                for p in m.parameters())
    plan.lora_parameters = lora + saved
    return plan, (config, model, saved)


# ---- memory -------------------------------------------------------------------------------------

def _bytes_of(name: str) -> int:
    return 4 if name == "float32" else 2  # auto -> bf16 (or fp16) on a GPU


def estimate_memory(recipe: Recipe, plan: ModelPlan, config: Any, saved_params: int, gpu_memory_gib: float
                    ) -> MemoryEstimate:
    """The usual QLoRA accounting for one process (see `notes`)."""
    q = recipe.quantization
    t = recipe.training
    a = _bytes_of(recipe.model.dtype)
    c = _bytes_of(q.compute_dtype)
    total = plan.parameters or 0
    quantized = plan.quantized_parameters or 0
    per_param_4bit = 0.5 + ((1 / 64) + 4 / (64 * 256) if q.double_quant else 4 / 64)
    weights_4bit = quantized * per_param_4bit if q.load_in_4bit else quantized * a
    weights_other = (total - quantized) * a
    trainable = plan.lora_parameters or 0
    adapter_bytes = 2 if c == 2 else 4  # adapters follow the compute dtype (TRL casts them to bf16 for QLoRA)
    lora = trainable * adapter_bytes
    grads = trainable * adapter_bytes
    optimizer = trainable * _OPTIMIZER_BYTES.get(t.optim, 8)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    inter = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(config, "num_key_value_heads", heads) or heads)
    head_dim = int(getattr(config, "head_dim", 0) or (hidden // heads if heads else 0))
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    tokens = t.per_device_train_batch_size * recipe.data.max_length
    per_layer_token = c * (6 * hidden + 2 * kv_heads * head_dim + 2 * heads * head_dim + 4 * inter)
    without = tokens * per_layer_token * layers
    with_ckpt = tokens * c * hidden * layers + tokens * per_layer_token
    logits = tokens * vocab * (c + 8)
    activations = with_ckpt if t.gradient_checkpointing else without
    gib = [x / GIB for x in (weights_4bit, weights_other, lora, grads, optimizer, with_ckpt, without, logits)]
    total_gib = sum(gib[:5]) + (activations + logits) / GIB + CUDA_OVERHEAD_GIB
    return MemoryEstimate(
        weights_4bit=round(gib[0], 3), weights_other=round(gib[1], 3), lora_and_saved_modules=round(gib[2], 3),
        gradients=round(gib[3], 3), optimizer=round(gib[4], 3), activations_with_checkpointing=round(gib[5], 3),
        activations_without_checkpointing=round(gib[6], 3), logits=round(gib[7], 3), overhead=CUDA_OVERHEAD_GIB,
        total=round(total_gib, 2), gpu_memory=gpu_memory_gib, fits=total_gib <= gpu_memory_gib,
        notes=[
            f"4-bit weights: {per_param_4bit:.4f} bytes per quantised parameter (NF4 + "
            f"{'double-quantised' if q.double_quant else 'fp32'} block constants)",
            f"activations per token and layer: {per_layer_token:,} bytes (residual, norms, q/k/v/o, MLP gate/up/act"
            "/product; attention by SDPA or flash-attention, no score matrix); with checkpointing each layer keeps "
            "its input and one layer is recomputed at a time",
            f"one micro-batch: {t.per_device_train_batch_size} packed rows x {recipe.data.max_length} tokens",
            f"optimiser {t.optim}: {_OPTIMIZER_BYTES.get(t.optim, 8)} bytes per trainable parameter",
            f"plus {CUDA_OVERHEAD_GIB} GiB for the CUDA context and allocator; saved modules: {saved_params:,} "
            "parameters trained in full",
        ])


# ---- the plan -----------------------------------------------------------------------------------

def steps_per_epoch(rows: int, world_size: int, batch_size: int, accumulation: int) -> int:
    """The Trainer's arithmetic: batches per process (sharded evenly), then optimiser steps per epoch."""
    batches = math.ceil(math.ceil(rows / batch_size) / world_size)
    return max(batches // accumulation + int(batches % accumulation > 0), 1)


def _packed_rows(ds: datasets.Dataset, recipe: Recipe) -> int:
    if not recipe.data.packing or len(ds) == 0:
        return len(ds)
    from trl.data_utils import pack_dataset

    return len(pack_dataset(ds.select_columns(["input_ids", "labels"]), recipe.data.max_length, "bfd"))


def plan_run(dataset: datasets.DatasetDict, ref: DatasetRef, recipe: Recipe, *, recipe_file: Path | None = None,
             overrides: list[str] | None = None, world_size: int = 1, gpu_memory_gib: float = 24.0,
             log: Callable[[str], None] | None = None) -> RunPlan:
    """Everything a run will do that can be known without loading its weights."""
    from swcdata.core.errors import ConfigError
    from swcdata.finetune.data import build_split, resolve_prompt_format

    log = log or (lambda _m: None)
    import datasets as hf_datasets

    hf_datasets.disable_progress_bars()
    d, t = recipe.data, recipe.training
    if d.train_split not in dataset:
        raise ConfigError([f"data.train_split: {ref} has no split {d.train_split!r} (splits: {', '.join(dataset)})"])
    warnings: list[str] = []
    notes: list[str] = []
    plan = RunPlan(dataset=str(ref), dataset_hash=ref.content_hash, recipe=recipe.name,
                   recipe_file=str(recipe_file) if recipe_file else None,
                   values=resolved_values(recipe, recipe_file, overrides or []), tokenizer_source="",
                   world_size=world_size, per_device_train_batch_size=t.per_device_train_batch_size,
                   gradient_accumulation_steps=t.gradient_accumulation_steps,
                   sequences_per_step=t.per_device_train_batch_size * t.gradient_accumulation_steps * world_size,
                   max_tokens_per_step=t.per_device_train_batch_size * t.gradient_accumulation_steps * world_size
                   * d.max_length, model=ModelPlan(name=recipe.model.name, config_source=""))
    try:
        tok, plan.tokenizer_source = _tokenizer(recipe, dataset[d.train_split])
    except Exception as e:
        tok = None
        plan.tokenizer_source = f"unreachable: {_first_line(e)}"
        warnings.append(f"the tokenizer of {recipe.model.name} could not be loaded ({_first_line(e)}): no length, "
                        "truncation or step counts")
    if tok is not None:
        log(f"tokenizing with {plan.tokenizer_source}")
        plan.prompt_format = resolve_prompt_format(tok, d.prompt_format)
        names = [(d.train_split, d.max_train_examples)]
        if d.eval_split and d.eval_split in dataset and len(dataset[d.eval_split]):
            names.append((d.eval_split, d.max_eval_examples))
        for name, limit in names:
            ds, rep = build_split(dataset[name], tok, d, name, limit)
            rows = _packed_rows(ds, recipe)
            eff = rep.tokens / (rows * d.max_length) if rows else 0.0
            plan.splits.append(SplitPlan(lengths=rep, rows=rows, packing_efficiency=round(eff, 4)))
        train = plan.splits[0]
        if train.rows == 0:
            warnings.append(f"no training example fits data.max_length={d.max_length}: {train.lengths.summary()}")
        else:
            per_epoch = steps_per_epoch(train.rows, world_size, t.per_device_train_batch_size,
                                        t.gradient_accumulation_steps)
            plan.steps_per_epoch = per_epoch
            plan.total_steps = t.max_steps if t.max_steps > 0 else math.ceil(t.num_train_epochs * per_epoch)
            plan.epochs = round(plan.total_steps / per_epoch, 3)
            plan.tokens_per_step = round(train.lengths.tokens / per_epoch, 1)
            dropped = train.lengths.dropped_policy + train.lengths.dropped_response_too_long
            if dropped:
                warnings.append(f"{dropped} of {train.lengths.examples} training examples are dropped at "
                                f"max_length={d.max_length} (see the histogram)")
    vocab = len(tok) if tok is not None else None
    model_plan, arch = _model_plan(recipe, vocab, warnings)
    plan.model = model_plan
    if arch is not None:
        config, _model, saved = arch
        plan.memory = estimate_memory(recipe, model_plan, config, saved, gpu_memory_gib)
        if not plan.memory.fits:
            warnings.append(f"estimated {plan.memory.total:.1f} GiB per GPU exceeds --gpu-memory "
                            f"{gpu_memory_gib:g} GiB: lower training.per_device_train_batch_size or data.max_length, "
                            "turn on training.gradient_checkpointing, or use a larger GPU")
        if model_plan.unpackable_on_avx512_cpu and recipe.model.source == "tiny":
            notes.append(f"{len(model_plan.unpackable_on_avx512_cpu)} 4-bit layer(s) have widths that bitsandbytes' "
                         "packed AVX-512 BF16 CPU kernel cannot take (keep widths multiples of 64); they run on its "
                         "reference kernel there")
    if t.device == "cuda":
        notes.append("a GPU recipe (training.device: cuda)")
    plan.warnings, plan.notes = warnings, notes
    return plan
