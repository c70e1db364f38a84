"""`swcdata augment`: the command line of the augment step (registered by `swcdata.cli.main`).

Imports nothing heavy at module level: pyarrow, tree-sitter and the step itself are imported inside
the command, so `swcdata --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from swcdata.cli.console import (
    EngineOpt,
    JsonOpt,
    RayAddressOpt,
    ReportOpt,
    SeedOpt,
    err,
    handle_errors,
    out,
    print_json,
    route_stdout,
    write_report,
)

if TYPE_CHECKING:
    from rich.console import Console

    from swcdata.steps.augment.quality import AugmentQuality
    from swcdata.steps.augment.step import AugmentConfig, AugmentReport


def _split_list(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _config(factor: int, seed: int, transforms: str, templates: bool, splits: str, allow_eval: bool,
            fmt: str, skip_findings: str = "noop-fix") -> AugmentConfig:
    """Build the config, listing every problem at once (exit 2) before any data is read."""
    from pydantic import ValidationError

    from swcdata.core.errors import ConfigError
    from swcdata.registry.formats import FORMATS
    from swcdata.steps.augment.step import AugmentConfig

    problems: list[str] = []
    if fmt not in FORMATS:
        problems.append(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    try:
        cfg = AugmentConfig(factor=factor, seed=seed, transforms=_split_list(transforms), templates=templates,
                            splits=_split_list(splits), allow_eval_splits=allow_eval,
                            skip_findings=_split_list(skip_findings))
    except ValidationError as e:
        from swcdata.core.errors import plain_message, validation_problems

        raise ConfigError(problems + validation_problems(e, whole="config", message=plain_message)) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def _render(rep: AugmentReport, console: Console, out_dir: Path, fmt: str) -> None:
    from rich.table import Table

    t = Table(title="Augment ledger", title_justify="left")
    for col in ("split", "in", "augmented", "added", "skipped", "no effect", "duplicates", "not augmented", "out"):
        t.add_column(col, justify="left" if col in ("split", "augmented") else "right")
    for name, s in rep.splits.items():
        # (not augmented: records whose code is too large to parse or crashed the parser; the warnings name them)
        t.add_row(name, f"{s.records_in:,}", "[bold]yes[/]" if s.augmented else "no", *(f"{n:,}" for n in (
            s.variants_added, s.parse_failed, s.no_effect, s.duplicates_dropped, s.too_large + s.parser_crashed,
            s.records_out)))
    console.print(t)
    console.print()
    tt = Table(title="Transforms", title_justify="left")
    for col in ("transform", "variants", "parse failed", "code lost", "no change"):
        tt.add_column(col, justify="left" if col == "transform" else "right")
    for name, n in rep.variants_by_transform.items():
        tt.add_row(name, f"{n:,}", *(f"{d.get(name, 0):,}" if name in d else "-" for d in
                                     (rep.skipped_parse_failures, rep.skipped_code_lost, rep.no_change)))
    console.print(tt)
    console.print()
    ft = Table(title="Template families", title_justify="left")
    ft.add_column("family")
    ft.add_column("variants", justify="right")
    for fam, n in rep.variants_by_family.items():
        ft.add_row(fam, f"{n:,}")
    console.print(ft)
    console.print()
    render_quality(rep.quality, console)
    if rep.skipped_by_finding:
        console.print("not augmented (skip_findings): " + ", ".join(f"{r} {n:,}" for r, n in
                                                                   rep.skipped_by_finding.items()))
    added = sum(s.variants_added for s in rep.splits.values())
    total = sum(s.records_out for s in rep.splits.values())
    status = "[green]adds up[/]" if rep.adds_up else "[bold red]does NOT add up[/]"
    console.print(f"{added:,} variant(s) added, {rep.duplicates_dropped:,} duplicate(s) dropped; {total:,} records "
                  f"written to {escape(str(out_dir))} as {fmt} ({rep.seconds:.2f} s, ledger {status})")


def render_quality(q: AugmentQuality, console: Console, samples: bool = True) -> None:
    """The augmentation quality report: template shares against their fair share, the checks, and the
    before/after pairs (shared with `swcdata stats`)."""
    from rich.table import Table

    from swcdata.steps.augment import templates

    if not q.variants:
        return
    t = Table(title=f"Templates ({q.templated:,} of {q.variants:,} variants rewritten)", title_justify="left")
    for col in ("template", "share", "x fair share"):
        t.add_column(col, justify="left" if col == "template" else "right")
    fam_share: dict[str, float] = {}
    for name, share in q.template_shares.items():
        fam_share[name.split("/")[0]] = fam_share.get(name.split("/")[0], 0.0) + share
    for name, share in sorted(q.template_shares.items()):
        fam = name.split("/")[0]
        fair = fam_share[fam] / len(templates.TEMPLATES[fam]) if fam in templates.TEMPLATES else 0.0
        t.add_row(escape(name), f"{share:.1%}", f"{share / fair:.2f}" if fair else "-")
    console.print(t)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    console.print(
        f"header-only variants: {q.header_only:,} ({pct(q.header_only_share)}); most used template: "
        f"{escape(str(q.max_template))} at {q.max_template_over_fair:.2f}x its fair share\n"
        f"code that parses: {pct(q.parse_rate_before)} before, {pct(q.parse_rate_after)} after\n"
        f"renamed identifiers: {q.renames:,}; with a declared type: {q.renames_typed:,}, of which "
        f"{pct(q.type_pool_match_rate)} got a name of that type"
        + (f"; [bold red]bool renamed off type: {escape(', '.join(q.bool_renamed_off_type[:5]))}[/]"
           if q.bool_renamed_off_type else ""))
    if samples:
        for k, smp in enumerate(q.samples, 1):
            console.print(f"\n[bold]sample {k}[/] ({escape(smp.transform or 'none')}, "
                          f"{escape(smp.template or 'own wording')}): before")
            console.print(escape(smp.instruction_before), soft_wrap=True)
            console.print("[bold]after[/]")
            console.print(escape(smp.instruction_after), soft_wrap=True)
    console.print()


@handle_errors
def augment_command(
    split_dir: Annotated[Path, typer.Argument(help="Split directory of <split>.jsonl files (the --out of "
                                                   "`swcdata split`).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Write every split here: the augmented ones and the "
                                                        "untouched ones, as <split>.jsonl.", show_default=False)],
    factor: Annotated[int, typer.Option("--factor", help="Variants made per record; the originals are kept too, so "
                                                         "a split grows to about (1 + factor) times its size.")] = 3,
    seed: SeedOpt = 0,
    transforms: Annotated[str, typer.Option("--transforms", help="Comma-separated code transforms: rename "
                                                                 "(identifiers), layout, comments.")]
        = "rename,layout,comments",
    no_templates: Annotated[bool, typer.Option("--no-templates", help="Keep the instructions' wording; only "
                                                                      "transform the code.")] = False,
    splits: Annotated[str, typer.Option("--splits", help="Comma-separated splits to augment.")] = "train",
    allow_eval_splits: Annotated[bool, typer.Option("--allow-eval-splits", help="Allow augmenting validation/test "
                                                    "splits (their scores then stop measuring generalisation).")]
        = False,
    skip_findings: Annotated[str, typer.Option("--skip-findings", help="Comma-separated validate warning rules "
                                               "whose records are kept but not augmented ('' for none).")]
        = "noop-fix",
    fmt: Annotated[str, typer.Option("--format", help="Output format: records (ids + lineage), seed "
                                                      "(Instruction:/Response: text), alpaca, chat.")] = "records",
    report: ReportOpt = None,
    json_out: JsonOpt = False,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Grow the train split with variants: new wording, same code, same answer.

    Each record gets --factor variants. A variant renames the contract's own
    identifiers to names of the same type and role (the same way in
    instruction and response; names the prose describes are kept),
    re-lays-out the code or toggles NatSpec comments written from what the
    code does, and rewrites the request with a template of its task family
    (find, review, explain and fix, classify, rewrite), keeping the focus
    and details it names. Records with a --skip-findings warning (default:
    noop-fix) are kept but not augmented. The report ends with a quality
    summary: template shares, header-only variants, parse rates, renames by
    type, and five before/after pairs.
    Transformed code is parsed again with tree-sitter: a record whose code
    would stop parsing is skipped for that transform, and counted. A record
    with a code span over 100,000 characters, or whose code crashes the
    parser, is kept as it is and named in a warning. Every
    variant carries parent_id, transform and template; a variant that
    duplicates any record of any split is dropped. Only train is augmented
    unless --splits and --allow-eval-splits say otherwise. --engine ray
    makes the variants on a Ray cluster, with the same result.
    """
    from contextlib import ExitStack

    from swcdata.cli.console import status
    from swcdata.core.errors import ConfigError, InputError
    from swcdata.core.io import check_outputs
    from swcdata.engine import choose
    from swcdata.registry.formats import write_split_dir as write_format_dir
    from swcdata.steps.augment.step import augment
    from swcdata.steps.split_dir import read_split_dir, write_split_dir, write_split_files

    cfg = _config(factor, seed, transforms, not no_templates, splits, allow_eval_splits, fmt, skip_findings)
    if out_dir.resolve() == split_dir.resolve():
        raise InputError(f"--out {out_dir} is the input split directory", hint="write the augmented splits to a "
                         "new folder, so the input stays as it is")
    with ExitStack() as stack:
        on_ray = choose(engine) == "ray"
        if on_ray:
            from swcdata.cli.inputs import ray_jsonl_writer, read_split_dir_on_ray
            from swcdata.engine.session import ray_session

            stack.enter_context(ray_session(ray_address))
            tables = read_split_dir_on_ray(split_dir)
        else:
            tables = read_split_dir(split_dir)  # type: ignore[assignment]
        missing = [s for s in cfg.splits if s not in tables]
        if missing:
            raise ConfigError([f"splits: no {s}.jsonl in {split_dir} (found: {', '.join(tables)})" for s in missing])
        # (by file, so that a link in --out to an input split is refused too)
        check_outputs([split_dir / f"{name}.jsonl" for name in tables],
                      [*(("--out", out_dir / f"{name}.jsonl") for name in tables), ("--report", report)])
        route_stdout([("--report", report)], json_out)
        if on_ray:
            from swcdata.engine.augment import augment_on_ray

            with status("augmenting on Ray", json_out):
                ray_result = augment_on_ray(tables, cfg)
            rep = ray_result.report
            write_split_files({name: ray_jsonl_writer(ds, fmt) for name, ds in ray_result.splits.items()}, out_dir)
        else:
            result, rep = augment(tables, cfg)  # type: ignore[arg-type]
            if fmt == "records":
                write_split_dir(result, out_dir)
            else:
                write_format_dir(result, out_dir, fmt)  # type: ignore[arg-type]
    if report:
        write_report(report, rep)
    for w in rep.warnings:
        err.print(f"[bold yellow]warning:[/] [yellow]{escape(w)}[/]")
    if json_out:
        print_json(rep)
    else:
        _render(rep, out, out_dir, fmt)
        if report:
            err.print(f"[dim]report written to {escape(str(report))}[/]")


def register(app: typer.Typer) -> None:
    app.command(name="augment")(augment_command)
