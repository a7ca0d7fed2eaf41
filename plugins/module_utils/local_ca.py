# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local certificate authority: the CA key and certificate, device certificates it signs, verification certificates.

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
* ``verification_certificate(ca_certificate, ca_key, registration_code)``: the certificate AWS IoT asks for when
  a CA is registered in DEFAULT mode (subject CN = registration code, signed by the CA key, a throwaway key).

Every ensure function returns ``(changed, before, after)``: views of the files (never key material), predicted
without writing anything in check mode.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, keys
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # pragma: no cover - crypto.require_cryptography() reports it

    class InvalidSignature(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses stay valid without cryptography."""


DEFAULT_CA_VALIDITY_DAYS = 3650
DEFAULT_DEVICE_VALIDITY_DAYS = 365
DEFAULT_RENEW_MARGIN_DAYS = 30
MAX_VALIDITY_DAYS = 36500
# Certificates start a little in the past, so that a device or AWS whose clock is behind accepts them at once.
BACKDATE = datetime.timedelta(minutes=5)
# A verification certificate is used once, right away, by RegisterCACertificate.
VERIFICATION_VALIDITY = datetime.timedelta(days=1)
CSR_MAX_LENGTH = 4096

View = Dict[str, Any]


# ---------------------------------------------------------------------------
# Certificate helpers
# ---------------------------------------------------------------------------


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def not_valid_before(certificate: Any) -> datetime.datetime:
    value = getattr(certificate, "not_valid_before_utc", None)
    return value if value is not None else _aware(certificate.not_valid_before)


def not_valid_after(certificate: Any) -> datetime.datetime:
    value = getattr(certificate, "not_valid_after_utc", None)
    return value if value is not None else _aware(certificate.not_valid_after)


def _extension(certificate: Any, extension_class: Any) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(extension_class).value
    except x509.ExtensionNotFound:
        return None


def is_ca_certificate(certificate: Any) -> bool:
    """Whether the certificate's basicConstraints say CA:TRUE (what AWS IoT requires of a CA)."""
    constraints = _extension(certificate, x509.BasicConstraints)
    return bool(constraints is not None and constraints.ca)


def has_client_auth(certificate: Any) -> bool:
    usage = _extension(certificate, x509.ExtendedKeyUsage)
    return usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH in list(usage)


# AWS IoT's supported certificate-signing algorithms (developer guide, "X.509 client certificates"): SHA-256,
# SHA-384 or SHA-512 with RSA, ECDSA or DSA; no SHA-1 or MD5. Keys: RSA of at least 2048 bits, or ECDSA on the
# NIST curves P-256, P-384, P-521.
STRONG_SIGNATURE_HASHES = ("sha256", "sha384", "sha512")
MIN_RSA_BITS = 2048
STRONG_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def key_strength_problem(public_key: Any) -> Optional[str]:
    """Why AWS IoT would refuse this public key, or None when it is an RSA >= 2048 or a NIST P-256/384/521 key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return f"its RSA key has {public_key.key_size} bits; AWS IoT requires at least {MIN_RSA_BITS}"
        return None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in STRONG_CURVES:
            return f"its EC key is on curve {public_key.curve.name}; AWS IoT accepts NIST P-256, P-384 and P-521 only"
        return None
    return f"its key is {type(public_key).__name__}; AWS IoT accepts RSA (2048 bits or more) and EC (P-256/384/521)"


def strength_problem(certificate: Any) -> Optional[str]:
    """Why AWS IoT would refuse this certificate's key or signature algorithm, or None."""
    problem = key_strength_problem(certificate.public_key())
    if problem:
        return problem
    try:
        algorithm = certificate.signature_hash_algorithm
    except Exception:  # pylint: disable=broad-except  # an unknown algorithm raises UnsupportedAlgorithm
        algorithm = None
    name = getattr(algorithm, "name", None)
    if name not in STRONG_SIGNATURE_HASHES:
        return (
            f"it is signed with {(name or 'an unsupported hash').upper().replace('SHA', 'SHA-')}; AWS IoT accepts "
            "signatures with SHA-256, SHA-384 or SHA-512 only"
        )
    return None


def require_strong(certificate: Any, field_name: str, what: str) -> None:
    """ValidationError naming ``field_name`` when AWS IoT would refuse ``certificate`` as too weak."""
    problem = strength_problem(certificate)
    if problem:
        raise ValidationError(field_name, f"{what} is too weak for AWS IoT: {problem}")


def signing_hash(key: Any) -> Any:
    """The hash to sign with: SHA-256 for the EC and RSA keys AWS IoT accepts."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return hashes.SHA256()
    raise ValidationError("ca_private_key_path", f"must hold an EC or RSA key, got {type(key).__name__}")


def signature_verifies(certificate: Any, public_key: Any) -> bool:
    """Whether ``certificate`` was signed by the private key of ``public_key`` (EC or RSA)."""
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def issued_by(certificate: Any, ca_certificate: Any) -> bool:
    """Whether ``ca_certificate`` issued ``certificate``: its name is the issuer and its key made the signature."""
    return certificate.issuer == ca_certificate.subject and signature_verifies(certificate, ca_certificate.public_key())


def certificate_pem(certificate: Any) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _iso(value: Optional[datetime.datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


def certificate_view(certificate: Any) -> View:
    """What the modules return and diff about a certificate (public data only)."""
    pem = certificate_pem(certificate)
    return {
        "certificate_id": crypto.certificate_id(pem),
        "subject": keys.subject_of(certificate.subject),
        "subject_dn": certificate.subject.rfc4514_string(),
        "issuer_dn": certificate.issuer.rfc4514_string(),
        "serial_number": format(certificate.serial_number, "x"),
        "not_before": _iso(not_valid_before(certificate)),
        "not_after": _iso(not_valid_after(certificate)),
    }


def predicted_view(subject: Any, issuer: Any, not_before: datetime.datetime, not_after: datetime.datetime) -> View:
    """A certificate that check mode predicts: what is known before it is made (no id, no serial)."""
    return {
        "certificate_id": None,
        "subject": keys.subject_of(subject),
        "subject_dn": subject.rfc4514_string(),
        "issuer_dn": issuer.rfc4514_string(),
        "serial_number": None,
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
    }


def _read_certificate_file(path: str, field_name: str, force: bool) -> Optional[Any]:
    """The certificate at ``path``; None when there is none (or, with force, when the file holds something else)."""
    try:
        data = crypto.read_file(path)
    except IsADirectoryError:
        raise ValidationError(field_name, f"{path} is a directory; give a file path") from None
    except OSError as e:
        raise ValidationError(field_name, f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        return None
    try:
        return crypto.load_certificate(data)
    except crypto.CryptoError as e:
        if force:
            return None
        raise ValidationError(
            field_name, f"{path} exists but {e}; remove it or set force: true to overwrite it"
        ) from None


def _writable_target(path: str, field_name: str) -> None:
    if os.path.isdir(path):
        raise ValidationError(field_name, f"{path} is a directory; give a file path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValidationError(field_name, f"the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValidationError(field_name, f"the directory {directory} is not writable")


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
# Signing
# ---------------------------------------------------------------------------


def _authority_key_identifier(ca_certificate: Any) -> Any:
    ski = _extension(ca_certificate, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key())


def build_ca_certificate(key: Any, subject: Dict[str, str], validity_days: int, now: datetime.datetime) -> Any:
    """A self-signed CA certificate: CA:TRUE, keyCertSign and cRLSign, subject (and authority) key identifier."""
    name = keys.x509_name(subject)
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
    )
    return builder.sign(key, signing_hash(key))


def issue_certificate(
    ca_certificate: Any,
    ca_key: Any,
    public_key: Any,
    subject: Any,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    client_auth: bool = True,
) -> Any:
    """An end-entity certificate signed by the CA: CA:FALSE, digitalSignature, clientAuth, key identifiers."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(ca_certificate), critical=False)
    )
    if client_auth:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(ca_key, signing_hash(ca_key))


def verification_certificate(
    ca_certificate: Any, ca_key: Any, registration_code: str, now: Optional[datetime.datetime] = None
) -> str:
    """The private key verification certificate of RegisterCACertificate, as PEM.

    Its subject CN is the registration code and it is signed by the CA key, which proves to AWS IoT that the
    registrant holds that key. Its own key is a throwaway EC P-256 key that is never stored.
    """
    now = now or utcnow()
    throwaway = keys.generate_key({"type": "EC", "curve": "P-256"})
    subject = keys.x509_name({"common_name": registration_code})
    certificate = issue_certificate(
        ca_certificate, ca_key, throwaway.public_key(), subject, now - BACKDATE, now + VERIFICATION_VALIDITY, False
    )
    return certificate_pem(certificate).decode("ascii")


def load_signing_ca(
    certificate_path: str, key_path: str, margin_days: int = 0, passphrase: Optional[str] = None
) -> Tuple[Any, Any]:
    """The CA certificate and its private key from files, checked to belong together and to be usable."""
    certificate = _read_certificate_file(certificate_path, "ca_certificate_path", force=False)
    if certificate is None:
        raise ValidationError("ca_certificate_path", f"{certificate_path} does not exist")
    if not is_ca_certificate(certificate):
        raise ValidationError(
            "ca_certificate_path",
            f"{certificate_path} is not a CA certificate (its basicConstraints do not say CA:TRUE)",
        )
    require_strong(certificate, "ca_certificate_path", f"the CA certificate {certificate_path}")
    key = load_private_key_file(key_path, "ca_private_key_path", passphrase)
    signing_hash(key)
    if not crypto.same_public_key(key, certificate):
        raise ValidationError(
            "ca_private_key_path", f"the key in {key_path} does not match the public key of {certificate_path}"
        )
    expires = not_valid_after(certificate)
    if expires <= utcnow() + datetime.timedelta(days=margin_days):
        raise ValidationError(
            "ca_certificate_path",
            f"the CA certificate {certificate_path} expires on {expires.isoformat()}, within renew_margin_days "
            f"({margin_days}) from now; renew the CA first (iotfleet.provisioning.local_ca)",
        )
    return certificate, key


def load_private_key_file(path: str, field_name: str, passphrase: Optional[str] = None) -> Any:
    """The private key in ``path``; an encrypted one needs ``passphrase`` (never part of any message)."""
    try:
        data = crypto.read_file(path)
    except OSError as e:
        raise ValidationError(field_name, f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        raise ValidationError(field_name, f"{path} does not exist")
    if passphrase:
        return _load_encrypted_key(data, path, field_name, passphrase)
    try:
        return crypto.load_private_key(data)
    except crypto.CryptoError as e:
        if "encrypted" in str(e):
            raise ValidationError(
                field_name, f"{path} is an encrypted private key; give its passphrase (ca_private_key_passphrase)"
            ) from None
        raise ValidationError(field_name, f"{path} {e}") from None


def _load_encrypted_key(data: bytes, path: str, field_name: str, passphrase: str) -> Any:
    crypto.require_cryptography()
    try:
        return serialization.load_pem_private_key(data, passphrase.encode("utf-8"))
    except TypeError:
        # The key is not encrypted: a passphrase given for it is a mistake worth saying.
        raise ValidationError(
            "ca_private_key_passphrase", f"is given but {path} is not an encrypted private key"
        ) from None
    except ValueError as e:
        # cryptography's message never holds the passphrase, but may quote key bytes: keep only its class.
        raise ValidationError(
            field_name,
            f"{path} cannot be decrypted with the passphrase given, or is not a PEM private key ({type(e).__name__})",
        ) from None


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


@dataclass
class LocalResult:
    """What an ensure function did, besides (changed, before, after)."""

    key_action: Optional[str] = None
    certificate_action: str = "kept"
    reason: Optional[str] = None
    pem: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def ensure_local_ca(
    desired: DesiredLocalCA, check_mode: bool, now: Optional[datetime.datetime] = None
) -> Tuple[bool, Optional[View], View, LocalResult]:
    """Keep or make the CA key and self-signed certificate; in check mode only predict."""
    now = now or utcnow()
    result = LocalResult()
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
    key_changed, key, key_info = keys.ensure_private_key(
        desired.private_key_path, desired.key_spec, desired.force, check_mode, kind="CA key"
    )
    result.key_action = key_info["action"]
    before = _local_ca_state(before_key, certificate_view(existing) if existing is not None else None)

    if existing is None:
        result.reason = "there is no CA certificate"
    elif key is None:
        result.reason = "the key is new"
    else:
        result.reason = ca_renewal_reason(existing, key, desired.subject, desired.renew_margin_days, now)
    if result.reason is None:
        result.pem = certificate_pem(existing).decode("ascii")
        after = _local_ca_state(key_info["key"], certificate_view(existing))
        return key_changed, before, after, result

    result.certificate_action = "create" if existing is None else "renew"
    if check_mode:
        name = keys.x509_name(desired.subject)
        predicted = predicted_view(name, name, now - BACKDATE, now + datetime.timedelta(days=desired.validity_days))
        return True, before, _local_ca_state(key_info["key"], predicted), result

    certificate = build_ca_certificate(key, desired.subject, desired.validity_days, now)
    pem = certificate_pem(certificate)
    crypto.write_file_atomic(desired.certificate_path, pem, crypto.CERTIFICATE_MODE)
    result.certificate_action = "created" if existing is None else "renewed"
    result.pem = pem.decode("ascii")
    return True, before, _local_ca_state(key_info["key"], certificate_view(certificate)), result


def ensure_local_ca_absent(desired: DesiredLocalCA, check_mode: bool) -> Tuple[bool, Optional[View], None]:
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
    return removed_certificate or removed_key, before, None


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
        if len(text) > CSR_MAX_LENGTH:
            raise ValidationError(desired.source, f"must be at most {CSR_MAX_LENGTH} characters, got {len(text)}")
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
    desired: DesiredDeviceCertificate, check_mode: bool, now: Optional[datetime.datetime] = None
) -> Tuple[bool, View, View, LocalResult]:
    """Keep or issue the device certificate (and key, and chain file); in check mode only predict."""
    now = now or utcnow()
    result = LocalResult()
    key_changed = False
    key_info: Optional[Dict[str, Any]] = None
    before_key: Optional[Dict[str, Any]] = None
    if desired.source == "private_key_path":
        if os.path.lexists(desired.private_key_path):
            before_key = keys.describe_key(load_private_key_file(desired.private_key_path, "private_key_path"))
        key_changed, key, key_info = keys.ensure_private_key(
            desired.private_key_path, desired.key_spec, desired.force, check_mode
        )
        result.key_action = key_info["action"]
        public_key = key.public_key() if key is not None else None
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
    after_key = key_info["key"] if key_info is not None else None

    if existing is None:
        result.reason = "there is no certificate"
    elif public_key is None:
        result.reason = "the device key is new"
    else:
        result.reason = device_renewal_reason(
            existing, public_key, desired.subject, desired.ca_certificate, desired.renew_margin_days, now
        )

    if result.reason is None:
        pem = certificate_pem(existing)
        result.pem = pem.decode("ascii")
        chain_changed = False
        if desired.chain_path:
            chain_changed = crypto.file_differs(desired.chain_path, pem + ca_pem)
            if chain_changed and not check_mode:
                crypto.write_file_atomic(desired.chain_path, pem + ca_pem, crypto.CERTIFICATE_MODE)
        after = _device_state(certificate_view(existing), True if desired.chain_path else None, after_key)
        return key_changed or chain_changed, before, after, result

    result.certificate_action = "issue" if existing is None else "reissue"
    not_before = now - BACKDATE
    not_after = min(now + datetime.timedelta(days=desired.validity_days), not_valid_after(desired.ca_certificate))
    if not_after < now + datetime.timedelta(days=desired.validity_days):
        result.notes.append(
            f"the certificate ends on {not_after.isoformat()}, when the CA certificate expires, "
            f"sooner than validity_days ({desired.validity_days}) asked for"
        )
    if check_mode:
        predicted = predicted_view(desired.subject, desired.ca_certificate.subject, not_before, not_after)
        return True, before, _device_state(predicted, True if desired.chain_path else None, after_key), result

    certificate = issue_certificate(
        desired.ca_certificate, desired.ca_key, public_key, desired.subject, not_before, not_after
    )
    pem = certificate_pem(certificate)
    crypto.write_file_atomic(desired.certificate_path, pem, crypto.CERTIFICATE_MODE)
    if desired.chain_path:
        crypto.write_file_atomic(desired.chain_path, pem + ca_pem, crypto.CERTIFICATE_MODE)
    result.certificate_action = "issued" if existing is None else "reissued"
    result.pem = pem.decode("ascii")
    return (
        True,
        before,
        _device_state(certificate_view(certificate), True if desired.chain_path else None, after_key),
        result,
    )


def ensure_device_certificate_absent(
    desired: DesiredDeviceCertificate, check_mode: bool
) -> Tuple[bool, Optional[View], None]:
    """Remove the certificate, the chain file and, when given, the device key."""
    existing = _read_certificate_file(desired.certificate_path, "certificate_path", force=True)
    present = [p for p in (desired.certificate_path, desired.chain_path, desired.private_key_path) if p]
    if not any(os.path.lexists(p) for p in present):
        return False, None, None
    before: View = {"certificate": certificate_view(existing) if existing is not None else None}
    if desired.chain_path:
        before["chain_written"] = os.path.lexists(desired.chain_path)
    if desired.private_key_path:
        before["private_key"] = "present" if os.path.lexists(desired.private_key_path) else None
    changed = False
    for path in present:
        changed = _remove_file(path, check_mode) or changed
    return changed, before, None


__all__ = [
    "DesiredDeviceCertificate",
    "DesiredLocalCA",
    "LocalResult",
    "build_ca_certificate",
    "certificate_view",
    "ensure_device_certificate",
    "ensure_device_certificate_absent",
    "ensure_local_ca",
    "ensure_local_ca_absent",
    "is_ca_certificate",
    "issue_certificate",
    "issued_by",
    "key_strength_problem",
    "load_private_key_file",
    "load_signing_ca",
    "require_strong",
    "strength_problem",
    "validate_device_certificate",
    "validate_local_ca",
    "verification_certificate",
]
