"""JSON Schema files generated from the pydantic models (the contract written down in `schemas/`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.markup import escape

from swcdata.cli.console import err, handle_errors, out

# name -> (module, model): imported only when asked for, so `swcdata schema` stays cheap.
MODELS: dict[str, tuple[str, str]] = {
    "record": ("swcdata.core.schema", "Record"),
    "stored-record": ("swcdata.core.schema", "StoredRecord"),
    "validation-report": ("swcdata.core.schema", "ValidationReport"),
    "dedup-report": ("swcdata.steps.dedup", "DedupReport"),
    "audit-report": ("swcdata.steps.audit", "AuditReport"),
    "recipe": ("swcdata.finetune.recipe", "Recipe"),
    "manifest": ("swcdata.registry.manifest", "Manifest"),
    "verify-report": ("swcdata.registry.store", "VerifyReport"),
    "diff-report": ("swcdata.registry.diff", "DiffReport"),
    "push-report": ("swcdata.registry.hub", "PushReport"),
    "pull-report": ("swcdata.registry.hub", "PullReport"),
    "split-report": ("swcdata.steps.split", "SplitReport"),
    "build-config": ("swcdata.registry.build", "BuildConfig"),
    "eval-results": ("swcdata.evaluation.evaluate", "EvalResults"),
    "compare-report": ("swcdata.evaluation.compare", "CompareReport"),
    "stats-report": ("swcdata.evaluation.stats", "StatsReport"),
    "augment-report": ("swcdata.steps.augment.step", "AugmentReport"),
    "build-result": ("swcdata.registry.build", "BuildResult"),
    "run-info": ("swcdata.finetune.runs", "RunInfo"),
    "run-plan": ("swcdata.finetune.plan", "RunPlan"),
}


def _model(name: str) -> type[BaseModel]:
    import importlib

    module, attr = MODELS[name]
    model: type[BaseModel] = getattr(importlib.import_module(module), attr)
    return model


def names() -> list[str]:
    return list(MODELS)


def generate(name: str) -> dict[str, Any]:
    model = _model(name)
    out = model.model_json_schema(mode="serialization")
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"swcdata/{name}.schema.json", **out}
    return out


def render(name: str) -> str:
    return json.dumps(generate(name), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_all(directory: Path) -> list[Path]:
    from swcdata.core.io import make_dir

    make_dir(directory)
    written = []
    for n in names():
        p = directory / f"{n}.schema.json"
        p.write_text(render(n), encoding="utf-8")
        written.append(p)
    return written


def drifted(directory: Path) -> list[str]:
    """Names whose file in `directory` is missing or differs from the models."""
    bad = []
    for n in names():
        p = directory / f"{n}.schema.json"
        if not p.exists() or p.read_text(encoding="utf-8") != render(n):
            bad.append(n)
    return bad


@handle_errors
def schema(
    name: Annotated[str | None, typer.Argument(help="Schema to print (default: list them).")] = None,
    write: Annotated[Path | None, typer.Option("--write", help="Write every schema file into this folder.")] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Exit 1 if the schema files in this folder drifted from the models.")
    ] = None,
) -> None:
    """Print the JSON Schemas of records, reports and manifests (generated from the pydantic models)."""
    from swcdata.core.errors import InputError

    if name is not None and name not in names():
        raise InputError(f"unknown schema {name!r}", hint="choose one of: " + ", ".join(names()))
    if name is not None and (write or check):
        raise InputError("--write and --check work on every schema: give no NAME with them")
    if write:
        for p in write_all(write):
            err.print(f"wrote {escape(str(p))}")
        return
    if check:
        if not check.is_dir():
            raise InputError(f"--check {check}: no such folder")
        bad = drifted(check)
        if bad:
            err.print(f"[red]schemas drifted from the models:[/] {', '.join(bad)} "
                      f"(run: swcdata schema --write {check})")
            raise typer.Exit(1)
        err.print("[green]schemas match the models[/]")
        return
    if name is None:
        for n in names():
            out.print(n)
        return
    sys.stdout.write(render(name))



def register(app: typer.Typer) -> None:
    app.command()(schema)
