"""Evaluation commands: `evaluate` (answer and score a split with a run), `compare` (two evaluations side by
side) and `stats` (what a dataset holds).

Registered by `swcdata.cli.main`. Nothing heavy at module level: torch and transformers are imported by
`swcdata.finetune.generate` only when answers must be generated; scikit-learn, rouge-score and
matplotlib only when scoring or plotting.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from swcdata.cli.console import JsonOpt, ReportOpt, err, handle_errors, kv_table, out, print_json, write_report

if TYPE_CHECKING:
    from swcdata.evaluation.compare import CompareReport
    from swcdata.evaluation.evaluate import EvalResults
    from swcdata.evaluation.stats import StatsReport

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Registry folder (default: $SWCDATA_HOME, else "
                                              "./registry).", show_default=False)]


@handle_errors
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="The run folder (runs/<run-id>).", show_default=False)],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Data to answer: NAME@vN or a folder "
                                                "(default: the run's own dataset version).", show_default=False)
                       ] = None,
    split: Annotated[str, typer.Option("--split", help="Split to answer.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Prompts generated together "
                                            "(left-padded).")] = 16,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest answer in tokens.")] = 200,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Answer only the first N records of the split.",
                                              show_default=False)] = None,
    base_only: Annotated[bool, typer.Option("--base-only", help="Score the base model without the LoRA adapter "
                                            "(written to eval/<split>-base/).")] = False,
    allow_contaminated: Annotated[bool, typer.Option("--allow-contaminated", help="Score even when the split "
                                                     "duplicates training records (a warning is recorded in the "
                                                     "results).")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard answers saved by an earlier (interrupted) "
                                          "evaluation instead of resuming it.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a dataset split with a fine-tuned run and score the answers against the references.

    Batched greedy generation with left padding; answers are appended to
    runs/<run-id>/eval/<split>/generations.jsonl batch by batch, so an interrupted evaluation resumes
    where it stopped. Scores: the SWC class named by each answer (the seed's rule and a stricter one:
    accuracy, macro/weighted F1, per-class precision/recall, confusion matrix), ROUGE-L and TF-IDF cosine
    to the reference, and the share of answers with parseable Solidity that differs from the vulnerable
    input. Beside them, the reference ceiling: each rule applied to the reference answers themselves
    (the best a model can score by it). Empty, repetitive ("......") and identical answers are counted,
    with a warning above the scores when their share is high. Writes results.json, report.md and
    confusion.png. Refuses (exit 1) when the split duplicates records of the run's training split,
    unless --allow-contaminated.
    """
    from swcdata.cli.console import progress_bar, show_progress
    from swcdata.core.io import refuse_inside_registry
    from swcdata.evaluation.evaluate import evaluate

    refuse_inside_registry([("RUN_DIR", run_dir)], home)  # (the evaluation is written into the run folder)

    def log(message: str) -> None:
        if message.startswith("warning:"):
            err.print(f"[bold yellow]{escape(message)}[/]")
        elif not json_out:
            err.print(f"[dim]{escape(message)}[/]")

    with progress_bar("generate", None, enabled=show_progress(json_out)) as advance:
        results = evaluate(run_dir, dataset=dataset, split=split, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, limit=limit, base_only=base_only,
                           allow_contaminated=allow_contaminated, restart=restart, home=home,
                           progress=lambda n: advance(n), on_total=lambda n: advance(0, total=n), log=log)
    from swcdata.evaluation.evaluate import DEGENERATE

    if json_out:
        print_json(results)
    else:
        render_results(results)  # (degenerate-output warnings first, above the table)
    for w in results.warnings:
        if w.startswith(DEGENERATE) and not json_out:
            continue
        err.print(f"[bold red]WARNING:[/] {escape(w)}" if w.startswith(("CONTAMINATED", "NOT CHECKED"))
                  else f"[yellow]warning:[/] {escape(w)}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def render_results(r: EvalResults) -> None:
    """The scores as tables, with a warning above them (on stdout, the report's first lines) when the answers
    are degenerate."""
    s = r.settings
    if r.degenerate is not None:
        for w in r.degenerate.warnings:
            out.print(f"[bold red]WARNING:[/] {escape(w)}")
    t = Table(title=f"evaluation of {r.run_id}{'' if s.adapter else ' (base model only)'}: split {s.split} of "
              f"{s.dataset}, {r.records} records", title_justify="left")
    for col in ("rule", "accuracy", "macro F1", "weighted F1", "no class"):
        t.add_column(col, justify="left" if col == "rule" else "right")
    for rule, cs in r.classification.items():
        t.add_row(rule, _pct(cs.accuracy), f"{cs.macro_f1:.3f}", f"{cs.weighted_f1:.3f}", str(cs.no_class))
    for rule, cs in r.reference_classification.items():
        t.add_row(f"{rule}: reference ceiling", _pct(cs.accuracy), f"{cs.macro_f1:.3f}", f"{cs.weighted_f1:.3f}",
                  str(cs.no_class), style="dim")
    out.print(t)
    c = r.contamination
    contamination = Text()
    if c.allowed and c.leaked:
        contamination.append("CONTAMINATED", "bold red").append(" ")
    if c.checked:
        contamination.append(f"{c.leaked}/{c.candidates} leaked vs {c.reference}")
    else:
        contamination.append("not checked", "bold red")
    rows: list[tuple[str, str | Text]] = [
        ("ROUGE-L / TF-IDF cosine", f"{r.similarity.rouge_l:.4f} / {r.similarity.tfidf_cosine:.4f}"),
        ("code: with / parses / differs", f"{_pct(r.code.with_code)} / {_pct(r.code.parseable)} / "
                                          f"{_pct(r.code.differs_from_input)} (references: "
                                          f"{_pct(r.reference_code.parseable)} parse)"),
        ("contamination", contamination),
        *([("degenerate: empty / repetitive / identical",
            Text(f"{_pct(d.empty_share)} / {_pct(d.repetitive_share)} / {_pct(d.identical_share)}",
                 "bold red" if d.warnings else ""))] if (d := r.degenerate) is not None else []),
        ("speed", f"{r.timing.seconds_per_record:.4f} s/record, batch {r.timing.batch_size}, {r.timing.device}; "
                  f"{r.timing.records_generated} generated, {r.timing.records_resumed} resumed"),
        ("files", f"{Path(r.files['results']).parent}/ (results.json, report.md, confusion.png)"),
    ]
    out.print(kv_table(rows))


@handle_errors
def compare_command(
    a: Annotated[Path, typer.Argument(help="Evaluation A: a run folder, an eval folder or a results.json.",
                                      show_default=False)],
    b: Annotated[Path, typer.Argument(help="Evaluation B (differences are B - A).", show_default=False)],
    resamples: Annotated[int, typer.Option("--resamples", min=0, help="Bootstrap resamples for the confidence "
                                           "intervals of the differences (0: none).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the comparison as Markdown to this "
                                                  "file.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Put two evaluations side by side: every metric of A and B, the difference B - A and its 95% interval.

    The intervals come from a paired bootstrap over the records both evaluations answered (their
    scored.jsonl): records resampled with replacement, both sides scored on each resample; an
    interval that excludes 0 is marked *. A run folder stands for its evaluation of the test split
    with the adapter; name an eval folder (runs/<id>/eval/test-base) to pick another, e.g. to
    compare a run with its base model.
    """
    from swcdata.evaluation.compare import compare, compare_markdown

    rep = compare(a, b, resamples=resamples, seed=seed)
    if markdown is not None:
        from swcdata.core.errors import InputError
        from swcdata.core.io import refuse_inside_registry

        refuse_inside_registry([("--markdown", markdown)])
        try:
            markdown.write_text(compare_markdown(rep), encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot write {markdown}: {e.strerror}") from None
    if json_out:
        print_json(rep)
    else:
        render_compare(rep)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.4f}"


def render_compare(rep: CompareReport) -> None:
    from swcdata.evaluation.compare import bootstrap_caption, interval

    t = Table(title=f"A = {rep.a_label}   B = {rep.b_label}", title_justify="left",
              caption=bootstrap_caption(rep) or None, caption_justify="left")
    t.add_column("metric")
    t.add_column("A", justify="right")
    t.add_column("B", justify="right")
    t.add_column("B - A", justify="right")
    if rep.bootstrap is not None:
        t.add_column(f"{rep.bootstrap.confidence:.0%} CI", justify="right")
    for row in rep.rows:
        d = row.diff
        if d is None or d == 0:
            diff = _fmt(d) if d is None else "0"
        else:
            good = (d > 0) == row.higher_is_better
            diff = f"[{'green' if good else 'red'}]{'+' if d > 0 else ''}{_fmt(d)}[/]"
        cells = [row.metric, _fmt(row.a), _fmt(row.b), diff]
        if rep.bootstrap is not None:
            cells.append(Text(interval(row), "bold" if row.excludes_zero else "dim"))
        t.add_row(*cells)
    out.print(t)
    for n in rep.notes:
        err.print(f"[yellow]note:[/] {escape(n)}")


@handle_errors
def stats_command(
    data: Annotated[list[str], typer.Argument(help="A dataset version NAME@vN (also name@latest), a folder "
                                              "(saved DatasetDict or <split>.jsonl files), or JSONL files / "
                                              "directories / globs (one group per file).", show_default=False)],
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Count tokens with this tokenizer.json (or a "
                                                  "run / model folder holding one); default: words and "
                                                  "punctuation.", show_default=False)] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PNG histograms (classes, character and token "
                                               "lengths; each split as the share of its records) into this folder.",
                                               show_default=False)] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe YAML or name (as in `finetune`): its "
                                               "data.max_length is marked on the token histograms of --plots.",
                                               show_default=False)] = None,
    home: HomeOpt = None,
    report: ReportOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what a dataset holds: records per split and class, lengths, duplicates, augmentation shares.

    Character and token length distributions of instructions and responses, exact duplicates and
    repeated instructions per split, ids shared between splits, and the transform and template
    shares of augmented records; a table, --json, or PNG histograms with --plots DIR (with --recipe,
    the recipe's max_length marked on the token histograms). A version's files are verified first,
    then it is read a batch at a time while its content hash is recomputed beside the statistics;
    nothing is shown before the hash matched.
    """
    from swcdata.core.errors import InputError
    from swcdata.core.io import refuse_inside_registry
    from swcdata.evaluation.stats import StatsConfig, stats, write_plots

    refuse_inside_registry([("--plots", plots), ("--report", report)], home)
    marker = None
    if recipe is not None:
        if plots is None:
            raise InputError("--recipe marks the recipe's max_length on the plots: give --plots DIR too")
        from swcdata.finetune.recipe import load_recipe

        name = Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe
        max_length = load_recipe(recipe).data.max_length
        marker = (max_length, f"max_length {max_length:,} (recipe {name})")
    with _stats_input(data, home, json_out) as (splits, source, content_hash, quarantined):
        rep, lengths = stats(splits, StatsConfig(tokenizer=tokenizer), source=source, content_hash=content_hash,
                             quarantined=quarantined)
    # (a version's content hash is checked while stats reads it: nothing is shown or written before it matched)
    if plots:
        rep.plots = [str(p) for p in write_plots(rep, lengths, plots, marker=marker)]
    if report:
        write_report(report, rep)
    if json_out:
        print_json(rep)
        return
    render_stats(rep)
    if plots:
        err.print(f"[dim]{len(rep.plots)} plots written to {escape(str(plots))}[/]")


@contextlib.contextmanager
def _stats_input(data: list[str], home: Path | None, json_out: bool):  # type: ignore[no-untyped-def]
    """(splits, source label, content hash or None, quarantined lines), for the block that computes the stats: a
    version's content hash is verified while the block reads it (`Registry.reading`), and a mismatch is raised
    when the block ends."""
    spec = data[0] if len(data) == 1 else ""
    if spec and not Path(spec).exists() and "@" in spec and not any(ch in spec for ch in "*?["):
        from swcdata.registry.store import Registry

        # its files verified first, then read a batch at a time (stats holds counts, ids and hashes only)
        with Registry(home).reading(spec) as (splits, m):
            yield splits, m.ref, m.content_hash, 0
        return
    yield _load_for_stats(data, json_out)


def _load_for_stats(data: list[str], json_out: bool):  # type: ignore[no-untyped-def]
    """(splits, source label, content hash or None, quarantined lines) of a folder or of input files."""
    from swcdata.evaluation.evaluate import as_table

    if len(data) == 1:
        spec = data[0]
        p = Path(spec)
        if p.is_dir() and ((p / "dataset_dict.json").is_file() or any(p.glob("*/dataset_info.json"))):
            from swcdata.finetune.source import load_folder

            dd, ref = load_folder(p)
            return {k: as_table(v) for k, v in dd.items()}, str(p), ref.content_hash, 0
    from swcdata.cli.inputs import load_records
    from swcdata.core.io import resolve_inputs

    # One group per file read, named by its stem (its path where two stems clash): a record's own
    # `source` names the file it first came from, not the split file it is in now.
    files = resolve_inputs(data)
    stems = [f.stem for f in files]
    splits, quarantined = {}, 0
    for f, stem in zip(files, stems, strict=True):
        table, vrep, _ = load_records([str(f)], json_out=json_out)
        splits[stem if stems.count(stem) == 1 else str(f)] = table
        quarantined += vrep.ledger.quarantined
    label = data[0] if len(data) == 1 else f"{len(data)} inputs"
    order = {name: k for k, name in enumerate(("train", "validation", "test"))}  # (then the others, as read)
    splits = dict(sorted(splits.items(), key=lambda kv: order.get(kv[0], len(order))))
    return splits, label, None, quarantined


def render_stats(rep: StatsReport) -> None:
    classes = sorted(rep.total.classes)
    t = Table(title=f"{rep.source}" + (f" ({rep.content_hash[:12]})" if rep.content_hash else ""),
              title_justify="left")
    for col in ("split", "records", *classes):
        t.add_column(col, justify="left" if col == "split" else "right", no_wrap=col == "split")
    for s in [*rep.splits, rep.total]:
        t.add_row(s.name, f"{s.records:,}", *[f"{s.classes.get(c, 0):,}" for c in classes],
                  style="bold" if s is rep.total else "")
    out.print(t)
    dt = Table(title="duplicates and augmentation", title_justify="left")
    for col in ("split", "duplicate ids", "repeated instructions", "augmented"):
        dt.add_column(col, justify="left" if col == "split" else "right", no_wrap=col == "split")
    for s in [*rep.splits, rep.total]:
        dt.add_row(s.name, f"{s.duplicate_ids:,}", f"{s.repeated_instructions:,}",
                   f"{s.augmented:,} ({s.augmented_share:.0%})", style="bold" if s is rep.total else "")
    out.print(dt)
    lt = Table(title=f"lengths (p50 / p95 / max); tokens: {rep.tokenizer}", title_justify="left")
    for col in ("split", "field", "characters", "tokens"):
        lt.add_column(col, justify="left" if col in ("split", "field") else "right")
    for s in [*rep.splits, rep.total]:
        for field in ("instruction", "response"):
            c, k = s.chars[field], s.tokens[field]
            lt.add_row(s.name if field == "instruction" else "", field, f"{c.p50:,.0f} / {c.p95:,.0f} / {c.max:,}",
                       f"{k.p50:,.0f} / {k.p95:,.0f} / {k.max:,}", style="bold" if s is rep.total else "")
    out.print(lt)
    if rep.total.augmented:
        at = Table(title=f"augmented records ({rep.total.augmented:,}): transforms and template families",
                   title_justify="left")
        for col in ("kind", "name", "records", "share"):
            at.add_column(col, justify="right" if col in ("records", "share") else "left")
        n = rep.total.augmented
        for name, k in rep.total.transforms.items():
            at.add_row("transform", name, f"{k:,}", f"{k / n:.1%}")
        for name, k in rep.total.template_families.items():
            at.add_row("template family", name, f"{k:,}", f"{k / n:.1%}")
        out.print(at)
        if rep.total.augmentation is not None:
            from swcdata.cli.augment import render_quality

            render_quality(rep.total.augmentation, out)
    notes = [f"{rep.cross_split_duplicate_ids:,} id(s) occur in more than one split"]
    if rep.quarantined:
        notes.append(f"{rep.quarantined:,} input line(s) failed the schema checks and are not counted")
    for note in notes:
        err.print(f"[dim]{escape(note)}[/]")


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate_command)
    app.command(name="compare")(compare_command)
    app.command(name="stats")(stats_command)
