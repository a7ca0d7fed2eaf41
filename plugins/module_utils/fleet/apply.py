# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying one device: its steps in dependency order, certificate creation with its records, pruning."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import billing
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.local import (
    CallRecord,
    _parse_records,
    device_paths,
    write_records,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.plan import (
    DevicePlan,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    CERT_FILE,
    CREATE_OPERATIONS,
    KEY_FILE,
    KEY_SPEC,
    PAGE_SIZE,
    Call,
    DesiredDevice,
    FleetSpec,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.state import (
    cert_id_of_arn,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.keys import ensure_private_key, make_csr
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    visible_attributes,
)

# ---------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------


class DeviceFailure(Exception):
    def __init__(self, step: str, error: BaseException):
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


def _step(name: str, func: Callable[[], Any]) -> Any:
    try:
        return func()
    except DeviceFailure:
        raise
    except Exception as e:  # every failure of one device is recorded; the others go on
        raise DeviceFailure(name, e) from e


def _create_certificate(call: Call, spec: FleetSpec, device: DesiredDevice, plan: DevicePlan) -> None:
    """Make the device's certificate (ACTIVE from a CSR, else INACTIVE), its files on disk before this returns."""
    if plan.new_certificate == "pem":
        try:
            response = call("register_certificate_without_ca", certificatePem=device.certificate_pem, status="INACTIVE")
            plan.certificate_arn = response["certificateArn"]
        except ClientError as e:
            if not is_error(e, "ResourceAlreadyExistsException", "CertificateConflictException"):
                raise
            info = call("describe_certificate", certificateId=device.certificate_id)["certificateDescription"]
            plan.certificate_arn = info["certificateArn"]
        plan.certificate_id = device.certificate_id
        return
    paths = device_paths(spec.output_dir, device.name)
    os.makedirs(paths["dir"], mode=0o700, exist_ok=True)
    _remove_stale_temporaries(paths["dir"])
    if plan.new_certificate == "csr":
        existing = crypto.read_file(paths["key"])
        if existing is not None:
            key = crypto.load_private_key(existing)
        else:
            key = ensure_private_key(paths["key"], KEY_SPEC, False, False).key
        csr = make_csr(key, {"common_name": device.name}).decode()
        with crypto.PendingFile(paths["cert"], crypto.CERTIFICATE_MODE) as cert_file:
            response = _recorded_call(
                call,
                spec.output_dir,
                device.name,
                "csr",
                (cert_file,),
                "create_certificate_from_csr",
                certificateSigningRequest=csr,
                setAsActive=True,
            )
    else:
        if os.path.lexists(paths["key"]):
            # The planner refuses this; a key that appeared since is not replaced either.
            raise ValidationError(
                f"{device.name}", f"{paths['key']} exists: a device key is never replaced; move it away first"
            )
        with crypto.PendingFile(paths["key"], crypto.PRIVATE_KEY_MODE) as key_file, crypto.PendingFile(
            paths["cert"], crypto.CERTIFICATE_MODE
        ) as cert_file:
            response = _recorded_call(
                call,
                spec.output_dir,
                device.name,
                "aws_keys",
                (key_file, cert_file),
                "create_keys_and_certificate",
                setAsActive=False,
            )
    plan.certificate_id = response["certificateId"]
    plan.certificate_arn = response["certificateArn"]


class _AttemptWatch:
    """The attempts of one certificate-creating call, counted in its own thread from botocore's events.

    Each attempt is added to the call's record on disk before it is sent; an attempt counts as answered when
    an HTTP answer below 500 came back (a 5xx or a dropped connection may have made a certificate).
    """

    def __init__(self, output_dir: str, records: List[CallRecord], record: CallRecord):
        self.output_dir = output_dir
        self.records = records
        self.record = record
        self.started = 0
        self.answered = 0

    def before_attempt(self) -> None:
        self.started += 1
        if self.started > self.record.attempts:
            self.record.attempts = self.started
            self.record.last = time.time()
            write_records(self.output_dir, self.record.device, self.records)

    def answer(self, status: int) -> None:
        if status < 500:
            self.answered += 1


_WATCH = threading.local()


def _before_attempt(**_kwargs: Any) -> None:
    watch = getattr(_WATCH, "watch", None)
    if watch is not None:
        watch.before_attempt()


def _after_attempt(http_response: Any = None, **_kwargs: Any) -> None:
    watch = getattr(_WATCH, "watch", None)
    if watch is not None and http_response is not None:
        watch.answer(int(getattr(http_response, "status_code", 500) or 500))


def watch_certificate_calls(call: Any) -> bool:
    """Count the attempts of the certificate-creating calls made through ``call``'s boto3 client, if it has one."""
    events = getattr(getattr(getattr(call, "client", None), "meta", None), "events", None)
    if events is None or not hasattr(events, "register"):
        return False
    for operation in CREATE_OPERATIONS.values():
        events.register(f"before-call.iot.{operation}", _before_attempt, unique_id=f"iotfleet-fleet-before-{operation}")
        events.register(f"after-call.iot.{operation}", _after_attempt, unique_id=f"iotfleet-fleet-after-{operation}")
    return True


def _device_records(output_dir: str, name: str) -> List[CallRecord]:
    path = device_paths(output_dir, name)["marker"]
    data = crypto.read_file(path)
    if data is None:
        return []
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = time.time()
    return _parse_records(name, data, mtime)


def _end_attempts(watch: _AttemptWatch) -> None:
    _WATCH.watch = None
    watch.record.ended = time.time()
    # Known only when the client's events were seen; otherwise every attempt may have been lost.
    watch.record.lost = watch.started - watch.answered if watch.started else None


def _recorded_call(
    call: Call, output_dir: str, name: str, source: str, files: Tuple[Any, ...], method: str, **params: Any
) -> Dict[str, Any]:
    """A certificate-creating call, recorded in the device's marker file before its first attempt; its answer's
    files committed. The record is dropped when every attempt was answered and the files are written."""
    records = _device_records(output_dir, name)
    now = time.time()
    record = CallRecord(device=name, source=source, started=now, last=now)
    records.append(record)
    write_records(output_dir, name, records)
    watch = _AttemptWatch(output_dir, records, record)
    _WATCH.watch = watch
    try:
        response = call(method, **params)
    except BaseException:
        _end_attempts(watch)
        if record.lost == 0:
            records.remove(record)  # every attempt answered, none with a certificate: nothing can be left
        with contextlib.suppress(OSError):
            write_records(output_dir, name, records)
        raise
    _end_attempts(watch)
    try:
        if source == "aws_keys":
            files[0].commit(response["keyPair"]["PrivateKey"].encode())
            files[1].commit(response["certificatePem"].encode())
        else:
            files[0].commit(response["certificatePem"].encode())
    except BaseException:
        # Received, but not on disk: the sweep may delete it (its id proves it is this fleet's).
        record.made.append(response["certificateId"])
        with contextlib.suppress(OSError):
            write_records(output_dir, name, records)
        raise
    if record.lost == 0:
        records.remove(record)
    write_records(output_dir, name, records)
    return response


def _remove_stale_temporaries(directory: str) -> None:
    """Temporary files of an interrupted run (PendingFile names them .<file>.<random>.tmp)."""
    for entry in os.listdir(directory):
        if entry.startswith((f".{KEY_FILE}.", f".{CERT_FILE}.")) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def _update_thing(call: Call, plan: DevicePlan) -> None:
    """UpdateThing; a version conflict is fine when the thing already is as planned (a retried call that ran)."""
    try:
        call("update_thing", **plan.update_thing)
    except ClientError as e:
        if not is_error(e, "VersionConflictException"):
            raise
        thing = call("describe_thing", thingName=plan.name)
        now = {
            "thing_type": thing.get("thingTypeName") or None,
            "attributes": visible_attributes(thing.get("attributes")),
        }
        if now != {"thing_type": plan.after["thing_type"], "attributes": plan.after["attributes"]}:
            raise


def apply_device(call: Call, spec: FleetSpec, device: DesiredDevice, plan: DevicePlan) -> None:
    """One device's steps in dependency order: thing, groups, certificate, attach, policies, activate."""
    if plan.create_thing:
        _step("create thing", lambda: call("create_thing", **plan.create_thing))
    if plan.update_thing:
        _step("update thing", lambda: _update_thing(call, plan))
    for group in plan.groups_to_add:
        _step(
            f"add to thing group {group}",
            lambda group=group: call("add_thing_to_thing_group", thingGroupName=group, thingName=device.name),
        )
    for group in plan.groups_to_remove:
        _step(
            f"remove from thing group {group}",
            lambda group=group: call("remove_thing_from_thing_group", thingGroupName=group, thingName=device.name),
        )
    if plan.billing_remove or plan.billing_add:
        _step("set billing group", lambda: billing.apply_billing(call, device.name, plan))
    if device.certificate == "none":
        return
    if plan.fix_key_mode:
        key_path = device_paths(spec.output_dir, device.name)["key"]
        _step("set key file mode", lambda: os.chmod(key_path, crypto.PRIVATE_KEY_MODE))
    if plan.write_certificate_pem:
        paths = device_paths(spec.output_dir, device.name)

        def write_certificate() -> None:
            _remove_stale_temporaries(paths["dir"])
            crypto.write_file_atomic(paths["cert"], plan.write_certificate_pem.encode(), 0o644)

        _step("write certificate file", write_certificate)
    if plan.new_certificate:
        _step("create certificate", lambda: _create_certificate(call, spec, device, plan))
    arn = plan.certificate_arn
    if plan.attach_certificate:
        _step("attach certificate", lambda: call("attach_thing_principal", thingName=device.name, principal=arn))
    for policy in plan.policies_to_attach:
        _step(f"attach policy {policy}", lambda policy=policy: call("attach_policy", policyName=policy, target=arn))
    for policy in plan.policies_to_detach:
        _step(
            f"detach policy {policy}",
            lambda policy=policy: iot_access.unless_gone(call, "detach_policy", policyName=policy, target=arn),
        )
    if plan.activate:
        _step(
            "activate certificate",
            lambda: call("update_certificate", certificateId=plan.certificate_id, newStatus="ACTIVE"),
        )
    for old_id, old_arn in plan.replace_certificates:
        # Only now that the new certificate is ACTIVE, attached and has its policies: the old one goes.
        _step(f"retire certificate {old_id}", lambda i=old_id, a=old_arn: retire_certificate(call, device.name, i, a))


def retire_certificate(
    call: Call, name: str, cert_id: str, arn: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Detach a replaced certificate from the thing; deactivate and delete it unless another thing uses it."""
    iot_access.unless_gone(call, "detach_thing_principal", thingName=name, principal=arn)
    others = call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE)
    if [t for t in others if t != name]:
        return  # in use by another thing: detached from this one only
    iot_access.unless_gone(call, "update_certificate", certificateId=cert_id, newStatus="INACTIVE")
    delete_certificate(call, cert_id, arn, sleep)


def delete_certificate(call: Call, cert_id: str, arn: str, sleep: Callable[[float], None] = time.sleep) -> None:
    """Detach policies, delete; the certificate is already INACTIVE and detached from every thing."""
    iot_access.delete_certificate(call, cert_id, arn, sleep, retry.FLEET_CERTIFICATE_DELETE)


def prune_device(call: Call, spec: FleetSpec, plan: DevicePlan, sleep: Callable[[float], None] = time.sleep) -> None:
    """Decommission in the safe order: certificates INACTIVE, detached, deleted; groups left; thing deleted."""
    name = plan.name
    for arn in plan.prune_principals:
        cert_id = cert_id_of_arn(arn)
        # A certificate another thing also uses is only detached from this one: deactivating it would cut
        # that other device off, and it is not this fleet's to retire.
        shared = bool(cert_id) and bool(
            [
                thing
                for thing in _step(
                    "list certificate things",
                    lambda arn=arn: call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE),
                )
                if thing != name
            ]
        )
        if cert_id and not shared:
            _step(
                "deactivate certificate",
                lambda cert_id=cert_id: iot_access.unless_gone(
                    call,
                    "update_certificate",
                    certificateId=cert_id,
                    newStatus="INACTIVE",
                ),
            )
        _step(
            "detach certificate",
            lambda arn=arn: iot_access.unless_gone(call, "detach_thing_principal", thingName=name, principal=arn),
        )
        if cert_id and not shared:
            _step("delete certificate", lambda cert_id=cert_id, arn=arn: delete_certificate(call, cert_id, arn, sleep))
    for group in plan.groups_to_remove:
        _step(
            f"remove from thing group {group}",
            lambda group=group: iot_access.unless_gone(
                call,
                "remove_thing_from_thing_group",
                thingGroupName=group,
                thingName=name,
            ),
        )
    _step("delete thing", lambda: iot_access.delete_thing(call, name, sleep, retry.FLEET_THING_DELETE))
    if spec.output_dir:
        paths = device_paths(spec.output_dir, name)
        for key in ("cert", "key", "marker"):
            if os.path.exists(paths[key]):
                os.unlink(paths[key])
