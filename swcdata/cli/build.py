"""`swcdata build`: the whole pipeline from one config file, published as a registry version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swcdata.cli.console import EngineOpt, JsonOpt, RayAddressOpt, err, handle_errors, out, print_json

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Registry folder (default: $SWCDATA_HOME or ./registry).")]


def parse_sets(items: list[str] | None) -> dict[str, object]:
    """`key=value` overrides; values are parsed as TOML scalars/arrays when they can be (8 -> int)."""
    import tomllib

    from swcdata.core.errors import ConfigError

    out_: dict[str, object] = {}
    bad = []
    for item in items or []:
        if "=" not in item:
            bad.append(f"--set {item!r}: expected key=value, e.g. dedup.threshold=0.8")
            continue
        key, raw = item.split("=", 1)
        try:
            out_[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out_[key.strip()] = raw
    if bad:
        raise ConfigError(bad)
    return out_


@handle_errors
def build_command(
    config: Annotated[Path | None, typer.Option("--config", help="Build config (TOML). Default: ./swcdata.toml "
                                                "if present, else the embedded sample in dataset/.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value: key=value "
                                                   "(repeatable), e.g. --set dedup.threshold=0.8.")] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Work on every record: do not take the input files "
                                           "validated before (by their bytes), validation's code findings, "
                                           "augmentation's variants and the audit's features from the build cache "
                                           "(<home>/<name>/.cache), nor leave this build's there. The version is "
                                           "the same either way.")] = False,
) -> None:
    """Validate, deduplicate, split, augment and publish an immutable dataset version.

    Every parameter of every step comes from one TOML file, checked as a whole before any work.
    The same inputs and config give the same content hash: then no new version is written and the
    command names the version that matches. --engine ray (or `engine = "ray"` in the config) runs
    validate, dedup, split and augment on a Ray cluster: the same version.

    A build that adds records to a corpus works on the new ones only, where it can: it signs only
    the texts its parent version's signature index lacks, takes the input files it has validated
    (the same bytes) and the code findings, variants and audit features of texts it has seen from
    the build cache.
    """
    from swcdata.cli.console import show_progress
    from swcdata.cli.render import render_build
    from swcdata.engine import choose
    from swcdata.registry.build import load_config, run_build

    cfg, base = load_config(config, parse_sets(set_))
    steps = None
    if choose(engine, cfg.engine) == "ray":
        from swcdata.engine.build import RaySteps

        steps = RaySteps(ray_address)
    if show_progress(json_out):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True) as p:
            task = p.add_task("build", total=None)
            result = run_build(cfg, base, home=home, on_step=lambda s: p.update(task, description=s),
                               steps=steps, cache=not no_cache)
    else:
        result = run_build(cfg, base, home=home, steps=steps, cache=not no_cache)
    if json_out:
        print_json(result)
    else:
        render_build(result, out)


def register(app: typer.Typer) -> None:
    app.command(name="build")(build_command)
