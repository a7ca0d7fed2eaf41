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

The package, by stage: spec (limits, the devices, validate_task), plan (per device, offline
against the template), task (the input file, starting and waiting for the task, its reports) and run
(ensure_present, results). Import from the package: the names below are its interface.
"""

from __future__ import annotations

from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.plan import (
    device_dir,
    plan_device,
    plan_devices,
    prepare_csr,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.run import (
    counts_of,
    device_result,
    ensure_present,
    failure_message,
    load_template,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.spec import (
    BUCKET_PATTERN,
    CERTIFICATE_FILE,
    DEVICE_DIR_MODE,
    DEVICE_FILE_FORMATS,
    DEVICE_NAME_PATTERN,
    DONE_STATUSES,
    FAILED,
    KEY_CHARACTERS,
    KEY_MAX,
    MAX_LINE_BYTES,
    NONE,
    PRIVATE_KEY_FILE,
    REGISTER,
    REPORT_TYPES,
    ROLE_ARN_MAX,
    ROLE_ARN_MIN,
    ROLE_ARN_PATTERN,
    RUNNING_STATUSES,
    UPDATE,
    TaskBusyError,
    busy_message,
    device_file_format,
    load_devices,
    normalise_parameters,
    parse_devices_text,
    validate_task,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.task import (
    apply_reports,
    build_input,
    http_get,
    input_key,
    parse_report,
    progress_entry,
    read_reports,
    running_task,
    start_task,
    wait_for_task,
    write_certificate,
)

__all__ = [
    "BUCKET_PATTERN",
    "CERTIFICATE_FILE",
    "DEVICE_DIR_MODE",
    "DEVICE_FILE_FORMATS",
    "DEVICE_NAME_PATTERN",
    "DONE_STATUSES",
    "FAILED",
    "KEY_CHARACTERS",
    "KEY_MAX",
    "MAX_LINE_BYTES",
    "NONE",
    "PRIVATE_KEY_FILE",
    "REGISTER",
    "REPORT_TYPES",
    "ROLE_ARN_MAX",
    "ROLE_ARN_MIN",
    "ROLE_ARN_PATTERN",
    "RUNNING_STATUSES",
    "UPDATE",
    "TaskBusyError",
    "apply_reports",
    "build_input",
    "busy_message",
    "counts_of",
    "device_dir",
    "device_file_format",
    "device_result",
    "ensure_present",
    "failure_message",
    "http_get",
    "input_key",
    "load_devices",
    "load_template",
    "normalise_parameters",
    "parse_devices_text",
    "parse_report",
    "plan_device",
    "plan_devices",
    "prepare_csr",
    "progress_entry",
    "read_reports",
    "running_task",
    "start_task",
    "validate_task",
    "wait_for_task",
    "write_certificate",
]
