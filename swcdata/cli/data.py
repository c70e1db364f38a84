"""The data commands: `validate`, `dedup` and `audit` (thin: read, call the step, render its report)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from swcdata.cli.console import (
    EngineOpt,
    JsonOpt,
    PathsArg,
    RayAddressOpt,
    ReportOpt,
    WorkersOpt,
    err,
    handle_errors,
    out,
    print_json,
    route_stdout,
    status,
    write_report,
    write_report_to,
)
from swcdata.cli.inputs import bytes_progress, load_records, open_output, write_together
from swcdata.engine import choose

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Registry folder of the versions named "
                                              "(default: $SWCDATA_HOME, else ./registry).")]


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
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check JSONL records and name every problem: file, line, field, rule.

    Errors (invalid UTF-8 or JSON, not an object, a missing/empty/mistyped field, a bad category,
    metadata nested too deeply to store) quarantine the line; warnings (no code, code that does not
    parse, a no-op fix, a category the text contradicts, duplicate keys, outlier length, an id that
    does not match the content) keep it, as do notes on unknown fields (kept under metadata). Exit 0
    when clean, 1 when errors were found (or warnings with --strict), 2 on a usage error.
    """
    import pyarrow as pa

    from swcdata.cli.console import progress_bar, show_progress
    from swcdata.cli.render import render_validation
    from swcdata.core.io import check_outputs, resolve_inputs
    from swcdata.steps.validate import Quarantined, ValidateConfig, Validation

    cfg = ValidateConfig(check_code=not no_code, workers=workers, max_findings_per_rule=max_findings)
    files = resolve_inputs(paths)
    outputs = [("--out", out_path), ("--quarantine", quarantine), ("--report", report)]
    check_outputs(files, outputs)
    route_stdout(outputs, json_out)
    total = sum(p.stat().st_size for p in files)
    with ExitStack() as stack:
        qf = open_output(stack, quarantine)
        of = open_output(stack, out_path)

        def on_q(items: list[Quarantined]) -> None:
            if qf:
                qf.writelines(q.to_line() for q in items)

        def on_batch(batch: pa.RecordBatch) -> None:
            from swcdata.core.records import iter_json_lines

            assert of is not None
            of.writelines(iter_json_lines(batch))

        if choose(engine) == "ray":
            rep = _validate_on_ray(files, cfg, ray_address, on_q, on_batch if of else None, json_out)
        else:
            with progress_bar("validate", total, enabled=show_progress(json_out)) as advance:
                rep = Validation(cfg).run([str(p) for p in files], on_batch=on_batch if of else None,
                                          on_quarantine=on_q, progress=bytes_progress(advance))
    if report:
        write_report(report, rep)
    if json_out:
        print_json(rep)
    else:
        render_validation(rep, out)
        for label, p in (("report", report), ("quarantine", quarantine), ("valid records", out_path)):
            if p:
                err.print(f"[dim]{label} written to {escape(str(p))}[/]")
    failed = rep.errors > 0 or (strict and rep.warnings > 0)
    raise typer.Exit(1 if failed else 0)

def _validate_on_ray(files: list[Path], cfg: object, address: str | None, on_q: Callable[[list[Any]], None],
                     on_batch: Callable[[Any], None] | None, json_out: bool) -> Any:
    """`validate --engine ray`: the same report, quarantine and valid records (in input order) as the local engine;
    the records come back from the cluster a block at a time, written while the next blocks are checked."""
    from swcdata.engine.reading import ORDER, validate_on_ray
    from swcdata.engine.session import ray_session

    def on_records(block: Any) -> None:
        assert on_batch is not None
        for batch in block.drop_columns([ORDER]).to_batches():
            on_batch(batch)

    with ray_session(address), status(f"validating {len(files)} file(s) on Ray", json_out):
        run = validate_on_ray([str(p) for p in files], cfg, on_quarantine=on_q,  # type: ignore[arg-type]
                              on_records=on_records if on_batch is not None else None)
    return run.report


def _dedup_on_ray(stack: ExitStack, paths: list[str], cfg: Any, address: str | None,
                  outputs: list[tuple[str, Path | None]], json_out: bool, kept_with: str | None, reference: Any = None
                  ) -> tuple[Callable[[Any], None], list[Any], Any, dict[str, Callable[[Any], None]]]:
    """`dedup --engine ray`: validation and dedup on Ray Data (the Ray session stays open in `stack` until the kept
    records, read back a block at a time in input order, are written). (kept records' writer, quarantined lines,
    report, writers of the removed and clusters lists), as the local engine gives them: the lists stream from
    the cluster into their Parquet files, never whole on this machine. `reference`: a version to dedup against
    (`engine.against`)."""
    from swcdata.cli.inputs import load_records_on_ray, ray_jsonl_writer
    from swcdata.core.arrow import write_parquet_batches
    from swcdata.engine.dedup import dedup_on_ray
    from swcdata.steps.dedup import CLUSTERS_SCHEMA, REMOVED_SCHEMA

    valid = load_records_on_ray(stack, paths, address, json_out=json_out, outputs=outputs, kept_with=kept_with)
    with status("dedup on Ray", json_out):
        if reference is not None:
            from swcdata.engine.against import dedup_against_on_ray, merged_removed

            against = dedup_against_on_ray(valid.records, cfg, reference)
            result = against.dedup
        else:
            result = dedup_on_ray(valid.records, cfg)
    report = result.report.model_copy(update={"input": valid.report.ledger})
    lists = {"removed": _parquet_writer(result.removed, REMOVED_SCHEMA),
             "clusters": _parquet_writer(result.clusters, CLUSTERS_SCHEMA)}
    if reference is not None:
        lists["removed"] = lambda f: write_parquet_batches(REMOVED_SCHEMA, merged_removed(against), f)
    return ray_jsonl_writer(result.kept), valid.quarantined, report, lists


def _parquet_writer(ds: Any, schema: Any) -> Callable[[Any], None]:
    """A writer of a Ray Dataset's rows into one Parquet file, its blocks read back one at a time, in order."""
    from swcdata.core.arrow import write_parquet_batches

    return lambda f: write_parquet_batches(schema, ds.iter_batches(batch_format="pyarrow", batch_size=None), f)


ThresholdOpt = Annotated[float | None, typer.Option("--threshold", help="Near-duplicate Jaccard threshold, "
                                                    "0 < T <= 1 (default 0.7).", show_default=False)]
NumPermOpt = Annotated[int | None, typer.Option("--num-perm", min=16, max=1024, help="MinHash permutations (128).")]
NgramOpt = Annotated[int | None, typer.Option("--ngram", min=1, max=32, help="Tokens per shingle (5).")]


def _dedup_config(threshold: float | None, num_perm: int | None, ngram: int | None, **extra: object):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from swcdata.core.errors import ConfigError
    from swcdata.steps.dedup import DedupConfig

    values = {k: v for k, v in {"threshold": threshold, "num_perm": num_perm, "ngram": ngram, **extra}.items()
              if v is not None}
    try:
        return DedupConfig(**values)
    except ValidationError as e:
        raise ConfigError.from_validation(e) from None


def _lists_beside(report: Path | None) -> tuple[Path, Path] | tuple[None, None]:
    """The Parquet files of dedup's per-record lists beside its --report file: `NAME.removed.parquet` and
    `NAME.clusters.parquet`, NAME being the report's file name less `.json`. None, None where the report is no
    file in a folder (none, stdout, a device, a FIFO): the lists are then not written."""
    if report is None or report.as_posix() == "-" or report.as_posix().startswith(("/dev/", "/proc/")) or (
            report.exists() and not report.is_file()):
        return None, None
    stem = report.name[: -len(".json")] if report.name.lower().endswith(".json") and report.name != ".json" \
        else report.name
    return report.with_name(f"{stem}.removed.parquet"), report.with_name(f"{stem}.clusters.parquet")


def _dedup_lists(report: Path | None, removed: Path | None, clusters: Path | None):  # type: ignore[no-untyped-def]
    """The report's `lists`: where the per-record lists went (paths relative to the report's folder), in words too."""
    from swcdata.steps.dedup import NOT_WRITTEN, DedupLists

    if removed is not None and clusters is not None:
        return DedupLists(removed=removed.name, clusters=clusters.name,
                          note=f"The per-record lists are Parquet files beside the report (paths relative to its "
                               f"folder): the removed records in {removed.name}, the clusters in {clusters.name}.")
    if report is not None:
        return DedupLists(note=f"The per-record lists (removed records, clusters) were not written: the report goes "
                               f"to {report}, not to a file in a folder that could hold them beside it. "
                               "--report FILE writes them as Parquet beside FILE.")
    return DedupLists(note=NOT_WRITTEN)


@handle_errors
def dedup(
    paths: PathsArg,
    out_path: Annotated[Path, typer.Option("--out", help="Write the kept records (with id and source) here (JSONL).")],
    report: Annotated[Path | None, typer.Option(
        "--report", help="Also write the summary as JSON to this file, and the per-record lists as Parquet beside "
        "it: NAME.removed.parquet (every removed record and the kept record it duplicates) and "
        "NAME.clusters.parquet (every cluster), NAME being the file's name less .json.")] = None,
    quarantine: Annotated[
        Path | None, typer.Option("--quarantine", help="Write lines that fail the schema checks here (JSONL).")
    ] = None,
    threshold: ThresholdOpt = None,
    num_perm: NumPermOpt = None,
    ngram: NgramOpt = None,
    keep: Annotated[str, typer.Option("--keep", help="Which cluster member is kept: first | longest | none (none: "
                                      "every record of a cluster of more than one is removed).")] = "first",
    member_threshold: Annotated[float | None, typer.Option(
        "--member-threshold", help="A cluster member less like the kept record than this is split off into a "
        "cluster of its own (a cluster is a chain of near-duplicate pairs: this guards its far end). Default: the "
        "threshold minus 0.1; 0 keeps whole chains.", show_default=False)] = None,
    exact_only: Annotated[bool, typer.Option("--exact-only", help="Remove exact duplicates only.")] = False,
    no_abstract: Annotated[
        bool, typer.Option("--no-abstract", help="Keep code identifiers as they are (renamed copies then differ).")
    ] = False,
    against: Annotated[str | None, typer.Option(
        "--against", help="A published version (name@vN, name@latest): input records that duplicate one of its "
        "records (exactly or nearly) are removed too, duplicate_of naming the version's record (name@vN, id, "
        "source). Its records are read from the registry, its signatures from its signature index.",
        show_default=False)] = None,
    home: HomeOpt = None,
    workers: WorkersOpt = 0,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove exact and near duplicates (code-aware MinHash + LSH) and say which record each one copies.

    Exact duplicates share the normalised text of instruction + response; near duplicates are
    found on the extracted Solidity code (comments and layout removed, identifiers abstracted)
    and the prose around it. Every removed record names the kept record it duplicates.

    With --against name@vN, records that duplicate a record of that published version go too
    (checking a new batch, or a test set, against a version without reading its sources again).

    The report (--report, --json) is a summary: the ledger, counts, the largest clusters. The
    per-record lists go beside the --report file, in Parquet; without --report they are not written.
    """
    from swcdata.cli.console import show_progress, signing_progress
    from swcdata.cli.render import render_dedup
    from swcdata.core.arrow import write_parquet
    from swcdata.core.records import write_jsonl
    from swcdata.steps.dedup import dedup as run_dedup

    cfg = _dedup_config(threshold, num_perm, ngram, keep=keep, near=not exact_only, member_threshold=member_threshold,
                        abstract_identifiers=not no_abstract, workers=workers)
    removed_path, clusters_path = _lists_beside(report)
    outputs = [("--out", out_path), ("--quarantine", quarantine), ("--report", report), ("--report", removed_path),
               ("--report", clusters_path)]
    lists = _dedup_lists(report, removed_path, clusters_path)
    reference = None
    if against is not None:
        from swcdata.core.errors import InputError
        from swcdata.registry.reference import is_version_ref, version_reference
        from swcdata.registry.store import Registry

        if not is_version_ref(against):
            raise InputError(f"--against {against!r} is not a version", hint="name a published version: name@vN, "
                             "name@latest or name@<hash prefix> (`swcdata versions` lists them)")
        with status(f"reading {against}", json_out):
            reference = version_reference(Registry(home), against, cfg)
    with ExitStack() as stack:
        if choose(engine) == "ray":
            kept_writer, quarantined, rep, lists_writers = _dedup_on_ray(
                stack, paths, cfg, ray_address, outputs, json_out, None if quarantine else "--quarantine", reference)
        else:
            table, vrep, quarantined = load_records(paths, json_out=json_out,
                                                     kept_with=None if quarantine else "--quarantine", outputs=outputs)
            with signing_progress(show_progress(json_out)) as progress:
                if reference is not None:
                    from swcdata.steps.against import dedup_against

                    kept, rep = dedup_against(table, cfg, reference, progress=progress)
                else:
                    kept, rep = run_dedup(table, cfg, progress=progress)
            rep = rep.model_copy(update={"input": vrep.ledger})

            def kept_writer(f: Any) -> None:
                write_jsonl(kept, f)

            lists_writers = {"removed": lambda f: write_parquet(rep.removed_table, f),
                             "clusters": lambda f: write_parquet(rep.clusters_table, f)}
        rep = rep.model_copy(update={"lists": lists})
        # kept records, quarantine, report and its lists move in place together (or, on an interrupt, none does)
        write_together([(out_path, kept_writer),
                         (quarantine, lambda f: f.writelines(q.to_line() for q in quarantined)),
                         (report, lambda f: write_report_to(f, rep)),
                         (removed_path, lists_writers["removed"]), (clusters_path, lists_writers["clusters"])])
    if report is not None and removed_path is None:
        err.print(f"[yellow]note:[/] {escape(rep.lists.note)}")
    if json_out:
        print_json(rep)
    else:
        render_dedup(rep, out)
        err.print(f"[dim]kept records written to {escape(str(out_path))}[/]")
        if removed_path is not None:
            err.print(f"[dim]removed records and clusters written to {escape(str(removed_path))} and "
                      f"{escape(str(clusters_path))}[/]")


@handle_errors
def audit(
    reference: Annotated[list[str], typer.Option("--reference", "-r", help="Reference (training) JSONL: files, "
                                                 "directories or globs; or a published version (name@vN: all its "
                                                 "splits, read from the registry); several may follow the option.")],
    candidate: Annotated[list[str], typer.Option("--candidate", "-c", help="Candidate (test) JSONL to check; "
                                                 "several may follow the option.")],
    threshold: ThresholdOpt = None,
    num_perm: NumPermOpt = None,
    ngram: NgramOpt = None,
    overlap_n: Annotated[int, typer.Option("--overlap-n", min=4, max=64,
                                           help="Word n-gram length of the overlap rule (GPT-3: 13).")] = 13,
    ngram_leak: Annotated[bool, typer.Option("--ngram-leak", help="Count a shared n-gram as a leak too.")] = False,
    rules: Annotated[str, typer.Option("--rules", help="The matches that count as a leak, comma-separated: exact, "
                                       "near, code, ngram (default: the strict exact,near,code).")
                     ] = "exact,near,code",
    code_threshold: Annotated[float, typer.Option("--code-threshold", min=0.01, max=1.0, help="Estimated similarity "
                                                  "of two pieces of code at or above which they are near copies.")
                              ] = 0.8,
    code_min_tokens: Annotated[int, typer.Option("--code-min-tokens", min=8, help="Code of fewer tokens is not "
                                                 "matched at the code level.")] = 20,
    fail_on_leak: Annotated[bool, typer.Option("--fail-on-leak", help="Exit 1 if any candidate leaks, or if a "
                                               "candidate line could not be checked (it fails the schema checks), "
                                               "or if there are no candidates.")] = False,
    report: ReportOpt = None,
    json_out: JsonOpt = False,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Prove a test set is clean: match every candidate record against a reference set.

    Each candidate gets its exact or near match in the reference (with id and source), its code
    match (its Solidity code inside a reference record's, holding one, or a near copy, whatever the
    prose says; the same code under another category is listed as a label conflict) and its longest
    shared word n-gram (the 13-gram decontamination rule of GPT-3 and lm-evaluation-harness). The
    summary gives the contamination rate under --rules. --engine ray reads the reference on a
    Ray cluster and matches it there (the candidates stay on this machine), with the same report.
    """
    from swcdata.cli.console import show_progress, signing_progress
    from swcdata.cli.render import render_audit
    from swcdata.core.errors import ConfigError
    from swcdata.similarity.codematch import CodeMatchConfig
    from swcdata.steps.audit import AuditConfig
    from swcdata.steps.audit import audit as run_audit

    names = [r.strip() for r in rules.split(",") if r.strip()]
    wrong = [r for r in names if r not in ("exact", "near", "code", "ngram")]
    if wrong or not names:
        raise ConfigError([f"--rules: {', '.join(wrong) or '(empty)'}: expected a comma-separated list of exact, "
                           "near, code, ngram"])
    cfg = AuditConfig(near=_dedup_config(threshold, num_perm, ngram), overlap_n=overlap_n,
                      ngram_counts_as_leak=ngram_leak, leak_rules=names,  # type: ignore[arg-type]
                      code=CodeMatchConfig(threshold=code_threshold, min_tokens=code_min_tokens))
    from swcdata.registry.reference import is_version_ref

    versions = [r for r in reference if is_version_ref(r)]
    files = [r for r in reference if not is_version_ref(r)]
    names: list[str] = []  # (the versions' name@vN, in order)
    with ExitStack() as stack:
        ref_ledger = None
        if choose(engine) == "ray":
            from swcdata.cli.inputs import load_records_on_ray
            from swcdata.engine.audit import audit_on_ray

            ref_ds = None
            if files:
                ref_valid = load_records_on_ray(stack, files, ray_address, json_out=json_out, label="reference",
                                                outputs=[("--report", report)])
                ref_ds, ref_ledger = ref_valid.records, ref_valid.report.ledger
            if versions:  # (the versions' records read here, then numbered after the files' on the cluster)
                ref_ds = _with_versions(stack, ref_ds, versions, home, ray_address, json_out, names)
            cand_table, cand_v, _ = load_records(candidate, json_out=json_out, label="candidate",
                                                  outputs=[("--report", report)])
            with status("auditing on Ray", json_out):
                rep = audit_on_ray(ref_ds, cand_table, cfg)
        else:
            parts, known = [], None
            if files:
                ref_table, ref_v, _ = load_records(files, json_out=json_out, label="reference",
                                                    outputs=[("--report", report)])
                parts.append(ref_table)
                ref_ledger = ref_v.ledger
            if versions:
                known = _version_parts(versions, home, parts, json_out, names)
            ref_table = _concat(parts)
            cand_table, cand_v, _ = load_records(candidate, json_out=json_out, label="candidate",
                                                  outputs=[("--report", report)])
            with signing_progress(show_progress(json_out)) as progress:
                rep = run_audit(ref_table, cand_table, cfg, progress=progress, known=known)
    rep = rep.model_copy(update={"reference_input": ref_ledger, "candidate_input": cand_v.ledger,
                                 "reference_versions": names})
    if report:
        write_report(report, rep)
    if json_out:
        print_json(rep)
    else:
        render_audit(rep, out)
    if fail_on_leak:
        # A leak fails; so does a test set that was not wholly checked, which is not proven clean.
        if rep.unchecked:
            err.print(f"[red]not proven clean:[/] {rep.unchecked:,} candidate line(s) failed the schema checks and "
                      "were not matched (swcdata validate names each problem)")
        elif not rep.summary.candidate_records:
            err.print("[red]not proven clean:[/] no candidate records were read")
        if rep.summary.leaked or rep.unchecked or not rep.summary.candidate_records:
            raise typer.Exit(1)




def _version_parts(versions: list[str], home: Path | None, parts: list[Any], json_out: bool,
                   names: list[str]) -> Any:
    """The records of each version (verified, from the registry) appended to `parts`, its name@vN to `names`; the
    signature index of the last one that has one (its signatures are taken where its parameters are the audit's)."""
    from swcdata.registry.reference import version_records
    from swcdata.registry.store import Registry

    registry, known = Registry(home), None
    for v in versions:
        with status(f"reading {v}", json_out):
            table, m = version_records(registry, v)
            parts.append(table)
            names.append(m.ref)
            known = registry.signature_index(m) or known
    return known


def _with_versions(stack: ExitStack, files_ds: Any, versions: list[str], home: Path | None, address: str | None,
                   json_out: bool, names: list[str]) -> Any:
    """`audit --engine ray`: the reference as a Ray Dataset numbered in order (`_order`): the files' records (a
    Ray Dataset, or None), then the versions' records, read from the registry here."""
    from swcdata.core.records import RECORD_COLUMNS
    from swcdata.engine import require_ray
    from swcdata.engine.blocks import mapped
    from swcdata.engine.build import indexed
    from swcdata.engine.session import ray_session

    parts: list[Any] = []
    _version_parts(versions, home, parts, json_out, names)
    ray = stack.enter_context(ray_session(address)) if files_ds is None else require_ray()
    ds = ray.data.from_arrow(_concat(parts))
    if files_ds is not None:
        ds = mapped(files_ds, _record_columns, None, columns=list(RECORD_COLUMNS)).union(ds)
    return indexed(ray, ds)


def _record_columns(batch: Any, columns: list[str]) -> Any:
    return batch.select(columns)


def _concat(parts: list[Any]) -> Any:
    import pyarrow as pa

    from swcdata.core.records import RECORD_COLUMNS, RECORD_SCHEMA

    return pa.concat_tables([p.select(list(RECORD_COLUMNS)).cast(RECORD_SCHEMA) for p in parts]) if parts \
        else RECORD_SCHEMA.empty_table()


def register(app: typer.Typer) -> None:
    for command in (validate, dedup, audit):
        app.command()(command)
