# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate module's input: constants, ``DesiredCertificate`` and ``validate_certificate``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import validation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CryptoError,
    certificate_id,
    certificate_public_key,
    csr_public_key,
    is_certificate_id,
    private_key_public_key,
    read_file,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    CERTIFICATE_PEM_MAX,
    CSR_MAX,
    MAX_POLICIES_PER_CERTIFICATE,
    check_policy_name,
    check_thing_name,
    validate_declared,
)

# UpdateCertificate cannot set PENDING_TRANSFER or PENDING_ACTIVATION; REGISTER_INACTIVE is deprecated.
SETTABLE_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")
ALL_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION")
SOURCE_OPTIONS = ("create_keys", "csr", "csr_path", "certificate_pem", "certificate_pem_path", "certificate_id")

# The limits (CSR and PEM lengths, policies per certificate) live in validation.py.
PAGE_SIZE = 250

EXCLUSIVE_THING = "EXCLUSIVE_THING"
NON_EXCLUSIVE_THING = "NON_EXCLUSIVE_THING"

Warn = Callable[[str], None]
View = Dict[str, Any]


def _no_warn(_message: str) -> None:
    return None


class StateConflictError(ValidationError):
    """The task cannot proceed safely given what exists (found by reads; nothing was changed)."""


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@dataclass
class DesiredCertificate:
    """What the task asks for, with every local file already read and parsed."""

    state: str = "present"
    # create_keys | csr | pem | id, or None when the certificate is only found from an earlier run.
    source: Optional[str] = None
    source_option: Optional[str] = None
    certificate_id: Optional[str] = None
    certificate_pem: Optional[str] = None
    ca_certificate_pem: Optional[str] = None
    ca_certificate_id: Optional[str] = None
    csr: Optional[str] = None
    # DER SubjectPublicKeyInfo the certificate must carry (the CSR's, or the key at private_key_path).
    public_key: Optional[bytes] = None
    public_key_option: Optional[str] = None
    private_key_path: Optional[str] = None
    private_key_exists: bool = False
    certificate_path: Optional[str] = None
    # The certificate an earlier run wrote to certificate_path, when the file exists.
    path_certificate_pem: Optional[str] = None
    path_certificate_id: Optional[str] = None
    path_public_key: Optional[bytes] = None
    status: Optional[str] = None
    thing: Optional[str] = None
    policies: Optional[List[str]] = None
    purge_policies: bool = True
    # Policies earlier tasks of the play create: in check mode a missing one is not an error (declared_resources).
    declared_policies: List[str] = field(default_factory=list)
    # The intent record of a certificate-creating call of an earlier run that did not finish (see intent_path).
    intent_path: Optional[str] = None
    intent: Optional[Dict[str, Any]] = None


def validate_thing_name(value: Any, field_name: str = "thing") -> str:
    return check_thing_name(field_name, value)


def validate_policy_names(values: Any, field_name: str = "policies") -> List[str]:
    if not isinstance(values, (list, tuple)):
        raise ValidationError(field_name, "must be a list of policy names")
    names: List[str] = []
    for value in values:
        check_policy_name(field_name, value)
        if value not in names:
            names.append(value)
    if len(names) > MAX_POLICIES_PER_CERTIFICATE:
        raise ValidationError(
            field_name,
            f"a certificate can have at most {MAX_POLICIES_PER_CERTIFICATE} policies attached, got {len(names)}",
        )
    return sorted(names)


def validate_certificate_id(value: Any, field_name: str = "certificate_id") -> str:
    if not is_certificate_id(value):
        shown = value if isinstance(value, str) else repr(value)
        length = len(value) if isinstance(value, str) else 0
        raise ValidationError(
            field_name,
            "must be 64 hexadecimal characters (the SHA-256 of the certificate's DER bytes), "
            f"got {shown!r} ({length} characters)",
        )
    return value.lower()


def validate_status(value: Any, field_name: str = "status") -> Optional[str]:
    if value is None:
        return None
    if value not in SETTABLE_STATUSES:
        raise ValidationError(
            field_name,
            f"must be one of {', '.join(SETTABLE_STATUSES)} (AWS IoT cannot set a certificate to any other status), "
            f"got {value!r}",
        )
    return value


def _read_text_option(path: str, field_name: str, max_length: int) -> str:
    try:
        data = read_file(path)
    except OSError as e:
        raise ValidationError(field_name, f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        raise ValidationError(field_name, f"{path} does not exist")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationError(field_name, f"{path} is not PEM text (it holds non-ASCII bytes)") from None
    return _check_length(text, field_name, max_length)


def _check_length(text: str, field_name: str, max_length: int) -> str:
    if not text.strip():
        raise ValidationError(field_name, "is empty")
    if len(text) > max_length:
        raise ValidationError(field_name, f"must be at most {max_length} characters (AWS limit), got {len(text)}")
    return text


def _given(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if name == "create_keys":
        return bool(value)
    return value is not None


def _parse(func: Callable[[str], Any], text: str, field_name: str, prefix: str = "") -> Any:
    try:
        return func(text)
    except CryptoError as e:
        raise ValidationError(field_name, f"{prefix}{e}") from None


# A file this task writes: its directory must exist and be writable (checked before any change).
_writable_target = validation.check_writable_file


def validate_certificate(params: Mapping[str, Any]) -> DesiredCertificate:
    """Check the options of the certificate module and read its local files; no AWS call."""
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    desired = DesiredCertificate(state=state)

    given = [name for name in SOURCE_OPTIONS if _given(params, name)]
    if len(given) > 1:
        raise ValidationError(
            ", ".join(given),
            "are mutually exclusive: give exactly one certificate source "
            "(create_keys, csr, csr_path, certificate_pem, certificate_pem_path or certificate_id)",
        )
    option = given[0] if given else None
    desired.source_option = option
    desired.status = validate_status(params.get("status"))
    if params.get("thing") is not None:
        desired.thing = validate_thing_name(params["thing"])
    if params.get("policies") is not None:
        desired.policies = validate_policy_names(params["policies"])
    purge = params.get("purge_policies")
    desired.purge_policies = True if purge is None else bool(purge)
    desired.declared_policies = validate_declared(params.get("declared_resources"), ("policies",))["policies"]

    desired.certificate_path = params.get("certificate_path")
    desired.private_key_path = params.get("private_key_path")
    same_path = desired.certificate_path and desired.private_key_path
    if same_path and os.path.abspath(desired.certificate_path) == os.path.abspath(desired.private_key_path):
        raise ValidationError("certificate_path", "must differ from private_key_path")

    if params.get("ca_certificate_pem") is not None and option not in ("certificate_pem", "certificate_pem_path"):
        raise ValidationError("ca_certificate_pem", "is only used with certificate_pem or certificate_pem_path")
    if desired.private_key_path and option not in ("create_keys", None):
        raise ValidationError(
            "private_key_path",
            f"is only used with create_keys (or without a source, to find a certificate by its key), not with {option}",
        )

    if option == "create_keys":
        desired.source = "create_keys"
        if not desired.private_key_path:
            raise ValidationError(
                "private_key_path",
                "is required when create_keys is true (AWS returns the private key only once; it is written there)",
            )
    elif option in ("csr", "csr_path"):
        desired.source = "csr"
        if option == "csr":
            text = _check_length(params["csr"], "csr", CSR_MAX)
        else:
            text = _read_text_option(params["csr_path"], "csr_path", CSR_MAX)
        desired.public_key = _parse(csr_public_key, text, option)
        desired.public_key_option = option
        desired.csr = text
    elif option in ("certificate_pem", "certificate_pem_path"):
        desired.source = "pem"
        if option == "certificate_pem":
            text = _check_length(params["certificate_pem"], "certificate_pem", CERTIFICATE_PEM_MAX)
        else:
            text = _read_text_option(params["certificate_pem_path"], "certificate_pem_path", CERTIFICATE_PEM_MAX)
        desired.certificate_id = _parse(certificate_id, text, option)
        desired.certificate_pem = text
        if params.get("ca_certificate_pem") is not None:
            ca_text = _check_length(params["ca_certificate_pem"], "ca_certificate_pem", CERTIFICATE_PEM_MAX)
            desired.ca_certificate_id = _parse(certificate_id, ca_text, "ca_certificate_pem")
            desired.ca_certificate_pem = ca_text
    elif option == "certificate_id":
        desired.source = "id"
        desired.certificate_id = validate_certificate_id(params["certificate_id"])

    if desired.private_key_path:
        _load_private_key_file(desired)
    if desired.certificate_path:
        _load_certificate_file(desired)
    # Imported here: the intent records build on DesiredCertificate, defined in this file.
    from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.intent import _load_intent

    _load_intent(desired)

    _check_findable(desired)
    if state == "present":
        if desired.certificate_path:
            _writable_target(desired.certificate_path, "certificate_path")
        if desired.source == "create_keys":
            _writable_target(desired.private_key_path, "private_key_path")
    return desired


def _load_private_key_file(desired: DesiredCertificate) -> None:
    path = desired.private_key_path
    try:
        data = read_file(path)
    except OSError as e:
        raise ValidationError("private_key_path", f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        return
    desired.private_key_exists = True
    desired.public_key = _parse(private_key_public_key, data, "private_key_path", f"{path} exists but ")
    desired.public_key_option = "private_key_path"


def _load_certificate_file(desired: DesiredCertificate) -> None:
    path = desired.certificate_path
    try:
        data = read_file(path)
    except IsADirectoryError:
        raise ValidationError("certificate_path", f"{path} is a directory; give a file path") from None
    except OSError as e:
        raise ValidationError("certificate_path", f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        return
    prefix = f"{path} exists but "
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationError("certificate_path", f"{prefix}is not PEM text (it holds non-ASCII bytes)") from None
    desired.path_certificate_id = _parse(certificate_id, text, "certificate_path", prefix)
    desired.path_public_key = certificate_public_key(text)
    desired.path_certificate_pem = text


def _check_findable(desired: DesiredCertificate) -> None:
    """Refuse combinations that could not find the certificate again (and so would mint one per run)."""
    by_key_on_thing = desired.public_key is not None and desired.thing is not None
    if desired.source in ("create_keys", "csr"):
        if not (desired.certificate_path or desired.thing):
            raise ValidationError(
                "certificate_path, thing",
                f"at least one is required with {desired.source_option}: the certificate is found again through "
                "them (a later run would otherwise make another certificate, and state=absent could not find it)",
            )
        return
    if desired.source is not None:
        return
    if desired.path_certificate_pem is not None or by_key_on_thing:
        return
    if desired.state == "absent" and desired.certificate_path:
        # The file is gone: there is nothing this task knows of to remove.
        return
    raise ValidationError(
        ", ".join(SOURCE_OPTIONS),
        f"state={desired.state} needs a certificate: give one of these options, or the certificate_path of a "
        "certificate an earlier run wrote, or private_key_path of an existing key together with thing",
    )
