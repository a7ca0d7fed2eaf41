# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ensure_present: plan, start, wait, apply the reports; results and the failure message."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    crypto,
    registration,
    template_engine,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.plan import (
    _changes,
    device_dir,
    plan_devices,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.spec import (
    CERTIFICATE_FILE,
    FAILED,
    NONE,
    REGISTER,
    UPDATE,
    DesiredTask,
    TaskBusyError,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.task import (
    apply_reports,
    build_input,
    http_get,
    input_key,
    read_reports,
    running_task,
    start_task,
    wait_for_task,
    write_certificate,
)

# --- the whole run --------------------------------------------------------------------------------------------------


def load_template(client: Any, desired: DesiredTask) -> template_engine.ProvisioningTemplate:
    if desired.template is not None:
        return desired.template
    template = registration.load_template(client, None, desired.template_name)
    csr_parameter = desired.csr_parameter
    if csr_parameter and registration.csr_parameter(template) != csr_parameter:
        raise ValidationError(
            "csr_parameter",
            f"template {desired.template_name} does not take its certificate's CSR from parameter {csr_parameter}",
        )
    return template


def _update_with_register_thing(
    client: Any, template: template_engine.ProvisioningTemplate, device: Dict[str, Any]
) -> None:
    """One RegisterThing naming the certificate the device already has, so no second one is issued."""
    body = registration.naming_existing_certificate(template, device["certificate_id"])
    try:
        client.register_thing(templateBody=template_engine.template_body_json(body), parameters=device["parameters"])
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {})
        if not code:
            raise
        device.update(status="failed", stage="register_thing", error=f"{code.get('Code')}: {code.get('Message')}")
        return
    device["status"] = "updated"


def device_result(device: Dict[str, Any]) -> Dict[str, Any]:
    out = {
        "name": device["name"],
        "line": device["line"],
        "input_line": device.get("input_line"),
        "action": device.get("action"),
        "status": device.get("status"),
        "changes": _changes(device.get("plan") or []),
        "certificate_id": device.get("certificate_id"),
        "error": device.get("error"),
    }
    return out


def _plan_diff(devices: List[Dict[str, Any]]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    before: Dict[str, Any] = {}
    after: Dict[str, Any] = {}
    for device in devices:
        if device.get("action") in (REGISTER, UPDATE):
            diff = registration.plan_diff(device["plan"])
            before[device["name"]] = diff["before"]
            after[device["name"]] = diff["after"]
    return before, after


def counts_of(devices: List[Dict[str, Any]]) -> Dict[str, int]:
    counts = {"total": len(devices), NONE: 0, REGISTER: 0, UPDATE: 0, "failed": 0}
    for device in devices:
        if device.get("action") in counts:
            counts[device["action"]] += 1
    counts["failed"] = sum(1 for d in devices if d.get("action") == FAILED or d.get("status") == "failed")
    return counts


def ensure_present(
    iot: Any,
    s3_factory: Callable[[], Any],
    desired: DesiredTask,
    check_mode: bool,
    fetch: Callable[[str], bytes] = http_get,
    sleep: Callable[[float], None] = time.sleep,
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Ensured:
    """Plan every device, then (not in check mode) update, upload, start, wait and read the reports.

    before/after are the per-device plan diff; ``extra`` is the module's result (task, counts, devices...).
    """
    template = load_template(iot, desired)
    devices = desired.devices
    changed = plan_devices(iot, template, desired, check_mode)
    before, after = _plan_diff(devices)
    to_register = [d for d in devices if d["action"] == REGISTER]
    to_update = [d for d in devices if d["action"] == UPDATE]
    body = build_input(to_register) if to_register else b""
    key = input_key(desired.key_prefix, body) if to_register else None
    result: Dict[str, Any] = {
        "task_id": None,
        "status": None,
        "progress": [],
        "input": {"bucket": desired.bucket, "key": key, "lines": len(to_register), "bytes": len(body)},
    }

    for device in devices:
        if device["action"] == NONE:
            device["status"] = "unchanged"
            if desired.output_dir and device.get("certificate_id"):
                path = os.path.join(device_dir(desired.output_dir, device["name"]), CERTIFICATE_FILE)
                if crypto.read_file(path) is None:
                    # The device is provisioned but its certificate file is gone: write it again.
                    pem = iot.describe_certificate(certificateId=device["certificate_id"])[
                        "certificateDescription"
                    ].get("certificatePem")
                    changed |= write_certificate(desired.output_dir, device["name"], pem, check_mode) is not None
        elif device["action"] == FAILED:
            device["status"] = "failed"
    if to_register or to_update:
        changed = True

    if check_mode:
        for device in to_register + to_update:
            device["status"] = "planned"
        return _finish(changed, before, after, result, devices)

    for device in to_update:
        _update_with_register_thing(iot, template, device)

    if to_register:
        busy = running_task(iot)
        if busy is not None:
            raise TaskBusyError(busy)
        s3_factory().put_object(Bucket=desired.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        task_id = start_task(iot, template.to_json(), desired.bucket, key, desired.role_arn)
        result["task_id"] = task_id
        result["status"] = "InProgress"
        for device in to_register:
            device["status"] = "submitted"
        if desired.wait:
            description, progress, timed_out = wait_for_task(
                iot, task_id, desired.wait_timeout, desired.poll_interval, sleep=sleep, report=report
            )
            result["status"] = description.get("status")
            result["progress"] = progress
            result["success_count"] = description.get("successCount", 0)
            result["failure_count"] = description.get("failureCount", 0)
            if timed_out:
                result["timed_out"] = True
            else:
                reports = read_reports(iot, task_id, fetch)
                apply_reports(to_register, reports, desired.output_dir)
                if description.get("status") == "Failed":
                    result["task_message"] = description.get("message")
    return _finish(changed, before, after, result, devices)


def _finish(
    changed: bool, before: Dict[str, Any], after: Dict[str, Any], result: Dict[str, Any], devices: List[Dict[str, Any]]
) -> Ensured:
    result["counts"] = counts_of(devices)
    result["devices"] = [device_result(d) for d in devices]
    result["failed_devices"] = [
        {"name": d["name"], "line": d["line"], "input_line": d.get("input_line"), "error": d.get("error")}
        for d in devices
        if d.get("status") == "failed"
    ]
    return Ensured(changed, before, after, result)


def failure_message(result: Dict[str, Any], max_failures: int) -> Optional[str]:
    """Why the module must fail (task not finished, or more failed devices than allowed), else None."""
    if result.get("timed_out"):
        return (
            f"thing registration task {result['task_id']} did not finish within wait_timeout "
            f"(last status {result['status']}); it keeps running in AWS: run the task again once it has finished"
        )
    if result.get("status") in ("Failed", "Cancelled"):
        detail = result.get("task_message") or "see DescribeThingRegistrationTask"
        return f"thing registration task {result['task_id']} ended {result['status']}: {detail}"
    failed = result.get("failed_devices") or []
    if len(failed) > max_failures:
        listed = "; ".join(f"{d['name']} (line {d['line']}): {d['error']}" for d in failed[:10])
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        return f"{len(failed)} device(s) failed, more than max_failures {max_failures}: {listed}{more}"
    return None
