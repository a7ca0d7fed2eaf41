"""policy_check: validation before any call, TestAuthorization requests as the model wants them, verdicts."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_check import (
    failure_message,
    run_checks,
    validate,
)

CERT_ID = "ab" * 32
ARN = f"arn:aws:iot:eu-west-1:123456789012:cert/{CERT_ID}"
PREFIX = "arn:aws:iot:eu-west-1:123456789012"


def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "principal": ARN,
        "client_id": "sensor-1",
        "checks": [{"action": "connect", "resource": "client/sensor-1", "expect": "allowed"}],
        "policy_names_to_add": None,
        "policy_names_to_skip": None,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"principal": "sensor-1"}, "principal", "a certificate ARN"),
        ({"principal": ARN + "\n"}, "principal", "matched whole"),
        ({"client_id": "x" * 129}, "client_id", "1-128 characters"),
        ({"checks": []}, "checks", "at least one check"),
        ({"checks": [{"action": "delete", "resource": "client/x"}]}, "checks[0].action", "one of connect"),
        ({"checks": [{"action": "publish", "resource": "devices/x"}]}, "checks[0].resource", "topic/NAME"),
        ({"checks": [{"action": "publish", "resource": "topicfilter/x"}]}, "checks[0].resource", "not topicfilter"),
        ({"checks": [{"action": "subscribe", "resource": "topic/x"}]}, "checks[0].resource", "on topicfilter"),
        ({"checks": [{"action": "connect", "resource": "client/x", "expect": "maybe"}]}, "checks[0].expect", "one of"),
        ({"checks": [{"action": "connect", "resource": "client/x", "effect": "allow"}]}, "checks[0]", "unknown keys"),
        ({"policy_names_to_add": ["bad name"]}, "policy_names_to_add[0]", "a policy name may contain"),
        ({"policy_names_to_skip": [f"p{i}" for i in range(11)]}, "policy_names_to_skip", "at most 10"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_the_rule(overrides: dict[str, Any], field: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(params(**overrides))
    assert caught.value.field == field
    assert rule in caught.value.rule


def _client() -> Any:
    return boto3.client("iot", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")


def _result(action: str, resource: str, decision: str, policy: str = "device") -> dict[str, Any]:
    allowed = [{"policyName": policy, "policyArn": f"{PREFIX}:policy/{policy}"}] if decision == "ALLOWED" else []
    explicit = [{"policyName": policy, "policyArn": f"{PREFIX}:policy/{policy}"}] if decision == "EXPLICIT_DENY" else []
    return {
        "authInfo": {"actionType": action, "resources": [resource]},
        "allowed": {"policies": allowed},
        "denied": {"explicitDeny": {"policies": explicit}, "implicitDeny": {"policies": []}},
        "authDecision": decision,
        "missingContextValues": [],
    }


def test_checks_are_asked_ten_at_a_time_with_full_arns_and_compared() -> None:
    checks = [{"action": "publish", "resource": f"topic/devices/sensor-1/{i}", "expect": "allowed"} for i in range(11)]
    checks.append({"action": "connect", "resource": f"{PREFIX}:client/sensor-2", "expect": "denied"})
    request = validate(params(principal=CERT_ID, checks=checks, policy_names_to_skip=["old"]))
    client = _client()
    with Stubber(client) as stub:
        stub.add_response(
            "describe_certificate",
            {"certificateDescription": {"certificateArn": ARN, "certificateId": CERT_ID}},
            {"certificateId": CERT_ID},
        )
        first = [{"actionType": "PUBLISH", "resources": [f"{PREFIX}:topic/devices/sensor-1/{i}"]} for i in range(10)]
        stub.add_response(
            "test_authorization",
            {"authResults": [_result("PUBLISH", item["resources"][0], "ALLOWED") for item in first]},
            {"principal": ARN, "clientId": "sensor-1", "authInfos": first, "policyNamesToSkip": ["old"]},
        )
        second = [
            {"actionType": "PUBLISH", "resources": [f"{PREFIX}:topic/devices/sensor-1/10"]},
            {"actionType": "CONNECT", "resources": [f"{PREFIX}:client/sensor-2"]},
        ]
        stub.add_response(
            "test_authorization",
            {
                "authResults": [
                    _result("PUBLISH", second[0]["resources"][0], "IMPLICIT_DENY"),
                    _result("CONNECT", second[1]["resources"][0], "ALLOWED"),
                ]
            },
            {"principal": ARN, "clientId": "sensor-1", "authInfos": second, "policyNamesToSkip": ["old"]},
        )
        outcome = run_checks(client, request)
        stub.assert_no_pending_responses()
    assert outcome["principal_arn"] == ARN
    assert [result["passed"] for result in outcome["results"]] == [True] * 10 + [False, False]
    assert [result["resource"] for result in outcome["failed"]] == [
        f"{PREFIX}:topic/devices/sensor-1/10",
        f"{PREFIX}:client/sensor-2",
    ]
    message = failure_message(outcome)
    assert message.startswith("2 of 12 authorization checks differ from the expectation")
    assert (
        f"connect on {PREFIX}:client/sensor-2: expected denied, AWS IoT answered ALLOWED (allowed by device)" in message
    )


def test_expectations_accept_only_their_decisions() -> None:
    checks = [
        {"action": "connect", "resource": "client/a", "expect": "denied"},
        {"action": "connect", "resource": "client/b", "expect": "implicit_deny"},
        {"action": "connect", "resource": "client/c", "expect": "explicit_deny"},
    ]
    request = validate(params(checks=checks, client_id=None))
    client = _client()
    with Stubber(client) as stub:
        infos = [{"actionType": "CONNECT", "resources": [f"{PREFIX}:client/{name}"]} for name in "abc"]
        stub.add_response(
            "test_authorization",
            {
                "authResults": [
                    _result("CONNECT", infos[0]["resources"][0], "EXPLICIT_DENY", "deny"),
                    _result("CONNECT", infos[1]["resources"][0], "EXPLICIT_DENY", "deny"),
                    _result("CONNECT", infos[2]["resources"][0], "EXPLICIT_DENY", "deny"),
                ]
            },
            {"principal": ARN, "authInfos": infos},
        )
        outcome = run_checks(client, request)
    assert [result["passed"] for result in outcome["results"]] == [True, False, True]
    assert outcome["results"][0]["explicitly_denied_by"] == ["deny"]
