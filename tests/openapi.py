"""Validates bodies against OpenAI's own schemas in ../shared/openai-openapi.yaml (skips where it is absent)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi.yaml"


@functools.cache
def _spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as f:
        spec: dict[str, Any] = yaml.load(f, Loader=loader)
    return spec


@functools.cache
def _validator(schema_name: str) -> Any:
    import jsonschema

    spec = _spec()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema)


def validate(body: Any, schema_name: str) -> None:
    """Fail the test if `body` does not satisfy the named component schema."""
    if not SPEC_PATH.exists():
        pytest.skip(f"OpenAI's OpenAPI spec is not at {SPEC_PATH} (CI always has it)")
    errors = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
