# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Static checks of template expressions (Ref, Fn::*) and the rules for literal values."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.limits import (
    _ATTRIBUTE_NAME,
    _ATTRIBUTE_VALUE,
    _CERTIFICATE_ID,
    _FUNCTION_LIST,
    _NAME,
    _SUB_VARIABLE,
    ANY,
    FLEET_PROVISIONING_PARAMETERS,
    FUNCTIONS,
    JITP_PARAMETERS,
    LIST,
    PSEUDO_PARAMETERS,
    STRING,
    TemplateError,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    ATTRIBUTE_NAME_MAX,
    ATTRIBUTE_NAME_PATTERN,
    ATTRIBUTE_VALUE_MAX,
    ATTRIBUTE_VALUE_PATTERN,
    MAX_ATTRIBUTES_WITH_TYPE,
    MAX_ATTRIBUTES_WITHOUT_TYPE,
    POLICY_DOCUMENT_MAX,
    RESOURCE_NAME_MAX,
    RESOURCE_NAME_PATTERN,
    check_policy_name,
)

# --- small helpers --------------------------------------------------------------------------------------------


def _at(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _unknown_key(path: str, key: str, allowed: Iterable[str], what: str) -> TemplateError:
    allowed = list(allowed)
    return TemplateError(_at(path, key), f"unknown {what}{_suggest(key, allowed)}; allowed: {', '.join(allowed)}")


def _plain(value: Any, path: str, numbers_as_text: bool = False) -> Any:
    """A JSON-shaped copy (dict, list, str, int, float, bool, None); anything else is refused with its path.

    ``numbers_as_text``: numbers become their text, as the thing module does with attribute values. A body
    given as data comes from Ansible, where ``"{{ item }}"`` holding 5 stays the number 5 and cannot be quoted;
    every value of a provisioning template is a string, so the text is what was meant.
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TemplateError(_at(path, str(key)), f"keys must be strings, got {_kind_of(key)}")
            out[str(key)] = _plain(item, _at(path, key), numbers_as_text)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, _at(path, i), numbers_as_text) for i, item in enumerate(value)]
    if isinstance(value, str):
        return str(value)
    if numbers_as_text and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise TemplateError(path, f"unsupported value of type {type(value).__name__}; templates are JSON")


def _reject_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TemplateError("template_body", f"duplicate key {key!r} in the JSON body")
        out[key] = value
    return out


def load_body(body: Any) -> Dict[str, Any]:
    """The template as a dict, from a dict, a JSON string or (when PyYAML is present) a YAML string."""
    if isinstance(body, Mapping):
        data = body
    elif isinstance(body, str):
        data = _load_string(body)
    else:
        raise TemplateError("template_body", f"must be a map, a JSON string or a YAML string, got {_kind_of(body)}")
    if not isinstance(data, Mapping):
        raise TemplateError("template_body", f"must be an object of sections, got {_kind_of(data)}")
    return _plain(data, "", numbers_as_text=isinstance(body, Mapping))


def _yaml() -> Tuple[bool, Any]:
    # Read through the package at call time: callers (and tests) switch YAML off there.
    from ansible_collections.iotfleet.provisioning.plugins.module_utils import template_engine

    return template_engine.HAS_YAML, template_engine.yaml_load


def _load_string(text: str) -> Any:
    has_yaml, yaml_load = _yaml()
    if not text.strip():
        raise TemplateError("template_body", "is empty")
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except ValueError as json_error:
        if isinstance(json_error, TemplateError):
            raise
        if text.lstrip().startswith(("{", "[")) or not has_yaml:
            extra = "" if has_yaml else " (YAML bodies need PyYAML, which is not installed)"
            raise TemplateError("template_body", f"is not valid JSON: {json_error}{extra}") from None
    try:
        return yaml_load(text)
    except Exception as yaml_error:  # PyYAML raises several unrelated classes
        detail = str(yaml_error).splitlines()[0] if str(yaml_error) else type(yaml_error).__name__
        hint = ""
        if "constructor for the tag" in str(yaml_error):
            hint = "; YAML short-form tags such as !Ref or !Sub are not supported, use {Ref: Name} or {Fn::Sub: ...}"
        raise TemplateError("template_body", f"is neither valid JSON nor valid YAML: {detail}{hint}") from None


# --- expressions: static checks -------------------------------------------------------------------------------


def _function_call(value: Any) -> Optional[Tuple[str, Any]]:
    """(name, argument) when value is a function object such as {"Ref": "X"}, else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if _looks_like_function(key):
            return key, argument
    return None


def _looks_like_function(key: str) -> bool:
    return key in ("Ref", "Condition") or key.startswith("Fn:")


def _reject_mixed_object(value: Dict[str, Any], path: str) -> None:
    keys = [k for k in value if _looks_like_function(k)]
    if keys and len(value) > 1:
        raise TemplateError(_at(path, keys[0]), "a function must be the only key of its object")


class _Scope:
    """What a template may reference: its parameters, the pseudo parameters of its type, its mappings."""

    def __init__(self, body: Mapping[str, Any], template_type: Optional[str]):
        self.parameters = body.get("Parameters") or {}
        self.mappings = body.get("Mappings") or {}
        self.resources = body.get("Resources") or {}
        self.template_type = template_type

    def can_ref(self, name: str) -> bool:
        return name in self.parameters or name in PSEUDO_PARAMETERS[self.template_type]

    def ref_error(self, name: str, path: str) -> TemplateError:
        if name in self.resources:
            return TemplateError(path, f"{name} is a resource; Ref can only name a parameter in provisioning templates")
        if name.startswith("AWS::IoT::Certificate::"):
            if name in JITP_PARAMETERS:
                return TemplateError(
                    path,
                    f"{name} is filled in by AWS only for JITP templates"
                    + (" and fleet provisioning templates" if name in FLEET_PROVISIONING_PARAMETERS else "")
                    + "; declare it under Parameters to pass its value yourself",
                )
            return TemplateError(
                path, f"{name} is not a parameter AWS IoT documents; known: {', '.join(JITP_PARAMETERS)}"
            )
        return TemplateError(path, f"{name} is not a declared parameter{_suggest(name, self.parameters)}")


def _check_expr(value: Any, path: str, scope: _Scope, kind: str) -> None:
    """Check a value that may be a literal or a function call and must produce ``kind``."""
    call = _function_call(value)
    if call is not None:
        name, argument = call
        produced = _check_function(name, argument, _at(path, name), scope)
        if kind != ANY and produced not in (ANY, kind):
            raise TemplateError(path, f"{name} returns a {produced}, but a {kind} is expected here")
        return
    if isinstance(value, dict):
        _reject_mixed_object(value, path)
        if kind == ANY:
            for key, item in value.items():
                _check_expr(item, _at(path, key), scope, ANY)
            return
        raise TemplateError(path, f"must be a {kind}, got an object")
    if isinstance(value, list):
        if kind == STRING:
            raise TemplateError(path, "must be a string, got a list")
        for i, item in enumerate(value):
            _check_expr(item, _at(path, i), scope, STRING if kind == LIST else ANY)
        return
    if kind == LIST:
        raise TemplateError(path, f"must be a list of strings, got {_kind_of(value)}")
    if kind == STRING and not isinstance(value, str):
        raise TemplateError(path, f"must be a string, got {_kind_of(value)}; quote it")


def _arguments(argument: Any, path: str, name: str, count: int) -> List[Any]:
    if not isinstance(argument, list) or len(argument) != count:
        raise TemplateError(path, f"{name} takes a list of {count} arguments, got {_kind_of(argument)}")
    return argument


def _check_function(name: str, argument: Any, path: str, scope: _Scope) -> str:
    """Validate one function call; return the kind of value it produces."""
    if name == "Ref":
        if not isinstance(argument, str):
            raise TemplateError(path, f"must name a parameter as a string, got {_kind_of(argument)}")
        if not scope.can_ref(argument):
            raise scope.ref_error(argument, path)
        return STRING
    if name == "Fn::Join":
        delimiter, items = _arguments(argument, path, name, 2)
        if not isinstance(delimiter, str):
            raise TemplateError(_at(path, 0), f"the delimiter must be a string, got {_kind_of(delimiter)}")
        _check_expr(items, _at(path, 1), scope, LIST)
        return STRING
    if name == "Fn::Select":
        index, items = _arguments(argument, path, name, 2)
        _check_index(index, _at(path, 0), scope)
        _check_expr(items, _at(path, 1), scope, LIST)
        if isinstance(items, list) and _function_call(index) is None and int(index) >= len(items):
            raise TemplateError(_at(path, 0), f"index {int(index)} is out of range for a list of {len(items)}")
        return STRING
    if name == "Fn::Split":
        delimiter, source = _arguments(argument, path, name, 2)
        if not isinstance(delimiter, str) or not delimiter:
            raise TemplateError(_at(path, 0), "the delimiter must be a non-empty string")
        _check_expr(source, _at(path, 1), scope, STRING)
        return LIST
    if name == "Fn::Sub":
        _check_sub(argument, path, scope)
        return STRING
    if name == "Fn::FindInMap":
        keys = _arguments(argument, path, name, 3)
        for i, key in enumerate(keys):
            _check_expr(key, _at(path, i), scope, STRING)
        _check_static_lookup(keys, path, scope)
        return ANY
    if name == "Condition":
        raise TemplateError(path, "Conditions are not supported in AWS IoT provisioning templates")
    if name.startswith("Fn::"):
        raise TemplateError(path, f"{name} is not supported in AWS IoT provisioning templates; use {_FUNCTION_LIST}")
    raise TemplateError(path, f"unknown function {name}{_suggest(name, FUNCTIONS)}; use {_FUNCTION_LIST}")


def _check_index(index: Any, path: str, scope: _Scope) -> None:
    if _function_call(index) is not None:
        _check_expr(index, path, scope, STRING)
    elif isinstance(index, bool) or not (
        (isinstance(index, int) and index >= 0) or (isinstance(index, str) and index.isdigit())
    ):
        raise TemplateError(path, f"the index must be a non-negative integer, got {index!r}")


def _check_sub(argument: Any, path: str, scope: _Scope) -> None:
    variables: Dict[str, Any] = {}
    if isinstance(argument, list):
        text, variables = _arguments(argument, path, "Fn::Sub", 2)
        if not isinstance(variables, dict):
            raise TemplateError(_at(path, 1), f"the variables must be an object, got {_kind_of(variables)}")
        for key, item in variables.items():
            _check_expr(item, _at(_at(path, 1), key), scope, STRING)
        text_path = _at(path, 0)
    else:
        text, text_path = argument, path
    if not isinstance(text, str):
        raise TemplateError(text_path, f"must be a string, got {_kind_of(text)}")
    for token in _SUB_VARIABLE.findall(text):
        if token.startswith("!") or token in variables or scope.can_ref(token):
            continue
        if token.startswith("iot:"):
            raise TemplateError(text_path, f"${{{token}}} is a policy variable: write ${{!{token}}} inside Fn::Sub")
        if "." in token:
            raise TemplateError(text_path, f"${{{token}}}: resource attributes are not supported in IoT templates")
        raise TemplateError(text_path, f"${{{token}}}: {scope.ref_error(token, text_path).message}")


def _check_static_lookup(keys: List[Any], path: str, scope: _Scope) -> None:
    table = keys[0]
    if not isinstance(table, str):
        return
    if table not in scope.mappings:
        raise TemplateError(_at(path, 0), f"no mapping named {table} in Mappings{_suggest(table, scope.mappings)}")
    top = keys[1]
    if not isinstance(top, str):
        return
    if top not in scope.mappings[table]:
        raise TemplateError(_at(path, 1), f"no key {top} in Mappings.{table}")
    second = keys[2]
    if isinstance(second, str) and second not in scope.mappings[table][top]:
        raise TemplateError(_at(path, 2), f"no key {second} in Mappings.{table}.{top}")


# --- literal value rules (applied to literals at parse time and to every value after rendering) ---------------


def _check_name(value: str, path: str, what: str = "a name") -> None:
    if not 1 <= len(value) <= RESOURCE_NAME_MAX or not _NAME.fullmatch(value):
        raise TemplateError(
            path, f"must be {what} of 1-{RESOURCE_NAME_MAX} characters matching {RESOURCE_NAME_PATTERN}, got {value!r}"
        )


def _check_attribute(name: str, value: Any, path: str) -> None:
    if len(name) > ATTRIBUTE_NAME_MAX or not _ATTRIBUTE_NAME.fullmatch(name):
        raise TemplateError(
            path,
            f"attribute names must be 1-{ATTRIBUTE_NAME_MAX} characters matching {ATTRIBUTE_NAME_PATTERN}, "
            f"got {name!r}",
        )
    if isinstance(value, str) and (len(value) > ATTRIBUTE_VALUE_MAX or not _ATTRIBUTE_VALUE.fullmatch(value)):
        raise TemplateError(
            path,
            f"attribute values must be at most {ATTRIBUTE_VALUE_MAX} characters matching {ATTRIBUTE_VALUE_PATTERN}, "
            f"got {value!r}",
        )


def _check_attribute_count(count: int, has_type: bool, path: str) -> None:
    limit = MAX_ATTRIBUTES_WITH_TYPE if has_type else MAX_ATTRIBUTES_WITHOUT_TYPE
    if count > limit:
        kind = "with" if has_type else "without"
        raise TemplateError(path, f"a thing {kind} a thing type can have at most {limit} attributes, got {count}")


def _check_certificate_id(value: str, path: str) -> None:
    if not _CERTIFICATE_ID.fullmatch(value):
        raise TemplateError(path, f"must be a certificate id of 64 hexadecimal characters, got {value!r}")


def _check_choice(value: str, choices: Tuple[str, ...], path: str, case_insensitive: bool = False) -> str:
    candidate = value.upper() if case_insensitive else value
    if candidate not in choices:
        raise TemplateError(path, f"must be one of {', '.join(choices)}, got {value!r}")
    return candidate


def _check_policy_name(value: str, path: str) -> None:
    try:
        check_policy_name(path, value)
    except ValidationError as e:
        raise TemplateError(path, e.rule) from None


def _policy_document(value: Any, path: str) -> Dict[str, Any]:
    """A policy document from an escaped JSON string or an object; checked for shape and size."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise TemplateError(
                path, f"must be a JSON policy document (an escaped JSON string or an object): {e}"
            ) from None
    if not isinstance(value, dict):
        raise TemplateError(path, f"must be a JSON object, got {_kind_of(value)}")
    size = len(re.sub(r"\s", "", json.dumps(value, separators=(",", ":"))))
    if size > POLICY_DOCUMENT_MAX:
        raise TemplateError(path, f"a policy document can have at most {POLICY_DOCUMENT_MAX} characters, got {size}")
    return value
