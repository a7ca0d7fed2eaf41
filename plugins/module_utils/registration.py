# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RegisterThing made idempotent: plan with the template engine, call only when the plan changes something.

AWS's RegisterThing has no client token, and a template with a CSR makes AWS issue a new certificate
on every call. So the plan decides: a device already provisioned as the template says is left
alone; when only the thing differs, the certificate the device already has is named by its id in
the template sent, so no second certificate is minted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access, keys, template_engine
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import scalar_text, validate_declared

CERTIFICATE_RESOURCE = "AWS::IoT::Certificate"


@dataclass(frozen=True)
class DesiredRegistration:
    """The RegisterThing request the options ask for: a parsed ``template`` or a ``template_name`` to read, the
    parameters (strings), a checked ``csr`` or a ``private_key_path`` (with its ``key_spec``) to make one from."""

    template_name: Optional[str] = None
    template: Optional[template_engine.ProvisioningTemplate] = None
    parameters: dict[str, str] = field(default_factory=dict)
    csr: Optional[str] = None
    certificate_path: Optional[str] = None
    private_key_path: Optional[str] = None
    csr_subject: Optional[dict[str, Any]] = None
    declared_policies: Optional[list[str]] = None
    key_spec: Optional[Any] = None


def validate(params: dict[str, Any]) -> DesiredRegistration:
    """The request from the module options; raises ValidationError before any call."""
    parameters: dict[str, str] = {}
    for key, value in (params.get("parameters") or {}).items():
        if isinstance(value, (dict, list)) or value is None:
            raise ValidationError(f"parameters.{key}", "must be a string (RegisterThing parameters are strings)")
        text = scalar_text(value)
        parameters[str(key)] = str(value) if text is None else text
    declared = validate_declared(params.get("declared_resources"), ("policies",))["policies"]
    template = None
    if params.get("template_body") is not None:
        template = template_engine.parse(params["template_body"])
    csr = params.get("csr")
    if params.get("csr_path"):
        content = crypto.read_file(params["csr_path"])
        if content is None:
            raise ValidationError("csr_path", f"{params['csr_path']} does not exist")
        csr = content.decode("ascii", "replace")
    if csr is not None:
        try:
            crypto.load_csr(csr)
        except crypto.CryptoError as error:
            raise ValidationError("csr_path" if params.get("csr_path") else "csr", str(error)) from None
    return DesiredRegistration(
        template_name=params.get("template_name"),
        template=template,
        parameters=parameters,
        csr=csr,
        certificate_path=params.get("certificate_path"),
        private_key_path=params.get("private_key_path"),
        csr_subject=params.get("csr_subject"),
        declared_policies=declared,
        key_spec=keys.validate_key_spec(params) if params.get("private_key_path") else None,
    )


def csr_parameter(template: template_engine.ProvisioningTemplate) -> Optional[str]:
    """The parameter whose value the template's certificate takes as its CSR (`{"Ref": NAME}`), if any."""
    for resource in template.resources.values():
        if resource.get("Type") != CERTIFICATE_RESOURCE:
            continue
        source = (resource.get("Properties") or {}).get("CertificateSigningRequest")
        if isinstance(source, dict) and list(source) == ["Ref"] and isinstance(source["Ref"], str):
            return source["Ref"]
    return None


def load_template(
    client: Any, template: Optional[template_engine.ProvisioningTemplate], template_name: Optional[str]
) -> template_engine.ProvisioningTemplate:
    """The template given (already parsed), else the named template's default version, read from AWS."""
    if template is not None:
        return template
    response = client.describe_provisioning_template(templateName=template_name)
    # The default version's body; validated like a given body so errors name their path.
    return template_engine.parse(response.get("templateBody") or "{}")


def naming_existing_certificate(template: template_engine.ProvisioningTemplate, certificate_id: str) -> dict[str, Any]:
    """The template with its CSR certificate replaced by the id of the certificate the device already has."""
    body = copy.deepcopy(template.body)
    for resource in body.get("Resources", {}).values():
        if resource.get("Type") == CERTIFICATE_RESOURCE:
            properties = resource.setdefault("Properties", {})
            properties.pop("CertificateSigningRequest", None)
            properties["CertificateId"] = certificate_id
    return body


def certificate_id_of_response(response: dict[str, Any]) -> Optional[str]:
    """The certificate a RegisterThing answer names: its ARN among resourceArns, else the id of the PEM it issued."""
    for arn in (response.get("resourceArns") or {}).values():
        certificate_id = iot_access.certificate_id_of_arn(arn) if isinstance(arn, str) else None
        if certificate_id:
            return certificate_id
    pem = response.get("certificatePem")
    return crypto.certificate_id(pem) if pem else None


def _certificate_action(actions: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    return next((a for a in actions if a["resource"] == "certificate"), None)


def plan_diff(actions: list[dict[str, Any]]) -> dict[str, Any]:
    before, after = {}, {}
    for action in actions:
        key = action["resource"] if not action.get("logical_id") else f"{action['resource']}.{action['logical_id']}"
        if "before" in action or "after" in action:
            before[key] = action.get("before")
            after[key] = action.get("after")
        else:
            before[key] = "absent" if action["action"] == "create" else "present"
            after[key] = "present"
    return {"before": before, "after": after}


def _write_certificate(path: Optional[str], pem: Optional[str], check_mode: bool) -> bool:
    if not path or not pem:
        return False
    data = pem.encode()
    if not crypto.file_differs(path, data):
        return False
    if not check_mode:
        crypto.write_file_atomic(path, data, crypto.CERTIFICATE_MODE)
    return True


def register(client: Any, desired: DesiredRegistration, check_mode: bool) -> dict[str, Any]:
    """Plan, then RegisterThing only when the plan is not empty. Returns the module result (without diff)."""
    template = load_template(client, desired.template, desired.template_name)
    parameters = dict(desired.parameters)
    files_changed = False

    csr = desired.csr
    if desired.private_key_path:
        # The key lives on the host that runs the module; only the CSR leaves it.
        subject = keys.validate_subject("csr_subject", desired.csr_subject or {"common_name": "iot-device"})
        made = keys.ensure_private_key(desired.private_key_path, desired.key_spec, False, check_mode)
        files_changed |= made.changed
        if made.key is not None:
            csr = keys.make_csr(made.key, subject).decode()
    csr_name = csr_parameter(template)
    if csr is not None:
        if csr_name is None:
            raise ValidationError(
                "csr",
                "the template's certificate does not take its CSR from a parameter "
                '(CertificateSigningRequest: {"Ref": "NAME"}), so a CSR cannot be passed to it',
            )
        parameters.setdefault(csr_name, csr)
    elif csr_name is not None and csr_name not in parameters and not check_mode:
        raise ValidationError(
            "csr", f"the template takes a CSR in parameter {csr_name}: give csr, csr_path or private_key_path"
        )

    if csr_name is not None and csr_name not in parameters:
        # Check mode, and the key that would sign the CSR does not exist yet: a certificate would be made.
        return {
            "changed": True,
            "plan": [{"resource": "certificate", "action": "create", "reason": "the device key does not exist yet"}],
            "resource_arns": {},
            "certificate_id": None,
        }
    rendered = template_engine.render(template, parameters)

    state = template_engine.read_current_state(client, rendered)
    actions = template_engine.plan(rendered, state, set(desired.declared_policies) if check_mode else None)
    failures = template_engine.plan_failures(actions)
    if failures:
        raise ValidationError("template_body", "RegisterThing would fail: " + "; ".join(failures))

    certificate = _certificate_action(actions)
    certificate_id = certificate.get("certificate_id") if certificate else None
    result: dict[str, Any] = {"plan": actions, "certificate_id": certificate_id, "resource_arns": {}}

    if template_engine.plan_is_empty(actions):
        if certificate_id and desired.certificate_path:
            described = client.describe_certificate(certificateId=certificate_id)["certificateDescription"]
            files_changed |= _write_certificate(desired.certificate_path, described.get("certificatePem"), check_mode)
        result["resource_arns"] = _known_arns(rendered, state)
        result["changed"] = files_changed
        return result

    if check_mode:
        result["changed"] = True
        return result

    body = template.body
    if certificate and certificate.get("certificate_id") and rendered["certificate"]["source"] == "csr":
        body = naming_existing_certificate(template, certificate["certificate_id"])
    # Prepare the certificate file before the call, so an unwritable directory fails before AWS issues
    # anything, and the issued certificate is on disk before anything else can fail.
    pending = (
        crypto.PendingFile(desired.certificate_path, crypto.CERTIFICATE_MODE) if desired.certificate_path else None
    )
    try:
        response = client.register_thing(templateBody=template_engine.template_body_json(body), parameters=parameters)
        issued_pem = response.get("certificatePem")
        if pending is not None and issued_pem:
            pending.commit(issued_pem.encode())
    finally:
        if pending is not None:
            pending.discard()
    arns = dict(response.get("resourceArns") or {})
    result["resource_arns"] = arns
    certificate_id = certificate_id_of_response(response)
    if certificate_id:
        result["certificate_id"] = certificate_id
    if result["certificate_id"] and desired.certificate_path and not issued_pem:
        described = client.describe_certificate(certificateId=result["certificate_id"])["certificateDescription"]
        _write_certificate(desired.certificate_path, described.get("certificatePem"), check_mode)
    result["changed"] = True
    return result


def _known_arns(rendered: dict[str, Any], state: dict[str, Any]) -> dict[str, str]:
    """The ARNs of what already exists, keyed by logical id like RegisterThing's resourceArns."""
    arns: dict[str, str] = {}
    thing, certificate = state.get("thing"), state.get("certificate")
    if rendered.get("thing") and thing and thing.get("thing_arn"):
        arns[rendered["thing"]["logical_id"]] = thing["thing_arn"]
    if rendered.get("certificate") and certificate and certificate.get("certificate_arn"):
        arns[rendered["certificate"]["logical_id"]] = certificate["certificate_arn"]
    for policy in rendered.get("policies") or []:
        current = (state.get("policies") or {}).get(policy["logical_id"])
        if current and current.get("policy_arn"):
            arns[policy["logical_id"]] = current["policy_arn"]
    return arns
