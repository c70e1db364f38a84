"""Fine-tuning: recipes, response-only labels, packing without cross-attention, 4-bit layers, LoRA targets,
and the tiny recipe end to end (train, reload the adapter, generate, resume), all on CPU with no download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swcdata.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
PY = sys.executable

# a smaller tiny model than the recipe's, so the default suite stays quick
FAST = ["model.tiny.hidden_size=64", "model.tiny.intermediate_size=192", "model.tiny.num_hidden_layers=2",
        "model.tiny.num_attention_heads=4", "model.tiny.num_key_value_heads=2", "model.tiny.vocab_size=768",
        "data.max_length=384", "training.per_device_train_batch_size=2", "training.learning_rate=5e-3",
        "training.logging_steps=2", "data.max_eval_examples=8"]


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_dd() -> Any:
    import datasets

    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    ds = datasets.Dataset(table)
    n = len(ds)
    return datasets.DatasetDict(train=ds.select(range(n - 20)), validation=ds.select(range(n - 20, n - 10)),
                                test=ds.select(range(n - 10, n)))


@pytest.fixture(scope="module")
def tiny_tok(sample_dd: Any) -> Any:
    from swcdata.finetune.tokenizer import train_tokenizer

    texts = [t for r in sample_dd["train"] for t in (r["instruction"], r["response"])]
    return train_tokenizer(texts, 768)


def _tiny_llama(tok: Any, attn: str = "sdpa") -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    cfg._attn_implementation = attn
    return LlamaForCausalLM(cfg).eval()


# ---- recipes ------------------------------------------------------------------------------------

def test_every_shipped_recipe_validates() -> None:
    from swcdata.finetune.recipe import load_recipe

    names = sorted(p.stem for p in (REPO / "finetune").glob("*.yaml"))
    assert names == ["codegemma-7b", "gemma-2b", "gemma-7b", "llama-3.2-korean-bllossom-3b", "tiny-cpu"]
    hubs = {n: load_recipe(REPO / "finetune" / f"{n}.yaml").model.name for n in names}
    assert hubs["gemma-2b"] == "google/gemma-2b" and hubs["gemma-7b"] == "google/gemma-7b"
    assert hubs["codegemma-7b"] == "google/codegemma-7b"
    assert hubs["llama-3.2-korean-bllossom-3b"] == "Bllossom/llama-3.2-Korean-Bllossom-3B"
    tiny = load_recipe("tiny-cpu")
    assert tiny.model.source == "tiny" and tiny.quantization.load_in_4bit and tiny.quantization.quant_type == "nf4"


def test_recipe_reports_every_problem_with_its_path() -> None:
    from swcdata.finetune.recipe import load_recipe

    with pytest.raises(ConfigError) as e:
        load_recipe("tiny-cpu", ["lora.r=0", "lora.dropout=1.5", "data.overlong=cut", "training.learning_rate=-1",
                                 "lora.rank=8", "model.tiny.hidden_size=100", "lora.target_modules=[]"])
    probs = e.value.problems
    assert "lora.r: must be > 0" in probs
    assert "lora.dropout: must be < 1.0" in probs
    assert "training.learning_rate: must be > 0.0" in probs
    assert "lora.rank: unknown key" in probs
    assert any(p.startswith("data.overlong: must be one of") for p in probs)
    assert any(p.startswith("model.tiny: num_attention_heads must divide hidden_size") for p in probs)
    assert any(p.startswith("lora.target_modules: give at least one") for p in probs)
    assert len(probs) == 7


def test_set_overrides_coerce_types() -> None:
    from swcdata.finetune.recipe import load_recipe

    r = load_recipe("tiny-cpu", ["lora.r=8", "training.bf16=true", "lora.target_modules=[q_proj, v_proj]",
                                 "data.eval_split=null", "training.learning_rate=1e-4", "training.eval_steps=7"])
    assert r.lora.r == 8 and r.training.bf16 is True and r.lora.target_modules == ["q_proj", "v_proj"]
    assert r.data.eval_split is None and r.training.learning_rate == 1e-4 and r.training.eval_steps == 7
    with pytest.raises(ConfigError, match="expected key=value"):
        load_recipe("tiny-cpu", ["lora.r"])


def test_recipe_module_imports_without_torch() -> None:
    code = ("import sys, swcdata.finetune.recipe, swcdata.finetune.runs, swcdata.cli.train; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))")
    res = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stdout.strip() == "[]"


def test_cli_rejects_a_bad_recipe_before_loading_data(tmp_path: Path) -> None:
    res = subprocess.run([PY, "-m", "swcdata", "finetune", "no-such-dataset@v9", "--home", str(tmp_path),
                          "--set", "lora.r=0", "--set", "training.max_steps=-5"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert "lora.r: must be > 0" in res.stderr and "training.max_steps: must be >= -1" in res.stderr
    assert "no-such-dataset" not in res.stderr  # the dataset was never looked up


# ---- data: labels and lengths ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["chat", "instruction"])
def test_labels_cover_exactly_the_response_and_eos(sample_dd: Any, tiny_tok: Any, fmt: str) -> None:
    from swcdata.finetune.data import IGNORE_INDEX, build_split, render
    from swcdata.finetune.recipe import DataSection

    cfg = DataSection(prompt_format=fmt, max_length=100_000)
    ds, rep = build_split(sample_dd["train"], tiny_tok, cfg, "train")
    assert rep.kept == rep.examples == len(sample_dd["train"]) and rep.over_max_length == 0
    eos = tiny_tok.eos_token_id
    for row, ex in zip(sample_dd["train"], ds, strict=True):
        ids, labels = ex["input_ids"], ex["labels"]
        prompt, _ = render(tiny_tok, row["instruction"], row["response"], fmt)
        n_prompt = len(tiny_tok(prompt, add_special_tokens=False)["input_ids"])
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt  # every prompt token masked
        assert labels[n_prompt:] == ids[n_prompt:]  # every response token (and EOS) trained
        assert ids[-1] == eos and labels[-1] == eos
        assert tiny_tok.decode(ids[n_prompt:], skip_special_tokens=True).strip() == row["response"].strip()
    assert rep.loss_tokens == sum(sum(1 for x in e["labels"] if x != IGNORE_INDEX) for e in ds)


def test_overlong_examples_truncate_the_prompt_never_the_response(sample_dd: Any, tiny_tok: Any) -> None:
    from swcdata.finetune.data import IGNORE_INDEX, build_split
    from swcdata.finetune.recipe import DataSection

    full, _ = build_split(sample_dd["train"], tiny_tok, DataSection(max_length=100_000), "train")
    cfg = DataSection(max_length=256, overlong="truncate_prompt", min_prompt_tokens=16)
    cut, rep = build_split(sample_dd["train"], tiny_tok, cfg, "train")
    assert rep.over_max_length > 0 and rep.truncated_prompt > 0 and rep.dropped_response_too_long > 0
    assert rep.kept + rep.dropped_response_too_long == rep.examples
    assert max(len(x) for x in cut["input_ids"]) <= 256
    full_responses = {tuple(x for x in e["labels"] if x != IGNORE_INDEX) for e in full}
    for e in cut:  # every kept response is whole, and the prompt still starts with BOS
        assert tuple(x for x in e["labels"] if x != IGNORE_INDEX) in full_responses
        assert e["input_ids"][0] == tiny_tok.bos_token_id
    dropped, rep2 = build_split(sample_dd["train"], tiny_tok, cfg.model_copy(update={"overlong": "drop"}), "train")
    assert rep2.dropped_policy == rep.truncated_prompt and rep2.truncated_prompt == 0
    assert len(dropped) == rep.kept - rep.truncated_prompt
    assert "prompt-truncated" in rep.summary()


# ---- packing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_examples_do_not_attend_to_each_other(tiny_tok: Any, attn: str) -> None:
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = _tiny_llama(tiny_tok, attn)
    a = tiny_tok("<s>contract A { function f() public { x += 1; } }", add_special_tokens=False)["input_ids"]
    b = tiny_tok("<s>Reentrancy (SWC-107): the call comes before the update.", add_special_tokens=False)["input_ids"]
    collate = DataCollatorForLanguageModeling(pad_token_id=tiny_tok.pad_token_id, padding_free=True)
    batch = collate([{"input_ids": a, "labels": a}, {"input_ids": b, "labels": b}])
    assert batch["input_ids"].shape == (1, len(a) + len(b)) and "attention_mask" not in batch
    assert batch["position_ids"][0].tolist() == list(range(len(a))) + list(range(len(b)))
    # transformers derives the block-diagonal mask from restarting position_ids only without a KV cache
    # (training sets use_cache=False; with a cache it would silently attend across examples)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone_a = model(input_ids=torch.tensor([a]), use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
        # control: the same row without restarting positions lets b see a
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
    torch.testing.assert_close(packed[: len(a)], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[len(a):], alone_b, atol=1e-5, rtol=1e-4)
    assert (leaky[len(a):] - alone_b).abs().max() > 1e-3
    # the first token of b is never a target of a's last token
    assert batch["labels"][0, len(a)].item() == -100


# ---- model: 4-bit layers and LoRA targets ------------------------------------------------------------

def test_tiny_base_loads_as_nf4_linear4bit_on_cpu(tmp_path: Path, tiny_tok: Any) -> None:
    import bitsandbytes as bnb
    import torch

    from swcdata.finetune import model as M
    from swcdata.finetune.recipe import load_recipe

    r = load_recipe("tiny-cpu", FAST)
    M.build_tiny_base(r.model.tiny, tiny_tok, tmp_path / "base", seed=0)
    m = M.load_base_model(str(tmp_path / "base"), r, attn="sdpa")
    layer = m.model.layers[0]
    for lin in (layer.self_attn.q_proj, layer.self_attn.o_proj, layer.mlp.down_proj):
        assert isinstance(lin, bnb.nn.Linear4bit)
        assert lin.weight.quant_type == "nf4" and lin.weight.dtype == torch.uint8
    assert M.count_4bit_layers(m) == 7 * r.model.tiny.num_hidden_layers
    assert not isinstance(m.lm_head, bnb.nn.Linear4bit)
    peft_model = M.attach_lora(m, r, M.resolve_target_modules(m, "all-linear"))
    out = peft_model(input_ids=torch.tensor([[1, 5, 9, 12]]), labels=torch.tensor([[1, 5, 9, 12]]))
    out.loss.backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None for g in grads)


def _tiny_from(config_cls: Any, **kw: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    cfg = config_cls(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=1, **kw)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


ALL_LINEAR = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def test_target_modules_resolve_from_gemma_and_llama_configs() -> None:
    from transformers import GemmaConfig, LlamaConfig

    from swcdata.finetune.model import linear_layers, resolve_target_modules

    for m in (_tiny_from(GemmaConfig, head_dim=16), _tiny_from(LlamaConfig)):
        assert resolve_target_modules(m, "all-linear") == ALL_LINEAR
        assert "lm_head" not in linear_layers(m)
        assert len(linear_layers(m)["q_proj"]) == 2  # one per layer
        assert resolve_target_modules(m, ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]


def test_seed_notebook_module_names_are_an_error_on_gemma() -> None:
    from transformers import GemmaConfig

    from swcdata.finetune.model import resolve_target_modules

    with pytest.raises(ConfigError) as e:
        resolve_target_modules(_tiny_from(GemmaConfig, head_dim=16), ["q_proj", "fc_in", "fc_out", "out_proj"])
    probs = e.value.problems
    wrong = ("fc_in", "fc_out", "out_proj")
    assert [p for p in probs if "is not a linear module" in p] == [
        f"lora.target_modules: {n!r} is not a linear module of GemmaForCausalLM" for n in wrong]
    assert probs[-1] == "lora.target_modules: available: " + ", ".join(ALL_LINEAR)


def test_meta_model_reads_a_local_config_without_weights(tmp_path: Path) -> None:
    from transformers import GemmaConfig

    from swcdata.finetune.model import meta_model, resolve_target_modules

    GemmaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=1, head_dim=16).save_pretrained(tmp_path)
    m = meta_model(str(tmp_path))
    assert next(m.parameters()).device.type == "meta"
    assert resolve_target_modules(m, "all-linear") == ALL_LINEAR


def test_attention_choice_on_cpu() -> None:
    from swcdata.finetune.model import flash_attention_status, pick_attention

    ok, why = flash_attention_status()
    assert not ok and why
    assert pick_attention("auto") == "sdpa"
    with pytest.raises(ConfigError, match="flash_attention_2 cannot run here"):
        pick_attention("flash_attention_2")


# ---- end to end ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory, sample_dd: Any) -> Path:
    from swcdata.registry.store import Registry

    home = tmp_path_factory.mktemp("registry")
    splits = {k: v.data.table for k, v in sample_dd.items()}
    Registry(home).publish("sample", splits)
    return home


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, registry_home: Path) -> tuple[Path, dict[str, Any]]:
    """`swcdata finetune sample@v1` on the tiny recipe (smaller model, 16 steps), through the CLI."""
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    out = tmp_path_factory.mktemp("runs")
    args = ["finetune", "sample@v1", "--home", str(registry_home), "--output", str(out), "--json",
            "--run-id", "tiny-e2e"]
    for s in [*FAST, "training.max_steps=16", "training.eval_steps=8", "training.save_steps=8"]:
        args += ["--set", s]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout[res.stdout.index("{"):])
    return out, info


def test_tiny_recipe_end_to_end_loss_falls(tiny_run: tuple[Path, dict[str, Any]]) -> None:
    from swcdata.finetune.runs import read_metrics

    out, info = tiny_run
    run = out / "tiny-e2e"
    assert info["status"] == "completed" and info["global_steps"] == 16
    assert info["dataset"] == "sample@v1" and len(info["dataset_hash"]) == 64
    assert info["quantized_layers"] == 14 and info["attn_implementation"] == "sdpa"
    assert info["target_modules"] == ALL_LINEAR
    assert info["tokens_per_s"] > 0 and info["peak_memory_mib"] > 0 and info["wall_time_s"] > 0
    assert {"torch", "transformers", "peft", "trl", "bitsandbytes"} <= set(info["versions"])
    metrics = read_metrics(run)
    train = [m["loss"] for m in metrics if "loss" in m]
    evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
    assert len(train) >= 5 and len(evals) == 2
    assert sum(train[-3:]) / 3 < train[0] - 0.3, train  # the loss falls
    assert evals[-1] < evals[0]
    for name in ("run.json", "recipe.yaml", "metrics.jsonl", "adapter/adapter_config.json",
                 "adapter/adapter_model.safetensors", "adapter/tokenizer.json", "base-model/config.json"):
        assert (run / name).is_file(), name
    import yaml

    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["training"]["max_steps"] == 16 and resolved["model"]["tiny"]["hidden_size"] == 64


def test_adapter_reloads_and_generates(tiny_run: tuple[Path, dict[str, Any]]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = tiny_run
    run = out / "tiny-e2e"
    tok = AutoTokenizer.from_pretrained(run / "adapter")
    base = AutoModelForCausalLM.from_pretrained(run / "base-model")
    model = PeftModel.from_pretrained(base, run / "adapter").eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What vulnerability is in this code?"}],
                                     add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]
    assert isinstance(tok.decode(gen[0, ids["input_ids"].shape[1]:]), str)
    # the adapter changes the model: its logits differ from the bare base model's
    with torch.no_grad(), model.disable_adapter():
        bare = model(**ids).logits
    with torch.no_grad():
        tuned = model(**ids).logits
    assert (tuned - bare).abs().max() > 1e-3


def test_runs_lists_the_run(tiny_run: tuple[Path, dict[str, Any]]) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    out, _ = tiny_run
    res = CliRunner().invoke(app, ["runs", "--output", str(out), "--json"])
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    assert [r["run_id"] for r in rows] == ["tiny-e2e"] and rows[0]["dataset"] == "sample@v1"
    res = CliRunner().invoke(app, ["runs", "--output", str(out)], env={"COLUMNS": "200"})
    assert "tiny-e2e" in res.stdout and "sample@v1" in res.stdout


def test_resume_continues_from_the_last_checkpoint(tiny_run: tuple[Path, dict[str, Any]],
                                                   registry_home: Path) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    out, _ = tiny_run
    args = ["finetune", "sample@v1", "--home", str(registry_home), "--output", str(out), "--json", "--resume"]
    for s in [*FAST, "training.max_steps=20", "training.eval_steps=8", "training.save_steps=8"]:
        args += ["--set", s]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout[res.stdout.index("{"):])
    assert info["run_id"] == "tiny-e2e" and info["global_steps"] == 20
    assert info["resumed_from"].endswith("checkpoint-16")
    # a different LoRA rank is not the same run
    bad = CliRunner().invoke(app, [*args, "--set", "lora.r=4"])
    assert bad.exit_code == 2 and "lora: differs" in bad.output
    # without --set, a resume trains as the run was set up (its recipe.yaml), and a completed run has
    # nothing left to do; the recorded recipe is untouched
    recorded = (out / "tiny-e2e" / "recipe.yaml").read_text()
    again = CliRunner().invoke(app, ["finetune", "sample@v1", "--home", str(registry_home), "--output", str(out),
                                     "--resume", "--run-id", "tiny-e2e"])
    assert again.exit_code == 2 and "already completed" in again.output
    assert (out / "tiny-e2e" / "recipe.yaml").read_text() == recorded and "max_steps: 20" in recorded


def test_a_base_model_that_cannot_be_loaded_is_one_error_line(registry_home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # (no network here either way: fail fast)
    res = CliRunner().invoke(app, ["finetune", "sample@v1", "--home", str(registry_home), "--output",
                                   str(tmp_path / "runs"), "--set", "model.source=hub", "--set",
                                   f"model.name={tmp_path / 'no-such-model'}"])
    assert res.exit_code == 2 and "cannot load the base model" in res.output, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("run_id", ["../escape", "/tmp/abs", "a/b", ".."])
def test_a_run_id_is_a_folder_name_inside_output(run_id: str, registry_home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    res = CliRunner().invoke(app, ["finetune", "sample@v1", "--home", str(registry_home), "--output",
                                   str(tmp_path / "runs"), "--run-id", run_id])
    assert res.exit_code == 2 and "invalid run id" in res.output and not (tmp_path / "runs").exists()


def test_ddp_two_cpu_processes(tmp_path: Path, sample_dd: Any) -> None:
    """The same command under torchrun with 2 CPU processes (gloo DDP), a couple of steps."""
    from swcdata.steps.split_dir import write_split_dir

    write_split_dir({k: v.data.table for k, v in sample_dd.items()}, tmp_path / "splits")
    torchrun = Path(PY).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "swcdata", "finetune", str(tmp_path / "splits"),
           "--output", str(tmp_path / "runs"), "--run-id", "ddp", "--json"]
    for s in [*FAST, "training.max_steps=2", "training.eval_steps=2", "training.save_steps=2",
              "training.per_device_train_batch_size=2"]:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout[res.stdout.index("{"):])  # printed once, by rank 0
    assert res.stdout.count('"run_id"') == 1
    assert info["world_size"] == 2 and info["global_steps"] == 2 and info["status"] == "completed"
    assert info["dataset"] == "splits@vlocal" and (tmp_path / "runs" / "ddp" / "adapter").is_dir()


# ---- dry run: what a run will do, before it runs -------------------------------------------------

def test_dry_run_counts_are_what_the_run_then_logs(registry_home: Path, tmp_path: Path) -> None:
    """One epoch (no max_steps): the dry run's truncation and step counts equal the real run's."""
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    sets = [*FAST, "training.per_device_train_batch_size=3", "training.gradient_accumulation_steps=2",
            "data.max_length=256", "training.save_minutes=null"]
    base = ["finetune", "sample@v1", "--home", str(registry_home), "--json"]
    for s in sets:
        base += ["--set", s]
    res = CliRunner().invoke(app, [*base, "--dry-run", "--output", str(tmp_path / "none")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout[res.stdout.index("{"):])
    assert not (tmp_path / "none").exists()  # a dry run writes nothing
    sources = {v["key"]: v["source"] for v in plan["values"]}
    assert sources["data.max_length"] == "--set" and sources["model.source"] == "recipe"
    assert sources["lora.bias"] == "default"
    train = plan["splits"][0]["lengths"]
    assert train["over_max_length"] > 0 and train["truncated_prompt"] > 0  # max_length 256 cuts some
    assert sum(b["examples"] for b in train["histogram"]) == train["examples"]
    assert train["histogram"][-1]["examples"] == train["over_max_length"]
    assert 0 < plan["splits"][0]["packing_efficiency"] <= 1
    assert plan["model"]["target_modules"] == ALL_LINEAR and plan["model"]["config_source"] == "the tiny recipe's shape"
    assert plan["memory"]["fits"] and plan["memory"]["total"] > 0

    res = CliRunner().invoke(app, [*base, "--output", str(tmp_path / "runs"), "--run-id", "epoch"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout[res.stdout.index("{"):])
    assert info["global_steps"] == plan["total_steps"] == plan["steps_per_epoch"]
    for planned, ran in zip(plan["splits"], info["length_reports"], strict=True):
        assert planned["lengths"] == ran
    assert (tmp_path / "runs" / "epoch" / "checkpoints").is_dir()  # checkpoints by steps by default


def test_dry_run_says_when_a_hub_config_cannot_be_reached(registry_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(app, ["finetune", "sample@v1", "--home", str(registry_home), "--recipe", "gemma-2b",
                                   "--dry-run", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout[res.stdout.index("{"):])
    assert plan["model"]["config_source"].startswith("unreachable:") and plan["memory"] is None
    assert plan["tokenizer_source"].startswith("unreachable:") and plan["steps_per_epoch"] is None
    assert any("could not be read from a local folder or the Hub cache" in w for w in plan["warnings"])


def test_memory_estimate_of_gemma_2b_shape_against_the_gpu_size(tmp_path: Path) -> None:
    """Gemma-2B's config from a local folder: 4-bit weights about 1.1 GiB, 256k-vocab logits dominate."""
    from transformers import GemmaConfig

    from swcdata.finetune.plan import _model_plan, estimate_memory
    from swcdata.finetune.recipe import load_recipe

    GemmaConfig(vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                num_attention_heads=8, num_key_value_heads=1, head_dim=256).save_pretrained(tmp_path)
    recipe = load_recipe("gemma-2b", [f"model.name={tmp_path}"])
    warnings: list[str] = []
    plan, (config, _, saved) = _model_plan(recipe, None, warnings)
    assert not warnings and plan.config_source == f"local folder {tmp_path}"
    assert plan.target_modules == ALL_LINEAR and plan.lora_parameters and plan.lora_parameters > 10_000_000
    big = estimate_memory(recipe, plan, config, saved, 80.0)
    small = estimate_memory(recipe, plan, config, saved, 8.0)
    assert 0.8 < big.weights_4bit < 1.3 and big.weights_other > 0.9  # 2.0B quantised; 524M embeddings in bf16
    assert big.fits and not small.fits and big.total == small.total
    assert big.activations_without_checkpointing > big.activations_with_checkpointing


# ---- runs that survive and say where they are --------------------------------------------------------

def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path: Path, sample_dd: Any) -> None:
    import signal
    import time

    from swcdata.steps.split_dir import write_split_dir

    write_split_dir({k: v.data.table for k, v in sample_dd.items()}, tmp_path / "splits")
    cmd = [PY, "-m", "swcdata", "finetune", str(tmp_path / "splits"), "--output", str(tmp_path / "runs"),
           "--run-id", "stopped"]
    sets = [*FAST, "training.max_steps=5000", "training.save_steps=4000", "training.eval_steps=4000",
            "training.logging_steps=1"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "stopped" / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert "saving a checkpoint" in stderr and "Traceback" not in stderr
    run = json.loads((tmp_path / "runs" / "stopped" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("stopped by SIGTERM at step ")
    step = int(run["error"].split("at step ")[1].split(";")[0])
    assert (tmp_path / "runs" / "stopped" / "checkpoints" / f"checkpoint-{step}").is_dir()
    assert f"checkpoint-{step} saved: continue with --resume" in run["error"]

    listed = subprocess.run([PY, "-m", "swcdata", "runs", "--output", str(tmp_path / "runs"), "--json"],
                            capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(listed.stdout)[0]["steps_done"] >= step

    resume = [PY, "-m", "swcdata", "finetune", str(tmp_path / "splits"), "--output", str(tmp_path / "runs"),
              "--resume", "--json", "--set", f"training.max_steps={step + 2}"]
    res = subprocess.run(resume, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout[res.stdout.index("{"):])
    assert info["status"] == "completed" and info["global_steps"] == step + 2
    assert info["resumed_from"].endswith(f"checkpoint-{step}")


def test_a_failed_start_leaves_no_run_folder(registry_home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["finetune", "sample@v1", "--home", str(registry_home), "--output", str(runs),
                                   "--set", "model.source=hub", "--set", f"model.name={tmp_path / 'missing'}"])
    assert res.exit_code == 2 and "cannot load the base model" in res.output
    assert not runs.exists() or not any(runs.iterdir())


def test_device_choice() -> None:
    from swcdata.finetune.train import resolve_device

    assert resolve_device("auto", "auto", cuda=False) == (True, None)
    assert resolve_device("auto", "auto", cuda=True) == (False, None)
    assert resolve_device("cpu", "auto", cuda=True) == (True, None)
    cpu, why = resolve_device("cuda", "auto", cuda=False)
    assert cpu and why and "GPU recipe" in why and "--device cuda" in why
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        resolve_device("cuda", "cuda", cuda=False)
    assert resolve_device("cuda", "cpu", cuda=True) == (True, None)


def test_a_gpu_recipe_on_the_cpu_warns_and_device_cuda_refuses(registry_home: Path, tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from swcdata.cli.main import app

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    args = ["finetune", "sample@v1", "--home", str(registry_home), "--output", str(tmp_path / "runs"),
            "--run-id", "gpu-on-cpu", "--set", "training.device=cuda", "--set", "training.max_steps=1"]
    for s in FAST:
        args += ["--set", s]
    res = CliRunner().invoke(app, [*args, "--device", "cuda"])
    assert res.exit_code == 2 and "--device cuda: no CUDA GPU is visible" in res.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "this is a GPU recipe (training.device: cuda) but no CUDA GPU is visible" in res.output
    assert "first evaluation batch ok" in res.output and "estimated from that batch" in res.output


def test_checkpoint_every_minutes_uses_the_clock() -> None:
    from types import SimpleNamespace

    from swcdata.finetune.callbacks import CheckpointEvery

    now = [0.0]
    cb = CheckpointEvery(5, clock=lambda: now[0])
    control = SimpleNamespace(should_save=False)
    now[0] = 299.0
    cb.on_step_end(None, None, control)
    assert not control.should_save
    now[0] = 300.0
    cb.on_step_end(None, None, control)
    assert control.should_save
    cb.on_save(None, None, control)
    control.should_save = False
    now[0] = 420.0
    cb.on_step_end(None, None, control)
    assert not control.should_save


def test_progress_bar_shows_step_loss_and_eta() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from swcdata.finetune.callbacks import RichProgress

    console = Console(record=True, force_terminal=True, width=120)
    bar = RichProgress(console=console)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=10, global_step=0)
    bar.on_train_begin(None, state, None)
    state.global_step = 4
    bar.on_step_end(None, state, None)
    bar.on_log(None, state, None, logs={"loss": 1.2345})
    bar.close()
    text = console.export_text()
    assert "training" in text and "4/10" in text and "loss 1.234" in text and "ETA" in text
