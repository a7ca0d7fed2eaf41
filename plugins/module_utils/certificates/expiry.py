# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expiry and key facts of certificates for certificate_info: validity dates, days left, the public key.

The dates are read from the certificate itself (the X.509 notBefore/notAfter of the PEM that DescribeCertificate
returns, or of a local file whose id is the certificate's id): they are what a TLS handshake checks, and AWS's
``certificateDescription.validity`` carries the same dates. The field is used only when no PEM is at hand.
DescribeCertificate is limited to 10 TPS, so listing queries read validity only when asked.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.info import (
    CertificateQuery,
    query_certificates,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    list_certificate_policies,
    list_certificate_things,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import View
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import CryptoError, load_certificate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:  # pragma: no cover - the module reports the missing library before using this
    ec = rsa = None

SECONDS_PER_DAY = 86400
# The names csr and certificate use for the NIST curves (keys.CURVES), by cryptography's curve name.
CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
# The most days_left and expiring_within_days may say: AWS-generated certificates expire 2049-12-31.
MAX_WINDOW_DAYS = 36500


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _parse_iso(value: Any) -> Optional[datetime.datetime]:
    if isinstance(value, datetime.datetime):
        return _aware(value)
    if isinstance(value, str) and value:
        try:
            return _aware(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def days_left(not_after: datetime.datetime, now: datetime.datetime) -> int:
    """Whole days until ``not_after``, rounded down: 0 on the last day, negative once expired."""
    return math.floor((_aware(not_after) - now).total_seconds() / SECONDS_PER_DAY)


def public_key_facts(public_key: Any) -> Dict[str, Any]:
    """``{"type": "RSA", "size": 2048}`` or ``{"type": "EC", "curve": "P-256", "size": 256}``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return {"type": "RSA", "size": public_key.key_size}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = public_key.curve.name
        return {"type": "EC", "curve": CURVE_NAMES.get(name, name), "size": public_key.curve.key_size}
    return {"type": type(public_key).__name__}


def pem_facts(pem: str) -> Optional[Dict[str, Any]]:
    """The validity dates (datetimes) and the public key of a PEM certificate, or None when it does not parse."""
    try:
        certificate = load_certificate(pem)
    except CryptoError:
        return None
    before = getattr(certificate, "not_valid_before_utc", None) or _aware(certificate.not_valid_before)
    after = getattr(certificate, "not_valid_after_utc", None) or _aware(certificate.not_valid_after)
    return {"not_before": before, "not_after": after, "public_key": public_key_facts(certificate.public_key())}


def add_expiry(view: View, pem: Optional[str], validity: Optional[Mapping[str, Any]], now: datetime.datetime) -> View:
    """``view`` with ``validity`` (ISO dates), ``days_left`` and ``public_key``; null where they could not be read.

    ``validity`` is DescribeCertificate's field, used only when there is no PEM to read the dates from.
    """
    facts = pem_facts(pem) if pem else None
    if facts is None and validity:
        before, after = _parse_iso(validity.get("notBefore")), _parse_iso(validity.get("notAfter"))
        if before and after:
            facts = {"not_before": before, "not_after": after}
    if facts is None:
        view.update(validity=None, days_left=None, public_key=None)
        return view
    view["validity"] = {"not_before": facts["not_before"].isoformat(), "not_after": facts["not_after"].isoformat()}
    view["days_left"] = days_left(facts["not_after"], now)
    view["public_key"] = facts.get("public_key")
    return view


def expires_within(view: Mapping[str, Any], days: int, now: datetime.datetime) -> bool:
    """The certificate's notAfter is at most ``days`` days from ``now`` (expired ones included)."""
    not_after = _parse_iso((view.get("validity") or {}).get("not_after"))
    return not_after is not None and not_after <= now + datetime.timedelta(days=days)


def validate_window(value: Any) -> Optional[int]:
    """expiring_within_days: None, or a whole number of days from 0 to MAX_WINDOW_DAYS."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_DAYS:
        raise ValidationError(
            "expiring_within_days", f"must be a whole number from 0 to {MAX_WINDOW_DAYS}, got {value!r}"
        )
    return value


def query_with_expiry(
    client: Any,
    query: CertificateQuery,
    include_validity: bool = False,
    expiring_within_days: Optional[int] = None,
    now: Optional[datetime.datetime] = None,
    include_attachments: bool = False,
) -> Dict[str, Any]:
    """certificate_info's answer: ``certificates`` (with expiry facts where read) and ``validity_read``.

    A query by id or by thing describes each certificate anyway, so its validity costs no call; a listing (every
    certificate, or by CA) describes each certificate only with ``include_validity`` or ``expiring_within_days``.
    ``include_attachments``: each returned certificate's ``things`` and ``policies`` (two list calls each, after
    the expiry filter).
    """
    now = now or utcnow()
    wanted_pem = query.include_pem
    read_validity = include_validity or expiring_within_days is not None or bool(query.certificate_id or query.thing)
    if read_validity:
        # The PEM comes with each description: by id and by thing it is there already, listings describe each one.
        query = CertificateQuery(**{**query.__dict__, "include_pem": True})
    views: List[View] = query_certificates(client, query)
    for view in views:
        if read_validity:
            add_expiry(view, view.get("certificate_pem"), None, now)
            if not wanted_pem:
                view.pop("certificate_pem", None)
    if expiring_within_days is not None:
        views = [v for v in views if expires_within(v, expiring_within_days, now)]
    if include_attachments:
        for view in views:
            view["things"] = list_certificate_things(client, view["certificate_arn"])
            view["policies"] = list_certificate_policies(client, view["certificate_arn"])
    return {
        "certificates": views,
        "validity_read": read_validity and all(v.get("validity") is not None for v in views),
    }
