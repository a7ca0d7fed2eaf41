"""The IoT access layer on a real boto3 client over moto: botocore's paginators, real error parsing, and the
order of calls each lifecycle step makes; the same steps under the fleet's paced Caller."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import Caller, RateBudget

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


def device(iot, name="d1", policies=("p1",), status=True):
    """A thing with an ACTIVE certificate attached, and policies attached to the certificate."""
    client = iot.client
    client.create_thing(thingName=name)
    cert = client.create_keys_and_certificate(setAsActive=status)
    client.attach_thing_principal(thingName=name, principal=cert["certificateArn"])
    for policy in policies:
        client.create_policy(policyName=policy, policyDocument=POLICY)
        client.attach_policy(policyName=policy, target=cert["certificateArn"])
    return cert["certificateId"], cert["certificateArn"]


def test_the_client_call_pages_through_botocore_paginators(moto_iot):
    client = moto_iot.client
    for number in range(5):
        client.create_thing(thingName=f"t{number}")
    moto_iot.calls.clear()
    call = iot_access.as_call(client)
    assert isinstance(call, iot_access.ClientCall)
    # The path production takes: botocore has a paginator for ListThings, so no hand-rolled token loop.
    assert client.can_paginate("list_things")
    things = call.pages("list_things", "things", maxResults=2)
    assert sorted(t["thingName"] for t in things) == [f"t{n}" for n in range(5)]
    assert moto_iot.calls == ["ListThings"] * 3


def test_as_call_keeps_a_call_interface_as_it_is(moto_iot):
    caller = Caller(moto_iot.client, RateBudget())
    assert iot_access.as_call(caller) is caller


def test_remove_certificate_goes_in_the_order_aws_requires(moto_iot):
    cert_id, arn = device(moto_iot, policies=("p1", "p2"))
    moto_iot.calls.clear()
    iot_access.remove_certificate(iot_access.as_call(moto_iot.client), cert_id, arn, "ACTIVE", sleep=pytest.fail)
    assert moto_iot.mutating() == [
        "UpdateCertificate",
        "DetachThingPrincipal",
        "DetachPolicy",
        "DetachPolicy",
        "DeleteCertificate",
    ]
    assert iot_access.describe_certificate(iot_access.as_call(moto_iot.client), cert_id) is None
    assert iot_access.thing_principals(iot_access.as_call(moto_iot.client), "d1") == []


def test_remove_certificate_skips_the_deactivation_of_an_inactive_one(moto_iot):
    cert_id, arn = device(moto_iot, policies=(), status=False)
    moto_iot.calls.clear()
    iot_access.remove_certificate(iot_access.as_call(moto_iot.client), cert_id, arn, "INACTIVE")
    assert moto_iot.mutating() == ["DetachThingPrincipal", "DeleteCertificate"]


def test_the_fleet_caller_runs_the_same_steps_paced_and_counted(moto_iot):
    cert_id, arn = device(moto_iot, name="f1")
    client = moto_iot.client
    client.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
    client.detach_thing_principal(thingName="f1", principal=arn)
    caller = Caller(client, RateBudget())
    iot_access.delete_certificate(caller, cert_id, arn, schedule=retry.FLEET_CERTIFICATE_DELETE)
    iot_access.delete_thing(caller, "f1")
    assert caller.summary()["api_calls"] == {
        "DeleteCertificate": 1,
        "DeleteThing": 1,
        "DetachPolicy": 1,
        "ListAttachedPolicies": 1,
    }
    assert iot_access.read_thing(caller, "f1") is None


def test_gone_is_done_and_other_errors_surface(moto_iot):
    call = iot_access.as_call(moto_iot.client)
    assert iot_access.unless_gone(call, "describe_thing", thingName="missing") is None
    assert iot_access.read_thing(call, "missing") is None
    assert iot_access.thing_principals(call, "missing") is None
    iot_access.delete_thing(call, "missing")  # already gone: done, no retry
    moto_iot.client.create_policy(policyName="p", policyDocument=POLICY)
    with pytest.raises(ClientError) as raised:
        iot_access.ignoring(
            call, ("ResourceNotFoundException",), "create_policy", policyName="p", policyDocument=POLICY
        )
    assert raised.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"


def test_the_thing_view_is_one_shape(moto_iot):
    client = moto_iot.client
    client.create_thing_type(thingTypeName="sensor")
    client.create_thing(
        thingName="v1", thingTypeName="sensor", attributePayload={"attributes": {"floor": "2", "room": ""}}
    )
    client.create_thing_group(thingGroupName="g2")
    client.create_thing_group(thingGroupName="g1")
    for group in ("g2", "g1"):
        client.add_thing_to_thing_group(thingGroupName=group, thingName="v1")
    view = iot_access.read_thing(iot_access.as_call(client), "v1")
    assert view["name"] == "v1"
    assert view["thing_type"] == "sensor"
    assert view["attributes"] == {"floor": "2"}  # an empty value is no attribute
    assert view["thing_groups"] == ["g1", "g2"]
    assert view["arn"].endswith(":thing/v1")
    without_groups = iot_access.thing_view(client.describe_thing(thingName="v1"))
    assert "thing_groups" not in without_groups
    assert {k: v for k, v in view.items() if k != "thing_groups"} == without_groups


@pytest.mark.parametrize(
    "arn, expected",
    [
        ("arn:aws:iot:us-east-1:123456789012:cert/" + "a" * 64, "a" * 64),
        ("arn:aws-cn:iot:cn-north-1:123456789012:cert/" + "b" * 64, "b" * 64),
        ("us-east-1:1234abcd-12ab-34cd-56ef-1234567890ab", None),
        ("arn:aws:iot:us-east-1:123456789012:thinggroup/g", None),
    ],
)
def test_certificate_id_of_arn(arn, expected):
    assert iot_access.certificate_id_of_arn(arn) == expected


def conflict(code):
    return ClientError({"Error": {"Code": code, "Message": "not yet"}}, "DeleteCertificate")


def test_a_consistency_schedule_retries_only_its_codes_then_gives_up():
    slept, attempts = [], []

    def refuse():
        attempts.append(1)
        raise conflict("DeleteConflictException")

    with pytest.raises(ClientError):
        retry.with_waits(refuse, retry.CERTIFICATE_DELETE, slept.append)
    assert slept == list(retry.CERTIFICATE_DELETE.waits)
    assert len(attempts) == len(retry.CERTIFICATE_DELETE.waits) + 1

    attempts.clear()

    def state_refusal():
        attempts.append(1)
        raise conflict("CertificateStateException")

    with pytest.raises(ClientError):
        retry.with_waits(state_refusal, retry.CERTIFICATE_DELETE, pytest.fail)
    assert len(attempts) == 1  # not a code of this schedule: at once
    with pytest.raises(ClientError):
        retry.with_waits(state_refusal, retry.FLEET_CERTIFICATE_DELETE, lambda _s: None)
    assert len(attempts) == 1 + len(retry.FLEET_CERTIFICATE_DELETE.waits) + 1


def test_until_deadline_stops_at_the_deadline():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    def refuse():
        raise conflict("InvalidRequestException")

    with pytest.raises(RuntimeError, match="gave up"):
        retry.until_deadline(
            refuse, lambda e: True, 20, lambda e: RuntimeError("gave up"), sleep=sleep, clock=lambda: now[0]
        )
    assert slept == [2.0, 4.0, 8.0, 6.0]
