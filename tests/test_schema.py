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
