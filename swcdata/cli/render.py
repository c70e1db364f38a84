"""Reports rendered as rich tables. The ledger always comes first. Text that comes from the data (file
names, messages, sources) is escaped: rich would read "[x]" in it as markup."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from swcdata.cli.console import kv_table
from swcdata.core.schema import Severity, ValidationReport

if TYPE_CHECKING:
    from swcdata.registry.build import BuildResult
    from swcdata.steps.audit import AuditReport
    from swcdata.steps.dedup import DedupReport
    from swcdata.steps.split import SplitReport

_SEV_STYLE = {Severity.error: "red", Severity.warning: "yellow", Severity.info: "dim"}


def ledger_table(title: str, rows: list[tuple[str, int]], adds_up: bool) -> Table:
    return kv_table([*((name, f"{n:,}") for name, n in rows),
                     ("adds up", Text.from_markup("[green]yes[/]" if adds_up else "[bold red]NO[/]"))], title,
                    justify="right")


def render_validation(report: ValidationReport, console: Console, *, max_findings: int = 20) -> None:
    lg = report.ledger
    console.print(ledger_table("Ledger", [("lines read", lg.lines_read), ("blank lines", lg.blank_lines),
                                          ("records", lg.records), ("valid", lg.valid),
                                          ("quarantined", lg.quarantined)], lg.adds_up))
    console.print()
    files = Table(title="Files", title_justify="left")
    for col in ("file", "lines", "blank", "valid", "quarantined", "errors", "warnings"):
        files.add_column(col, justify="left" if col == "file" else "right", overflow="fold")
    for i in report.inputs:
        files.add_row(escape(Path(i.path).name), *(f"{n:,}" for n in (i.lines, i.blank_lines, i.valid, i.quarantined,
                                                                       i.errors, i.warnings)))
    console.print(files)
    console.print()
    if report.rules:
        t = Table(title="Findings by rule and file", title_justify="left")
        for col in ("rule", "severity", "file", "count"):
            t.add_column(col, justify="right" if col == "count" else "left", overflow="fold")
        for r in report.rules:
            style = _SEV_STYLE[r.severity]
            for k, (f, n) in enumerate(sorted(r.by_file.items())):
                t.add_row(r.rule if k == 0 else "", f"[{style}]{r.severity.value}[/]" if k == 0 else "",
                          escape(Path(f).name), f"{n:,}", end_section=k == len(r.by_file) - 1)
        console.print(t)
        console.print()
    errors = [f for f in report.findings if f.severity is Severity.error]
    if errors:
        t = Table(title=f"Errors (first {min(len(errors), max_findings)} of {report.errors})", title_justify="left")
        t.add_column("file:line", overflow="fold")
        t.add_column("rule")
        t.add_column("field")
        t.add_column("message", overflow="fold")
        for f in errors[:max_findings]:
            t.add_row(escape(f"{Path(f.file).name}:{f.line}"), f.rule, escape(f.field or ""), escape(f.message))
        console.print(t)
        console.print()
    status = {"clean": "[green]clean[/]", "warnings": "[yellow]warnings[/]", "errors": "[red]errors[/]"}[report.status]
    console.print(f"{status}: {report.errors:,} error(s), {report.warnings:,} warning(s) in {lg.records:,} records "
                  f"({report.seconds:.2f} s, {report.records_per_second:,.0f} records/s)")


def render_dedup(report: DedupReport, console: Console, *, max_clusters: int = 10) -> None:
    lg = report.ledger
    rows: list[tuple[str, int]] = []
    adds_up = lg.adds_up
    if report.input is not None:
        inp = report.input
        rows += [("lines read", inp.lines_read), ("blank lines", inp.blank_lines), ("quarantined", inp.quarantined)]
        adds_up = adds_up and inp.adds_up and inp.valid == lg.records
    rows += [("records", lg.records), ("kept", lg.kept), ("exact duplicates", lg.exact_duplicates),
             ("near duplicates", lg.near_duplicates)]
    console.print(ledger_table("Ledger", rows, adds_up))
    console.print()
    if report.largest_clusters:
        big = report.largest_clusters[:max_clusters]  # (largest first)
        t = Table(title=f"Largest clusters ({len(big)} of {report.clusters:,})", title_justify="left")
        for col in ("kept record", "size", "exact", "near", "min sim", "split off", "categories"):
            t.add_column(col, justify="left" if col in ("kept record", "categories") else "right", overflow="fold")
        for c in big:
            src = c.representative.source
            cats = ", ".join(c.categories)
            t.add_row(escape(f"{Path(src.file).name}:{src.line}"), str(c.size), str(c.exact), str(c.near),
                      f"{c.min_similarity:.2f}", str(c.split_off),
                      cats if len(c.categories) == 1 else f"[yellow]{cats}[/]")
        console.print(t)
        console.print()
    console.print(f"{report.clusters:,} clusters, {report.category_conflicts:,} with conflicting categories; "
                  f"LSH {report.bands}x{report.rows}, {report.candidate_pairs:,} candidate pairs, "
                  f"{report.verified_pairs:,} verified at >= {report.config.threshold}; "
                  f"{report.split_off:,} split off their chain (< {report.config.member_floor():g} like its kept "
                  "record); "
                  f"{report.timings.get('total', 0):.2f} s ({report.records_per_second:,.0f} records/s)")
    if report.against is not None:
        a = report.against
        console.print(f"against [bold]{escape(a.version)}[/] ({a.records:,} records): {a.exact:,} exact and "
                      f"{a.near:,} near duplicates of its records removed; {escape(a.note)}")


def render_audit(report: AuditReport, console: Console, *, max_rows: int = 15) -> None:
    s = report.summary
    style = "red" if s.leaked else "green"
    counts = (("reference records", s.reference_records), ("candidate records", s.candidate_records),
              ("exact matches", s.exact), ("near matches", s.near), ("code matches only", s.code),
              (f"shared {report.config.overlap_n}-gram only", s.ngram_only), ("clean", s.clean),
              ("code pairs (candidate, reference)", s.code_pairs), ("label conflicts (same code)", s.label_conflicts))
    set_aside: list[tuple[str, str | Text]] = [
        (f"{which} lines set aside", Text(f"{ledger.quarantined:,}", style="red" if which == "candidate" else ""))
        for which, ledger in (("reference", report.reference_input), ("candidate", report.candidate_input))
        if ledger is not None and ledger.quarantined]
    console.print(kv_table([*((name, f"{n:,}") for name, n in counts), *set_aside,
                            ("leak rules", ", ".join(r for r in ("exact", "near", "code", "ngram")
                                                     if report.config.counts(r))),  # type: ignore[arg-type]
                            ("contamination rate", Text(f"{s.contamination_rate:.1%}", style=style)),
                            (f"{report.config.overlap_n}-gram overlap rate", f"{s.ngram_overlap_rate:.1%}")],
                           "Contamination audit", justify="right"))
    if report.reference_versions:
        console.print(f"reference versions: {escape(', '.join(report.reference_versions))} (read from the registry)")
    console.print()
    leaks = report.leaked
    if leaks:
        lt = Table(title=f"Leaked candidates (first {min(len(leaks), max_rows)} of {len(leaks)})",
                   title_justify="left")
        for col in ("candidate", "status", "matches", "similarity", "longest n-gram"):
            lt.add_column(col, overflow="fold")
        for c in leaks[:max_rows]:
            m = c.match or c.code_match or c.ngram_match
            where = escape(f"{Path(m.source.file).name}:{m.source.line}") if m else ""
            status = f"code ({c.code_kind})" if c.status == "code" else c.status
            sim = c.similarity if c.similarity is not None else c.code_similarity
            lt.add_row(escape(f"{Path(c.source.file).name}:{c.source.line}"), status, where,
                       "" if sim is None else f"{sim:.2f}", str(c.longest_ngram))
        console.print(lt)
    if report.label_conflicts:
        ct = Table(title=f"Label conflicts: the same code under two categories (first "
                         f"{min(len(report.label_conflicts), max_rows)} of {len(report.label_conflicts)})",
                   title_justify="left")
        for col in ("candidate", "category", "reference", "category ", "code"):
            ct.add_column(col, overflow="fold")
        for lc in report.label_conflicts[:max_rows]:
            ct.add_row(escape(f"{Path(lc.candidate.source.file).name}:{lc.candidate.source.line}"),
                       lc.candidate_category,
                       escape(f"{Path(lc.reference.source.file).name}:{lc.reference.source.line}"),
                       lc.reference_category, lc.kind)
        console.print(ct)


def render_split(report: SplitReport, console: Console) -> None:
    rows: list[tuple[str, int]] = []
    ledger, hold = report.input, report.holdout_input
    if ledger is not None:
        rows += [("lines read", ledger.lines_read), ("blank lines", ledger.blank_lines),
                 ("quarantined", ledger.quarantined)]
    rows += [("records", report.records), ("decontaminated", len(report.decontaminated))]
    rows += [(name, n) for name, n in report.sizes.items()]
    if report.holdout_records:
        rows.append(("(test = holdout records)", report.holdout_records))
    if report.holdout_duplicates:
        rows.append(("(holdout exact copies dropped)", len(report.holdout_duplicates)))
    if hold is not None:
        rows += [("holdout lines read", hold.lines_read), ("holdout quarantined", hold.quarantined)]
    adds_up = report.adds_up and all(x is None or x.adds_up for x in (ledger, hold))
    console.print(ledger_table("Ledger", rows, adds_up))
    console.print()
    t = Table(title=f"Per-category shares (target {', '.join(f'{k} {v:.0%}' for k, v in report.targets.items())})",
              title_justify="left")
    t.add_column("category")
    t.add_column("records", justify="right")
    for name in report.targets:
        t.add_column(name, justify="right")
    t.add_column("max dev", justify="right")
    for c in report.categories:
        style = "green" if c.within_tolerance else "yellow"
        t.add_row(c.category, f"{c.total:,}", *(f"{c.counts[k]:,} ({c.shares[k]:.1%})" for k in report.targets),
                  f"[{style}]{c.max_deviation * 100:.1f} pt[/]")
    console.print(t)
    console.print()
    console.print(f"{report.groups:,} groups ({report.multi_record_groups:,} with several records, largest "
                  f"{report.largest_group}); no group crosses a split; "
                  + ("[green]all categories within tolerance[/]" if report.within_tolerance
                     else "[yellow]some categories outside tolerance (group sizes)[/]")
                  + f"; {report.seconds:.2f} s")


def render_build(result: BuildResult, console: Console) -> None:
    lg = result.ledger
    rows = [("lines read", lg.lines_read), ("blank lines", lg.blank_lines), ("quarantined", lg.quarantined),
            ("exact duplicates", lg.exact_duplicates), ("near duplicates", lg.near_duplicates),
            ("decontaminated", lg.decontaminated), ("kept", lg.kept)]
    if lg.holdout:
        rows.append(("holdout (test)", lg.holdout))
    if lg.holdout_duplicates:
        rows.append(("holdout exact copies dropped", lg.holdout_duplicates))
    if lg.holdout_quarantined:
        rows.append(("holdout lines quarantined", lg.holdout_quarantined))
    rows.append(("augmented (train)", lg.augmented))
    console.print(ledger_table("Ledger", rows, lg.adds_up))
    console.print()
    cats = sorted({c for counts in result.counts.values() for c in counts})
    t = Table(title="Records per split and category", title_justify="left")
    t.add_column("split")
    for c in cats:
        t.add_column(c, justify="right")
    t.add_column("total", justify="right", style="bold")
    for name, counts in result.counts.items():
        t.add_row(name, *(f"{counts.get(c, 0):,}" for c in cats), f"{sum(counts.values()):,}")
    console.print(t)
    console.print()
    if result.contamination:
        ct = Table(title="Contamination audit between splits", title_justify="left")
        for col in ("pair", "exact", "near", "code", "13-gram only", "label conflicts"):
            ct.add_column(col, justify="left" if col == "pair" else "right")
        for pair, s in result.contamination.items():
            style = "red" if s.get("leaked", s["exact"] + s["near"]) else "green"
            ct.add_row(pair, f"[{style}]{s['exact']}[/]", f"[{style}]{s['near']}[/]", f"[{style}]{s.get('code', 0)}[/]",
                       f"{s['ngram_only']:,}", f"{s.get('label_conflicts', 0):,}")
        console.print(ct)
        console.print()
    if result.index is not None:
        ix = result.index
        where = f" from {ix['reused_from']}" if ix.get("reused_from") else ""
        console.print(f"signature index: {ix['records']:,} records; {ix['reused']:,} signatures reused{where}, "
                      f"{ix['signed']:,} signed" + (f" ({escape(ix['note'])})" if ix.get("note") else ""))
    what = {"checks": "code checks", "augment": "augmentation", "inputs": "prepared inputs",
            "audit": "audit features"}
    for step, use in result.cache.items():
        unit = "lines" if step == "inputs" else "records"
        kept = "lines kept" if step == "inputs" else "texts kept"
        console.print(f"build cache, {what.get(step, step)}: {use.reused:,} of {use.texts:,} {unit} taken from it, "
                      f"{use.kept:,} {kept}" + (f" ({escape(use.note)})" if use.note else ""))
    if result.created:
        console.print(f"[green]published[/] [bold]{result.ref}[/] (content hash {result.content_hash[:12]})")
    else:
        console.print(f"[yellow]unchanged[/], same as [bold]{result.ref}[/] (content hash {result.content_hash[:12]})")
