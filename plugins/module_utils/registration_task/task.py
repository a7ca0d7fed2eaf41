# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The task itself: the input file in S3, starting it, waiting for it, and its RESULTS and ERRORS reports."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.module_utils.urls import open_url

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    crypto,
    registration,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import iter_pages
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.plan import (
    device_dir,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.spec import (
    CERTIFICATE_FILE,
    DEVICE_DIR_MODE,
    DONE_STATUSES,
    MAX_LINE_BYTES,
    REPORT_TYPES,
    RUNNING_STATUSES,
    TaskBusyError,
)

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
