"""Reports rendered as rich tables. The ledger always comes first."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from swcdata.schema import Severity, ValidationReport

_SEV_STYLE = {Severity.error: "red", Severity.warning: "yellow", Severity.info: "dim"}


def ledger_table(title: str, rows: list[tuple[str, int]], balanced: bool) -> Table:
    t = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    for name, n in rows:
        t.add_row(name, f"{n:,}")
    t.add_row("balanced", "[green]yes[/]" if balanced else "[bold red]NO[/]")
    return t


def render_validation(report: ValidationReport, console: Console, *, max_findings: int = 20) -> None:
    lg = report.ledger
    console.print(ledger_table("Ledger", [("lines read", lg.lines_read), ("blank lines", lg.blank_lines),
                                          ("records", lg.records), ("valid", lg.valid),
                                          ("quarantined", lg.quarantined)], lg.balanced))
    console.print()
    files = Table(title="Files", title_justify="left")
    for col in ("file", "lines", "blank", "valid", "quarantined", "errors", "warnings"):
        files.add_column(col, justify="left" if col == "file" else "right", overflow="fold")
    for i in report.inputs:
        files.add_row(Path(i.path).name, *(f"{n:,}" for n in (i.lines, i.blank_lines, i.valid, i.quarantined, i.errors,
                                                   i.warnings)))
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
                          Path(f).name, f"{n:,}", end_section=k == len(r.by_file) - 1)
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
            t.add_row(f"{Path(f.file).name}:{f.line}", f.rule, f.field or "", f.message)
        console.print(t)
        console.print()
    status = {"clean": "[green]clean[/]", "warnings": "[yellow]warnings[/]", "errors": "[red]errors[/]"}[report.status]
    console.print(f"{status}: {report.errors:,} error(s), {report.warnings:,} warning(s) in {lg.records:,} records "
                  f"({report.seconds:.2f} s, {report.records_per_second:,.0f} records/s)")
