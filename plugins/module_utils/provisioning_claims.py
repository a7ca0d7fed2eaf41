# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provisioning claims (fleet provisioning by trusted user): CreateProvisioningClaim and the claim's files.

A claim is temporary (AWS: five minutes), so it has no remote state to converge on: AWS neither lists nor describes
claims. What the module manages is the claim on disk. An existing claim is kept (nothing changes) while its files
hold a certificate and the matching key, the record beside the certificate names the same template, and the
certificate stays valid for at least ``min_valid_seconds``; otherwise a new claim is made and written. The template
is always read first (DescribeProvisioningTemplate, a read), so a claim is never handed out for a template that
cannot provision: not FLEET_PROVISIONING, disabled, or gone.

Files: the private key, the certificate and the record (``<certificate_path>.claim.json``: template name and
certificate id) are written 0600, atomically. Each temporary file is opened before the call, so an unwritable
directory fails before a claim exists; the key is written first, as soon as the answer arrives.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import call_once
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CryptoError,
    PendingFile,
    certificate_id,
    certificate_public_key,
    load_certificate,
    private_key_public_key,
    read_file,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error

TEMPLATE_NAME_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,36}", re.ASCII)
CLAIM_FILE_MODE = 0o600
RECORD_SUFFIX = ".claim.json"
AWS_CLAIM_LIFETIME = 300  # seconds; the developer guide's five minutes
DEFAULT_MIN_VALID_SECONDS = 60


@dataclass
class DesiredClaim:
    template_name: str
    certificate_path: str
    private_key_path: str
    min_valid_seconds: int
    force: bool

    @property
    def record_path(self) -> str:
        return self.certificate_path + RECORD_SUFFIX


def _directory_of(path: str, field: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValidationError(field, f"the directory {directory} does not exist; create it first (mode 0700)")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValidationError(field, f"the directory {directory} is not writable")


def validate(params: dict[str, Any]) -> DesiredClaim:
    """The desired claim from the module options; ValidationError before any AWS call."""
    name = params.get("template_name")
    if not isinstance(name, str) or not TEMPLATE_NAME_PATTERN.fullmatch(name):
        raise ValidationError("template_name", f"must be 1-36 letters, digits, '_' or '-' (got {name!r})")
    minimum = params.get("min_valid_seconds")
    if minimum is None:
        minimum = DEFAULT_MIN_VALID_SECONDS
    if not 0 <= minimum < AWS_CLAIM_LIFETIME:
        raise ValidationError(
            "min_valid_seconds",
            f"must be from 0 to {AWS_CLAIM_LIFETIME - 1} (a claim lives {AWS_CLAIM_LIFETIME} s; got {minimum})",
        )
    cert_path, key_path = params.get("certificate_path"), params.get("private_key_path")
    for field, path in (("certificate_path", cert_path), ("private_key_path", key_path)):
        if not path:
            raise ValidationError(field, "is required")
        _directory_of(path, field)
    if os.path.abspath(cert_path) == os.path.abspath(key_path):
        raise ValidationError("private_key_path", "must differ from certificate_path")
    return DesiredClaim(name, cert_path, key_path, int(minimum), bool(params.get("force")))


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def claim_view(name: str, cert_id: Optional[str], expiration: Optional[datetime.datetime]) -> dict[str, Any]:
    return {
        "template_name": name,
        "certificate_id": cert_id,
        "expiration": _iso(expiration) if expiration else None,
    }


def _not_after(certificate: Any) -> datetime.datetime:
    # cryptography 42 added the timezone-aware property; 41 (still supported) has only the naive one.
    if hasattr(certificate, "not_valid_after_utc"):
        return certificate.not_valid_after_utc
    return certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def read_local_claim(desired: DesiredClaim) -> Optional[dict[str, Any]]:
    """The claim the files hold (with ``expires`` as a datetime), or None when there is no complete claim."""
    cert_pem, key_pem, record = (
        read_file(desired.certificate_path),
        read_file(desired.private_key_path),
        read_file(desired.record_path),
    )
    if cert_pem is None or key_pem is None or record is None:
        return None
    try:
        details = json.loads(record)
        certificate = load_certificate(cert_pem)
        if certificate_public_key(cert_pem) != private_key_public_key(key_pem):
            return None
    except (CryptoError, ValueError):
        return None  # unreadable or mismatched: replaced by a new claim, never trusted
    if not isinstance(details, dict):
        return None
    expires = _not_after(certificate)
    return {
        **claim_view(str(details.get("template_name")), certificate_id(cert_pem), expires),
        "expires": expires,
    }


def check_template(client: Any, name: str) -> dict[str, Any]:
    """The template, if it can provision devices with a claim; ValidationError naming what to fix otherwise."""
    try:
        template = client.describe_provisioning_template(templateName=name)
    except Exception as error:
        if is_error(error, "ResourceNotFoundException"):
            raise ValidationError(
                "template_name", f"no provisioning template {name} in this account and region; create it first"
            ) from None
        raise
    kind = template.get("type") or "FLEET_PROVISIONING"
    if kind != "FLEET_PROVISIONING":
        raise ValidationError(
            "template_name",
            f"{name} is a {kind} template; provisioning claims are made for FLEET_PROVISIONING templates only",
        )
    if not template.get("enabled"):
        raise ValidationError(
            "template_name",
            f"{name} is disabled, so a claim could not provision a device; enable it first "
            "(iotfleet.provisioning.provisioning_template with enabled: true)",
        )
    return template


def _public(claim: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    return None if claim is None else {k: v for k, v in claim.items() if k != "expires"}


def ensure_present(
    client: Any, desired: DesiredClaim, check_mode: bool, now: Optional[datetime.datetime] = None
) -> Ensured:
    """Keep a claim that is still good, else make and write a new one."""
    check_template(client, desired.template_name)
    now = now or _now()
    before = read_local_claim(desired)
    if (
        before is not None
        and not desired.force
        and before["template_name"] == desired.template_name
        and (before["expires"] - now).total_seconds() >= desired.min_valid_seconds
    ):
        return Ensured(False, _public(before), _public(before))
    if check_mode:
        # The id and the expiration are known only from AWS's answer.
        return Ensured(True, _public(before), claim_view(desired.template_name, None, None))
    return Ensured(True, _public(before), _create(client, desired))


def _create(client: Any, desired: DesiredClaim) -> dict[str, Any]:
    pending = [
        PendingFile(desired.private_key_path, CLAIM_FILE_MODE),
        PendingFile(desired.certificate_path, CLAIM_FILE_MODE),
        PendingFile(desired.record_path, CLAIM_FILE_MODE),
    ]
    try:
        answer = call_once(client, "create_provisioning_claim", templateName=desired.template_name)
        pending[0].commit(answer["keyPair"]["PrivateKey"].encode())  # the key exists only in this answer
        pending[1].commit(answer["certificatePem"].encode())
        record = {"template_name": desired.template_name, "certificate_id": answer["certificateId"]}
        pending[2].commit((json.dumps(record, indent=2) + "\n").encode())
    finally:
        for item in pending:
            item.discard()
    expiration = answer.get("expiration")
    if not isinstance(expiration, datetime.datetime):
        expiration = _not_after(load_certificate(answer["certificatePem"]))
    return claim_view(desired.template_name, answer["certificateId"], expiration)


def seconds_left(claim: Optional[dict[str, Any]], now: Optional[datetime.datetime] = None) -> Optional[int]:
    if not claim or not claim.get("expiration"):
        return None
    expires = datetime.datetime.fromisoformat(claim["expiration"].replace("Z", "+00:00"))
    return max(0, int((expires - (now or _now())).total_seconds()))
