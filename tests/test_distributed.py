"""Multi-process modes (issue 16): what each `distributed.mode` resolves to, all on CPU.

Single / DDP / FSDP / DeepSpeed ZeRO-2 and ZeRO-3: the from_pretrained kwargs (no device_map under
FSDP / DeepSpeed; 4-bit storage = compute dtype when parameters are sharded), the Trainer kwargs (the
fsdp_config keys transformers reads; the DeepSpeed JSON resolved beside the recipe file), the recipe's
config errors, the `--nproc` re-launch command, the adapter save under FSDP, and the GPU smoke script's
plan. FSDP itself needs GPUs (accelerate runs FSDP on CUDA / XPU / ... only): see bench/finetune_multigpu.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swcdata.core.errors import ConfigError
from swcdata.finetune import distributed as D
from swcdata.finetune.recipe import load_recipe, recipe_from_dict

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "finetune_multigpu.py"
FSDP = ["distributed.mode=fsdp", "quantization.compute_dtype=bfloat16", "model.dtype=bfloat16"]


def _ds(config: str) -> list[str]:
    return ["distributed.mode=deepspeed", f"distributed.deepspeed_config={config}"]


# ---- model loading per mode ----------------------------------------------------------------------

def test_single_and_ddp_load_the_whole_model_on_this_process_device() -> None:
    for mode in ("auto", "ddp"):
        r = load_recipe("tiny-cpu", [f"distributed.mode={mode}"])
        assert D.model_load_kwargs(r, world_size=1, compute_dtype_name="float32", device_index=None) == \
            {"device_map": {"": "cpu"}}  # exactly what the CPU (and the 2-process gloo DDP test) always got
        assert D.model_load_kwargs(r, world_size=2, compute_dtype_name="bfloat16", device_index=1) == \
            {"device_map": {"": 1}}
        assert D.trainer_kwargs(r) == {}
        assert D.effective_mode(r, 1) == "single" and D.effective_mode(r, 2) == "ddp"


def test_fsdp_loads_without_device_map_and_stores_4bit_in_the_compute_dtype() -> None:
    r = load_recipe("tiny-cpu", FSDP)
    for world in (1, 2):
        kw = D.model_load_kwargs(r, world_size=world, compute_dtype_name="bfloat16", device_index=0)
        assert "device_map" not in kw
        assert kw == {"dtype": "bfloat16", "bnb_4bit_quant_storage": "bfloat16"}
    # fp32 compute: fp32 storage; fp16 compute: fp32 storage (PEFT: fp16 mixed precision needs it)
    r32 = load_recipe("tiny-cpu", ["distributed.mode=fsdp"])
    assert D.model_load_kwargs(r32, world_size=2, compute_dtype_name="float32", device_index=0) == \
        {"dtype": "float32", "bnb_4bit_quant_storage": "float32"}
    assert D.quant_storage_dtype("float16") == "float32"
    # not quantised: nothing to store, no device_map either
    r_full = load_recipe("tiny-cpu", ["distributed.mode=fsdp", "quantization.load_in_4bit=false"])
    assert D.model_load_kwargs(r_full, world_size=2, compute_dtype_name="bfloat16", device_index=0) == {}
    assert D.loading_env(r) == {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}
    assert D.loading_env(load_recipe("tiny-cpu")) == {}


def test_load_base_model_applies_the_fsdp_storage_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real from_pretrained: default -> uint8 4-bit storage on cpu; FSDP -> bf16 storage, bf16 weights."""
    import bitsandbytes as bnb
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from swcdata.finetune import model as M

    for k in ("ACCELERATE_USE_FSDP", "FSDP_CPU_RAM_EFFICIENT_LOADING"):  # (restored after the test)
        monkeypatch.setenv(k, "false")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "base")

    plain = M.load_base_model(str(tmp_path / "base"), load_recipe("tiny-cpu"), attn="sdpa")
    q = plain.model.layers[0].self_attn.q_proj
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.dtype == torch.uint8 and q.weight.device.type == "cpu"

    sharded = M.load_base_model(str(tmp_path / "base"), load_recipe("tiny-cpu", FSDP), attn="sdpa")
    q = sharded.model.layers[0].self_attn.q_proj
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.dtype == torch.bfloat16  # FSDP can shard a float
    assert sharded.config.quantization_config.bnb_4bit_quant_storage == torch.bfloat16
    assert sharded.model.norm.weight.dtype == torch.bfloat16 and q.weight.device.type == "cpu"


# ---- Trainer arguments -----------------------------------------------------------------------------

FSDP2_CONFIG = {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "cpu_ram_efficient_loading": True,
                "cpu_offload": False, "state_dict_type": "SHARDED_STATE_DICT", "reshard_after_forward": True}


def test_fsdp_trainer_kwargs_and_config_keys() -> None:
    import inspect

    from transformers import TrainingArguments

    r = load_recipe("tiny-cpu", FSDP)
    assert D.trainer_kwargs(r) == {"fsdp": True, "fsdp_config": FSDP2_CONFIG}
    kw = D.trainer_kwargs(load_recipe("tiny-cpu", [*FSDP, "distributed.fsdp_offload_params=true",
                                                   "distributed.fsdp_sharding=shard_grad_op",
                                                   "distributed.fsdp_layer_cls=[LlamaDecoderLayer]"]))
    assert kw["fsdp_config"] == {**FSDP2_CONFIG, "cpu_offload": True, "reshard_after_forward": False,
                                 "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}
    assert D.trainer_kwargs(r, layer_cls=["GemmaDecoderLayer"])["fsdp_config"]["transformer_layer_cls_to_wrap"] \
        == ["GemmaDecoderLayer"]
    v1 = D.trainer_kwargs(load_recipe("tiny-cpu", [*FSDP, "distributed.fsdp_version=1",
                                                   "distributed.fsdp_sharding=hybrid_shard"]))["fsdp_config"]
    assert v1 == {**FSDP2_CONFIG, "version": 1, "reshard_after_forward": "hybrid_shard", "use_orig_params": False,
                  "sync_module_states": True}
    # every key is one the installed transformers reads (no `fsdp_` prefix in transformers 5.x)
    src = inspect.getsource(TrainingArguments._process_fsdp_args)
    for key in {*v1, *kw["fsdp_config"]}:
        assert f'"{key}"' in src, key


def test_sft_config_accepts_the_fsdp_kwargs_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real trl.SFTConfig with the FSDP kwargs builds on a CPU-only machine; its plugin arguments are
    what accelerate's FSDP plugin gets (and that plugin builds too). Training under it needs GPUs."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from trl import SFTConfig

    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")  # (TrainingArguments sets it; restored after)
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                     **D.trainer_kwargs(load_recipe("tiny-cpu", FSDP)))
    assert args.fsdp is True
    assert args.fsdp_plugin_args == {"fsdp_version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                     "cpu_ram_efficient_loading": True, "state_dict_type": "SHARDED_STATE_DICT",
                                     "reshard_after_forward": True}
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    assert plugin.fsdp_version == 2 and plugin.cpu_ram_efficient_loading
    v1 = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **D.trainer_kwargs(
        load_recipe("tiny-cpu", [*FSDP, "distributed.fsdp_version=1", "distributed.fsdp_offload_params=true"])))
    assert v1.fsdp_plugin_args["use_orig_params"] is False and v1.fsdp_plugin_args["sync_module_states"] is True
    assert v1.fsdp_plugin_args["cpu_offload"] is True and v1.fsdp_plugin_args["reshard_after_forward"] == "full_shard"


def test_deepspeed_config_resolves_beside_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(D, "_have", lambda module: True)  # (deepspeed itself is not needed to resolve)
    shipped = REPO / "finetune" / "deepspeed"
    for stage, name in ((2, "zero2.json"), (3, "zero3.json")):
        r = load_recipe("tiny-cpu", [*_ds(f"deepspeed/{name}"), "quantization.compute_dtype=bfloat16",
                                     "model.dtype=bfloat16"])
        assert r.distributed.deepspeed_config == str(shipped / name)  # made absolute by load_recipe
        assert D.trainer_kwargs(r) == {"deepspeed": str(shipped / name)}
        assert D.deepspeed_stage(r) == stage
        kw = D.model_load_kwargs(r, world_size=2, compute_dtype_name="bfloat16", device_index=0)
        assert "device_map" not in kw
        # ZeRO-3 shards parameters: the FSDP storage rule; ZeRO-2 keeps each process's 4-bit copy as is
        assert kw == ({"dtype": "bfloat16", "bnb_4bit_quant_storage": "bfloat16"} if stage == 3 else {})
        doc = json.loads((shipped / name).read_text())
        assert doc["zero_optimization"]["stage"] == stage
        assert doc["train_micro_batch_size_per_gpu"] == "auto" and doc["gradient_accumulation_steps"] == "auto"
        assert "optimizer" not in doc and "scheduler" not in doc  # the recipe's optim and schedule are used
    assert json.loads((shipped / "zero3.json").read_text())["zero_optimization"][
        "stage3_gather_16bit_weights_on_model_save"] is True

    # a recipe file elsewhere: its relative path is read beside it, not from the working directory
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "mine.json").write_text('{"zero_optimization": {"stage": 3}}')
    (tmp_path / "r.yaml").write_text((REPO / "finetune" / "tiny-cpu.yaml").read_text())
    r = load_recipe(tmp_path / "r.yaml", _ds("ds/mine.json"))
    assert D.trainer_kwargs(r) == {"deepspeed": str((tmp_path / "ds" / "mine.json").resolve())}
    # a recipe from a dict: relative to the recipe_dir given
    rd = recipe_from_dict({"name": "x", "distributed": {"mode": "deepspeed", "deepspeed_config": "ds/mine.json"}})
    assert D.trainer_kwargs(rd, recipe_dir=tmp_path) == {"deepspeed": str((tmp_path / "ds" / "mine.json").resolve())}
    with pytest.raises(ConfigError) as e:
        load_recipe("tiny-cpu", _ds("ds/nope.json"))
    assert e.value.problems[0].startswith("distributed.deepspeed_config: ds/nope.json not found (looked in: ")
    monkeypatch.setattr(D, "_have", lambda module: False)
    with pytest.raises(ConfigError, match=r"distributed\.mode: deepspeed is not installed \(pip install deepspeed"):
        D.trainer_kwargs(load_recipe("tiny-cpu", _ds("deepspeed/zero2.json")))


# ---- config errors -----------------------------------------------------------------------------------

OPTIM_8BIT = ("training.optim: paged 8-bit optimisers cannot be used under FSDP (nor other bitsandbytes 8-bit ones; "
              "got paged_adamw_8bit): their state does not shard and saving a checkpoint fails (PEFT's FSDP "
              "guide); use adamw_torch or adamw_torch_fused")
DS_MISSING = ("distributed.deepspeed_config: required when distributed.mode is deepspeed (e.g. deepspeed/zero2.json "
              "or deepspeed/zero3.json, shipped with the recipes)")
DS_UNUSED = ("distributed.deepspeed_config: only used with distributed.mode: deepspeed (mode is fsdp); remove it "
             "or set the mode")
HYBRID = ("distributed.fsdp_sharding: hybrid_shard needs distributed.fsdp_version: 1 (FSDP2 offers full_shard and "
          "shard_grad_op)")
DTYPE = ("model.dtype: under FSDP-QLoRA the non-quantised weights are stored like the 4-bit ones, in bfloat16 (from "
         "quantization.compute_dtype: bfloat16); set model.dtype to bfloat16 or auto")


def _problems(recipe: str, sets: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe, sets)
    return e.value.problems


def test_config_errors_name_their_path() -> None:
    assert _problems("gemma-2b", ["distributed.mode=fsdp"]) == [OPTIM_8BIT]  # gemma-2b: paged_adamw_8bit
    assert _problems("tiny-cpu", ["distributed.mode=deepspeed"]) == [DS_MISSING]
    # several at once, each with its own path
    assert _problems("gemma-2b", ["distributed.mode=fsdp", "distributed.deepspeed_config=deepspeed/zero2.json",
                                  "distributed.fsdp_sharding=hybrid_shard"]) == [OPTIM_8BIT, HYBRID, DS_UNUSED]
    assert _problems("tiny-cpu", ["distributed.mode=fsdp", "quantization.compute_dtype=bfloat16"]) == [DTYPE]
    assert _problems("tiny-cpu", ["distributed.mode=fsdp", "training.optim=adamw_bnb_8bit"])[0].startswith(
        "training.optim: paged 8-bit optimisers cannot be used under FSDP (nor other bitsandbytes 8-bit ones; "
        "got adamw_bnb_8bit)")
    assert _problems("tiny-cpu", ["distributed.mode=sharded", "distributed.nproc=0"]) == [
        "distributed.mode: must be one of 'auto', 'ddp', 'fsdp' or 'deepspeed', got 'sharded'",
        "distributed.nproc: must be >= 1"]
    # allowed: paged 8-bit under DDP, paged 32-bit under FSDP, the tiny recipe under FSDP as it is (fp32)
    load_recipe("gemma-2b", ["distributed.mode=ddp"])
    load_recipe("gemma-2b", ["distributed.mode=fsdp", "training.optim=paged_adamw_32bit"])
    load_recipe("tiny-cpu", ["distributed.mode=fsdp"])
    d = load_recipe("tiny-cpu").distributed
    assert (d.mode, d.nproc, d.fsdp_use_orig_params, d.fsdp_cpu_ram_efficient_loading, d.fsdp_version) == \
        ("auto", None, False, True, 2)


# ---- launching ---------------------------------------------------------------------------------------

def test_launcher_command_strips_nproc_and_keeps_everything_else() -> None:
    r = load_recipe("tiny-cpu")
    args = ["data/splits", "--nproc", "2", "--set", "lora.r=8", "--json", "--run-id", "x", "--nproc=3",
            "--set", "distributed.mode=fsdp"]
    assert D.launcher_command(r, 2, args) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "swcdata",
        "finetune", "data/splits", "--set", "lora.r=8", "--json", "--run-id", "x", "--set", "distributed.mode=fsdp"]
    assert D.finetune_args(["/venv/bin/swcdata", "finetune", "ds@v1", "--nproc", "2"]) == ["ds@v1", "--nproc", "2"]
    assert D.finetune_args(["/venv/bin/swcdata", "runs"]) is None


def test_plan_launch_per_mode_and_under_an_external_launcher() -> None:
    auto, fsdp = load_recipe("tiny-cpu"), load_recipe("tiny-cpu", ["distributed.mode=fsdp"])
    assert D.plan_launch(auto, None, env={}) == (None, None)
    assert D.plan_launch(auto, 1, env={}) == (None, None)
    assert D.plan_launch(auto, 2, env={}) == (2, None)
    assert D.plan_launch(load_recipe("tiny-cpu", ["distributed.nproc=4"]), None, env={}) == (4, None)
    assert D.plan_launch(fsdp, 1, env={}) == (1, None)  # FSDP needs a process group even on one GPU
    with pytest.raises(ConfigError) as e:
        D.plan_launch(fsdp, None, env={})
    assert e.value.problems == ["distributed.mode: fsdp runs one process per GPU under a launcher: pass --nproc N "
                                "(N = GPUs; 1 works) or set distributed.nproc, or start the command with torchrun "
                                "/ accelerate launch"]
    torchrun = {"LOCAL_RANK": "1", "WORLD_SIZE": "2", "RANK": "1"}
    assert D.external_launcher(torchrun) and not D.external_launcher({})
    assert D.plan_launch(fsdp, None, env=torchrun) == (None, None)
    n, note = D.plan_launch(auto, 2, env=torchrun)
    assert n is None and note == "--nproc 2 ignored: already started by a launcher (WORLD_SIZE=2, LOCAL_RANK=1)"


def test_cli_nproc_reruns_under_torchrun_and_forwards_the_exit_code(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app
    from swcdata.steps.split_dir import write_split_dir
    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([REPO / "dataset" / "swc_sample.jsonl"], ValidateConfig(check_code=False))
    write_split_dir({"train": table.slice(0, 80), "validation": table.slice(80, 10)}, tmp_path / "splits")
    splits = str(tmp_path / "splits")

    for k in D.LAUNCHER_ENV:
        monkeypatch.delenv(k, raising=False)
    calls: list[list[str]] = []

    def fake_call(cmd: list[str]) -> int:
        calls.append(cmd)
        return 3

    monkeypatch.setattr(D, "run_launcher", fake_call)
    args = ["finetune", splits, "--nproc", "2", "--set", "training.max_steps=2", "--json"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/swcdata", *args])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3, res.output
    assert calls == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                      "swcdata", "finetune", splits, "--set", "training.max_steps=2", "--json"]]
    # a wrong dataset is one error line from this process (exit 2), before any worker starts
    res = CliRunner().invoke(app, ["finetune", "nosuch@v1", "--home", str(tmp_path / "reg"), "--nproc", "2"])
    assert res.exit_code == 2 and "no dataset 'nosuch'" in res.output and len(calls) == 1
    # FSDP without --nproc or a launcher: a config error (exit 2) before the dataset is looked up
    res = CliRunner().invoke(app, ["finetune", "nosuch@v1", "--set", "distributed.mode=fsdp"])
    assert res.exit_code == 2 and "distributed.mode: fsdp runs one process per GPU" in res.output
    assert "nosuch" not in res.output and len(calls) == 1
    help_text = CliRunner().invoke(app, ["finetune", "--help"]).output
    assert "--nproc" in help_text


def test_run_launcher_forwards_the_exit_status() -> None:
    assert D.run_launcher([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    # (the child resets SIGTERM: a disposition an earlier in-process CLI test left behind would be inherited)
    kill = "import os, signal; signal.signal(signal.SIGTERM, signal.SIG_DFL); os.kill(os.getpid(), signal.SIGTERM)"
    assert D.run_launcher([sys.executable, "-c", kill]) == 143


def test_distributed_module_imports_without_torch() -> None:
    code = ("import sys, swcdata.finetune.distributed; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl', 'accelerate') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stdout.strip() == "[]"


# ---- saving ------------------------------------------------------------------------------------------

class _Plugin:
    def __init__(self) -> None:
        self.types: list[str] = []

    def set_state_dict_type(self, t: str) -> None:
        self.types.append(t)


class _Trainer:
    def __init__(self, fsdp: bool = False, deepspeed: bool = False) -> None:
        self.is_fsdp_enabled, self.is_deepspeed_enabled = fsdp, deepspeed
        self.plugin = _Plugin()
        self.accelerator: Any = type("A", (), {"state": type("S", (), {"fsdp_plugin": self.plugin})()})()
        self.saved: list[str] = []

    def save_model(self, path: str) -> None:
        self.saved.append(path)


def test_save_adapter_gathers_on_every_rank_under_fsdp_and_deepspeed(tmp_path: Path) -> None:
    for is_main in (True, False):
        t = _Trainer(fsdp=True)
        D.save_adapter(t, tmp_path / "adapter", is_main)
        assert t.plugin.types == ["FULL_STATE_DICT"] and t.saved == [str(tmp_path / "adapter")]
        t = _Trainer(deepspeed=True)
        D.save_adapter(t, tmp_path / "adapter", is_main)
        assert t.saved == [str(tmp_path / "adapter")] and t.plugin.types == []
    ddp_main, ddp_other = _Trainer(), _Trainer()
    D.save_adapter(ddp_main, tmp_path / "a", True)
    D.save_adapter(ddp_other, tmp_path / "a", False)
    assert ddp_main.saved == [str(tmp_path / "a")] and ddp_other.saved == []  # DDP: as before, main only


# ---- the GPU smoke script --------------------------------------------------------------------------

def test_multigpu_bench_plan_prints_the_fsdp_command(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(BENCH), "--out", str(tmp_path), "--plan"], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    fsdp1 = lines[lines.index("# fsdp-1gpu") + 1]
    assert " -m swcdata finetune " in fsdp1 and "--nproc 1" in fsdp1 and "--set distributed.mode=fsdp" in fsdp1
    assert "--set quantization.compute_dtype=bfloat16" in fsdp1 and "--set model.dtype=bfloat16" in fsdp1
    assert "--set training.max_steps=10" in fsdp1 and "finetune/tiny-cpu.yaml" in fsdp1
    assert "# ddp-2gpu (needs >= 2 GPUs)" in lines and "# fsdp-2gpu (needs >= 2 GPUs)" in lines
    assert not (tmp_path / "data").exists()  # --plan runs nothing
    # each planned recipe validates (the overrides the commands pass, through the same loader)
    for line in lines:
        if not line.startswith("#"):
            words = line.split()
            sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
            load_recipe(words[words.index("--recipe") + 1], sets)
    assert subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True,
                          timeout=60).returncode == 0


def test_multigpu_bench_says_why_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    res = subprocess.run([sys.executable, str(BENCH), "--out", str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert res.returncode == 2
    assert "CUDA is not available" in res.stderr and "--plan" in res.stderr
