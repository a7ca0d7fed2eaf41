"""Server-side input validation, driven by the botocore IoT model.

botocore checks types, required members and minimum lengths on the client, but not patterns, maximum
lengths, enums or integer ranges; AWS checks all of them on the server and answers InvalidRequestException
("1 validation error detected: Value 'x' at 'thingName' failed to satisfy constraint: ..."). moto checks none
of them, so this module does, for every IoT operation, before moto sees the request.

The model's patterns are Java regular expressions matched against the whole value; the few Java-only
classes they use (``\\p{Graph}`` and friends) are translated below to their ASCII equivalents.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from fidelity_core import InvalidRequestException

# Java character classes the model uses -> Python character-class bodies (ASCII, as Java's default).
_JAVA_CLASSES = {
    r"\p{Graph}": r"\x21-\x7e",
    r"\p{Print}": r"\x20-\x7e",
    r"\p{Cntrl}": r"\x00-\x1f\x7f",
    r"\p{C}": r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff",
    r"\p{Upper}": r"A-Z",
    r"\p{Lower}": r"a-z",
    r"\p{Digit}": r"0-9",
    r"\p{Alnum}": r"a-zA-Z0-9",
    r"\p{L}": r"a-zA-Z\u00aa-\u02ff\u0370-\u1fff\u2c00-\ud7ff\uf900-\ufdff",
    r"\p{N}": r"0-9",
    r"\p{Z}": r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000",
}


@functools.lru_cache(maxsize=1)
def service_model() -> Any:
    return botocore.session.get_session().get_service_model("iot")


@functools.lru_cache(maxsize=None)
def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """The model's Java pattern as a Python regex (ASCII semantics), or None if it cannot be translated."""
    translated = pattern
    for java, python in _JAVA_CLASSES.items():
        translated = translated.replace(java, python)
    try:
        return re.compile(translated, re.ASCII)
    except re.error:
        return None


def _describe(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 100 else text[:100] + "..."


def shape_errors(shape: Any, value: Any, path: str) -> list[str]:
    """AWS-style constraint messages for ``value`` against ``shape`` (empty when it is valid)."""
    if value is None:
        return []
    meta = shape.metadata
    kind = shape.type_name
    prefix = f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: Member must"
    errors: list[str] = []
    if kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(f"{prefix} satisfy enum value set: [{', '.join(shape.enum)}]")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{prefix} have length less than or equal to {meta['max']}")
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{prefix} have length greater than or equal to {meta['min']}")
        regex = compiled_pattern(meta["pattern"]) if "pattern" in meta else None
        if regex is not None and regex.fullmatch(value) is None:
            errors.append(f"{prefix} satisfy regular expression pattern: {meta['pattern']}")
    elif kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{prefix} have value less than or equal to {meta['max']}")
        if "min" in meta and value < meta["min"]:
            errors.append(f"{prefix} have value greater than or equal to {meta['min']}")
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{prefix} have length less than or equal to {meta['max']}")
        for index, item in enumerate(value):
            errors += shape_errors(shape.member, item, f"{path}.{index + 1}.member")
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{prefix} have length less than or equal to {meta['max']}")
        for key, item in value.items():
            errors += [f"Map keys must satisfy constraint: [{e}]" for e in shape_errors(shape.key, key, f"{path}")]
            errors += shape_errors(shape.value, item, f"{path}.{key}")
    elif kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            errors += shape_errors(member, value.get(name), f"{path}.{name}" if path else name)
    return errors


def request_errors(operation: str, params: dict[str, Any]) -> list[str]:
    """Every constraint the parsed input of ``operation`` violates."""
    try:
        input_shape = service_model().operation_model(operation).input_shape
    except Exception:  # an operation the model does not know (e.g. one of our extensions)
        return []
    if input_shape is None:
        return []
    return shape_errors(input_shape, params, "")


def validation_error(errors: list[str]) -> InvalidRequestException:
    count = len(errors)
    noun = "validation error" if count == 1 else "validation errors"
    return InvalidRequestException(f"{count} {noun} detected: {'; '.join(errors)}")


def check_request(response: Any, action: str) -> InvalidRequestException | None:
    """Validate the request a moto IoTResponse holds; the error to answer with, or None."""
    try:
        response.parse_parameters(response.normalized_request)
        params = dict(response.params)
    except Exception:  # moto could not parse it against its model: leave the request to moto
        return None
    errors = request_errors(action, params)
    return validation_error(errors) if errors else None
