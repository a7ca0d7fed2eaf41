"""The AWS core: client factory, retries, error messages, paging, naming."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Iterator

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from botocore.exceptions import ClientError, NoRegionError
from botocore.stub import Stubber

from ansible_collections.iotfleet.provisioning.plugins.module_utils import aws, errors


class _ScriptedIoT(http.server.BaseHTTPRequestHandler):
    """Answers every request with the same scripted error and records what it saw."""

    status = 500
    body: dict = {}
    requests: list = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).requests.append({"path": self.path, "user_agent": self.headers.get("User-Agent", "")})
        payload = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", "req-1234")
        self.send_header("x-amzn-ErrorType", self.body.get("__type", ""))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_PUT = do_POST
    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture()
def scripted_server() -> Iterator[tuple[str, type]]:
    handler = type("Handler", (_ScriptedIoT,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, max_attempts: int = 4):
    return aws.make_client(
        "iot",
        region="us-east-1",
        access_key="testing",
        secret_key="testing",
        endpoint_url=url,
        max_attempts=max_attempts,
        aws_config={"connect_timeout": 2, "read_timeout": 2},
    )


def test_limit_exceeded_is_not_retried(scripted_server):
    url, handler = scripted_server
    handler.status = 410
    handler.body = {"__type": "LimitExceededException", "message": "The policy limit for this certificate is 10"}
    client = _client(url, max_attempts=5)
    with pytest.raises(ClientError) as raised:
        client.attach_policy(policyName="p", target="arn:aws:iot:us-east-1:123456789012:cert/abc")
    assert errors.error_code(raised.value) == "LimitExceededException"
    assert len(handler.requests) == 1


def test_throttling_is_retried_up_to_max_attempts(scripted_server):
    url, handler = scripted_server
    handler.status = 400
    handler.body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    client = _client(url, max_attempts=3)
    with pytest.raises(ClientError) as raised:
        client.describe_thing(thingName="t")
    assert errors.error_code(raised.value) == "ThrottlingException"
    assert len(handler.requests) == 3


def test_user_agent_names_the_collection_and_version(scripted_server):
    url, handler = scripted_server
    handler.status = 404
    handler.body = {"__type": "ResourceNotFoundException", "message": "nope"}
    with pytest.raises(ClientError):
        _client(url).describe_thing(thingName="t")
    assert f"iotfleet-provisioning/{aws.COLLECTION_VERSION}" in handler.requests[0]["user_agent"]


def test_error_message_has_operation_code_message_request_id_and_hint(scripted_server):
    url, handler = scripted_server
    handler.status = 404
    handler.body = {"__type": "ResourceNotFoundException", "message": "Thing t not found"}
    with pytest.raises(ClientError) as raised:
        _client(url).describe_thing(thingName="t")
    error = errors.AwsCallError.from_client_error(raised.value)
    text = str(error)
    assert text.startswith("DescribeThing failed with ResourceNotFoundException: Thing t not found")
    assert "(request id req-1234)" in text
    assert "check the name, region and endpoint" in text


def test_missing_region_raises_no_region(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    with pytest.raises(NoRegionError):
        aws.make_client("iot", access_key="a", secret_key="b")
    assert "region" in aws.MISSING_REGION_MESSAGE and "AWS_REGION" in aws.MISSING_REGION_MESSAGE


def test_adaptive_retry_mode_and_max_attempts():
    config = aws.botocore_config(max_attempts=7)
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}


def test_user_config_cannot_drop_the_user_agent():
    config = aws.botocore_config(extra={"user_agent_extra": "mine", "connect_timeout": 3})
    assert config.user_agent_extra.startswith("iotfleet-provisioning/")
    assert config.connect_timeout == 3


def test_paginate_follows_next_token():
    client = aws.make_client("iot", region="us-east-1", access_key="a", secret_key="b")
    stubber = Stubber(client)
    stubber.add_response("list_things", {"things": [{"thingName": "a"}], "nextToken": "t1"}, {})
    stubber.add_response("list_things", {"things": [{"thingName": "b"}]}, {"nextToken": "t1"})
    with stubber:
        things = aws.paginate(client, "list_things", "things")
    assert [t["thingName"] for t in things] == ["a", "b"]
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("thingName", "thing_name"),
        ("thingArn", "thing_arn"),
        ("defaultVersionId", "default_version_id"),
        ("certificatePEM", "certificate_pem"),
        ("CACertificateId", "ca_certificate_id"),
        ("status", "status"),
    ],
)
def test_snake_case(name, expected):
    assert aws.snake_case(name) == expected


def test_snake_dict_keeps_user_keys():
    value = {
        "thingName": "t",
        "attributes": {"serialNumber": "1"},
        "tags": {"CostCenter": "x"},
        "nestedList": [{"aB": 1}],
    }
    assert aws.snake_dict(value) == {
        "thing_name": "t",
        "attributes": {"serialNumber": "1"},
        "tags": {"CostCenter": "x"},
        "nested_list": [{"a_b": 1}],
    }


def test_validation_error_names_field_and_rule():
    error = errors.ValidationError("name", "must match [a-zA-Z0-9:_-]+")
    assert str(error) == "name: must match [a-zA-Z0-9:_-]+"
    assert error.field == "name"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2"),
        ({"EC2_REGION": "ap-south-1"}, "ap-south-1"),
        ({}, None),
    ],
)
def test_region_falls_back_to_the_environment(monkeypatch, environment, expected):
    # boto3 alone ignores AWS_REGION: the option's fallback must read it.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = ArgumentSpecValidator(aws.aws_common_argument_spec()).validate({})
    assert not result.error_messages
    assert result.validated_parameters["region"] == expected
    assert (
        ArgumentSpecValidator(aws.aws_common_argument_spec())
        .validate({"region": "us-west-2"})
        .validated_parameters["region"]
        == "us-west-2"
    )


def test_common_argument_spec_has_amazon_aws_names_and_aliases():
    spec = aws.aws_common_argument_spec()
    assert "aws_region" in spec["region"]["aliases"]
    assert "aws_access_key_id" in spec["access_key"]["aliases"]
    assert "aws_secret_access_key" in spec["secret_key"]["aliases"]
    assert "aws_session_token" in spec["session_token"]["aliases"]
    assert "aws_profile" in spec["profile"]["aliases"]
    assert "aws_endpoint_url" in spec["endpoint_url"]["aliases"]
    assert spec["secret_key"]["no_log"] is True
    assert spec["session_token"]["no_log"] is True
    for name in ("validate_certs", "aws_ca_bundle", "aws_config"):
        assert name in spec
