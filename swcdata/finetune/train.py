"""One fine-tuning run: a DatasetDict + its version reference + a recipe -> `runs/<run-id>/`.

The same function runs on one CPU, one GPU, or one process per GPU under `accelerate launch`
(DDP): the process group comes from accelerate's `PartialState`, the main process creates the
run folder (and the tiny base model) and every process agrees on the run id.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import ConfigError, DataError, InputError
from swcdata.finetune.recipe import Recipe
from swcdata.finetune.runs import (
    ADAPTER_DIR,
    BASE_DIR,
    CHECKPOINT_DIR,
    METRICS_FILE,
    RECIPE_FILE,
    DatasetRef,
    RunInfo,
    latest_checkpoint,
    list_runs,
    read_run,
    utc_now,
    write_run,
)

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from swcdata.finetune.data import LengthReport

Log = Callable[[str], None]
VERSIONED = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "tokenizers",
             "flash-attn", "swcdata")


def library_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def new_run_id(recipe: Recipe, ref: DatasetRef) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{recipe.name}-{ref.name}-v{str(ref.version).removeprefix('v')}"


_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_run_id(run_id: str) -> None:
    """A run id is a folder name inside --output: no path separators, no '..'."""
    if not _RUN_ID_RE.match(run_id) or ".." in run_id:
        raise InputError(f"invalid run id {run_id!r}", hint="use letters, digits, '.', '_' and '-' (a folder name "
                         "inside --output, which `swcdata runs` lists)")


def _find_resumable(output: Path, ref: DatasetRef, recipe: Recipe, run_id: str | None) -> Path:
    if run_id:
        check_run_id(run_id)
        run_dir = output / run_id
        if read_run(run_dir) is None:
            raise InputError(f"no run {run_id} in {output}", hint=f"list runs with: swcdata runs --output {output}")
        return run_dir
    for info in list_runs(output):
        d = output / info.run_id
        if info.dataset == str(ref) and info.recipe == recipe.name and latest_checkpoint(d) is not None:
            return d
    raise InputError(f"no run of recipe {recipe.name} on {ref} with a checkpoint in {output}",
                     hint="start a new run without --resume, or name one with --run-id")


def resume_recipe(output: Path, ref: DatasetRef, recipe: Recipe, run_id: str | None,
                  overrides: list[str]) -> tuple[Recipe, str]:
    """The recipe a resumed run continues with, and the run's id: the run's own recorded recipe.yaml
    with this command's --set overrides on top (so a resume without --set trains exactly as the run
    was set up, not with the current file's values). A completed run is resumed only when the
    overrides change something (train it further: --set training.max_steps=N)."""
    from swcdata.finetune.recipe import load_recipe

    run_dir = _find_resumable(output, ref, recipe, run_id)
    recorded = load_recipe(run_dir / RECIPE_FILE)
    effective = load_recipe(run_dir / RECIPE_FILE, overrides)
    info = read_run(run_dir)
    if info is not None and info.status == "completed" and effective == recorded:
        raise InputError(f"run {run_dir.name} already completed: there is nothing to resume",
                         hint="to train it further, resume with --set training.max_steps=N (more steps than it "
                              "ran); or start a new run")
    return effective, run_dir.name


def _check_resume_compatible(run_dir: Path, recipe: Recipe, ref: DatasetRef) -> None:
    import yaml

    info = read_run(run_dir)
    assert info is not None
    problems = []
    if info.dataset_hash != ref.content_hash:
        problems.append(f"dataset: the run trained on {info.dataset} ({info.dataset_hash[:12]}), not {ref} "
                        f"({ref.content_hash[:12]})")
    old = yaml.safe_load((run_dir / RECIPE_FILE).read_text(encoding="utf-8"))
    new = recipe.model_dump(mode="json")
    for section in ("model", "quantization", "lora", "data", "distributed"):
        if section in old and old.get(section) != new.get(section):  # (runs older than a section keep its defaults)
            problems.append(f"{section}: differs from the run's recipe.yaml (only `training` may change on resume)")
    if problems:
        raise ConfigError(problems, source=f"--resume {run_dir.name}")


def _agree(value: Any) -> Any:
    """The main process's value, on every process (a no-op without a process group)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    if PartialState().num_processes <= 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _tokenizer(recipe: Recipe, train: datasets.Dataset, run_dir: Path, log: Log) -> tuple[PreTrainedTokenizerBase, str]:
    """(tokenizer, base model path or Hub id). The tiny source trains a tokenizer and builds the model locally."""
    from accelerate import PartialState
    from transformers import AutoTokenizer

    state = PartialState()
    if recipe.model.source == "tiny":
        base = run_dir / BASE_DIR
        with state.main_process_first():
            if state.is_main_process and not (base / "config.json").is_file():
                from swcdata.finetune.model import build_tiny_base
                from swcdata.finetune.tokenizer import train_split_tokenizer

                tok = train_split_tokenizer(train, recipe.model.tiny.vocab_size)
                build_tiny_base(recipe.model.tiny, tok, base, recipe.training.seed)
                log(f"built tiny base model ({len(tok)} tokens vocabulary) in {base}")
        return AutoTokenizer.from_pretrained(base), str(base)
    try:
        tok = AutoTokenizer.from_pretrained(recipe.model.name, revision=recipe.model.revision,
                                            trust_remote_code=recipe.model.trust_remote_code)
    except OSError as e:  # not found locally, no network, gated, wrong revision: transformers says which
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the base model {recipe.model.name!r}: {first}",
                         hint="check model.name (a Hub id or a local folder), the network, and for a gated model "
                              "your Hub token; offline, point model.name at a downloaded copy") from None
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    tok.padding_side = "right"
    return tok, recipe.model.name


def prepare_splits(dataset: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase, recipe: Recipe
                   ) -> tuple[datasets.Dataset, datasets.Dataset | None, list[LengthReport]]:
    """Tokenized train (and eval) splits with response-only labels, and their length reports."""
    from swcdata.finetune.data import build_split

    d = recipe.data
    train, rep = build_split(dataset[d.train_split], tokenizer, d, d.train_split, d.max_train_examples)
    reports = [rep]
    if len(train) == 0:
        raise DataError(f"no training example fits data.max_length={d.max_length}: {rep.summary()}")
    evals = None
    if d.eval_split and d.eval_split in dataset and len(dataset[d.eval_split]):
        evals, erep = build_split(dataset[d.eval_split], tokenizer, d, d.eval_split, d.max_eval_examples)
        reports.append(erep)
        if len(evals) == 0:
            evals = None
    return train, evals, reports


def _peak_memory() -> tuple[float, str]:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def sft_config(recipe: Recipe, run_dir: Path, *, has_eval: bool, progress: bool, use_cpu: bool | None = None
               ) -> Any:
    """TRL SFTConfig from the recipe's training section (pre-tokenized data, BFD packing, padding-free)."""
    import torch
    from trl import SFTConfig

    from swcdata.finetune.model import bf16_supported, resolve_dtype

    t = recipe.training
    bf16 = bf16_supported() if t.bf16 == "auto" else bool(t.bf16)
    fp16 = (torch.cuda.is_available() and not bf16 and resolve_dtype(recipe.quantization.compute_dtype)
            == torch.float16)
    eval_strategy = "no" if not has_eval else ("steps" if t.eval_steps else "epoch")
    # checkpoints by steps by default (every tenth of the run: the Trainer reads a float < 1 as a ratio), so that a
    # stopped run resumes near where it was; CheckpointEvery adds one every save_minutes
    save_steps: float = t.save_steps or 0.1
    # transformers >= 5.2x renamed gradient_checkpointing to activation_checkpointing (the old name warns)
    ckpt = "activation_checkpointing" if "activation_checkpointing" in {f.name for f in dataclasses.fields(SFTConfig)} \
        else "gradient_checkpointing"
    checkpointing = {ckpt: t.gradient_checkpointing,
                     f"{ckpt}_kwargs": {"use_reentrant": False} if t.gradient_checkpointing else None}
    from swcdata.finetune import distributed as D

    # FSDP: fsdp + fsdp_config; DeepSpeed: deepspeed=<json> (load_recipe made its path absolute); else nothing
    per_mode = D.trainer_kwargs(recipe)
    return SFTConfig(
        **per_mode,
        output_dir=str(run_dir / CHECKPOINT_DIR),
        seed=t.seed, data_seed=t.seed,
        num_train_epochs=t.num_train_epochs, max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler_type, warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, optim=t.optim,
        **checkpointing,
        bf16=bf16, fp16=fp16, use_cpu=not torch.cuda.is_available() if use_cpu is None else use_cpu,
        logging_steps=t.logging_steps, logging_first_step=True,
        eval_strategy=eval_strategy, eval_steps=t.eval_steps,
        save_strategy="steps", save_steps=save_steps, save_total_limit=t.save_total_limit,
        report_to="none", disable_tqdm=True,  # (RichProgress draws the bar on a terminal)
        dataloader_num_workers=t.dataloader_num_workers,
        ddp_find_unused_parameters=False,
        # data: already tokenized with labels; TRL packs (best-fit decreasing) into padding-free rows
        max_length=recipe.data.max_length, packing=recipe.data.packing, packing_strategy="bfd",
        padding_free=recipe.data.packing, eval_packing=recipe.data.packing,
        completion_only_loss=None, dataset_num_proc=None,
    )


def resolve_device(recipe_device: str, requested: str, cuda: bool) -> tuple[bool, str | None]:
    """(train on the CPU?, warning) from the recipe's `training.device`, `--device` and whether CUDA is visible."""
    if requested == "cuda" and not cuda:
        raise ConfigError(["--device cuda: no CUDA GPU is visible to torch (a CPU-only torch build, or "
                           "CUDA_VISIBLE_DEVICES hides the GPUs); use --device auto to train on the CPU"])
    if requested == "cpu" or (requested == "auto" and recipe_device == "cpu"):
        return True, None
    if not cuda and recipe_device == "cuda":
        return True, ("this is a GPU recipe (training.device: cuda) but no CUDA GPU is visible: training on the "
                      "CPU, which is very slow for a real base model (pass --device cuda to make this an error)")
    return not cuda, None


class RunStopped(KeyboardInterrupt):
    """Training stopped by a signal after saving a checkpoint (the run is marked failed, ready for --resume)."""

    def __init__(self, signal_name: str, detail: str) -> None:
        from swcdata.core.errors import TERMINATED

        # (console.handle_errors exits 143 for SIGTERM and 130 for Ctrl-C, from args[0])
        super().__init__(TERMINATED if signal_name == "SIGTERM" else detail)
        self.detail = detail


def finetune(dataset: datasets.DatasetDict, ref: DatasetRef, recipe: Recipe, output: Path = Path("runs"), *,
             run_id: str | None = None, resume: bool = False, progress: bool | None = None,
             device: str = "auto", log: Log | None = None, warn: Log | None = None) -> RunInfo:
    """Fine-tune `recipe`'s base model with QLoRA on `dataset` and write `output/<run-id>/`.

    Returns the run's `RunInfo` (also written to `run.json`). Raises ConfigError / InputError /
    DataError for user mistakes; a start that fails before the first step leaves no run folder (a
    resumed run keeps its own); a failure or a signal during training marks the run `failed` and
    re-raises (a signal first saves a checkpoint: `RunStopped`).
    """
    from accelerate import PartialState
    from transformers import set_seed

    from swcdata.finetune.bnb_cpu import quiet_hub_kernel

    quiet_hub_kernel()  # before anything imports bitsandbytes
    log = log or (lambda _m: None)
    warn = warn or log
    # transformers 5.2x renamed gradient checkpointing to activation checkpointing; peft and the Trainer
    # still call the old names internally, which the user can do nothing about
    warnings.filterwarnings("ignore", message=r"`(is_)?gradient_checkpointing\w*` is deprecated",
                            category=FutureWarning)
    progress = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    import torch

    use_cpu, why = resolve_device(recipe.training.device, device, torch.cuda.is_available())
    if why:
        warn(why)
    if use_cpu and recipe.training.optim.startswith("paged_"):
        warn(f"training.optim {recipe.training.optim} is a GPU optimiser (bitsandbytes pages it to GPU memory); "
             "on the CPU it runs unpaged: set training.optim=adamw_torch for a CPU run")
    # the first PartialState fixes the distributed setup: on CPU it must be told, or torchrun's processes
    # would each train alone instead of forming a gloo process group (DDP on CPU)
    state = PartialState(cpu=use_cpu)
    main = state.is_main_process
    if recipe.data.train_split not in dataset:
        raise ConfigError([f"data.train_split: {ref} has no split {recipe.data.train_split!r} "
                           f"(splits: {', '.join(dataset)})"])
    set_seed(recipe.training.seed)

    # ---- the run folder ----
    resumed_from = None
    if resume:
        run_dir = _find_resumable(output, ref, recipe, run_id)
        _check_resume_compatible(run_dir, recipe, ref)
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise InputError(f"run {run_dir.name} has no checkpoint to resume from")
        resumed_from = str(ckpt)
        info = read_run(run_dir)
        assert info is not None
        info = info.model_copy(update={"status": "running", "resumed_from": resumed_from, "error": None})
    else:
        if run_id:
            check_run_id(run_id)
        rid = _agree(run_id or new_run_id(recipe, ref))
        run_dir = output / rid
        if main and (run_dir / "run.json").exists():
            raise InputError(f"run {rid} already exists in {output}", hint="pass --resume to continue it")
        info = RunInfo(run_id=rid, recipe=recipe.name, base_model=recipe.model.name, dataset=str(ref),
                       dataset_hash=ref.content_hash, created=utc_now(), versions=library_versions(),
                       world_size=state.num_processes)
    created = main and not resume and not run_dir.exists()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RECIPE_FILE).write_text(recipe.to_yaml(), encoding="utf-8")
        write_run(run_dir, info)
    state.wait_for_everyone()
    log(f"run {info.run_id} -> {run_dir}")

    started: list[bool] = []  # _train appends once the first step is about to run
    try:
        return _train(dataset, ref, recipe, run_dir, info, resumed_from, progress, log, t0, use_cpu, started)
    except BaseException as e:
        if main and created and not started:
            # nothing was trained: leave no folder behind (a resumed run keeps its own)
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        elif main:
            error = e.detail if isinstance(e, RunStopped) else f"{type(e).__name__}: {e}"
            write_run(run_dir, info.model_copy(update={"status": "failed", "error": error, "finished": utc_now()}))
        raise


def _first_batch_check(trainer: Any, has_eval: bool) -> tuple[float, int]:
    """One no-grad evaluation batch, before the first step: an error in evaluation, packing or the 4-bit
    kernels shows in seconds instead of after an epoch. Returns (seconds, tokens in the batch)."""
    import torch

    loader = trainer.get_eval_dataloader() if has_eval else trainer.get_train_dataloader()
    batch = next(iter(loader))
    model = trainer.model
    model.eval()
    t = time.perf_counter()
    try:
        with torch.no_grad():
            trainer.prediction_step(model, batch, prediction_loss_only=True)
    finally:
        model.train()
    return time.perf_counter() - t, int(batch["input_ids"].numel())


def _train(dataset: datasets.DatasetDict, ref: DatasetRef, recipe: Recipe, run_dir: Path, info: RunInfo,
           resumed_from: str | None, progress: bool, log: Log, t0: float, use_cpu: bool,
           started: list[bool]) -> RunInfo:
    import torch
    from accelerate import PartialState
    from transformers import PrinterCallback, ProgressCallback
    from trl import SFTTrainer

    from swcdata.finetune import bnb_cpu
    from swcdata.finetune import model as M
    from swcdata.finetune.callbacks import CheckpointEvery, GracefulStop, MetricsJsonl, RichProgress, format_seconds

    state = PartialState()
    if not progress:  # (no terminal, or --json: the weight-loading and packing bars would only fill a log)
        import datasets as hf_datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_datasets.disable_progress_bars()
    tokenizer, base = _tokenizer(recipe, dataset[recipe.data.train_split], run_dir, log)
    train_ds, eval_ds, reports = prepare_splits(dataset, tokenizer, recipe)
    for r in reports:
        log("length report: " + r.summary())

    # targets on a weightless copy first: a wrong module name fails before any weights are loaded
    targets = M.resolve_target_modules(M.meta_model(base, revision=recipe.model.revision if recipe.model.source == "hub"
                                                    else None, trust_remote_code=recipe.model.trust_remote_code),
                                       recipe.lora.target_modules)
    attn = M.pick_attention(recipe.model.attn_implementation)
    log(f"loading {base} (4-bit {recipe.quantization.quant_type if recipe.quantization.load_in_4bit else 'off'}, "
        f"attention {attn}); LoRA r={recipe.lora.r} on {', '.join(targets)}")
    model = M.load_base_model(base, recipe, attn=attn)
    quantized = M.count_4bit_layers(model)
    if quantized:  # (a no-op off the CPU)
        # (the packed AVX-512 BF16 kernel would drop gradients after the first evaluation: see bnb_cpu)
        log("4-bit on CPU: " + bnb_cpu.configure(model, training=True, compute_dtype=M.resolve_dtype(
            recipe.quantization.compute_dtype)).line())
        if bnb_cpu.hub_kernel_skipped():
            log(bnb_cpu.HUB_KERNEL_NOTE)
    model = M.attach_lora(model, recipe, targets)

    args = sft_config(recipe, run_dir, has_eval=eval_ds is not None, progress=progress, use_cpu=use_cpu)
    stop = GracefulStop(log)
    callbacks: list[Any] = [MetricsJsonl(run_dir / METRICS_FILE), stop]
    if recipe.training.save_minutes:
        callbacks.append(CheckpointEvery(recipe.training.save_minutes))
    bar = RichProgress() if progress else None
    if bar is not None:
        callbacks.append(bar)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # (raw {'loss': ...} dicts; RichProgress shows the loss)
    trainer.remove_callback(ProgressCallback)
    # TRL casts adapters to bf16 for quantised models (QLoRA paper); keep them fp32 where compute is not bf16
    compute = M.resolve_dtype(recipe.quantization.compute_dtype)
    if compute != torch.bfloat16:
        for p in trainer.model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    trainable, total = trainer.model.get_nb_trainable_parameters()

    sharded = bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))
    if not sharded:  # (an FSDP / ZeRO-3 model holds its weights only once the Trainer has wrapped it)
        seconds, batch_tokens = _first_batch_check(trainer, eval_ds is not None)
        from swcdata.finetune.plan import steps_per_epoch

        t = recipe.training
        per_epoch = steps_per_epoch(len(trainer.train_dataset), state.num_processes,
                                    t.per_device_train_batch_size, t.gradient_accumulation_steps)
        steps = t.max_steps if t.max_steps > 0 else math.ceil(t.num_train_epochs * per_epoch)
        # a training step is a forward and a backward: about 3 forwards' work, 4 with recomputed activations
        step_tokens = reports[0].tokens / per_epoch  # (the train split's tokens, counted when it was built)
        per_step = seconds * (4 if t.gradient_checkpointing else 3) * step_tokens / max(batch_tokens, 1)
        log(f"first evaluation batch ok ({seconds:.2f} s); training {steps:,} steps ({per_epoch:,} per epoch), "
            f"about {format_seconds(per_step * steps)} estimated from that batch")
    if torch.cuda.is_available() and not use_cpu:
        torch.cuda.reset_peak_memory_stats()
    started.append(True)
    try:
        with stop:
            result = trainer.train(resume_from_checkpoint=resumed_from)
    finally:
        if bar is not None:
            bar.close()
    if stop.stopped_by:
        ckpt = latest_checkpoint(run_dir)
        raise RunStopped(stop.stopped_by, f"stopped by {stop.stopped_by} at step {trainer.state.global_step}; "
                         + (f"{ckpt.name} saved: continue with --resume" if ckpt else "no checkpoint was saved"))
    eval_loss = None
    if eval_ds is not None:
        last = [h for h in trainer.state.log_history if "eval_loss" in h]
        if last and last[-1].get("step") == trainer.state.global_step:
            eval_loss = last[-1]["eval_loss"]
        else:
            eval_loss = trainer.evaluate().get("eval_loss")

    # (under FSDP / DeepSpeed every process takes part in gathering the adapter; one process writes it)
    from swcdata.finetune.distributed import save_adapter

    adapter = run_dir / ADAPTER_DIR
    save_adapter(trainer, adapter, state.is_main_process)
    if state.is_main_process:
        tokenizer.save_pretrained(adapter)
    state.wait_for_everyone()

    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    tokens = max((int(h["num_tokens"]) for h in history if "num_tokens" in h), default=None)
    runtime = float(result.metrics.get("train_runtime", 0.0)) or None
    peak, kind = _peak_memory()
    dev = state.device
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    info = info.model_copy(update={
        "status": "completed", "finished": utc_now(), "wall_time_s": round(time.perf_counter() - t0, 2),
        "train_runtime_s": runtime, "train_tokens": tokens,
        "tokens_per_s": round(tokens / runtime, 1) if tokens and runtime else None,
        "peak_memory_mib": round(peak, 1), "peak_memory_kind": kind, "device": device,
        "world_size": state.num_processes, "attn_implementation": attn, "quantized_layers": quantized,
        "target_modules": targets, "trainable_params": int(trainable), "total_params": int(total),
        "global_steps": trainer.state.global_step,
        "first_train_loss": losses[0] if losses else None, "final_train_loss": losses[-1] if losses else None,
        "final_eval_loss": eval_loss, "length_reports": [r.model_dump(mode="json") for r in reports],
    })
    if state.is_main_process:
        write_run(run_dir, info)
    return info
