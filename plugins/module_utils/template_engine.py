# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS IoT provisioning templates: parse, validate, render and plan.

The rules here follow the AWS IoT developer guide ("Provisioning templates",
"Just-in-time provisioning", "Fleet provisioning", "Single thing provisioning")
and the limits of botocore's IoT service model. Everything is pure Python except
``read_current_state``, which reads the account with a boto3 IoT client.

Flow: ``parse(body)`` -> ``ProvisioningTemplate`` (structure, sections, functions,
references checked) -> ``render(template, parameters)`` -> a plain ``rendered``
dict (thing, certificate, policies, device_configuration) -> ``plan(rendered,
current)`` -> a list of actions, where ``current`` is the snapshot that
``read_current_state`` returns (or a test builds by hand).

Decisions where the documentation is silent (each is a named constant or a
comment below): a property without an OverrideSettings entry is treated as
DO_NOTHING on an existing resource; a template provisions at most one thing and
one certificate; only ``String`` parameters exist; a declared parameter without
a value or Default is an error.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ValidationError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policies import normalize_document
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import check_policy_name

try:
    from ansible.module_utils.common.yaml import HAS_YAML, yaml_load
except ImportError:  # pragma: no cover - very old ansible-core
    HAS_YAML = False
    yaml_load = None


# --- limits and vocabulary -------------------------------------------------------------------------------------

TEMPLATE_BODY_MAX = 10240  # RegisterThing / CreateProvisioningTemplate templateBody
PARAMETER_KEY_MAX = 2048  # RegisterThing parameters: key
PARAMETER_VALUE_MAX = 4096  # RegisterThing parameters: value
CSR_MAX = 4096  # CertificateSigningRequest shape
POLICY_DOCUMENT_MAX = 2048  # characters, whitespace excluded
MAX_POLICIES_PER_CERTIFICATE = 10
MAX_THING_GROUPS = 10
MAX_ATTRIBUTES_WITHOUT_TYPE = 3
MAX_ATTRIBUTES_WITH_TYPE = 50

TEMPLATE_TYPES = ("FLEET_PROVISIONING", "JITP")
SECTIONS = ("Parameters", "Resources", "Mappings", "DeviceConfiguration")

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
RESOURCE_TYPES = (THING, CERTIFICATE, POLICY)
RESOURCE_KEYS = ("Type", "Properties", "OverrideSettings")

THING_PROPERTIES = ("ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup")
CERTIFICATE_SOURCES = ("CertificateSigningRequest", "CertificateId", "CertificatePem")
CERTIFICATE_PROPERTIES = (*CERTIFICATE_SOURCES, "CACertificatePem", "Status", "ThingPrincipalType")
POLICY_PROPERTIES = ("PolicyName", "PolicyDocument")

OVERRIDE_ACTIONS = ("DO_NOTHING", "REPLACE", "FAIL", "MERGE")
# OverrideSettings keys for a thing are the property names (as in every AWS JSON example); MERGE only for two.
THING_OVERRIDE_KEYS = ("AttributePayload", "ThingTypeName", "ThingGroups")
MERGEABLE = ("AttributePayload", "ThingGroups")
CERTIFICATE_OVERRIDE_KEYS = ("Status",)
# AWS does not document what happens to an existing resource when a property has no OverrideSettings entry.
# Leaving it as is never reports a change AWS would not make; differences left alone are listed under
# "ignored" in the plan so a module can show them.
DEFAULT_OVERRIDE = "DO_NOTHING"

CERTIFICATE_STATUSES = ("ACTIVE", "INACTIVE")
THING_PRINCIPAL_TYPES = ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING")

# Filled from the device certificate's subject by just-in-time provisioning (JITP developer guide page).
JITP_PARAMETERS = tuple(
    "AWS::IoT::Certificate::" + field
    for field in (
        "Country",
        "Organization",
        "OrganizationalUnit",
        "DistinguishedNameQualifier",
        "StateName",
        "CommonName",
        "SerialNumber",
        "Id",
    )
)
# The fleet provisioning example references the id of the certificate the device just obtained without declaring it.
FLEET_PROVISIONING_PARAMETERS = ("AWS::IoT::Certificate::Id",)
PSEUDO_PARAMETERS: Dict[Optional[str], Tuple[str, ...]] = {
    None: (),
    "JITP": JITP_PARAMETERS,
    "FLEET_PROVISIONING": FLEET_PROVISIONING_PARAMETERS,
}

FUNCTIONS = ("Ref", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::FindInMap")
_FUNCTION_LIST = "Ref, Fn::Join, Fn::Select, Fn::Split, Fn::Sub and Fn::FindInMap"

_NAME = re.compile(r"[a-zA-Z0-9:_-]+")
_ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9_.,@/:#-]+")
_ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]*")
_CERTIFICATE_ID = re.compile(r"[a-fA-F0-9]{64}")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

# Result kinds of expressions, checked before rendering.
STRING = "string"
LIST = "list of strings"
ANY = "value"


class TemplateError(ValidationError):
    """A template or parameter that breaks a documented rule; ``path`` points into the template."""

    def __init__(self, path: str, message: str):
        super().__init__(path or "template_body", message)
        self.path = path or "template_body"
        self.message = message


@dataclass(frozen=True)
class ProvisioningTemplate:
    """A parsed, validated template body and the provisioning type it was validated for."""

    body: Dict[str, Any]
    template_type: Optional[str] = None

    @property
    def parameters(self) -> Dict[str, Any]:
        return self.body.get("Parameters") or {}

    @property
    def resources(self) -> Dict[str, Any]:
        return self.body.get("Resources") or {}

    @property
    def mappings(self) -> Dict[str, Any]:
        return self.body.get("Mappings") or {}

    def to_json(self) -> str:
        return template_body_json(self.body)


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


def template_body_json(body: Mapping[str, Any]) -> str:
    """The template as sent to AWS: compact JSON, non-ASCII kept as is."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


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


def _load_string(text: str) -> Any:
    if not text.strip():
        raise TemplateError("template_body", "is empty")
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except ValueError as json_error:
        if isinstance(json_error, TemplateError):
            raise
        if text.lstrip().startswith(("{", "[")) or not HAS_YAML:
            extra = "" if HAS_YAML else " (YAML bodies need PyYAML, which is not installed)"
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
    if not 1 <= len(value) <= 128 or not _NAME.fullmatch(value):
        raise TemplateError(path, f"must be {what} of 1-128 characters matching [a-zA-Z0-9:_-]+, got {value!r}")


def _check_attribute(name: str, value: Any, path: str) -> None:
    if len(name) > 128 or not _ATTRIBUTE_NAME.fullmatch(name):
        raise TemplateError(
            path, f"attribute names must be 1-128 characters matching [a-zA-Z0-9_.,@/:#-]+, got {name!r}"
        )
    if isinstance(value, str) and (len(value) > 800 or not _ATTRIBUTE_VALUE.fullmatch(value)):
        raise TemplateError(
            path, f"attribute values must be at most 800 characters matching [a-zA-Z0-9_.,@/:#=\\[\\]-]*, got {value!r}"
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


# --- parse ----------------------------------------------------------------------------------------------------


def parse(body: Any, template_type: Optional[str] = None) -> ProvisioningTemplate:
    """Load and validate a template; with ``template_type`` also apply the rules of that provisioning type."""
    if template_type is not None:
        _check_choice(template_type, TEMPLATE_TYPES, "template_type")
    data = load_body(body)
    size = len(template_body_json(data))
    if size > TEMPLATE_BODY_MAX:
        raise TemplateError("template_body", f"must be at most {TEMPLATE_BODY_MAX} characters as JSON, got {size}")
    _validate_sections(data)
    _validate_parameters(data.get("Parameters"))
    _validate_mappings(data.get("Mappings"))
    scope = _Scope(data, template_type)
    _validate_resources(data.get("Resources"), scope)
    _validate_device_configuration(data.get("DeviceConfiguration"), scope)
    template = ProvisioningTemplate(data, template_type)
    if template_type is not None:
        validate_for(template, template_type)
    return template


def _validate_sections(data: Mapping[str, Any]) -> None:
    for key in data:
        if key == "Conditions":
            raise TemplateError(key, "Conditions are not supported in AWS IoT provisioning templates")
        if key not in SECTIONS:
            raise _unknown_key("", key, SECTIONS, "section")
    if "Resources" not in data:
        raise TemplateError("Resources", "is required")


def _validate_parameters(parameters: Any) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise TemplateError("Parameters", f"must be an object, got {_kind_of(parameters)}")
    for name, spec in parameters.items():
        path = _at("Parameters", name)
        if not name or len(name) > PARAMETER_KEY_MAX:
            raise TemplateError(path, f"parameter names must be 1-{PARAMETER_KEY_MAX} characters")
        if not isinstance(spec, dict):
            raise TemplateError(path, f"must be an object with Type (and optional Default), got {_kind_of(spec)}")
        for key in spec:
            if key not in ("Type", "Default"):
                raise _unknown_key(path, key, ("Type", "Default"), "parameter attribute")
        if "Type" not in spec:
            raise TemplateError(_at(path, "Type"), "is required (String)")
        if spec["Type"] != "String":
            raise TemplateError(
                _at(path, "Type"),
                f"must be String (the only parameter type AWS IoT documents), got {spec['Type']!r}",
            )
        if "Default" in spec and not isinstance(spec["Default"], str):
            raise TemplateError(_at(path, "Default"), f"must be a string, got {_kind_of(spec['Default'])}; quote it")


def _validate_mappings(mappings: Any) -> None:
    if mappings is None:
        return
    if not isinstance(mappings, dict):
        raise TemplateError("Mappings", f"must be an object, got {_kind_of(mappings)}")
    for table, tops in mappings.items():
        _check_mapping_level(tops, _at("Mappings", table))
        for top, seconds in tops.items():
            _check_mapping_level(seconds, _at(_at("Mappings", table), top))
            for second, leaf in seconds.items():
                path = _at(_at(_at("Mappings", table), top), second)
                if _function_call(leaf) is not None:
                    raise TemplateError(path, "Mappings cannot contain functions or parameter references")
                if not (isinstance(leaf, str) or (isinstance(leaf, list) and all(isinstance(x, str) for x in leaf))):
                    raise TemplateError(
                        path, f"mapping values must be strings or lists of strings, got {_kind_of(leaf)}"
                    )


def _check_mapping_level(level: Any, path: str) -> None:
    if _function_call(level) is not None:
        raise TemplateError(path, "Mappings cannot contain functions or parameter references")
    if not isinstance(level, dict) or not level:
        raise TemplateError(path, "must be a non-empty object (Mappings have two levels of keys)")


def _validate_resources(resources: Any, scope: _Scope) -> None:
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("Resources", "must be a non-empty object of resources")
    counts = {THING: 0, CERTIFICATE: 0, POLICY: 0}
    for logical_id, resource in resources.items():
        path = _at("Resources", logical_id)
        if not logical_id:
            raise TemplateError(path, "logical ids must not be empty")
        if not isinstance(resource, dict):
            raise TemplateError(path, f"must be an object with Type and Properties, got {_kind_of(resource)}")
        for key in resource:
            if key == "Condition":
                raise TemplateError(_at(path, key), "Conditions are not supported in AWS IoT provisioning templates")
            if key not in RESOURCE_KEYS:
                raise _unknown_key(path, key, RESOURCE_KEYS, "resource attribute")
        rtype = resource.get("Type")
        if rtype not in RESOURCE_TYPES:
            raise TemplateError(_at(path, "Type"), f"must be one of {', '.join(RESOURCE_TYPES)}, got {rtype!r}")
        counts[rtype] += 1
        properties = resource.get("Properties")
        if not isinstance(properties, dict):
            raise TemplateError(
                _at(path, "Properties"), f"is required and must be an object, got {_kind_of(properties)}"
            )
        overrides = resource.get("OverrideSettings")
        if rtype == THING:
            _validate_thing(properties, _at(path, "Properties"), scope)
            _validate_overrides(overrides, _at(path, "OverrideSettings"), THING_OVERRIDE_KEYS)
        elif rtype == CERTIFICATE:
            _validate_certificate(properties, _at(path, "Properties"), scope)
            _validate_overrides(overrides, _at(path, "OverrideSettings"), CERTIFICATE_OVERRIDE_KEYS)
        else:
            _validate_policy(properties, _at(path, "Properties"), scope)
            if "OverrideSettings" in resource:
                raise TemplateError(_at(path, "OverrideSettings"), "OverrideSettings are not available for policies")
    # A template describes one device: AWS documents "a thing, a certificate, and one or more IoT policies",
    # JITP creates "one thing resource", and fleet provisioning answers with a single thingName.
    if counts[THING] > 1:
        raise TemplateError("Resources", f"a template can declare at most one {THING}, got {counts[THING]}")
    if counts[CERTIFICATE] > 1:
        raise TemplateError("Resources", f"a template can declare at most one {CERTIFICATE}, got {counts[CERTIFICATE]}")
    if counts[CERTIFICATE] and counts[POLICY] > MAX_POLICIES_PER_CERTIFICATE:
        raise TemplateError(
            "Resources",
            f"a certificate can have at most {MAX_POLICIES_PER_CERTIFICATE} policies attached, got {counts[POLICY]}",
        )


def _check_known_properties(properties: Mapping[str, Any], path: str, allowed: Tuple[str, ...]) -> None:
    for key in properties:
        if key == "PackageVersions":
            raise TemplateError(
                _at(path, key), "PackageVersions is not supported by this collection (it cannot read it back to plan)"
            )
        if key not in allowed:
            raise _unknown_key(path, key, allowed, "property")


def _validate_thing(properties: Dict[str, Any], path: str, scope: _Scope) -> None:
    _check_known_properties(properties, path, THING_PROPERTIES)
    if "ThingName" not in properties:
        raise TemplateError(_at(path, "ThingName"), "is required")
    for key in ("ThingName", "ThingTypeName", "BillingGroup"):
        if key in properties:
            _check_expr(properties[key], _at(path, key), scope, STRING)
            if isinstance(properties[key], str):
                _check_name(properties[key], _at(path, key))
    if "ThingGroups" in properties:
        groups = properties["ThingGroups"]
        _check_expr(groups, _at(path, "ThingGroups"), scope, LIST)
        if isinstance(groups, list):
            for i, group in enumerate(groups):
                if isinstance(group, str):
                    _check_name(group, _at(_at(path, "ThingGroups"), i), "a thing group name")
            if len(groups) > MAX_THING_GROUPS:
                raise TemplateError(
                    _at(path, "ThingGroups"), f"a thing can be in at most {MAX_THING_GROUPS} groups, got {len(groups)}"
                )
    if "AttributePayload" in properties:
        _validate_attributes(properties, _at(path, "AttributePayload"), scope)


def _validate_attributes(properties: Dict[str, Any], path: str, scope: _Scope) -> None:
    attributes = properties["AttributePayload"]
    if _function_call(attributes) is not None or not isinstance(attributes, dict):
        raise TemplateError(path, "must be an object of attribute names to values")
    _reject_mixed_object(attributes, path)
    for name, value in attributes.items():
        _check_expr(value, _at(path, name), scope, STRING)
        _check_attribute(name, value, _at(path, name))
    has_type = "ThingTypeName" in properties
    _check_attribute_count(len(attributes), has_type, path)


def _validate_certificate(properties: Dict[str, Any], path: str, scope: _Scope) -> None:
    _check_known_properties(properties, path, CERTIFICATE_PROPERTIES)
    sources = [key for key in CERTIFICATE_SOURCES if key in properties]
    if len(sources) != 1:
        given = ", ".join(sources) if sources else "none"
        raise TemplateError(path, f"exactly one of {', '.join(CERTIFICATE_SOURCES)} is required, got {given}")
    if "CACertificatePem" in properties and sources != ["CertificatePem"]:
        raise TemplateError(_at(path, "CACertificatePem"), "is only valid together with CertificatePem")
    for key, value in properties.items():
        _check_expr(value, _at(path, key), scope, STRING)
    literal = {k: v for k, v in properties.items() if isinstance(v, str)}
    if "CertificateId" in literal:
        _check_certificate_id(literal["CertificateId"], _at(path, "CertificateId"))
    if "Status" in literal:
        _check_choice(literal["Status"], CERTIFICATE_STATUSES, _at(path, "Status"), case_insensitive=True)
    if "ThingPrincipalType" in literal:
        _check_choice(literal["ThingPrincipalType"], THING_PRINCIPAL_TYPES, _at(path, "ThingPrincipalType"))


def _validate_policy(properties: Dict[str, Any], path: str, scope: _Scope) -> None:
    _check_known_properties(properties, path, POLICY_PROPERTIES)
    given = [key for key in POLICY_PROPERTIES if key in properties]
    if len(given) != 1:
        raise TemplateError(
            path, f"exactly one of PolicyName or PolicyDocument is required, got {', '.join(given) or 'none'}"
        )
    if "PolicyName" in properties:
        name = properties["PolicyName"]
        _check_expr(name, _at(path, "PolicyName"), scope, STRING)
        if isinstance(name, str):
            _check_policy_name(name, _at(path, "PolicyName"))
        return
    document = properties["PolicyDocument"]
    doc_path = _at(path, "PolicyDocument")
    if _function_call(document) is not None:
        _check_expr(document, doc_path, scope, STRING)
    elif isinstance(document, str):
        _policy_document(document, doc_path)
    elif isinstance(document, dict):
        _check_expr(document, doc_path, scope, ANY)
    else:
        raise TemplateError(doc_path, f"must be an escaped JSON string or an object, got {_kind_of(document)}")


def _validate_overrides(overrides: Any, path: str, allowed: Tuple[str, ...]) -> None:
    if overrides is None:
        return
    if not isinstance(overrides, dict):
        raise TemplateError(path, f"must be an object of property names to actions, got {_kind_of(overrides)}")
    for key, action in overrides.items():
        if key not in allowed:
            upper = {re.sub(r"(?<!^)(?=[A-Z])", "_", k).upper(): k for k in allowed}
            hint = f" (use {upper[key]})" if key in upper else _suggest(key, allowed)
            raise TemplateError(_at(path, key), f"cannot be overridden{hint}; allowed: {', '.join(allowed)}")
        if action not in OVERRIDE_ACTIONS:
            raise TemplateError(_at(path, key), f"must be one of {', '.join(OVERRIDE_ACTIONS)}, got {action!r}")
        if action == "MERGE" and key not in MERGEABLE:
            raise TemplateError(_at(path, key), "MERGE is only valid for ThingGroups and AttributePayload")


def _validate_device_configuration(configuration: Any, scope: _Scope) -> None:
    if configuration is None:
        return
    if not isinstance(configuration, dict):
        raise TemplateError("DeviceConfiguration", f"must be an object, got {_kind_of(configuration)}")
    for key, value in configuration.items():
        path = _at("DeviceConfiguration", key)
        if isinstance(value, dict) and _function_call(value) is None:
            raise TemplateError(path, "DeviceConfiguration does not support nested objects")
        _check_expr(value, path, scope, STRING)


def validate_for(template: ProvisioningTemplate, template_type: str) -> None:
    """Rules of a provisioning template type (CreateProvisioningTemplate type, or JITP registration config)."""
    _check_choice(template_type, TEMPLATE_TYPES, "template_type")
    label = "a JITP" if template_type == "JITP" else "a fleet provisioning"
    for logical_id, resource in template.resources.items():
        if resource.get("Type") != CERTIFICATE:
            continue
        properties = resource.get("Properties") or {}
        for key in ("CertificateSigningRequest", "CertificatePem", "CACertificatePem"):
            if key in properties:
                raise TemplateError(
                    _at(_at(_at("Resources", logical_id), "Properties"), key),
                    f"{label} template can name its certificate only by CertificateId",
                )
    if template_type == "JITP":
        for name in template.parameters:
            if name not in JITP_PARAMETERS:
                raise TemplateError(
                    _at("Parameters", name),
                    "a JITP template can only use the parameters AWS takes from the device certificate: "
                    + ", ".join(JITP_PARAMETERS),
                )


# --- render ---------------------------------------------------------------------------------------------------


def resolve_parameters(
    template: ProvisioningTemplate, parameters: Optional[Mapping[str, Any]] = None, allow_extra: bool = False
) -> Dict[str, str]:
    """The value of every parameter: given, else Default, else an error. Given values follow RegisterThing's limits."""
    given = dict(parameters or {})
    pseudo = PSEUDO_PARAMETERS[template.template_type]
    for key, value in given.items():
        path = _at("parameters", key)
        if not isinstance(key, str) or len(key) > PARAMETER_KEY_MAX:
            raise TemplateError(path, f"parameter names must be strings of at most {PARAMETER_KEY_MAX} characters")
        if not isinstance(value, str):
            raise TemplateError(path, f"must be a string (RegisterThing parameters are strings), got {_kind_of(value)}")
        if len(value) > PARAMETER_VALUE_MAX:
            raise TemplateError(path, f"must be at most {PARAMETER_VALUE_MAX} characters, got {len(value)}")
        if key not in template.parameters and key not in pseudo and not allow_extra:
            raise TemplateError(
                path, f"is not declared in the template's Parameters{_suggest(key, template.parameters)}"
            )
    values: Dict[str, str] = {}
    for name, spec in template.parameters.items():
        if name in given:
            values[name] = given[name]
        elif "Default" in spec:
            values[name] = spec["Default"]
        else:
            raise TemplateError(_at("Parameters", name), "no value given and no Default")
    for name in pseudo:
        if name in given and name not in values:
            values[name] = given[name]
    return values


class _Evaluator:
    def __init__(self, values: Mapping[str, str], mappings: Mapping[str, Any]):
        self.values = values
        self.mappings = mappings

    def eval(self, value: Any, path: str) -> Any:
        call = _function_call(value)
        if call is not None:
            name, argument = call
            return getattr(self, "_" + name.replace("Fn::", "").lower())(argument, _at(path, name))
        if isinstance(value, dict):
            return {key: self.eval(item, _at(path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.eval(item, _at(path, i)) for i, item in enumerate(value)]
        return value

    def _string(self, value: Any, path: str) -> str:
        result = self.eval(value, path)
        if not isinstance(result, str):
            raise TemplateError(path, f"must evaluate to a string, got {_kind_of(result)}")
        return result

    def _strings(self, value: Any, path: str) -> List[str]:
        result = self.eval(value, path)
        if not isinstance(result, list) or not all(isinstance(x, str) for x in result):
            raise TemplateError(path, f"must evaluate to a list of strings, got {_kind_of(result)}")
        return result

    def _ref(self, name: str, path: str) -> str:
        if name not in self.values:
            raise TemplateError(path, f"no value given for {name}")
        return self.values[name]

    def _join(self, argument: List[Any], path: str) -> str:
        return argument[0].join(self._strings(argument[1], _at(path, 1)))

    def _select(self, argument: List[Any], path: str) -> str:
        index = argument[0] if isinstance(argument[0], int) else self._string(argument[0], _at(path, 0))
        if isinstance(index, str) and not index.isdigit():
            raise TemplateError(_at(path, 0), f"the index must be a non-negative integer, got {index!r}")
        items = self._strings(argument[1], _at(path, 1))
        if int(index) >= len(items):
            raise TemplateError(_at(path, 0), f"index {int(index)} is out of range for a list of {len(items)}")
        return items[int(index)]

    def _split(self, argument: List[Any], path: str) -> List[str]:
        return self._string(argument[1], _at(path, 1)).split(argument[0])

    def _sub(self, argument: Any, path: str) -> str:
        variables: Dict[str, str] = {}
        text = argument
        if isinstance(argument, list):
            text = argument[0]
            variables = {k: self._string(v, _at(_at(path, 1), k)) for k, v in argument[1].items()}

        def substitute(match: Any) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return variables[token]
            return self._ref(token, path)

        return _SUB_VARIABLE.sub(substitute, text)

    def _findinmap(self, argument: List[Any], path: str) -> Any:
        table, top, second = (self._string(key, _at(path, i)) for i, key in enumerate(argument))
        level: Any = self.mappings
        where = "Mappings"
        for key in (table, top, second):
            if not isinstance(level, dict) or key not in level:
                raise TemplateError(path, f"no key {key!r} in {where}")
            level = level[key]
            where = f"{where}.{key}"
        return level


def render(
    template: Any,
    parameters: Optional[Mapping[str, Any]] = None,
    template_type: Optional[str] = None,
    allow_extra: bool = False,
) -> Dict[str, Any]:
    """Resolve parameters and functions: the thing, certificate, policies and device configuration to provision."""
    if not isinstance(template, ProvisioningTemplate):
        template = parse(template, template_type)
    values = resolve_parameters(template, parameters, allow_extra)
    evaluator = _Evaluator(values, template.mappings)
    rendered: Dict[str, Any] = {"thing": None, "certificate": None, "policies": [], "device_configuration": None}
    for logical_id, resource in template.resources.items():
        path = _at(_at("Resources", logical_id), "Properties")
        properties = resource["Properties"]
        overrides = resource.get("OverrideSettings") or {}
        if resource["Type"] == THING:
            rendered["thing"] = _render_thing(logical_id, properties, overrides, evaluator, path)
        elif resource["Type"] == CERTIFICATE:
            rendered["certificate"] = _render_certificate(logical_id, properties, overrides, evaluator, path)
        else:
            rendered["policies"].append(_render_policy(logical_id, properties, evaluator, path))
    configuration = template.body.get("DeviceConfiguration")
    if configuration is not None:
        rendered["device_configuration"] = {
            key: evaluator._string(value, _at("DeviceConfiguration", key)) for key, value in configuration.items()
        }
    return rendered


def _render_thing(
    logical_id: str, properties: Mapping[str, Any], overrides: Mapping[str, str], ev: _Evaluator, path: str
) -> Dict[str, Any]:
    name = ev._string(properties["ThingName"], _at(path, "ThingName"))
    _check_name(name, _at(path, "ThingName"), "a thing name")
    thing_type = billing_group = None
    if "ThingTypeName" in properties:
        thing_type = ev._string(properties["ThingTypeName"], _at(path, "ThingTypeName"))
        _check_name(thing_type, _at(path, "ThingTypeName"), "a thing type name")
    if "BillingGroup" in properties:
        billing_group = ev._string(properties["BillingGroup"], _at(path, "BillingGroup"))
        _check_name(billing_group, _at(path, "BillingGroup"), "a billing group name")
    groups: Optional[List[str]] = None
    if "ThingGroups" in properties:
        groups = []
        for group in ev._strings(properties["ThingGroups"], _at(path, "ThingGroups")):
            _check_name(group, _at(path, "ThingGroups"), "a thing group name")
            if group not in groups:
                groups.append(group)
        if len(groups) > MAX_THING_GROUPS:
            raise TemplateError(
                _at(path, "ThingGroups"), f"a thing can be in at most {MAX_THING_GROUPS} groups, got {len(groups)}"
            )
    attributes: Optional[Dict[str, str]] = None
    if "AttributePayload" in properties:
        attributes = {}
        for key, value in properties["AttributePayload"].items():
            where = _at(_at(path, "AttributePayload"), key)
            attributes[key] = ev._string(value, where)
            _check_attribute(key, attributes[key], where)
    return {
        "logical_id": logical_id,
        "name": name,
        "attributes": attributes,
        "thing_type": thing_type,
        "thing_groups": groups,
        "billing_group": billing_group,
        "overrides": {
            "attributes": overrides.get("AttributePayload", DEFAULT_OVERRIDE),
            "thing_type": overrides.get("ThingTypeName", DEFAULT_OVERRIDE),
            "thing_groups": overrides.get("ThingGroups", DEFAULT_OVERRIDE),
        },
    }


def _render_certificate(
    logical_id: str, properties: Mapping[str, Any], overrides: Mapping[str, str], ev: _Evaluator, path: str
) -> Dict[str, Any]:
    values = {key: ev._string(value, _at(path, key)) for key, value in properties.items()}
    certificate: Dict[str, Any] = {
        "logical_id": logical_id,
        "source": None,
        "csr": None,
        "certificate_id": None,
        "certificate_pem": None,
        "ca_certificate_pem": values.get("CACertificatePem"),
        "public_key_fingerprint": None,
        "status": "ACTIVE",  # documented default
        "status_set": "Status" in values,
        "thing_principal_type": None,
        "overrides": {"status": overrides.get("Status", DEFAULT_OVERRIDE)},
    }
    if "Status" in values:
        certificate["status"] = _check_choice(values["Status"], CERTIFICATE_STATUSES, _at(path, "Status"), True)
    if "ThingPrincipalType" in values:
        certificate["thing_principal_type"] = _check_choice(
            values["ThingPrincipalType"], THING_PRINCIPAL_TYPES, _at(path, "ThingPrincipalType")
        )
    if "CertificateSigningRequest" in values:
        csr = values["CertificateSigningRequest"]
        where = _at(path, "CertificateSigningRequest")
        if len(csr) > CSR_MAX:
            raise TemplateError(where, f"must be at most {CSR_MAX} characters, got {len(csr)}")
        certificate.update(source="csr", csr=csr, public_key_fingerprint=_fingerprint_or_error(csr, where))
    elif "CertificateId" in values:
        _check_certificate_id(values["CertificateId"], _at(path, "CertificateId"))
        certificate.update(source="certificate_id", certificate_id=values["CertificateId"].lower())
    else:
        pem = values["CertificatePem"]
        where = _at(path, "CertificatePem")
        try:
            certificate_id = certificate_id_from_pem(pem)
        except ValueError as e:
            raise TemplateError(where, str(e)) from None
        certificate.update(
            source="certificate_pem",
            certificate_pem=pem,
            certificate_id=certificate_id,
            public_key_fingerprint=_fingerprint_or_error(pem, where),
        )
    return certificate


def _fingerprint_or_error(pem: str, path: str) -> str:
    try:
        return public_key_fingerprint(pem)
    except ValueError as e:
        raise TemplateError(path, str(e)) from None


def _render_policy(logical_id: str, properties: Mapping[str, Any], ev: _Evaluator, path: str) -> Dict[str, Any]:
    if "PolicyName" in properties:
        name = ev._string(properties["PolicyName"], _at(path, "PolicyName"))
        _check_policy_name(name, _at(path, "PolicyName"))
        return {"logical_id": logical_id, "name": name, "document": None}
    where = _at(path, "PolicyDocument")
    return {
        "logical_id": logical_id,
        "name": None,
        "document": _policy_document(ev.eval(properties["PolicyDocument"], where), where),
    }


# --- certificates: ids and public keys (crypto.py parses, this names the field) --------------------------------


def certificate_id_from_pem(pem: str) -> str:
    """AWS IoT's certificate id: the lowercase hex SHA-256 of the certificate's DER bytes."""
    return crypto.certificate_id(_first_block(pem, crypto.CERTIFICATE_LABELS, "a PEM certificate"))


def public_key_fingerprint(pem: str) -> str:
    """Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo in a certificate, CSR or public key PEM."""
    labels = {label for label, _block in crypto.pem_blocks(pem or "")}
    if labels & set(crypto.CERTIFICATE_LABELS):
        der = crypto.certificate_public_key(_first_block(pem, crypto.CERTIFICATE_LABELS, "a PEM certificate"))
    elif labels & set(crypto.CSR_LABELS):
        der = crypto.csr_public_key(_first_block(pem, crypto.CSR_LABELS, "a PEM certificate signing request"))
    elif labels & set(crypto.PUBLIC_KEY_LABELS):
        der = crypto.public_key_der(crypto.load_public_key(_first_block(pem, crypto.PUBLIC_KEY_LABELS, "a public key")))
    else:
        raise crypto.CryptoError("is not a PEM certificate, certificate signing request or public key")
    return hashlib.sha256(der).hexdigest()


def _first_block(pem: str, labels: Tuple[str, ...], what: str) -> str:
    # A certificate followed by its CA's (a chain) is identified by its first certificate, as AWS does.
    for label, block in crypto.pem_blocks(pem or ""):
        if label in labels:
            return block
    raise crypto.CryptoError(f"is not {what} (no BEGIN {labels[0]} block)")


# --- plan -----------------------------------------------------------------------------------------------------


def empty_snapshot() -> Dict[str, Any]:
    """The account state when nothing the template names exists."""
    return {"thing": None, "principals": [], "certificate": None, "policies": {}}


def _action(resource: str, logical_id: Optional[str], action: str, reason: str, **extra: Any) -> Dict[str, Any]:
    out = {"resource": resource, "logical_id": logical_id, "action": action, "reason": reason, "changes": {}}
    out.update(extra)
    return out


def plan(
    rendered: Mapping[str, Any],
    current: Optional[Mapping[str, Any]] = None,
    will_exist: Optional[Set[str]] = None,
) -> List[Dict[str, Any]]:
    """What RegisterThing would do to reach ``rendered`` from ``current``, honouring OverrideSettings.

    ``will_exist``: names of missing policies that earlier tasks of the play create (their check mode only
    predicted them), planned as there rather than as a failure.
    """
    state = empty_snapshot()
    state.update(current or {})
    actions: List[Dict[str, Any]] = []
    thing, certificate = rendered.get("thing"), rendered.get("certificate")
    thing_action = certificate_action = None
    if thing:
        thing_action = plan_thing(thing, state["thing"])
        actions.append(thing_action)
    if certificate:
        certificate_action = plan_certificate(certificate, state)
        actions.append(certificate_action)
    if thing_action and certificate_action:
        actions.append(_plan_thing_principal(thing_action, certificate_action, state))
    for policy in rendered.get("policies") or []:
        policy_action = plan_policy(policy, (state["policies"] or {}).get(policy["logical_id"]), will_exist)
        actions.append(policy_action)
        if certificate_action:
            actions.append(_plan_policy_attachment(policy_action, certificate_action, state))
    return actions


def plan_is_empty(actions: Iterable[Mapping[str, Any]]) -> bool:
    """True when RegisterThing would change nothing (every action is "none")."""
    return all(action["action"] == "none" for action in actions)


def plan_failures(actions: Iterable[Mapping[str, Any]]) -> List[str]:
    """The reasons of the actions that would make RegisterThing fail."""
    return [f"{a['resource']} {a['logical_id']}: {a['reason']}" for a in actions if a["action"] == "fail"]


def thing_snapshot(thing: Mapping[str, Any]) -> Dict[str, Any]:
    """The thing as the planner compares it (only what a template manages)."""
    return {
        "thing_name": thing.get("thing_name"),
        "thing_type_name": thing.get("thing_type_name"),
        "attributes": dict(thing.get("attributes") or {}),
        "thing_groups": sorted(thing.get("thing_groups") or []),
        "billing_group_name": thing.get("billing_group_name"),
    }


def plan_thing(desired: Mapping[str, Any], current: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    name = desired["name"]
    if current is None:
        after = {
            "thing_name": name,
            "thing_type_name": desired["thing_type"],
            "attributes": dict(desired["attributes"] or {}),
            "thing_groups": sorted(desired["thing_groups"] or []),
            "billing_group_name": desired["billing_group"],
        }
        return _action(
            "thing",
            desired["logical_id"],
            "create",
            f"thing {name} does not exist",
            name=name,
            before=None,
            after=after,
        )
    before = thing_snapshot(current)
    after = dict(before, attributes=dict(before["attributes"]), thing_groups=list(before["thing_groups"]))
    changes: Dict[str, Any] = {}
    ignored: Dict[str, Any] = {}
    failures: List[str] = []
    overrides = desired["overrides"]

    def decide(key: str, mode: str, target: Any, label: str) -> None:
        if target == before[key]:
            return
        entry = {"before": before[key], "after": target}
        if mode == "DO_NOTHING":
            ignored[key] = dict(entry, override=mode)
        elif mode == "FAIL":
            failures.append(f"{label} would change and its OverrideSettings is FAIL")
            changes[key] = entry
        else:
            changes[key] = entry
            after[key] = target

    if desired["attributes"] is not None:
        mode = overrides["attributes"]
        target = dict(before["attributes"], **desired["attributes"]) if mode == "MERGE" else dict(desired["attributes"])
        decide("attributes", mode, target, "AttributePayload")
    if desired["thing_type"] is not None:
        decide("thing_type_name", overrides["thing_type"], desired["thing_type"], "ThingTypeName")
    if desired["thing_groups"] is not None:
        mode = overrides["thing_groups"]
        wanted = set(desired["thing_groups"]) | (set(before["thing_groups"]) if mode == "MERGE" else set())
        decide("thing_groups", mode, sorted(wanted), "ThingGroups")
        if "thing_groups" in changes:
            changes["thing_groups"]["add"] = sorted(wanted - set(before["thing_groups"]))
            changes["thing_groups"]["remove"] = sorted(set(before["thing_groups"]) - wanted)
    if desired["billing_group"] is not None:
        # AWS documents no OverrideSettings key for BillingGroup: the default applies.
        decide("billing_group_name", DEFAULT_OVERRIDE, desired["billing_group"], "BillingGroup")
    try:
        _check_attribute_count(len(after["attributes"]), bool(after["thing_type_name"]), "attributes")
        if len(after["thing_groups"]) > MAX_THING_GROUPS:
            raise TemplateError(
                "thing_groups", f"a thing can be in at most {MAX_THING_GROUPS} groups, got {len(after['thing_groups'])}"
            )
    except TemplateError as e:
        failures.append(str(e))
    extra = {"name": name, "before": before, "after": after, "changes": changes}
    if ignored:
        extra["ignored"] = ignored
    if failures:
        return _action("thing", desired["logical_id"], "fail", "; ".join(failures), **extra)
    if changes:
        return _action(
            "thing", desired["logical_id"], "update", f"thing {name} differs: {', '.join(sorted(changes))}", **extra
        )
    reason = f"thing {name} matches the template"
    if ignored:
        reason += f" (differences left alone by OverrideSettings: {', '.join(sorted(ignored))})"
    return _action("thing", desired["logical_id"], "none", reason, **extra)


def _matching_principal(
    fingerprint: Optional[str], principals: Iterable[Mapping[str, Any]]
) -> Optional[Mapping[str, Any]]:
    if not fingerprint:
        return None
    for principal in principals:
        if principal.get("public_key_fingerprint") == fingerprint and principal.get("certificate_id"):
            return principal
    return None


def plan_certificate(desired: Mapping[str, Any], state: Mapping[str, Any]) -> Dict[str, Any]:
    logical_id, source = desired["logical_id"], desired["source"]
    current = state.get("certificate")
    if source == "csr":
        # A CSR makes AWS issue a new certificate on every call. Idempotence: the thing already has a certificate
        # with this public key attached.
        match = _matching_principal(desired["public_key_fingerprint"], state.get("principals") or [])
        if match is None:
            return _action(
                "certificate",
                logical_id,
                "create",
                "no certificate with the CSR's public key is attached to the thing: AWS issues a new one",
                certificate_id=None,
                before=None,
                after={"certificate_id": None, "status": desired["status"]},
            )
        if not current or current.get("certificate_id") != match["certificate_id"]:
            current = match
    elif current is None or current.get("certificate_id") != desired["certificate_id"]:
        if source == "certificate_id":
            return _action(
                "certificate",
                logical_id,
                "fail",
                f"certificate {desired['certificate_id']} does not exist; CertificateId needs an existing certificate",
                certificate_id=desired["certificate_id"],
                before=None,
                after=None,
            )
        return _action(
            "certificate",
            logical_id,
            "create",
            f"certificate {desired['certificate_id']} is not registered",
            certificate_id=desired["certificate_id"],
            before=None,
            after={"certificate_id": desired["certificate_id"], "status": desired["status"]},
        )
    return _plan_certificate_status(desired, current)


def _plan_certificate_status(desired: Mapping[str, Any], current: Mapping[str, Any]) -> Dict[str, Any]:
    certificate_id, status = current["certificate_id"], current.get("status")
    before = {"certificate_id": certificate_id, "status": status}
    extra: Dict[str, Any] = {"certificate_id": certificate_id, "before": before, "after": dict(before)}
    logical_id, mode = desired["logical_id"], desired["overrides"]["status"]
    if status == desired["status"]:
        return _action("certificate", logical_id, "none", f"certificate {certificate_id} is {status}", **extra)
    change = {"status": {"before": status, "after": desired["status"]}}
    if status == "PENDING_ACTIVATION":
        # JITP and fleet provisioning finish by setting the template's status on a PENDING_ACTIVATION certificate,
        # whatever the OverrideSettings (the JITP page's step list; the fleet MQTT API page).
        extra["after"]["status"] = desired["status"]
        return _action(
            "certificate", logical_id, "update", "provisioning sets the template's status", changes=change, **extra
        )
    if not desired["status_set"] or mode == "DO_NOTHING":
        extra["ignored"] = {"status": dict(change["status"], override=mode if desired["status_set"] else "unset")}
        return _action(
            "certificate", logical_id, "none", f"certificate {certificate_id} exists; its status is left alone", **extra
        )
    if mode == "FAIL":
        return _action(
            "certificate",
            logical_id,
            "fail",
            "Status would change and its OverrideSettings is FAIL",
            changes=change,
            **extra,
        )
    if status not in CERTIFICATE_STATUSES:
        return _action(
            "certificate",
            logical_id,
            "fail",
            f"a {status} certificate cannot be set to {desired['status']}",
            changes=change,
            **extra,
        )
    extra["after"]["status"] = desired["status"]
    return _action(
        "certificate", logical_id, "update", f"certificate {certificate_id} status changes", changes=change, **extra
    )


def _plan_thing_principal(
    thing: Mapping[str, Any], certificate: Mapping[str, Any], state: Mapping[str, Any]
) -> Dict[str, Any]:
    certificate_id = certificate.get("certificate_id")
    extra = {"thing": thing["name"], "certificate_id": certificate_id}
    attached = (
        thing["action"] != "create"
        and certificate_id is not None
        and any(p.get("certificate_id") == certificate_id for p in state.get("principals") or [])
    )
    if attached:
        return _action("thing_principal", None, "none", "the certificate is attached to the thing", **extra)
    return _action("thing_principal", None, "create", "the certificate is not attached to the thing", **extra)


def normalise_policy_document(document: Any) -> Any:
    """A comparable form of a policy document: the policy module's normalisation, so both agree on equality."""
    return normalize_document(document)


def plan_policy(
    desired: Mapping[str, Any], current: Optional[Mapping[str, Any]], will_exist: Optional[Set[str]] = None
) -> Dict[str, Any]:
    logical_id = desired["logical_id"]
    if desired["name"] is not None:
        if current is None and desired["name"] in (will_exist or set()):
            return _action(
                "policy",
                logical_id,
                "none",
                f"policy {desired['name']} does not exist yet; an earlier task of the play creates it "
                "(declared_resources, check mode)",
                name=desired["name"],
            )
        if current is None:
            return _action(
                "policy",
                logical_id,
                "fail",
                f"policy {desired['name']} does not exist; a policy named without a document must already exist "
                "(list it in declared_resources.policies when an earlier task of the play creates it)",
                name=desired["name"],
            )
        return _action("policy", logical_id, "none", f"policy {desired['name']} exists", name=desired["name"])
    if current is not None and normalise_policy_document(current.get("policy_document")) == normalise_policy_document(
        desired["document"]
    ):
        return _action(
            "policy",
            logical_id,
            "none",
            "a policy with this document is attached to the certificate",
            name=current.get("policy_name"),
        )
    return _action(
        "policy",
        logical_id,
        "create",
        "no policy with this document is attached to the certificate; AWS creates one named by a hash of the document",
        name=None,
        after={"policy_document": desired["document"]},
    )


def _plan_policy_attachment(
    policy: Mapping[str, Any], certificate: Mapping[str, Any], state: Mapping[str, Any]
) -> Dict[str, Any]:
    name = policy.get("name")
    extra = {"policy": name, "certificate_id": certificate.get("certificate_id")}
    current = state.get("certificate") or {}
    attached = (
        certificate["action"] != "create"
        and policy["action"] == "none"
        and current.get("certificate_id") == certificate.get("certificate_id")
        and name in (current.get("attached_policies") or [])
    )
    if attached:
        return _action(
            "policy_attachment", policy["logical_id"], "none", f"policy {name} is attached to the certificate", **extra
        )
    return _action(
        "policy_attachment", policy["logical_id"], "create", "the policy is not attached to the certificate", **extra
    )


# --- reading the account --------------------------------------------------------------------------------------


def read_thing(client: Any, thing_name: str) -> Optional[Dict[str, Any]]:
    """DescribeThing plus ListThingGroupsForThing, or None when the thing does not exist."""
    response = iot_access.unless_gone(iot_access.as_call(client), "describe_thing", thingName=thing_name)
    if response is None:
        return None
    groups = paginate(client, "list_thing_groups_for_thing", "thingGroups", thingName=thing_name)
    return {
        "thing_name": response["thingName"],
        "thing_arn": response.get("thingArn"),
        "thing_type_name": response.get("thingTypeName"),
        "attributes": dict(response.get("attributes") or {}),
        "billing_group_name": response.get("billingGroupName"),
        "version": response.get("version"),
        "thing_groups": sorted(group["groupName"] for group in groups),
    }


def read_certificate(client: Any, certificate_id: str, with_policies: bool = True) -> Optional[Dict[str, Any]]:
    """DescribeCertificate (status, public key) and ListAttachedPolicies, or None when it does not exist."""
    description = iot_access.describe_certificate(iot_access.as_call(client), certificate_id)
    if description is None:
        return None
    try:
        fingerprint: Optional[str] = public_key_fingerprint(description.get("certificatePem") or "")
    except ValueError:
        fingerprint = None
    snapshot = {
        "certificate_id": description["certificateId"],
        "certificate_arn": description.get("certificateArn"),
        "status": description.get("status"),
        "public_key_fingerprint": fingerprint,
    }
    if with_policies:
        policies = paginate(client, "list_attached_policies", "policies", target=snapshot["certificate_arn"])
        snapshot["attached_policies"] = sorted(p["policyName"] for p in policies)
    return snapshot


_certificate_id_of = iot_access.certificate_id_of_arn


def read_thing_principals(client: Any, thing_name: str) -> List[Dict[str, Any]]:
    """The thing's principals; certificates with their status and public key fingerprint."""
    principals = []
    for arn in paginate(client, "list_thing_principals", "principals", thingName=thing_name):
        entry: Dict[str, Any] = {"principal": arn, "certificate_id": _certificate_id_of(arn)}
        if entry["certificate_id"]:
            found = read_certificate(client, entry["certificate_id"], with_policies=False)
            entry["status"] = found["status"] if found else None
            entry["public_key_fingerprint"] = found["public_key_fingerprint"] if found else None
        principals.append(entry)
    return principals


def read_policy(client: Any, policy_name: str) -> Optional[Dict[str, Any]]:
    """GetPolicy, or None when the policy does not exist."""
    response = iot_access.unless_gone(iot_access.as_call(client), "get_policy", policyName=policy_name)
    if response is None:
        return None
    return {
        "policy_name": response["policyName"],
        "policy_arn": response.get("policyArn"),
        "policy_document": normalise_policy_document(response.get("policyDocument")),
        "default_version_id": response.get("defaultVersionId"),
    }


def read_current_state(
    client: Any, rendered: Mapping[str, Any], public_key_fingerprint: Optional[str] = None
) -> Dict[str, Any]:
    """The snapshot ``plan`` compares with: only reads (Describe/List/Get), never a change.

    ``public_key_fingerprint`` overrides the one computed from the template's CSR (for callers that hold the key).
    """
    state = empty_snapshot()
    thing = rendered.get("thing")
    if thing:
        state["thing"] = read_thing(client, thing["name"])
        if state["thing"] is not None:
            state["principals"] = read_thing_principals(client, thing["name"])
    certificate = rendered.get("certificate")
    if certificate:
        certificate_id = certificate.get("certificate_id")
        if certificate["source"] == "csr":
            match = _matching_principal(
                public_key_fingerprint or certificate.get("public_key_fingerprint"), state["principals"]
            )
            certificate_id = match["certificate_id"] if match else None
        if certificate_id:
            state["certificate"] = read_certificate(client, certificate_id)
    attached = (state["certificate"] or {}).get("attached_policies") or []
    attached_documents: Dict[str, Optional[Dict[str, Any]]] = {}
    for policy in rendered.get("policies") or []:
        if policy["name"] is not None:
            state["policies"][policy["logical_id"]] = read_policy(client, policy["name"])
            continue
        wanted = normalise_policy_document(policy["document"])
        state["policies"][policy["logical_id"]] = None
        for name in attached:
            if name not in attached_documents:
                attached_documents[name] = read_policy(client, name)
            found = attached_documents[name]
            if found is not None and found["policy_document"] == wanted:
                state["policies"][policy["logical_id"]] = found
                break
    return state


__all__ = [
    "DEFAULT_OVERRIDE",
    "ProvisioningTemplate",
    "TemplateError",
    "certificate_id_from_pem",
    "empty_snapshot",
    "load_body",
    "normalise_policy_document",
    "parse",
    "plan",
    "plan_failures",
    "plan_is_empty",
    "public_key_fingerprint",
    "read_current_state",
    "render",
    "resolve_parameters",
    "template_body_json",
    "validate_for",
]
