# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CA certificates registered in AWS IoT (the trust anchor of just-in-time provisioning).

Functions, in the order the ca_certificate module uses them:

* ``validate_ca_certificate(params) -> DesiredCA``: checks every option, parses the CA certificate, the given
  verification certificate, the CA key file and the registration config, all before any client exists; raises
  ``ValidationError(field, rule)``.
* ``read_ca_certificate(client, certificate_id, with_tags)``: the CA as the module shows it, or None. The id is the
  SHA-256 of the CA's DER, known locally, so a re-run finds the CA with one DescribeCACertificate, no search.
* ``ensure_present(client, desired, check_mode)`` and ``ensure_absent(client, desired, check_mode)``: return
  ``(changed, before, after)`` (``ensure_absent`` also the device certificates it removes or would remove); in
  check mode they predict ``after`` from the same plan without calling anything that changes state.

Registration in DEFAULT mode needs a verification certificate: one given by the user, or one made here from the
CA key (GetRegistrationCode, then a certificate with that code as CN, signed by the CA key, for a throwaway key).
The CA key is read on the host that runs the module and is never sent anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    crypto,
    keys,
    tagging,
    template_engine,
    validation,
    x509_helpers,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import (
    ClientError,
    ValidationError,
    is_error,
    paginate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    StateConflictError,
    remove_certificate,
    validate_certificate_id,
)

CERTIFICATE_MODES = ("DEFAULT", "SNI_ONLY")
CA_STATUSES = ("ACTIVE", "INACTIVE")
SOURCE_OPTIONS = ("ca_certificate_pem", "ca_certificate_path", "certificate_id")
# botocore IoT model: CertificatePem 1-65536, TemplateName 1-36 ^[0-9A-Za-z_-]+$, RoleArn 20-2048.
PEM_MAX_LENGTH = validation.CERTIFICATE_PEM_MAX
TEMPLATE_NAME_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,36}", re.ASCII)
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
ROLE_ARN_MAX = 2048
PAGE_SIZE = 250

View = Dict[str, Any]


@dataclass
class DesiredCA:
    """What the task asks for, with the local files read and parsed."""

    state: str = "present"
    certificate_id: str = ""
    source_option: str = "certificate_id"
    ca_certificate_pem: Optional[str] = None
    ca_certificate: Any = None
    verification_certificate_pem: Optional[str] = None
    ca_private_key: Any = None
    certificate_mode: Optional[str] = None
    status: Optional[str] = None
    auto_registration: Optional[bool] = None
    # {"template_name": ...} or {"template_body": dict, "role_arn": ...}; None leaves the remote config alone.
    registration_config: Optional[Dict[str, Any]] = None
    tags: Optional[Dict[str, str]] = None
    purge_tags: bool = True
    force: bool = False
    validate_only: bool = False
    fail_on_other_template_ca: bool = False

    @property
    def has_verification(self) -> bool:
        return self.verification_certificate_pem is not None or self.ca_private_key is not None


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _pem_text(params: Mapping[str, Any], option: str) -> str:
    if option.endswith("_path"):
        path = params[option]
        try:
            data = crypto.read_file(path)
        except OSError as e:
            raise ValidationError(option, f"cannot read {path}: {e.strerror or e}") from None
        if data is None:
            raise ValidationError(option, f"{path} does not exist")
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise ValidationError(option, f"{path} is not PEM text (it holds non-ASCII bytes)") from None
    else:
        text = params[option]
    if not text.strip():
        raise ValidationError(option, "is empty")
    if len(text) > PEM_MAX_LENGTH:
        raise ValidationError(option, f"must be at most {PEM_MAX_LENGTH} characters (AWS limit), got {len(text)}")
    return text


def _load_certificate(text: str, option: str) -> Any:
    try:
        return crypto.load_certificate(text)
    except crypto.CryptoError as e:
        raise ValidationError(option, str(e)) from None


def validate_registration_config(config: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The registration config as ``{"template_name"}`` or ``{"template_body" (parsed), "role_arn"}``, or None."""
    if config is None:
        return None
    name = config.get("template_name")
    body = config.get("template_body")
    role_arn = config.get("role_arn")
    if name is None and body is None:
        raise ValidationError(
            "registration_config", "needs template_name, or template_body with role_arn (unset it to leave it alone)"
        )
    if name is not None and body is not None:
        raise ValidationError(
            "registration_config.template_name, registration_config.template_body",
            "are mutually exclusive: name a JITP provisioning template, or give a template body with role_arn",
        )
    if name is not None:
        if role_arn is not None:
            raise ValidationError(
                "registration_config.role_arn",
                "is only used with template_body; a template named by template_name uses its own provisioning role",
            )
        if not isinstance(name, str) or not TEMPLATE_NAME_PATTERN.fullmatch(name):
            raise ValidationError(
                "registration_config.template_name",
                f"must be 1-36 characters of letters, digits, '_' or '-' (got {name!r})",
            )
        return {"template_name": name}
    if role_arn is None:
        raise ValidationError(
            "registration_config.role_arn",
            "is required with registration_config.template_body: the IAM role AWS IoT assumes to provision devices",
        )
    if not isinstance(role_arn, str) or len(role_arn) > ROLE_ARN_MAX or not ROLE_ARN_PATTERN.fullmatch(role_arn):
        raise ValidationError("registration_config.role_arn", f"must be an IAM role ARN (got {role_arn!r})")
    try:
        template = template_engine.parse(body, template_type="JITP")
    except ValidationError as e:
        path = getattr(e, "path", e.field)
        where = "registration_config.template_body"
        if path and path != "template_body":
            where = f"{where}.{path}"
        raise ValidationError(where, e.rule) from None
    return {"template_body": template.body, "role_arn": role_arn}


def validate_ca_certificate(params: Mapping[str, Any]) -> DesiredCA:
    """Check the options of the ca_certificate module and read its local files; no AWS call."""
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    desired = DesiredCA(
        state=state,
        force=bool(params.get("force")),
        validate_only=bool(params.get("validate_only")),
        fail_on_other_template_ca=bool(params.get("fail_on_other_template_ca")),
    )

    given = [name for name in SOURCE_OPTIONS if params.get(name) is not None]
    if len(given) != 1:
        raise ValidationError(
            ", ".join(given or SOURCE_OPTIONS),
            f"give exactly one: the CA certificate (ca_certificate_pem or ca_certificate_path) or the id of a "
            f"registered CA (certificate_id); got {len(given)}",
        )
    desired.source_option = given[0]
    if desired.source_option == "certificate_id":
        desired.certificate_id = validate_certificate_id(params["certificate_id"])
    else:
        crypto.require_cryptography()
        text = _pem_text(params, desired.source_option)
        certificate = _load_certificate(text, desired.source_option)
        if not x509_helpers.is_ca_certificate(certificate):
            raise ValidationError(
                desired.source_option,
                "is not a CA certificate (its basicConstraints extension does not say CA:TRUE); "
                "AWS IoT registers only CA certificates",
            )
        desired.ca_certificate = certificate
        desired.ca_certificate_pem = text
        desired.certificate_id = crypto.certificate_id(text)
    if state == "absent":
        return desired
    if desired.ca_certificate is not None:
        # Refused here rather than by RegisterCACertificate: nothing is created for a CA AWS would refuse.
        x509_helpers.require_strong(desired.ca_certificate, desired.source_option, "the CA certificate")
    if desired.validate_only and desired.ca_certificate is None:
        raise ValidationError(
            "validate_only", "needs ca_certificate_pem or ca_certificate_path: there is nothing local to check"
        )

    mode = params.get("certificate_mode")
    if mode is not None and mode not in CERTIFICATE_MODES:
        raise ValidationError("certificate_mode", f"must be one of {', '.join(CERTIFICATE_MODES)}, got {mode!r}")
    desired.certificate_mode = mode
    status = params.get("status")
    if status is not None and status not in CA_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(CA_STATUSES)}, got {status!r}")
    desired.status = status
    auto = params.get("auto_registration")
    desired.auto_registration = None if auto is None else bool(auto)
    desired.registration_config = validate_registration_config(params.get("registration_config"))
    desired.tags = tagging.validate_tags("tags", params.get("tags"))
    purge = params.get("purge_tags")
    desired.purge_tags = True if purge is None else bool(purge)
    if desired.fail_on_other_template_ca and not (desired.registration_config or {}).get("template_name"):
        raise ValidationError(
            "fail_on_other_template_ca", "needs registration_config.template_name: the template whose CAs to look at"
        )

    _validate_verification(params, desired)
    if params.get("ca_private_key_passphrase") and params.get("ca_private_key_path") is None:
        raise ValidationError("ca_private_key_passphrase", "is only used with ca_private_key_path")
    return desired


def _validate_verification(params: Mapping[str, Any], desired: DesiredCA) -> None:
    verification = params.get("verification_certificate_pem")
    key_path = params.get("ca_private_key_path")
    if verification is not None and key_path is not None:
        raise ValidationError(
            "verification_certificate_pem, ca_private_key_path",
            "are mutually exclusive: give the verification certificate, or the CA key to make one",
        )
    option = "verification_certificate_pem" if verification is not None else "ca_private_key_path"
    if verification is None and key_path is None:
        return
    if desired.certificate_mode == "SNI_ONLY":
        raise ValidationError(
            option,
            "must not be given with certificate_mode SNI_ONLY: AWS IoT registers an SNI_ONLY CA without a "
            "verification certificate",
        )
    if desired.ca_certificate is None:
        raise ValidationError(option, "is only used with ca_certificate_pem or ca_certificate_path, to register the CA")
    ca_public_key = desired.ca_certificate.public_key()
    if verification is not None:
        if not verification.strip():
            raise ValidationError(option, "is empty")
        if len(verification) > PEM_MAX_LENGTH:
            raise ValidationError(option, f"must be at most {PEM_MAX_LENGTH} characters (AWS limit)")
        certificate = _load_certificate(verification, option)
        if not keys.subject_of(certificate.subject).get("common_name"):
            raise ValidationError(
                option, "has no common name; its subject CN must be the registration code (GetRegistrationCode)"
            )
        x509_helpers.require_strong(certificate, option, "the verification certificate")
        if not x509_helpers.issued_by(certificate, desired.ca_certificate):
            raise ValidationError(
                option,
                "is not issued by the CA certificate (its issuer must be the CA's subject and its signature made "
                "with the CA's key)",
            )
        desired.verification_certificate_pem = verification
        return
    key = x509_helpers.load_private_key_file(key_path, "ca_private_key_path", params.get("ca_private_key_passphrase"))
    x509_helpers.signing_hash(key)
    if not crypto.same_public_key(key, ca_public_key):
        raise ValidationError(
            "ca_private_key_path",
            f"the key in {key_path} does not match the public key of the CA certificate "
            f"({desired.ca_certificate.subject.rfc4514_string()})",
        )
    desired.ca_private_key = key


def validated_view(desired: DesiredCA) -> View:
    """What validate_only returns: the id and how long the local CA certificate stays valid."""
    expires = x509_helpers.not_valid_after(desired.ca_certificate)
    return {
        "certificate_id": desired.certificate_id,
        "not_after": expires.isoformat(),
        "valid_days_left": (expires - x509_helpers.utcnow()).days,
    }


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _body_of(text: Any) -> Any:
    """A registration config's templateBody parsed as JSON (AWS stores a string), or the string itself."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def registration_config_view(config: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """AWS's registrationConfig in snake_case, with the template body parsed; None when there is none."""
    config = {k: v for k, v in (config or {}).items() if v not in (None, "")}
    if not config:
        return None
    view: Dict[str, Any] = {}
    if "templateName" in config:
        view["template_name"] = config["templateName"]
    if "templateBody" in config:
        view["template_body"] = _body_of(config["templateBody"])
    if "roleArn" in config:
        view["role_arn"] = config["roleArn"]
    return view


def ca_view(response: Mapping[str, Any]) -> View:
    """What the module returns and diffs, from DescribeCACertificate."""
    description = response.get("certificateDescription") or {}
    return {
        "certificate_id": description.get("certificateId"),
        "arn": description.get("certificateArn"),
        "status": description.get("status"),
        "auto_registration_status": description.get("autoRegistrationStatus"),
        "registration_config": registration_config_view(response.get("registrationConfig")),
        "certificate_mode": description.get("certificateMode"),
        "creation_date": _iso(description.get("creationDate")),
    }


def read_ca_certificate(client: Any, certificate_id: str, with_tags: bool = False) -> Optional[View]:
    """The registered CA, or None. Tags are read only when asked (they need iot:ListTagsForResource)."""
    try:
        response = client.describe_ca_certificate(certificateId=certificate_id)
    except ClientError as e:
        if is_error(e, "ResourceNotFoundException"):
            return None
        raise
    view = ca_view(response)
    if with_tags:
        view["tags"] = tagging.read_tags(client, view["arn"])
    return view


def list_device_certificates(client: Any, certificate_id: str) -> List[Dict[str, Any]]:
    """The device certificates registered with this CA (every page of ListCertificatesByCA)."""
    return paginate(
        client, "list_certificates_by_ca", "certificates", caCertificateId=certificate_id, pageSize=PAGE_SIZE
    )


# ---------------------------------------------------------------------------
# Present
# ---------------------------------------------------------------------------


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


def ensure_present(client: Any, desired: DesiredCA, check_mode: bool) -> Tuple[bool, Optional[View], View]:
    before = read_ca_certificate(client, desired.certificate_id, with_tags=desired.tags is not None)
    if before is None:
        return register(client, desired, check_mode)
    plan, after = plan_update(desired, before)
    if not plan.changed(before):
        return False, before, before
    if check_mode:
        return True, before, after
    if plan.update:
        client.update_ca_certificate(certificateId=desired.certificate_id, **plan.update)
    if plan.tags_target is not None:
        tagging.apply_tags(client, before["arn"], before.get("tags") or {}, plan.tags_target)
    current = read_ca_certificate(client, desired.certificate_id, with_tags=desired.tags is not None)
    return True, before, current or after


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
    others = other_template_cas(client, template, desired.certificate_id)
    if others:
        raise StateConflictError(
            "fail_on_other_template_ca",
            f"CA certificate {desired.certificate_id} is not registered, but CA {', '.join(others)} is already "
            f"ACTIVE for the JITP template {template}. If its key was lost, this run would register a second CA "
            "signing devices for the same template: restore the CA certificate and key that belong to "
            f"{others[0]}, or, if the key is truly gone, set that CA INACTIVE (or remove it) first",
        )


def register(client: Any, desired: DesiredCA, check_mode: bool) -> Tuple[bool, None, View]:
    """RegisterCACertificate, with a verification certificate made from the CA key when needed."""
    _refuse_to_register(desired)
    if desired.fail_on_other_template_ca:
        _refuse_second_ca(client, desired)
    predicted = predicted_new_view(desired)
    if check_mode:
        return True, None, predicted
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
    return True, None, current or predicted


def make_verification_certificate(client: Any, desired: DesiredCA) -> str:
    """GetRegistrationCode, then a short-lived certificate with that CN signed by the CA key (a throwaway key)."""
    code = client.get_registration_code()["registrationCode"]
    return x509_helpers.verification_certificate(desired.ca_certificate, desired.ca_private_key, code)


# ---------------------------------------------------------------------------
# Absent
# ---------------------------------------------------------------------------


def ensure_absent(client: Any, desired: DesiredCA, check_mode: bool) -> Tuple[bool, Optional[View], None, List[str]]:
    """Deactivate and delete the CA; with force, first remove the device certificates registered with it.

    Returns ``(changed, before, None, device certificate ids removed or to be removed)``.
    """
    before = read_ca_certificate(client, desired.certificate_id)
    if before is None:
        return False, None, None, []
    devices = list_device_certificates(client, desired.certificate_id)
    device_ids = sorted(d["certificateId"] for d in devices)
    if devices and not desired.force:
        count = len(devices)
        noun = "certificate is" if count == 1 else "certificates are"
        raise StateConflictError(
            "force",
            f"CA certificate {desired.certificate_id} cannot be removed: {count} device {noun} still registered "
            f"with it ({', '.join(device_ids[:5])}{', ...' if count > 5 else ''}). Remove them first, or set "
            "force: true to remove them (each is set INACTIVE, detached from its things and policies, and deleted)",
        )
    if check_mode:
        return True, before, None, device_ids
    for device in devices:
        remove_certificate(
            client,
            {
                "certificate_id": device["certificateId"],
                "certificate_arn": device["certificateArn"],
                "status": device.get("status"),
            },
        )
    if before.get("status") != "INACTIVE":
        client.update_ca_certificate(certificateId=desired.certificate_id, newStatus="INACTIVE")
    try:
        client.delete_ca_certificate(certificateId=desired.certificate_id)
    except ClientError as e:
        if not is_error(e, "ResourceNotFoundException"):
            raise
    return True, before, None, device_ids


__all__ = [
    "DesiredCA",
    "ca_view",
    "ensure_absent",
    "ensure_present",
    "list_device_certificates",
    "other_template_cas",
    "plan_update",
    "read_ca_certificate",
    "register",
    "registration_config_matches",
    "validate_ca_certificate",
    "validate_registration_config",
    "validated_view",
]
