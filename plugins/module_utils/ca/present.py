# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registering a CA (with a verification certificate made from its key when needed) and updating it in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import tagging, template_engine, x509_helpers
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.read import read_ca_certificate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.validate import PAGE_SIZE, DesiredCA, View
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import StateConflictError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError


def auto_registration_status(value: bool) -> str:
    return "ENABLE" if value else "DISABLE"


def registration_config_matches(desired: Mapping[str, Any], current: Optional[Mapping[str, Any]]) -> bool:
    """Whether the remote config already is the desired one; only the fields the user manages are compared."""
    current = current or {}
    if "template_name" in desired:
        return current.get("template_name") == desired["template_name"]
    return (
        not current.get("template_name")
        and current.get("template_body") == desired["template_body"]
        and current.get("role_arn") == desired["role_arn"]
    )


def registration_config_to_api(config: Mapping[str, Any]) -> Dict[str, str]:
    if "template_name" in config:
        return {"templateName": config["template_name"]}
    return {"templateBody": template_engine.template_body_json(config["template_body"]), "roleArn": config["role_arn"]}


@dataclass
class Plan:
    """UpdateCACertificate arguments and tag changes that bring an existing CA to the desired state."""

    update: Dict[str, Any] = field(default_factory=dict)
    tags_target: Optional[Dict[str, str]] = None

    def changed(self, before: View) -> bool:
        return bool(self.update) or (self.tags_target is not None and self.tags_target != before.get("tags"))


def plan_update(desired: DesiredCA, before: View) -> Tuple[Plan, View]:
    """What to change on a registered CA, and the view it would have afterwards."""
    if (
        desired.certificate_mode
        and before.get("certificate_mode")
        and desired.certificate_mode != before["certificate_mode"]
    ):
        raise StateConflictError(
            "certificate_mode",
            f"CA certificate {before['certificate_id']} is registered in {before['certificate_mode']} mode and AWS IoT "
            f"cannot change the mode of a registered CA; remove it (state=absent) and register it again in "
            f"{desired.certificate_mode} mode",
        )
    plan = Plan()
    after = dict(before)
    if desired.status and desired.status != before.get("status"):
        plan.update["newStatus"] = desired.status
        after["status"] = desired.status
    if desired.auto_registration is not None:
        wanted = auto_registration_status(desired.auto_registration)
        if wanted != before.get("auto_registration_status"):
            plan.update["newAutoRegistrationStatus"] = wanted
            after["auto_registration_status"] = wanted
    if desired.registration_config is not None and not registration_config_matches(
        desired.registration_config, before.get("registration_config")
    ):
        plan.update["registrationConfig"] = registration_config_to_api(desired.registration_config)
        after["registration_config"] = dict(desired.registration_config)
    if desired.tags is not None:
        plan.tags_target = tagging.desired_tags(before.get("tags") or {}, desired.tags, desired.purge_tags)
        after["tags"] = plan.tags_target
    return plan, after


def predicted_new_view(desired: DesiredCA) -> View:
    view: View = {
        "certificate_id": desired.certificate_id,
        "arn": None,
        "status": desired.status or "ACTIVE",
        "auto_registration_status": auto_registration_status(bool(desired.auto_registration)),
        "registration_config": (dict(desired.registration_config) if desired.registration_config else None),
        "certificate_mode": desired.certificate_mode or "DEFAULT",
        "creation_date": None,
    }
    if desired.tags is not None:
        view["tags"] = dict(desired.tags)
    return view


def ensure_present(client: Any, desired: DesiredCA, check_mode: bool) -> Ensured:
    """Register the CA, or bring a registered one to the desired status, settings and tags."""
    before = read_ca_certificate(client, desired.certificate_id, with_tags=desired.tags is not None)
    if before is None:
        return register(client, desired, check_mode)
    plan, after = plan_update(desired, before)
    if not plan.changed(before):
        return Ensured(False, before, before)
    if check_mode:
        return Ensured(True, before, after)
    if plan.update:
        client.update_ca_certificate(certificateId=desired.certificate_id, **plan.update)
    if plan.tags_target is not None:
        tagging.apply_tags(client, before["arn"], before.get("tags") or {}, plan.tags_target)
    current = read_ca_certificate(client, desired.certificate_id, with_tags=desired.tags is not None)
    return Ensured(True, before, current or after)


def _refuse_to_register(desired: DesiredCA) -> None:
    if desired.ca_certificate is None:
        raise StateConflictError(
            "certificate_id",
            f"no CA certificate {desired.certificate_id} is registered in this account and region; give "
            "ca_certificate_pem or ca_certificate_path to register it",
        )
    mode = desired.certificate_mode or "DEFAULT"
    if mode == "DEFAULT" and not desired.has_verification:
        raise ValidationError(
            "verification_certificate_pem, ca_private_key_path",
            "one is required to register a CA in DEFAULT mode (AWS IoT asks for proof of the CA key: a certificate "
            "whose CN is the registration code, signed by the CA); or set certificate_mode: SNI_ONLY",
        )
    expires = x509_helpers.not_valid_after(desired.ca_certificate)
    if expires <= x509_helpers.utcnow():
        raise ValidationError(
            desired.source_option,
            f"the CA certificate expired on {expires.isoformat()}; AWS IoT does not register expired certificates",
        )


def other_template_cas(client: Any, template_name: str, certificate_id: str) -> List[str]:
    """The ids of the ACTIVE CAs, other than this one, registered with the JITP template ``template_name``."""
    listed = paginate(client, "list_ca_certificates", "certificates", templateName=template_name, pageSize=PAGE_SIZE)
    return sorted(
        ca["certificateId"] for ca in listed if ca.get("status") == "ACTIVE" and ca["certificateId"] != certificate_id
    )


def _refuse_second_ca(client: Any, desired: DesiredCA) -> None:
    template = desired.registration_config["template_name"]
    others = [
        ca_id
        for ca_id in other_template_cas(client, template, desired.certificate_id)
        if ca_id not in desired.allowed_template_ca_ids
    ]
    if others:
        raise StateConflictError(
            "fail_on_other_template_ca",
            f"CA certificate {desired.certificate_id} is not registered, but CA {', '.join(others)} is already "
            f"ACTIVE for the JITP template {template}. If its key was lost, this run would register a second CA "
            "signing devices for the same template: restore the CA certificate and key that belong to "
            f"{others[0]}, or, if the key is truly gone, set that CA INACTIVE (or remove it) first",
        )


def register(client: Any, desired: DesiredCA, check_mode: bool) -> Ensured:
    """RegisterCACertificate, with a verification certificate made from the CA key when needed."""
    _refuse_to_register(desired)
    if desired.fail_on_other_template_ca:
        _refuse_second_ca(client, desired)
    predicted = predicted_new_view(desired)
    if check_mode:
        return Ensured(True, None, predicted)
    mode = desired.certificate_mode or "DEFAULT"
    request: Dict[str, Any] = {
        "caCertificate": desired.ca_certificate_pem,
        "setAsActive": (desired.status or "ACTIVE") == "ACTIVE",
        "certificateMode": mode,
    }
    if mode == "DEFAULT":
        request["verificationCertificate"] = desired.verification_certificate_pem or make_verification_certificate(
            client, desired
        )
    if desired.auto_registration is not None:
        request["allowAutoRegistration"] = desired.auto_registration
    if desired.registration_config is not None:
        request["registrationConfig"] = registration_config_to_api(desired.registration_config)
    if desired.tags:
        request["tags"] = [{"Key": k, "Value": v} for k, v in desired.tags.items()]
    client.register_ca_certificate(**request)
    current = read_ca_certificate(client, desired.certificate_id, with_tags=desired.tags is not None)
    return Ensured(True, None, current or predicted)


def make_verification_certificate(client: Any, desired: DesiredCA) -> str:
    """GetRegistrationCode, then a short-lived certificate with that CN signed by the CA key (a throwaway key)."""
    code = client.get_registration_code()["registrationCode"]
    return x509_helpers.verification_certificate(desired.ca_certificate, desired.ca_private_key, code)
