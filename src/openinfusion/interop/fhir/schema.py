"""The official FHIR R4 JSON Schema (vendored, data/README.md), which catches what the R4B models let through.

fhir.resources' R4B models parse and type-check but do not enforce required value-set bindings (they
accept ``"status": "bogus"``); the R4 schema does. :func:`schema_errors` validates a resource against
its own ``#/definitions/<resourceType>`` (clear paths, unlike the top-level ``oneOf``) and returns one
``path: message`` per problem. Validators are compiled once per resource type.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft6Validator

from openinfusion.errors import InputError


@cache
def _schema() -> dict[str, Any]:
    data = resources.files("openinfusion.interop.fhir").joinpath("data/fhir.schema.json.gz").read_bytes()
    schema: dict[str, Any] = json.loads(gzip.decompress(data))
    return schema


@cache
def _validator(resource_type: str) -> Draft6Validator:
    root = _schema()
    if resource_type not in root["definitions"]:
        raise InputError("resourceType", f"{resource_type!r} is not an R4 resource type")
    return Draft6Validator({"$ref": f"#/definitions/{resource_type}", "definitions": root["definitions"]})


def _path(parts: object) -> str:
    text = ""
    for part in parts:  # type: ignore[attr-defined]
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """Every R4 schema violation in ``resource``, as ``Type.path: message`` (empty when valid)."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return ["resourceType: missing or not a string"]
    try:
        validator = _validator(kind)
    except InputError as e:
        return [f"{e.where}: {e.why}"]
    found = []
    for error in sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path)):
        where = f"{kind}{_path(error.absolute_path)}"
        inner = error.instance
        if error.validator == "oneOf" and isinstance(inner, dict) and isinstance(inner.get("resourceType"), str):
            # a contained resource: say what is wrong inside it, not that it matches none of 148 types
            found += [where + nested.removeprefix(inner["resourceType"]) for nested in schema_errors(inner)]
        else:
            found.append(f"{where}: {error.message[:300]}")
    return found


def check_resource(resource: dict[str, Any]) -> None:
    """Raise :class:`InputError` naming the first violation's path, if ``resource`` is not valid R4."""
    errors = schema_errors(resource)
    if errors:
        where, _, why = errors[0].partition(": ")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(where, why + more)
