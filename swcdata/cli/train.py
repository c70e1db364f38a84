"""Training commands: `finetune` (QLoRA on a dataset version), `runs` (list fine-tuning runs) and
`recipes` (list the recipes `--recipe NAME` finds).

Registered by `swcdata.cli.main`. Nothing heavy at module level: torch, transformers, peft and trl are
imported inside the command bodies (through `swcdata.finetune`), so `swcdata --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from swcdata.cli.console import JsonOpt, err, handle_errors, kv_table, out, print_json

DEFAULT_RECIPE = "tiny-cpu"  # (= swcdata.finetune.recipe.DEFAULT_RECIPE, not imported here: --help stays light)

if TYPE_CHECKING:
    from swcdata.finetune.plan import RunPlan
    from swcdata.finetune.runs import RunInfo

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Folder that holds the runs.")]


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


@handle_errors
def finetune_command(
    dataset: Annotated[str, typer.Argument(help="Dataset version NAME@vN (also name@latest, name@<hash>), or a "
                                           "folder holding a saved DatasetDict or <split>.jsonl files.",
                                           show_default=False)],
    recipe: Annotated[str, typer.Option("--recipe", help="Recipe YAML, or a recipe name: one in "
                                        "./finetune/ or shipped with swcdata (tiny-cpu, gemma-2b, gemma-7b, "
                                        "codegemma-7b, llama-3.2-korean-bllossom-3b); `swcdata recipes` lists "
                                        "them.")] = DEFAULT_RECIPE,
    output: OutputOpt = Path("runs"),
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe value: key=value, dotted "
                                                       "path, value parsed as YAML (--set lora.r=8). Repeatable.")
                         ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest run of this recipe on this dataset "
                                         "(or --run-id) from its last checkpoint, with the run's own recorded "
                                         "recipe (--set may change `training` values).")] = False,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name of the run folder (default: "
                                               "<time>-<recipe>-<name>-v<N>); with --resume, the run to continue.")
                      ] = None,
    nproc: Annotated[int | None, typer.Option("--nproc", min=1, help="Start N training processes on this node "
                                              "(one per GPU; gloo on CPU) by re-running the command under "
                                              "torchrun; default: the recipe's distributed.nproc, else one. "
                                              "Ignored when already started by torchrun / accelerate launch.",
                                              show_default=False)] = None,
    home: Annotated[Path | None, typer.Option("--home", help="Registry folder (default: $SWCDATA_HOME, else "
                                              "./registry).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Load no weights and train nothing: print the resolved "
                                          "recipe (with the source of each value), the token-length histogram and "
                                          "truncation per split, packing, steps, LoRA targets and a GPU memory "
                                          "estimate. Runs on a CPU in seconds.")] = False,
    gpu_memory: Annotated[float, typer.Option("--gpu-memory", min=0.1, help="With --dry-run: the GPU memory (GiB) "
                                              "to check the estimate against.")] = 24.0,
    device: Annotated[str, typer.Option("--device", help="auto: a GPU when one is visible; cuda: fail when none is "
                                        "(instead of the warning a GPU recipe gives); cpu: train on the CPU.")
                      ] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune a model on a dataset version with QLoRA and write runs/<run-id>/.

    Renders each record through the model's chat template (or the Instruction/Response format),
    trains on the response tokens only, packs examples without cross-attention, loads the base
    model in 4-bit NF4, attaches LoRA to every attention/MLP linear layer, and records the adapter,
    resolved recipe, dataset version + hash, metrics and environment. The recipe is checked in full
    before anything is loaded (exit 2 on any problem). Runs under `accelerate launch` or `torchrun`
    for DDP, FSDP or DeepSpeed (recipe section `distributed`), or starts them itself with --nproc N.
    """
    from swcdata.core.errors import require_extra
    from swcdata.finetune.recipe import TRAIN_MODULES, load_recipe

    rec = load_recipe(recipe, overrides or [])  # every recipe problem at once, before data or model
    require_extra("train", TRAIN_MODULES, "fine-tuning")
    from swcdata.core.io import refuse_inside_registry

    refuse_inside_registry([("--output", output)], home)  # (runs are never written into the registry)
    if device not in ("auto", "cuda", "cpu"):
        from swcdata.core.errors import InputError

        raise InputError(f"--device {device!r}: expected auto, cuda or cpu")
    from swcdata.finetune.source import load_dataset
    from swcdata.finetune.train import check_run_id, finetune

    if run_id and not resume:
        check_run_id(run_id)
    launch = None if dry_run else _launch_plan(rec, nproc)  # (a distributed config error, before the data)
    dd, ref = load_dataset(dataset, home)  # (a wrong name is one error line here, not N workers' tracebacks)
    if dry_run:
        _dry_run(dd, ref, rec, recipe, overrides or [], gpu_memory, json_out, nproc)
        return
    if launch is not None:  # --nproc N: this command again as N processes under torchrun
        _launch(rec, launch)
    if resume:
        from swcdata.finetune.train import resume_recipe

        rec, run_id = resume_recipe(output, ref, rec, run_id, overrides or [])
    main = _is_main_process()

    def log(message: str) -> None:
        if main and not json_out:
            err.print(f"[dim]{escape(message)}[/]")

    def warn(message: str) -> None:
        if main:  # (also with --json: stderr)
            err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    # (the first Ctrl-C or SIGTERM saves a checkpoint at the end of the step, then marks the run failed)
    info = finetune(dd, ref, rec, output, run_id=run_id, resume=resume, device=device,
                    progress=None if not json_out else False, log=log, warn=warn)
    if not main:
        return
    if json_out:
        print_json(info)
    else:
        render_run(info, output)


def _launch_plan(rec: Any, nproc: int | None) -> int | None:
    """The processes to start: --nproc N, a recipe's distributed.nproc, or what FSDP/DeepSpeed need; None inside a
    launcher (torchrun, accelerate launch) or for one plain process. A distributed config error raises here."""
    from swcdata.finetune.distributed import plan_launch

    n, note = plan_launch(rec, nproc)
    if note and _is_main_process():
        err.print(f"[yellow]{escape(note)}[/]")
    return n


def _launch(rec: Any, n: int) -> None:
    """Re-run this command as `n` processes under torchrun and exit with its code."""
    import sys

    from swcdata.finetune.distributed import finetune_args, launcher_command, run_launcher

    args = finetune_args(sys.argv)
    if args is None:
        from swcdata.core.errors import InputError

        raise InputError("cannot re-launch: `finetune` is not on this process's command line",
                         hint="start it with torchrun --nproc_per_node N -m swcdata finetune ...")
    raise typer.Exit(run_launcher(launcher_command(rec, n, args)))


def _dry_run(dd: Any, ref: Any, rec: Any, recipe: str, overrides: list[str], gpu_memory: float,
             json_out: bool, nproc: int | None) -> None:
    from swcdata.finetune.plan import plan_run
    from swcdata.finetune.recipe import resolve_recipe_path

    # the processes the run would have: --nproc, the recipe's distributed.nproc, or the launcher's WORLD_SIZE
    world = nproc or rec.distributed.nproc or int(os.environ.get("WORLD_SIZE", "0") or 0) or 1
    plan = plan_run(dd, ref, rec, recipe_file=resolve_recipe_path(recipe), overrides=overrides, world_size=world,
                    gpu_memory_gib=gpu_memory, log=(lambda m: None) if json_out else
                    (lambda m: err.print(f"[dim]{escape(m)}[/]")))
    if json_out:
        print_json(plan)
    else:
        render_plan(plan)


def render_plan(plan: RunPlan) -> None:
    """The dry run as tables: recipe values (non-defaults first), lengths per split, steps, model, memory."""
    vt = Table(title=f"recipe {plan.recipe} ({plan.recipe_file or 'resolved'})", title_justify="left")
    for col in ("key", "value", "source"):
        vt.add_column(col)
    order = {"--set": 0, "recipe": 1, "default": 2}
    for v in sorted(plan.values, key=lambda v: order[v.source]):
        colour = {"--set": "yellow", "recipe": "", "default": "dim"}[v.source]
        vt.add_row(escape(v.key), escape(str(v.value)), f"[{colour}]{v.source}[/]" if colour else v.source)
    out.print(vt)
    for sp in plan.splits:
        r = sp.lengths
        ht = Table(title=f"{r.split}: token lengths ({plan.prompt_format} format, max_length {r.max_length})",
                   title_justify="left")
        for col, just in (("tokens", "right"), ("examples", "right"), ("", "left")):
            ht.add_column(col, justify=just)  # type: ignore[arg-type]
        most = max((b.examples for b in r.histogram), default=0) or 1
        for b in r.histogram:
            span = f"{b.low}-{b.high}" if b.high is not None else f"> {r.max_length}"
            ht.add_row(span, f"{b.examples:,}", "#" * round(30 * b.examples / most))
        out.print(ht)
        out.print(kv_table([
            ("examples", f"{r.kept:,} of {r.examples:,} kept; {r.over_max_length} over max_length: "
                         f"{r.truncated_prompt} prompt-truncated ({r.prompt_tokens_cut:,} tokens cut), "
                         f"{r.dropped_policy + r.dropped_response_too_long} dropped"),
            ("tokens", f"{r.tokens:,} ({r.loss_tokens:,} with a loss); mean {r.mean_length:,.0f}, p95 "
                       f"{r.p95_length:,}, longest {r.longest:,}"),
            ("packed rows", f"{sp.rows:,} (packing efficiency {sp.packing_efficiency:.0%})"),
        ]))
    m = plan.model
    rows = [
        ("tokenizer", plan.tokenizer_source),
        ("steps", f"{_num(plan.steps_per_epoch, '{:,}')} per epoch, {_num(plan.total_steps, '{:,}')} in total "
                  f"({_num(plan.epochs)} epochs)"),
        ("per step", f"{plan.sequences_per_step} rows ({plan.per_device_train_batch_size} x "
                     f"{plan.gradient_accumulation_steps} accumulation x {plan.world_size} process(es)); "
                     f"{_num(plan.tokens_per_step, '{:,.0f}')} tokens on average, at most "
                     f"{plan.max_tokens_per_step:,}"),
        ("model", f"{m.name}: {m.architecture or '?'} ({_num(m.parameters, '{:,}')} parameters), config from "
                  f"{m.config_source}"),
        ("LoRA", f"{', '.join(m.target_modules) or '-'}; {_num(m.lora_parameters, '{:,}')} trainable"),
    ]
    if plan.memory is not None:
        mem = plan.memory
        rows.append(("GPU memory", f"about {mem.total:.2f} GiB of {mem.gpu_memory:g} "
                                   f"({'fits' if mem.fits else 'does NOT fit'}): 4-bit weights {mem.weights_4bit:.2f}, "
                                   f"other weights {mem.weights_other:.2f}, LoRA + optimiser + gradients "
                                   f"{mem.lora_and_saved_modules + mem.optimizer + mem.gradients:.2f}, activations "
                                   f"{mem.activations_with_checkpointing:.2f} with checkpointing / "
                                   f"{mem.activations_without_checkpointing:.2f} without, logits {mem.logits:.2f}"))
    out.print(kv_table(rows, "plan"))
    for n in plan.notes:
        err.print(f"[dim]note: {escape(n)}[/]")
    for w in plan.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")


def _num(v: float | int | None, fmt: str = "{:,.4g}") -> str:
    return "-" if v is None else fmt.format(v)


def render_run(info: RunInfo, output: Path) -> None:
    rows = [
        ("dataset", f"{info.dataset} ({info.dataset_hash[:12]})"),
        ("recipe / base", f"{info.recipe} / {info.base_model}"),
        ("device", f"{info.device} x{info.world_size}, attention {info.attn_implementation}, "
                   f"{info.quantized_layers} Linear4bit layers"),
        ("LoRA", f"{', '.join(info.target_modules)}; {_num(info.trainable_params, '{:,}')} trainable of "
                 f"{_num(info.total_params, '{:,}')}"),
        ("steps", _num(info.global_steps, "{:,}")),
        ("train loss", f"{_num(info.first_train_loss)} -> {_num(info.final_train_loss)}"),
        ("eval loss", _num(info.final_eval_loss)),
        ("tokens/s", _num(info.tokens_per_s, "{:,.0f}")),
        ("peak memory", f"{_num(info.peak_memory_mib, '{:,.0f}')} MiB ({info.peak_memory_kind})"),
        ("wall time", f"{_num(info.wall_time_s, '{:,.1f}')} s"),
    ]
    for r in info.length_reports:
        rows.append((f"lengths ({r['split']})", f"{r['kept']}/{r['examples']} kept, {r['over_max_length']} over "
                     f"{r['max_length']}: {r['truncated_prompt']} prompt-truncated, "
                     f"{r['dropped_policy'] + r['dropped_response_too_long']} dropped"))
    rows.append(("adapter", str(output / info.run_id / "adapter")))
    out.print(kv_table(rows, f"run {info.run_id}"))


@handle_errors
def runs_command(output: OutputOpt = Path("runs"), json_out: JsonOpt = False) -> None:
    """List fine-tuning runs: dataset version, status, losses, speed, newest first."""
    from swcdata.finetune.runs import list_runs, steps_done

    runs = list_runs(output)
    if json_out:
        print_json([{**r.model_dump(mode="json", exclude={"length_reports"}),
                     "steps_done": steps_done(output / r.run_id, r)} for r in runs])
        return
    if not runs:
        err.print(f"no runs in {output}")
        return
    t = Table(title=f"runs in {output}", title_justify="left")
    for col, just in (("run id", "left"), ("status", "left"), ("recipe", "left"), ("dataset", "left"),
                      ("hash", "left"), ("steps", "right"), ("train loss", "right"), ("eval loss", "right"),
                      ("tokens/s", "right"), ("wall s", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in runs:
        colour = {"completed": "green", "failed": "red"}.get(r.status, "yellow")
        t.add_row(escape(r.run_id), f"[{colour}]{r.status}[/]", escape(r.recipe), escape(r.dataset),
                  r.dataset_hash[:12], _num(steps_done(output / r.run_id, r), "{:,}"),
                  f"{_num(r.first_train_loss)} -> {_num(r.final_train_loss)}",
                  _num(r.final_eval_loss), _num(r.tokens_per_s, "{:,.0f}"), _num(r.wall_time_s, "{:,.1f}"))
    out.print(t)


@handle_errors
def recipes_command(json_out: JsonOpt = False) -> None:
    """List the fine-tuning recipes `--recipe NAME` finds: ./finetune/*.yaml, then those shipped with swcdata.

    One line each: name, base model, description, and where it was found (a name in ./finetune/
    hides a packaged recipe of the same name). A recipe that does not validate is listed with its error.
    """
    from swcdata.finetune.recipe import list_recipes

    recipes = list_recipes()
    if json_out:
        print_json([r.model_dump(mode="json") for r in recipes])
        return
    if not recipes:
        err.print("no recipes found")
        return
    t = Table(title="recipes", title_justify="left")
    for col in ("name", "base model", "description", "source"):
        t.add_column(col)
    for r in recipes:
        if r.error is None:
            t.add_row(escape(r.name), escape(r.base_model or "-"), escape(r.description), r.source)
        else:
            t.add_row(escape(r.name), "[red]invalid[/]", f"[red]{escape(r.error)}[/]", f"{r.source} ({escape(r.path)})")
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command(name="finetune")(finetune_command)
    app.command(name="runs")(runs_command)
    app.command(name="recipes")(recipes_command)
