"""The fine-tuning recipe: a typed, nested, documented QLoRA configuration read from YAML.

A recipe has five sections: `model`, `quantization`, `lora`, `data`, `training`. `load_recipe`
reads a YAML file, applies `key=value` overrides (`lora.r=8`; the value is parsed as YAML, so
`8` is an int, `true` a bool, `[q_proj, v_proj]` a list) and validates the result, reporting
every problem at once with its path (`lora.r: must be > 0`) as a `ConfigError` (exit 2) before
any data is read or any model is loaded.

This module imports neither torch nor transformers (it is registered in `swcdata.cli.schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from swcdata.core.errors import ConfigError, InputError, plain_message

# What fine-tuning and answer generation import (the `train` extra); checked up front, without importing.
TRAIN_MODULES = ("torch", "transformers", "peft", "accelerate", "trl")
GENERATE_MODULES = ("torch", "transformers", "peft")

# Where `--recipe NAME` looks, in order (see `recipe_dirs`): the user's own recipes in ./finetune/ (relative
# to the working directory), then the recipes shipped with the package: swcdata/recipes/ in an installed
# wheel (package data, mapped from the repository's top-level finetune/ by setup.py), or, in an editable
# install or a checkout, where that folder does not exist, the repository's finetune/ itself.
RECIPE_DIR = Path("finetune")
PACKAGED_RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
REPO_RECIPE_DIR = Path(__file__).resolve().parents[2] / "finetune"
DEFAULT_RECIPE = "tiny-cpu"
RecipeSource = Literal["./finetune", "packaged"]

DType = Literal["auto", "bfloat16", "float16", "float32"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TinyModel(_Section):
    """Shape of the locally built, randomly initialised Llama-shaped model (`model.source: tiny`)."""

    vocab_size: int = Field(2048, ge=64, le=65536, description="Vocabulary size of the BPE tokenizer trained on the "
                            "dataset (the trained vocabulary can be a little smaller).")
    hidden_size: int = Field(128, gt=0, description="Model width.")
    intermediate_size: int = Field(384, gt=0, description="MLP width (keep widths multiples of 64: the shapes "
                                   "every bitsandbytes CPU kernel accepts).")
    num_hidden_layers: int = Field(2, gt=0, description="Decoder layers.")
    num_attention_heads: int = Field(4, gt=0, description="Query heads (must divide hidden_size).")
    num_key_value_heads: int = Field(2, gt=0, description="Key/value heads (must divide num_attention_heads).")
    max_position_embeddings: int = Field(2048, gt=0, description="Longest position the model supports.")

    @model_validator(mode="after")
    def _shapes(self) -> TinyModel:
        problems = []
        if self.hidden_size % self.num_attention_heads:
            problems.append("num_attention_heads must divide hidden_size")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append("num_key_value_heads must divide num_attention_heads")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ModelSection(_Section):
    """Which base model to fine-tune and how to run its attention."""

    source: Literal["hub", "tiny"] = Field("hub", description="`hub`: load `name` with from_pretrained (a Hub id or a "
                                           "local folder); `tiny`: build a small random Llama-shaped model and a "
                                           "tokenizer trained on the dataset, locally (no download).")
    name: str = Field("tiny-llama", min_length=1, description="Hub id (e.g. google/gemma-2b) or local path.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to pin.")
    trust_remote_code: bool = Field(False, description="Allow model code from the Hub repository.")
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        "auto", description="`auto`: flash_attention_2 when flash_attn is installed and the GPU has compute "
        "capability >= 8.0, SDPA otherwise.")
    dtype: DType = Field("auto", description="dtype of the non-quantised weights; `auto`: bf16 where supported, "
                         "else fp16 on GPU, fp32 on CPU.")
    tiny: TinyModel = Field(default_factory=TinyModel, description="Shape used when source is `tiny`.")


class QuantizationSection(_Section):
    """4-bit loading through bitsandbytes (QLoRA)."""

    load_in_4bit: bool = Field(True, description="Quantise the base model's linear layers to 4 bit.")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type; NF4 is the QLoRA paper's.")
    double_quant: bool = Field(True, description="Quantise the quantisation constants too (~0.4 bit/param saved).")
    compute_dtype: DType = Field("auto", description="dtype of the 4-bit matmuls; `auto`: bf16 where supported, "
                                 "else fp16 on GPU, fp32 on CPU.")


class LoraSection(_Section):
    """LoRA adapters (peft)."""

    r: int = Field(16, gt=0, description="Adapter rank.")
    alpha: int = Field(32, gt=0, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: Literal["all-linear"] | list[str] = Field(
        "all-linear", description="`all-linear`: every linear layer inside attention and MLP blocks, found by "
        "inspecting the architecture (lm_head excluded); or a list of module names, each of which must exist.")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train.")
    modules_to_save: list[str] = Field(default_factory=list, description="Modules trained in full and saved with "
                                       "the adapter (e.g. lm_head for a randomly initialised or extended vocabulary).")

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("give at least one module name, or `all-linear`")
        return v


class DataSection(_Section):
    """How records become training sequences."""

    prompt_format: Literal["auto", "chat", "instruction"] = Field(
        "auto", description="`chat`: the tokenizer's chat template (user turn = instruction, assistant turn = "
        "response); `instruction`: the seed notebooks' `Instruction:\\n...\\n\\nResponse:\\n...`; `auto`: chat "
        "when the tokenizer has a chat template, instruction otherwise.")
    system_prompt: str | None = Field(None, description="Optional system message (chat format only: put at the "
                                      "start of the user turn, with a note in the length report, when the template "
                                      "has no system role; the instruction format has no place for it).")
    max_length: int = Field(1024, gt=0, description="Longest training sequence in tokens (prompt + response + EOS).")
    overlong: Literal["truncate_prompt", "drop"] = Field(
        "truncate_prompt", description="What to do with an example longer than max_length: cut the prompt from the "
        "left (keeping BOS and the end of the prompt, never cutting the response), or drop it. An example whose "
        "response alone does not fit is always dropped.")
    min_prompt_tokens: int = Field(16, ge=1, description="A truncated prompt keeps at least this many tokens, "
                                   "otherwise the example is dropped.")
    packing: bool = Field(True, description="Pack several examples per row (best-fit decreasing), padding-free, with "
                          "position ids restarting per example so that examples never attend to each other.")
    train_split: str = Field("train", description="Split to train on.")
    eval_split: str | None = Field("validation", description="Split for eval loss; null for none.")
    max_train_examples: int | None = Field(None, gt=0, description="Use only the first N training examples.")
    max_eval_examples: int | None = Field(None, gt=0, description="Use only the first N evaluation examples.")


class TrainingSection(_Section):
    """Optimiser, schedule, evaluation and checkpointing (passed to TRL's SFTConfig)."""

    seed: int = Field(42, ge=0, le=2**63 - 1, description="Seed for model init, adapter init, shuffling and dropout.")
    num_train_epochs: float = Field(1.0, gt=0, description="Epochs (ignored when max_steps > 0).")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimiser steps; -1 = use epochs.")
    per_device_train_batch_size: int = Field(4, gt=0, description="Packed rows per device per step.")
    per_device_eval_batch_size: int = Field(4, gt=0, description="Rows per device per eval step.")
    gradient_accumulation_steps: int = Field(4, gt=0, description="Micro-batches per optimiser step.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (QLoRA paper: 2e-4 for <= 13B).")
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Share of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(0.3, gt=0, description="Gradient clipping (QLoRA paper: 0.3).")
    optim: str = Field("paged_adamw_8bit", description="Optimiser name as transformers knows it; `paged_adamw_8bit` "
                       "on GPU; the CPU recipe uses `adamw_torch`.")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in backward to save memory.")
    bf16: Literal["auto"] | bool = Field("auto", description="Mixed precision in bf16; `auto`: on a GPU that "
                                         "supports it.")
    logging_steps: int = Field(10, gt=0, description="Log train loss every N steps.")
    eval_steps: int | None = Field(None, gt=0, description="Evaluate every N steps; null: once per epoch.")
    save_steps: int | None = Field(None, gt=0, description="Checkpoint every N steps; null: ten times per run "
                                   "(every tenth of the total steps).")
    save_minutes: float | None = Field(10.0, gt=0, description="Also checkpoint when this many minutes have passed "
                                       "since the last checkpoint (long CPU runs); null: by steps only.")
    save_total_limit: int | None = Field(2, gt=0, description="Keep at most this many checkpoints.")
    dataloader_num_workers: int = Field(0, ge=0, description="Data-loading worker processes.")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="Where the recipe is meant to run: `cuda` marks a GPU recipe (started without a visible "
        "GPU it warns and trains on the CPU; `swcdata finetune --device cuda` makes that an error); `cpu` trains on "
        "the CPU even where a GPU is visible; `auto`: a GPU when one is visible.")


class DistributedSection(_Section):
    """Several processes (GPUs): DDP, FSDP or DeepSpeed (resolved in `swcdata.finetune.distributed`)."""

    mode: Literal["auto", "ddp", "fsdp", "deepspeed"] = Field(
        "auto", description="`auto`: DDP when started as several processes (--nproc N, torchrun, accelerate "
        "launch), plain single-process training otherwise; `ddp`: the same, named; `fsdp`: PyTorch FSDP shards "
        "the (4-bit) model across the processes (FSDP-QLoRA: 4-bit storage = the compute dtype, no device_map); "
        "`deepspeed`: DeepSpeed ZeRO with `deepspeed_config`.")
    nproc: int | None = Field(None, ge=1, description="Processes per node when `swcdata finetune` is not started "
                              "by a launcher (one per GPU); `--nproc` overrides it; null: one process (fsdp and "
                              "deepspeed then need --nproc or a launcher).")
    fsdp_version: Literal[1, 2] = Field(2, description="FSDP2 (per-parameter sharding; transformers 5.x's default) "
                                        "or the deprecated FSDP1.")
    fsdp_sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard"] = Field(
        "full_shard", description="`full_shard`: parameters, gradients and optimiser state sharded, parameters "
        "re-gathered for backward; `shard_grad_op`: parameters kept gathered between forward and backward (more "
        "memory, less communication); `hybrid_shard`: full_shard within a node, replicated across nodes "
        "(FSDP1 only).")
    fsdp_offload_params: bool = Field(False, description="Offload parameters and gradients to CPU RAM between "
                                      "uses (PEFT: lets 70B QLoRA fit 2x24 GB GPUs; slower).")
    fsdp_cpu_ram_efficient_loading: bool = Field(True, description="Only the first process reads the checkpoint; "
                                                 "the others receive the weights by broadcast (a 4-bit model is "
                                                 "loaded by each process regardless).")
    fsdp_use_orig_params: bool = Field(False, description="FSDP1 only: keep the original parameters visible; "
                                       "false (PEFT's QLoRA setting) flattens them and realises the memory "
                                       "savings. FSDP2 always shards the original parameters.")
    fsdp_layer_cls: list[str] | None = Field(None, description="Class names of the transformer layers to wrap "
                                             "as FSDP units (e.g. [LlamaDecoderLayer]); null: the model's own "
                                             "`_no_split_modules`.")
    deepspeed_config: str | None = Field(None, min_length=1, description="DeepSpeed JSON for mode deepspeed; a "
                                         "relative path is looked up beside the recipe file, then among the "
                                         "shipped recipes: deepspeed/zero2.json (optimiser state + gradients "
                                         "sharded) or deepspeed/zero3.json (parameters too). Their `auto` "
                                         "values are filled from the training section.")


def _distributed_problems(r: Recipe) -> list[str]:
    """Cross-section checks of the `distributed` section, each `path: message`."""
    d = r.distributed
    problems = []
    if d.mode == "fsdp":
        if "8bit" in r.training.optim:
            problems.append(f"training.optim: paged 8-bit optimisers cannot be used under FSDP (nor other "
                            f"bitsandbytes 8-bit ones; got {r.training.optim}): their state does not shard and "
                            "saving a checkpoint fails (PEFT's FSDP guide); use adamw_torch or adamw_torch_fused")
        if d.fsdp_sharding == "hybrid_shard" and d.fsdp_version != 1:
            problems.append("distributed.fsdp_sharding: hybrid_shard needs distributed.fsdp_version: 1 (FSDP2 "
                            "offers full_shard and shard_grad_op)")
        c, m = r.quantization.compute_dtype, r.model.dtype
        if r.quantization.load_in_4bit and "auto" not in (c, m):
            storage = "float32" if c == "float16" else c  # = distributed.quant_storage_dtype
            if m != storage:
                problems.append(f"model.dtype: under FSDP-QLoRA the non-quantised weights are stored like the "
                                f"4-bit ones, in {storage} (from quantization.compute_dtype: {c}); set "
                                f"model.dtype to {storage} or auto")
    if d.mode == "deepspeed" and d.deepspeed_config is None:
        problems.append("distributed.deepspeed_config: required when distributed.mode is deepspeed (e.g. "
                        "deepspeed/zero2.json or deepspeed/zero3.json, shipped with the recipes)")
    if d.mode != "deepspeed" and d.deepspeed_config is not None:
        problems.append(f"distributed.deepspeed_config: only used with distributed.mode: deepspeed (mode is "
                        f"{d.mode}); remove it or set the mode")
    return problems


class Recipe(BaseModel):
    """A complete QLoRA fine-tuning recipe (one YAML file in `finetune/`)."""

    model_config = ConfigDict(extra="forbid", title="Recipe", validate_assignment=True, allow_inf_nan=False)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="Recipe name (used in run ids).")
    description: str = Field("", description="What the recipe is for, in one line.")
    model: ModelSection = Field(default_factory=ModelSection)
    quantization: QuantizationSection = Field(default_factory=QuantizationSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection = Field(default_factory=DataSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)

    @model_validator(mode="after")
    def _cross(self) -> Recipe:
        if self.model.source == "tiny" and self.data.max_length > self.model.tiny.max_position_embeddings:
            raise ValueError("data.max_length must be <= model.tiny.max_position_embeddings")
        # several problems at once, one per line, each with its own path (see core.errors.validation_problems)
        problems = _distributed_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# ---- loading ---------------------------------------------------------------------------------

def _message(e: Mapping[str, Any]) -> str:
    """A recipe error in the recipe's words (bounds as `must be > 0`, an unknown key, a required one)."""
    ctx = e.get("ctx") or {}
    kind = e["type"]
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {e.get('input')!r}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "value_error":
        return plain_message(e)
    return str(e["msg"])


def parse_override(item: str) -> tuple[list[str], Any]:
    """`lora.r=8` -> (["lora", "r"], 8). The value is parsed as YAML for type coercion."""
    import yaml

    if "=" not in item:
        raise ConfigError([f"--set {item}: expected key=value (e.g. lora.r=8)"])
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError([f"--set {item}: empty key"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted key in a copy of `data` (creating nested sections as needed)."""
    import copy

    out = copy.deepcopy(data)
    problems = []
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for p in path[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                problems.append(f"--set {item}: {p} is not a section")
                break
            node = nxt
        else:
            node[path[-1]] = value
    if problems:
        raise ConfigError(problems)
    return out


def recipe_from_dict(data: dict[str, Any], *, source: str | None = None) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise ConfigError.from_validation(e, source=source, whole="(recipe)", message=_message) from None


def recipe_dirs() -> list[tuple[RecipeSource, Path]]:
    """The folders a recipe name is looked up in, in order, as (source, folder): `./finetune` (the working
    directory's finetune/, the user's own recipes) then `packaged` (those shipped with swcdata). A working
    directory's finetune/ that is the packaged folder itself (the repository root) is listed once, as packaged."""
    packaged = PACKAGED_RECIPE_DIR if PACKAGED_RECIPE_DIR.is_dir() else REPO_RECIPE_DIR
    dirs: list[tuple[RecipeSource, Path]] = [("packaged", packaged)]
    try:
        same = RECIPE_DIR.resolve() == packaged.resolve()
    except OSError:
        same = False
    if not same:
        dirs.insert(0, ("./finetune", RECIPE_DIR))
    return dirs


def _named_recipes() -> dict[str, tuple[RecipeSource, Path]]:
    """name -> (source, path) of every recipe reachable by name; the first folder holding a name wins."""
    found: dict[str, tuple[RecipeSource, Path]] = {}
    for source, d in recipe_dirs():
        if d.is_dir():
            for x in sorted(d.glob("*.yaml")):
                if x.is_file():
                    found.setdefault(x.stem, (source, x))
    return found


def resolve_recipe_path(recipe: str | Path | None) -> Path:
    """A recipe file path as given; else a bare name looked up as `<name>.yaml` in ./finetune/ (the working
    directory's), then in the recipes shipped with swcdata (see `recipe_dirs`)."""
    recipe = DEFAULT_RECIPE if recipe is None else recipe
    p = Path(recipe)
    if p.is_file():
        return p
    for _, d in recipe_dirs():
        # (`d / p.name`: an old-style `finetune/tiny-cpu.yaml` resolves from any working directory too)
        for cand in (d / f"{recipe}.yaml", d / p.name):
            if cand.is_file():
                return cand
    known = sorted(_named_recipes())
    raise InputError(f"recipe not found: {recipe}",
                     hint=f"give a YAML path or one of: {', '.join(known)}" if known else "give a YAML path")


class RecipeEntry(BaseModel):
    """One line of `swcdata recipes`."""

    name: str = Field(description="What `--recipe` takes (the file name without .yaml).")
    base_model: str | None = Field(None, description="`model.name`, or `tiny (built locally)` for "
                                   "`model.source: tiny`; null when the recipe does not validate.")
    description: str = Field("", description="The recipe's one-line description.")
    source: RecipeSource = Field(description="Where it was found.")
    path: str = Field(description="The YAML file.")
    error: str | None = Field(None, description="Why the recipe does not validate (null when it does).")


def list_recipes() -> list[RecipeEntry]:
    """Every recipe reachable by name, sorted by name, each validated; one that fails is listed with its error."""
    entries = []
    for name, (source, path) in sorted(_named_recipes().items()):
        try:
            rec = load_recipe(path)
        except (ConfigError, InputError, ValueError) as e:  # (ValueError: a file that is not UTF-8)
            entries.append(RecipeEntry(name=name, source=source, path=str(path), error=str(e)))
            continue
        base = "tiny (built locally)" if rec.model.source == "tiny" else rec.model.name
        entries.append(RecipeEntry(name=name, base_model=base, description=rec.description,
                                   source=source, path=str(path)))
    return entries


def load_recipe(recipe: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe YAML (a path, or a name in `finetune/`), apply overrides, validate everything at once."""
    import yaml

    path = resolve_recipe_path(recipe)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise InputError(f"cannot read recipe {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(["a recipe is a YAML mapping with sections model, quantization, lora, data, training"],
                          source=str(path))
    data = apply_overrides(data, overrides or [])
    rec = recipe_from_dict(data, source=str(path))
    if rec.distributed.deepspeed_config is not None:  # resolved against this file's folder, made absolute
        try:
            found = resolve_config_path(rec.distributed.deepspeed_config, path.parent)
        except ConfigError as e:
            raise ConfigError(e.problems, source=str(path)) from None
        rec.distributed.deepspeed_config = str(found)
    return rec


def _recipe_search_dirs(recipe_dir: Path | None) -> list[Path]:
    dirs = [recipe_dir] if recipe_dir is not None else []
    return dirs + [d for _, d in recipe_dirs()] + [Path.cwd()]


def resolve_config_path(value: str, recipe_dir: Path | None) -> Path:
    """A DeepSpeed JSON path: absolute as given; relative against the recipe file's folder, then the
    recipes shipped with swcdata (so `deepspeed/zero3.json` works from any recipe), then the working
    directory. ConfigError when it is nowhere."""
    p = Path(value).expanduser()
    if p.is_absolute():
        if not p.is_file():
            raise ConfigError([f"distributed.deepspeed_config: file not found: {p}"])
        return p
    looked = _recipe_search_dirs(recipe_dir)
    for d in looked:
        if (d / p).is_file():
            return (d / p).resolve()
    raise ConfigError([f"distributed.deepspeed_config: {value} not found (looked in: "
                       f"{', '.join(str(d) for d in dict.fromkeys(looked))}); the shipped ones are "
                       "deepspeed/zero2.json and deepspeed/zero3.json"])
