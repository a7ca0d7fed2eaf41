# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""General X.509 helpers: dates, extensions, strength, signatures, views, and signing certificates.

Used by the local CA (``local_ca``: CA and device certificates) and by ``ca`` (CA registration with AWS IoT:
strength and issuer checks, the verification certificate). Nothing here calls AWS or reads module options.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Optional, Tuple

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


# Certificates start a little in the past, so that a device or AWS whose clock is behind accepts them at once.
BACKDATE = datetime.timedelta(minutes=5)
# A verification certificate is used once, right away, by RegisterCACertificate.
VERIFICATION_VALIDITY = datetime.timedelta(days=1)

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
