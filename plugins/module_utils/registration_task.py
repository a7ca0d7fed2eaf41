# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS bulk thing registration tasks made declarative: plan offline, send only what must change.

Flow: ``validate_task(params)`` (options and devices, before any client exists) -> ``ensure_present``:
each device is rendered with the template and planned against the account with the template engine;
devices already provisioned as the template says are left out; a device that already has its certificate
but whose thing differs is updated with one RegisterThing naming that certificate (a task line would make
AWS issue a second certificate from the CSR); the rest go into one JSON-lines input file, uploaded to S3
and run as one StartThingRegistrationTask. The RESULTS and ERRORS reports are mapped back to devices by
line number: certificates to ``output_dir/<device>/certificate.pem.crt``, errors with device name and line.

Only one registration task runs per account: a running task is reported by its id before anything is
uploaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ansible.module_utils.urls import open_url

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    crypto,
    devices_file,
    keys,
    registration,
    template_engine,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ValidationError, is_error, iter_pages
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import validate_declared

try:
    from ansible.module_utils.common.yaml import HAS_YAML, yaml_load
except ImportError:  # pragma: no cover - very old ansible-core
    HAS_YAML = False
    yaml_load = None

# StartThingRegistrationTask limits (botocore model and AWS_IOT_FACTS.md). Always applied with fullmatch: with
# match, "$" also matches before a final line break, so "name\n" would pass.
BUCKET_PATTERN = re.compile(r"^[a-zA-Z0-9._-]{3,256}$")
KEY_CHARACTERS = re.compile(r"^[a-zA-Z0-9!_.*'()/-]*$")
KEY_MAX = 1024
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
ROLE_ARN_MIN, ROLE_ARN_MAX = 20, 2048
MAX_LINE_BYTES = 256 * 1024
DEVICE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")

RUNNING_STATUSES = ("InProgress", "Cancelling")
DONE_STATUSES = ("Completed", "Failed", "Cancelled")
REPORT_TYPES = ("RESULTS", "ERRORS")

PRIVATE_KEY_FILE = "private.pem.key"
CERTIFICATE_FILE = "certificate.pem.crt"
DEVICE_DIR_MODE = 0o700

DEVICE_FILE_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".csv": "csv",
}

# Plan actions per device.
NONE, REGISTER, UPDATE, FAILED = "none", "register", "update", "failed"


class TaskBusyError(ValidationError):
    """Another registration task is running in the account (AWS runs one per account at a time)."""

    def __init__(self, task_id: str):
        super().__init__("task", busy_message(task_id))
        self.task_id = task_id
        self.args = (busy_message(task_id),)


# --- input ------------------------------------------------------------------------------------------------------


def _string_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    kind = "null" if value is None else type(value).__name__
    raise ValidationError(where, f"must be a string (template parameters are strings), got {kind}")


def normalise_parameters(raw: Any, where: str) -> Dict[str, str]:
    """One device's parameter map with every value as the string AWS receives."""
    if not isinstance(raw, dict):
        raise ValidationError(where, f"must be a map of parameter names to values, got {type(raw).__name__}")
    out: Dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(where, f"parameter names must be non-empty strings, got {key!r}")
        out[key] = _string_value(value, f"{where}.{key}")
    return out


def device_file_format(path: str) -> str:
    """jsonl, json, yaml or csv, from the file name's extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in DEVICE_FILE_FORMATS:
        raise ValidationError(
            "devices_file",
            f"{path}: unknown format {ext or '(no extension)'}; use one of {', '.join(DEVICE_FILE_FORMATS)}",
        )
    return DEVICE_FILE_FORMATS[ext]


def parse_devices_text(text: str, fmt: str, field: str = "devices_file") -> List[Tuple[int, Any]]:
    """(line number, raw parameter map) per device; line numbers point into the file (records for YAML)."""
    if fmt in ("json", "jsonl"):
        return devices_file.json_records(text, field, allow_list=fmt == "json")
    if fmt == "yaml":
        if not HAS_YAML:
            raise ValidationError(field, "YAML device files need PyYAML, which is not installed")
        try:
            data = yaml_load(text)
        except Exception as error:  # PyYAML raises several unrelated classes
            raise ValidationError(field, f"is not valid YAML: {str(error).splitlines()[0]}") from None
        if isinstance(data, dict) and isinstance(data.get("devices"), list):
            data = data["devices"]
        if not isinstance(data, list):
            raise ValidationError(field, "a YAML device file must be a list of parameter maps (or a map with devices)")
        return list(enumerate(data, start=1))
    # An empty cell means "not given", so a template Default can apply.
    return [
        (line, {k: v for k, v in cells.items() if v != ""})
        for line, cells in devices_file.csv_records(text, field, "has {cells} columns, the header has {header}")
    ]


def load_devices(params: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Devices as [{line, parameters}] from ``devices`` or ``devices_file``."""
    if params.get("devices_file"):
        path = params["devices_file"]
        fmt = device_file_format(path)
        data = crypto.read_file(path)
        if data is None:
            raise ValidationError("devices_file", f"{path} does not exist")
        field = "devices_file"
        records = parse_devices_text(data.decode("utf-8"), fmt, field)
        label = "devices_file line"
    else:
        records = list(enumerate(params.get("devices") or [], start=1))
        field, label = "devices", "devices"
    devices = []
    for line, raw in records:
        where = f"{label} {line}" if label != "devices" else f"devices[{line - 1}]"
        devices.append({"line": line, "parameters": normalise_parameters(raw, where)})
    if not devices:
        raise ValidationError(field, "lists no device")
    return devices


def validate_task(params: Dict[str, Any]) -> Dict[str, Any]:
    """The request from the module options; raises ValidationError before any client is made."""
    bucket = params.get("bucket")
    if not isinstance(bucket, str) or not BUCKET_PATTERN.fullmatch(bucket):
        raise ValidationError("bucket", f"must match [a-zA-Z0-9._-] and be 3 to 256 characters, got {bucket!r}")
    prefix = params.get("key_prefix") or ""
    if not KEY_CHARACTERS.fullmatch(prefix) or len(prefix) > KEY_MAX - 40:
        raise ValidationError(
            "key_prefix", f"must use only [a-zA-Z0-9!_.*'()/-] and be at most {KEY_MAX - 40} characters, got {prefix!r}"
        )
    role_arn = params.get("role_arn") or ""
    if not (ROLE_ARN_MIN <= len(role_arn) <= ROLE_ARN_MAX) or not ROLE_ARN_PATTERN.fullmatch(role_arn):
        raise ValidationError(
            "role_arn", f"must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {role_arn!r}"
        )
    for option in ("wait_timeout", "poll_interval"):
        value = params.get(option)
        if value is not None and value <= 0:
            raise ValidationError(option, f"must be greater than 0, got {value}")
    max_failures = params.get("max_failures") or 0
    if max_failures < 0:
        raise ValidationError("max_failures", f"must be 0 or more, got {max_failures}")
    csr_parameter = params.get("csr_parameter")
    output_dir = params.get("output_dir")
    if csr_parameter and not output_dir:
        raise ValidationError("csr_parameter", "needs output_dir, where each device's key is made and kept")
    name_parameter = params.get("name_parameter") or "ThingName"

    template = None
    if params.get("template_body") is not None:
        template = template_engine.parse(params["template_body"])
        if csr_parameter and registration.csr_parameter(template) != csr_parameter:
            raise ValidationError(
                "csr_parameter",
                f"the template's certificate must take its CSR from this parameter "
                f'(CertificateSigningRequest: {{"Ref": "{csr_parameter}"}})',
            )

    devices = load_devices(params)
    seen: Dict[str, int] = {}
    for device in devices:
        where = (
            f"devices_file line {device['line']}" if params.get("devices_file") else f"devices[{device['line'] - 1}]"
        )
        name = device["parameters"].get(name_parameter)
        if name is None:
            raise ValidationError(where, f"has no {name_parameter} (name_parameter), which names the device")
        if not DEVICE_NAME_PATTERN.fullmatch(name):
            raise ValidationError(
                f"{where}.{name_parameter}", f"must match [a-zA-Z0-9:_-] and be 1 to 128 characters, got {name!r}"
            )
        if name in seen:
            raise ValidationError(where, f"device {name} is listed twice (also at {seen[name]})")
        seen[name] = device["line"]
        if csr_parameter and csr_parameter in device["parameters"]:
            raise ValidationError(
                f"{where}.{csr_parameter}", "is made by the module from the device's key (csr_parameter); leave it out"
            )
        device["name"] = name

    desired: Dict[str, Any] = {
        "template": template,
        "template_name": params.get("template_name"),
        "devices": devices,
        "name_parameter": name_parameter,
        "csr_parameter": csr_parameter,
        "output_dir": output_dir,
        "bucket": bucket,
        "key_prefix": prefix,
        "role_arn": role_arn,
        "wait": params.get("wait", True),
        "wait_timeout": params.get("wait_timeout") or 600,
        "poll_interval": params.get("poll_interval") or 5,
        "max_failures": max_failures,
        "key_spec": keys.validate_key_spec(params) if csr_parameter else None,
        "declared_policies": validate_declared(params.get("declared_resources"), ("policies",))["policies"],
    }
    return desired


# --- per-device planning ------------------------------------------------------------------------------------------


def device_dir(output_dir: str, name: str) -> str:
    return os.path.join(output_dir, name)


def prepare_csr(desired: Dict[str, Any], device: Dict[str, Any], check_mode: bool) -> bool:
    """Put the device's CSR in its parameters, making its key (0600) when missing. Returns files changed.

    In check mode a missing key is not written: a throw-away key gives the plan its CSR, and the plan shows
    a new certificate, as the real run would.
    """
    name = desired["csr_parameter"]
    if not name:
        return False
    directory = device_dir(desired["output_dir"], device["name"])
    key_path = os.path.join(directory, PRIVATE_KEY_FILE)
    changed = False
    if not os.path.isdir(directory):
        changed = True
        if not check_mode:
            os.makedirs(directory, DEVICE_DIR_MODE, exist_ok=True)
    key_changed, key, _info = keys.ensure_private_key(key_path, desired["key_spec"], False, check_mode)
    changed |= key_changed
    if key is None:  # check mode: the key would be made now
        key = keys.generate_key(desired["key_spec"])
        device["key_missing"] = True
    device["parameters"][name] = keys.make_csr(key, {"common_name": device["name"][:64]}).decode()
    return changed


def _changes(actions: List[Dict[str, Any]]) -> List[str]:
    return [
        f"{a['resource']}{'.' + a['logical_id'] if a.get('logical_id') else ''}: {a['action']}"
        for a in actions
        if a["action"] != "none"
    ]


def plan_device(
    client: Any,
    template: template_engine.ProvisioningTemplate,
    device: Dict[str, Any],
    will_exist: Optional[Set[str]] = None,
) -> Dict[str, Any]:
    """Render and plan one device; sets device action (none/register/update/failed), plan, error."""
    try:
        rendered = template_engine.render(template, device["parameters"])
    except ValidationError as error:
        device.update(action=FAILED, error=f"{error}", stage="plan", plan=[])
        return device
    state = template_engine.read_current_state(client, rendered)
    actions = template_engine.plan(rendered, state, will_exist)
    device["plan"] = actions
    failures = template_engine.plan_failures(actions)
    certificate = next((a for a in actions if a["resource"] == "certificate"), None)
    device["certificate_id"] = certificate.get("certificate_id") if certificate else None
    device["rendered_certificate_source"] = (rendered.get("certificate") or {}).get("source")
    if failures:
        device.update(action=FAILED, error="RegisterThing would fail: " + "; ".join(failures), stage="plan")
    elif template_engine.plan_is_empty(actions):
        device["action"] = NONE
    elif (
        certificate is not None and certificate["action"] != "create" and device["rendered_certificate_source"] == "csr"
    ):
        # The device has its certificate; a task line would make AWS issue another one from the CSR.
        device["action"] = UPDATE
    else:
        device["action"] = REGISTER
    return device


def plan_devices(
    client: Any, template: template_engine.ProvisioningTemplate, desired: Dict[str, Any], check_mode: bool
) -> bool:
    """Plan every device in input order. Returns whether key files were (or would be) made."""
    files_changed = False
    for device in desired["devices"]:
        device.setdefault("error", None)
        device.setdefault("certificate_id", None)
        files_changed |= prepare_csr(desired, device, check_mode)
        plan_device(client, template, device, set(desired["declared_policies"]) if check_mode else None)
    return files_changed


# --- the input file -------------------------------------------------------------------------------------------------


def build_input(devices: List[Dict[str, Any]]) -> bytes:
    """The JSON-lines body: one parameter object per device, in order; sets each device's input_line and offset."""
    lines = []
    offset = 0
    for number, device in enumerate(devices, start=1):
        line = json.dumps(device["parameters"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = line.encode("utf-8")
        if len(data) > MAX_LINE_BYTES:
            raise ValidationError(
                f"device {device['name']}", f"its input line is {len(data)} bytes; AWS takes at most {MAX_LINE_BYTES}"
            )
        device["input_line"] = number
        device["input_offset"] = offset
        offset += len(data) + 1
        lines.append(line)
    return ("\n".join(lines) + "\n").encode("utf-8")


def input_key(prefix: str, body: bytes) -> str:
    """The S3 key of an input file: named by its content, so a retried upload replaces the same object."""
    return f"{prefix}{hashlib.sha256(body).hexdigest()[:32]}.jsonl"


# --- the task -------------------------------------------------------------------------------------------------------


def running_task(client: Any) -> Optional[str]:
    """The id of a registration task running in the account, if any."""
    for status in RUNNING_STATUSES:
        for page in iter_pages(client, "list_thing_registration_tasks", status=status):
            if page.get("taskIds"):
                return page["taskIds"][0]
    return None


def busy_message(task_id: str) -> str:
    return (
        f"thing registration task {task_id} is still running in this account; AWS runs one task per account at a "
        "time: wait for it to finish (or stop it with StopThingRegistrationTask) and run this task again"
    )


def start_task(client: Any, template_body: str, bucket: str, key: str, role_arn: str) -> str:
    try:
        response = client.start_thing_registration_task(
            templateBody=template_body, inputFileBucket=bucket, inputFileKey=key, roleArn=role_arn
        )
    except Exception as error:
        if is_error(error, "InvalidRequestException", "LimitExceededException"):
            other = running_task(client)
            if other is not None:
                raise TaskBusyError(other) from None
        raise
    return response["taskId"]


def progress_entry(description: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "status": description.get("status"),
        "percentage_progress": description.get("percentageProgress", 0),
        "success_count": description.get("successCount", 0),
        "failure_count": description.get("failureCount", 0),
    }


def wait_for_task(
    client: Any,
    task_id: str,
    timeout: float,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]], bool]:
    """Poll until the task ends. Returns (last description, progress entries when they changed, timed out)."""
    deadline = clock() + timeout
    progress: List[Dict[str, Any]] = []
    while True:
        description = client.describe_thing_registration_task(taskId=task_id)
        entry = progress_entry(description)
        if not progress or progress[-1] != entry:
            progress.append(entry)
            if report is not None:
                report(entry)
        if description.get("status") in DONE_STATUSES:
            return description, progress, False
        if clock() >= deadline:
            return description, progress, True
        sleep(min(interval, max(deadline - clock(), 0)))


def http_get(url: str, validate_certs: bool = True, ca_bundle: Optional[str] = None, timeout: float = 60) -> bytes:
    """A plain GET of a report link (presigned S3 URL), with Ansible's TLS handling."""
    response = open_url(url, method="GET", timeout=timeout, validate_certs=validate_certs, ca_path=ca_bundle)
    try:
        return response.read()
    finally:
        response.close()


def parse_report(data: bytes) -> List[Dict[str, Any]]:
    """The records of a JSON-lines report; lines that are not objects are skipped (AWS's layout is loose)."""
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_reports(client: Any, task_id: str, fetch: Callable[[str], bytes]) -> Dict[str, List[Dict[str, Any]]]:
    reports: Dict[str, List[Dict[str, Any]]] = {}
    for report_type in REPORT_TYPES:
        records: List[Dict[str, Any]] = []
        for page in iter_pages(client, "list_thing_registration_task_reports", taskId=task_id, reportType=report_type):
            for link in page.get("resourceLinks") or []:
                records.extend(parse_report(fetch(link)))
        reports[report_type] = records
    return reports


def write_certificate(
    output_dir: Optional[str], name: str, pem: Optional[str], check_mode: bool = False
) -> Optional[str]:
    """Write the device's certificate atomically; returns the path when it was (or would be) written."""
    if not output_dir or not pem:
        return None
    directory = device_dir(output_dir, name)
    path = os.path.join(directory, CERTIFICATE_FILE)
    data = pem.encode()
    if not crypto.file_differs(path, data):
        return None
    if not check_mode:
        os.makedirs(directory, DEVICE_DIR_MODE, exist_ok=True)
        crypto.write_file_atomic(path, data, crypto.CERTIFICATE_MODE)
    return path


def apply_reports(
    devices: List[Dict[str, Any]], reports: Dict[str, List[Dict[str, Any]]], output_dir: Optional[str]
) -> List[str]:
    """Map report lines back to the devices of the task; write certificates. Returns the files written."""
    by_line = {device["input_line"]: device for device in devices}
    by_offset = {device["input_offset"]: device for device in devices if device.get("input_offset") is not None}

    def device_of(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        # The byte offset does not depend on how AWS counts lines (the base of lineNumber is UNCONFIRMED).
        if isinstance(record.get("offset"), int) and record["offset"] in by_offset:
            return by_offset[record["offset"]]
        return by_line.get(record.get("lineNumber"))

    written = []
    for record in reports.get("RESULTS", []):
        device = device_of(record)
        if device is None:
            continue
        response = record.get("response") or {}
        device["status"] = "registered"
        device["certificate_id"] = registration.certificate_id_of_response(response)
        path = write_certificate(output_dir, device["name"], response.get("certificatePem"))
        if path:
            written.append(path)
    for record in reports.get("ERRORS", []):
        device = device_of(record)
        if device is None:
            continue
        device["status"] = "failed"
        device["stage"] = "task"
        device["error"] = f"line {device['input_line']}: {record.get('errorMessage') or 'failed'}"
    for device in devices:
        if device.get("status") is None:
            device["status"] = "failed"
            device["stage"] = "task"
            device["error"] = f"line {device['input_line']}: not in the task's RESULTS or ERRORS report"
    return written


# --- the whole run --------------------------------------------------------------------------------------------------


def load_template(client: Any, desired: Dict[str, Any]) -> template_engine.ProvisioningTemplate:
    if desired["template"] is not None:
        return desired["template"]
    template = registration.load_template(client, desired)
    csr_parameter = desired["csr_parameter"]
    if csr_parameter and registration.csr_parameter(template) != csr_parameter:
        raise ValidationError(
            "csr_parameter",
            f"template {desired['template_name']} does not take its certificate's CSR from parameter {csr_parameter}",
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
    desired: Dict[str, Any],
    check_mode: bool,
    fetch: Callable[[str], bytes] = http_get,
    sleep: Callable[[float], None] = time.sleep,
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Tuple[bool, Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """Plan every device, then (not in check mode) update, upload, start, wait and read the reports.

    Returns (changed, before, after, result) where before/after are the per-device plan diff.
    """
    template = load_template(iot, desired)
    devices = desired["devices"]
    changed = plan_devices(iot, template, desired, check_mode)
    before, after = _plan_diff(devices)
    to_register = [d for d in devices if d["action"] == REGISTER]
    to_update = [d for d in devices if d["action"] == UPDATE]
    body = build_input(to_register) if to_register else b""
    key = input_key(desired["key_prefix"], body) if to_register else None
    result: Dict[str, Any] = {
        "task_id": None,
        "status": None,
        "progress": [],
        "input": {"bucket": desired["bucket"], "key": key, "lines": len(to_register), "bytes": len(body)},
    }

    for device in devices:
        if device["action"] == NONE:
            device["status"] = "unchanged"
            if desired["output_dir"] and device.get("certificate_id"):
                path = os.path.join(device_dir(desired["output_dir"], device["name"]), CERTIFICATE_FILE)
                if crypto.read_file(path) is None:
                    # The device is provisioned but its certificate file is gone: write it again.
                    pem = iot.describe_certificate(certificateId=device["certificate_id"])[
                        "certificateDescription"
                    ].get("certificatePem")
                    changed |= write_certificate(desired["output_dir"], device["name"], pem, check_mode) is not None
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
        s3_factory().put_object(Bucket=desired["bucket"], Key=key, Body=body, ContentType="application/x-ndjson")
        task_id = start_task(iot, template.to_json(), desired["bucket"], key, desired["role_arn"])
        result["task_id"] = task_id
        result["status"] = "InProgress"
        for device in to_register:
            device["status"] = "submitted"
        if desired["wait"]:
            description, progress, timed_out = wait_for_task(
                iot, task_id, desired["wait_timeout"], desired["poll_interval"], sleep=sleep, report=report
            )
            result["status"] = description.get("status")
            result["progress"] = progress
            result["success_count"] = description.get("successCount", 0)
            result["failure_count"] = description.get("failureCount", 0)
            if timed_out:
                result["timed_out"] = True
            else:
                reports = read_reports(iot, task_id, fetch)
                apply_reports(to_register, reports, desired["output_dir"])
                if description.get("status") == "Failed":
                    result["task_message"] = description.get("message")
    return _finish(changed, before, after, result, devices)


def _finish(
    changed: bool, before: Dict[str, Any], after: Dict[str, Any], result: Dict[str, Any], devices: List[Dict[str, Any]]
) -> Tuple[bool, Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    result["counts"] = counts_of(devices)
    result["devices"] = [device_result(d) for d in devices]
    result["failed_devices"] = [
        {"name": d["name"], "line": d["line"], "input_line": d.get("input_line"), "error": d.get("error")}
        for d in devices
        if d.get("status") == "failed"
    ]
    return changed, before, after, result


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


__all__ = [
    "TaskBusyError",
    "apply_reports",
    "build_input",
    "ensure_present",
    "failure_message",
    "load_devices",
    "parse_devices_text",
    "plan_device",
    "running_task",
    "validate_task",
    "wait_for_task",
]
