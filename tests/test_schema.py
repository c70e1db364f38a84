"""The JSON Schema files in schemas/ are generated from the models and must not drift."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema as js

from swcdata.cli import schema as jsonschema
from swcdata.core.catalogue import CATALOGUE, first_keyword_class, mentioned_ids

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def test_schema_files_match_the_models() -> None:
    assert jsonschema.drifted(SCHEMAS) == [], "run: swcdata schema --write schemas"


def test_schema_files_are_valid_json_schema() -> None:
    for name in jsonschema.names():
        doc = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        js.Draft202012Validator.check_schema(doc)


def _properties(node: dict, doc: dict, path: str = "", seen: frozenset[str] = frozenset()):
    """(dotted key, its schema) for every property under `node`, $refs resolved (each at most once per path)."""
    ref = node.get("$ref")
    if ref is not None and ref not in seen:
        yield from _properties(doc["$defs"][ref.rsplit("/", 1)[-1]], doc, path, seen | {ref})
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in node.get(key, []):
            yield from _properties(sub, doc, path, seen)
    for sub in (node.get("items"), node.get("additionalProperties")):
        if isinstance(sub, dict):
            yield from _properties(sub, doc, path + "[]", seen)
    for name, prop in node.get("properties", {}).items():
        yield f"{path}.{name}".lstrip("."), prop
        yield from _properties(prop, doc, f"{path}.{name}", seen)


def test_build_config_schema_describes_every_key() -> None:
    """`swcdata schema build-config` is the reference of swcdata.toml: every key of every section (the
    augment section's keys too, which AugmentConfig validates) has a description, and the schema takes
    the shipped swcdata.toml."""
    import tomllib

    from swcdata.steps.augment.step import AugmentConfig

    doc = jsonschema.generate("build-config")
    keys = dict(_properties(doc, doc))
    assert [k for k, prop in keys.items() if not prop.get("description")] == []
    assert {"validate.check_code", "dedup.threshold", "split.holdout", "augment.enabled", "audit.code.min_tokens",
            "license"} <= keys.keys()
    assert {f"augment.{f}" for f in AugmentConfig.model_fields} <= keys.keys()
    assert "split.leak_rules" not in keys  # refused there: the leak rules live in [audit]
    toml = tomllib.loads((Path(__file__).resolve().parents[1] / "swcdata.toml").read_text())
    js.Draft202012Validator(doc).validate(toml)


def test_record_schema_accepts_and_rejects() -> None:
    doc = json.loads((SCHEMAS / "record.schema.json").read_text())
    v = js.Draft202012Validator(doc)
    assert v.is_valid({"instruction": "i", "response": "r", "category": "SWC-101"})
    assert not v.is_valid({"instruction": "i", "category": "SWC-101"})
    assert not v.is_valid({"instruction": "i", "response": "r", "category": "reentrancy"})


def test_catalogue_covers_the_registry() -> None:
    assert [c.id for c in CATALOGUE] == [f"SWC-{n}" for n in range(100, 137)]
    assert all(c.title and c.keywords for c in CATALOGUE)
    assert mentioned_ids("This falls under swc-107 and SWC 110; not SWC-999") == {"SWC-107", "SWC-110"}
    assert first_keyword_class("a classic reentrancy attack") == "SWC-107"
    assert first_keyword_class("an integer overflow in the loop") == "SWC-101"
