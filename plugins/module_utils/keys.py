# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The private key and CSR backend: one place that decides whether a key or CSR can be kept.

Keys are born where they will live (on the device) and never leave that host: this file
needs no AWS access. An existing key is kept when it has the requested type and size; a
key of another kind is never replaced silently. A CSR file is kept while it carries the
key's public key and the requested subject.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - crypto.require_cryptography() reports it
    pass

KEY_TYPES = ("EC", "RSA")
CURVES = {"P-256": "SECP256R1", "P-384": "SECP384R1"}
MIN_RSA_BITS = 2048

# Subject option name -> x509 attribute name, in the order they appear in the subject.
SUBJECT_FIELDS = (
    ("country", "COUNTRY_NAME"),
    ("state_or_province", "STATE_OR_PROVINCE_NAME"),
    ("locality", "LOCALITY_NAME"),
    ("organization", "ORGANIZATION_NAME"),
    ("organizational_unit", "ORGANIZATIONAL_UNIT_NAME"),
    ("distinguished_name_qualifier", "DN_QUALIFIER"),
    ("serial_number", "SERIAL_NUMBER"),
    ("common_name", "COMMON_NAME"),
)


SUBJECT_FIELD_NAMES = tuple(name for name, _oid in SUBJECT_FIELDS)


def key_argument_spec() -> dict[str, Any]:
    """The key options of every module that makes a key (csr, local_ca, device_certificate)."""
    return dict(
        key_type=dict(type="str", choices=["EC", "RSA"], default="EC"),
        curve=dict(type="str", choices=["P-256", "P-384"], default="P-256"),
        key_size=dict(type="int", default=2048),
    )


def subject_argument_spec(required: bool = False) -> dict[str, Any]:
    """The ``subject`` option: one string suboption per supported name attribute."""
    return dict(type="dict", required=required, options={name: dict(type="str") for name in SUBJECT_FIELD_NAMES})


def validate_key_spec(params: dict[str, Any]) -> dict[str, Any]:
    key_type = (params.get("key_type") or "EC").upper()
    if key_type not in KEY_TYPES:
        raise ValidationError("key_type", f"must be one of {', '.join(KEY_TYPES)} (got {key_type!r})")
    spec: dict[str, Any] = {"type": key_type}
    if key_type == "EC":
        curve = params.get("curve") or "P-256"
        if curve not in CURVES:
            raise ValidationError("curve", f"must be one of {', '.join(CURVES)} (got {curve!r})")
        spec["curve"] = curve
    else:
        size = params.get("key_size") or MIN_RSA_BITS
        if size < MIN_RSA_BITS or size % 1024:
            raise ValidationError("key_size", f"RSA keys must be at least {MIN_RSA_BITS} bits, in steps of 1024")
        spec["size"] = size
    return spec


def validate_subject(field: str, subject: dict[str, Any] | None) -> dict[str, str]:
    subject = {k: v for k, v in (subject or {}).items() if v not in (None, "")}
    known = dict(SUBJECT_FIELDS)
    for key, value in subject.items():
        if key not in known:
            raise ValidationError(f"{field}.{key}", f"is not a subject field; use {', '.join(known)}")
        if not isinstance(value, str) or len(value) > 64:
            raise ValidationError(f"{field}.{key}", "must be a string of at most 64 characters")
    if "country" in subject and len(subject["country"]) != 2:
        raise ValidationError(f"{field}.country", "must be a two-letter country code")
    if not subject:
        raise ValidationError(field, "needs at least one field, such as common_name")
    return {key: str(subject[key]) for key in SUBJECT_FIELD_NAMES if key in subject}


def x509_name(subject: dict[str, str]) -> Any:
    return x509.Name(
        [x509.NameAttribute(getattr(NameOID, oid), subject[key]) for key, oid in SUBJECT_FIELDS if key in subject]
    )


def subject_of(name: Any) -> dict[str, str]:
    """A x509 Name as our subject dict (fields we do not model are left out)."""
    result = {}
    for key, oid in SUBJECT_FIELDS:
        values = name.get_attributes_for_oid(getattr(NameOID, oid))
        if values:
            result[key] = values[0].value
    return result


def describe_key(key: Any) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        names = {v: k for k, v in CURVES.items()}
        return {"type": "EC", "curve": names.get(type(key.curve).__name__, key.curve.name)}
    if isinstance(key, rsa.RSAPrivateKey):
        return {"type": "RSA", "size": key.key_size}
    return {"type": type(key).__name__}


def generate_key(spec: dict[str, Any]) -> Any:
    if spec["type"] == "EC":
        return ec.generate_private_key(getattr(ec, CURVES[spec["curve"]])())
    return rsa.generate_private_key(public_exponent=65537, key_size=spec["size"])


def private_key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_csr(key: Any, subject: dict[str, str]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509_name(subject))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class EnsuredKey(Ensured):
    """What ``ensure_private_key`` did: ``before`` / ``after`` describe the key (``describe_key``; None where there
    is none), ``extra`` holds ``key_action`` (kept, fixed mode, create, created, replaced). ``key`` is the key itself
    for the caller's next step (None in check mode until it is made): a field of its own, so that a result built
    from ``extra`` never carries key material."""

    key: Any = None


def ensure_private_key(
    path: str, spec: dict[str, Any], replace_mismatch: bool, check_mode: bool, kind: str = "device key"
) -> EnsuredKey:
    """Keep a matching key at `path`, or make one (0600, atomically).

    ``kind`` names the key in the refusal message (a device key, a CA key, ...).
    """
    existing = crypto.read_file(path)
    found = None
    if existing is not None:
        try:
            key = crypto.load_private_key(existing)
        except crypto.CryptoError as error:
            raise ValidationError(
                "private_key_path", f"{path} is not a readable unencrypted private key: {error}"
            ) from None
        found = describe_key(key)
        if found == spec:
            if (os.stat(path).st_mode & 0o777) != crypto.PRIVATE_KEY_MODE:
                if not check_mode:
                    os.chmod(path, crypto.PRIVATE_KEY_MODE)
                return EnsuredKey(True, found, found, {"key_action": "fixed mode"}, key=key)
            return EnsuredKey(False, found, found, {"key_action": "kept"}, key=key)
        if not replace_mismatch:
            raise ValidationError(
                "private_key_path",
                f"{path} holds a {_spec_text(found)} key but a {_spec_text(spec)} key was asked for; "
                f"a {kind} is never replaced silently: set force: true to replace it",
            )
    if check_mode:
        return EnsuredKey(True, found, spec, {"key_action": "create"})
    key = generate_key(spec)
    crypto.write_file_atomic(path, private_key_pem(key), crypto.PRIVATE_KEY_MODE)
    return EnsuredKey(True, found, spec, {"key_action": "replaced" if existing is not None else "created"}, key=key)


def _spec_text(spec: dict[str, Any]) -> str:
    return f"{spec['type']} {spec.get('curve') or spec.get('size') or ''}".strip()


def csr_matches(csr_pem: bytes, key: Any, subject: dict[str, str]) -> bool:
    try:
        csr = crypto.load_csr(csr_pem)
    except crypto.CryptoError:
        return False
    return crypto.same_public_key(csr.public_key(), key.public_key()) and subject_of(csr.subject) == subject


def ensure_csr(key: Optional[Any], subject: dict[str, str], csr_path: Optional[str], check_mode: bool) -> Ensured:
    """A CSR for `key` and `subject`: the one at csr_path when it still matches, else a new one.

    ``after`` is the CSR (PEM text; None in check mode when a new one would be written), ``before`` the text of the
    file at csr_path (None when there is none, or in check mode before the key exists).
    """
    if key is None:  # check mode, key not made yet
        return Ensured(bool(csr_path))
    existing = crypto.read_file(csr_path) if csr_path else None
    before = existing.decode("ascii", "replace") if existing is not None else None
    if existing is not None and csr_matches(existing, key, subject):
        return Ensured(False, before, existing.decode())
    csr_pem = make_csr(key, subject)
    if not csr_path:
        # Nothing is stored, so nothing changed: the CSR is only returned.
        return Ensured(False, None, csr_pem.decode())
    if check_mode:
        return Ensured(True, before, None)
    crypto.write_file_atomic(csr_path, csr_pem, crypto.CERTIFICATE_MODE)
    return Ensured(True, before, csr_pem.decode())


# ---------------------------------------------------------------------------
# the csr module
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DesiredCsr:
    """The csr module's options, checked: the key (``validate_key_spec``) and the CSR's subject."""

    private_key_path: str
    key_spec: Dict[str, Any]
    subject: Dict[str, str]
    csr_path: Optional[str] = None
    force: bool = False


def validate_csr(params: Mapping[str, Any]) -> DesiredCsr:
    return DesiredCsr(
        private_key_path=params["private_key_path"],
        key_spec=validate_key_spec(params),
        subject=validate_subject("subject", params["subject"]),
        csr_path=params.get("csr_path"),
        force=bool(params.get("force")),
    )


def ensure_key_and_csr(desired: DesiredCsr, check_mode: bool) -> Ensured:
    """The private key (kept or made) and a CSR for it. ``before`` / ``after`` are what the diff shows (whether the
    key existed; what happened to it and whether the CSR file was written); ``extra`` the module's ``csr``, ``key``
    (its description) and ``key_action``."""
    key = ensure_private_key(desired.private_key_path, desired.key_spec, desired.force, check_mode)
    action = key.extra["key_action"]
    csr = ensure_csr(key.key, desired.subject, desired.csr_path, check_mode)
    return Ensured(
        key.changed or csr.changed,
        {"private_key": "absent" if action in ("create", "created") else "present"},
        {"private_key": action, "csr_written": csr.changed},
        {"csr": csr.after, "key": key.after, "key_action": action},
    )
