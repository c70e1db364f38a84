"""Multi-process training beyond plain DDP: what each `distributed.mode` changes, resolved from the recipe.

Four modes (the recipe's `distributed:` section):

- `auto` / `ddp`: one process per GPU (or CPU process under gloo), each holding the whole 4-bit model on
  its own device (`device_map={"": device}`), gradients all-reduced. `auto` is plain single-process
  training when there is one process.
- `fsdp`: PyTorch FSDP through the Trainer's `fsdp` / `fsdp_config` (FSDP2 by default, as transformers
  5.x): parameters sharded across processes. For FSDP-QLoRA the 4-bit weights must be stored in a float
  dtype FSDP can shard (`bnb_4bit_quant_storage` = the compute dtype, the non-quantised weights in that
  dtype too) and the model is loaded without a `device_map` (PEFT's "FSDP + QLoRA" guide).
- `deepspeed`: DeepSpeed ZeRO through the Trainer's `deepspeed=<json>`; ZeRO-3 shards parameters, so
  QLoRA there follows the same storage rule.

Every function here is pure (the world size, compute dtype and device come in as arguments) so that
each mode's resolution is testable on a CPU; nothing imports torch at module level. `save_adapter`
is the one that acts: under FSDP / DeepSpeed every process must take part in gathering the adapter.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from swcdata.core.errors import ConfigError

if TYPE_CHECKING:
    from swcdata.finetune.recipe import Recipe

Mode = Literal["single", "ddp", "fsdp", "deepspeed"]
SHARDED_MODES = ("fsdp", "deepspeed")
LAUNCHER_ENV = ("LOCAL_RANK", "WORLD_SIZE")  # set by torchrun, accelerate launch and the deepspeed launcher
_FLOAT_DTYPES = ("bfloat16", "float16", "float32")


def _have(module: str) -> bool:
    return find_spec(module) is not None


# ---- which mode, which files -------------------------------------------------------------------

def external_launcher(env: Mapping[str, str] | None = None) -> bool:
    """True when this process was started by a launcher (torchrun, accelerate launch, deepspeed)."""
    env = os.environ if env is None else env
    return any(k in env for k in LAUNCHER_ENV)


def effective_mode(recipe: Recipe, world_size: int) -> Mode:
    """What actually runs: `auto` and `ddp` are DDP with several processes, plain training with one."""
    mode = recipe.distributed.mode
    if mode in SHARDED_MODES:
        return mode  # type: ignore[return-value]
    return "ddp" if world_size > 1 else "single"


def deepspeed_config_path(recipe: Recipe, recipe_dir: Path | None = None) -> Path | None:
    value = recipe.distributed.deepspeed_config
    from swcdata.finetune.recipe import resolve_config_path

    return None if value is None else resolve_config_path(value, recipe_dir)


def deepspeed_stage(recipe: Recipe, recipe_dir: Path | None = None) -> int | None:
    """`zero_optimization.stage` of the recipe's DeepSpeed JSON (None when not in deepspeed mode)."""
    path = deepspeed_config_path(recipe, recipe_dir)
    if path is None or recipe.distributed.mode != "deepspeed":
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError([f"distributed.deepspeed_config: cannot read {path} as JSON: {e}"]) from None
    stage = (doc.get("zero_optimization") or {}).get("stage", 0) if isinstance(doc, dict) else 0
    if not isinstance(stage, int):
        raise ConfigError([f"distributed.deepspeed_config: zero_optimization.stage in {path} must be a number "
                           f"(0-3), got {stage!r}"])
    return stage


def shards_parameters(recipe: Recipe, recipe_dir: Path | None = None) -> bool:
    """FSDP, or DeepSpeed ZeRO-3: the model's parameters (4-bit ones included) are split across processes."""
    mode = recipe.distributed.mode
    return mode == "fsdp" or (mode == "deepspeed" and (deepspeed_stage(recipe, recipe_dir) or 0) >= 3)


def quant_storage_dtype(compute_dtype_name: str) -> str:
    """The float dtype the packed 4-bit weights are stored in when they are sharded: the compute dtype
    (bf16 for pure-bf16 training, fp32 for fp32), except fp16 compute, whose mixed precision is only
    stable with fp32 storage (PEFT's FSDP-QLoRA guide)."""
    if compute_dtype_name not in _FLOAT_DTYPES:
        raise ValueError(f"compute dtype must be resolved to one of {_FLOAT_DTYPES}, got {compute_dtype_name!r}")
    return "float32" if compute_dtype_name == "float16" else compute_dtype_name


# ---- model loading -----------------------------------------------------------------------------

def model_load_kwargs(recipe: Recipe, *, world_size: int, compute_dtype_name: str, device_index: int | None,
                      recipe_dir: Path | None = None) -> dict[str, Any]:
    """The `from_pretrained` kwargs that depend on the mode (dtypes as names: "bfloat16", ...).

    - single / DDP: `device_map={"": device}`: the whole model on this process's GPU (`device_index`),
      or `{"": "cpu"}` without one.
    - FSDP / DeepSpeed: no `device_map` (the wrapper places and shards the model; bitsandbytes puts the
      4-bit weights on the current CUDA device). When parameters are sharded (FSDP, ZeRO-3) and the model
      is 4-bit: `bnb_4bit_quant_storage` (a BitsAndBytesConfig argument, which `load_base_model` moves
      there) and `dtype` both = `quant_storage_dtype(compute dtype)`, since FSDP only shards float tensors
      and needs one dtype per unit.
    """
    mode = effective_mode(recipe, world_size)
    if mode in ("single", "ddp"):
        return {"device_map": {"": device_index if device_index is not None else "cpu"}}
    out: dict[str, Any] = {}
    if recipe.quantization.load_in_4bit and shards_parameters(recipe, recipe_dir):
        storage = quant_storage_dtype(compute_dtype_name)
        out["dtype"] = storage
        out["bnb_4bit_quant_storage"] = storage
    return out


def loading_env(recipe: Recipe) -> dict[str, str]:
    """Environment that must be set before `from_pretrained` for FSDP's CPU-RAM-efficient loading (only the
    first process reads the checkpoint; the others get it by broadcast). accelerate launch sets these from
    its config; under torchrun nothing does before the model is loaded (the Trainer's arguments set the
    second one only when they are built), so `load_base_model` sets them. transformers skips this for
    quantised models, which every process loads itself."""
    d = recipe.distributed
    if d.mode == "fsdp" and d.fsdp_cpu_ram_efficient_loading:
        return {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}
    return {}


# ---- Trainer arguments -------------------------------------------------------------------------

def fsdp_config(recipe: Recipe, *, layer_cls: Sequence[str] | None = None) -> dict[str, Any]:
    """The Trainer's `fsdp_config` (keys as transformers 5.x reads them in
    `TrainingArguments._process_fsdp_args`, without the old `fsdp_` prefix)."""
    d = recipe.distributed
    cfg: dict[str, Any] = {
        "version": d.fsdp_version,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "cpu_ram_efficient_loading": d.fsdp_cpu_ram_efficient_loading,
        "cpu_offload": d.fsdp_offload_params,
        # checkpoints: one shard per process (cheap, resumable); the final adapter is gathered in full by
        # save_adapter (PEFT's FSDP guide)
        "state_dict_type": "SHARDED_STATE_DICT",
    }
    if d.fsdp_version == 2:
        # FSDP2 shards each parameter as a DTensor: original parameters always, nothing to sync
        cfg["reshard_after_forward"] = d.fsdp_sharding == "full_shard"
    else:
        cfg["reshard_after_forward"] = d.fsdp_sharding  # FSDP1: the sharding strategy's name
        cfg["use_orig_params"] = d.fsdp_use_orig_params
        cfg["sync_module_states"] = True  # required by cpu_ram_efficient_loading
    names = list(layer_cls) if layer_cls else list(d.fsdp_layer_cls or [])
    if names:  # else the model's `_no_split_modules` (e.g. LlamaDecoderLayer, GemmaDecoderLayer)
        cfg["transformer_layer_cls_to_wrap"] = names
    return cfg


def trainer_kwargs(recipe: Recipe, *, recipe_dir: Path | None = None,
                   layer_cls: Sequence[str] | None = None) -> dict[str, Any]:
    """Extra TrainingArguments / SFTConfig kwargs for the mode: none for single / DDP; `fsdp=True` and
    `fsdp_config` for FSDP; `deepspeed=<absolute path>` for DeepSpeed. (transformers 5.x deprecates the
    old string form `fsdp="full_shard auto_wrap offload"`: the same settings travel in fsdp_config.)"""
    mode = recipe.distributed.mode
    if mode == "fsdp":
        return {"fsdp": True, "fsdp_config": fsdp_config(recipe, layer_cls=layer_cls)}
    if mode == "deepspeed":
        path = deepspeed_config_path(recipe, recipe_dir)
        if not _have("deepspeed"):
            raise ConfigError(["distributed.mode: deepspeed is not installed (pip install deepspeed, on a "
                               "machine with the CUDA toolkit) - or use distributed.mode: fsdp"])
        return {"deepspeed": str(path)}
    return {}


# ---- launching ---------------------------------------------------------------------------------

def finetune_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after the `finetune` subcommand in a full command line (None when it is absent)."""
    argv = list(argv)
    for i, a in enumerate(argv[1:], start=1):
        if a == "finetune":
            return argv[i + 1:]
    return None


def strip_nproc(args: Sequence[str]) -> list[str]:
    """`args` without `--nproc N` / `--nproc=N`."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def launcher_command(recipe: Recipe, nproc: int, argv: Sequence[str], *, python: str | None = None) -> list[str]:
    """The command `swcdata finetune --nproc N ...` re-executes itself as: torchrun (as
    `python -m torch.distributed.run`, single node, a free rendezvous port) starting N processes of
    `python -m swcdata finetune` with the same arguments, `--nproc` removed. `argv` is the finetune
    command's own arguments. torchrun serves every mode: the Trainer builds the FSDP plugin and the
    DeepSpeed engine from its own arguments (`trainer_kwargs`), no accelerate config file needed, so
    every mode launches the same way (`recipe` is there for a mode that would need another launcher)."""
    if nproc < 1:
        raise ValueError("nproc must be >= 1")
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            str(nproc), "-m", "swcdata", "finetune", *strip_nproc(argv)]


def run_launcher(cmd: Sequence[str]) -> int:
    """Run the launcher command and return its exit status (128 + N when killed by signal N).

    Ctrl-C in a terminal reaches the launcher and its workers too (one process group), so this process
    keeps waiting for them to stop (a worker's first Ctrl-C saves a checkpoint) instead of killing them,
    as `subprocess.call` would; a SIGTERM sent to this process alone is passed on to the launcher."""
    import signal
    import subprocess

    proc = subprocess.Popen(list(cmd))
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - code if code < 0 else code


def plan_launch(recipe: Recipe, nproc: int | None, env: Mapping[str, str] | None = None
                ) -> tuple[int | None, str | None]:
    """(processes to re-launch with, or None to run in this process; a note to print, or None).

    `nproc` is the --nproc option (else the recipe's `distributed.nproc`). Under an external launcher it
    is ignored (with a note). FSDP and DeepSpeed need a process group even on one GPU, so they re-launch
    for nproc 1 too, and without nproc or a launcher they are a ConfigError."""
    env = os.environ if env is None else env
    mode = recipe.distributed.mode
    if external_launcher(env):
        note = None
        if nproc is not None:
            note = (f"--nproc {nproc} ignored: already started by a launcher "
                    f"(WORLD_SIZE={env.get('WORLD_SIZE', '?')}, LOCAL_RANK={env.get('LOCAL_RANK', '?')})")
        return None, note
    n = nproc if nproc is not None else recipe.distributed.nproc
    if n is None:
        if mode in SHARDED_MODES:
            raise ConfigError([f"distributed.mode: {mode} runs one process per GPU under a launcher: pass "
                               f"--nproc N (N = GPUs; 1 works) or set distributed.nproc, or start the command "
                               f"with torchrun / accelerate launch"])
        return None, None
    if n > 1 or mode in SHARDED_MODES:
        return n, None
    return None, None


# ---- saving ------------------------------------------------------------------------------------

def save_adapter(trainer: Any, path: Path | str, is_main: bool) -> None:
    """Save the trained adapter to `path`.

    Single / DDP: the main process saves (every process holds the same weights). FSDP / DeepSpeed: the
    adapter is spread over the processes, so every process must call `save_model` (the gather is a
    collective; only the main process writes), under FSDP after switching the state dict to
    FULL_STATE_DICT so that the adapter is one ordinary `adapter_model.safetensors`."""
    fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
    deepspeed = bool(getattr(trainer, "is_deepspeed_enabled", False))
    if fsdp:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    if fsdp or deepspeed or is_main:
        trainer.save_model(str(path))
