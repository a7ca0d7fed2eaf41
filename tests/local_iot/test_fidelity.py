"""The local endpoint refuses what AWS refuses, with AWS's error code, and still serves the normal paths.

One endpoint for the module (started with tests/local_iot/launcher.py, short time-based waits so the
eventual-consistency and thing-type-delete tests stay fast), reset before every test. Plain boto3 only.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
import urllib.request
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import module_endpoint

DETACH_DELAY = 1.0
TYPE_DELETE_WAIT = 1.0
POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)


@pytest.fixture(scope="module")
def endpoint() -> str:
    args = ["--detach-consistency-delay", str(DETACH_DELAY), "--thing-type-delete-wait", str(TYPE_DELETE_WAIT)]
    with module_endpoint("fidelity", args) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh(endpoint: str) -> None:
    for path, method in (("/moto-api/reset", "POST"), ("/_local/calls", "DELETE")):
        urllib.request.urlopen(urllib.request.Request(endpoint + path, method=method), timeout=10).close()


@pytest.fixture
def iot(endpoint: str) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # One attempt: LimitExceededException counts as throttling for botocore's retry modes.
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, int, str]:
    """Run a call that must fail; its AWS error code, HTTP status and message."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


# --- helpers: certificates made locally ----------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def make_certificate(
    common_name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None, ca: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    signing_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, _name(common_name))
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256())
    )
    return key, certificate


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def der_id(certificate_pem: str) -> str:
    der = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def new_certificate(iot: Any, active: bool = False) -> tuple[str, str]:
    created = iot.create_keys_and_certificate(setAsActive=active)
    return created["certificateId"], created["certificateArn"]


# --- 1. CreateThing conflicts ---------------------------------------------------------------------------------


def test_create_thing_is_idempotent_only_for_the_same_configuration(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="sensor")
    first = iot.create_thing(thingName="dev1", thingTypeName="sensor", attributePayload={"attributes": {"a": "1"}})
    again = iot.create_thing(thingName="dev1", thingTypeName="sensor", attributePayload={"attributes": {"a": "1"}})
    assert again["thingArn"] == first["thingArn"] and again["thingId"] == first["thingId"]

    code, status, _unused = refused(
        iot.create_thing, thingName="dev1", thingTypeName="sensor", attributePayload={"attributes": {"a": "2"}}
    )
    assert (code, status) == ("ResourceAlreadyExistsException", 409)
    code, status, _unused = refused(iot.create_thing, thingName="dev1", attributePayload={"attributes": {"a": "1"}})
    assert (code, status) == ("ResourceAlreadyExistsException", 409)
    assert iot.describe_thing(thingName="dev1")["attributes"] == {"a": "1"}


# --- 2. names and attributes follow the model's patterns and lengths -----------------------------------------


@pytest.mark.parametrize("name", ["bad name", "slash/name", "dot.name", "ünïcode", "a" * 129])
def test_thing_names_outside_the_pattern_or_length_are_refused(iot: Any, name: str) -> None:
    code, status, message = refused(iot.create_thing, thingName=name)
    assert (code, status) == ("InvalidRequestException", 400)
    assert "thingName" in message
    assert iot.list_things()["things"] == []


def test_valid_names_still_work(iot: Any) -> None:
    for name in ("a", "Dev_01:edge-2", "a" * 128):
        iot.create_thing(thingName=name)
    assert len(iot.list_things(maxResults=10)["things"]) == 3


def test_thing_type_and_group_names_follow_the_model(iot: Any) -> None:
    assert refused(iot.create_thing_type, thingTypeName="bad type")[:2] == ("InvalidRequestException", 400)
    assert refused(iot.create_thing_type, thingTypeName="t" * 129)[:2] == ("InvalidRequestException", 400)
    assert refused(iot.create_thing_group, thingGroupName="bad/group")[:2] == ("InvalidRequestException", 400)
    assert refused(iot.create_thing_group, thingGroupName="g" * 129)[:2] == ("InvalidRequestException", 400)
    description = {"thingTypeDescription": "line one\nline two"}
    code, _unused, message = refused(iot.create_thing_type, thingTypeName="ok", thingTypeProperties=description)
    assert code == "InvalidRequestException" and "thingTypeDescription" in message
    iot.create_thing_type(thingTypeName="ok:type_1-a", thingTypeProperties={"thingTypeDescription": "plain words 1"})
    iot.create_thing_group(thingGroupName="ok:group_1-a")


@pytest.mark.parametrize(
    "attributes",
    [{"bad name": "v"}, {"n" * 129: "v"}, {"k": "has space"}, {"k": "quote'"}, {"k": "v" * 801}],
)
def test_attribute_names_and_values_follow_the_model(iot: Any, attributes: dict[str, str]) -> None:
    code, status, message = refused(iot.create_thing, thingName="t", attributePayload={"attributes": attributes})
    assert (code, status) == ("InvalidRequestException", 400)
    assert "attributes" in message
    iot.create_thing(thingName="t")
    code, _unused, _unused = refused(iot.update_thing, thingName="t", attributePayload={"attributes": attributes})
    assert code == "InvalidRequestException"
    assert iot.describe_thing(thingName="t")["attributes"] == {}


def test_attribute_edge_values_are_accepted(iot: Any) -> None:
    attributes = {"n" * 128: "v" * 800, "serial#/x@y:z": "a=b,[c]-d_e.f"}
    iot.create_thing(thingName="t", attributePayload={"attributes": attributes})
    assert iot.describe_thing(thingName="t")["attributes"] == attributes


def test_validation_reports_every_violation_with_aws_wording(iot: Any) -> None:
    _unused, _unused, message = refused(iot.list_things, maxResults=251, thingTypeName="bad type")
    assert message.startswith("2 validation errors detected: ")
    assert (
        "Value '251' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 250"
        in message
    )
    assert "at 'thingTypeName' failed to satisfy constraint: Member must satisfy regular expression pattern" in message


# --- 3. attribute count limits --------------------------------------------------------------------------------


def test_attribute_limit_without_and_with_a_thing_type(iot: Any) -> None:
    four = {f"a{i}": "v" for i in range(4)}
    code, status, message = refused(iot.create_thing, thingName="t", attributePayload={"attributes": four})
    assert (code, status) == ("InvalidRequestException", 400)
    assert "at most 3" in message
    iot.create_thing(thingName="t", attributePayload={"attributes": {f"a{i}": "v" for i in range(3)}})

    iot.create_thing_type(thingTypeName="typed")
    fifty = {f"a{i}": "v" for i in range(50)}
    iot.create_thing(thingName="typed1", thingTypeName="typed", attributePayload={"attributes": fifty})
    code, _unused, message = refused(
        iot.create_thing,
        thingName="typed2",
        thingTypeName="typed",
        attributePayload={"attributes": {**fifty, "x": "1"}},
    )
    assert code == "InvalidRequestException" and "at most 50" in message


def test_update_thing_counts_attributes_after_the_merge(iot: Any) -> None:
    iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "1", "b": "2", "c": "3"}})
    code, _unused, _unused = refused(
        iot.update_thing, thingName="t", attributePayload={"attributes": {"d": "4"}, "merge": True}
    )
    assert code == "InvalidRequestException"
    # A merge that removes one (empty value) while adding one stays at 3; a replace of 3 is fine too.
    iot.update_thing(thingName="t", attributePayload={"attributes": {"a": "", "d": "4"}, "merge": True})
    assert iot.describe_thing(thingName="t")["attributes"] == {"b": "2", "c": "3", "d": "4"}
    iot.update_thing(thingName="t", attributePayload={"attributes": {"x": "1", "y": "2", "z": "3"}})
    assert iot.describe_thing(thingName="t")["attributes"] == {"x": "1", "y": "2", "z": "3"}
    code, _unused, _unused = refused(
        iot.update_thing, thingName="t", attributePayload={"attributes": {f"k{i}": "v" for i in range(4)}}
    )
    assert code == "InvalidRequestException"


def test_update_thing_counts_against_the_resulting_thing_type(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="typed")
    five = {f"a{i}": "v" for i in range(5)}
    iot.create_thing(thingName="t", thingTypeName="typed", attributePayload={"attributes": five})
    code, _unused, _unused = refused(iot.update_thing, thingName="t", removeThingType=True)
    assert code == "InvalidRequestException"
    assert iot.describe_thing(thingName="t")["thingTypeName"] == "typed"
    iot.update_thing(thingName="t", removeThingType=True, attributePayload={"attributes": {"a0": "v"}})
    described = iot.describe_thing(thingName="t")
    assert "thingTypeName" not in described and described["attributes"] == {"a0": "v"}
    iot.create_thing(thingName="u", attributePayload={"attributes": {"a": "1", "b": "2", "c": "3"}})
    iot.update_thing(thingName="u", thingTypeName="typed", attributePayload={"attributes": {"d": "4"}, "merge": True})
    assert len(iot.describe_thing(thingName="u")["attributes"]) == 4


def test_update_thing_versions(iot: Any) -> None:
    iot.create_thing(thingName="t")
    assert iot.describe_thing(thingName="t")["version"] == 1
    iot.update_thing(thingName="t", attributePayload={"attributes": {"a": "1"}})
    assert iot.describe_thing(thingName="t")["version"] == 2
    code, status, _unused = refused(
        iot.update_thing, thingName="t", attributePayload={"attributes": {"a": "2"}}, expectedVersion=1
    )
    assert (code, status) == ("VersionConflictException", 409)
    iot.update_thing(thingName="t", attributePayload={"attributes": {"a": "2"}}, expectedVersion=2)
    assert iot.describe_thing(thingName="t")["attributes"] == {"a": "2"}
    assert refused(iot.delete_thing, thingName="t", expectedVersion=1)[0] == "VersionConflictException"
    iot.delete_thing(thingName="t", expectedVersion=3)
    assert refused(iot.describe_thing, thingName="t")[0] == "ResourceNotFoundException"


# --- 4. DeleteThing -------------------------------------------------------------------------------------------


def test_delete_thing_with_a_principal_and_after_detach(iot: Any) -> None:
    iot.create_thing(thingName="t")
    _unused, arn = new_certificate(iot)
    iot.attach_thing_principal(thingName="t", principal=arn)
    code, status, message = refused(iot.delete_thing, thingName="t")
    assert (code, status) == ("InvalidRequestException", 400)
    assert "still attached to one or more principals" in message

    iot.detach_thing_principal(thingName="t", principal=arn)
    assert iot.list_thing_principals(thingName="t")["principals"] == []
    assert refused(iot.delete_thing, thingName="t")[0] == "InvalidRequestException"  # eventual consistency
    time.sleep(DETACH_DELAY + 0.2)
    iot.delete_thing(thingName="t")
    assert refused(iot.describe_thing, thingName="t")[0] == "ResourceNotFoundException"


def test_delete_thing_that_does_not_exist_succeeds(iot: Any) -> None:
    iot.delete_thing(thingName="never-created")
    iot.create_thing(thingName="t")
    iot.delete_thing(thingName="t")
    iot.delete_thing(thingName="t")


def test_a_deleted_thing_leaves_its_groups(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="g")
    iot.create_thing(thingName="t")
    iot.add_thing_to_thing_group(thingGroupName="g", thingName="t")
    iot.delete_thing(thingName="t")
    assert iot.list_things_in_thing_group(thingGroupName="g")["things"] == []
    iot.create_thing(thingName="t")
    assert iot.list_thing_groups_for_thing(thingName="t")["thingGroups"] == []


# --- 5. thing types -------------------------------------------------------------------------------------------


def test_delete_thing_type_needs_deprecation_and_a_wait(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="old")
    code, status, message = refused(iot.delete_thing_type, thingTypeName="old")
    assert (code, status) == ("InvalidRequestException", 400)
    assert "not deprecated" in message

    iot.deprecate_thing_type(thingTypeName="old")
    metadata = iot.describe_thing_type(thingTypeName="old")["thingTypeMetadata"]
    assert metadata["deprecated"] is True and "deprecationDate" in metadata
    assert refused(iot.delete_thing_type, thingTypeName="old")[0] == "InvalidRequestException"
    time.sleep(TYPE_DELETE_WAIT + 0.2)
    iot.delete_thing_type(thingTypeName="old")
    assert refused(iot.describe_thing_type, thingTypeName="old")[0] == "ResourceNotFoundException"
    assert refused(iot.delete_thing_type, thingTypeName="old")[0] == "ResourceNotFoundException"


def test_undeprecating_resets_the_wait_and_used_types_stay(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="used")
    iot.create_thing(thingName="t", thingTypeName="used")
    iot.deprecate_thing_type(thingTypeName="used")
    iot.deprecate_thing_type(thingTypeName="used", undoDeprecate=True)
    assert "deprecationDate" not in iot.describe_thing_type(thingTypeName="used")["thingTypeMetadata"]
    assert refused(iot.delete_thing_type, thingTypeName="used")[0] == "InvalidRequestException"
    iot.deprecate_thing_type(thingTypeName="used")
    time.sleep(TYPE_DELETE_WAIT + 0.2)
    code, _unused, message = refused(iot.delete_thing_type, thingTypeName="used")
    assert code == "InvalidRequestException" and "still associated" in message
    iot.update_thing(thingName="t", removeThingType=True)
    iot.delete_thing_type(thingTypeName="used")


def test_create_thing_type_is_idempotent_and_limits_searchable_attributes(iot: Any) -> None:
    properties = {"thingTypeDescription": "d", "searchableAttributes": ["a", "b", "c"]}
    first = iot.create_thing_type(thingTypeName="ty", thingTypeProperties=properties)
    assert first["thingTypeId"] == iot.describe_thing_type(thingTypeName="ty")["thingTypeId"]
    reordered = {"thingTypeDescription": "d", "searchableAttributes": ["c", "b", "a"]}
    assert (
        iot.create_thing_type(thingTypeName="ty", thingTypeProperties=reordered)["thingTypeId"] == first["thingTypeId"]
    )
    code, status, _unused = refused(
        iot.create_thing_type, thingTypeName="ty", thingTypeProperties={"thingTypeDescription": "x"}
    )
    assert (code, status) == ("ResourceAlreadyExistsException", 409)
    four = {"searchableAttributes": ["a", "b", "c", "d"]}
    assert refused(iot.create_thing_type, thingTypeName="ty4", thingTypeProperties=four)[0] == "InvalidRequestException"


# --- thing groups ---------------------------------------------------------------------------------------------


def test_delete_thing_group_with_children_fails(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="parent")
    iot.create_thing_group(thingGroupName="child", parentGroupName="parent")
    code, status, _unused = refused(iot.delete_thing_group, thingGroupName="parent")
    assert (code, status) == ("InvalidRequestException", 400)
    iot.delete_thing_group(thingGroupName="child")
    iot.delete_thing_group(thingGroupName="parent")
    iot.delete_thing_group(thingGroupName="parent")  # AWS: deleting a missing group succeeds


def test_thing_group_parent_depth_and_children(iot: Any) -> None:
    code, status, _unused = refused(iot.create_thing_group, thingGroupName="orphan", parentGroupName="missing")
    assert (code, status) == ("InvalidRequestException", 400)
    iot.create_thing_group(thingGroupName="level1")
    for level in range(2, 8):
        iot.create_thing_group(thingGroupName=f"level{level}", parentGroupName=f"level{level - 1}")
    code, _unused, message = refused(iot.create_thing_group, thingGroupName="level8", parentGroupName="level7")
    assert code == "InvalidRequestException" and "7" in message

    iot.create_thing_group(thingGroupName="wide")
    for index in range(100):
        iot.create_thing_group(thingGroupName=f"kid{index}", parentGroupName="wide")
    assert (
        refused(iot.create_thing_group, thingGroupName="kid100", parentGroupName="wide")[0] == "InvalidRequestException"
    )


def test_a_thing_is_in_at_most_ten_groups(iot: Any) -> None:
    iot.create_thing(thingName="t")
    for index in range(11):
        iot.create_thing_group(thingGroupName=f"g{index}")
    for index in range(10):
        iot.add_thing_to_thing_group(thingGroupName=f"g{index}", thingName="t")
    iot.add_thing_to_thing_group(thingGroupName="g0", thingName="t")  # already a member: no change, no error
    code, status, _unused = refused(iot.add_thing_to_thing_group, thingGroupName="g10", thingName="t")
    assert (code, status) == ("InvalidRequestException", 400)
    code, _unused, _unused = refused(iot.update_thing_groups_for_thing, thingName="t", thingGroupsToAdd=["g10"])
    assert code == "InvalidRequestException"
    assert len(iot.list_thing_groups_for_thing(thingName="t", maxResults=50)["thingGroups"]) == 10
    iot.update_thing_groups_for_thing(thingName="t", thingGroupsToAdd=["g10"], thingGroupsToRemove=["g0"])
    names = {g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="t", maxResults=50)["thingGroups"]}
    assert names == {f"g{index}" for index in range(1, 11)}


def test_a_thing_is_in_one_group_per_hierarchy(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="root")
    iot.create_thing_group(thingGroupName="left", parentGroupName="root")
    iot.create_thing_group(thingGroupName="right", parentGroupName="root")
    iot.create_thing(thingName="t")
    iot.add_thing_to_thing_group(thingGroupName="left", thingName="t")
    assert refused(iot.add_thing_to_thing_group, thingGroupName="right", thingName="t")[0] == "InvalidRequestException"
    assert refused(iot.add_thing_to_thing_group, thingGroupName="root", thingName="t")[0] == "InvalidRequestException"
    iot.update_thing_groups_for_thing(thingName="t", thingGroupsToAdd=["right"], thingGroupsToRemove=["left"])
    assert [g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="t")["thingGroups"]] == ["right"]


def test_update_thing_group_attributes_replace_and_merge(iot: Any) -> None:
    properties = {"attributePayload": {"attributes": {"a": "1", "b": "2"}}}
    iot.create_thing_group(thingGroupName="g", thingGroupProperties=properties)
    iot.update_thing_group(
        thingGroupName="g",
        thingGroupProperties={"attributePayload": {"attributes": {"a": "", "c": "3"}, "merge": True}},
    )
    read = iot.describe_thing_group(thingGroupName="g")["thingGroupProperties"]["attributePayload"]["attributes"]
    assert read == {"b": "2", "c": "3"}
    iot.update_thing_group(thingGroupName="g", thingGroupProperties={"attributePayload": {"attributes": {}}})
    read = iot.describe_thing_group(thingGroupName="g")["thingGroupProperties"].get("attributePayload", {})
    assert read.get("attributes", {}) == {}


def test_recursive_listings_include_child_and_parent_groups(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="top")
    iot.create_thing_group(thingGroupName="mid", parentGroupName="top")
    iot.create_thing_group(thingGroupName="leaf", parentGroupName="mid")
    for thing, group in (("a", "top"), ("b", "mid"), ("c", "leaf")):
        iot.create_thing(thingName=thing)
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
    assert iot.list_things_in_thing_group(thingGroupName="top")["things"] == ["a"]
    assert iot.list_things_in_thing_group(thingGroupName="top", recursive=True)["things"] == ["a", "b", "c"]
    assert iot.list_things_in_thing_group(thingGroupName="mid", recursive=True)["things"] == ["b", "c"]
    first = iot.list_things_in_thing_group(thingGroupName="top", recursive=True, maxResults=2)
    assert first["things"] == ["a", "b"] and first["nextToken"]

    arns = {g: iot.describe_thing_group(thingGroupName=g)["thingGroupArn"] for g in ("top", "mid", "leaf")}
    for group in ("top", "leaf"):
        iot.create_policy(policyName=f"for-{group}", policyDocument=POLICY)
        iot.attach_policy(policyName=f"for-{group}", target=arns[group])
    own = iot.list_attached_policies(target=arns["leaf"])["policies"]
    assert [p["policyName"] for p in own] == ["for-leaf"]
    inherited = iot.list_attached_policies(target=arns["leaf"], recursive=True)["policies"]
    assert [p["policyName"] for p in inherited] == ["for-leaf", "for-top"]


# --- 6. certificates ------------------------------------------------------------------------------------------


def test_update_certificate_refuses_pending_statuses(iot: Any) -> None:
    certificate_id, _unused = new_certificate(iot)
    for status in ("PENDING_ACTIVATION", "PENDING_TRANSFER"):
        code, http, _unused = refused(iot.update_certificate, certificateId=certificate_id, newStatus=status)
        assert (code, http) == ("InvalidRequestException", 400)
    assert (
        refused(iot.update_certificate, certificateId=certificate_id, newStatus="BOGUS")[0] == "InvalidRequestException"
    )
    assert iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"] == "INACTIVE"
    iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    assert iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"] == "INACTIVE"


def test_a_revoked_certificate_stays_revoked(iot: Any) -> None:
    certificate_id, _unused = new_certificate(iot, active=True)
    iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    code, status, _unused = refused(iot.update_certificate, certificateId=certificate_id, newStatus="ACTIVE")
    assert (code, status) == ("CertificateStateException", 406)
    iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    iot.delete_certificate(certificateId=certificate_id)


def test_certificate_ids_are_the_sha256_of_the_der(iot: Any) -> None:
    created = iot.create_keys_and_certificate(setAsActive=False)
    assert created["certificateId"] == der_id(created["certificatePem"])
    _unused, certificate = make_certificate("device")
    registered = iot.register_certificate_without_ca(certificatePem=pem(certificate), status="INACTIVE")
    assert registered["certificateId"] == der_id(pem(certificate))
    code, status, _unused = refused(
        iot.register_certificate_without_ca, certificatePem=pem(certificate), status="INACTIVE"
    )
    assert (code, status) == ("ResourceAlreadyExistsException", 409)


def test_register_certificate_checks_the_pem_and_the_ca(iot: Any) -> None:
    garbage = "-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n"
    for call in (iot.register_certificate_without_ca, iot.register_certificate):
        assert refused(call, certificatePem=garbage)[:2] == ("CertificateValidationException", 400)
    assert refused(iot.register_ca_certificate, caCertificate=garbage)[:2] == ("CertificateValidationException", 400)
    assert iot.list_certificates()["certificates"] == []
    ca = make_certificate("ca", ca=True)
    other_ca = make_certificate("other ca", ca=True)
    _unused, device = make_certificate("device", issuer=ca)
    code, _unused, _unused = refused(
        iot.register_certificate, certificatePem=pem(device), caCertificatePem=pem(other_ca[1])
    )
    assert code == "CertificateValidationException"
    registered = iot.register_certificate(certificatePem=pem(device), caCertificatePem=pem(ca[1]), status="ACTIVE")
    assert registered["certificateId"] == der_id(pem(device))


def test_validity_is_the_certificates_own_and_aws_made_ones_end_in_2049(iot: Any) -> None:
    """FACTS: DescribeCertificate.validity is the certificate's notBefore/notAfter; the certificates AWS IoT makes
    expire 2049-12-31T23:59:59Z (moto made them valid for a year and described every certificate as now +-1 day)."""
    end_2049 = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name("device")).sign(key, hashes.SHA256())
    made = [
        iot.create_keys_and_certificate(setAsActive=False),
        iot.create_certificate_from_csr(
            certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode()
        ),
    ]
    for created in made:
        certificate = x509.load_pem_x509_certificate(created["certificatePem"].encode())
        assert certificate.not_valid_after_utc == end_2049
        assert certificate.issuer != certificate.subject  # issued by AWS IoT, not self-signed
        validity = iot.describe_certificate(certificateId=created["certificateId"])["certificateDescription"][
            "validity"
        ]
        assert validity == {"notBefore": certificate.not_valid_before_utc, "notAfter": end_2049}
    _key, own = make_certificate("registered")
    registered = iot.register_certificate_without_ca(certificatePem=pem(own), status="ACTIVE")
    validity = iot.describe_certificate(certificateId=registered["certificateId"])["certificateDescription"]["validity"]
    assert validity == {"notBefore": own.not_valid_before_utc, "notAfter": own.not_valid_after_utc}


def test_certificate_from_csr_keeps_the_csr_key(iot: Any) -> None:
    assert refused(iot.create_certificate_from_csr, certificateSigningRequest="garbage")[:2] == (
        "InvalidRequestException",
        400,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name("device")).sign(key, hashes.SHA256())
    created = iot.create_certificate_from_csr(
        certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(), setAsActive=True
    )
    certificate = x509.load_pem_x509_certificate(created["certificatePem"].encode())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert certificate.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert created["certificateId"] == der_id(created["certificatePem"])
    described = iot.describe_certificate(certificateId=created["certificateId"])["certificateDescription"]
    assert described["status"] == "ACTIVE"
    # setAsActive=false must give an INACTIVE certificate (moto read the string "false" as true).
    inactive = iot.create_certificate_from_csr(
        certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(), setAsActive=False
    )
    described = iot.describe_certificate(certificateId=inactive["certificateId"])["certificateDescription"]
    assert described["status"] == "INACTIVE"


def test_delete_certificate_conflicts(iot: Any) -> None:
    certificate_id, arn = new_certificate(iot, active=True)
    iot.create_thing(thingName="t")
    iot.create_policy(policyName="p", policyDocument=POLICY)
    iot.attach_thing_principal(thingName="t", principal=arn)
    iot.attach_policy(policyName="p", target=arn)
    assert refused(iot.delete_certificate, certificateId=certificate_id)[:2] == ("CertificateStateException", 406)
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    assert refused(iot.delete_certificate, certificateId=certificate_id)[:2] == ("DeleteConflictException", 409)
    code, _unused, _unused = refused(iot.delete_certificate, certificateId=certificate_id, forceDelete=True)
    assert code == "DeleteConflictException"  # forceDelete covers policies, not things
    iot.detach_thing_principal(thingName="t", principal=arn)
    assert refused(iot.delete_certificate, certificateId=certificate_id)[0] == "DeleteConflictException"
    iot.delete_certificate(certificateId=certificate_id, forceDelete=True)
    assert refused(iot.describe_certificate, certificateId=certificate_id)[0] == "ResourceNotFoundException"


def test_delete_certificate_with_a_cognito_identity_on_a_thing(iot: Any, endpoint: str) -> None:
    cognito = boto3.client(
        "cognito-identity",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pool = cognito.create_identity_pool(IdentityPoolName="pool", AllowUnauthenticatedIdentities=True)
    identity = cognito.get_id(IdentityPoolId=pool["IdentityPoolId"])["IdentityId"]
    iot.create_thing(thingName="t")
    iot.attach_thing_principal(thingName="t", principal=identity)
    certificate_id, _unused = new_certificate(iot)
    iot.delete_certificate(certificateId=certificate_id)
    assert refused(iot.describe_certificate, certificateId=certificate_id)[0] == "ResourceNotFoundException"


# --- 7. policy attachments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["attach_policy", "attach_principal_policy"])
def test_an_eleventh_policy_on_a_certificate_is_refused(iot: Any, api: str) -> None:
    _unused, arn = new_certificate(iot)
    for index in range(11):
        iot.create_policy(policyName=f"p{index}", policyDocument=POLICY)

    def attach(name: str) -> None:
        if api == "attach_policy":
            iot.attach_policy(policyName=name, target=arn)
        else:
            iot.attach_principal_policy(policyName=name, principal=arn)

    for index in range(10):
        attach(f"p{index}")
    attach("p0")  # already attached: still fine at the limit
    with pytest.raises(ClientError) as caught:
        attach("p10")
    assert caught.value.response["Error"]["Code"] == "LimitExceededException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert len(iot.list_attached_policies(target=arn, pageSize=50)["policies"]) == 10


# --- 8. exclusive thing principals ----------------------------------------------------------------------------


def test_exclusive_thing_principals(iot: Any) -> None:
    for name in ("a", "b", "c"):
        iot.create_thing(thingName=name)
    _unused, arn = new_certificate(iot)
    iot.attach_thing_principal(thingName="a", principal=arn, thingPrincipalType="EXCLUSIVE_THING")
    iot.attach_thing_principal(thingName="a", principal=arn, thingPrincipalType="EXCLUSIVE_THING")  # same again
    for kind in ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING"):
        code, status, _unused = refused(
            iot.attach_thing_principal, thingName="b", principal=arn, thingPrincipalType=kind
        )
        assert (code, status) == ("InvalidRequestException", 400)
    assert refused(iot.attach_thing_principal, thingName="b", principal=arn)[0] == "InvalidRequestException"
    objects = iot.list_thing_principals_v2(thingName="a")["thingPrincipalObjects"]
    assert objects == [{"principal": arn, "thingPrincipalType": "EXCLUSIVE_THING"}]
    assert iot.list_principal_things_v2(principal=arn)["principalThingObjects"] == [
        {"thingName": "a", "thingPrincipalType": "EXCLUSIVE_THING"}
    ]

    iot.detach_thing_principal(thingName="a", principal=arn)
    iot.attach_thing_principal(thingName="b", principal=arn)
    iot.attach_thing_principal(thingName="c", principal=arn, thingPrincipalType="NON_EXCLUSIVE_THING")
    code, _unused, _unused = refused(
        iot.attach_thing_principal, thingName="a", principal=arn, thingPrincipalType="EXCLUSIVE_THING"
    )
    assert code == "InvalidRequestException"
    things = iot.list_principal_things_v2(principal=arn, thingPrincipalType="NON_EXCLUSIVE_THING")[
        "principalThingObjects"
    ]
    assert sorted(t["thingName"] for t in things) == ["b", "c"]
    assert (
        iot.list_principal_things_v2(principal=arn, thingPrincipalType="EXCLUSIVE_THING")["principalThingObjects"] == []
    )


# --- 9. thing group count: see test_a_thing_is_in_at_most_ten_groups above ---------------------------------------
# --- 10. policy documents -------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["not json", "[1, 2]", "", json.dumps({"Statement": "x" * 2040})])
def test_malformed_policy_documents_are_refused(iot: Any, document: str) -> None:
    code, status, _unused = refused(iot.create_policy, policyName="p", policyDocument=document)
    assert (code, status) == ("MalformedPolicyException", 400)
    assert refused(iot.get_policy, policyName="p")[0] == "ResourceNotFoundException"
    iot.create_policy(policyName="q", policyDocument=POLICY)
    code, _unused, _unused = refused(
        iot.create_policy_version, policyName="q", policyDocument=document, setAsDefault=True
    )
    assert code == "MalformedPolicyException"
    assert [v["versionId"] for v in iot.list_policy_versions(policyName="q")["policyVersions"]] == ["1"]


def test_policy_size_excludes_whitespace(iot: Any) -> None:
    statement = {"Effect": "Allow", "Action": "iot:Publish", "Resource": "x"}
    skeleton = json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))
    statement["Resource"] = "x" * (2048 - len(skeleton) + 1)
    exact = json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))
    assert len(exact) == 2048
    iot.create_policy(policyName="fits", policyDocument=json.dumps(json.loads(exact), indent=8))
    statement["Resource"] += "x"
    too_big = json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))
    assert refused(iot.create_policy, policyName="big", policyDocument=too_big)[0] == "MalformedPolicyException"


# --- 11. deletes of policies and versions ---------------------------------------------------------------------


def test_policy_delete_conflicts_and_versions(iot: Any) -> None:
    _unused, arn = new_certificate(iot)
    iot.create_policy(policyName="p", policyDocument=POLICY)
    iot.attach_policy(policyName="p", target=arn)
    assert refused(iot.delete_policy, policyName="p")[:2] == ("DeleteConflictException", 409)
    iot.detach_policy(policyName="p", target=arn)
    for _unused in range(4):
        iot.create_policy_version(policyName="p", policyDocument=POLICY, setAsDefault=True)
    code, _unused, _unused = refused(iot.create_policy_version, policyName="p", policyDocument=POLICY)
    assert code == "VersionsLimitExceededException"
    assert refused(iot.delete_policy, policyName="p")[0] == "DeleteConflictException"
    assert refused(iot.set_default_policy_version, policyName="p", policyVersionId="9")[:2] == (
        "ResourceNotFoundException",
        404,
    )
    assert iot.get_policy(policyName="p")["defaultVersionId"] == "5"
    iot.set_default_policy_version(policyName="p", policyVersionId="2")
    for version in ("1", "3", "4", "5"):
        iot.delete_policy_version(policyName="p", policyVersionId=version)
    iot.delete_policy(policyName="p")
    assert refused(iot.get_policy, policyName="p")[0] == "ResourceNotFoundException"


def test_list_targets_for_policy_pages(iot: Any) -> None:
    iot.create_policy(policyName="p", policyDocument=POLICY)
    arns = [new_certificate(iot)[1] for _unused in range(3)]
    for arn in arns:
        iot.attach_policy(policyName="p", target=arn)
    first = iot.list_targets_for_policy(policyName="p", pageSize=2)
    assert len(first["targets"]) == 2 and first["nextMarker"]
    second = iot.list_targets_for_policy(policyName="p", pageSize=2, marker=first["nextMarker"])
    assert "nextMarker" not in second
    assert first["targets"] + second["targets"] == arns


# --- 12. endpoints --------------------------------------------------------------------------------------------


def test_describe_endpoint_is_stable(iot: Any, endpoint: str) -> None:
    ats = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert ats == iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert ats.endswith("-ats.iot.us-east-1.amazonaws.com")
    legacy = iot.describe_endpoint(endpointType="iot:Data")["endpointAddress"]
    assert legacy == ats.replace("-ats.", ".")
    credentials = iot.describe_endpoint(endpointType="iot:CredentialProvider")["endpointAddress"]
    assert (
        credentials.endswith(".credentials.iot.us-east-1.amazonaws.com")
        and credentials.split(".")[0] != ats.split("-")[0]
    )
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=10).close()
    assert iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == ats
    assert refused(iot.describe_endpoint, endpointType="iot:Bogus")[0] == "InvalidRequestException"


# --- 13. paging -----------------------------------------------------------------------------------------------


def test_list_things_pages_like_aws(iot: Any) -> None:
    names = [f"thing{index:02d}" for index in range(30)]
    for name in names:
        iot.create_thing(thingName=name)
    first = iot.list_things()
    assert len(first["things"]) == 25 and first["nextToken"]  # the server's default page size
    seen: list[str] = []
    token = None
    while True:
        page = iot.list_things(maxResults=7, **({"nextToken": token} if token else {}))
        assert len(page["things"]) <= 7
        seen += [t["thingName"] for t in page["things"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == names
    paginated = [t["thingName"] for p in iot.get_paginator("list_things").paginate() for t in p["things"]]
    assert paginated == names


def test_paging_survives_deletes_and_refuses_foreign_tokens(iot: Any) -> None:
    for index in range(6):
        iot.create_thing(thingName=f"t{index}")
    first = iot.list_things(maxResults=3)
    iot.delete_thing(thingName="t0")
    rest = iot.list_things(maxResults=3, nextToken=first["nextToken"])
    assert [t["thingName"] for t in rest["things"]] == ["t3", "t4", "t5"]
    assert refused(iot.list_things, nextToken="not-a-token")[:2] == ("InvalidRequestException", 400)
    assert refused(iot.list_policies, marker="bm90IGEgdG9rZW4=")[0] == "InvalidRequestException"
    assert refused(iot.list_things, maxResults=251)[0] == "InvalidRequestException"


PAGED_APIS = {
    # api: (arguments, result key); every list holds exactly three items in the world built below
    "list_things_in_thing_group": (lambda w: {"thingGroupName": "g0"}, "things"),
    "list_thing_groups": (lambda w: {}, "thingGroups"),
    "list_thing_groups_for_thing": (lambda w: {"thingName": "t"}, "thingGroups"),
    "list_thing_types": (lambda w: {}, "thingTypes"),
    "list_thing_principals": (lambda w: {"thingName": "t"}, "principals"),
    "list_thing_principals_v2": (lambda w: {"thingName": "t"}, "thingPrincipalObjects"),
    "list_principal_things": (lambda w: {"principal": w["arns"][0]}, "things"),
    "list_principal_things_v2": (lambda w: {"principal": w["arns"][0]}, "principalThingObjects"),
    "list_certificates": (lambda w: {}, "certificates"),
    "list_certificates_by_ca": (lambda w: {"caCertificateId": w["ca_id"]}, "certificates"),
    "list_policies": (lambda w: {}, "policies"),
    "list_attached_policies": (lambda w: {"target": w["arns"][0]}, "policies"),
    "list_principal_policies": (lambda w: {"principal": w["arns"][0]}, "policies"),
    "list_policy_principals": (lambda w: {"policyName": "p0"}, "principals"),
    "list_targets_for_policy": (lambda w: {"policyName": "p0"}, "targets"),
}


def build_world(iot: Any) -> dict[str, Any]:
    ca = make_certificate("ca", ca=True)
    verification = make_certificate(iot.get_registration_code()["registrationCode"], issuer=ca)[1]
    registered = iot.register_ca_certificate(
        caCertificate=pem(ca[1]), verificationCertificate=pem(verification), setAsActive=True
    )
    ca_id = registered["certificateId"]
    iot.create_thing(thingName="t")
    arns = []
    for index in range(3):
        device = make_certificate(f"device{index}", issuer=ca)[1]
        arns.append(iot.register_certificate(certificatePem=pem(device), caCertificatePem=pem(ca[1]))["certificateArn"])
        iot.attach_thing_principal(thingName="t", principal=arns[-1])
        iot.create_policy(policyName=f"p{index}", policyDocument=POLICY)
        iot.attach_policy(policyName=f"p{index}", target=arns[0])
        iot.create_thing_group(thingGroupName=f"g{index}")
        iot.add_thing_to_thing_group(thingGroupName=f"g{index}", thingName="t")
        iot.create_thing_type(thingTypeName=f"type{index}")
        if index:
            iot.create_thing(thingName=f"member{index}")
            iot.add_thing_to_thing_group(thingGroupName="g0", thingName=f"member{index}")
            iot.attach_thing_principal(thingName=f"member{index}", principal=arns[0])
            iot.attach_policy(policyName="p0", target=arns[index])
    return {"ca_id": ca_id, "arns": arns}


@pytest.mark.parametrize("api", sorted(PAGED_APIS))
def test_every_paged_list_call_pages(iot: Any, api: str) -> None:
    world = build_world(iot)
    arguments, result_key = PAGED_APIS[api]
    kwargs = arguments(world)
    whole = next(iter(iot.get_paginator(api).paginate(**kwargs, PaginationConfig={"PageSize": 250})))[result_key]
    assert len(whole) == 3
    pages = list(iot.get_paginator(api).paginate(**kwargs, PaginationConfig={"PageSize": 1}))
    assert [len(p[result_key]) for p in pages] == [1, 1, 1]
    assert [item for p in pages for item in p[result_key]] == whole


# --- call recording and the command line ----------------------------------------------------------------------


def test_calls_are_recorded_in_order_including_refused_ones(iot: Any, endpoint: str) -> None:
    iot.create_thing(thingName="t")
    refused(iot.create_thing, thingName="bad name")
    iot.describe_thing(thingName="t")
    with urllib.request.urlopen(endpoint + "/_local/calls", timeout=10) as response:
        assert json.load(response)["calls"] == ["CreateThing", "CreateThing", "DescribeThing"]


def test_server_defaults_follow_aws() -> None:
    import server

    defaults = server.build_parser().parse_args([])
    assert defaults.thing_type_delete_wait == 300
    assert defaults.detach_consistency_delay == 0
    assert defaults.default_page_size == 25
    given = server.build_parser().parse_args(["--thing-type-delete-wait", "2", "--detach-consistency-delay", "0.5"])
    options = server.fidelity_options(given)
    assert (options.thing_type_delete_wait, options.detach_consistency_delay) == (2.0, 0.5)
