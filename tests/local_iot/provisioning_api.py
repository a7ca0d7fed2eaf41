"""Provisioning APIs that moto lacks, served by the local AWS IoT endpoint.

Implemented here, as handlers on moto's ``IoTResponse`` (moto routes restJson
operations by the botocore model's URIs and calls the method named like the
operation in snake_case):

* provisioning templates and their versions (Create/Describe/List/Update/Delete
  ProvisioningTemplate, Create/Describe/List/Delete ProvisioningTemplateVersion);
* the tags given to CreateProvisioningTemplate (TagResource, UntagResource and
  ListTagsForResource, for templates and the other taggable resources, are in
  ``tagging_api.py``, which keeps its tags in the same ``state_of(backend).tags``);
* RegisterThing: a template engine of its own (parameters, Ref, Fn::Join,
  Fn::Select, Fn::Split, Fn::Sub, Fn::FindInMap) that creates things,
  certificates and policies through moto's backend, so that moto's normal APIs
  (DescribeThing, ListThingPrincipals, ...) see them.

State lives on moto's ``IoTBackend`` instance (one per account and region), so
``POST /moto-api/reset`` clears it. This module is an independent reading of the
AWS documentation and the botocore model: it imports nothing from the
collection's ``plugins/``. PROVISIONING_API.md beside it lists the AWS behaviours
followed and those that could not be confirmed.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fidelity_core import STATE_LOCK
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.iot.exceptions import ResourceNotFoundException as MotoNotFound
from moto.iot.models import FakeCertificate, IoTBackend
from moto.iot.responses import IoTResponse
from moto.utilities.utils import get_partition

# Limits from the botocore model (service-2.json) and the AWS IoT quotas page.
TEMPLATE_NAME_RE = re.compile(r"^[0-9A-Za-z_-]+$")
TEMPLATE_NAME_MAX = 36
DESCRIPTION_MAX = 500
TEMPLATE_BODY_MAX = 10240
ROLE_ARN_MIN, ROLE_ARN_MAX = 20, 2048
TARGET_ARN_MAX = 2048
PAYLOAD_VERSION_RE = re.compile(r"^[0-9-]+$")
DEFAULT_PAYLOAD_VERSION = "2020-04-01"
MAX_TEMPLATES = 256
MAX_TEMPLATE_VERSIONS = 5
MAX_RESULTS_MAX = 250
TEMPLATE_TYPES = ("FLEET_PROVISIONING", "JITP")
TAG_KEY_MAX, TAG_VALUE_MAX, MAX_TAGS = 128, 256, 50
PARAMETER_KEY_MAX, PARAMETER_VALUE_MAX = 2048, 4096

THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]+$")
THING_NAME_MAX = 128
ATTRIBUTE_NAME_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#-]+$")
ATTRIBUTE_NAME_MAX = 128
ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$")
ATTRIBUTE_VALUE_MAX = 800
MAX_ATTRIBUTES_WITH_TYPE, MAX_ATTRIBUTES_WITHOUT_TYPE = 50, 3
MAX_GROUPS_PER_THING = 10
POLICY_NAME_RE = re.compile(r"^[\w+=,.@-]+$")
POLICY_NAME_MAX = 128
POLICY_DOCUMENT_MAX = 2048  # characters, whitespace excluded
MAX_POLICIES_PER_CERTIFICATE = 10
CERTIFICATE_ID_RE = re.compile(r"^[0-9a-fA-F]{64}$")

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
SECTIONS = ("Parameters", "Mappings", "Resources", "DeviceConfiguration")
FUNCTIONS = ("Ref", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::FindInMap")
THING_PROPERTIES = ("ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup")
CERTIFICATE_SOURCES = ("CertificateSigningRequest", "CertificateId", "CertificatePem")
CERTIFICATE_PROPERTIES = (*CERTIFICATE_SOURCES, "CACertificatePem", "Status")
POLICY_PROPERTIES = ("PolicyName", "PolicyDocument")
OVERRIDE_ACTIONS = ("DO_NOTHING", "REPLACE", "FAIL", "MERGE")
OVERRIDABLE = {
    THING: {
        "AttributePayload": OVERRIDE_ACTIONS,
        "ThingTypeName": OVERRIDE_ACTIONS[:3],
        "ThingGroups": OVERRIDE_ACTIONS,
    },
    CERTIFICATE: {"Status": OVERRIDE_ACTIONS[:3]},
}
CERTIFICATE_STATUSES = ("ACTIVE", "INACTIVE")
AWS_ISSUER_OU = "Amazon Web Services O=Amazon.com Inc. L=Seattle ST=Washington C=US"

# Every handler here runs under the endpoint's one state lock: RegisterThing checks everything before it
# mutates, and no other request may slip in between (the server is threaded).
_LOCK = STATE_LOCK
_INSTALLED = False


# --------------------------------------------------------------------------- errors


class IoTError(ServiceException):
    """An error with AWS's code; moto serializes it with the model's HTTP status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def invalid(message: str) -> IoTError:
    return IoTError("InvalidRequestException", message)


def not_found(message: str) -> IoTError:
    return IoTError("ResourceNotFoundException", message)


def registration_failure(message: str) -> IoTError:
    return IoTError("ResourceRegistrationFailureException", message)


class AlreadyExists(IoTError):
    def __init__(self, message: str, resource_id: str, resource_arn: str) -> None:
        super().__init__("ResourceAlreadyExistsException", message)
        self.resourceId = resource_id
        self.resourceArn = resource_arn


class TemplateError(Exception):
    """A template body problem; reported as InvalidRequestException."""


# --------------------------------------------------------------------------- state


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass
class TemplateVersion:
    version_id: int
    body: str
    creation_date: datetime.datetime


@dataclass
class ProvisioningTemplate:
    name: str
    arn: str
    description: str | None
    enabled: bool
    role_arn: str
    hook: dict[str, str] | None
    template_type: str
    creation_date: datetime.datetime
    last_modified_date: datetime.datetime
    versions: OrderedDict[int, TemplateVersion] = field(default_factory=OrderedDict)
    default_version_id: int = 1
    last_version_id: int = 0

    def add_version(self, body: str) -> TemplateVersion:
        self.last_version_id += 1
        version = TemplateVersion(self.last_version_id, body, _now())
        self.versions[version.version_id] = version
        return version

    def summary(self) -> dict[str, Any]:
        return _drop_none(
            {
                "templateArn": self.arn,
                "templateName": self.name,
                "description": self.description,
                "creationDate": self.creation_date,
                "lastModifiedDate": self.last_modified_date,
                "enabled": self.enabled,
                "type": self.template_type,
            }
        )

    def describe(self) -> dict[str, Any]:
        return _drop_none(
            {
                **self.summary(),
                "defaultVersionId": self.default_version_id,
                "templateBody": self.versions[self.default_version_id].body,
                "provisioningRoleArn": self.role_arn,
                "preProvisioningHook": dict(self.hook) if self.hook else None,
            }
        )


@dataclass
class ProvisioningState:
    templates: OrderedDict[str, ProvisioningTemplate] = field(default_factory=OrderedDict)
    tags: dict[str, OrderedDict[str, str]] = field(default_factory=dict)


def state_of(backend: IoTBackend) -> ProvisioningState:
    """The provisioning state of one account and region (reset with the backend)."""
    existing = backend.__dict__.get("_local_provisioning")
    if existing is None:
        existing = backend.__dict__.setdefault("_local_provisioning", ProvisioningState())
    return existing


def template_arn(backend: IoTBackend, name: str) -> str:
    region = backend.region_name
    return f"arn:{get_partition(region)}:iot:{region}:{backend.account_id}:provisioningtemplate/{name}"


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# --------------------------------------------------------------------------- request validation


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def validate_template_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= TEMPLATE_NAME_MAX or not TEMPLATE_NAME_RE.match(name):
        raise invalid(f"templateName: must be 1-{TEMPLATE_NAME_MAX} characters matching ^[0-9A-Za-z_-]+$, got {name!r}")
    return name


def validate_description(description: Any) -> str | None:
    if description is None:
        return None
    if len(description) > DESCRIPTION_MAX:
        raise invalid(f"description: at most {DESCRIPTION_MAX} characters, got {len(description)}")
    if _has_control_characters(description):
        raise invalid("description: control characters are not allowed (pattern [^\\p{C}]*)")
    return description


def validate_role_arn(role_arn: Any) -> str:
    if not isinstance(role_arn, str) or not ROLE_ARN_MIN <= len(role_arn) <= ROLE_ARN_MAX:
        raise invalid(f"provisioningRoleArn: must be {ROLE_ARN_MIN}-{ROLE_ARN_MAX} characters")
    if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", role_arn):
        raise invalid(f"provisioningRoleArn: not an IAM role ARN: {role_arn}")
    return role_arn


def validate_hook(hook: Any, template_type: str) -> dict[str, str]:
    if template_type != "FLEET_PROVISIONING":
        raise invalid(
            f"preProvisioningHook: only supported for templates of type FLEET_PROVISIONING, not {template_type}"
        )
    target = hook.get("targetArn")
    if not isinstance(target, str) or not target or len(target) > TARGET_ARN_MAX:
        raise invalid(f"preProvisioningHook.targetArn: required, at most {TARGET_ARN_MAX} characters")
    if not re.match(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:.+$", target):
        raise invalid(f"preProvisioningHook.targetArn: only Lambda function ARNs are supported, got {target}")
    payload_version = hook.get("payloadVersion") or DEFAULT_PAYLOAD_VERSION
    if not 10 <= len(payload_version) <= 32 or not PAYLOAD_VERSION_RE.match(payload_version):
        raise invalid(
            f"preProvisioningHook.payloadVersion: must be 10-32 characters of digits and '-', got {payload_version!r}"
        )
    return {"targetArn": target, "payloadVersion": payload_version}


def _tag_key_ok(key: str) -> bool:
    return all(unicodedata.category(ch)[0] in "LZN" or ch in "_.:/=+-@" for ch in key)


def validate_tags(tags: Any) -> OrderedDict[str, str]:
    result: OrderedDict[str, str] = OrderedDict()
    for tag in tags or []:
        key, value = tag.get("Key"), tag.get("Value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= TAG_KEY_MAX or not _tag_key_ok(key):
            raise invalid(f"tags: key must be 1-{TAG_KEY_MAX} letters, digits, spaces or _.:/=+-@, got {key!r}")
        if key.lower().startswith("aws:"):
            raise invalid(f"tags: the prefix 'aws:' is reserved for AWS use, got {key!r}")
        if value is None:
            value = ""
        if len(value) > TAG_VALUE_MAX:
            raise invalid(f"tags: value of {key!r} must be at most {TAG_VALUE_MAX} characters")
        result[key] = value
    return result


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"local-offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()).decode())["local-offset"]
    except (ValueError, KeyError, TypeError) as error:
        raise invalid(f"nextToken: not a token this endpoint issued: {token!r}") from error
    if not isinstance(offset, int) or offset < 0:
        raise invalid(f"nextToken: not a token this endpoint issued: {token!r}")
    return offset


def page(items: list[Any], max_results: Any, token: str | None) -> tuple[list[Any], str | None]:
    size = MAX_RESULTS_MAX if max_results is None else int(max_results)
    if not 1 <= size <= MAX_RESULTS_MAX:
        raise invalid(f"maxResults: must be 1-{MAX_RESULTS_MAX}, got {size}")
    start = _decode_token(token)
    chunk = items[start : start + size]
    following = start + size
    return chunk, (_encode_token(following) if following < len(items) else None)


# --------------------------------------------------------------------------- template engine


@dataclass
class Template:
    """A parsed and statically checked provisioning template body."""

    parameters: dict[str, dict[str, Any]]
    mappings: dict[str, Any]
    resources: OrderedDict[str, dict[str, Any]]
    device_configuration: dict[str, Any]


def _function_of(node: Any) -> str | None:
    """The function name if ``node`` is an intrinsic function call ({"Ref": ...} or {"Fn::X": ...})."""
    if isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        if key == "Ref" or key.startswith("Fn::"):
            return key
    return None


_SUB_RE = re.compile(r"\$\{([^}]*)\}")


def _sub_names(text: str) -> list[str]:
    """The variable names a Fn::Sub string refers to (``${!Literal}`` is an escape, not a reference)."""
    return [name.strip() for name in _SUB_RE.findall(text) if not name.startswith("!")]


class TemplateChecker:
    """Static checks: structure, resource types and properties, function syntax, references."""

    def __init__(self, parameters: dict[str, Any], mappings: dict[str, Any]) -> None:
        self.parameters = parameters
        self.mappings = mappings

    def expression(self, node: Any, where: str, local_names: frozenset[str] = frozenset()) -> None:
        function = _function_of(node)
        if function is not None:
            self._function(function, node[function], where, local_names)
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and (key == "Ref" or key.startswith("Fn::")):
                    raise TemplateError(f"{where}: an intrinsic function must be the only key of its object ({key})")
                self.expression(value, f"{where}.{key}", local_names)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                self.expression(item, f"{where}[{index}]", local_names)
        elif node is not None and not isinstance(node, (str, int, float, bool)):
            raise TemplateError(f"{where}: unsupported value {node!r}")

    def _function(self, function: str, args: Any, where: str, local_names: frozenset[str]) -> None:
        at = f"{where}.{function}"
        if function not in FUNCTIONS:
            raise TemplateError(
                f"{at}: unsupported function {function}; provisioning templates support {', '.join(FUNCTIONS)}"
            )
        if function == "Ref":
            if not isinstance(args, str):
                raise TemplateError(f"{at}: takes a parameter name")
            if args not in self.parameters:
                raise TemplateError(f"{at}: refers to {args!r}, which is not declared in Parameters")
        elif function == "Fn::Join":
            if not (isinstance(args, list) and len(args) == 2 and isinstance(args[0], str)):
                raise TemplateError(f"{at}: takes [delimiter, [values...]]")
            if not isinstance(args[1], list) and _function_of(args[1]) is None:
                raise TemplateError(f"{at}: the second argument must be a list")
            self.expression(args[1], at, local_names)
        elif function == "Fn::Select":
            if not (isinstance(args, list) and len(args) == 2):
                raise TemplateError(f"{at}: takes [index, [values...]]")
            index = args[0]
            if isinstance(index, bool) or not (
                isinstance(index, int) or (isinstance(index, str) and index.isdigit()) or _function_of(index)
            ):
                raise TemplateError(f"{at}: the index must be a non-negative integer")
            if not isinstance(args[1], list) and _function_of(args[1]) is None:
                raise TemplateError(f"{at}: the second argument must be a list")
            self.expression(args, at, local_names)
        elif function == "Fn::Split":
            if not (isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and args[0]):
                raise TemplateError(f"{at}: takes [delimiter, string]")
            self.expression(args[1], at, local_names)
        elif function == "Fn::Sub":
            self._sub(args, at)
        elif function == "Fn::FindInMap":
            if not (isinstance(args, list) and len(args) == 3):
                raise TemplateError(f"{at}: takes [MapName, TopLevelKey, SecondLevelKey]")
            if isinstance(args[0], str) and args[0] not in self.mappings:
                raise TemplateError(f"{at}: no mapping named {args[0]!r} in Mappings")
            self.expression(args, at, local_names)

    def _sub(self, args: Any, at: str) -> None:
        if isinstance(args, str):
            text, variables = args, {}
        elif isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], dict):
            text, variables = args
        else:
            raise TemplateError(f"{at}: takes a string or [string, {{variable: value}}]")
        for name, value in variables.items():
            self.expression(value, f"{at}.{name}")
        for name in _sub_names(text):
            if name not in variables and name not in self.parameters:
                raise TemplateError(f"{at}: ${{{name}}} is neither a declared parameter nor a Fn::Sub variable")


def _check_section_object(body: dict[str, Any], section: str) -> dict[str, Any]:
    value = body.get(section, {})
    if not isinstance(value, dict):
        raise TemplateError(f"{section}: must be an object")
    return value


def _check_parameters(parameters: dict[str, Any]) -> None:
    for name, declaration in parameters.items():
        if not isinstance(declaration, dict):
            raise TemplateError(f"Parameters.{name}: must be an object with Type (and optionally Default)")
        unknown = set(declaration) - {"Type", "Default"}
        if unknown:
            raise TemplateError(
                f"Parameters.{name}: unsupported keys {sorted(unknown)}; a parameter has Type and Default"
            )
        if declaration.get("Type") != "String":
            raise TemplateError(f"Parameters.{name}.Type: must be String, got {declaration.get('Type')!r}")
        if "Default" in declaration and not isinstance(declaration["Default"], str):
            raise TemplateError(f"Parameters.{name}.Default: must be a string")


def _check_mappings(mappings: dict[str, Any]) -> None:
    for name, top in mappings.items():
        if not isinstance(top, dict):
            raise TemplateError(f"Mappings.{name}: must be an object of objects")
        for key, second in top.items():
            if not isinstance(second, dict):
                raise TemplateError(f"Mappings.{name}.{key}: must be an object")
            for inner, value in second.items():
                ok = isinstance(value, (str, int, float)) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)
                )
                if not ok or isinstance(value, bool):
                    raise TemplateError(f"Mappings.{name}.{key}.{inner}: must be a string, number or list of strings")


def _check_resource(checker: TemplateChecker, logical_id: str, resource: Any) -> None:
    where = f"Resources.{logical_id}"
    if not isinstance(resource, dict):
        raise TemplateError(f"{where}: must be an object with Type and Properties")
    unknown = set(resource) - {"Type", "Properties", "OverrideSettings"}
    if unknown:
        raise TemplateError(f"{where}: unsupported keys {sorted(unknown)}")
    resource_type = resource.get("Type")
    if resource_type not in (THING, CERTIFICATE, POLICY):
        raise TemplateError(f"{where}.Type: must be one of {THING}, {CERTIFICATE}, {POLICY}, got {resource_type!r}")
    properties = resource.get("Properties")
    if not isinstance(properties, dict):
        raise TemplateError(f"{where}.Properties: required, must be an object")
    allowed = {THING: THING_PROPERTIES, CERTIFICATE: CERTIFICATE_PROPERTIES, POLICY: POLICY_PROPERTIES}[resource_type]
    unknown = set(properties) - set(allowed)
    if unknown:
        raise TemplateError(f"{where}.Properties: unsupported properties {sorted(unknown)} for {resource_type}")
    checker.expression(properties, f"{where}.Properties")
    if resource_type == THING:
        if "ThingName" not in properties:
            raise TemplateError(f"{where}.Properties.ThingName: required for {THING}")
        payload = properties.get("AttributePayload")
        if payload is not None and not isinstance(payload, dict):
            raise TemplateError(f"{where}.Properties.AttributePayload: must be an object of attribute names to values")
        groups = properties.get("ThingGroups")
        if groups is not None and not isinstance(groups, list) and _function_of(groups) is None:
            raise TemplateError(f"{where}.Properties.ThingGroups: must be a list of thing group names")
    elif resource_type == CERTIFICATE:
        sources = [name for name in CERTIFICATE_SOURCES if name in properties]
        if len(sources) != 1:
            raise TemplateError(
                f"{where}.Properties: exactly one of {', '.join(CERTIFICATE_SOURCES)} is required, "
                f"got {sources or 'none'}"
            )
        if "CACertificatePem" in properties and sources != ["CertificatePem"]:
            raise TemplateError(f"{where}.Properties.CACertificatePem: only allowed with CertificatePem")
    else:
        named = [name for name in POLICY_PROPERTIES if name in properties]
        if len(named) != 1:
            raise TemplateError(f"{where}.Properties: exactly one of PolicyName or PolicyDocument is required")
    overrides = resource.get("OverrideSettings")
    if overrides is not None:
        _check_overrides(where, resource_type, overrides)


def _check_overrides(where: str, resource_type: str, overrides: Any) -> None:
    if resource_type not in OVERRIDABLE:
        raise TemplateError(f"{where}.OverrideSettings: not available for {resource_type}")
    if not isinstance(overrides, dict):
        raise TemplateError(f"{where}.OverrideSettings: must be an object of property names to actions")
    allowed = OVERRIDABLE[resource_type]
    for name, action in overrides.items():
        if name not in allowed:
            raise TemplateError(
                f"{where}.OverrideSettings.{name}: not overridable; {resource_type} allows {', '.join(allowed)}"
            )
        if action not in allowed[name]:
            raise TemplateError(
                f"{where}.OverrideSettings.{name}: must be one of {', '.join(allowed[name])}, got {action!r}"
            )


def parse_template(body: Any) -> Template:
    """Parse and statically check a template body; raises TemplateError."""
    if not isinstance(body, str):
        raise TemplateError("templateBody: required, must be a string")
    if len(body) > TEMPLATE_BODY_MAX:
        raise TemplateError(f"templateBody: at most {TEMPLATE_BODY_MAX} characters, got {len(body)}")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise TemplateError(f"templateBody: not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise TemplateError("templateBody: must be a JSON object")
    unknown = [name for name in document if name not in SECTIONS]
    if unknown:
        raise TemplateError(
            f"templateBody: unsupported sections {unknown}; a provisioning template has {', '.join(SECTIONS)}"
        )
    parameters = _check_section_object(document, "Parameters")
    mappings = _check_section_object(document, "Mappings")
    resources = _check_section_object(document, "Resources")
    device_configuration = _check_section_object(document, "DeviceConfiguration")
    _check_parameters(parameters)
    _check_mappings(mappings)
    if not resources:
        raise TemplateError("Resources: required, must declare at least one resource")
    checker = TemplateChecker(parameters, mappings)
    counts = {THING: 0, CERTIFICATE: 0, POLICY: 0}
    for logical_id, resource in resources.items():
        _check_resource(checker, logical_id, resource)
        counts[resource["Type"]] += 1
    for resource_type in (THING, CERTIFICATE):
        if counts[resource_type] > 1:
            raise TemplateError(f"Resources: at most one {resource_type} per template, got {counts[resource_type]}")
    checker.expression(device_configuration, "DeviceConfiguration")
    return Template(parameters, mappings, OrderedDict(resources), device_configuration)


class Evaluator:
    """Resolves intrinsic functions against parameter values and the Mappings section."""

    def __init__(self, values: dict[str, str], mappings: dict[str, Any]) -> None:
        self.values = values
        self.mappings = mappings

    def __call__(self, node: Any, where: str) -> Any:
        function = _function_of(node)
        if function is not None:
            return getattr(self, "_" + function.replace("Fn::", "fn_").lower())(node[function], f"{where}.{function}")
        if isinstance(node, dict):
            return {key: self(value, f"{where}.{key}") for key, value in node.items()}
        if isinstance(node, list):
            return [self(item, f"{where}[{index}]") for index, item in enumerate(node)]
        return node

    @staticmethod
    def _string(value: Any, where: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TemplateError(f"{where}: expected a string, got {value!r}")
        return value if isinstance(value, str) else str(value)

    def _list(self, node: Any, where: str) -> list[Any]:
        value = self(node, where)
        if not isinstance(value, list):
            raise TemplateError(f"{where}: expected a list, got {value!r}")
        return value

    def _ref(self, name: str, where: str) -> str:
        return self.values[name]

    def _fn_join(self, args: list[Any], where: str) -> str:
        return args[0].join(self._string(item, where) for item in self._list(args[1], where))

    def _fn_select(self, args: list[Any], where: str) -> Any:
        index_value = self(args[0], where)
        try:
            index = int(index_value)
        except (TypeError, ValueError) as error:
            raise TemplateError(f"{where}: index {index_value!r} is not an integer") from error
        items = self._list(args[1], where)
        if not 0 <= index < len(items):
            raise TemplateError(f"{where}: index {index} out of range for a list of {len(items)}")
        return items[index]

    def _fn_split(self, args: list[Any], where: str) -> list[str]:
        return self._string(self(args[1], where), where).split(args[0])

    def _fn_sub(self, args: Any, where: str) -> str:
        if isinstance(args, str):
            text, variables = args, {}
        else:
            text = args[0]
            variables = {name: self._string(self(value, where), where) for name, value in args[1].items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                return variables[name]
            return self.values[name]

        return _SUB_RE.sub(replace, text)

    def _fn_findinmap(self, args: list[Any], where: str) -> Any:
        map_name, top, second = (self._string(self(arg, where), where) for arg in args)
        try:
            return self.mappings[map_name][top][second]
        except KeyError as error:
            raise TemplateError(f"{where}: no value at Mappings.{map_name}.{top}.{second}") from error


def resolve_parameters(template: Template, given: dict[str, str]) -> dict[str, str]:
    """Every declared parameter's value: the given one, else its Default; a parameter with neither fails."""
    values: dict[str, str] = {}
    missing = []
    for name, declaration in template.parameters.items():
        if name in given:
            values[name] = given[name]
        elif "Default" in declaration:
            values[name] = declaration["Default"]
        else:
            missing.append(name)
    if missing:
        raise TemplateError(f"parameters: no value and no Default for {', '.join(missing)}")
    return values


# --------------------------------------------------------------------------- RegisterThing: plan, then apply


@dataclass
class ThingPlan:
    logical_id: str
    name: str
    existing: Any  # FakeThing or None
    attributes: dict[str, str] | None  # final attributes, None = leave alone
    thing_type: str | None  # new thing type name, None = leave alone
    groups_add: list[str]
    groups_remove: list[str]
    billing_group: str | None  # billing group to add to, None = leave alone


@dataclass
class CertificatePlan:
    logical_id: str
    source: str
    existing: Any  # FakeCertificate or None
    status: str | None  # None = leave alone
    csr: x509.CertificateSigningRequest | None = None
    pem: str | None = None
    ca_certificate_id: str | None = None


@dataclass
class PolicyPlan:
    logical_id: str
    name: str
    document: str | None  # set when the policy must be created


@dataclass
class RegistrationPlan:
    thing: ThingPlan | None
    certificate: CertificatePlan | None
    policies: list[PolicyPlan]


def _thing_type_exists(backend: IoTBackend, name: str) -> Any:
    for thing_type in backend.thing_types.values():
        if thing_type.thing_type_name == name:
            return thing_type
    return None


def _thing_by_name(backend: IoTBackend, name: str) -> Any:
    return next((thing for thing in backend.things.values() if thing.thing_name == name), None)


def _groups_of(backend: IoTBackend, thing: Any) -> list[str]:
    return [group.thing_group_name for group in backend.thing_groups.values() if thing.arn in group.things]


def _override(resource: dict[str, Any], name: str, default: str) -> str:
    return (resource.get("OverrideSettings") or {}).get(name, default)


def _conflict(logical_id: str, name: str, current: Any, wanted: Any) -> IoTError:
    # The developer guide names ResourceConflictsException for OverrideSettings FAIL.
    return IoTError(
        "ResourceConflictsException",
        f"Resources.{logical_id}.OverrideSettings.{name} is FAIL and the existing value {current!r} "
        f"differs from the template's {wanted!r}",
    )


def _check_thing_values(logical_id: str, properties: dict[str, Any]) -> None:
    where = f"Resources.{logical_id}.Properties"
    name = properties.get("ThingName")
    if not isinstance(name, str) or not 1 <= len(name) <= THING_NAME_MAX or not THING_NAME_RE.match(name):
        raise invalid(
            f"{where}.ThingName: must be 1-{THING_NAME_MAX} characters matching [a-zA-Z0-9:_-]+, got {name!r}"
        )
    for key, value in (properties.get("AttributePayload") or {}).items():
        if not 1 <= len(key) <= ATTRIBUTE_NAME_MAX or not ATTRIBUTE_NAME_RE.match(key):
            raise invalid(f"{where}.AttributePayload: attribute name {key!r} must match [a-zA-Z0-9_.,@/:#-]+ (max 128)")
        if not isinstance(value, str):
            raise invalid(f"{where}.AttributePayload.{key}: value must be a string, got {value!r}")
        if len(value) > ATTRIBUTE_VALUE_MAX or not ATTRIBUTE_VALUE_RE.match(value):
            raise invalid(f"{where}.AttributePayload.{key}: value must match [a-zA-Z0-9_.,@/:#=\\[\\]-]* (max 800)")
    for key in ("ThingTypeName", "BillingGroup"):
        if key in properties and not isinstance(properties[key], str):
            raise invalid(f"{where}.{key}: must be a string, got {properties[key]!r}")
    groups = properties.get("ThingGroups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        raise invalid(f"{where}.ThingGroups: must be a list of thing group names, got {groups!r}")


def plan_thing(backend: IoTBackend, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> ThingPlan:
    _check_thing_values(logical_id, props)
    name = props["ThingName"]
    type_name = props.get("ThingTypeName")
    groups = list(OrderedDict.fromkeys(props.get("ThingGroups") or []))
    billing = props.get("BillingGroup")
    if type_name is not None:
        thing_type = _thing_type_exists(backend, type_name)
        if thing_type is None:
            raise registration_failure(f"Thing Type {type_name} not found")
        if thing_type.metadata.get("deprecated"):
            raise registration_failure(f"Thing Type {type_name} is deprecated; new things cannot use it")
    for group in groups:
        if not any(g.thing_group_name == group for g in backend.thing_groups.values()):
            raise registration_failure(f"Thing Group {group} not found")
    if billing is not None and billing not in backend.billing_groups:
        raise registration_failure(f"Billing Group {billing} not found")
    wanted_attributes = dict(props.get("AttributePayload") or {})
    existing = _thing_by_name(backend, name)
    if existing is None:
        plan = ThingPlan(logical_id, name, None, wanted_attributes, type_name, groups, [], billing)
        final_attributes, final_type, final_groups = wanted_attributes, type_name, groups
    else:
        plan = ThingPlan(logical_id, name, existing, None, None, [], [], None)
        current_type = existing.thing_type.thing_type_name if existing.thing_type else None
        current_groups = _groups_of(backend, existing)
        final_attributes, final_type, final_groups = dict(existing.attributes), current_type, list(current_groups)
        if "AttributePayload" in props:
            action = _override(resource, "AttributePayload", "DO_NOTHING")
            if action == "REPLACE":
                final_attributes = wanted_attributes
            elif action == "MERGE":
                final_attributes = {**final_attributes, **wanted_attributes}
            elif action == "FAIL" and wanted_attributes != final_attributes:
                raise _conflict(logical_id, "AttributePayload", existing.attributes, wanted_attributes)
            if final_attributes != existing.attributes:
                plan.attributes = final_attributes
        if type_name is not None:
            action = _override(resource, "ThingTypeName", "DO_NOTHING")
            if action == "REPLACE":
                final_type = type_name
            elif action == "FAIL" and type_name != current_type:
                raise _conflict(logical_id, "ThingTypeName", current_type, type_name)
            if final_type != current_type:
                plan.thing_type = final_type
        if "ThingGroups" in props:
            action = _override(resource, "ThingGroups", "DO_NOTHING")
            if action == "REPLACE":
                final_groups = groups
            elif action == "MERGE":
                final_groups = list(OrderedDict.fromkeys(current_groups + groups))
            elif action == "FAIL" and sorted(groups) != sorted(current_groups):
                raise _conflict(logical_id, "ThingGroups", current_groups, groups)
            plan.groups_add = [g for g in final_groups if g not in current_groups]
            plan.groups_remove = [g for g in current_groups if g not in final_groups]
    where = f"Resources.{logical_id}.Properties"
    limit = MAX_ATTRIBUTES_WITH_TYPE if final_type else MAX_ATTRIBUTES_WITHOUT_TYPE
    if len(final_attributes) > limit:
        kind = "with" if final_type else "without"
        raise invalid(
            f"{where}.AttributePayload: a thing {kind} a thing type can have at most {limit} attributes, "
            f"got {len(final_attributes)}"
        )
    if len(final_groups) > MAX_GROUPS_PER_THING:
        raise invalid(
            f"{where}.ThingGroups: a thing can be in at most {MAX_GROUPS_PER_THING} thing groups, "
            f"got {len(final_groups)}"
        )
    _check_one_group_per_hierarchy(backend, where, final_groups)
    return plan


def _check_one_group_per_hierarchy(backend: IoTBackend, where: str, group_names: list[str]) -> None:
    """AWS: a thing can be in only one group of a hierarchy (groups sharing a root)."""
    seen: dict[str, str] = {}
    for name in group_names:
        group = next(g for g in backend.thing_groups.values() if g.thing_group_name == name)
        ancestors = group.metadata.get("rootToParentThingGroups") or []
        root = ancestors[0]["groupName"] if ancestors else name
        if root in seen:
            raise invalid(
                f"{where}.ThingGroups: a thing can be in only one group of a hierarchy; "
                f"{seen[root]} and {name} share the root {root}"
            )
        seen[root] = name


def _load_pem_certificate(pem: Any, where: str) -> x509.Certificate:
    if not isinstance(pem, str):
        raise invalid(f"{where}: must be a PEM string")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as error:
        raise invalid(f"{where}: not a PEM certificate: {error}") from error


def _certificate_id_for(backend: IoTBackend, pem: str) -> str:
    # The same computation moto uses, so ids agree with moto's own certificates.
    return FakeCertificate(pem, "INACTIVE", backend.account_id, backend.region_name).certificate_id


def _registered_ca_for(backend: IoTBackend, ca: x509.Certificate) -> Any:
    der = ca.public_bytes(serialization.Encoding.DER)
    for ca_certificate in backend.ca_certificates.values():
        try:
            loaded = x509.load_pem_x509_certificate(ca_certificate.certificate_pem.encode())
        except ValueError:
            continue
        if loaded.public_bytes(serialization.Encoding.DER) == der:
            return ca_certificate
    return None


def plan_certificate(
    backend: IoTBackend, logical_id: str, resource: dict[str, Any], props: dict[str, Any]
) -> CertificatePlan:
    where = f"Resources.{logical_id}.Properties"
    status = props.get("Status")
    if status is not None:
        if not isinstance(status, str) or status.upper() not in CERTIFICATE_STATUSES:
            raise invalid(f"{where}.Status: must be ACTIVE or INACTIVE, got {status!r}")
        status = status.upper()
    action = _override(resource, "Status", "REPLACE")
    source = next(name for name in CERTIFICATE_SOURCES if name in props)
    value = props[source]
    if source == "CertificateSigningRequest":
        if not isinstance(value, str):
            raise invalid(f"{where}.CertificateSigningRequest: must be a PEM string")
        try:
            csr = x509.load_pem_x509_csr(value.encode())
        except ValueError as error:
            raise invalid(
                f"{where}.CertificateSigningRequest: not a PEM certificate signing request: {error}"
            ) from error
        if not csr.is_signature_valid:
            raise invalid(f"{where}.CertificateSigningRequest: the request's signature does not verify")
        return CertificatePlan(logical_id, source, None, status or "ACTIVE", csr=csr)
    if source == "CertificateId":
        if not isinstance(value, str) or not CERTIFICATE_ID_RE.match(value):
            raise invalid(f"{where}.CertificateId: must be 64 hexadecimal characters, got {value!r}")
        existing = backend.certificates.get(value.lower())
        if existing is None:
            raise registration_failure(f"Certificate {value} not found")
        if existing.status == "REVOKED":
            raise registration_failure(f"Certificate {value} is REVOKED and cannot be provisioned")
        return CertificatePlan(logical_id, source, existing, _status_change(logical_id, existing, status, action))
    certificate = _load_pem_certificate(value, f"{where}.CertificatePem")
    ca_id = None
    if "CACertificatePem" in props:
        ca = _load_pem_certificate(props["CACertificatePem"], f"{where}.CACertificatePem")
        registered = _registered_ca_for(backend, ca)
        if registered is None:
            raise registration_failure("CA certificate given in CACertificatePem is not registered in this account")
        try:
            certificate.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as error:
            raise registration_failure(f"{where}.CertificatePem: not signed by the given CA certificate") from error
        ca_id = registered.certificate_id
    certificate_id = _certificate_id_for(backend, value)
    existing = backend.certificates.get(certificate_id)
    if existing is not None:
        return CertificatePlan(logical_id, source, existing, _status_change(logical_id, existing, status, action))
    return CertificatePlan(logical_id, source, None, status or "ACTIVE", pem=value, ca_certificate_id=ca_id)


def _status_change(logical_id: str, existing: Any, status: str | None, action: str) -> str | None:
    if status is None or status == existing.status or action == "DO_NOTHING":
        return None
    if action == "FAIL":
        raise _conflict(logical_id, "Status", existing.status, status)
    return status


def _policy_document(value: Any, where: str) -> str:
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise invalid(f"{where}: must be a JSON policy document (an escaped JSON string)")
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise invalid(f"{where}: not valid JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise invalid(f"{where}: must be a JSON object")
    size = len(re.sub(r"\s", "", text))
    if size > POLICY_DOCUMENT_MAX:
        raise invalid(f"{where}: at most {POLICY_DOCUMENT_MAX} characters excluding whitespace, got {size}")
    return text


def plan_policy(backend: IoTBackend, logical_id: str, props: dict[str, Any]) -> PolicyPlan:
    where = f"Resources.{logical_id}.Properties"
    if "PolicyName" in props:
        name = props["PolicyName"]
        if not isinstance(name, str) or not 1 <= len(name) <= POLICY_NAME_MAX or not POLICY_NAME_RE.match(name):
            raise invalid(
                f"{where}.PolicyName: must be 1-{POLICY_NAME_MAX} characters matching [\\w+=,.@-]+, got {name!r}"
            )
        if name not in backend.policies:
            raise registration_failure(f"Policy {name} not found")
        return PolicyPlan(logical_id, name, None)
    document = _policy_document(props["PolicyDocument"], f"{where}.PolicyDocument")
    name = hashlib.sha256(document.encode()).hexdigest()
    return PolicyPlan(logical_id, name, None if name in backend.policies else document)


def plan_registration(backend: IoTBackend, template_body: Any, parameters: Any) -> RegistrationPlan:
    """Every check RegisterThing makes, before anything is created."""
    try:
        template = parse_template(template_body)
    except TemplateError as error:
        raise invalid(str(error)) from error
    given = parameters or {}
    for key, value in given.items():
        if len(key) > PARAMETER_KEY_MAX:
            raise invalid(f"parameters: key {key[:40]!r}... longer than {PARAMETER_KEY_MAX} characters")
        if not isinstance(value, str) or len(value) > PARAMETER_VALUE_MAX:
            raise invalid(f"parameters.{key}: value must be a string of at most {PARAMETER_VALUE_MAX} characters")
    try:
        values = resolve_parameters(template, given)
        evaluate = Evaluator(values, template.mappings)
        resolved = OrderedDict(
            (logical_id, evaluate(resource["Properties"], f"Resources.{logical_id}.Properties"))
            for logical_id, resource in template.resources.items()
        )
    except TemplateError as error:
        raise invalid(str(error)) from error
    thing = certificate = None
    policies = []
    for logical_id, resource in template.resources.items():
        props = resolved[logical_id]
        if resource["Type"] == THING:
            thing = plan_thing(backend, logical_id, resource, props)
        elif resource["Type"] == CERTIFICATE:
            certificate = plan_certificate(backend, logical_id, resource, props)
        else:
            policies.append(plan_policy(backend, logical_id, props))
    if certificate is not None and policies:
        attached = (
            {p.name for p in backend.list_principal_policies(certificate.existing.arn)}
            if certificate.existing
            else set()
        )
        total = len(attached | {p.name for p in policies})
        if total > MAX_POLICIES_PER_CERTIFICATE:
            raise registration_failure(
                f"a certificate can have at most {MAX_POLICIES_PER_CERTIFICATE} policies attached, "
                f"this would make {total}"
            )
    return RegistrationPlan(thing, certificate, policies)


_ISSUER: dict[str, Any] = {}


def _issuer() -> tuple[x509.Name, rsa.RSAPrivateKey]:
    """The local stand-in for AWS's issuing CA (one key per endpoint process)."""
    if not _ISSUER:
        _ISSUER["key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # AWS-issued device certificates carry this whole string as one OU.
        _ISSUER["name"] = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, AWS_ISSUER_OU)])
    return _ISSUER["name"], _ISSUER["key"]


def certificate_from_csr(csr: x509.CertificateSigningRequest) -> str:
    """A certificate for the CSR's own public key and subject, as AWS issues it (the key stays with the device)."""
    issuer_name, issuer_key = _issuer()
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(issuer_name)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc))
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def apply_registration(backend: IoTBackend, plan: RegistrationPlan) -> dict[str, Any]:
    """Create and attach what the plan says; on an unexpected failure, undo what this call created."""
    undo: list[Callable[[], None]] = []
    response: dict[str, Any] = {"resourceArns": {}}
    try:
        certificate = None
        if plan.certificate is not None:
            certificate = _apply_certificate(backend, plan.certificate, undo, response)
            response["resourceArns"][plan.certificate.logical_id] = certificate.arn
        for policy in plan.policies:
            if policy.document is not None and policy.name not in backend.policies:
                created = backend.create_policy(policy.name, policy.document)
                undo.append(lambda name=created.name: backend.policies.pop(name, None))
            response["resourceArns"][policy.logical_id] = backend.policies[policy.name].arn
        thing = None
        if plan.thing is not None:
            thing = _apply_thing(backend, plan.thing, undo)
            response["resourceArns"][plan.thing.logical_id] = thing.arn
        if certificate is not None:
            for policy in plan.policies:
                key = (certificate.arn, policy.name)
                if key not in backend.principal_policies:
                    backend.attach_principal_policy(policy.name, certificate.arn)
                    undo.append(lambda key=key: backend.principal_policies.pop(key, None))
            if thing is not None:
                backend.attach_thing_principal(thing.thing_name, certificate.arn)
    except Exception:
        for step in reversed(undo):
            with contextlib.suppress(Exception):  # undo is best effort
                step()
        raise
    return response


def _apply_certificate(
    backend: IoTBackend, plan: CertificatePlan, undo: list[Callable[[], None]], response: dict[str, Any]
) -> Any:
    if plan.existing is not None:
        if plan.status is not None:
            previous = plan.existing.status
            backend.update_certificate(plan.existing.certificate_id, plan.status)
            undo.append(lambda: setattr(plan.existing, "status", previous))
        return plan.existing
    if plan.csr is not None:
        pem = certificate_from_csr(plan.csr)
        response["certificatePem"] = pem
    else:
        pem = plan.pem
    certificate = FakeCertificate(pem, plan.status, backend.account_id, backend.region_name, plan.ca_certificate_id)
    backend.certificates[certificate.certificate_id] = certificate
    undo.append(lambda: backend.certificates.pop(certificate.certificate_id, None))
    return certificate


def _apply_thing(backend: IoTBackend, plan: ThingPlan, undo: list[Callable[[], None]]) -> Any:
    if plan.existing is None:
        thing = backend.create_thing(plan.name, plan.thing_type, {"attributes": plan.attributes or {}}, None)
        undo.append(lambda: _forget_thing(backend, thing))
    else:
        thing = plan.existing
        snapshot = (dict(thing.attributes), thing.thing_type)
        undo.append(lambda: (setattr(thing, "attributes", snapshot[0]), setattr(thing, "thing_type", snapshot[1])))
        if plan.attributes is not None or plan.thing_type is not None:
            payload = {"attributes": plan.attributes, "merge": False} if plan.attributes is not None else None
            backend.update_thing(plan.name, plan.thing_type, payload, False)
    # Removals first: membership limits (10 groups, one group per hierarchy) are checked on each addition.
    for group in plan.groups_remove:
        backend.remove_thing_from_thing_group(group, None, plan.name, None)
        undo.append(lambda g=group: backend.add_thing_to_thing_group(g, None, plan.name, None))
    for group in plan.groups_add:
        backend.add_thing_to_thing_group(group, None, plan.name, None)
        undo.append(lambda g=group: backend.remove_thing_from_thing_group(g, None, plan.name, None))
    if plan.billing_group is not None:
        backend.add_thing_to_billing_group(billing_group_name=plan.billing_group, thing_name=plan.name)
    return thing


def _forget_thing(backend: IoTBackend, thing: Any) -> None:
    for group in backend.thing_groups.values():
        group.things.pop(thing.arn, None)
    for billing_group in backend.billing_groups.values():
        if thing.arn in billing_group.things:
            billing_group.things.remove(thing.arn)
    for key in [k for k in backend.principal_things if k[1] == thing.thing_name]:
        del backend.principal_things[key]
    backend.things.pop(thing.arn, None)


# --------------------------------------------------------------------------- handlers


def _params(response: IoTResponse) -> dict[str, Any]:
    """The request's parameters, parsed by the botocore model (body, URI and query string)."""
    response.parse_parameters(response.normalized_request)
    return dict(response.params)


def _template(state: ProvisioningState, name: str) -> ProvisioningTemplate:
    template = state.templates.get(name)
    if template is None:
        raise not_found(f"The provisioning template {name} does not exist")
    return template


def _checked_body(body: Any) -> str:
    try:
        parse_template(body)
    except TemplateError as error:
        raise invalid(str(error)) from error
    return body


def create_provisioning_template(self: IoTResponse) -> ActionResult:
    params = _params(self)
    name = validate_template_name(params.get("templateName"))
    description = validate_description(params.get("description"))
    body = _checked_body(params.get("templateBody"))
    role_arn = validate_role_arn(params.get("provisioningRoleArn"))
    template_type = params.get("type") or "FLEET_PROVISIONING"
    if template_type not in TEMPLATE_TYPES:
        raise invalid(f"type: must be one of {', '.join(TEMPLATE_TYPES)}, got {template_type!r}")
    hook = params.get("preProvisioningHook")
    hook = validate_hook(hook, template_type) if hook is not None else None
    tags = validate_tags(params.get("tags"))
    if len(tags) > MAX_TAGS:
        raise IoTError("LimitExceededException", f"tags: at most {MAX_TAGS} tags per resource, got {len(tags)}")
    backend = self.iot_backend
    with _LOCK:
        state = state_of(backend)
        arn = template_arn(backend, name)
        if name in state.templates:
            raise AlreadyExists(f"Template with name {name} already exists", name, arn)
        if len(state.templates) >= MAX_TEMPLATES:
            raise IoTError("LimitExceededException", f"at most {MAX_TEMPLATES} provisioning templates per account")
        now = _now()
        template = ProvisioningTemplate(
            name=name,
            arn=arn,
            description=description,
            enabled=bool(params.get("enabled", False)),
            role_arn=role_arn,
            hook=hook,
            template_type=template_type,
            creation_date=now,
            last_modified_date=now,
        )
        version = template.add_version(body)
        template.default_version_id = version.version_id
        state.templates[name] = template
        if tags:
            state.tags[arn] = tags
    return ActionResult({"templateArn": arn, "templateName": name, "defaultVersionId": version.version_id})


def describe_provisioning_template(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        return ActionResult(_template(state_of(self.iot_backend), params["templateName"]).describe())


def list_provisioning_templates(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        summaries = [template.summary() for template in state_of(self.iot_backend).templates.values()]
    items, token = page(summaries, params.get("maxResults"), params.get("nextToken"))
    return ActionResult(_drop_none({"templates": items, "nextToken": token}))


def update_provisioning_template(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        template = _template(state_of(self.iot_backend), params["templateName"])
        description = validate_description(params.get("description"))
        role_arn = params.get("provisioningRoleArn")
        if role_arn is not None:
            validate_role_arn(role_arn)
        default_version_id = params.get("defaultVersionId")
        if default_version_id is not None and default_version_id not in template.versions:
            raise not_found(f"Version {default_version_id} of provisioning template {template.name} does not exist")
        hook = params.get("preProvisioningHook")
        remove_hook = bool(params.get("removePreProvisioningHook", False))
        if hook is not None and remove_hook:
            raise invalid("preProvisioningHook and removePreProvisioningHook=true cannot be given together")
        if hook is not None:
            hook = validate_hook(hook, template.template_type)
        changed = False
        if description is not None and description != template.description:
            template.description, changed = description, True
        if params.get("enabled") is not None and bool(params["enabled"]) != template.enabled:
            template.enabled, changed = bool(params["enabled"]), True
        if role_arn is not None and role_arn != template.role_arn:
            template.role_arn, changed = role_arn, True
        if default_version_id is not None and default_version_id != template.default_version_id:
            template.default_version_id, changed = default_version_id, True
        if hook is not None and hook != template.hook:
            template.hook, changed = hook, True
        if remove_hook and template.hook is not None:
            template.hook, changed = None, True
        if changed:
            template.last_modified_date = _now()
    return EmptyResult()


def delete_provisioning_template(self: IoTResponse) -> ActionResult:
    params = _params(self)
    backend = self.iot_backend
    with _LOCK:
        state = state_of(backend)
        template = _template(state, params["templateName"])
        for ca in backend.ca_certificates.values():
            if (getattr(ca, "registration_config", None) or {}).get("templateName") == template.name:
                raise IoTError(
                    "DeleteConflictException",
                    f"The provisioning template {template.name} is used by the registration config of "
                    f"CA certificate {ca.certificate_id}",
                )
        del state.templates[template.name]
        state.tags.pop(template.arn, None)
    return EmptyResult()


def create_provisioning_template_version(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        template = _template(state_of(self.iot_backend), params["templateName"])
        body = _checked_body(params.get("templateBody"))
        if len(template.versions) >= MAX_TEMPLATE_VERSIONS:
            raise IoTError(
                "VersionsLimitExceededException",
                f"The provisioning template {template.name} already has the maximum number of versions "
                f"({MAX_TEMPLATE_VERSIONS})",
            )
        version = template.add_version(body)
        set_as_default = bool(params.get("setAsDefault", False))
        if set_as_default:
            template.default_version_id = version.version_id
        template.last_modified_date = _now()
        return ActionResult(
            {
                "templateArn": template.arn,
                "templateName": template.name,
                "versionId": version.version_id,
                "isDefaultVersion": set_as_default,
            }
        )


def _version(template: ProvisioningTemplate, version_id: Any) -> TemplateVersion:
    version = template.versions.get(version_id)
    if version is None:
        raise not_found(f"Version {version_id} of provisioning template {template.name} does not exist")
    return version


def describe_provisioning_template_version(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        template = _template(state_of(self.iot_backend), params["templateName"])
        version = _version(template, params["versionId"])
        return ActionResult(
            {
                "versionId": version.version_id,
                "creationDate": version.creation_date,
                "templateBody": version.body,
                "isDefaultVersion": version.version_id == template.default_version_id,
            }
        )


def list_provisioning_template_versions(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        template = _template(state_of(self.iot_backend), params["templateName"])
        summaries = [
            {
                "versionId": version.version_id,
                "creationDate": version.creation_date,
                "isDefaultVersion": version.version_id == template.default_version_id,
            }
            for version in template.versions.values()
        ]
    items, token = page(summaries, params.get("maxResults"), params.get("nextToken"))
    return ActionResult(_drop_none({"versions": items, "nextToken": token}))


def delete_provisioning_template_version(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        template = _template(state_of(self.iot_backend), params["templateName"])
        version = _version(template, params["versionId"])
        if version.version_id == template.default_version_id:
            raise IoTError(
                "DeleteConflictException",
                f"Version {version.version_id} is the default version of provisioning template {template.name}; "
                "make another version the default first, or delete the template",
            )
        del template.versions[version.version_id]
    return EmptyResult()


def register_thing(self: IoTResponse) -> ActionResult:
    params = _params(self)
    backend = self.iot_backend
    with _LOCK:
        plan = plan_registration(backend, params.get("templateBody"), params.get("parameters"))
        try:
            return ActionResult(apply_registration(backend, plan))
        except MotoNotFound as error:  # a resource vanished between plan and apply (should not happen under the lock)
            raise registration_failure(f"a referenced resource disappeared during registration: {error}") from error


HANDLERS: dict[str, Callable[[IoTResponse], ActionResult]] = {
    "create_provisioning_template": create_provisioning_template,
    "describe_provisioning_template": describe_provisioning_template,
    "list_provisioning_templates": list_provisioning_templates,
    "update_provisioning_template": update_provisioning_template,
    "delete_provisioning_template": delete_provisioning_template,
    "create_provisioning_template_version": create_provisioning_template_version,
    "describe_provisioning_template_version": describe_provisioning_template_version,
    "list_provisioning_template_versions": list_provisioning_template_versions,
    "delete_provisioning_template_version": delete_provisioning_template_version,
    "register_thing": register_thing,
}


def install() -> None:
    """Register the handlers on moto's IoTResponse (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    for name, handler in HANDLERS.items():
        setattr(IoTResponse, name, handler)
    _INSTALLED = True
