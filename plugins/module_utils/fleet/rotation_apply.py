# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying a device's rotation stage (rotation.py plans it): step 1, step 2, and the files moved in place."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Callable, List, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import rotation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.apply import (
    _recorded_call,
    _remove_stale_temporaries,
    _step,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.local import device_paths
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import Call, DesiredDevice, FleetSpec
from ansible_collections.iotfleet.provisioning.plugins.module_utils.keys import ensure_private_key, make_csr


def apply_rotation(
    call: Call, spec: FleetSpec, device: DesiredDevice, plan: Any, sleep: Callable[[float], None] = time.sleep
) -> None:
    """The device's rotation stage, after its other steps (the old certificate is converged first)."""
    rot = plan.rotation
    if rot is None or rot.stage is None:
        return
    if rot.stage == rotation.ISSUE:
        if rot.new_id is None:
            _step("rotate: issue new certificate", lambda: issue_certificate(call, spec, device, plan))
        elif device.policies is None and rot.old_arn:
            # An earlier run made the new certificate but stopped before its policies: the old one's are copied.
            new_arn = plan.certificate_arn
            _step("rotate: copy policies", lambda: copy_policies(call, rot.old_arn, new_arn))
    if rot.stage == rotation.RETIRE:
        _step("rotate: retire", lambda: retire_certificates(call, spec, device.name, rot, sleep))
    elif rot.stage == rotation.PROMOTE:
        _step("rotate: move the new files in place", lambda: finish_files(spec, device.name, rot, []))


def copy_policies(call: Call, old_arn: str, new_arn: str) -> List[str]:
    """Attach to the new certificate every policy of the old one it lacks."""
    wanted = iot_access.certificate_policy_names(call, old_arn)
    have = set(iot_access.certificate_policy_names(call, new_arn))
    for policy in wanted:
        if policy not in have:
            call("attach_policy", policyName=policy, target=new_arn)
    return wanted


def issue_certificate(call: Call, spec: FleetSpec, device: DesiredDevice, plan: Any) -> None:
    """Step 1: the new certificate beside the old one, its files in next/ before the next call, attached, given
    the same policies, ACTIVE. The old certificate is not touched."""
    rot = plan.rotation
    name = device.name
    paths = device_paths(spec.output_dir, name)
    os.makedirs(paths["next_dir"], mode=0o700, exist_ok=True)
    _remove_stale_temporaries(paths["next_dir"])
    if device.certificate == "aws_keys":
        if os.path.lexists(paths["next_key"]):
            raise ValidationError(name, f"{paths['next_key']} exists: a device key is never replaced")
        with crypto.PendingFile(paths["next_key"], crypto.PRIVATE_KEY_MODE) as key_file, crypto.PendingFile(
            paths["next_cert"], crypto.CERTIFICATE_MODE
        ) as cert_file:
            # INACTIVE until attached and given its policies (as a new aws_keys device).
            response = _recorded_call(
                call,
                spec.output_dir,
                name,
                "aws_keys",
                (key_file, cert_file),
                "create_keys_and_certificate",
                setAsActive=False,
            )
        activate = True
    else:
        if device.rotation_csr is not None:
            csr = device.rotation_csr  # the device keeps its key
        else:
            existing = crypto.read_file(paths["next_key"])
            if existing is not None:
                key = crypto.load_private_key(existing)  # step 1 began in an earlier run: same key
            else:
                key = ensure_private_key(paths["next_key"], rot.key_spec, False, False).key
            csr = make_csr(key, {"common_name": name}).decode()
        with crypto.PendingFile(paths["next_cert"], crypto.CERTIFICATE_MODE) as cert_file:
            response = _recorded_call(
                call,
                spec.output_dir,
                name,
                "csr",
                (cert_file,),
                "create_certificate_from_csr",
                certificateSigningRequest=csr,
                setAsActive=True,
            )
        activate = False
    new_id, new_arn = response["certificateId"], response["certificateArn"]
    rot.new_id = new_id
    call("attach_thing_principal", thingName=name, principal=new_arn)
    if device.policies is not None:
        for policy in device.policies:
            call("attach_policy", policyName=policy, target=new_arn)
    elif rot.old_arn:
        copy_policies(call, rot.old_arn, new_arn)
    if activate:
        call("update_certificate", certificateId=new_id, newStatus="ACTIVE")


def _write_intent(spec: FleetSpec, name: str, rot: Any) -> None:
    if not spec.output_dir:
        return
    paths = device_paths(spec.output_dir, name)
    os.makedirs(paths["dir"], mode=0o700, exist_ok=True)
    document = {"new": rot.new_id, "retire": [{"id": i, "arn": arn} for i, arn, _status in rot.old]}
    crypto.write_file_atomic(paths["rotation"], json.dumps(document).encode(), crypto.CERTIFICATE_MODE)


def retire_certificates(
    call: Call, spec: FleetSpec, name: str, rot: Any, sleep: Callable[[float], None] = time.sleep
) -> List[str]:
    """Step 2: each old certificate INACTIVE, detached from the thing, its policies detached, deleted; the new
    one is ACTIVE and attached all along. One another thing also uses is only detached from this thing."""
    _write_intent(spec, name, rot)
    retired = []
    for old_id, old_arn, status in rot.old:
        others = [t for t in iot_access.certificate_things(call, old_arn) if t != name]
        if others:
            iot_access.unless_gone(call, "detach_thing_principal", thingName=name, principal=old_arn)
            continue
        if status != "INACTIVE":
            iot_access.unless_gone(call, "update_certificate", certificateId=old_id, newStatus="INACTIVE")
        iot_access.unless_gone(call, "detach_thing_principal", thingName=name, principal=old_arn)
        iot_access.delete_certificate(call, old_id, old_arn, sleep, retry.FLEET_CERTIFICATE_DELETE)
        retired.append(old_id)
    finish_files(spec, name, rot, [i for i, _arn, _status in rot.old])
    return retired


def finish_files(spec: FleetSpec, name: str, rot: Any, retired: List[str]) -> None:
    """After step 2: next/ replaces the device's files (key first: a run stopped between the two moves still
    reads a matching pair, see local.read_local_device); main files of a retired certificate with no next/
    (step 1 ran on another controller) are removed. Then the intent record goes."""
    if not spec.output_dir:
        return
    paths = device_paths(spec.output_dir, name)
    if rot.promote and os.path.isdir(paths["next_dir"]):
        next_cert = crypto.read_file(paths["next_cert"])
        if os.path.exists(paths["next_key"]):
            os.replace(paths["next_key"], paths["key"])
        elif next_cert is not None and os.path.exists(paths["key"]):
            # A CSR the device made: its key is on the device; the old key here matches nothing any more.
            key = crypto.read_file(paths["key"])
            if key is None or crypto.private_key_public_key(key) != crypto.certificate_public_key(next_cert):
                os.unlink(paths["key"])
        if next_cert is not None:
            os.replace(paths["next_cert"], paths["cert"])
        _remove_stale_temporaries(paths["next_dir"])
        with contextlib.suppress(OSError):
            os.rmdir(paths["next_dir"])
    elif retired:
        main = crypto.read_file(paths["cert"])
        if main is not None and crypto.certificate_id(main) in retired:
            for key in ("cert", "key"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(paths[key])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths["rotation"])


def stage_reached(plan: Any) -> Optional[str]:
    rot = plan.rotation
    if rot is None or rot.stage is None:
        return None
    if rot.stage == rotation.ISSUE:
        return f"rotate: issued {rot.new_id}, waiting for confirmation" if rot.new_id else None
    if rot.stage in (rotation.RETIRE, rotation.PROMOTE):
        return f"rotate: done, {rot.new_id} in use" + (
            f", retired {', '.join(i for i, _arn, _status in rot.old)}" if rot.old else ""
        )
    return "; ".join(rot.texts())
