"""The `swcdata` command line. Thin: parse arguments, call the step, render its report.

Exit codes: 0 = clean, 1 = data problems found, 2 = usage or configuration error.
Heavy libraries (pyarrow, datasets, torch) are imported inside the commands that need them, so
`swcdata --help` starts fast and the data commands never import torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from swcdata import __version__
from swcdata.console import JsonOpt, PathsArg, ReportOpt, WorkersOpt, err, handle_errors, out, print_json

app = typer.Typer(
    name="swcdata",
    help="Trustworthy, versioned instruction data about Solidity vulnerabilities (SWC classes): "
    "validate, deduplicate, split, augment, publish and fine-tune.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"swcdata {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """swcdata: clean, leak-free, versioned SWC instruction data, and QLoRA fine-tuning on it."""


@app.command()
@handle_errors
def validate(
    paths: PathsArg,
    report: ReportOpt = None,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", help="Write every rejected line verbatim, with its reasons, to this JSONL file."),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Write the valid records (with id and source) to this JSONL file."),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too, not only on errors.")] = False,
    no_code: Annotated[
        bool, typer.Option("--no-code", help="Schema checks only: skip extracting and parsing Solidity code.")
    ] = False,
    workers: WorkersOpt = 0,
    max_findings: Annotated[
        int, typer.Option("--max-findings", min=0, help="Findings listed per rule in the report (all are counted).")
    ] = 1000,
    json_out: JsonOpt = False,
) -> None:
    """Check JSONL records and name every problem: file, line, field, rule.

    Errors (invalid UTF-8 or JSON, not an object, a missing/empty/mistyped field, a bad category)
    quarantine the line; warnings (no code, code that does not parse, a no-op fix, a category the
    text contradicts, duplicate keys, outlier length) keep it. Exit 0 when clean, 1 when errors
    were found (or warnings with --strict), 2 on a usage error.
    """
    import orjson
    import pyarrow as pa

    from swcdata.console import progress_bar, show_progress
    from swcdata.io import resolve_inputs
    from swcdata.render import render_validation
    from swcdata.validate import Quarantined, ValidateConfig, Validation

    cfg = ValidateConfig(check_code=not no_code, workers=workers, max_findings_per_rule=max_findings)
    files = resolve_inputs(paths)
    total = sum(p.stat().st_size for p in files)
    qf = _open_out(quarantine)
    of = _open_out(out_path)
    try:
        def on_q(items: list[Quarantined]) -> None:
            if qf:
                for q in items:
                    qf.write(orjson.dumps(q.to_json()) + b"\n")

        def on_batch(batch: pa.RecordBatch) -> None:
            if of:
                from swcdata.records import row_to_json

                for r in batch.to_pylist():
                    of.write(orjson.dumps(row_to_json(r)) + b"\n")

        with progress_bar("validate", total, enabled=show_progress(json_out)) as advance:
            last = [0]

            def progress(_lines: int, bytes_done: int) -> None:
                advance(bytes_done - last[0])
                last[0] = bytes_done

            rep = Validation(cfg).run([str(p) for p in files], on_batch=on_batch, on_quarantine=on_q,
                                      progress=progress)
    finally:
        for f in (qf, of):
            if f:
                f.close()
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(rep.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if json_out:
        print_json(rep.model_dump(mode="json"))
    else:
        render_validation(rep, out)
        for label, p in (("report", report), ("quarantine", quarantine), ("valid records", out_path)):
            if p:
                err.print(f"[dim]{label} written to {p}[/]")
    failed = rep.errors > 0 or (strict and rep.warnings > 0)
    raise typer.Exit(1 if failed else 0)


def _open_out(path: Path | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    from swcdata.errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from e


@app.command()
@handle_errors
def schema(
    name: Annotated[str | None, typer.Argument(help="Schema to print (default: list them).")] = None,
    write: Annotated[Path | None, typer.Option("--write", help="Write every schema file into this folder.")] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Exit 1 if the schema files in this folder drifted from the models.")
    ] = None,
) -> None:
    """Print the JSON Schemas of records, reports and manifests (generated from the pydantic models)."""
    from swcdata import jsonschema
    from swcdata.errors import InputError

    if write:
        for p in jsonschema.write_all(write):
            err.print(f"wrote {p}")
        return
    if check:
        bad = jsonschema.drifted(check)
        if bad:
            err.print(f"[red]schemas drifted from the models:[/] {', '.join(bad)} "
                      f"(run: swcdata schema --write {check})")
            raise typer.Exit(1)
        err.print("[green]schemas match the models[/]")
        return
    if name is None:
        for n in jsonschema.names():
            out.print(n)
        return
    if name not in jsonschema.names():
        raise InputError(f"unknown schema {name!r}", hint="choose one of: " + ", ".join(jsonschema.names()))
    sys.stdout.write(jsonschema.render(name))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
