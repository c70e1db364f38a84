"""`swcdata split`: leak-free stratified splits (registered by `swcdata.cli.main`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from swcdata.cli.console import (
    EngineOpt,
    JsonOpt,
    PathsArg,
    RayAddressOpt,
    ReportOpt,
    SeedOpt,
    err,
    handle_errors,
    out,
    print_json,
    write_report,
)


def parse_ratios(text: str) -> tuple[float, float, float]:
    from swcdata.core.errors import ConfigError

    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError([f"--ratios: expected three numbers like 0.8,0.1,0.1, got {text!r}"]) from None
    if len(parts) != 3:
        raise ConfigError([f"--ratios: expected three numbers (train,validation,test), got {len(parts)}"])
    return parts  # type: ignore[return-value]


@handle_errors
def split_command(
    paths: PathsArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for train.jsonl, validation.jsonl, test.jsonl.")],
    ratios: Annotated[str, typer.Option("--ratios", help="train,validation,test shares (sum 1).")] = "0.8,0.1,0.1",
    seed: SeedOpt = 0,
    stratify: Annotated[str, typer.Option("--stratify", help="category | none.")] = "category",
    holdout: Annotated[
        list[str] | None,
        typer.Option("--holdout", help="An existing test set (repeatable): it becomes the test split, and every "
                     "record that exactly or nearly duplicates it is removed from train and validation."),
    ] = None,
    group_threshold: Annotated[
        float | None, typer.Option("--group-threshold", min=0.0, max=1.0,
                                   help="Similarity at which records share a group (default 0.6).")
    ] = None,
    report: ReportOpt = None,
    json_out: JsonOpt = False,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Split records into train / validation / test with no near duplicate across splits.

    Exact and near-duplicate clusters are groups that never cross a split; categories are
    balanced per split; the same seed gives the same split. With --holdout, the holdout set is the
    test split and train/validation are decontaminated against it. --engine ray runs the split on a Ray
    cluster with the same result.
    """
    from contextlib import ExitStack

    from pydantic import ValidationError

    from swcdata.cli.console import show_progress, signing_progress, status
    from swcdata.cli.inputs import load_records, load_records_on_ray, ray_jsonl_writer
    from swcdata.cli.render import render_split
    from swcdata.core.errors import ConfigError
    from swcdata.engine import choose
    from swcdata.steps.split import SplitConfig
    from swcdata.steps.split import split as run_split
    from swcdata.steps.split_dir import write_split_dir, write_split_files

    values: dict[str, object] = {"ratios": parse_ratios(ratios), "seed": seed, "stratify": stratify}
    if group_threshold is not None:
        values["group_threshold"] = group_threshold
    try:
        cfg = SplitConfig(**values)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigError.from_validation(e) from None
    outputs = [("--out", out_dir / f"{name}.jsonl") for name in ("train", "validation", "test")]
    outputs.append(("--report", report))
    if choose(engine) == "ray":
        from swcdata.engine.split import split_on_ray

        with ExitStack() as stack:
            valid = load_records_on_ray(stack, paths, ray_address, json_out=json_out, outputs=outputs)
            hold, hold_ledger = _holdout(holdout, json_out, outputs)
            with status("splitting on Ray", json_out):
                result = split_on_ray(valid.records, cfg, hold)
            rep = result.report.model_copy(update={"input": valid.report.ledger, "holdout_input": hold_ledger})
            written = write_split_files({name: ray_jsonl_writer(ds) for name, ds in result.splits.items()}, out_dir)
    else:
        table, vrep, _ = load_records(paths, json_out=json_out, outputs=outputs)
        hold, hold_ledger = _holdout(holdout, json_out, outputs)
        with signing_progress(show_progress(json_out)) as progress:
            splits, rep = run_split(table, cfg, hold, progress=progress)
        rep = rep.model_copy(update={"input": vrep.ledger, "holdout_input": hold_ledger})
        written = write_split_dir(splits, out_dir)
    if report:
        write_report(report, rep)
    if json_out:
        print_json(rep)
    else:
        render_split(rep, out)
        err.print(f"[dim]splits written to {escape(', '.join(str(p) for p in written.values()))}[/]")
    if rep.sizes.get("train", 0) == 0:
        err.print("[yellow]warning:[/] the train split is empty" + (
            " (every record duplicates the holdout set)" if rep.records and len(rep.decontaminated) == rep.records
            else ""))


def _holdout(paths: list[str] | None, json_out: bool, outputs: list[tuple[str, Path | None]]):  # type: ignore[no-untyped-def]
    """The --holdout records (a table: the small side, on this machine) and how they were read, or None, None."""
    from swcdata.cli.inputs import load_records
    from swcdata.core.errors import DataError

    if not paths:
        return None, None
    hold, hrep, _ = load_records(paths, json_out=json_out, label="holdout", outputs=outputs)
    if hold.num_rows == 0:
        raise DataError(f"the holdout set holds no valid records ({hrep.ledger.quarantined:,} line(s) set aside): "
                        "the test split would be empty", hint="swcdata validate names each problem")
    return hold, hrep.ledger


def register(app: typer.Typer) -> None:
    app.command(name="split")(split_command)
