"""Validates bodies against OpenAI's own schemas in ../shared/openai-openapi.yaml (skips where it is absent)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi.yaml"


def _spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"OpenAI's OpenAPI spec is not at {SPEC_PATH} (CI always has it)")
    return _load_spec()


@functools.cache
def _load_spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as f:
        spec: dict[str, Any] = yaml.load(f, Loader=loader)
    return spec


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema says it (a Draft 2020-12 validator ignores the keyword)."""
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    all_of = node.get("allOf")
    if isinstance(all_of, list) and {"nullable": True} in all_of:  # allOf: [$ref, {nullable: true}]
        out["allOf"] = [_nullable(v) for v in all_of if v != {"nullable": True}]
        return {"anyOf": [out, {"type": "null"}]}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _components() -> Any:
    return _nullable(_spec()["components"])


@functools.cache
def _validator(schema_name: str) -> Any:
    import jsonschema

    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    return jsonschema.Draft202012Validator(schema)


def validate(body: Any, schema_name: str) -> None:
    """Fail the test if `body` does not satisfy the named component schema."""
    if not SPEC_PATH.exists():
        pytest.skip(f"OpenAI's OpenAPI spec is not at {SPEC_PATH} (CI always has it)")
    errors = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
