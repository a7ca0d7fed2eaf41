# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=present: plan, create (never twice after a lost answer), converge; ``ensure_present``."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import (
    BotoConnectionError,
    BotoCoreError,
    ClientError,
    call_once,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.intent import (
    CREATE_OPERATIONS,
    _begin_intent,
    _carries_key,
    _update_intent,
    _window_certificates,
    clear_intent,
    resolve_intent,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    Location,
    RemoteCertificate,
    describe_certificate,
    list_thing_certificate_arns,
    locate_certificate,
    read_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    DesiredCertificate,
    StateConflictError,
    View,
    Warn,
    _no_warn,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CERTIFICATE_MODE,
    PRIVATE_KEY_MODE,
    PendingFile,
    file_differs,
    write_file_atomic,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import (
    AwsCallError,
    ValidationError,
    is_error,
)

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


def ensure_present(client: Any, desired: DesiredCertificate, check_mode: bool, warn: Warn = _no_warn) -> Ensured:
    """The certificate as the task asks for it: found and converged, or created. ``extra`` holds the orphaned
    certificates found through an intent record (``orphaned_certificates_deleted`` / ``_suspected``)."""
    location = locate_certificate(client, desired, warn)
    intent = resolve_intent(client, desired, location, check_mode, warn)
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
    return Ensured(changed or bool(intent.deleted), before, after, intent.result())


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
