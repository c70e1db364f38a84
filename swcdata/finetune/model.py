"""Base model loading for QLoRA: the tiny local model, 4-bit NF4, attention choice, LoRA targets.

`load_base_model` is the one path every recipe takes, the tiny CPU one included: the tiny model
is written to a folder first and then loaded like a Hub model, with `from_pretrained` and a
`BitsAndBytesConfig`. LoRA target modules are resolved from the architecture (every linear layer
inside attention and MLP blocks, `lm_head` excluded) on a weightless meta-device copy, so a wrong
name fails before any weights are downloaded or loaded.
"""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from swcdata.finetune.recipe import Recipe, TinyModel

# a linear layer belongs to attention or MLP when one of its ancestors is named like this
_BLOCK = re.compile(r"(attn|attention|mlp|ffn|feed_forward|feedforward|experts|block_sparse_moe)", re.IGNORECASE)
_NEVER = re.compile(r"(lm_head|embed|classifier|score|vision|visual|audio)", re.IGNORECASE)


# ---- device, dtype, attention ----------------------------------------------------------------

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_dtype(name: str) -> torch.dtype:
    """`auto` -> bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on CPU."""
    import torch

    if name == "auto":
        if bf16_supported():
            return torch.bfloat16
        return torch.float16 if cuda_available() else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def flash_attention_status() -> tuple[bool, str]:
    """(usable, why) for flash-attention 2: installed, a CUDA GPU, compute capability >= 8.0."""
    if find_spec("flash_attn") is None:
        return False, "flash_attn is not installed (pip install swcdata[gpu])"
    if not cuda_available():
        return False, "no CUDA GPU"
    import torch

    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, f"GPU compute capability {major}.{minor} < 8.0"
    return True, "flash_attn installed and GPU compute capability >= 8.0"


def pick_attention(requested: str) -> str:
    """The attention implementation to load the model with."""
    ok, why = flash_attention_status()
    if requested == "auto":
        return "flash_attention_2" if ok else "sdpa"
    if requested == "flash_attention_2" and not ok:
        raise ConfigError([f"model.attn_implementation: flash_attention_2 cannot run here: {why} (use auto or sdpa)"])
    return requested


def device_map() -> dict[str, Any]:
    """Everything on this process's device (one GPU per process under DDP, or the CPU)."""
    from accelerate import PartialState

    state = PartialState()
    dev = state.device
    if dev.type == "cuda":
        return {"": dev.index if dev.index is not None else state.local_process_index}
    return {"": "cpu"}


# ---- the tiny model --------------------------------------------------------------------------

def build_tiny_base(shape: TinyModel, tokenizer: PreTrainedTokenizerBase, dest: Path, seed: int) -> Path:
    """A randomly initialised Llama-shaped model sized to the tokenizer, saved with it to `dest`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers, num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads, max_position_embeddings=shape.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False, use_cache=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


# ---- LoRA targets ----------------------------------------------------------------------------

def _is_linear(module: Any) -> bool:
    import torch

    if isinstance(module, torch.nn.Linear):  # bnb Linear4bit / Linear8bitLt subclass nn.Linear
        return True
    return type(module).__name__ in {"Conv1D", "Linear4bit", "Linear8bitLt"}


def linear_layers(model: Any) -> dict[str, list[str]]:
    """Leaf name -> full module names, for every linear layer inside an attention or MLP block."""
    out: dict[str, list[str]] = {}
    skip = set()
    get_out = getattr(model, "get_output_embeddings", None)
    head = get_out() if callable(get_out) else None
    for name, module in model.named_modules():
        if module is head:
            skip.add(name)
    for name, module in model.named_modules():
        if not name or name in skip or not _is_linear(module):
            continue
        parts = name.split(".")
        if _NEVER.search(name) or not any(_BLOCK.search(p) for p in parts[:-1]):
            continue
        out.setdefault(parts[-1], []).append(name)
    return out


def all_linear_names(model: Any) -> list[str]:
    """Leaf names of every linear module (anywhere; for error messages)."""
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if n and _is_linear(m)})


def resolve_target_modules(model: Any, spec: str | list[str]) -> list[str]:
    """LoRA target module names for `model`: `all-linear` or an explicit list, every name checked."""
    found = linear_layers(model)
    arch = type(model).__name__
    if spec == "all-linear":
        if not found:
            raise ConfigError([f"lora.target_modules: no linear layer inside attention or MLP blocks of {arch}; "
                               f"name them explicitly (linear modules: {', '.join(all_linear_names(model))})"])
        return sorted(found)
    available = all_linear_names(model)
    missing = [n for n in spec if n not in available]
    if missing:
        raise ConfigError([f"lora.target_modules: {n!r} is not a linear module of {arch}" for n in missing]
                          + [f"lora.target_modules: available: {', '.join(sorted(found) or available)}"])
    return list(spec)


def meta_model(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> PreTrainedModel:
    """The architecture without weights (meta device): enough to inspect module names and types."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


# ---- loading ---------------------------------------------------------------------------------

def bnb_config(recipe: Recipe, *, quant_storage: str | None = None) -> Any:
    """4-bit NF4 config; `quant_storage` (a dtype name) packs the 4-bit weights into a float dtype that FSDP /
    ZeRO-3 can shard (see `distributed.model_load_kwargs`); None keeps bitsandbytes' uint8."""
    from transformers import BitsAndBytesConfig

    q = recipe.quantization
    extra = {"bnb_4bit_quant_storage": quant_storage} if quant_storage else {}
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant,
                              bnb_4bit_compute_dtype=resolve_dtype(q.compute_dtype), **extra)


def load_base_model(name: str, recipe: Recipe, *, attn: str) -> PreTrainedModel:
    """`from_pretrained` with 4-bit NF4 (when the recipe asks), the chosen attention and dtype."""
    import os

    from accelerate import PartialState
    from transformers import AutoModelForCausalLM

    from swcdata.finetune import distributed as D

    # per mode: device_map {"": device} for one process / DDP; none under FSDP / DeepSpeed, where sharded 4-bit
    # weights are stored in the compute dtype (bnb_4bit_quant_storage) and the other weights with them
    dev = device_map()[""]
    per_mode = D.model_load_kwargs(recipe, world_size=PartialState().num_processes,
                                   compute_dtype_name=str(resolve_dtype(recipe.quantization.compute_dtype))
                                   .removeprefix("torch."), device_index=dev if isinstance(dev, int) else None)
    storage = per_mode.pop("bnb_4bit_quant_storage", None)
    if "dtype" in per_mode:
        per_mode["dtype"] = resolve_dtype(per_mode["dtype"])
    os.environ.update(D.loading_env(recipe))
    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(recipe.model.dtype),
        "attn_implementation": attn,
        "trust_remote_code": recipe.model.trust_remote_code,
        **per_mode,
    }
    if recipe.model.revision and recipe.model.source == "hub":
        kwargs["revision"] = recipe.model.revision
    if recipe.quantization.load_in_4bit:
        if find_spec("bitsandbytes") is None:
            raise ConfigError(["quantization.load_in_4bit: bitsandbytes is not installed (pip install swcdata[train]) "
                               "- or set quantization.load_in_4bit=false"])
        kwargs["quantization_config"] = bnb_config(recipe, quant_storage=storage)
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    model.config.use_cache = False
    return model


def count_4bit_layers(model: Any) -> int:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    return sum(1 for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))


def attach_lora(model: PreTrainedModel, recipe: Recipe, targets: list[str]) -> Any:
    """prepare_model_for_kbit_training (when quantised) + a LoRA adapter on `targets`."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    gc = recipe.training.gradient_checkpointing
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = recipe.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                        bias=lora.bias, task_type="CAUSAL_LM", modules_to_save=lora.modules_to_save or None)
    return get_peft_model(model, config)
