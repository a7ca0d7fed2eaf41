# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading certificates: their views, and finding the one a task manages (by id, path or public key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    DesiredCertificate,
    StateConflictError,
    View,
    Warn,
    _no_warn,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CryptoError,
    certificate_public_key,
)

# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def describe_certificate(client: Any, cert_id: str) -> Optional[Dict[str, Any]]:
    """DescribeCertificate's certificateDescription, or None when there is no such certificate."""
    return iot_access.describe_certificate(iot_access.as_call(client), cert_id)


def list_certificate_things(client: Any, arn: str) -> List[str]:
    return sorted(iot_access.certificate_things(iot_access.as_call(client), arn))


def list_certificate_policies(client: Any, arn: str) -> List[str]:
    return sorted(set(iot_access.certificate_policy_names(iot_access.as_call(client), arn)))


def certificate_view(description: Mapping[str, Any], things: List[str], policies: List[str]) -> View:
    """What the module returns and diffs: the managed fields plus a few identifying ones."""
    return {
        "certificate_id": description.get("certificateId"),
        "certificate_arn": description.get("certificateArn"),
        "status": description.get("status"),
        "creation_date": _iso(description.get("creationDate")),
        "ca_certificate_id": description.get("caCertificateId"),
        "things": sorted(things),
        "policies": sorted(policies),
    }


@dataclass
class RemoteCertificate:
    view: View
    pem: Optional[str]


def read_certificate(
    client: Any, cert_id: str, description: Optional[Mapping[str, Any]] = None
) -> Optional[RemoteCertificate]:
    """The certificate with its things and policies, or None when it does not exist."""
    if description is None:
        description = describe_certificate(client, cert_id)
    if description is None:
        return None
    arn = description["certificateArn"]
    view = certificate_view(description, list_certificate_things(client, arn), list_certificate_policies(client, arn))
    return RemoteCertificate(view=view, pem=description.get("certificatePem"))


def list_thing_certificate_arns(client: Any, thing: str) -> Optional[List[str]]:
    """Certificate ARNs attached to ``thing``, or None when the thing does not exist."""
    principals = iot_access.thing_principals(iot_access.as_call(client), thing)
    return None if principals is None else [p for p in principals if iot_access.certificate_id_of_arn(p)]


def certificate_id_from_arn(arn: str) -> str:
    return iot_access.certificate_id_of_arn(arn) or arn.rsplit("/", 1)[-1]


_STATUS_PREFERENCE = {"ACTIVE": 0, "INACTIVE": 1}


def choose_certificate(descriptions: List[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """Among certificates with the same key: the ACTIVE one, else INACTIVE, else any; the newest first."""
    if not descriptions:
        return None

    def rank(d: Mapping[str, Any]) -> Tuple[int, float]:
        created = d.get("creationDate")
        stamp = created.timestamp() if hasattr(created, "timestamp") else 0.0
        return (_STATUS_PREFERENCE.get(d.get("status") or "", 2), -stamp)

    return sorted(descriptions, key=rank)[0]


@dataclass
class Location:
    certificate: Optional[RemoteCertificate] = None
    # How it was found: "certificate_id", "certificate_path" or "thing".
    found_by: Optional[str] = None
    thing_checked: bool = False
    thing_missing: bool = False


def locate_certificate(client: Any, desired: DesiredCertificate, warn: Warn = _no_warn) -> Location:
    """Find the certificate this task manages, with reads only."""
    if desired.certificate_id:
        return Location(certificate=read_certificate(client, desired.certificate_id), found_by="certificate_id")

    location = Location()
    if desired.path_certificate_pem is not None:
        found = _locate_by_path(client, desired)
        if found is not None:
            return Location(certificate=found, found_by="certificate_path")

    if desired.thing and desired.public_key is not None:
        arns = list_thing_certificate_arns(client, desired.thing)
        location.thing_checked = True
        if arns is None:
            location.thing_missing = True
            return location
        matches = []
        for arn in arns:
            description = describe_certificate(client, certificate_id_from_arn(arn))
            if description is None or not description.get("certificatePem"):
                continue
            try:
                key = certificate_public_key(description["certificatePem"])
            except CryptoError:
                warn(f"certificate {description.get('certificateId')} attached to {desired.thing} could not be parsed")
                continue
            if key == desired.public_key:
                matches.append(description)
        chosen = choose_certificate(matches)
        if chosen is not None:
            if len(matches) > 1:
                others = ", ".join(sorted(d["certificateId"] for d in matches if d is not chosen))
                warn(
                    f"{len(matches)} certificates attached to thing {desired.thing} carry the public key of "
                    f"{desired.public_key_option}; managing {chosen['certificateId']} ({chosen.get('status')}), "
                    f"not {others}"
                )
            return Location(
                certificate=read_certificate(client, chosen["certificateId"], chosen),
                found_by="thing",
            )
    return location


def _locate_by_path(client: Any, desired: DesiredCertificate) -> Optional[RemoteCertificate]:
    path_id = desired.path_certificate_id
    new_key = desired.source == "create_keys" and not desired.private_key_exists
    if desired.public_key is not None:
        belongs = desired.path_public_key == desired.public_key
    else:
        # Without a key to compare with, the file names the certificate, except when a new key is to be made.
        belongs = not new_key or desired.state == "absent"
    if belongs:
        # None when the certificate is gone: the stale file is then overwritten by a new certificate.
        return read_certificate(client, path_id)
    if desired.state != "present":
        return None
    existing = describe_certificate(client, path_id)
    if existing is None:
        # A stale file from a certificate that is gone: it will be overwritten.
        return None
    if new_key:
        reason = f"private_key_path {desired.private_key_path} does not exist, so its key is lost"
    else:
        reason = f"its public key does not match {desired.public_key_option}"
    raise StateConflictError(
        "certificate_path",
        f"{desired.certificate_path} holds certificate {path_id} (status {existing.get('status')} in AWS IoT) but "
        f"{reason}; refusing to make a second certificate and overwrite the file. Remove that certificate first "
        f"(state=absent, certificate_id={path_id}) or choose another certificate_path",
    )
