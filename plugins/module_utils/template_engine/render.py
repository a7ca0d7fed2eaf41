# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""render(template, parameters) -> the plain rendered dict; certificate ids and public keys."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.expressions import (
    _at,
    _check_attribute,
    _check_certificate_id,
    _check_choice,
    _check_name,
    _check_policy_name,
    _function_call,
    _kind_of,
    _policy_document,
    _suggest,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.limits import (
    _SUB_VARIABLE,
    CERTIFICATE,
    CERTIFICATE_STATUSES,
    DEFAULT_OVERRIDE,
    PARAMETER_KEY_MAX,
    PARAMETER_VALUE_MAX,
    PSEUDO_PARAMETERS,
    THING,
    THING_PRINCIPAL_TYPES,
    ProvisioningTemplate,
    TemplateError,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.parse import (
    parse,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    CSR_MAX,
    MAX_THING_GROUPS_PER_THING,
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
        if len(groups) > MAX_THING_GROUPS_PER_THING:
            raise TemplateError(
                _at(path, "ThingGroups"),
                f"a thing can be in at most {MAX_THING_GROUPS_PER_THING} groups, got {len(groups)}",
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
