"""Bulk thing registration tasks, which moto lacks, served by the local AWS IoT endpoint.

StartThingRegistrationTask, DescribeThingRegistrationTask, ListThingRegistrationTasks,
StopThingRegistrationTask and ListThingRegistrationTaskReports, as handlers on moto's ``IoTResponse`` (moto
routes restJson operations by the botocore model's URIs; requests are parsed and responses serialized by the
model, so field names and types are the model's).

A task reads its input file (newline-delimited JSON, one parameter object per device) from moto's S3 in the
same account, and a background thread registers one device per line with ``provisioning_api``'s RegisterThing
engine (the same planning and apply as the RegisterThing API, not a second engine). With the quotas switch on
(traffic.py) the lines go at RegisterThing's rate. At the end the reports are written as S3 objects in the
input bucket under ``thing-registration-task-reports/<taskId>/`` (JSON lines) and
ListThingRegistrationTaskReports answers presigned-style links to them, served by moto's S3 on this same
endpoint. TRAFFIC.md beside this file documents the behaviours and what could not be confirmed.

State lives on moto's IoTBackend (per account and region), so ``POST /moto-api/reset`` forgets the tasks; a
running task notices and stops. Nothing here imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import provisioning_api
import traffic
from botocore.config import Config
from botocore.session import get_session
from fidelity_core import OPTIONS
from fidelity_paging import page
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.iam.models import iam_backends
from moto.iot.models import IoTBackend, iot_backends
from moto.iot.responses import IoTResponse
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition
from provisioning_api import IoTError, TemplateError, invalid, not_found

IN_PROGRESS, COMPLETED, FAILED, CANCELLED, CANCELLING = "InProgress", "Completed", "Failed", "Cancelled", "Cancelling"
RUNNING = (IN_PROGRESS, CANCELLING)
REPORT_TYPES = ("RESULTS", "ERRORS")
REPORT_PREFIX = "thing-registration-task-reports"
MAX_LINE_BYTES = 256 * 1024  # AWS: each line of the input file is at most 256 KB
REPORT_LINK_SECONDS = 3600
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")

_LOCK = threading.Lock()  # the task bookkeeping (the RegisterThing engine has provisioning_api._LOCK)
_STATE_KEY = "_local_registration_tasks"
_INSTALLED = False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------- state


@dataclass
class Line:
    """One device of the input file: 1-based line number, byte offset of its start, its raw bytes."""

    number: int
    offset: int
    raw: bytes


@dataclass
class RegistrationTask:
    task_id: str
    template_body: str
    bucket: str
    key: str
    role_arn: str
    lines: list[Line]
    creation_date: datetime.datetime
    last_modified_date: datetime.datetime
    status: str = IN_PROGRESS
    message: str | None = None
    success_count: int = 0
    failure_count: int = 0
    reports: dict[str, str] = field(default_factory=dict)  # report type -> S3 key (only non-empty reports)
    stop: threading.Event = field(default_factory=threading.Event)

    def percentage(self) -> int:
        if not self.lines:
            return 100 if self.status == COMPLETED else 0
        return (self.success_count + self.failure_count) * 100 // len(self.lines)

    def describe(self) -> dict[str, Any]:
        answer = {
            "taskId": self.task_id,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "templateBody": self.template_body,
            "inputFileBucket": self.bucket,
            "inputFileKey": self.key,
            "roleArn": self.role_arn,
            "status": self.status,
            "successCount": self.success_count,
            "failureCount": self.failure_count,
            "percentageProgress": self.percentage(),
        }
        if self.message is not None:
            answer["message"] = self.message
        return answer


@dataclass
class TaskState:
    tasks: OrderedDict[str, RegistrationTask] = field(default_factory=OrderedDict)


def state_of(backend: IoTBackend) -> TaskState:
    """The tasks of one account and region (moto's reset replaces the backend's ``__dict__``, and with it this)."""
    existing = backend.__dict__.get(_STATE_KEY)
    if existing is None:
        existing = backend.__dict__.setdefault(_STATE_KEY, TaskState())
    return existing


def _current(backend: IoTBackend, state: TaskState) -> bool:
    return backend.__dict__.get(_STATE_KEY) is state


def s3_backend(account_id: str, region: str) -> Any:
    return s3_backends[account_id][get_partition(region)]


def iam_backend(account_id: str, region: str) -> Any:
    return iam_backends[account_id][get_partition(region)]


# --------------------------------------------------------------------------- input and lines


def split_lines(data: bytes) -> list[Line]:
    """The non-blank lines of a newline-delimited file, with their 1-based numbers and byte offsets."""
    lines = []
    offset = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        stripped = raw.rstrip(b"\r")
        if stripped.strip():
            lines.append(Line(number, offset, stripped))
        offset += len(raw) + 1
    return lines


def error_text(error: BaseException) -> str:
    """``Code: message`` for an AWS-style error (ours or moto's), else the exception's text."""
    if isinstance(error, ServiceException):
        code, message = error.code, error.message
    else:
        code = getattr(error, "error_type", None) or type(error).__name__
        message = getattr(error, "message", None) or str(error)
    return f"{code}: {message}"


def line_parameters(line: Line) -> dict[str, Any]:
    """The parameter object of one line; raises ValueError with the reason when the line is not one."""
    if len(line.raw) > MAX_LINE_BYTES:
        raise ValueError(f"InvalidRequestException: the line is {len(line.raw)} bytes, over {MAX_LINE_BYTES}")
    try:
        parameters = json.loads(line.raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"InvalidRequestException: the line is not valid JSON: {error}") from error
    if not isinstance(parameters, dict):
        raise ValueError("InvalidRequestException: the line must be a JSON object of parameter names to values")
    return parameters


def register_line(backend: IoTBackend, template_body: str, line: Line) -> dict[str, Any]:
    """One RegisterThing for one line: the response, or ValueError with the error message."""
    parameters = line_parameters(line)
    with provisioning_api._LOCK:
        try:
            plan = provisioning_api.plan_registration(backend, template_body, parameters)
            return provisioning_api.apply_registration(backend, plan)
        except Exception as error:  # every failure is this line's failure, reported with its code
            raise ValueError(error_text(error)) from error


def result_record(line: Line, response: dict[str, Any]) -> dict[str, Any]:
    return {"lineNumber": line.number, "offset": line.offset, "response": response}


def error_record(line: Line, message: str) -> dict[str, Any]:
    return {"errorMessage": message, "lineNumber": line.number, "offset": line.offset, "response": None}


def report_key(task_id: str, report_type: str) -> str:
    return f"{REPORT_PREFIX}/{task_id}/{report_type.lower()}.jsonl"


# --------------------------------------------------------------------------- the worker


class TaskFailure(Exception):
    """The task as a whole cannot go on; the message becomes DescribeThingRegistrationTask's ``message``."""


def _touch(task: RegistrationTask, **changes: Any) -> None:
    with _LOCK:
        for name, value in changes.items():
            setattr(task, name, value)
        task.last_modified_date = _now()


def run_task(backend: IoTBackend, state: TaskState, task: RegistrationTask) -> None:
    """Register every line, then write the reports and settle the status (runs in its own thread)."""
    reports: dict[str, list[dict[str, Any]]] = {"RESULTS": [], "ERRORS": []}

    def stopping() -> bool:
        return task.stop.is_set() or not _current(backend, state)

    try:
        for line in task.lines:
            if stopping():
                break
            if not traffic.TRAFFIC.wait_for_token(traffic.TASK_LINE_BUCKET, traffic.TASK_LINE_TPS_OF, stopping):
                break
            if not _current(backend, state):
                return  # the endpoint was reset: this task no longer exists
            try:
                response = register_line(backend, task.template_body, line)
            except ValueError as error:
                reports["ERRORS"].append(error_record(line, str(error)))
                _touch(task, failure_count=task.failure_count + 1)
            else:
                reports["RESULTS"].append(result_record(line, response))
                _touch(task, success_count=task.success_count + 1)
        if not _current(backend, state):
            return
        written = write_reports(backend, task, reports)
        _touch(task, reports=written, status=CANCELLED if task.stop.is_set() else COMPLETED)
    except Exception as error:  # the task as a whole could not finish (e.g. the bucket went away)
        text = str(error) if isinstance(error, TaskFailure) else f"the task failed: {error_text(error)}"
        _touch(task, status=FAILED, message=text[:2048])


def write_reports(backend: IoTBackend, task: RegistrationTask, reports: dict[str, list[Any]]) -> dict[str, str]:
    """Each non-empty report as a JSON-lines object in the input bucket; report type -> key."""
    s3 = s3_backend(backend.account_id, backend.region_name)
    written = {}
    for report_type, records in reports.items():
        if records:
            key = report_key(task.task_id, report_type)
            body = "".join(json.dumps(record) + "\n" for record in records).encode()
            try:
                s3.put_object(task.bucket, key, body)
            except Exception as error:
                raise TaskFailure(
                    f"the {report_type} report could not be written to s3://{task.bucket}/{key}: {error_text(error)}"
                ) from error
            written[report_type] = key
    return written


# --------------------------------------------------------------------------- handlers


def _params(response: IoTResponse) -> dict[str, Any]:
    response.parse_parameters(response.normalized_request)
    return dict(response.params)


def _task(backend: IoTBackend, task_id: Any, error: Callable[[str], IoTError]) -> RegistrationTask:
    task = state_of(backend).tasks.get(task_id)
    if task is None:
        raise error(f"Thing registration task {task_id} does not exist")
    return task


def running_tasks(account_id: str) -> list[tuple[str, RegistrationTask]]:
    """(region, task) of every task of the account still running, in any region (call with _LOCK held)."""
    return [
        (region, task)
        for region, backend in list(iot_backends[account_id].items())
        for task in (backend.__dict__.get(_STATE_KEY) or TaskState()).tasks.values()
        if task.status in RUNNING
    ]


def _input_lines(account_id: str, region: str, bucket: str, key: str) -> list[Line]:
    s3 = s3_backend(account_id, region)
    try:
        obj = s3.get_object(bucket, key)
    except Exception as error:  # MissingBucket
        raise invalid(f"inputFileBucket: bucket {bucket} does not exist") from error
    if obj is None:
        raise invalid(f"inputFileKey: no object {key} in bucket {bucket}")
    return split_lines(bytes(obj.value))


def start_thing_registration_task(self: IoTResponse) -> ActionResult:
    params = _params(self)
    backend = self.iot_backend
    account_id, region = backend.account_id, backend.region_name
    body = params.get("templateBody")
    try:
        provisioning_api.parse_template(body)
    except TemplateError as error:
        raise invalid(str(error)) from error
    role_arn = params.get("roleArn")
    if not isinstance(role_arn, str) or not ROLE_ARN_RE.match(role_arn):
        raise invalid(f"roleArn: not an IAM role ARN: {role_arn!r}")
    try:
        iam_backend(account_id, region).get_role_by_arn(role_arn)
    except Exception as error:  # IAM NotFoundException
        raise invalid(f"roleArn: role {role_arn} does not exist") from error
    bucket, key = params.get("inputFileBucket"), params.get("inputFileKey")
    lines = _input_lines(account_id, region, bucket, key)
    with _LOCK:
        state = state_of(backend)
        running = running_tasks(account_id)
        if running:
            # AWS: one task per account at a time. The model lists no LimitExceededException for this call,
            # so the code is InvalidRequestException (UNCONFIRMED which one AWS sends).
            other_region, other = running[0]
            raise invalid(
                f"Thing registration task {other.task_id} is still running in {other_region}; "
                "only one task per account can run at a time"
            )
        now = _now()
        task = RegistrationTask(str(uuid.uuid4()), body, bucket, key, role_arn, lines, now, now)
        state.tasks[task.task_id] = task
    threading.Thread(target=run_task, args=(backend, state, task), name=f"task-{task.task_id}", daemon=True).start()
    return ActionResult({"taskId": task.task_id})


def describe_thing_registration_task(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        return ActionResult(_task(self.iot_backend, params.get("taskId"), not_found).describe())


def list_thing_registration_tasks(self: IoTResponse) -> ActionResult:
    params = _params(self)
    wanted = params.get("status")
    with _LOCK:
        ids = [
            task.task_id
            for task in state_of(self.iot_backend).tasks.values()
            if wanted is None or task.status == wanted
        ]
    limit = params.get("maxResults") or OPTIONS.default_page_size
    items, token = page(ids, int(limit), params.get("nextToken"))
    answer: dict[str, Any] = {"taskIds": items}
    if token:
        answer["nextToken"] = token
    return ActionResult(answer)


def stop_thing_registration_task(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        task = _task(self.iot_backend, params.get("taskId"), not_found)
        if task.status not in RUNNING:
            raise invalid(f"Thing registration task {task.task_id} is {task.status}; only a running task can stop")
        if task.status == IN_PROGRESS:
            task.status = CANCELLING
            task.last_modified_date = _now()
            task.stop.set()
    return EmptyResult()


_PRESIGNERS: dict[tuple[str, str], Any] = {}
_PRESIGNERS_LOCK = threading.Lock()


def report_link(endpoint: str, region: str, bucket: str, key: str) -> str:
    """A presigned GET URL for the report object on this endpoint's S3 (moto serves unsigned-header GETs)."""
    with _PRESIGNERS_LOCK:
        client = _PRESIGNERS.get((endpoint, region))
        if client is None:
            client = get_session().create_client(
                "s3",
                region_name=region,
                endpoint_url=endpoint,
                aws_access_key_id="local-iot",
                aws_secret_access_key="local-iot",
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
            _PRESIGNERS[(endpoint, region)] = client
    return client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=REPORT_LINK_SECONDS
    )


def list_thing_registration_task_reports(self: IoTResponse) -> ActionResult:
    params = _params(self)
    report_type = params.get("reportType")
    backend = self.iot_backend
    with _LOCK:
        # The model lists no ResourceNotFoundException for this call.
        task = _task(backend, params.get("taskId"), invalid)
        key = task.reports.get(report_type)
        bucket = task.bucket
    environ = self.normalized_request.environ
    host = self.headers.get("Host") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    endpoint = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
    links = [report_link(endpoint, backend.region_name, bucket, key)] if key else []
    limit = params.get("maxResults") or OPTIONS.default_page_size
    items, token = page(links, int(limit), params.get("nextToken"))
    answer: dict[str, Any] = {"resourceLinks": items, "reportType": report_type}
    if token:
        answer["nextToken"] = token
    return ActionResult(answer)


HANDLERS: dict[str, Callable[[IoTResponse], Any]] = {
    "start_thing_registration_task": start_thing_registration_task,
    "describe_thing_registration_task": describe_thing_registration_task,
    "list_thing_registration_tasks": list_thing_registration_tasks,
    "stop_thing_registration_task": stop_thing_registration_task,
    "list_thing_registration_task_reports": list_thing_registration_task_reports,
}


def install() -> None:
    """Register the handlers on moto's IoTResponse (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    for name, handler in HANDLERS.items():
        setattr(IoTResponse, name, handler)
    _INSTALLED = True
