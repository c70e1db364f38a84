"""`ConfigError.from_validation`: one pydantic ValidationError as one ConfigError, every problem with its path."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from swcdata.core.errors import ConfigError, plain_message, validation_problems


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, gt=0)
    targets: Literal["all-linear"] | list[str] = "all-linear"


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    lora: Inner = Field(default_factory=Inner)
    items: list[Inner] = Field(default_factory=list)
    limit: int = 1

    @model_validator(mode="after")
    def _across(self) -> Outer:
        if self.limit < 0:
            raise ValueError("lora.r: must be set with limit\nitems.0: must be set with limit")
        if self.limit == 0:
            raise ValueError("limit and name disagree")
        return self


def _error(**values: Any) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        Outer.model_validate(values)
    return e.value


def test_every_error_with_its_nested_path_in_order() -> None:
    e = _error(name="", lora={"r": 0, "extra": 1}, items=[{}, {"r": -1}])
    err = ConfigError.from_validation(e)
    assert err.problems == [
        "name: String should have at least 1 character",
        "lora.r: Input should be greater than 0",
        "lora.extra: Extra inputs are not permitted",
        "items.1.r: Input should be greater than 0",
    ]
    assert err.exit_code == 2
    assert str(err).splitlines() == ["invalid configuration (4 problem(s)):", *(f"  - {p}" for p in err.problems)]


def test_source_and_prefix() -> None:
    e = _error(name="x", lora={"r": 0})
    err = ConfigError.from_validation(e, source="cfg.toml", prefix="train.")
    assert err.problems == ["train.lora.r: Input should be greater than 0"]
    assert str(err).startswith("invalid configuration in cfg.toml (1 problem(s)):\n  - train.lora.r: ")


def test_union_branch_names_leave_the_path_and_duplicates_go() -> None:
    e = _error(name="x", lora={"targets": 3})
    problems = ConfigError.from_validation(e).problems
    # one error per union branch (literal['all-linear'], list[str]), both at lora.targets
    assert e.error_count() == 2 and all(p.startswith("lora.targets: ") for p in problems)
    assert not any("[" in p.split(":")[0] for p in problems)


def test_an_error_of_the_whole_object() -> None:
    e = _error(name="x", limit=0)
    assert ConfigError.from_validation(e).problems == ["(top level): Value error, limit and name disagree"]
    assert validation_problems(e, whole="(recipe)", message=plain_message) == ["(recipe): limit and name disagree"]
    # a check across sections gives one problem per `path: message` line
    e = _error(name="x", limit=-1)
    assert ConfigError.from_validation(e, message=plain_message).problems == [
        "lora.r: must be set with limit", "items.0: must be set with limit"]


def test_message_rewords_some_errors_and_keeps_the_rest() -> None:
    e = _error(name="", lora={"extra": 1})

    def wording(err: Any) -> str | None:
        return "unknown key" if err["type"] == "extra_forbidden" else None

    assert validation_problems(e, message=wording) == ["name: String should have at least 1 character",
                                                        "lora.extra: unknown key"]


def test_errors_module_does_not_import_pydantic() -> None:
    code = "import sys, swcdata.core.errors; print('pydantic' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
