"""Bulk registration tasks: option and device validation, device files, the input body, report mapping,
waiting, the busy-account path and the whole ensure path against stubbed clients (no network)."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task import plan as rt_plan
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task import run as rt_run
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task import spec as rt_spec
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task import task as rt_task

ROLE = "arn:aws:iam::123456789012:role/bulk"
TEMPLATE = {
    "Parameters": {"ThingName": {"Type": "String"}, "Model": {"Type": "String"}, "CSR": {"Type": "String"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Ref": "ThingName"}, "AttributePayload": {"model": {"Ref": "Model"}}},
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"},
        },
    },
}
PLAIN_TEMPLATE = {
    "Parameters": {"ThingName": {"Type": "String"}, "Model": {"Type": "String"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Ref": "ThingName"}, "AttributePayload": {"model": {"Ref": "Model"}}},
        }
    },
}


def params(**overrides):
    base = dict(
        template_body=PLAIN_TEMPLATE,
        template_name=None,
        devices=[{"ThingName": "d0", "Model": "v1"}, {"ThingName": "d1", "Model": 2}],
        devices_file=None,
        name_parameter="ThingName",
        csr_parameter=None,
        output_dir=None,
        key_type="EC",
        curve="P-256",
        key_size=2048,
        bucket="fleet-input",
        key_prefix="batches/",
        role_arn=ROLE,
        wait=True,
        wait_timeout=60,
        poll_interval=1,
        max_failures=0,
    )
    base.update(overrides)
    return base


def client(service="iot"):
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )


# --- validation ---------------------------------------------------------------------------------------------------


def test_validate_normalises_values_to_strings():
    desired = rt_spec.validate_task(
        params(devices=[{"ThingName": "d0", "Model": 2}, {"ThingName": "d1", "Model": True}])
    )
    assert [d["parameters"] for d in desired.devices] == [
        {"ThingName": "d0", "Model": "2"},
        {"ThingName": "d1", "Model": "true"},
    ]
    assert [(d["name"], d["line"]) for d in desired.devices] == [("d0", 1), ("d1", 2)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bucket": "ab"}, "bucket: must match [a-zA-Z0-9._-] and be 3 to 256 characters, got 'ab'"),
        ({"bucket": "has space"}, "bucket: must match"),
        ({"key_prefix": "bad prefix/"}, "key_prefix: must use only"),
        ({"role_arn": "arn:aws:iam::123456789012:user/x"}, "role_arn: must be an IAM role ARN"),
        ({"wait_timeout": 0}, "wait_timeout: must be greater than 0, got 0"),
        ({"max_failures": -1}, "max_failures: must be 0 or more, got -1"),
        ({"csr_parameter": "CSR"}, "csr_parameter: needs output_dir"),
        ({"devices": []}, "devices: lists no device"),
        ({"devices": [{"Model": "v1"}]}, "devices[0]: has no ThingName (name_parameter)"),
        ({"devices": [{"ThingName": "a b", "Model": "v1"}]}, "devices[0].ThingName: must match [a-zA-Z0-9:_-]"),
        ({"devices": [{"ThingName": "x" * 129, "Model": "v1"}]}, "devices[0].ThingName: must match"),
        # Matched whole: with re.match and "$", a final line break passed; a name builds output_dir/<name>/.
        ({"devices": [{"ThingName": "nl-dev\n", "Model": "v1"}]}, "devices[0].ThingName: must match"),
        ({"devices": [{"ThingName": "../../x", "Model": "v1"}]}, "devices[0].ThingName: must match"),
        ({"bucket": "fleet-input\n"}, "bucket: must match"),
        ({"key_prefix": "batches/\n"}, "key_prefix: must use only"),
        ({"role_arn": ROLE + "\n"}, "role_arn: must be an IAM role ARN"),
        ({"devices": [{"ThingName": "d", "Model": None}]}, "devices[0].Model: must be a string"),
        ({"devices": [{"ThingName": "d", "Model": {"a": 1}}]}, "devices[0].Model: must be a string"),
        ({"devices": ["d0"]}, "devices[0]: must be a map of parameter names to values, got str"),
        (
            {"devices": [{"ThingName": "d", "Model": "1"}, {"ThingName": "d", "Model": "2"}]},
            "devices[1]: device d is listed twice (also at 1)",
        ),
    ],
)
def test_validate_refuses_bad_input_naming_the_field(overrides, message):
    with pytest.raises(ValidationError) as error:
        rt_spec.validate_task(params(**overrides))
    assert message in str(error.value)


def test_validate_csr_parameter_must_be_the_templates_csr(tmp_path):
    with pytest.raises(ValidationError, match=r"csr_parameter: the template's certificate must take its CSR"):
        rt_spec.validate_task(params(template_body=TEMPLATE, csr_parameter="Model", output_dir=str(tmp_path)))
    with pytest.raises(ValidationError, match=r"devices\[0\]\.CSR: is made by the module"):
        rt_spec.validate_task(
            params(
                template_body=TEMPLATE,
                csr_parameter="CSR",
                output_dir=str(tmp_path),
                devices=[{"ThingName": "d", "Model": "1", "CSR": "x"}],
            )
        )


# --- device files -------------------------------------------------------------------------------------------------


def test_device_files_in_every_format(tmp_path):
    files = {
        "d.jsonl": '{"ThingName": "a", "Model": "1"}\n\n{"ThingName": "b", "Model": 2}\n',
        "d.json": '[{"ThingName": "a", "Model": "1"}, {"ThingName": "b", "Model": 2}]',
        "d.yml": "devices:\n  - {ThingName: a, Model: '1'}\n  - {ThingName: b, Model: 2}\n",
        "d.csv": "ThingName,Model\na,1\n\nb,2\n",
    }
    lines = {"d.jsonl": [1, 3], "d.json": [1, 2], "d.yml": [1, 2], "d.csv": [2, 4]}
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        desired = rt_spec.validate_task(params(devices=None, devices_file=str(path)))
        assert [d["parameters"] for d in desired.devices] == [
            {"ThingName": "a", "Model": "1"},
            {"ThingName": "b", "Model": "2"},
        ], name
        assert [d["line"] for d in desired.devices] == lines[name], name


def test_device_file_errors_name_the_file_line(tmp_path):
    bad_json = tmp_path / "d.jsonl"
    bad_json.write_text('{"ThingName": "a"}\n{oops\n')
    with pytest.raises(ValidationError, match=r"devices_file line 2: is not valid JSON"):
        rt_spec.validate_task(params(devices=None, devices_file=str(bad_json)))
    bad_csv = tmp_path / "d.csv"
    bad_csv.write_text("ThingName,Model\na,1,extra\n")
    with pytest.raises(ValidationError, match=r"devices_file line 2: has 3 columns, the header has 2"):
        rt_spec.validate_task(params(devices=None, devices_file=str(bad_csv)))
    with pytest.raises(ValidationError, match=r"devices_file: .*unknown format .txt"):
        rt_spec.validate_task(params(devices=None, devices_file=str(tmp_path / "d.txt")))
    with pytest.raises(ValidationError, match=r"devices_file: .* does not exist"):
        rt_spec.validate_task(params(devices=None, devices_file=str(tmp_path / "missing.csv")))
    missing_name = tmp_path / "n.csv"
    missing_name.write_text("ThingName,Model\n,1\n")
    with pytest.raises(ValidationError, match=r"devices_file line 2: has no ThingName"):
        rt_spec.validate_task(params(devices=None, devices_file=str(missing_name)))


# --- input body and reports ---------------------------------------------------------------------------------------


def test_build_input_is_json_lines_in_order_and_numbers_devices():
    devices = [{"name": "a", "parameters": {"ThingName": "a"}}, {"name": "b", "parameters": {"ThingName": "b"}}]
    body = rt_task.build_input(devices)
    assert body == b'{"ThingName":"a"}\n{"ThingName":"b"}\n'
    assert [d["input_line"] for d in devices] == [1, 2]
    assert [d["input_offset"] for d in devices] == [0, len(b'{"ThingName":"a"}\n')]
    key = rt_task.input_key("p/", body)
    assert key.startswith("p/") and key.endswith(".jsonl") and rt_task.input_key("p/", body) == key
    assert rt_task.input_key("p/", body + b"x") != key


def test_build_input_refuses_a_line_over_256_kb():
    devices = [{"name": "big", "parameters": {"ThingName": "big", "X": "a" * (256 * 1024)}}]
    with pytest.raises(ValidationError, match=r"device big: its input line is \d+ bytes; AWS takes at most 262144"):
        rt_task.build_input(devices)


def test_apply_reports_maps_lines_to_devices_and_writes_certificates(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    devices = [
        {"name": "a", "input_line": 1},
        {"name": "b", "input_line": 2},
        {"name": "c", "input_line": 3},
    ]
    reports = {
        "RESULTS": [
            {
                "lineNumber": 1,
                "offset": 0,
                "response": {
                    "certificatePem": pem,
                    "resourceArns": {"certificate": "arn:aws:iot:us-east-1:1:cert/" + "ab" * 32},
                },
            }
        ],
        "ERRORS": [{"errorMessage": "ResourceRegistrationFailureException: no type", "lineNumber": 2}],
    }
    written = rt_task.apply_reports(devices, reports, str(tmp_path))
    assert written == [os.path.join(str(tmp_path), "a", "certificate.pem.crt")]
    assert (tmp_path / "a" / "certificate.pem.crt").read_text() == pem
    assert devices[0]["status"] == "registered" and devices[0]["certificate_id"] == "ab" * 32
    assert devices[1]["status"] == "failed"
    assert devices[1]["error"] == "line 2: ResourceRegistrationFailureException: no type"
    # A line in neither report is a failure too, never silently "done".
    assert devices[2]["status"] == "failed" and "not in the task's RESULTS or ERRORS report" in devices[2]["error"]


def test_apply_reports_prefers_the_byte_offset_to_the_line_number(tmp_path):
    # Were AWS to count lines from 0, the offset still names the right device.
    devices = [{"name": "a", "input_line": 1, "input_offset": 0}, {"name": "b", "input_line": 2, "input_offset": 18}]
    reports = {
        "RESULTS": [{"lineNumber": 0, "offset": 0, "response": {}}],
        "ERRORS": [{"errorMessage": "X: y", "lineNumber": 1, "offset": 18}],
    }
    rt_task.apply_reports(devices, reports, None)
    assert devices[0]["status"] == "registered"
    assert devices[1]["status"] == "failed" and devices[1]["error"] == "line 2: X: y"


def test_parse_report_is_lenient():
    assert rt_task.parse_report(b'{"lineNumber": 1}\nnot json\n\n[1]\n{"lineNumber": 2}\n') == [
        {"lineNumber": 1},
        {"lineNumber": 2},
    ]


# --- waiting ------------------------------------------------------------------------------------------------------


class FakeTaskClient:
    def __init__(self, descriptions):
        self.descriptions = list(descriptions)
        self.calls = 0

    def describe_thing_registration_task(self, taskId):
        self.calls += 1
        return self.descriptions.pop(0) if len(self.descriptions) > 1 else self.descriptions[0]


def describe(status, pct, ok, bad):
    return {"status": status, "percentageProgress": pct, "successCount": ok, "failureCount": bad}


def test_wait_records_progress_only_when_it_changes():
    fake = FakeTaskClient(
        [
            describe("InProgress", 0, 0, 0),
            describe("InProgress", 0, 0, 0),
            describe("InProgress", 50, 1, 0),
            describe("Completed", 100, 1, 1),
        ]
    )
    slept = []
    seen = []
    final, progress, timed_out = rt_task.wait_for_task(fake, "t", 60, 2, sleep=slept.append, report=seen.append)
    assert final["status"] == "Completed" and not timed_out
    assert [p["percentage_progress"] for p in progress] == [0, 50, 100]
    assert seen == progress
    assert slept == [2, 2, 2]


def test_wait_times_out_with_the_last_status():
    fake = FakeTaskClient([describe("InProgress", 10, 1, 0)])
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    final, _progress, timed_out = rt_task.wait_for_task(fake, "t", 5, 2, sleep=sleep, clock=lambda: now[0])
    assert timed_out and final["status"] == "InProgress"
    assert fake.calls == 4  # at 0, 2, 4, 5 seconds
    message = rt_run.failure_message({"timed_out": True, "task_id": "t", "status": "InProgress"}, 0)
    assert "thing registration task t did not finish within wait_timeout" in message


def test_failure_message_counts_failures_against_max_failures():
    failed = [{"name": "a", "line": 2, "error": "boom"}, {"name": "b", "line": 5, "error": "bang"}]
    result = {"status": "Completed", "failed_devices": failed}
    assert rt_run.failure_message(result, 2) is None
    message = rt_run.failure_message(result, 1)
    assert message == "2 device(s) failed, more than max_failures 1: a (line 2): boom; b (line 5): bang"
    assert "ended Failed: bucket gone" in rt_run.failure_message(
        {"status": "Failed", "task_id": "t", "task_message": "bucket gone"}, 0
    )


# --- the busy account (one task per account) ----------------------------------------------------------------------


def test_running_task_is_named_and_start_refused_before_upload():
    iot = client()
    with Stubber(iot) as stub:
        stub.add_response("list_thing_registration_tasks", {"taskIds": ["other-task"]}, {"status": "InProgress"})
        assert rt_task.running_task(iot) == "other-task"
        stub.assert_no_pending_responses()


def test_start_refused_by_aws_reports_the_running_task():
    iot = client()
    with Stubber(iot) as stub:
        stub.add_client_error("start_thing_registration_task", "InvalidRequestException", "only one task may run", 400)
        stub.add_response("list_thing_registration_tasks", {"taskIds": ["racing-task"]}, {"status": "InProgress"})
        with pytest.raises(rt_spec.TaskBusyError) as error:
            rt_task.start_task(iot, "{}", "fleet-input", "k.jsonl", ROLE)
    assert str(error.value).startswith("thing registration task racing-task is still running in this account")
    assert "one task per account" in str(error.value)


def test_start_refused_for_another_reason_is_not_reported_as_busy():
    iot = client()
    with Stubber(iot) as stub:
        stub.add_client_error("start_thing_registration_task", "InvalidRequestException", "bad role", 400)
        stub.add_response("list_thing_registration_tasks", {"taskIds": []}, {"status": "InProgress"})
        stub.add_response("list_thing_registration_tasks", {"taskIds": []}, {"status": "Cancelling"})
        with pytest.raises(Exception) as error:
            rt_task.start_task(iot, "{}", "fleet-input", "k.jsonl", ROLE)
    assert not isinstance(error.value, rt_spec.TaskBusyError)
    assert "bad role" in str(error.value)


# --- the whole path, stubbed --------------------------------------------------------------------------------------


def _no_thing(stub, name):
    stub.add_client_error("describe_thing", "ResourceNotFoundException", "no", 404, {"thingName": name})


def test_ensure_present_busy_account_uploads_nothing():
    iot, s3 = client(), client("s3")
    desired = rt_spec.validate_task(params(devices=[{"ThingName": "d0", "Model": "v1"}]))
    with Stubber(iot) as stub, Stubber(s3):
        _no_thing(stub, "d0")
        stub.add_response("list_thing_registration_tasks", {"taskIds": ["busy-1"]}, {"status": "InProgress"})
        with pytest.raises(rt_spec.TaskBusyError, match="busy-1"):
            rt_run.ensure_present(iot, lambda: s3, desired, False)
        stub.assert_no_pending_responses()


def test_ensure_present_check_mode_plans_without_calls_that_change(tmp_path):
    iot = client()
    desired = rt_spec.validate_task(params())

    def no_s3():
        raise AssertionError("check mode must not touch S3")

    with Stubber(iot) as stub:
        _no_thing(stub, "d0")
        _no_thing(stub, "d1")
        done = rt_run.ensure_present(iot, no_s3, desired, True)
        changed, before, after, result = done.changed, done.before, done.after, done.extra
        stub.assert_no_pending_responses()
    assert changed
    assert result["task_id"] is None
    assert result["counts"] == {"total": 2, "none": 0, "register": 2, "update": 0, "failed": 0}
    assert result["input"]["lines"] == 2
    assert after["d1"]["thing.thing"]["attributes"] == {"model": "2"}
    assert before["d1"]["thing.thing"] is None


def test_ensure_present_runs_the_task_and_maps_the_reports():
    iot, s3 = client(), client("s3")
    desired = rt_spec.validate_task(params())
    fetched = []
    results = json.dumps({"lineNumber": 1, "offset": 0, "response": {"resourceArns": {"thing": "arn:t"}}}) + "\n"
    errors = json.dumps({"errorMessage": "InvalidRequestException: nope", "lineNumber": 2, "response": None}) + "\n"
    bodies = {"http://r/results": results.encode(), "http://r/errors": errors.encode()}

    def fetch(url):
        fetched.append(url)
        return bodies[url]

    with Stubber(iot) as stub, Stubber(s3) as s3_stub:
        _no_thing(stub, "d0")
        _no_thing(stub, "d1")
        stub.add_response("list_thing_registration_tasks", {"taskIds": []}, {"status": "InProgress"})
        stub.add_response("list_thing_registration_tasks", {"taskIds": []}, {"status": "Cancelling"})
        s3_stub.add_response("put_object", {})
        stub.add_response("start_thing_registration_task", {"taskId": "task-1"})
        stub.add_response(
            "describe_thing_registration_task",
            {
                "taskId": "task-1",
                "status": "Completed",
                "percentageProgress": 100,
                "successCount": 1,
                "failureCount": 1,
            },
        )
        stub.add_response("list_thing_registration_task_reports", {"resourceLinks": ["http://r/results"]})
        stub.add_response("list_thing_registration_task_reports", {"resourceLinks": ["http://r/errors"]})
        done = rt_run.ensure_present(iot, lambda: s3, desired, False, fetch=fetch)
        changed, _before, _after, result = done.changed, done.before, done.after, done.extra
        stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    assert changed and result["task_id"] == "task-1" and result["status"] == "Completed"
    assert fetched == ["http://r/results", "http://r/errors"]
    assert [d["status"] for d in result["devices"]] == ["registered", "failed"]
    assert result["failed_devices"] == [
        {"name": "d1", "line": 2, "input_line": 2, "error": "line 2: InvalidRequestException: nope"}
    ]
    assert "d1 (line 2)" in rt_run.failure_message(result, 0)
    assert rt_run.failure_message(result, 1) is None


def test_plan_failure_is_a_device_error_not_a_module_error():
    iot = client()
    desired = rt_spec.validate_task(params(devices=[{"ThingName": "d0"}]))  # Model has no value and no Default
    with Stubber(iot) as stub:
        done = rt_run.ensure_present(iot, lambda: None, desired, True)
        changed, _b, _a, result = done.changed, done.before, done.after, done.extra
        stub.assert_no_pending_responses()
    assert not changed
    assert result["counts"]["failed"] == 1
    assert result["failed_devices"][0]["name"] == "d0"
    assert "Parameters.Model: no value given and no Default" in result["failed_devices"][0]["error"]


def test_csr_keys_are_made_once_and_not_in_check_mode(tmp_path):
    desired = rt_spec.validate_task(
        params(
            template_body=TEMPLATE,
            csr_parameter="CSR",
            output_dir=str(tmp_path),
            devices=[{"ThingName": "d0", "Model": "1"}],
        )
    )
    device = desired.devices[0]
    assert rt_plan.prepare_csr(desired, device, True) is True
    assert not (tmp_path / "d0").exists()
    assert "BEGIN CERTIFICATE REQUEST" in device["parameters"]["CSR"]
    assert rt_plan.prepare_csr(desired, dict(device, parameters={}), False) is True
    key_path = tmp_path / "d0" / "private.pem.key"
    assert oct(os.stat(key_path).st_mode & 0o777) == "0o600"
    key = key_path.read_bytes()
    assert rt_plan.prepare_csr(desired, dict(device, parameters={}), False) is False
    assert key_path.read_bytes() == key
