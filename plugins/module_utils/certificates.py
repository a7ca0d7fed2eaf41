# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate family: device certificates, their thing attachments and policies.

Functions, in the order a module uses them:

* ``validate_certificate(params) -> DesiredCertificate``: checks every option and
  reads the local files (CSR, PEM, the certificate and key of an earlier run)
  before any client exists; raises ``ValidationError(field, rule)``.
* ``locate_certificate(client, desired)``: finds the certificate this task is
  about without minting one: by id (given, or the SHA-256 of a PEM), by the
  certificate an earlier run wrote to ``certificate_path``, or by the public key
  among the certificates attached to ``thing``.
* ``ensure_present`` / ``ensure_absent(client, desired, check_mode)`` return
  ``(changed, before, after)``; in check mode they predict ``after`` from the same
  plan without calling anything that changes state.

A new certificate is created INACTIVE and activated last, after its files are
written and its thing and policies attached, so a failure half-way never leaves an
ACTIVE certificate behind; the private key of CreateKeysAndCertificate and the
certificate PEM are written before anything else can fail, so the next run finds
the certificate again and completes it.

Creating calls are not idempotent (each CreateKeysAndCertificate or
CreateCertificateFromCsr makes another certificate), so they are never repeated
after a lost answer (``call_once``), and an intent record beside the key (or, for a
CSR, the certificate file) is written before the call: its start time, later the id
of the certificate it made. It is removed when the task succeeds. While it exists,
the next run finds what that call made: the recorded id, or the INACTIVE
certificates created in its time window that carry the key or the CSR's public key
(proof that they are this task's); it completes one of them and deletes the other
proven ones that are attached to nothing. A certificate made by a call whose key
was lost carries nothing that proves whose it is: those in the window that are
INACTIVE and attached to nothing are reported, never deleted.

The same file holds ``thing_principal`` (attachments of any principal to a thing)
and ``certificate_info`` (queries).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import (
    AwsCallError,
    BotoConnectionError,
    BotoCoreError,
    ClientError,
    ValidationError,
    call_once,
    is_error,
    paginate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CERTIFICATE_MODE,
    PRIVATE_KEY_MODE,
    CryptoError,
    PendingFile,
    certificate_id,
    certificate_public_key,
    csr_public_key,
    file_differs,
    is_certificate_id,
    private_key_public_key,
    read_file,
    write_file_atomic,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    check_policy_name,
    check_thing_name,
    validate_declared,
)

# UpdateCertificate cannot set PENDING_TRANSFER or PENDING_ACTIVATION; REGISTER_INACTIVE is deprecated.
SETTABLE_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")
ALL_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION")
SOURCE_OPTIONS = ("create_keys", "csr", "csr_path", "certificate_pem", "certificate_pem_path", "certificate_id")

# botocore IoT model: CertificateSigningRequest 1-4096, CertificatePem 1-65536, ThingName, PolicyName.
CSR_MAX_LENGTH = 4096
PEM_MAX_LENGTH = 65536
# AWS IoT quota: at most 10 policies attached to one certificate.
MAX_POLICIES_PER_CERTIFICATE = 10
PAGE_SIZE = 250

# The waits between DeleteCertificate attempts (the schedule lives in retry.py).
DELETE_CONFLICT_WAITS = retry.CERTIFICATE_DELETE.waits

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


def _writable_target(path: str, field_name: str) -> None:
    if os.path.isdir(path):
        raise ValidationError(field_name, f"{path} is a directory; give a file path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValidationError(field_name, f"the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValidationError(field_name, f"the directory {directory} is not writable")


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
            text = _check_length(params["csr"], "csr", CSR_MAX_LENGTH)
        else:
            text = _read_text_option(params["csr_path"], "csr_path", CSR_MAX_LENGTH)
        desired.public_key = _parse(csr_public_key, text, option)
        desired.public_key_option = option
        desired.csr = text
    elif option in ("certificate_pem", "certificate_pem_path"):
        desired.source = "pem"
        if option == "certificate_pem":
            text = _check_length(params["certificate_pem"], "certificate_pem", PEM_MAX_LENGTH)
        else:
            text = _read_text_option(params["certificate_pem_path"], "certificate_pem_path", PEM_MAX_LENGTH)
        desired.certificate_id = _parse(certificate_id, text, option)
        desired.certificate_pem = text
        if params.get("ca_certificate_pem") is not None:
            ca_text = _check_length(params["ca_certificate_pem"], "ca_certificate_pem", PEM_MAX_LENGTH)
            desired.ca_certificate_id = _parse(certificate_id, ca_text, "ca_certificate_pem")
            desired.ca_certificate_pem = ca_text
    elif option == "certificate_id":
        desired.source = "id"
        desired.certificate_id = validate_certificate_id(params["certificate_id"])

    if desired.private_key_path:
        _load_private_key_file(desired)
    if desired.certificate_path:
        _load_certificate_file(desired)
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


# ---------------------------------------------------------------------------
# Present
# ---------------------------------------------------------------------------


def predicted_new_view(desired: DesiredCertificate) -> View:
    return {
        "certificate_id": desired.certificate_id if desired.source == "pem" else None,
        "certificate_arn": None,
        "status": effective_status(desired) or "ACTIVE",
        "creation_date": None,
        "ca_certificate_id": desired.ca_certificate_id,
        "things": [desired.thing] if desired.thing else [],
        "policies": list(desired.policies or []),
    }


@dataclass
class Plan:
    """The changes that bring an existing certificate to the desired state."""

    attach_thing: Optional[str] = None
    attach_policies: List[str] = field(default_factory=list)
    detach_policies: List[str] = field(default_factory=list)
    new_status: Optional[str] = None
    write_certificate_file: bool = False

    @property
    def api_changes(self) -> bool:
        return bool(self.attach_thing or self.attach_policies or self.detach_policies or self.new_status)

    @property
    def changed(self) -> bool:
        return self.api_changes or self.write_certificate_file


def effective_status(desired: DesiredCertificate) -> Optional[str]:
    """The status to enforce: the option, else ACTIVE for a certificate this task makes or registers.

    A certificate from create_keys, csr or certificate_pem is the device's working certificate, ACTIVE unless the
    task says otherwise; this is also what lets a re-run activate a certificate whose creation stopped half-way
    (it is made INACTIVE and activated last). With certificate_id, or without a source, an unset status leaves
    the certificate's status alone.
    """
    if desired.status:
        return desired.status
    return "ACTIVE" if desired.source in ("create_keys", "csr", "pem") else None


def plan_certificate(desired: DesiredCertificate, before: View, remote_pem: Optional[str]) -> Tuple[Plan, View]:
    """What to change on an existing certificate, and the view it would have afterwards."""
    plan = Plan()
    after = dict(before, things=list(before["things"]), policies=list(before["policies"]))
    if desired.thing and desired.thing not in before["things"]:
        plan.attach_thing = desired.thing
        after["things"] = sorted([*before["things"], desired.thing])
    if desired.policies is not None:
        current = set(before["policies"])
        wanted = set(desired.policies)
        plan.attach_policies = sorted(wanted - current)
        plan.detach_policies = sorted(current - wanted) if desired.purge_policies else []
        after["policies"] = sorted((current | wanted) - set(plan.detach_policies))
    wanted_status = effective_status(desired)
    if wanted_status and wanted_status != before["status"]:
        plan.new_status = wanted_status
        after["status"] = wanted_status
    if desired.certificate_path and remote_pem:
        plan.write_certificate_file = file_differs(desired.certificate_path, remote_pem.encode("ascii"))
    return plan, after


def ensure_present(
    client: Any,
    desired: DesiredCertificate,
    check_mode: bool,
    warn: Warn = _no_warn,
    report: Optional[Dict[str, Any]] = None,
) -> Tuple[bool, Optional[View], Optional[View]]:
    """``report``, when given, receives the orphaned certificates found through an intent record."""
    location = locate_certificate(client, desired, warn)
    intent = resolve_intent(client, desired, location, check_mode, warn)
    if report is not None:
        report.update(intent.result())
    if not check_mode:
        _remove_stale_temporaries(desired)
    if location.certificate is None:
        check_policies_exist(client, desired, desired.policies or [], check_mode, "No certificate was created")
        changed, before, after = create_certificate(client, desired, location, check_mode, warn)
    else:
        plan, _predicted = plan_certificate(desired, location.certificate.view, location.certificate.pem)
        check_policies_exist(client, desired, plan.attach_policies, check_mode, "Nothing was changed")
        changed, before, after = converge_certificate(client, desired, location.certificate, check_mode)
    if not check_mode:
        clear_intent(desired)
    return changed or bool(intent.deleted), before, after


_TEMPORARY = re.compile(r"^\.(?P<base>.+)\.[A-Za-z0-9_]{8}\.tmp$")


def _remove_stale_temporaries(desired: DesiredCertificate) -> None:
    """Temporary files a killed run left beside the key and certificate (PendingFile: .<file>.<random>.tmp)."""
    for path in (desired.private_key_path, desired.certificate_path):
        if not path:
            continue
        directory, base = os.path.split(os.path.abspath(path))
        with contextlib.suppress(OSError):
            for entry in os.listdir(directory):
                match = _TEMPORARY.match(entry)
                if match and match.group("base") == base:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(directory, entry))


def check_policies_exist(
    client: Any, desired: DesiredCertificate, names: List[str], check_mode: bool, outcome: str
) -> None:
    """Every policy to attach exists, read before the first change: a missing one would fail AttachPolicy after
    the certificate was made. In check mode a policy in declared_resources stands in for an earlier task's."""
    for name in names:
        if check_mode and name in desired.declared_policies:
            continue
        try:
            client.get_policy(policyName=name)
        except ClientError as e:
            if not is_error(e, "ResourceNotFoundException"):
                raise
            raise StateConflictError(
                "policies",
                f"policy {name} does not exist; create it first (iotfleet.provisioning.policy), or list it in "
                f"declared_resources.policies when an earlier task of the play creates it (check mode only). {outcome}",
            ) from None


def converge_certificate(
    client: Any, desired: DesiredCertificate, current: RemoteCertificate, check_mode: bool
) -> Tuple[bool, View, View]:
    before = current.view
    plan, predicted = plan_certificate(desired, before, current.pem)
    if check_mode or not plan.changed:
        return plan.changed, before, predicted
    cert_id, arn = before["certificate_id"], before["certificate_arn"]
    if plan.attach_thing:
        client.attach_thing_principal(thingName=plan.attach_thing, principal=arn)
    # Detach first: attaching first could pass the 10-policy limit while swapping.
    for policy in plan.detach_policies:
        client.detach_policy(policyName=policy, target=arn)
    for policy in plan.attach_policies:
        client.attach_policy(policyName=policy, target=arn)
    if plan.new_status:
        _update_status(client, cert_id, before["status"], plan.new_status)
    if plan.write_certificate_file:
        _write_certificate_file(desired.certificate_path, current.pem or "")
    after = before
    if plan.api_changes:
        reread = read_certificate(client, cert_id)
        after = reread.view if reread is not None else predicted
    return True, before, after


def _update_status(client: Any, cert_id: str, current: str, wanted: str) -> None:
    try:
        client.update_certificate(certificateId=cert_id, newStatus=wanted)
    except ClientError as e:
        if current != "REVOKED" or not is_error(e, "CertificateStateException"):
            raise
        base = AwsCallError.from_client_error(e)
        raise AwsCallError(
            base.operation,
            base.code,
            base.message,
            base.request_id,
            hint=f"Certificate {cert_id} is REVOKED and AWS IoT does not change a revoked certificate to {wanted}: "
            "remove it (state=absent) so that the task can make a new one, or set status REVOKED.",
        ) from None


def _write_certificate_file(path: str, pem: str) -> None:
    try:
        write_file_atomic(path, pem.encode("ascii"), CERTIFICATE_MODE)
    except OSError as e:
        raise ValidationError("certificate_path", f"could not write {path}: {e.strerror or e}") from None


def create_certificate(
    client: Any, desired: DesiredCertificate, location: Location, check_mode: bool, warn: Warn = _no_warn
) -> Tuple[bool, None, View]:
    _refuse_to_create(desired, location)
    if desired.thing and not location.thing_checked:
        location.thing_missing = list_thing_certificate_arns(client, desired.thing) is None
    if location.thing_missing:
        if not check_mode:
            raise StateConflictError(
                "thing",
                f"{desired.thing} does not exist; create it first (iotfleet.provisioning.thing). "
                "No certificate was created",
            )
        warn(f"thing {desired.thing} does not exist (yet); the prediction assumes an earlier task creates it")
    predicted = predicted_new_view(desired)
    if check_mode:
        return True, None, predicted

    final_status = effective_status(desired) or "ACTIVE"
    # Always create INACTIVE and activate last, once the files are written and the thing and policies attached:
    # whatever fails in between (even a response lost after AWS made the certificate, which botocore's retry
    # would answer with a second certificate) leaves no ACTIVE certificate that nothing uses.
    created_status = "INACTIVE"

    # Open the files before the call: an unwritable directory fails here, while no certificate exists yet.
    key_file = cert_file = None
    try:
        if desired.source == "create_keys":
            key_file = _pending(desired.private_key_path, PRIVATE_KEY_MODE, "private_key_path")
        if desired.certificate_path and desired.source != "pem":
            cert_file = _pending(desired.certificate_path, CERTIFICATE_MODE, "certificate_path")
        record = _begin_intent(desired)
        response = _create_call(client, desired, key_file, record)
    except BaseException:
        if cert_file is not None:
            cert_file.discard()
        raise
    finally:
        if key_file is not None:
            key_file.discard()  # a no-op once the key was committed
    cert_id = response["certificateId"]
    arn = response["certificateArn"]
    done: List[str] = []
    try:
        try:
            if cert_file is not None:
                cert_file.commit(response["certificatePem"].encode("ascii"))
                done.append(f"its PEM was written to {desired.certificate_path}")
        finally:
            if cert_file is not None:
                cert_file.discard()
        if desired.thing:
            client.attach_thing_principal(thingName=desired.thing, principal=arn)
            done.append(f"it was attached to thing {desired.thing}")
        for policy in desired.policies or []:
            client.attach_policy(policyName=policy, target=arn)
            done.append(f"policy {policy} was attached")
        if final_status != created_status:
            client.update_certificate(certificateId=cert_id, newStatus=final_status)
    except (ClientError, OSError) as e:
        raise _after_creation_error(e, cert_id, created_status, desired, done, record) from None

    current = read_certificate(client, cert_id)
    after = current.view if current is not None else dict(predicted, certificate_id=cert_id, certificate_arn=arn)
    # A registered PEM is written as AWS stores it, so that later runs compare like with like.
    stored_pem = current.pem if current is not None else None
    write_pem = desired.certificate_path and desired.source == "pem" and stored_pem
    if write_pem and file_differs(desired.certificate_path, stored_pem.encode("ascii")):
        _write_certificate_file(desired.certificate_path, stored_pem)
    return True, None, after


def _pending(path: str, mode: int, field_name: str) -> PendingFile:
    try:
        return PendingFile(path, mode)
    except OSError as e:
        raise ValidationError(
            field_name, f"cannot write {path}: {e.strerror or e}. No certificate was created"
        ) from None


def _refuse_to_create(desired: DesiredCertificate, location: Location) -> None:
    if desired.source == "id":
        raise StateConflictError(
            "certificate_id",
            f"no certificate {desired.certificate_id} exists in this account and region; a certificate_id can "
            "only manage an existing certificate",
        )
    if desired.source is None:
        if desired.path_certificate_pem is not None:
            raise StateConflictError(
                "certificate_path",
                f"{desired.certificate_path} holds certificate {desired.path_certificate_id}, which does not exist "
                "in AWS IoT (or does not match the key); give certificate_pem_path to register it, or a source "
                "(create_keys, csr, ...) to make a new one",
            )
        raise StateConflictError(
            "private_key_path",
            f"no certificate with the public key of {desired.private_key_path} is attached to thing {desired.thing}",
        )
    if desired.source == "create_keys" and desired.private_key_exists:
        where = []
        if desired.certificate_path:
            where.append(f"certificate_path {desired.certificate_path}")
        if desired.thing:
            where.append(f"the certificates attached to thing {desired.thing}")
        raise StateConflictError(
            "private_key_path",
            f"{desired.private_key_path} already exists but no certificate with its public key was found (looked at "
            f"{' and '.join(where)}); refusing to overwrite the key. Move the file away to make a new key and "
            "certificate, or give certificate_id to manage an existing certificate",
        )


def _create_call(
    client: Any, desired: DesiredCertificate, key_file: Optional[PendingFile], record: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    """The AWS call that makes the certificate, INACTIVE; for create_keys the key is written at once.

    CreateKeysAndCertificate and CreateCertificateFromCsr make a new certificate on every call: they are not
    repeated after a lost answer (``call_once``). The id of the new certificate goes into the intent record as
    soon as the key is on disk.
    """
    if desired.source == "create_keys":
        try:
            response = call_once(client, "create_keys_and_certificate", setAsActive=False)
        except (ClientError, BotoCoreError) as e:
            raise _unanswered_create_error(e, desired, record) from None
        key_pair = response.pop("keyPair", None) or {}
        private_key = key_pair.get("PrivateKey")
        try:
            if not private_key:
                raise OSError("the response held no private key")
            key_file.commit(private_key.encode("ascii"))
        except OSError as e:
            cert_id = response["certificateId"]
            if _discard_unusable_certificate(client, cert_id):
                clear_intent(desired)
                outcome = "was deactivated and deleted"
            elif _update_intent(desired, record, certificate_id=cert_id):
                outcome = f"could not be deleted now; {desired.intent_path} records it and the next run deletes it"
            else:
                outcome = f"could not be deleted: remove it with state=absent and certificate_id={cert_id}"
            raise ValidationError(
                "private_key_path",
                f"could not write {desired.private_key_path} ({e.strerror or e}); the new certificate "
                f"{cert_id} is useless without its key and {outcome}",
            ) from None
        _update_intent(desired, record, certificate_id=response["certificateId"])
        return response
    if desired.source == "csr":
        try:
            response = call_once(
                client, "create_certificate_from_csr", certificateSigningRequest=desired.csr, setAsActive=False
            )
        except (ClientError, BotoCoreError) as e:
            made = _made_from_csr(client, desired, record) if _ran_maybe(e) else None
            if made is None:
                raise _unanswered_create_error(e, desired, record) from None
            response = made
        _update_intent(desired, record, certificate_id=response["certificateId"])
        return response
    try:
        if desired.ca_certificate_pem:
            return client.register_certificate(
                certificatePem=desired.certificate_pem, caCertificatePem=desired.ca_certificate_pem, status="INACTIVE"
            )
        return client.register_certificate_without_ca(certificatePem=desired.certificate_pem, status="INACTIVE")
    except ClientError as e:
        # Registering is idempotent by id: "already exists" right after it was looked for is a retry of an attempt
        # whose answer was lost (or a concurrent registration of the same PEM): the certificate is there.
        if not is_error(e, "ResourceAlreadyExistsException"):
            raise
        description = describe_certificate(client, desired.certificate_id)
        if description is None:
            raise
        return {"certificateId": description["certificateId"], "certificateArn": description["certificateArn"]}


def _made_from_csr(
    client: Any, desired: DesiredCertificate, record: Optional[Dict[str, Any]]
) -> Optional[Dict[str, Any]]:
    """After a CreateCertificateFromCsr whose answer was lost: the certificate it made, found by the CSR's public
    key among the INACTIVE ones created since the call started (as a CreateCertificateFromCsr answer), or None."""
    if record is None or desired.public_key is None:
        return None
    window = dict(record, ended=time.time())
    try:
        for item in _window_certificates(client, window, None):
            description = describe_certificate(client, item["certificateId"])
            if description is not None and _carries_key(description, desired.public_key):
                return {
                    "certificateId": description["certificateId"],
                    "certificateArn": description["certificateArn"],
                    "certificatePem": description["certificatePem"],
                }
    except (ClientError, BotoCoreError):
        return None
    return None


def _discard_unusable_certificate(client: Any, cert_id: str) -> bool:
    """Delete a certificate whose key could not be written; False when that failed too."""
    try:
        client.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
        client.delete_certificate(certificateId=cert_id)
    except (ClientError, BotoCoreError):
        return False
    return True


def _ran_maybe(error: Exception) -> bool:
    """Whether a failed call may still have been carried out (its answer lost, or a server error)."""
    if isinstance(error, ClientError):
        status = (getattr(error, "response", {}) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or is_error(error, "InternalFailureException", "ServiceUnavailableException")
    return not isinstance(error, BotoConnectionError)


def _unanswered_create_error(
    error: Exception, desired: DesiredCertificate, record: Optional[Dict[str, Any]]
) -> Exception:
    """The error of a failed creating call; when it may have run, the record keeps it for the next run."""
    operation = CREATE_OPERATIONS[desired.source]
    if not _ran_maybe(error):
        clear_intent(desired)
        return error
    recorded = _update_intent(desired, record, ended=time.time())
    if desired.source == "create_keys":
        consequence = (
            "If AWS made the certificate, its private key is lost with the answer. It was not retried: a retry "
            "would make another certificate. "
        )
        if recorded:
            consequence += (
                f"{desired.intent_path} records the call: the next run reports the INACTIVE certificates made "
                "meanwhile and makes a new one"
            )
        else:
            consequence += "Look for an INACTIVE certificate attached to nothing made meanwhile (certificate_info)"
    else:
        consequence = "It was not retried: a retry would make another certificate. "
        if recorded:
            consequence += (
                f"{desired.intent_path} records the call: the next run finds the certificate by the CSR's public key "
                "and completes it"
            )
        elif desired.intent_path:
            consequence += "Run the task again: a certificate made meanwhile carries the CSR's public key"
        else:
            consequence += (
                "None with the CSR's public key was found right after. Without certificate_path no record is kept, "
                "so one made anyway (INACTIVE, attached to nothing) would not be found by the next run: check with "
                "certificate_info"
            )
    if isinstance(error, ClientError):
        base = AwsCallError.from_client_error(error, operation)
        return AwsCallError(base.operation, base.code, f"{base.message}. {consequence}", base.request_id)
    return AwsCallError(operation, type(error).__name__, f"no answer arrived ({error}). {consequence}")


def _after_creation_error(
    error: Exception,
    cert_id: str,
    status: str,
    desired: DesiredCertificate,
    done: List[str],
    record: Optional[Dict[str, Any]] = None,
) -> Exception:
    finds = []
    if desired.source == "pem":
        finds.append("its id (the SHA-256 of the PEM)")
    if desired.certificate_path and any("written" in step for step in done):
        finds.append("certificate_path")
    if desired.thing and any("thing" in step for step in done):
        finds.append(f"its public key among the certificates of thing {desired.thing}")
    if record is not None and desired.intent_path:
        key = "the key at private_key_path" if desired.source == "create_keys" else "the CSR's public key"
        finds.append(f"the intent record {desired.intent_path} (the certificate carries {key})")
    progress = ", ".join(done) if done else "nothing more was done"
    if finds:
        rerun = (
            f"Fix the cause and run the task again: it finds the certificate again by {' or '.join(finds)} "
            "and completes it, without making a second one"
        )
    else:
        rerun = (
            "Nothing lets a re-run find it again: remove it (state=absent, certificate_id) or manage it with "
            "certificate_id"
        )
    text = f"Certificate {cert_id} was created {status} ({progress}) before this step failed. {rerun}"
    if isinstance(error, ClientError):
        base = AwsCallError.from_client_error(error)
        return AwsCallError(base.operation, base.code, f"{base.message}. {text}", base.request_id)
    reason = getattr(error, "strerror", None) or str(error)
    return ValidationError("certificate_path", f"could not write {desired.certificate_path} ({reason}); {text}")


# ---------------------------------------------------------------------------
# Absent
# ---------------------------------------------------------------------------


def ensure_absent(
    client: Any,
    desired: DesiredCertificate,
    check_mode: bool,
    warn: Warn = _no_warn,
    sleep: Callable[[float], None] = time.sleep,
    report: Optional[Dict[str, Any]] = None,
) -> Tuple[bool, Optional[View], None]:
    """``report``, when given, receives the orphaned certificates found through an intent record."""
    location = locate_certificate(client, desired, warn)
    intent = resolve_intent(client, desired, location, check_mode, warn)
    if report is not None:
        report.update(intent.result())
    if location.certificate is None:
        if not check_mode:
            clear_intent(desired)
        return bool(intent.deleted), None, None
    before = location.certificate.view
    if check_mode:
        return True, before, None
    remove_certificate(client, before, sleep)
    clear_intent(desired)
    return True, before, None


def remove_certificate(client: Any, view: View, sleep: Callable[[float], None] = time.sleep) -> None:
    """INACTIVE, detach every thing, detach every policy, delete: the order AWS requires (``iot_access``)."""
    iot_access.remove_certificate(
        iot_access.as_call(client), view["certificate_id"], view["certificate_arn"], view["status"], sleep
    )


# ---------------------------------------------------------------------------
# thing_principal
# ---------------------------------------------------------------------------


@dataclass
class DesiredThingPrincipal:
    thing: str
    principal: str
    # True when principal is a certificate id that must be turned into its ARN.
    principal_is_certificate_id: bool = False
    exclusive: Optional[bool] = None
    state: str = "present"

    @property
    def principal_type(self) -> Optional[str]:
        if self.exclusive is None:
            return None
        return EXCLUSIVE_THING if self.exclusive else NON_EXCLUSIVE_THING


_CERT_ARN = re.compile(r"^arn:[^:]+:iot:[^:]*:\d*:cert/(?P<id>[^/]+)$")


def validate_thing_principal(params: Mapping[str, Any]) -> DesiredThingPrincipal:
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    thing = validate_thing_name(params.get("thing"))
    principal = params.get("principal")
    if not isinstance(principal, str) or not principal.strip():
        raise ValidationError("principal", "must be a certificate ARN, a certificate id or another principal")
    principal = principal.strip()
    is_id = False
    match = _CERT_ARN.match(principal)
    if match:
        validate_certificate_id(match.group("id"), "principal")
    elif re.match(r"^[0-9a-fA-F]+$", principal):
        principal = validate_certificate_id(principal, "principal")
        is_id = True
    elif ":cert/" in principal:
        raise ValidationError(
            "principal", f"is not a certificate ARN (arn:PARTITION:iot:REGION:ACCOUNT:cert/ID): {principal!r}"
        )
    exclusive = params.get("exclusive")
    return DesiredThingPrincipal(
        thing=thing,
        principal=principal,
        principal_is_certificate_id=is_id,
        exclusive=None if exclusive is None else bool(exclusive),
        state=state,
    )


def resolve_principal(client: Any, desired: DesiredThingPrincipal) -> Optional[str]:
    """The principal's ARN (a certificate id is looked up), or None when that certificate does not exist."""
    if not desired.principal_is_certificate_id:
        return desired.principal
    description = describe_certificate(client, desired.principal)
    return description["certificateArn"] if description else None


def read_thing_principal(client: Any, thing: str, principal: str) -> Tuple[bool, Optional[View]]:
    """(thing exists, the attachment or None) from ListThingPrincipalsV2."""
    try:
        objects = paginate(
            client, "list_thing_principals_v2", "thingPrincipalObjects", thingName=thing, maxResults=PAGE_SIZE
        )
    except ClientError as e:
        if is_error(e, "ResourceNotFoundException"):
            return False, None
        raise
    for obj in objects:
        if obj.get("principal") == principal:
            return True, thing_principal_view(thing, principal, obj.get("thingPrincipalType") or NON_EXCLUSIVE_THING)
    return True, None


def thing_principal_view(thing: str, principal: str, principal_type: str) -> View:
    return {"thing": thing, "principal": principal, "thing_principal_type": principal_type}


def ensure_thing_principal_present(
    client: Any, desired: DesiredThingPrincipal, arn: Optional[str], check_mode: bool
) -> Tuple[bool, Optional[View], Optional[View]]:
    """Attach ``arn`` (from ``resolve_principal``) to the thing with the wanted type."""
    if arn is None:
        raise StateConflictError("principal", f"no certificate {desired.principal} exists in this account and region")
    thing_exists, before = read_thing_principal(client, desired.thing, arn)
    if not thing_exists and not check_mode:
        raise StateConflictError("thing", f"{desired.thing} does not exist; create it first")
    wanted_type = desired.principal_type
    if before is not None and (wanted_type is None or before["thing_principal_type"] == wanted_type):
        return False, before, before
    predicted = thing_principal_view(desired.thing, arn, wanted_type or NON_EXCLUSIVE_THING)
    if check_mode:
        return True, before, predicted
    if before is not None:
        # The type of an attachment is set when it is made: re-attach to change it.
        client.detach_thing_principal(thingName=desired.thing, principal=arn)
    kwargs = {"thingPrincipalType": wanted_type} if wanted_type else {}
    client.attach_thing_principal(thingName=desired.thing, principal=arn, **kwargs)
    _exists, after = read_thing_principal(client, desired.thing, arn)
    return True, before, after or predicted


def ensure_thing_principal_absent(
    client: Any, desired: DesiredThingPrincipal, arn: Optional[str], check_mode: bool
) -> Tuple[bool, Optional[View], None]:
    """Detach ``arn`` (from ``resolve_principal``; None when the certificate is gone) from the thing."""
    if arn is None:
        return False, None, None
    _exists, before = read_thing_principal(client, desired.thing, arn)
    if before is None:
        return False, None, None
    if check_mode:
        return True, before, None
    try:
        client.detach_thing_principal(thingName=desired.thing, principal=arn)
    except ClientError as e:
        if not is_error(e, "ResourceNotFoundException"):
            raise
    return True, before, None


# ---------------------------------------------------------------------------
# certificate_info
# ---------------------------------------------------------------------------


@dataclass
class CertificateQuery:
    certificate_id: Optional[str] = None
    thing: Optional[str] = None
    ca_certificate_id: Optional[str] = None
    status: Optional[str] = None
    include_pem: bool = False


def validate_certificate_query(params: Mapping[str, Any]) -> CertificateQuery:
    selectors = [name for name in ("certificate_id", "thing", "ca_certificate_id") if params.get(name) is not None]
    if len(selectors) > 1:
        raise ValidationError(", ".join(selectors), "are mutually exclusive: select certificates by one of them")
    query = CertificateQuery(include_pem=bool(params.get("include_pem")))
    if params.get("certificate_id") is not None:
        query.certificate_id = validate_certificate_id(params["certificate_id"])
    if params.get("ca_certificate_id") is not None:
        query.ca_certificate_id = validate_certificate_id(params["ca_certificate_id"], "ca_certificate_id")
    if params.get("thing") is not None:
        query.thing = validate_thing_name(params["thing"])
    status = params.get("status")
    if status is not None:
        if status not in ALL_STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(ALL_STATUSES)}, got {status!r}")
        query.status = status
    return query


def info_view(item: Mapping[str, Any], ca_certificate_id: Optional[str] = None) -> View:
    """One certificate of certificate_info.

    List calls do not report the CA (only DescribeCertificate does), so ``ca_certificate_id`` is present when it is
    known: from a description, or from the CA the query selected by.
    """
    view = {
        "certificate_id": item.get("certificateId"),
        "certificate_arn": item.get("certificateArn"),
        "status": item.get("status"),
        "creation_date": _iso(item.get("creationDate")),
    }
    known_ca = item.get("caCertificateId") or ca_certificate_id
    if known_ca or "certificatePem" in item:
        view["ca_certificate_id"] = known_ca
    if item.get("certificateMode"):
        view["certificate_mode"] = item["certificateMode"]
    return view


def query_certificates(client: Any, query: CertificateQuery) -> List[View]:
    """The certificates the query selects (every page), snake_case, sorted by id."""
    items: List[Mapping[str, Any]]
    if query.certificate_id:
        found = describe_certificate(client, query.certificate_id)
        items = [found] if found else []
    elif query.thing:
        arns = list_thing_certificate_arns(client, query.thing) or []
        items = [d for d in (describe_certificate(client, certificate_id_from_arn(a)) for a in arns) if d]
    elif query.ca_certificate_id:
        items = paginate(
            client,
            "list_certificates_by_ca",
            "certificates",
            caCertificateId=query.ca_certificate_id,
            pageSize=PAGE_SIZE,
        )
    else:
        items = paginate(client, "list_certificates", "certificates", pageSize=PAGE_SIZE)
    if query.status:
        items = [item for item in items if item.get("status") == query.status]
    results = []
    for item in items:
        if query.include_pem and "certificatePem" not in item:
            item = describe_certificate(client, item["certificateId"]) or item
        view = info_view(item, query.ca_certificate_id)
        if query.include_pem:
            view["certificate_pem"] = item.get("certificatePem")
        results.append(view)
    return sorted(results, key=lambda v: v["certificate_id"] or "")


__all__ = [
    "ALL_STATUSES",
    "CertificateQuery",
    "DesiredCertificate",
    "DesiredThingPrincipal",
    "StateConflictError",
    "certificate_view",
    "ensure_absent",
    "ensure_present",
    "ensure_thing_principal_absent",
    "ensure_thing_principal_present",
    "locate_certificate",
    "plan_certificate",
    "query_certificates",
    "read_certificate",
    "read_thing_principal",
    "remove_certificate",
    "resolve_principal",
    "validate_certificate",
    "validate_certificate_query",
    "validate_thing_principal",
]
