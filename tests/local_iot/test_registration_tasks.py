"""Thing registration tasks of the local endpoint (registration_tasks.py), driven with plain boto3.

One endpoint for the module (started with launcher.py), reset before every test (moto's state and the traffic
switches). Every outcome is read back independently: things and certificates through the normal IoT APIs, the
reports by a plain HTTP GET of the links the endpoint hands out.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from typing import Any, Iterator

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import error_of, module_endpoint

BUCKET = "bulk-input"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
TEMPLATE = json.dumps(
    {
        "Parameters": {
            "ThingName": {"Type": "String"},
            "SerialNumber": {"Type": "String", "Default": "none"},
            "CSR": {"Type": "String"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "ThingName"},
                    "AttributePayload": {"serial": {"Ref": "SerialNumber"}},
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"},
            },
        },
    }
)
THING_ONLY = json.dumps(
    {
        "Parameters": {"ThingName": {"Type": "String"}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}}},
    }
)


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("registration_tasks") as url:
        yield url


def post(url: str, payload: Any = None, method: str = "POST") -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=10) as response:
        return json.loads(response.read() or b"null")


class Aws:
    def __init__(self, endpoint: str) -> None:
        common = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.endpoint = endpoint
        self.iot = boto3.client("iot", **common)
        self.s3 = boto3.client("s3", **common)
        self.iam = boto3.client("iam", **common)
        self.s3.create_bucket(Bucket=BUCKET)
        role = self.iam.create_role(RoleName="bulk-registration", AssumeRolePolicyDocument=TRUST)
        self.role_arn = role["Role"]["Arn"]

    def upload(self, key: str, lines: list[str]) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode())
        return key

    def start(self, key: str, template: str = TEMPLATE) -> str:
        return self.iot.start_thing_registration_task(
            templateBody=template, inputFileBucket=BUCKET, inputFileKey=key, roleArn=self.role_arn
        )["taskId"]

    def wait(self, task_id: str, statuses: tuple[str, ...] = ("Completed", "Failed", "Cancelled")) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            task = self.iot.describe_thing_registration_task(taskId=task_id)
            if task["status"] in statuses:
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} still {task['status']} after 20 s")

    def report(self, task_id: str, report_type: str) -> list[dict[str, Any]]:
        """The report's JSON lines, fetched with a plain GET of the links (no AWS client, no signature)."""
        answer = self.iot.list_thing_registration_task_reports(taskId=task_id, reportType=report_type)
        assert answer["reportType"] == report_type
        records = []
        for link in answer["resourceLinks"]:
            assert link.startswith(self.endpoint + "/")
            with urllib.request.urlopen(link, timeout=10) as response:
                records += [json.loads(line) for line in response.read().decode().splitlines() if line]
        return records


@pytest.fixture
def aws(endpoint: str) -> Aws:
    post(f"{endpoint}/_local/traffic", method="DELETE")
    post(f"{endpoint}/moto-api/reset")
    return Aws(endpoint)


def make_csr(name: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def public_der(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --------------------------------------------------------------------------- a task that succeeds


def test_task_registers_every_line_and_reports_the_results(aws: Aws) -> None:
    devices = {f"bulk-{i}": make_csr(f"bulk-{i}") for i in range(3)}
    lines = [
        json.dumps({"ThingName": name, "SerialNumber": f"sn{i}", "CSR": csr})
        for i, (name, (csr, _key)) in enumerate(devices.items())
    ]
    aws.upload("devices/input.jsonl", lines)
    task_id = aws.start("devices/input.jsonl")

    task = aws.wait(task_id)
    assert task["status"] == "Completed"
    assert (task["successCount"], task["failureCount"], task["percentageProgress"]) == (3, 0, 100)
    assert task["templateBody"] == TEMPLATE
    assert (task["inputFileBucket"], task["inputFileKey"], task["roleArn"]) == (
        BUCKET,
        "devices/input.jsonl",
        aws.role_arn,
    )
    assert task["creationDate"] <= task["lastModifiedDate"]
    assert "message" not in task

    results = aws.report(task_id, "RESULTS")
    assert [record["lineNumber"] for record in results] == [1, 2, 3]
    offsets = [0, len(lines[0]) + 1, len(lines[0]) + len(lines[1]) + 2]
    assert [record["offset"] for record in results] == offsets
    for i, (name, (_csr, key)) in enumerate(devices.items()):
        thing = aws.iot.describe_thing(thingName=name)
        assert thing["attributes"] == {"serial": f"sn{i}"}
        response = results[i]["response"]
        assert response["resourceArns"]["thing"] == thing["thingArn"]
        certificate = x509.load_pem_x509_certificate(response["certificatePem"].encode())
        assert public_der(certificate.public_key()) == public_der(key.public_key())  # the CSR's key
        principals = aws.iot.list_thing_principals(thingName=name)["principals"]
        assert principals == [response["resourceArns"]["certificate"]]
        certificate_id = principals[0].rsplit("/", 1)[1]
        assert (
            aws.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"] == "ACTIVE"
        )
    assert aws.report(task_id, "ERRORS") == []

    assert aws.iot.list_thing_registration_tasks()["taskIds"] == [task_id]
    assert aws.iot.list_thing_registration_tasks(status="Completed")["taskIds"] == [task_id]
    assert aws.iot.list_thing_registration_tasks(status="InProgress")["taskIds"] == []


def test_failed_lines_are_reported_with_their_line_numbers(aws: Aws) -> None:
    csr = make_csr("x")[0]
    lines = [
        json.dumps({"ThingName": "good-1", "CSR": csr}),
        json.dumps({"SerialNumber": "sn-missing-name", "CSR": csr}),  # ThingName has no value and no Default
        "",  # blank: not a device
        "{not json",
        json.dumps({"ThingName": "good-5", "CSR": csr}),
    ]
    aws.upload("mixed.jsonl", lines)
    task = aws.wait(aws.start("mixed.jsonl"))
    assert task["status"] == "Completed"
    assert (task["successCount"], task["failureCount"], task["percentageProgress"]) == (2, 2, 100)

    errors = aws.report(task["taskId"], "ERRORS")
    assert [record["lineNumber"] for record in errors] == [2, 4]
    assert [record["offset"] for record in errors] == [len(lines[0]) + 1, len(lines[0]) + len(lines[1]) + 3]
    assert all(set(record) == {"errorMessage", "lineNumber", "offset", "response"} for record in errors)
    assert all(record["response"] is None for record in errors)
    assert "ThingName" in errors[0]["errorMessage"]
    assert errors[0]["errorMessage"].startswith("InvalidRequestException")
    assert "not valid JSON" in errors[1]["errorMessage"]
    assert [record["lineNumber"] for record in aws.report(task["taskId"], "RESULTS")] == [1, 5]
    names = sorted(thing["thingName"] for thing in aws.iot.list_things()["things"])
    assert names == ["good-1", "good-5"]


# --------------------------------------------------------------------------- one at a time, stop, quotas


def test_one_task_at_a_time_stop_and_the_quota(aws: Aws) -> None:
    # RegisterThing: 10 TPS on AWS; scaled by 0.5 the task registers 5 lines at once, then 5 per second.
    post(f"{aws.endpoint}/_local/traffic", {"quotas": "aws-default", "quota_scale": 0.5})
    aws.upload("many.jsonl", [json.dumps({"ThingName": f"many-{i}"}) for i in range(40)])
    started = time.monotonic()
    task_id = aws.start("many.jsonl", THING_ONLY)

    code, message, status = error_of(
        aws.iot.start_thing_registration_task,
        templateBody=THING_ONLY,
        inputFileBucket=BUCKET,
        inputFileKey="many.jsonl",
        roleArn=aws.role_arn,
    )
    assert (code, status) == ("InvalidRequestException", 400)
    assert task_id in message and "one task per account" in message
    elsewhere = boto3.client(
        "iot",
        endpoint_url=aws.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    code, message, _status = error_of(  # one per account, not per region
        elsewhere.start_thing_registration_task,
        templateBody=THING_ONLY,
        inputFileBucket=BUCKET,
        inputFileKey="many.jsonl",
        roleArn=aws.role_arn,
    )
    assert code == "InvalidRequestException" and task_id in message

    time.sleep(1.0)
    running = aws.iot.describe_thing_registration_task(taskId=task_id)
    elapsed = time.monotonic() - started
    assert running["status"] == "InProgress"
    assert 5 <= running["successCount"] <= int(5 + 5 * elapsed) + 1, (running["successCount"], elapsed)
    assert 0 < running["percentageProgress"] < 100
    assert aws.iot.list_thing_registration_tasks(status="InProgress")["taskIds"] == [task_id]

    aws.iot.stop_thing_registration_task(taskId=task_id)
    assert aws.iot.describe_thing_registration_task(taskId=task_id)["status"] in ("Cancelling", "Cancelled")
    task = aws.wait(task_id)
    assert task["status"] == "Cancelled"
    assert 5 <= task["successCount"] < 40
    assert task["failureCount"] == 0
    things = aws.iot.list_things(maxResults=250)["things"]
    assert len(things) == task["successCount"]  # nothing registered after the stop
    assert len(aws.report(task_id, "RESULTS")) == task["successCount"]
    code, _message, status = error_of(aws.iot.stop_thing_registration_task, taskId=task_id)
    assert (code, status) == ("InvalidRequestException", 400)

    # Once it has stopped, another task may start.
    post(f"{aws.endpoint}/_local/traffic", {"quotas": "off"})
    aws.upload("one.jsonl", [json.dumps({"ThingName": "after-stop"})])
    second = aws.wait(aws.start("one.jsonl", THING_ONLY))
    assert (second["status"], second["successCount"]) == ("Completed", 1)
    assert aws.iot.list_thing_registration_tasks(maxResults=1)["taskIds"] == [task_id]
    page = aws.iot.list_thing_registration_tasks(maxResults=1)
    assert aws.iot.list_thing_registration_tasks(maxResults=1, nextToken=page["nextToken"])["taskIds"] == [
        second["taskId"]
    ]


# --------------------------------------------------------------------------- refusals


def test_start_refuses_what_cannot_run(aws: Aws) -> None:
    aws.upload("ok.jsonl", [json.dumps({"ThingName": "x"})])
    good = {"templateBody": THING_ONLY, "inputFileBucket": BUCKET, "inputFileKey": "ok.jsonl", "roleArn": aws.role_arn}
    for change, field in (
        ({"roleArn": "arn:aws:iam::123456789012:role/missing"}, "roleArn"),
        ({"roleArn": "not-an-arn-but-long-enough"}, "roleArn"),
        ({"inputFileKey": "absent.jsonl"}, "inputFileKey"),
        ({"inputFileBucket": "no-such-bucket"}, "inputFileBucket"),
        ({"templateBody": json.dumps({"Resources": {}})}, "Resources"),
        ({"inputFileBucket": "bad bucket"}, "inputFileBucket"),  # the model's pattern [a-zA-Z0-9._-]+
    ):
        code, message, status = error_of(aws.iot.start_thing_registration_task, **{**good, **change})
        assert (code, status) == ("InvalidRequestException", 400), change
        assert field in message, (change, message)
    assert aws.iot.list_thing_registration_tasks()["taskIds"] == []
    assert aws.iot.list_things()["things"] == []

    assert error_of(aws.iot.describe_thing_registration_task, taskId="nope")[::2] == ("ResourceNotFoundException", 404)
    assert error_of(aws.iot.stop_thing_registration_task, taskId="nope")[::2] == ("ResourceNotFoundException", 404)
    code, _message, status = error_of(aws.iot.list_thing_registration_task_reports, taskId="nope", reportType="ERRORS")
    assert (code, status) == ("InvalidRequestException", 400)


def test_reset_forgets_tasks(aws: Aws) -> None:
    aws.upload("one.jsonl", [json.dumps({"ThingName": "before-reset"})])
    task_id = aws.wait(aws.start("one.jsonl", THING_ONLY))["taskId"]
    post(f"{aws.endpoint}/moto-api/reset")
    assert aws.iot.list_thing_registration_tasks()["taskIds"] == []
    assert error_of(aws.iot.describe_thing_registration_task, taskId=task_id)[0] == "ResourceNotFoundException"


def test_a_task_that_cannot_write_its_reports_fails(aws: Aws) -> None:
    post(f"{aws.endpoint}/_local/traffic", {"quotas": "aws-default", "quota_scale": 0.5})  # 5 lines/s
    aws.upload("gone.jsonl", [json.dumps({"ThingName": f"gone-{i}"}) for i in range(10)])
    task_id = aws.start("gone.jsonl", THING_ONLY)
    aws.s3.delete_object(Bucket=BUCKET, Key="gone.jsonl")
    aws.s3.delete_bucket(Bucket=BUCKET)
    task = aws.wait(task_id)
    assert task["status"] == "Failed"
    assert BUCKET in task["message"]
    assert task["successCount"] == 10  # the lines were read at the start; only the reports are lost
