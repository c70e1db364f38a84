"""Training commands: `finetune` (QLoRA on a dataset version), `runs` (list fine-tuning runs) and
`recipes` (list the recipes `--recipe NAME` finds).

Registered by `swcdata.cli`. Nothing heavy at module level: torch, transformers, peft and trl are
imported inside the command bodies (through `swcdata.finetune`), so `swcdata --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from swcdata.console import JsonOpt, err, handle_errors, kv_table, out, print_json

DEFAULT_RECIPE = "tiny-cpu"  # (= swcdata.finetune.recipe.DEFAULT_RECIPE, not imported here: --help stays light)

if TYPE_CHECKING:
    from swcdata.finetune.runs import RunInfo

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Folder that holds the runs.")]


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


@handle_errors
def finetune_command(
    dataset: Annotated[str, typer.Argument(help="Dataset version NAME@vN (also name@latest, name@<hash>), or a "
                                           "folder holding a saved DatasetDict or <split>.jsonl files.",
                                           show_default=False)],
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Recipe YAML, or a recipe name: one in "
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
    home: Annotated[Path | None, typer.Option("--home", help="Registry folder (default: $SWCDATA_HOME, else "
                                              "./registry).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune a model on a dataset version with QLoRA and write runs/<run-id>/.

    Renders each record through the model's chat template (or the Instruction/Response format),
    trains on the response tokens only, packs examples without cross-attention, loads the base
    model in 4-bit NF4, attaches LoRA to every attention/MLP linear layer, and records the adapter,
    resolved recipe, dataset version + hash, metrics and environment. The recipe is checked in full
    before anything is loaded (exit 2 on any problem). Runs under `accelerate launch` for DDP.
    """
    from swcdata.errors import require_extra
    from swcdata.finetune.recipe import TRAIN_MODULES, load_recipe

    rec = load_recipe(recipe, overrides or [])  # every recipe problem at once, before data or model
    require_extra("train", TRAIN_MODULES, "fine-tuning")
    from swcdata.finetune.source import load_dataset
    from swcdata.finetune.train import finetune

    dd, ref = load_dataset(dataset, home)
    if resume:
        from swcdata.finetune.train import resume_recipe

        rec, run_id = resume_recipe(output, ref, rec, run_id, overrides or [])
    main = _is_main_process()

    def log(message: str) -> None:
        if main and not json_out:
            err.print(f"[dim]{escape(message)}[/]")

    # (SIGTERM stops the run like Ctrl-C, marking it failed: see console.handle_errors)
    info = finetune(dd, ref, rec, output, run_id=run_id, resume=resume,
                    progress=None if not json_out else False, log=log)
    if not main:
        return
    if json_out:
        print_json(info)
    else:
        render_run(info, output)


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
    from swcdata.finetune.runs import list_runs

    runs = list_runs(output)
    if json_out:
        print_json([r.model_dump(mode="json", exclude={"length_reports"}) for r in runs])
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
                  r.dataset_hash[:12], _num(r.global_steps, "{:,}"),
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
