# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Intent records of certificate-creating calls, and what the next run proves they made."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    Location,
    choose_certificate,
    describe_certificate,
    list_certificate_policies,
    list_certificate_things,
    read_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    PAGE_SIZE,
    DesiredCertificate,
    Warn,
    _no_warn,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    PRIVATE_KEY_MODE,
    CryptoError,
    certificate_public_key,
    is_certificate_id,
    read_file,
    write_file_atomic,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error

# ---------------------------------------------------------------------------
# Intent records of certificate-creating calls
# ---------------------------------------------------------------------------

INTENT_SUFFIX = ".create-intent.json"
# A certificate made by the recorded call is at most this much older or newer than the record says (clock skew
# between this host and AWS).
INTENT_SKEW_SECONDS = 120
# How long the recorded call may have run when the record does not say when it ended (the process was killed):
# botocore's connect and read timeouts and the throttling retries call_once still allows, with a wide margin.
INTENT_CALL_SECONDS = 900
CREATE_OPERATIONS = {"create_keys": "CreateKeysAndCertificate", "csr": "CreateCertificateFromCsr"}


def intent_path(desired: DesiredCertificate) -> Optional[str]:
    """The intent record of this task: beside the key of create_keys, else beside the certificate file of a CSR."""
    if desired.source in ("create_keys", None) and desired.private_key_path:
        anchor = desired.private_key_path
    elif desired.source in ("csr", None) and desired.certificate_path:
        anchor = desired.certificate_path
    else:
        return None
    directory, base = os.path.split(os.path.abspath(anchor))
    return os.path.join(directory, f".{base}{INTENT_SUFFIX}")


def _load_intent(desired: DesiredCertificate) -> None:
    path = desired.intent_path = intent_path(desired)
    if path is None:
        return
    try:
        data = read_file(path)
    except OSError as e:
        raise ValidationError(
            "private_key_path" if desired.private_key_path else "certificate_path",
            f"cannot read the intent record {path}: {e.strerror or e}",
        ) from None
    if data is None:
        return
    try:
        record = json.loads(data.decode("utf-8"))
        record["started"] = float(record["started"])
        if record.get("ended") is not None:
            record["ended"] = float(record["ended"])
        if record.get("certificate_id") is not None and not is_certificate_id(record["certificate_id"]):
            raise ValueError("not a certificate id")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        # Unreadable: the call it recorded could have been at any time.
        record = {"started": None, "unreadable": True}
    desired.intent = record


def _write_intent(desired: DesiredCertificate, record: Dict[str, Any]) -> None:
    write_file_atomic(desired.intent_path, json.dumps(record, sort_keys=True).encode("ascii"), PRIVATE_KEY_MODE)


def _update_intent(desired: DesiredCertificate, record: Optional[Dict[str, Any]], **changes: Any) -> bool:
    """Add to the record of the call under way; best effort (a full disk must not hide the call's own error)."""
    if record is None:
        return False
    record.update(changes)
    if not desired.intent_path:
        return False
    try:
        _write_intent(desired, record)
    except OSError:
        return False
    return True


def clear_intent(desired: DesiredCertificate) -> None:
    if desired.intent_path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(desired.intent_path)


def _begin_intent(desired: DesiredCertificate) -> Optional[Dict[str, Any]]:
    """Record, durably and before the call, that a certificate-creating call starts now.

    Without a path for the record (a CSR with only ``thing``) it is kept in memory: this run can still find what
    the call made by the CSR's public key.
    """
    if desired.source not in CREATE_OPERATIONS:
        return None
    record = {"operation": CREATE_OPERATIONS[desired.source], "started": time.time()}
    if not desired.intent_path:
        return record
    try:
        _write_intent(desired, record)
    except OSError as e:
        raise ValidationError(
            "private_key_path" if desired.source == "create_keys" else "certificate_path",
            f"cannot write the intent record {desired.intent_path}: {e.strerror or e}. No certificate was created",
        ) from None
    return record


def _timestamp(value: Any) -> Optional[float]:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _intent_window(record: Mapping[str, Any]) -> Tuple[float, float]:
    if record.get("unreadable") or record.get("started") is None:
        return float("-inf"), float("inf")
    started = record["started"]
    ended = record.get("ended") or started + INTENT_CALL_SECONDS
    return started - INTENT_SKEW_SECONDS, ended + INTENT_SKEW_SECONDS


def _carries_key(description: Mapping[str, Any], public_key: bytes) -> bool:
    try:
        return certificate_public_key(description.get("certificatePem") or "") == public_key
    except CryptoError:
        return False


def _window_certificates(client: Any, record: Mapping[str, Any], managed: Optional[str]) -> List[Mapping[str, Any]]:
    """The INACTIVE certificates (list items) created within the recorded call's window, but ``managed``."""
    low, high = _intent_window(record)
    found = []
    for item in paginate(client, "list_certificates", "certificates", pageSize=PAGE_SIZE):
        created = _timestamp(item.get("creationDate"))
        if item.get("status") != "INACTIVE" or item["certificateId"] == managed:
            continue
        if created is None or low <= created <= high:
            found.append(item)
    return found


@dataclass
class IntentOutcome:
    # Certificates the record proves this task made, INACTIVE and attached to nothing: deleted (predicted in
    # check mode).
    deleted: List[str] = field(default_factory=list)
    # INACTIVE certificates attached to nothing, created while the recorded call went unanswered, when no key
    # can prove whose they are: reported only.
    suspected: List[str] = field(default_factory=list)

    def result(self) -> Dict[str, Any]:
        return {"orphaned_certificates_deleted": self.deleted, "orphaned_certificates_suspected": self.suspected}


def _attached_to_nothing(client: Any, arn: str) -> bool:
    return not list_certificate_things(client, arn) and not list_certificate_policies(client, arn)


def resolve_intent(
    client: Any, desired: DesiredCertificate, location: Location, check_mode: bool, warn: Warn = _no_warn
) -> IntentOutcome:
    """Find what the call of an unfinished earlier run made (``desired.intent``), with proof of ownership.

    Proof is the certificate id the record holds (written once the answer arrived), or the public key of the key
    file or CSR. A proven certificate becomes the task's certificate when none was located (``location`` is
    updated); the other proven ones that are INACTIVE and attached to nothing are deleted. Without a key (the
    answer of CreateKeysAndCertificate was lost, and its key with it), the INACTIVE certificates attached to
    nothing that were created in the call's time window are only reported: nothing proves they are this task's.
    """
    outcome = IntentOutcome()
    record = desired.intent
    if record is None:
        return outcome
    managed = location.certificate.view["certificate_id"] if location.certificate is not None else None
    proven: List[Mapping[str, Any]] = []
    unproven: List[Mapping[str, Any]] = []
    recorded = record.get("certificate_id")
    if recorded:
        # The answer arrived: that call made this certificate and no other (call_once never repeats it).
        description = describe_certificate(client, recorded)
        key_matches = description is not None and (
            desired.public_key is None or _carries_key(description, desired.public_key)
        )
        if key_matches and recorded != managed:
            proven.append(description)
    else:
        # Only a CreateKeysAndCertificate of a known time loses a key with its answer; a CSR's certificate is told
        # by its public key, and an unreadable record has no window worth reporting from.
        keys_lost = record.get("operation") == CREATE_OPERATIONS["create_keys"] and record.get("started") is not None
        for item in _window_certificates(client, record, managed):
            if desired.public_key is None:
                if keys_lost:
                    unproven.append(item)
                continue
            description = describe_certificate(client, item["certificateId"])
            if description is not None and _carries_key(description, desired.public_key):
                proven.append(description)

    if location.certificate is None and desired.public_key is not None and proven:
        chosen = choose_certificate(proven)
        proven = [d for d in proven if d is not chosen]
        location.certificate = read_certificate(client, chosen["certificateId"], chosen)
        location.found_by = "intent_record"

    for description in proven:
        if description.get("status") == "INACTIVE" and _attached_to_nothing(client, description["certificateArn"]):
            outcome.deleted.append(description["certificateId"])
    for item in unproven:
        if _attached_to_nothing(client, item["certificateArn"]):
            outcome.suspected.append(item["certificateId"])
    if not check_mode:
        for cert_id in list(outcome.deleted):
            try:
                client.delete_certificate(certificateId=cert_id)
            except ClientError as e:
                if is_error(e, "ResourceNotFoundException"):
                    continue
                if not is_error(e, "DeleteConflictException", "CertificateStateException"):
                    raise
                # Attached or activated since it was read: in use after all, so it stays.
                outcome.deleted.remove(cert_id)
    if outcome.suspected:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record["started"]))
        warn(
            f"{desired.intent_path} records a {record['operation']} call started "
            f"{when} whose answer (and with it the private key) was lost. INACTIVE certificates attached to "
            f"nothing were created meanwhile: {', '.join(outcome.suspected)}. If that call made one of them, it is "
            "useless without its key; nothing proves they are this task's (another process may have made them), "
            "so they were left alone: check them and remove them with state=absent and certificate_id"
        )
    return outcome
