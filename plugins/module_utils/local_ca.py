# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local certificate authority: the CA key and certificate, and the device certificates it signs.

Nothing here calls AWS. The CA's private key never leaves the host that runs the module; AWS IoT only ever sees
the CA certificate and the certificates signed with the key.

* ``validate_local_ca(params)`` / ``ensure_local_ca(desired, check_mode)`` / ``ensure_local_ca_absent``: a CA key
  (0600, made or kept by ``keys.ensure_private_key``) and a self-signed CA certificate (0644). An existing
  certificate is kept while it carries the key, the subject, is a CA and stays valid beyond the renew margin.
  A key is never replaced silently: a missing key next to an existing CA certificate, or a key of another type,
  fails unless ``force``.
* ``validate_device_certificate(params)`` / ``ensure_device_certificate(desired, check_mode)``: a device
  certificate signed by the CA, for a CSR or for a device key made here, with the subject fields JITP templates
  read, clientAuth, and the authority key identifier; optionally a chain file (certificate, then CA certificate).

The X.509 helpers both this file and ``ca`` use (signing, checks, views, the verification certificate of a CA
registration) live in ``x509_helpers``; import them from there.

Every ensure function returns an ``ensure.Ensured``: ``before`` / ``after`` are views of the files (never key
material), predicted without writing anything in check mode; ``extra`` holds what the module returns beside them
(``certificate_pem``, ``certificate_action``, ``reason``, ``key_action`` where a key is kept or made here).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, keys, validation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.x509_helpers import (
    BACKDATE,
    View,
    _read_certificate_file,
    build_ca_certificate,
    certificate_pem,
    certificate_view,
    has_client_auth,
    is_ca_certificate,
    issue_certificate,
    issued_by,
    key_strength_problem,
    load_private_key_file,
    load_signing_ca,
    not_valid_after,
    predicted_view,
    signature_verifies,
    utcnow,
)

DEFAULT_CA_VALIDITY_DAYS = 3650
DEFAULT_DEVICE_VALIDITY_DAYS = 365
DEFAULT_RENEW_MARGIN_DAYS = 30
MAX_VALIDITY_DAYS = 36500


# A file this task writes: its directory must exist and be writable (checked before any change).
_writable_target = validation.check_writable_file


def _distinct_paths(paths: Mapping[str, Optional[str]]) -> None:
    seen: Dict[str, str] = {}
    for name, path in paths.items():
        if not path:
            continue
        real = os.path.abspath(path)
        if real in seen:
            raise ValidationError(name, f"must differ from {seen[real]} (both are {path})")
        seen[real] = name


def _check_days(params: Mapping[str, Any], default_validity: int) -> Tuple[int, int]:
    validity = params.get("validity_days")
    validity = default_validity if validity is None else validity
    margin = params.get("renew_margin_days")
    margin = DEFAULT_RENEW_MARGIN_DAYS if margin is None else margin
    if not isinstance(validity, int) or not 1 <= validity <= MAX_VALIDITY_DAYS:
        raise ValidationError("validity_days", f"must be between 1 and {MAX_VALIDITY_DAYS} days, got {validity!r}")
    if not isinstance(margin, int) or margin < 0:
        raise ValidationError("renew_margin_days", f"must be 0 or more days, got {margin!r}")
    if margin >= validity:
        raise ValidationError(
            "renew_margin_days",
            f"must be less than validity_days ({validity}), got {margin}: a certificate would be renewed on every run",
        )
    return validity, margin


def _check_state(params: Mapping[str, Any]) -> str:
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    return state


def _remove_file(path: Optional[str], check_mode: bool) -> bool:
    if not path or not os.path.lexists(path):
        return False
    if not check_mode:
        os.unlink(path)
    return True


# ---------------------------------------------------------------------------
# local_ca
# ---------------------------------------------------------------------------


@dataclass
class DesiredLocalCA:
    state: str
    private_key_path: str
    certificate_path: str
    key_spec: Dict[str, Any] = field(default_factory=dict)
    subject: Dict[str, str] = field(default_factory=dict)
    validity_days: int = DEFAULT_CA_VALIDITY_DAYS
    renew_margin_days: int = DEFAULT_RENEW_MARGIN_DAYS
    force: bool = False


def validate_local_ca(params: Mapping[str, Any]) -> DesiredLocalCA:
    """Check the local_ca options; nothing is written."""
    crypto.require_cryptography()
    state = _check_state(params)
    desired = DesiredLocalCA(
        state=state,
        private_key_path=params["private_key_path"],
        certificate_path=params["certificate_path"],
        force=bool(params.get("force")),
    )
    _distinct_paths({"private_key_path": desired.private_key_path, "certificate_path": desired.certificate_path})
    if state == "absent":
        return desired
    desired.key_spec = keys.validate_key_spec(params)
    desired.subject = keys.validate_subject("subject", params.get("subject"))
    desired.validity_days, desired.renew_margin_days = _check_days(params, DEFAULT_CA_VALIDITY_DAYS)
    _writable_target(desired.private_key_path, "private_key_path")
    _writable_target(desired.certificate_path, "certificate_path")
    return desired


def ca_renewal_reason(
    certificate: Any, key: Any, subject: Dict[str, str], margin_days: int, now: datetime.datetime
) -> Optional[str]:
    """Why the CA certificate must be made again, or None when it can be kept."""
    if not crypto.same_public_key(certificate, key):
        return "it does not carry the public key of private_key_path"
    if certificate.subject != keys.x509_name(subject):
        return "its subject differs"
    if certificate.issuer != certificate.subject or not signature_verifies(certificate, key.public_key()):
        return "it is not self-signed by private_key_path"
    if not is_ca_certificate(certificate):
        return "it is not a CA certificate"
    if not_valid_after(certificate) <= now + datetime.timedelta(days=margin_days):
        return f"it expires within renew_margin_days ({margin_days})"
    return None


def _local_ca_state(key_info: Optional[Dict[str, Any]], certificate: Optional[View]) -> Optional[View]:
    if key_info is None and certificate is None:
        return None
    return {"private_key": key_info, "certificate": certificate}


def _outcome(
    certificate_action: str, reason: Optional[str], pem: Optional[str], key_action: Optional[str]
) -> Dict[str, Any]:
    """An ensure function's ``extra``: the module's return values beside the files' views."""
    extra = {"certificate_pem": pem, "certificate_action": certificate_action, "reason": reason}
    if key_action is not None:
        extra["key_action"] = key_action
    return extra


def _no_warn(_message: str) -> None:
    return None


def ensure_local_ca(desired: DesiredLocalCA, check_mode: bool, now: Optional[datetime.datetime] = None) -> Ensured:
    """Keep or make the CA key and self-signed certificate; in check mode only predict."""
    now = now or utcnow()
    existing = _read_certificate_file(desired.certificate_path, "certificate_path", desired.force)
    key_exists = os.path.lexists(desired.private_key_path)
    if existing is not None and not key_exists and not desired.force:
        raise ValidationError(
            "private_key_path",
            f"{desired.private_key_path} does not exist but {desired.certificate_path} holds a CA certificate "
            f"({existing.subject.rfc4514_string()}); a new key would replace this CA, and the certificates it "
            "signed would no longer chain to it. Restore the key, or set force: true to make a new CA",
        )
    before_key = None
    if key_exists:
        current = load_private_key_file(desired.private_key_path, "private_key_path")
        before_key = keys.describe_key(current)
    made = keys.ensure_private_key(desired.private_key_path, desired.key_spec, desired.force, check_mode, kind="CA key")
    key, key_action = made.key, made.extra["key_action"]
    before = _local_ca_state(before_key, certificate_view(existing) if existing is not None else None)

    if existing is None:
        reason = "there is no CA certificate"
    elif key is None:
        reason = "the key is new"
    else:
        reason = ca_renewal_reason(existing, key, desired.subject, desired.renew_margin_days, now)
    if reason is None:
        pem = certificate_pem(existing).decode("ascii")
        after = _local_ca_state(made.after, certificate_view(existing))
        return Ensured(made.changed, before, after, _outcome("kept", None, pem, key_action))

    if check_mode:
        name = keys.x509_name(desired.subject)
        predicted = predicted_view(name, name, now - BACKDATE, now + datetime.timedelta(days=desired.validity_days))
        action = "create" if existing is None else "renew"
        return Ensured(True, before, _local_ca_state(made.after, predicted), _outcome(action, reason, None, key_action))

    certificate = build_ca_certificate(key, desired.subject, desired.validity_days, now)
    pem = certificate_pem(certificate)
    crypto.write_file_atomic(desired.certificate_path, pem, crypto.CERTIFICATE_MODE)
    action = "created" if existing is None else "renewed"
    return Ensured(
        True,
        before,
        _local_ca_state(made.after, certificate_view(certificate)),
        _outcome(action, reason, pem.decode("ascii"), key_action),
    )


def ensure_local_ca_absent(desired: DesiredLocalCA, check_mode: bool) -> Ensured:
    """Remove the CA certificate and key files."""
    existing = _read_certificate_file(desired.certificate_path, "certificate_path", force=True)
    key_info = None
    if os.path.lexists(desired.private_key_path):
        try:
            key_info = keys.describe_key(crypto.load_private_key(crypto.read_file(desired.private_key_path) or b""))
        except crypto.CryptoError:
            key_info = {"type": "unreadable"}
    before = _local_ca_state(key_info, certificate_view(existing) if existing is not None else None)
    removed_certificate = _remove_file(desired.certificate_path, check_mode)
    removed_key = _remove_file(desired.private_key_path, check_mode)
    return Ensured(removed_certificate or removed_key, before, None)


# ---------------------------------------------------------------------------
# device_certificate
# ---------------------------------------------------------------------------

SOURCES = ("csr", "csr_path", "private_key_path")


@dataclass
class DesiredDeviceCertificate:
    state: str
    certificate_path: str
    chain_path: Optional[str] = None
    private_key_path: Optional[str] = None
    source: Optional[str] = None  # csr | csr_path | private_key_path
    csr: Any = None
    key_spec: Dict[str, Any] = field(default_factory=dict)
    subject: Any = None  # x509.Name
    validity_days: int = DEFAULT_DEVICE_VALIDITY_DAYS
    renew_margin_days: int = DEFAULT_RENEW_MARGIN_DAYS
    ca_certificate: Any = None
    ca_key: Any = None
    force: bool = False


def validate_device_certificate(params: Mapping[str, Any]) -> DesiredDeviceCertificate:
    """Check the device_certificate options and read the CA and the CSR; nothing is written."""
    crypto.require_cryptography()
    state = _check_state(params)
    desired = DesiredDeviceCertificate(
        state=state,
        certificate_path=params["certificate_path"],
        chain_path=params.get("chain_path"),
        private_key_path=params.get("private_key_path"),
        force=bool(params.get("force")),
    )
    _distinct_paths(
        {
            "certificate_path": desired.certificate_path,
            "chain_path": desired.chain_path,
            "private_key_path": desired.private_key_path,
            "csr_path": params.get("csr_path"),
        }
    )
    if state == "absent":
        return desired

    given = [name for name in SOURCES if params.get(name) is not None]
    if len(given) != 1:
        raise ValidationError(
            ", ".join(given) if given else ", ".join(SOURCES),
            "give exactly one: a CSR (csr or csr_path) to certify its key, or private_key_path for a device key "
            f"kept or made there (got {len(given)})",
        )
    desired.source = given[0]
    desired.validity_days, desired.renew_margin_days = _check_days(params, DEFAULT_DEVICE_VALIDITY_DAYS)

    if desired.source == "private_key_path":
        desired.key_spec = keys.validate_key_spec(params)
        _writable_target(desired.private_key_path, "private_key_path")
    else:
        if desired.source == "csr":
            text = params["csr"]
        else:
            try:
                data = crypto.read_file(params["csr_path"])
            except OSError as e:
                raise ValidationError("csr_path", f"cannot read {params['csr_path']}: {e.strerror or e}") from None
            if data is None:
                raise ValidationError("csr_path", f"{params['csr_path']} does not exist")
            text = data
        if len(text) > validation.CSR_MAX:
            raise ValidationError(desired.source, f"must be at most {validation.CSR_MAX} characters, got {len(text)}")
        try:
            desired.csr = crypto.load_csr(text)
        except crypto.CryptoError as e:
            raise ValidationError(desired.source, str(e)) from None
        problem = key_strength_problem(desired.csr.public_key())
        if problem:
            raise ValidationError(desired.source, f"the CSR's key is too weak for AWS IoT: {problem}")

    if params.get("subject") is not None:
        desired.subject = keys.x509_name(keys.validate_subject("subject", params["subject"]))
    elif desired.csr is not None:
        desired.subject = desired.csr.subject
        if len(desired.subject) == 0:
            raise ValidationError("subject", f"is required: the CSR of {desired.source} has an empty subject")
    else:
        raise ValidationError(
            "subject", "is required with private_key_path (give at least common_name; a CSR carries its own subject)"
        )

    for name in ("ca_certificate_path", "ca_private_key_path"):
        if not params.get(name):
            raise ValidationError(name, "is required with state=present: the CA signs the device certificate")
    desired.ca_certificate, desired.ca_key = load_signing_ca(
        params["ca_certificate_path"],
        params["ca_private_key_path"],
        desired.renew_margin_days,
        params.get("ca_private_key_passphrase"),
    )
    _writable_target(desired.certificate_path, "certificate_path")
    if desired.chain_path:
        _writable_target(desired.chain_path, "chain_path")
    return desired


def device_renewal_reason(
    certificate: Any,
    public_key: Any,
    subject: Any,
    ca_certificate: Any,
    margin_days: int,
    now: datetime.datetime,
) -> Optional[str]:
    """Why the device certificate must be issued again, or None when it can be kept."""
    if not crypto.same_public_key(certificate, public_key):
        return "it does not carry the device's public key"
    if certificate.subject != subject:
        return "its subject differs"
    if not issued_by(certificate, ca_certificate):
        return "it is not signed by this CA"
    if not has_client_auth(certificate):
        return "it lacks the clientAuth extended key usage"
    if not_valid_after(certificate) <= now + datetime.timedelta(days=margin_days):
        return f"it expires within renew_margin_days ({margin_days})"
    return None


def _device_state(certificate: Optional[View], chain: Optional[bool], key: Optional[Dict[str, Any]]) -> View:
    state: View = {"certificate": certificate}
    if chain is not None:
        state["chain_written"] = chain
    if key is not None:
        state["private_key"] = key
    return state


def ensure_device_certificate(
    desired: DesiredDeviceCertificate,
    check_mode: bool,
    now: Optional[datetime.datetime] = None,
    warn: Callable[[str], None] = _no_warn,
) -> Ensured:
    """Keep or issue the device certificate (and key, and chain file); in check mode only predict. ``warn`` gets
    what the module reports as a warning (a certificate cut short by its CA's end)."""
    now = now or utcnow()
    key_changed = False
    key_action: Optional[str] = None
    after_key: Optional[Dict[str, Any]] = None
    before_key: Optional[Dict[str, Any]] = None
    if desired.source == "private_key_path":
        if os.path.lexists(desired.private_key_path):
            before_key = keys.describe_key(load_private_key_file(desired.private_key_path, "private_key_path"))
        made = keys.ensure_private_key(desired.private_key_path, desired.key_spec, desired.force, check_mode)
        key_changed, key_action, after_key = made.changed, made.extra["key_action"], made.after
        public_key = made.key.public_key() if made.key is not None else None
    else:
        public_key = desired.csr.public_key()

    existing = _read_certificate_file(desired.certificate_path, "certificate_path", desired.force)
    ca_pem = certificate_pem(desired.ca_certificate)
    chain_before = None
    if desired.chain_path:
        chain_before = (
            existing is not None and crypto.read_file(desired.chain_path) == certificate_pem(existing) + ca_pem
        )
    before = _device_state(
        certificate_view(existing) if existing is not None else None,
        chain_before,
        before_key,
    )

    if existing is None:
        reason = "there is no certificate"
    elif public_key is None:
        reason = "the device key is new"
    else:
        reason = device_renewal_reason(
            existing, public_key, desired.subject, desired.ca_certificate, desired.renew_margin_days, now
        )

    if reason is None:
        pem = certificate_pem(existing)
        chain_changed = False
        if desired.chain_path:
            chain_changed = crypto.file_differs(desired.chain_path, pem + ca_pem)
            if chain_changed and not check_mode:
                crypto.write_file_atomic(desired.chain_path, pem + ca_pem, crypto.CERTIFICATE_MODE)
        after = _device_state(certificate_view(existing), True if desired.chain_path else None, after_key)
        return Ensured(
            key_changed or chain_changed, before, after, _outcome("kept", None, pem.decode("ascii"), key_action)
        )

    not_before = now - BACKDATE
    not_after = min(now + datetime.timedelta(days=desired.validity_days), not_valid_after(desired.ca_certificate))
    note = None
    if not_after < now + datetime.timedelta(days=desired.validity_days):
        note = (
            f"the certificate ends on {not_after.isoformat()}, when the CA certificate expires, "
            f"sooner than validity_days ({desired.validity_days}) asked for"
        )
    if check_mode:
        predicted = predicted_view(desired.subject, desired.ca_certificate.subject, not_before, not_after)
        action = "issue" if existing is None else "reissue"
        if note:
            warn(note)
        return Ensured(
            True,
            before,
            _device_state(predicted, True if desired.chain_path else None, after_key),
            _outcome(action, reason, None, key_action),
        )

    certificate = issue_certificate(
        desired.ca_certificate, desired.ca_key, public_key, desired.subject, not_before, not_after
    )
    pem = certificate_pem(certificate)
    crypto.write_file_atomic(desired.certificate_path, pem, crypto.CERTIFICATE_MODE)
    if desired.chain_path:
        crypto.write_file_atomic(desired.chain_path, pem + ca_pem, crypto.CERTIFICATE_MODE)
    if note:
        warn(note)
    return Ensured(
        True,
        before,
        _device_state(certificate_view(certificate), True if desired.chain_path else None, after_key),
        _outcome("issued" if existing is None else "reissued", reason, pem.decode("ascii"), key_action),
    )


def ensure_device_certificate_absent(desired: DesiredDeviceCertificate, check_mode: bool) -> Ensured:
    """Remove the certificate, the chain file and, when given, the device key."""
    existing = _read_certificate_file(desired.certificate_path, "certificate_path", force=True)
    present = [p for p in (desired.certificate_path, desired.chain_path, desired.private_key_path) if p]
    if not any(os.path.lexists(p) for p in present):
        return Ensured(False)
    before: View = {"certificate": certificate_view(existing) if existing is not None else None}
    if desired.chain_path:
        before["chain_written"] = os.path.lexists(desired.chain_path)
    if desired.private_key_path:
        before["private_key"] = "present" if os.path.lexists(desired.private_key_path) else None
    changed = False
    for path in present:
        changed = _remove_file(path, check_mode) or changed
    return Ensured(changed, before, None)


__all__ = [
    "DesiredDeviceCertificate",
    "DesiredLocalCA",
    "ca_renewal_reason",
    "device_renewal_reason",
    "ensure_device_certificate",
    "ensure_device_certificate_absent",
    "ensure_local_ca",
    "ensure_local_ca_absent",
    "validate_device_certificate",
    "validate_local_ca",
]
