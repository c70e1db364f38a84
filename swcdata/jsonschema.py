"""JSON Schema files generated from the pydantic models (the contract written down in `schemas/`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

# name -> (module, model): imported only when asked for, so `swcdata schema` stays cheap.
MODELS: dict[str, tuple[str, str]] = {
    "record": ("swcdata.schema", "Record"),
    "stored-record": ("swcdata.schema", "StoredRecord"),
    "validation-report": ("swcdata.schema", "ValidationReport"),
    "dedup-report": ("swcdata.dedup", "DedupReport"),
    "audit-report": ("swcdata.audit", "AuditReport"),
    "recipe": ("swcdata.finetune.recipe", "Recipe"),
    "manifest": ("swcdata.registry", "Manifest"),
    "verify-report": ("swcdata.registry", "VerifyReport"),
    "diff-report": ("swcdata.registry", "DiffReport"),
    "push-report": ("swcdata.hub", "PushReport"),
    "pull-report": ("swcdata.hub", "PullReport"),
    "split-report": ("swcdata.split", "SplitReport"),
    "build-config": ("swcdata.build", "BuildConfig"),
    "eval-results": ("swcdata.evaluate", "EvalResults"),
    "compare-report": ("swcdata.compare", "CompareReport"),
    "stats-report": ("swcdata.stats", "StatsReport"),
    "augment-report": ("swcdata.augment", "AugmentReport"),
    "build-result": ("swcdata.build", "BuildResult"),
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
    from swcdata.io import make_dir

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
