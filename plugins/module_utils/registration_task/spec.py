# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registration task's input: its limits, the devices (a list or a devices file) and validate_task."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    crypto,
    devices_file,
    keys,
    registration,
    template_engine,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import scalar_text, validate_declared

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


def busy_message(task_id: str) -> str:
    return (
        f"thing registration task {task_id} is still running in this account; AWS runs one task per account at a "
        "time: wait for it to finish (or stop it with StopThingRegistrationTask) and run this task again"
    )


class TaskBusyError(ValidationError):
    """Another registration task is running in the account (AWS runs one per account at a time)."""

    def __init__(self, task_id: str):
        super().__init__("task", busy_message(task_id))
        self.task_id = task_id
        self.args = (busy_message(task_id),)


# --- input ------------------------------------------------------------------------------------------------------


def _string_value(value: Any, where: str) -> str:
    text = scalar_text(value)
    if text is not None:
        return text
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


@dataclass(frozen=True)
class DesiredTask:
    """The registration task the options ask for. ``devices`` are dicts (line, name, parameters) that the plan and
    the run annotate as they go (action, status, certificate_id...); ``template`` is None when ``template_name``
    is to be read from AWS."""

    devices: List[Dict[str, Any]]
    bucket: str
    key_prefix: str
    role_arn: str
    template: Optional[template_engine.ProvisioningTemplate] = None
    template_name: Optional[str] = None
    name_parameter: str = "ThingName"
    csr_parameter: Optional[str] = None
    output_dir: Optional[str] = None
    wait: bool = True
    wait_timeout: int = 600
    poll_interval: int = 5
    max_failures: int = 0
    key_spec: Optional[Any] = None
    declared_policies: Optional[List[str]] = None


def validate_task(params: Dict[str, Any]) -> DesiredTask:
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

    return DesiredTask(
        template=template,
        template_name=params.get("template_name"),
        devices=devices,
        name_parameter=name_parameter,
        csr_parameter=csr_parameter,
        output_dir=output_dir,
        bucket=bucket,
        key_prefix=prefix,
        role_arn=role_arn,
        wait=params.get("wait", True),
        wait_timeout=params.get("wait_timeout") or 600,
        poll_interval=params.get("poll_interval") or 5,
        max_failures=max_failures,
        key_spec=keys.validate_key_spec(params) if csr_parameter else None,
        declared_policies=validate_declared(params.get("declared_resources"), ("policies",))["policies"],
    )
