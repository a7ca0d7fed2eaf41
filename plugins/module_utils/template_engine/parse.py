# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""parse(body) -> ProvisioningTemplate: structure, sections, functions and references checked."""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.expressions import (
    _at,
    _check_attribute,
    _check_attribute_count,
    _check_certificate_id,
    _check_choice,
    _check_expr,
    _check_name,
    _check_policy_name,
    _function_call,
    _kind_of,
    _policy_document,
    _reject_mixed_object,
    _Scope,
    _suggest,
    _unknown_key,
    load_body,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.limits import (
    ANY,
    CERTIFICATE,
    CERTIFICATE_OVERRIDE_KEYS,
    CERTIFICATE_PROPERTIES,
    CERTIFICATE_SOURCES,
    CERTIFICATE_STATUSES,
    JITP_PARAMETERS,
    LIST,
    MERGEABLE,
    OVERRIDE_ACTIONS,
    PARAMETER_KEY_MAX,
    POLICY,
    POLICY_PROPERTIES,
    RESOURCE_KEYS,
    RESOURCE_TYPES,
    SECTIONS,
    STRING,
    TEMPLATE_BODY_MAX,
    TEMPLATE_TYPES,
    THING,
    THING_OVERRIDE_KEYS,
    THING_PRINCIPAL_TYPES,
    THING_PROPERTIES,
    ProvisioningTemplate,
    TemplateError,
    template_body_json,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_POLICIES_PER_CERTIFICATE,
    MAX_THING_GROUPS_PER_THING,
)

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
            if len(groups) > MAX_THING_GROUPS_PER_THING:
                raise TemplateError(
                    _at(path, "ThingGroups"),
                    f"a thing can be in at most {MAX_THING_GROUPS_PER_THING} groups, got {len(groups)}",
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
