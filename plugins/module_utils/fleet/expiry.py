# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate expiry in the fleet: each device's certificate dates and key, and the warn/fail rule.

Where a certificate's dates and key come from, cheapest first:

* a file of the device in output_dir whose id (SHA-256 of the DER) is the certificate's id: no call;
* DescribeCertificate (10 TPS: 20 s per 200 devices at AWS's default quota), only when a rule needs them
  (``certificate_expiry``, ``rotation.expiring_within_days`` or ``rotation.key_minimum``); the dates are the
  certificate's own, read from the PEM of the answer (``certificateDescription.validity`` carries the same
  dates and is used when the PEM cannot be read);
* otherwise they are not read, and the plan and the report say so (``validity: not read``).
"""

from __future__ import annotations

import datetime
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:  # pragma: no cover - crypto reports the missing library first
    ec = rsa = None

SECONDS_PER_DAY = 86400
# AWS-generated certificates expire 2049-12-31: a window longer than this is a mistake.
MAX_WINDOW_DAYS = 36500
NOT_READ = "not read"


@dataclass
class CertFacts:
    """What the fleet knows of one certificate: its expiry and its key, and where that came from."""

    not_after: Optional[datetime.datetime] = None
    key_type: Optional[str] = None  # RSA | EC | another type's name
    key_bits: Optional[int] = None
    source: str = NOT_READ  # file | DescribeCertificate | not read

    def days_left(self, now: datetime.datetime) -> Optional[int]:
        if self.not_after is None:
            return None
        return math.floor((self.not_after - now).total_seconds() / SECONDS_PER_DAY)

    def key_text(self) -> Optional[str]:
        if self.key_type is None:
            return None
        return f"{self.key_type} {self.key_bits}" if self.key_bits else self.key_type


@dataclass
class ExpiryRule:
    warn_within_days: Optional[int] = None
    fail_within_days: Optional[int] = None

    @property
    def declared(self) -> bool:
        return self.warn_within_days is not None or self.fail_within_days is not None


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def check_days(field_name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_DAYS:
        raise ValidationError(field_name, f"must be a whole number of days from 0 to {MAX_WINDOW_DAYS}, got {value!r}")
    return value


def validate_expiry(raw: Any) -> ExpiryRule:
    """``certificate_expiry``: ``{warn_within_days, fail_within_days}``, each optional."""
    if raw is None:
        return ExpiryRule()
    if not isinstance(raw, Mapping):
        raise ValidationError("certificate_expiry", f"must be a dictionary, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"warn_within_days", "fail_within_days"})
    if unknown:
        raise ValidationError(
            f"certificate_expiry.{unknown[0]}", "is not an option; use warn_within_days, fail_within_days"
        )
    return ExpiryRule(
        warn_within_days=check_days("certificate_expiry.warn_within_days", raw.get("warn_within_days")),
        fail_within_days=check_days("certificate_expiry.fail_within_days", raw.get("fail_within_days")),
    )


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def key_of(public_key: Any) -> Tuple[str, Optional[int]]:
    """(type, bits) of a public key: RSA and its modulus size, EC and its curve size."""
    if rsa is not None and isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size
    if ec is not None and isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC", public_key.curve.key_size
    return type(public_key).__name__.replace("PublicKey", "").lstrip("_"), None


def facts_of_certificate(certificate: Any, source: str) -> CertFacts:
    """The dates and key of a loaded X.509 certificate."""
    value = getattr(certificate, "not_valid_after_utc", None)
    not_after = value if value is not None else _aware(certificate.not_valid_after)
    key_type, key_bits = key_of(certificate.public_key())
    return CertFacts(not_after=not_after, key_type=key_type, key_bits=key_bits, source=source)


def facts_of_pem(pem: crypto.Text, source: str) -> Optional[CertFacts]:
    try:
        return facts_of_certificate(crypto.load_certificate(pem), source)
    except crypto.CryptoError:
        return None


def facts_of_public_key_der(der: bytes) -> Tuple[str, Optional[int]]:
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    return key_of(serialization.load_der_public_key(der))


def describe_facts(call: Any, cert_id: str) -> Optional[CertFacts]:
    """DescribeCertificate: the dates and key of the PEM it returns (None: the certificate is gone)."""
    description = iot_access.describe_certificate(call, cert_id)
    if description is None:
        return None
    facts = facts_of_pem(description.get("certificatePem") or "", "DescribeCertificate")
    if facts is None:
        validity = description.get("validity") or {}
        value = validity.get("notAfter")
        facts = CertFacts(
            not_after=_aware(value) if isinstance(value, datetime.datetime) else None, source="DescribeCertificate"
        )
    return facts


def describe_many(call: Any, cert_ids: List[str], concurrency: int) -> Dict[str, CertFacts]:
    """DescribeCertificate for each id, in parallel (the rate budget paces them at 10 TPS)."""
    if not cert_ids:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(cert_ids)))) as pool:
        answers = list(pool.map(lambda cert_id: describe_facts(call, cert_id), cert_ids))
    return {cert_id: facts for cert_id, facts in zip(cert_ids, answers) if facts is not None}


def iso(value: Optional[datetime.datetime]) -> Optional[str]:
    return None if value is None else value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
