"""Registry commands: versions, show, diff, verify, export, push, pull. Thin: resolve, call, render.

Nothing heavy is imported at module level: `swcdata --help` must not import datasets or pyarrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from swcdata.cli.console import JsonOpt, ReportOpt, err, handle_errors, kv_table, out, print_json, write_report

if TYPE_CHECKING:
    from swcdata.registry.diff import DiffReport
    from swcdata.registry.hub import PullReport, PushReport
    from swcdata.registry.manifest import Manifest
    from swcdata.registry.store import Registry, VerifyReport

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Registry folder (default: $SWCDATA_HOME, else "
                                               "./registry).", show_default=False)]
RefArg = Annotated[str, typer.Argument(help="A version: name@vN, name@latest, name, or name@<hash prefix>.",
                                       show_default=False)]


def _registry(home: Path | None) -> Registry:
    from swcdata.registry.store import Registry

    return Registry(home)


def _kv(title: str, d: Mapping[str, Any]) -> Table:
    from swcdata.registry.manifest import flatten

    return kv_table(((k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
                     for k, v in flatten(d).items()), title, justify="right")


def _counts_table(m: Manifest) -> Table:
    splits = list(m.counts)
    t = Table(title=f"{m.ref}: records by split and category", title_justify="left")
    t.add_column("category")
    for s in splits:
        t.add_column(s, justify="right")
    t.add_column("total", justify="right", style="bold")
    cats = sorted({c for sc in m.counts.values() for c in sc.by_category})
    for c in cats:
        per = [m.counts[s].by_category.get(c, 0) for s in splits]
        t.add_row(c, *(f"{n:,}" for n in per), f"{sum(per):,}")
    totals = [m.counts[s].records for s in splits]
    t.add_row("[bold]all[/]", *(f"[bold]{n:,}[/]" for n in totals), f"{sum(totals):,}", end_section=True)
    return t


def render_manifest(m: Manifest) -> None:
    out.print(Text(f"{m.ref} (content hash {m.content_hash[:12]})", style="bold"))
    out.print()
    if m.ledger:
        out.print(_kv("Ledger", m.ledger))
        out.print()
    out.print(_counts_table(m))
    out.print()
    out.print(kv_table([("version", m.ref), ("content hash", m.content_hash), ("parent", m.parent or "-"),
                        ("created", m.created_at), ("tool", f"swcdata {m.tool_version}"),
                        ("seed", "-" if m.seed is None else str(m.seed)),
                        ("license", "-" if m.license is None else m.license)], "Lineage"))
    out.print()
    if m.steps:
        import json

        t = Table(title="Steps", title_justify="left")
        t.add_column("#", justify="right")
        t.add_column("step", style="bold")
        t.add_column("config", overflow="fold")
        t.add_column("summary", overflow="fold")
        for i, s in enumerate(m.steps, 1):
            t.add_row(str(i), s.name, escape(json.dumps(s.config, sort_keys=True, default=str)),
                      escape(json.dumps(s.summary, sort_keys=True, default=str)) if s.summary else "")
        out.print(t)
        out.print()
    if m.inputs:
        t = Table(title="Inputs", title_justify="left")
        t.add_column("path", overflow="fold")
        t.add_column("role")
        t.add_column("bytes", justify="right")
        t.add_column("sha256", overflow="fold")
        for i in m.inputs:
            t.add_row(escape(i.path), i.role, f"{i.bytes:,}", i.sha256)
        out.print(t)
        out.print()
    if m.removed:
        # (counts here; each removed line, with its source and reason, is in the version's removed/<kind>.parquet,
        # or in `show --json` for a manifest that lists them inline: schema_version 1)
        out.print(_kv("Removed (records; listed in)", {k: _removed_cell(v) for k, v in m.removed.items()}))
        out.print()
    if m.index is not None:
        ix = m.index
        out.print(_kv("Signature index", {
            "file": ix.path, "records": f"{ix.records:,}",
            "reused": f"{ix.reused:,}" + (f" (from {ix.reused_from})" if ix.reused_from else ""),
            "signed": f"{ix.signed:,}", **({"note": ix.note} if ix.note else {}),
            "parameters": ", ".join(f"{k}={v}" for k, v in ix.params.items())}))
        out.print()


def _removed_cell(v: Any) -> Any:
    if isinstance(v, list):
        return f"{len(v):,} (manifest.json)"
    if isinstance(v, Mapping) and isinstance(v.get("records"), int):
        kinds = v.get("by_kind")
        by = (" = " + " + ".join(f"{n:,} {k}" for k, n in kinds.items())) if isinstance(kinds, Mapping) and \
            len(kinds) > 1 else ""
        return f"{v['records']:,}{by}" + (f" ({v['path']})" if v.get("path") else "")
    return v


def _print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)


def _with_sources(refs: Any, ids: list[str]) -> list[str]:
    """Each id with its input line (`diff --text`), from the records that list the same ids."""
    if len(refs) != len(ids):
        return ids
    return [f"{r.id}  ({r.source.file}:{r.source.line})" for r in refs]


def render_diff(rep: DiffReport, limit: int, show_text: bool = False) -> None:
    t = Table(title=f"{rep.a} -> {rep.b}", title_justify="left")
    for col in ("split", rep.a, rep.b, "unchanged", "moved in", "moved out", "added", "removed", "changed"):
        t.add_column(col, justify="left" if col == "split" else "right")
    for s in rep.splits:
        t.add_row(s.split, *(f"{n:,}" for n in (s.a_records, s.b_records, s.unchanged, s.moved_in, s.moved_out,
                                                 s.added, s.removed, s.changed)))
    t.caption = "unchanged: same id in both versions, in any split; moved in/out: of those, the ones in another split"
    out.print(t)
    out.print("[green]identical content[/]" if rep.identical else
              f"content hash {rep.a_hash[:12]} -> {rep.b_hash[:12]}")
    for s in rep.splits:
        added = _with_sources(s.added_records, s.added_ids) if show_text else s.added_ids
        removed = _with_sources(s.removed_records, s.removed_ids) if show_text else s.removed_ids
        rows: list[tuple[str, str]] = [("+", i) for i in added] + [("-", i) for i in removed]
        rows += [("~", f"{c.a_id} -> {c.b_id}  ({c.source.file}:{c.source.line}"
                       + (f", was in {c.a_split}" if c.a_split != c.b_split else "") + ")")
                 for c in s.changed_records]
        if not rows:
            continue
        styles = {"+": "green", "-": "red", "~": "yellow"}
        lt = kv_table((Text(mark, style=styles[mark]), text) for mark, text in rows[:limit])
        out.print()
        out.print(f"[italic]{s.split}[/] (first {min(limit, len(rows))} of {len(rows)}: + added, - removed, "
                  "~ changed)")
        out.print(lt)
        shown = [c for c in s.changed_records[:limit] if c.text]
        if shown:
            out.print()
            out.print(f"[italic]{s.split}[/]: what changed inside {len(shown)} changed record(s) "
                      "([-removed-] {+added+})")
        for c in shown:
            out.print(Text.assemble(("~ ", "yellow"), f"{c.a_id} -> {c.b_id}  ({c.source.file}:{c.source.line})"))
            for change in c.text or []:
                parts = [(seg.text, "") if seg.op == "=" else
                         (f"[-{seg.text}-]", "bold red") if seg.op == "-" else (f"{{+{seg.text}+}}", "bold green")
                         for seg in change.segments]
                out.print(Text.assemble(f"  {change.field}: ", *parts))
    if rep.moved:
        out.print()
        out.print(f"[yellow]{len(rep.moved)} record(s) moved between splits[/] (e.g. "
                  + ", ".join(f"{m.id} {m.a_split}->{m.b_split}" for m in rep.moved[:limit]) + ")")
    if rep.config_changes:
        ct = Table(title="Step config changes", title_justify="left")
        for col in ("step", "key", rep.a, rep.b):
            ct.add_column(col, overflow="fold")
        for c in rep.config_changes[:limit]:
            ct.add_row(c.step, c.key or "(whole step)", escape(str(c.a)), escape(str(c.b)))
        out.print()
        out.print(ct)


def render_verify(rep: VerifyReport) -> None:
    out.print(kv_table([("files checked", f"{rep.files_checked:,}"), ("files differing", f"{len(rep.files):,}"),
                        ("expected hash", rep.expected), ("actual hash", rep.actual or "-"),
                        ("status", Text.from_markup("[green]ok[/]" if rep.ok else "[bold red]TAMPERED[/]"))],
                       f"verify {rep.ref}"))
    for p in rep.problems:
        err.print(f"[red]problem:[/] {escape(p)}")
    for x in rep.extra_files:
        err.print(f"[yellow]warning:[/] unexpected file in the version folder: {escape(str(x))}")
    _print_warnings(rep.warnings)


def render_push(rep: PushReport) -> None:
    rows = [*((s, f"{n:,} records in {rep.shards.get(s, 1):,} shard{'s' if rep.shards.get(s, 1) != 1 else ''}")
              for s, n in rep.records.items()),
            ("content hash", rep.content_hash), ("staged", f"{rep.bytes:,} bytes"),
            ("content-defined chunking", "yes" if rep.content_defined_chunking else "no (pyarrow < 21)"),
            ("tag", rep.tag + (" (already there: this version was pushed before)" if rep.tag_existed else "")),
            ("private", "yes" if rep.private else "no")]
    if len(rep.commits) > 1:
        rows.append(("commits", ", ".join(c[:12] for c in rep.commits)))
    if rep.deleted:
        rows.append(("deleted", f"{len(rep.deleted):,} file(s) of an earlier version"))
    if rep.commit_oid:
        rows.append(("commit", rep.commit_oid))
    if rep.commit_url:
        rows.append(("commit url", rep.commit_url))
    out.print(kv_table(rows, ("dry run: would push " if rep.dry_run else "pushed ") + f"{rep.ref} -> {rep.repo_id}"))
    out.print()
    ft = Table(title="Files", title_justify="left")
    ft.add_column("path")
    ft.add_column("bytes", justify="right")
    ft.add_column("sha256", overflow="fold")
    for f in rep.files:
        ft.add_row(escape(f.path), f"{f.bytes:,}", f.sha256[:16])
    out.print(ft)
    out.print()
    ot = Table(title="Operations" + (" (not sent)" if rep.dry_run else ""), title_justify="left")
    ot.add_column("#", justify="right")
    ot.add_column("call", style="bold")
    ot.add_column("arguments", overflow="fold")
    for i, op in enumerate(rep.operations, 1):
        ot.add_row(str(i), op.method, escape(", ".join(f"{k}={_short(v)}" for k, v in op.kwargs.items())))
    out.print(ot)
    if rep.staging_dir:
        err.print(f"[dim]staging folder: {escape(str(rep.staging_dir))}[/]")


def _short(v: Any) -> str:
    if isinstance(v, list) and len(v) > 6:
        return f"[{', '.join(map(repr, v[:5]))}, ... ({len(v):,} in all)]"
    return repr(v)


def render_pull(rep: PullReport) -> None:
    status = Text.from_markup("[green]registered[/]" if rep.registered else "already in the registry (checked)")
    rows: list[tuple[str, str | Text]] = [
        ("version", rep.ref), ("content hash", rep.content_hash), ("commit", rep.commit), ("status", status),
        *((s, f"{n:,} records") for s, n in rep.records.items()), ("folder", rep.path)]
    if rep.downloaded:
        rows.append(("downloaded", f"{len(rep.downloaded):,} files, {sum(f.bytes for f in rep.downloaded):,} bytes"))
    out.print(kv_table(rows, f"pulled {rep.repo_id}@{rep.revision} -> {rep.ref}"))
    _print_warnings(rep.warnings)


# ---- commands ---------------------------------------------------------------------------------


@handle_errors
def versions(
    name: Annotated[str | None, typer.Argument(help="Dataset name (default: every dataset).",
                                               show_default=False)] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the published versions: records per split, content hash, parent, creation time."""
    reg = _registry(home)
    broken: list[str] = []
    ms = reg.versions(name, broken=broken)
    for why in [*reg.warnings, *broken]:  # (listed, never hidden: `verify` says more)
        err.print(f"[yellow]warning:[/] {escape(why)}", soft_wrap=True)
    if json_out:
        print_json([m.model_dump(mode="json") for m in ms])
        return
    if not ms:
        err.print(f"no versions in the registry at {reg.home}")
        return
    splits = list(dict.fromkeys(s for m in ms for s in m.counts))
    t = Table(title=f"Versions in {reg.home}", title_justify="left")
    t.add_column("version", style="bold", no_wrap=True)
    t.add_column("records", justify="right")
    t.add_column("/".join({"validation": "val"}.get(s, s) for s in splits), justify="right", no_wrap=True)
    t.add_column("hash", no_wrap=True)
    t.add_column("parent", overflow="fold")
    t.add_column("created (UTC)", no_wrap=True)
    for m in ms:
        t.add_row(m.ref, f"{m.records:,}", " / ".join(f"{m.counts[s].records:,}" if s in m.counts else "-"
                                                      for s in splits),
                  m.content_hash[:12], m.parent or "-", m.created_at.replace("T", " ").rstrip("Z")[:16])
    out.print(t)


@handle_errors
def show(ref: RefArg, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Show a version's manifest: ledger, counts per split and category, lineage, steps, inputs."""
    reg = _registry(home)
    m = reg.resolve(ref)
    _print_warnings(reg.warnings)
    if json_out:
        print_json(m)
        return
    render_manifest(m)


@handle_errors
def diff(
    ref_a: Annotated[str, typer.Argument(help="The older version (name@vN, name@<hash>...).", show_default=False)],
    ref_b: Annotated[str, typer.Argument(help="The newer version.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", min=0, help="Record ids listed per split in the tables "
                                       "(--json lists all), and changed records shown word by word with --text "
                                       "(per split, --json too).")] = 20,
    text: Annotated[bool, typer.Option("--text", help="Show what changed inside each changed record (a word "
                                       "diff of each field that differs, for the first --limit per split) and the "
                                       "input line (file:line) of each added and removed record.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare two versions: record ids added, removed and changed per split, and step config changes.

    The versions are verified, then read column by column: ids, input lines and lineage only, and with --text the
    text of the changed records shown."""
    rep = _registry(home).diff(ref_a, ref_b, text_limit=limit if text else None)
    if json_out:
        print_json(rep)
        return
    render_diff(rep, limit, show_text=text)


@handle_errors
def verify(ref: RefArg, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Prove a version is untouched: every data file's sha256 and the content hash match the manifest.

    The manifest is checked too: its own digest (required: an edited count, ledger or step), its place
    (the folder of the version it names), its paths (relative, inside the version folder, no link out
    of it), the registry log <home>/<name>/log.jsonl (a manifest replaced with a recomputed digest),
    its parent's digest (a parent replaced later) and its record counts against the data. Exit 0 when
    all hold, 1 when the version was modified after publishing. A version published before the log
    existed is a warning, not a failure.
    """
    rep = _registry(home).verify(ref)
    if json_out:
        print_json(rep)
    else:
        render_verify(rep)
    if not rep.ok:
        raise typer.Exit(1)


@handle_errors
def export(
    ref: RefArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <split>.parquet or <split>.jsonl.",
                                          show_default=False)],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or jsonl.")] = "parquet",
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a version as one parquet or JSONL file per split (the hash is verified first)."""
    from swcdata.core.errors import InputError

    if fmt not in ("parquet", "jsonl"):
        raise InputError(f"unknown --format {fmt!r}", hint="choose parquet or jsonl")
    paths = _registry(home).export(ref, fmt, out_dir)  # type: ignore[arg-type]
    if json_out:
        print_json([str(p) for p in paths])
        return
    for p in paths:
        out.print(str(p))


@handle_errors
def push(
    ref: RefArg,
    repo: Annotated[str, typer.Option("--repo", help="Hub dataset repo, OWNER/NAME.", show_default=False)],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Stage the files and list the calls; send "
                                          "nothing (no token needed).")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Staging folder (new or empty; default: a "
                                                 "temporary folder).", show_default=False)] = None,
    license_id: Annotated[str | None, typer.Option("--license", help="The card's license id (e.g. mit, "
                                                   "cc-by-4.0), instead of the one the version's build config "
                                                   "declared ('unknown' is published as 'other').",
                                                   show_default=False)] = None,
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help="Largest Parquet shard, in Arrow "
                                                "bytes as `datasets` counts them: 500MB, 1GB, 256MiB or bytes.")
                              ] = "500MB",
    max_commit_size: Annotated[str, typer.Option("--max-commit-size", help="Above this many staged bytes the data "
                                                 "goes in several commits, the card and manifest last.")] = "5GB",
    home: HomeOpt = None,
    report: ReportOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Push a version to the Hugging Face Hub: parquet shards, dataset card and manifest, tagged vN.

    Files of an earlier version under data/ and swcdata/ are deleted in the same (last) commit. Files the
    Hub holds already are not sent again: a push that failed half-way resumes when run again. The token
    comes from HF_TOKEN or `hf auth login`; swcdata never reads or prints it.
    """
    from swcdata.core.io import check_outputs, refuse_inside_registry
    from swcdata.registry import hub

    outputs = [("--out", out_dir), ("--report", report)]
    refuse_inside_registry(outputs, _registry(home).home)  # (staging or a report in the registry: refused)
    check_outputs([], [("--report", report)])
    rep = hub.push(ref, repo, private=private, dry_run=dry_run, work_dir=out_dir, home=home, license=license_id,
                   max_shard_size=max_shard_size, max_commit_size=max_commit_size,
                   api_factory=hub.make_api)  # looked up now, so tests can replace the factory
    if report:
        write_report(report, rep)
    if json_out:
        print_json(rep)
        return
    render_push(rep)


@handle_errors
def pull(
    spec: Annotated[str, typer.Argument(metavar="OWNER/NAME[@vN|@REVISION]", help="The Hub dataset a push wrote, "
                                        "at a version tag (vN), a branch (default main) or a commit.",
                                        show_default=False)],
    home: HomeOpt = None,
    report: ReportOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Download a pushed version and register it here as the same name@vN, checked against its manifest.

    Refused, with nothing written, when the data on the Hub does not match the manifest that travels with it
    (content hash, counts, file hashes, the manifest's digest) or when this registry holds another version under
    that number. A public repo needs no token; a private one reads HF_TOKEN or `hf auth login`.
    """
    from swcdata.core.io import check_outputs, refuse_inside_registry
    from swcdata.registry import hub

    refuse_inside_registry([("--report", report)], _registry(home).home)
    check_outputs([], [("--report", report)])
    rep = hub.pull(spec, home=home, api_factory=lambda: hub.make_api(write=False))
    if report:
        write_report(report, rep)
    if json_out:
        print_json(rep)
        return
    render_pull(rep)


def register(app: typer.Typer) -> None:
    app.command(name="versions")(versions)
    app.command(name="show")(show)
    app.command(name="diff")(diff)
    app.command(name="verify")(verify)
    app.command(name="export")(export)
    app.command(name="push")(push)
    app.command(name="pull")(pull)
