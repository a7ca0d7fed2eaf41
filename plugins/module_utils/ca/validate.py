# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ca_certificate module's options, checked and its local files read before any client exists."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    crypto,
    keys,
    tagging,
    template_engine,
    validation,
    x509_helpers,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import validate_certificate_id
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

CERTIFICATE_MODES = ("DEFAULT", "SNI_ONLY")
CA_STATUSES = ("ACTIVE", "INACTIVE")
SOURCE_OPTIONS = ("ca_certificate_pem", "ca_certificate_path", "certificate_id")
# botocore IoT model: TemplateName 1-36 ^[0-9A-Za-z_-]+$, RoleArn 20-2048 (the PEM length: validation.py).
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
    # Other CAs that may be ACTIVE for the template (a planned rotation): the ids the playbook declares.
    allowed_template_ca_ids: List[str] = field(default_factory=list)
    # state=absent: only ACTIVE device certificates stop the removal; the others stay registered.
    keep_inactive_device_certificates: bool = False

    @property
    def has_verification(self) -> bool:
        return self.verification_certificate_pem is not None or self.ca_private_key is not None


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
    if len(text) > validation.CERTIFICATE_PEM_MAX:
        raise ValidationError(
            option, f"must be at most {validation.CERTIFICATE_PEM_MAX} characters (AWS limit), got {len(text)}"
        )
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
        keep_inactive_device_certificates=bool(params.get("keep_inactive_device_certificates")),
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
        _validate_absent(params, desired)
        return desired
    if desired.keep_inactive_device_certificates:
        raise ValidationError("keep_inactive_device_certificates", "is only used with state=absent")
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

    desired.allowed_template_ca_ids = _validate_allowed_ids(params, desired)

    _validate_verification(params, desired)
    if params.get("ca_private_key_passphrase") and params.get("ca_private_key_path") is None:
        raise ValidationError("ca_private_key_passphrase", "is only used with ca_private_key_path")
    return desired


def _validate_allowed_ids(params: Mapping[str, Any], desired: DesiredCA) -> List[str]:
    allowed = params.get("allowed_template_ca_ids")
    if allowed is None:
        return []
    if not desired.fail_on_other_template_ca:
        raise ValidationError(
            "allowed_template_ca_ids", "is only used with fail_on_other_template_ca: the CAs that check may accept"
        )
    if not isinstance(allowed, (list, tuple)):
        raise ValidationError("allowed_template_ca_ids", "must be a list of CA certificate ids")
    ids = []
    for index, value in enumerate(allowed):
        try:
            ids.append(validate_certificate_id(value))
        except ValidationError as e:
            raise ValidationError(f"allowed_template_ca_ids[{index}]", e.rule) from None
    return sorted(set(ids))


def _validate_absent(params: Mapping[str, Any], desired: DesiredCA) -> None:
    """state=absent: the removal guard's options and the proofs that the CA is this task's to remove."""
    if desired.force and desired.keep_inactive_device_certificates:
        raise ValidationError(
            "force, keep_inactive_device_certificates",
            "are mutually exclusive: force removes every device certificate of the CA, "
            "keep_inactive_device_certificates removes none and refuses while one is ACTIVE",
        )
    config = params.get("registration_config")
    if config is not None:
        if config.get("template_body") is not None or config.get("role_arn") is not None:
            raise ValidationError(
                "registration_config",
                "with state=absent only template_name is used: the JITP template the CA must be registered with",
            )
        desired.registration_config = validate_registration_config(config)
    key_path = params.get("ca_private_key_path")
    if key_path is None:
        if params.get("ca_private_key_passphrase"):
            raise ValidationError("ca_private_key_passphrase", "is only used with ca_private_key_path")
        return
    if desired.ca_certificate is None:
        raise ValidationError(
            "ca_private_key_path", "is only used with ca_certificate_pem or ca_certificate_path (the key must match it)"
        )
    # Proof of possession: only the holder of the CA key removes the CA.
    key = x509_helpers.load_private_key_file(key_path, "ca_private_key_path", params.get("ca_private_key_passphrase"))
    if not crypto.same_public_key(key, desired.ca_certificate.public_key()):
        raise ValidationError(
            "ca_private_key_path",
            f"the key in {key_path} does not match the public key of the CA certificate "
            f"({desired.ca_certificate.subject.rfc4514_string()}); the CA is not removed",
        )
    desired.ca_private_key = key


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
        if len(verification) > validation.CERTIFICATE_PEM_MAX:
            raise ValidationError(option, f"must be at most {validation.CERTIFICATE_PEM_MAX} characters (AWS limit)")
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
