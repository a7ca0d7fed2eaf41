"""AWS IoT Core policy evaluation for the local endpoint's data plane (and TestAuthorization).

A second, independent reading of the AWS IoT developer guide ("AWS IoT Core policies", "Policy variables",
"Thing policy variables", "X.509 certificate policy variables"), importing nothing from ``plugins/``:

* A request is an action (``iot:Connect``, ``iot:Publish``, ``iot:Subscribe``, ``iot:Receive``,
  ``iot:RetainPublish``) on a resource ARN (``client/<clientId>``, ``topic/<topic>``, ``topicfilter/<filter>``).
* Every statement of every policy that applies is looked at: an explicit Deny wins over any Allow; with no
  matching Allow the request is implicitly denied.
* ``*`` (any characters, ``/`` included) and ``?`` (one character) are the only wildcards in resources; MQTT's
  ``+`` and ``#`` are literal characters there. Action names match case-insensitively, with ``*`` wildcards.
* Policy variables are substituted in resources and condition values. A variable that cannot be resolved for
  this connection (a thing variable when no thing is attached, an attribute the thing does not have) makes
  its statement not match (AWS: "this variable won't be resolved and will result in an access denied").
* Anything this module does not implement (a condition operator, a condition key, a variable, an action
  prefix other than ``iot:``) raises :class:`Unsupported`, so the caller refuses instead of allowing.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "ALLOWED", "EXPLICIT_DENY", "IMPLICIT_DENY"

# The data-plane actions this evaluator answers; other iot: actions in a policy are fine (they never match
# these requests), other services' actions too.
DATA_ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive", "iot:RetainPublish")

# Certificate fields AWS offers as iot:Certificate.Subject.<Field> / iot:Certificate.Issuer.<Field>.
_NAME_FIELDS: dict[str, x509.ObjectIdentifier] = {
    "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "State": NameOID.STATE_OR_PROVINCE_NAME,
    "CommonName": NameOID.COMMON_NAME,
    "SerialNumber": NameOID.SERIAL_NUMBER,
    "Title": NameOID.TITLE,
    "Surname": NameOID.SURNAME,
    "GivenName": NameOID.GIVEN_NAME,
    "Initials": NameOID.INITIALS,
    "Pseudonym": NameOID.PSEUDONYM,
    "GenerationQualifier": NameOID.GENERATION_QUALIFIER,
}

# Condition operators implemented (each may end in IfExists). Numeric, date, IP and binary operators and the
# ForAnyValue:/ForAllValues: set qualifiers are not: a policy using them is refused (Unsupported).
_STRING_OPERATORS = {
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "Null",
}

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ATTRIBUTE = re.compile(r"^iot:Connection\.Thing\.Attributes\[([^\]]+)\]$")


class Unsupported(Exception):
    """The policy uses something this evaluator does not implement: the request must be refused, loudly."""


class _Unresolved(Exception):
    """A known variable with no value for this request: the statement does not match."""


@dataclass
class Thing:
    name: str
    type_name: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """What the policy variables and condition keys of one connection resolve to."""

    client_id: str | None = None
    thing: Thing | None = None  # the thing attached to the certificate whose name is the client id
    certificate: x509.Certificate | None = None
    certificate_id: str | None = None
    # Variables a statement needed but this connection has no value for (TestAuthorization's
    # missingContextValues); filled in by the evaluation.
    missing: set[str] = field(default_factory=set)


@dataclass
class Decision:
    answer: str  # ALLOWED, EXPLICIT_DENY or IMPLICIT_DENY
    policies: list[str] = field(default_factory=list)  # the policies whose statements decided it

    @property
    def allowed(self) -> bool:
        return self.answer == ALLOWED


def _name_field(name: x509.Name, field_name: str) -> str | None:
    oid = _NAME_FIELDS.get(field_name)
    if oid is None:
        return None
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def _is_known(key: str) -> bool:
    if key in ("iot:ClientId", "iot:Connection.Thing.ThingName", "iot:Connection.Thing.ThingTypeName"):
        return True
    if key in ("iot:Connection.Thing.IsAttached", "iot:Certificate.SerialNumber"):
        return True
    if _ATTRIBUTE.match(key):
        return True
    for prefix in ("iot:Certificate.Subject.", "iot:Certificate.Issuer."):
        if key.startswith(prefix) and key[len(prefix) :] in _NAME_FIELDS:
            return True
    return False


def resolve(key: str, context: Context) -> str | None:
    """The value of a policy variable / condition key, None when it has none here; Unsupported if unknown."""
    if not _is_known(key):
        raise Unsupported(f"the policy variable or condition key {key} is not emulated by the local endpoint")
    thing = context.thing
    if key == "iot:ClientId":
        return context.client_id
    if key == "iot:Connection.Thing.IsAttached":
        return "true" if thing is not None else "false"
    if key == "iot:Connection.Thing.ThingName":
        return thing.name if thing else None
    if key == "iot:Connection.Thing.ThingTypeName":
        return thing.type_name if thing else None
    attribute = _ATTRIBUTE.match(key)
    if attribute:
        return thing.attributes.get(attribute.group(1)) if thing else None
    certificate = context.certificate
    if certificate is None:
        return None
    if key == "iot:Certificate.SerialNumber":
        return str(certificate.serial_number)
    if key.startswith("iot:Certificate.Subject."):
        return _name_field(certificate.subject, key[len("iot:Certificate.Subject.") :])
    return _name_field(certificate.issuer, key[len("iot:Certificate.Issuer.") :])


def substitute(text: str, context: Context) -> str:
    """``text`` with its ``${...}`` variables replaced; _Unresolved when one has no value here."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("*", "?", "$"):  # IAM's escapes for literal wildcard characters
            return "\0" + name
        value = resolve(name, context)
        if value is None:
            context.missing.add(name)
            raise _Unresolved(name)
        return value

    return _VARIABLE.sub(replace, text)


def _glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IoT/IAM wildcards: ``*`` any characters, ``?`` one; escaped ones (``${*}``) literal; nothing else special."""
    regex = ""
    literal = False
    for char in pattern:
        if char == "\0":
            literal = True
            continue
        if not literal and char == "*":
            regex += ".*"
        elif not literal and char == "?":
            regex += "."
        else:
            regex += re.escape(char)
        literal = False
    flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    return re.fullmatch(regex, value, flags) is not None


def _as_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None:
        raise Unsupported(f"{where}: missing")
    return [value]


def _action_matches(patterns: list[Any], action: str) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise Unsupported(f"Action: {pattern!r} is not a string")
        if fnmatch.fnmatchcase(action.lower(), pattern.lower()):
            return True
    return False


def _check_actions(patterns: list[Any]) -> None:
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise Unsupported(f"Action: {pattern!r} is not a string")


def _resource_matches(patterns: list[Any], resource: str, context: Context) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise Unsupported(f"Resource: {pattern!r} is not a string")
        try:
            if _glob(substitute(pattern, context), resource):
                return True
        except _Unresolved:
            continue
    return False


def _condition_holds(operator: str, key: str, expected: list[Any], context: Context) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    actual = resolve(key, context)
    if base == "Null":
        want_null = str(expected[0]).lower() == "true"
        return (actual is None) == want_null
    negated = "Not" in base
    if actual is None:
        # IAM: a missing key fails a positive operator and satisfies a negated one; IfExists makes both pass.
        return if_exists or negated
    values = []
    for value in expected:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise Unsupported(f"Condition {operator} {key}: value {value!r} is not a string")
        try:
            values.append(substitute(str(value), context))
        except _Unresolved:
            continue
    if "Like" not in base:
        values = [value.replace("\0", "") for value in values]  # ${*} is a plain * outside the Like operators
    if base == "Bool":
        return actual.lower() in [value.lower() for value in values]
    positive = base.replace("Not", "")
    if positive in ("StringEquals", "ArnEquals"):
        found = actual in values
    elif positive == "StringEqualsIgnoreCase":
        found = actual.lower() in [value.lower() for value in values]
    else:  # StringLike, ArnLike
        found = any(_glob(value, actual) for value in values)
    return not found if negated else found


def _conditions_hold(conditions: Any, context: Context) -> bool:
    if conditions is None:
        return True
    if not isinstance(conditions, dict):
        raise Unsupported("Condition: must be an object of operators")
    for operator, entries in conditions.items():
        base = operator[: -len("IfExists")] if operator.endswith("IfExists") else operator
        if base not in _STRING_OPERATORS:
            raise Unsupported(f"the condition operator {operator} is not emulated by the local endpoint")
        if not isinstance(entries, dict):
            raise Unsupported(f"Condition {operator}: must be an object of condition keys")
        for key, expected in entries.items():
            if not _condition_holds(operator, key, _as_list(expected, f"Condition {operator} {key}"), context):
                return False
    return True


def _document(document: Any, name: str) -> dict[str, Any]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as error:
            raise Unsupported(f"policy {name}: not JSON") from error
    if not isinstance(document, dict):
        raise Unsupported(f"policy {name}: not a JSON object")
    return document


def _statements(document: Any, name: str) -> list[dict[str, Any]]:
    document = _document(document, name)
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(item, dict) for item in statements):
        raise Unsupported(f"policy {name}: Statement must be an object or a list of objects")
    return statements


def check_supported(policies: Iterable[tuple[str, Any]]) -> None:
    """Unsupported if any statement uses an operator, key or variable this evaluator does not implement.

    Checked for every statement, not only those a request reaches, so a policy we cannot read fully refuses
    the connection instead of being read in part.
    """
    for name, document in policies:
        version = _document(document, name).get("Version")
        # Policy variables belong to policy language version 2012-10-17; how AWS IoT reads them in a document
        # without it (IAM: as literal text) is not something we emulate.
        if version != "2012-10-17" and _VARIABLE.search(json.dumps(_document(document, name))):
            raise Unsupported(
                f"policy {name}: uses policy variables with Version {version!r}; only 2012-10-17 is emulated"
            )
        for statement in _statements(document, name):
            where = f"policy {name}"
            if statement.get("Effect") not in ("Allow", "Deny"):
                raise Unsupported(f"{where}: Effect must be Allow or Deny, not {statement.get('Effect')!r}")
            for unsupported in ("Principal", "NotPrincipal"):
                if unsupported in statement:
                    raise Unsupported(f"{where}: {unsupported} is not part of an AWS IoT policy statement")
            actions = statement.get("Action", statement.get("NotAction"))
            _check_actions(_as_list(actions, f"{where}: Action"))
            resources = statement.get("Resource", statement.get("NotResource"))
            for resource in _as_list(resources, f"{where}: Resource"):
                if not isinstance(resource, str):
                    raise Unsupported(f"{where}: Resource {resource!r} is not a string")
                for variable in _VARIABLE.findall(resource):
                    if variable not in ("*", "?", "$") and not _is_known(variable):
                        raise Unsupported(f"{where}: the policy variable {variable} is not emulated")
            conditions = statement.get("Condition") or {}
            if not isinstance(conditions, dict):
                raise Unsupported(f"{where}: Condition must be an object")
            for operator, entries in conditions.items():
                base = operator[: -len("IfExists")] if operator.endswith("IfExists") else operator
                if base not in _STRING_OPERATORS:
                    raise Unsupported(f"{where}: the condition operator {operator} is not emulated")
                for key in entries if isinstance(entries, dict) else {}:
                    if not _is_known(key):
                        raise Unsupported(f"{where}: the condition key {key} is not emulated")


def _statement_matches(statement: dict[str, Any], action: str, resource: str, context: Context) -> bool:
    if "Action" in statement:
        if not _action_matches(_as_list(statement["Action"], "Action"), action):
            return False
    elif _action_matches(_as_list(statement.get("NotAction"), "NotAction"), action):
        return False
    if "Resource" in statement:
        if not _resource_matches(_as_list(statement["Resource"], "Resource"), resource, context):
            return False
    elif _resource_matches(_as_list(statement.get("NotResource"), "NotResource"), resource, context):
        return False
    return _conditions_hold(statement.get("Condition"), context)


def evaluate(policies: list[tuple[str, Any]], action: str, resource: str, context: Context) -> Decision:
    """ALLOWED, EXPLICIT_DENY or IMPLICIT_DENY for ``action`` on ``resource``; Unsupported if unreadable."""
    check_supported(policies)
    allowing: list[str] = []
    denying: list[str] = []
    for name, document in policies:
        for statement in _statements(document, name):
            if _statement_matches(statement, action, resource, context):
                (denying if statement["Effect"] == "Deny" else allowing).append(name)
    if denying:
        return Decision(EXPLICIT_DENY, sorted(set(denying)))
    if allowing:
        return Decision(ALLOWED, sorted(set(allowing)))
    return Decision(IMPLICIT_DENY)
