# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS IoT policy documents: the local checks before a document is sent, and the normal form they are compared in.

No AWS call and no client: the ``policy`` module, the provisioning role (IAM trust and permission documents) and the
template engine's planner compare documents through ``normalize_document`` / ``documents_equal``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ansible_collections.iotfleet.provisioning.plugins.module_utils import validation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

REQUIRED_DOCUMENT_KEYS = ("Version", "Statement")

# Statement elements whose value may be written as a string or a list of strings;
# a one-item list and the plain string mean the same.
_LIST_OR_SCALAR_ELEMENTS = frozenset({"Action", "NotAction", "Resource", "NotResource"})
_PRINCIPAL_ELEMENTS = frozenset({"Principal", "NotPrincipal"})


# ---------------------------------------------------------------------------
# Validation (no AWS call, no client)
# ---------------------------------------------------------------------------


def size_without_whitespace(text: str) -> int:
    """How AWS measures a policy document: its characters, whitespace not counted."""
    return sum(1 for ch in text if not ch.isspace())


def parse_document(value: Any, field: str = "document") -> tuple[dict[str, Any], str]:
    """The document as a dict and as the JSON text to send, after every local check.

    A JSON string is sent as given (its formatting is the user's); a dict is sent
    as indented JSON. Checks: a JSON object, ``Version`` and ``Statement`` present,
    ``Statement`` an object or a non-empty list of objects, and at most 2048
    characters excluding whitespace.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValidationError(field, "a policy document must be a JSON object, got an empty string")
        try:
            parsed = json.loads(text)
        except ValueError as e:
            raise ValidationError(field, f"a policy document must be valid JSON: {e}") from None
    elif isinstance(value, Mapping):
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise ValidationError(field, f"a policy document must be JSON-serialisable: {e}") from None
        parsed = json.loads(text)
    else:
        raise ValidationError(field, f"a policy document must be a dict or a JSON string, got {_json_kind(value)}")
    if not isinstance(parsed, dict):
        raise ValidationError(field, f"a policy document must be a JSON object, got a JSON {_json_kind(parsed)}")
    missing = [key for key in REQUIRED_DOCUMENT_KEYS if key not in parsed]
    if missing:
        raise ValidationError(
            field, "a policy document must have " + " and ".join(repr(k) for k in missing) + " at the top level"
        )
    statement = parsed["Statement"]
    statements = statement if isinstance(statement, list) else [statement]
    if not statements or not all(isinstance(item, dict) for item in statements):
        raise ValidationError(field, "'Statement' must be an object or a non-empty list of objects")
    for index, item in enumerate(statements):
        check_statement(f"{field}.Statement[{index}]", item)
    size = size_without_whitespace(text)
    if size > validation.POLICY_DOCUMENT_MAX:
        raise ValidationError(
            field,
            f"a policy document may have at most {validation.POLICY_DOCUMENT_MAX} characters excluding whitespace, "
            f"this one has {size}",
        )
    return parsed, text


def check_statement(field: str, statement: Mapping[str, Any]) -> None:
    """What AWS IoT refuses in a statement (MalformedPolicyException): an Effect other than Allow or Deny (case
    matters: "Alow" or "allow" would be refused, never read as either), or no action or no resource."""
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise ValidationError(field, f'\'Effect\' must be "Allow" or "Deny" (case matters), got {effect!r}')
    for kind in ("Action", "Resource"):
        if kind not in statement and f"Not{kind}" not in statement:
            raise ValidationError(field, f"a statement needs '{kind}' (or 'Not{kind}')")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


# ---------------------------------------------------------------------------
# Normalisation and comparison
# ---------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """Dicts with sorted keys, all the way down; lists keep their order."""
    if isinstance(value, Mapping):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def _one_or_many(value: Any) -> Any:
    """A one-item list is the same as its item (IAM-style grammar)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return _canonical(value[0])
    return _canonical(value)


def _normalize_condition(condition: Any) -> Any:
    if not isinstance(condition, Mapping):
        return _canonical(condition)
    out = {}
    for operator in sorted(condition):
        body = condition[operator]
        if isinstance(body, Mapping):
            out[operator] = {key: _one_or_many(body[key]) for key in sorted(body)}
        else:
            out[operator] = _canonical(body)
    return out


def _normalize_statement(statement: Any) -> Any:
    if not isinstance(statement, Mapping):
        return _canonical(statement)
    out = {}
    for key in sorted(statement):
        value = statement[key]
        if key in _LIST_OR_SCALAR_ELEMENTS:
            out[key] = _one_or_many(value)
        elif key == "Condition":
            out[key] = _normalize_condition(value)
        elif key in _PRINCIPAL_ELEMENTS and isinstance(value, Mapping):
            out[key] = {kind: _one_or_many(value[kind]) for kind in sorted(value)}
        else:
            out[key] = _canonical(value)
    return out


def normalize_document(document: Any) -> Any:
    """The document in a canonical form, for comparison and diff.

    Not significant (normalised away): key order, whitespace (the document is
    parsed), a one-item list versus the plain value for Action, NotAction,
    Resource, NotResource, Principal entries and Condition values, and
    ``Statement`` as one object versus a one-item list. Significant: every value,
    including ``Version`` and ``Sid``, and the order of lists with several items.
    A value that is not a JSON object (a remote document that is not JSON) is
    returned unchanged.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
    if not isinstance(document, Mapping):
        return document
    out = {}
    for key in sorted(document):
        value = document[key]
        if key == "Statement":
            statements = value if isinstance(value, (list, tuple)) else [value]
            out[key] = [_normalize_statement(item) for item in statements]
        else:
            out[key] = _canonical(value)
    return out


def documents_equal(current: Any, desired: Any) -> bool:
    return normalize_document(current) == normalize_document(desired)


def parse_remote_document(text: Any) -> Any:
    """A JSON document as AWS returns it (a string: a policy document, a CA's registration template body), parsed;
    text that is not JSON stays text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
