"""Tags on thing groups, thing types, policies and CA certificates (tagging_api.py), driven with plain boto3.

One endpoint per module (started with launcher.py), reset before every test. Each behaviour is checked for the
four resource types; provisioning templates, which had tags before, are covered by test_provisioning_api.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import sys
from typing import Any, Callable, Iterator, Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import client, error_of, module_endpoint, reset

ACCOUNT = "123456789012"
ARN_PREFIX = f"arn:aws:iot:us-east-1:{ACCOUNT}"
POLICY_DOC = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # Thing types can be deleted right after their deprecation.
    with module_endpoint("tagging", ["--thing-type-delete-wait", "0"]) as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    return client(endpoint)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def tags_of(iot: Any, arn: str) -> dict[str, str]:
    """The resource's tags as a dict, in the order the endpoint lists them (every page)."""
    result: dict[str, str] = {}
    params = {"resourceArn": arn}
    while True:
        page = iot.list_tags_for_resource(**params)
        result.update({tag["Key"]: tag["Value"] for tag in page["tags"]})
        if not page.get("nextToken"):
            return result
        params["nextToken"] = page["nextToken"]


def ca_certificate_pem(common_name: str = "Tagging test CA") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclasses.dataclass
class Kind:
    """One taggable resource type: how to create (with optional tags) and delete one fixed resource."""

    name: str
    create: Callable[[Any, Optional[dict[str, str]]], str]  # returns the resource's ARN
    delete: Callable[[Any], None]
    arn_pattern: str  # the ARN AWS gives it
    creation_limit_code: str  # the error for over 50 tags at creation
    exists: Callable[[Any], bool]


def _with_tags(tags: Optional[dict[str, str]]) -> dict[str, Any]:
    return {} if tags is None else {"tags": tag_list(tags)}


def thing_group_kind() -> Kind:
    def delete(iot: Any) -> None:
        iot.delete_thing_group(thingGroupName="group")

    return Kind(
        name="thing_group",
        create=lambda iot, tags: iot.create_thing_group(thingGroupName="group", **_with_tags(tags))["thingGroupArn"],
        delete=delete,
        arn_pattern=rf"{ARN_PREFIX}:thinggroup/group",
        creation_limit_code="InvalidRequestException",
        exists=lambda iot: any(g["groupName"] == "group" for g in iot.list_thing_groups()["thingGroups"]),
    )


def thing_type_kind() -> Kind:
    def delete(iot: Any) -> None:
        iot.deprecate_thing_type(thingTypeName="sensor")
        iot.delete_thing_type(thingTypeName="sensor")

    return Kind(
        name="thing_type",
        create=lambda iot, tags: iot.create_thing_type(thingTypeName="sensor", **_with_tags(tags))["thingTypeArn"],
        delete=delete,
        arn_pattern=rf"{ARN_PREFIX}:thingtype/sensor",
        creation_limit_code="InvalidRequestException",
        exists=lambda iot: any(t["thingTypeName"] == "sensor" for t in iot.list_thing_types()["thingTypes"]),
    )


def policy_kind() -> Kind:
    def create(iot: Any, tags: Optional[dict[str, str]]) -> str:
        return iot.create_policy(policyName="connect", policyDocument=POLICY_DOC, **_with_tags(tags))["policyArn"]

    return Kind(
        name="policy",
        create=create,
        delete=lambda iot: iot.delete_policy(policyName="connect"),
        arn_pattern=rf"{ARN_PREFIX}:policy/connect",
        creation_limit_code="InvalidRequestException",
        exists=lambda iot: any(p["policyName"] == "connect" for p in iot.list_policies()["policies"]),
    )


def ca_certificate_kind() -> Kind:
    pem = ca_certificate_pem()  # the same CA every time: a re-registration gets the same id and ARN
    ids: list[str] = []

    def create(iot: Any, tags: Optional[dict[str, str]]) -> str:
        # SNI_ONLY needs no verification certificate; not active, so that DeleteCACertificate accepts it.
        created = iot.register_ca_certificate(caCertificate=pem, certificateMode="SNI_ONLY", **_with_tags(tags))
        ids[:] = [created["certificateId"]]
        return created["certificateArn"]

    return Kind(
        name="ca_certificate",
        create=create,
        delete=lambda iot: iot.delete_ca_certificate(certificateId=ids[0]),
        arn_pattern=rf"{ARN_PREFIX}:cacert/[0-9a-f]{{64}}",
        creation_limit_code="LimitExceededException",
        exists=lambda iot: bool(iot.list_ca_certificates()["certificates"]),
    )


KINDS = {
    "thing_group": thing_group_kind,
    "thing_type": thing_type_kind,
    "policy": policy_kind,
    "ca_certificate": ca_certificate_kind,
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: Any) -> Kind:
    return KINDS[request.param]()


# --------------------------------------------------------------------------- per resource type


def test_tags_given_at_creation_are_listed(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, {"team": "fleet", "env": "prod"})
    assert re.fullmatch(kind.arn_pattern, arn), arn
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"Key": "team", "Value": "fleet"},
        {"Key": "env", "Value": "prod"},
    ]


def test_a_resource_created_without_tags_has_none(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, None)
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_tag_resource_adds_and_overwrites(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, {"team": "fleet", "env": "prod"})
    iot.tag_resource(resourceArn=arn, tags=tag_list({"env": "staging", "owner": "ops", "empty": ""}))
    assert tags_of(iot, arn) == {"team": "fleet", "env": "staging", "owner": "ops", "empty": ""}


def test_untag_resource_removes_only_the_keys_given(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, {"team": "fleet", "env": "prod", "owner": "ops"})
    iot.untag_resource(resourceArn=arn, tagKeys=["env", "not-there"])  # a missing key is no error
    assert tags_of(iot, arn) == {"team": "fleet", "owner": "ops"}
    iot.untag_resource(resourceArn=arn, tagKeys=["team", "owner"])
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_a_51st_tag_is_refused_and_nothing_changes(iot: Any, kind: Kind) -> None:
    fifty = {f"k{i:02d}": "v" for i in range(50)}
    arn = kind.create(iot, fifty)
    assert len(tags_of(iot, arn)) == 50
    code, message, status = error_of(iot.tag_resource, resourceArn=arn, tags=tag_list({"k50": "v", "k00": "new"}))
    assert (code, status) == ("LimitExceededException", 410)
    assert "at most 50" in message
    assert tags_of(iot, arn) == fifty  # not even the overwrite of k00 was applied
    # The limit counts the result: overwriting keys of a full resource is fine.
    iot.tag_resource(resourceArn=arn, tags=tag_list({"k00": "new"}))
    assert tags_of(iot, arn)["k00"] == "new"


def test_more_than_50_tags_at_creation_create_nothing(iot: Any, kind: Kind) -> None:
    code, message, _unused = error_of(kind.create, iot=iot, tags={f"k{i}": "v" for i in range(51)})
    assert code == kind.creation_limit_code
    assert "at most 50" in message
    assert not kind.exists(iot)


def test_aws_prefix_is_reserved(iot: Any, kind: Kind) -> None:
    code, message, status = error_of(kind.create, iot=iot, tags={"team": "fleet", "aws:owner": "me"})
    assert (code, status) == ("InvalidRequestException", 400)
    assert "reserved" in message
    assert not kind.exists(iot)
    arn = kind.create(iot, {"team": "fleet"})
    for key in ("aws:owner", "AWS:Owner"):
        code, message, status = error_of(iot.tag_resource, resourceArn=arn, tags=tag_list({key: "me"}))
        assert (code, status) == ("InvalidRequestException", 400)
        assert "reserved" in message
    assert tags_of(iot, arn) == {"team": "fleet"}


def test_tag_key_and_value_rules(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, None)
    for bad in ({"bad#key": "v"}, {"k" * 129: "v"}, {"key": "v" * 257}):
        code, _unused, status = error_of(iot.tag_resource, resourceArn=arn, tags=tag_list(bad))
        assert (code, status) == ("InvalidRequestException", 400), bad
    iot.tag_resource(resourceArn=arn, tags=tag_list({"k" * 128: "v" * 256, "a b_.:/=+-@": "x"}))
    assert tags_of(iot, arn) == {"k" * 128: "v" * 256, "a b_.:/=+-@": "x"}


def test_deleted_and_created_again_starts_without_tags(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, {"team": "fleet"})
    iot.tag_resource(resourceArn=arn, tags=tag_list({"env": "prod"}))
    kind.delete(iot)
    code, _unused, status = error_of(iot.list_tags_for_resource, resourceArn=arn)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert kind.create(iot, None) == arn
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_created_again_with_other_tags_has_only_those(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, {"team": "fleet", "env": "prod"})
    kind.delete(iot)
    assert kind.create(iot, {"owner": "ops"}) == arn
    assert tags_of(iot, arn) == {"owner": "ops"}


def test_reset_clears_tags(iot: Any, kind: Kind, endpoint: str) -> None:
    arn = kind.create(iot, {"team": "fleet"})
    reset(endpoint)
    assert error_of(iot.list_tags_for_resource, resourceArn=arn)[0] == "ResourceNotFoundException"
    assert kind.create(iot, None) == arn
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_missing_resource_of_a_supported_type(iot: Any, kind: Kind) -> None:
    arn = kind.create(iot, None)
    kind.delete(iot)
    for call, extra in (
        (iot.tag_resource, {"tags": tag_list({"a": "1"})}),
        (iot.untag_resource, {"tagKeys": ["a"]}),
        (iot.list_tags_for_resource, {}),
    ):
        code, _unused, status = error_of(call, resourceArn=arn, **extra)
        assert (code, status) == ("ResourceNotFoundException", 404), call


# --------------------------------------------------------------------------- ARNs the endpoint does not tag


def test_a_missing_thing_group(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="present", tags=tag_list({"a": "1"}))
    missing = f"{ARN_PREFIX}:thinggroup/absent"
    for call, extra in (
        (iot.tag_resource, {"tags": tag_list({"a": "1"})}),
        (iot.untag_resource, {"tagKeys": ["a"]}),
        (iot.list_tags_for_resource, {}),
    ):
        code, message, status = error_of(call, resourceArn=missing, **extra)
        assert (code, status) == ("ResourceNotFoundException", 404)
        assert "absent" in message
    # Another region's or account's ARN names another resource: not this one.
    for other in (
        f"arn:aws:iot:eu-west-1:{ACCOUNT}:thinggroup/present",
        "arn:aws:iot:us-east-1:210987654321:thinggroup/present",
    ):
        assert error_of(iot.list_tags_for_resource, resourceArn=other)[0] == "ResourceNotFoundException"


def test_a_thing_arn_is_refused(iot: Any) -> None:
    thing_arn = iot.create_thing(thingName="device")["thingArn"]
    for call, extra in (
        (iot.tag_resource, {"tags": tag_list({"a": "1"})}),
        (iot.untag_resource, {"tagKeys": ["a"]}),
        (iot.list_tags_for_resource, {}),
    ):
        code, message, status = error_of(call, resourceArn=thing_arn, **extra)
        assert (code, status) == ("InvalidRequestException", 400)
        for supported in ("provisioning templates", "thing groups", "thing types", "policies", "CA certificates"):
            assert supported in message
        assert thing_arn in message


@pytest.mark.parametrize(
    "arn",
    [
        f"{ARN_PREFIX}:cert/{'ab' * 32}",  # a device certificate
        f"{ARN_PREFIX}:billinggroup/billing",  # taggable in AWS, not served here
        f"{ARN_PREFIX}:rule/myrule",
        f"{ARN_PREFIX}:unknowntype/x",
        "arn:aws:iot:us-east-1:12345:thinggroup/short-account",
        "arn:aws:s3:::bucket",
        "not-an-arn",
    ],
)
def test_other_arns_are_refused(iot: Any, arn: str) -> None:
    code, message, status = error_of(iot.list_tags_for_resource, resourceArn=arn)
    assert (code, status) == ("InvalidRequestException", 400)
    assert arn in message
    assert error_of(iot.tag_resource, resourceArn=arn, tags=tag_list({"a": "1"}))[0] == "InvalidRequestException"


def test_a_certificate_arn_is_refused_even_with_a_ca_id(iot: Any) -> None:
    # A CA's id under cert/ is not the CA (moto used to give CAs that form of ARN).
    created = iot.register_ca_certificate(caCertificate=ca_certificate_pem(), certificateMode="SNI_ONLY")
    cert_form = f"{ARN_PREFIX}:cert/{created['certificateId']}"
    assert error_of(iot.list_tags_for_resource, resourceArn=cert_form)[0] == "InvalidRequestException"


# --------------------------------------------------------------------------- refusals and re-creation keep tags


def test_a_refused_delete_keeps_the_tags(iot: Any) -> None:
    parent = iot.create_thing_group(thingGroupName="parent", tags=tag_list({"a": "1"}))["thingGroupArn"]
    iot.create_thing_group(thingGroupName="child", parentGroupName="parent")
    assert error_of(iot.delete_thing_group, thingGroupName="parent")[0] == "InvalidRequestException"
    assert tags_of(iot, parent) == {"a": "1"}

    policy = iot.create_policy(policyName="p", policyDocument=POLICY_DOC, tags=tag_list({"b": "2"}))["policyArn"]
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="p", target=certificate["certificateArn"])
    assert error_of(iot.delete_policy, policyName="p")[0] == "DeleteConflictException"
    assert tags_of(iot, policy) == {"b": "2"}

    iot.create_thing_type(thingTypeName="tt", tags=tag_list({"c": "3"}))
    thing_type = f"{ARN_PREFIX}:thingtype/tt"
    assert error_of(iot.delete_thing_type, thingTypeName="tt")[0] == "InvalidRequestException"  # not deprecated
    assert tags_of(iot, thing_type) == {"c": "3"}

    ca = iot.register_ca_certificate(
        caCertificate=ca_certificate_pem(), certificateMode="SNI_ONLY", setAsActive=True, tags=tag_list({"d": "4"})
    )
    assert error_of(iot.delete_ca_certificate, certificateId=ca["certificateId"])[0] == "CertificateStateException"
    assert tags_of(iot, ca["certificateArn"]) == {"d": "4"}


def test_create_returning_an_existing_group_or_type_leaves_its_tags(iot: Any) -> None:
    # CreateThingGroup / CreateThingType with the same name and properties return the existing resource; its
    # tags stay as they are (our reading, see README). (The group has properties: moto refuses a repeated
    # CreateThingGroup without any, see README's known gaps.)
    properties = {"thingGroupDescription": "site"}
    group = iot.create_thing_group(thingGroupName="g", thingGroupProperties=properties, tags=tag_list({"a": "1"}))
    again = iot.create_thing_group(thingGroupName="g", thingGroupProperties=properties, tags=tag_list({"b": "2"}))
    assert again["thingGroupArn"] == group["thingGroupArn"]
    group = group["thingGroupArn"]
    assert tags_of(iot, group) == {"a": "1"}
    thing_type = iot.create_thing_type(thingTypeName="t", tags=tag_list({"a": "1"}))["thingTypeArn"]
    assert iot.create_thing_type(thingTypeName="t")["thingTypeArn"] == thing_type
    assert tags_of(iot, thing_type) == {"a": "1"}


def test_a_refused_creation_leaves_the_existing_tags(iot: Any) -> None:
    policy = iot.create_policy(policyName="p", policyDocument=POLICY_DOC, tags=tag_list({"a": "1"}))["policyArn"]
    code = error_of(iot.create_policy, policyName="p", policyDocument=POLICY_DOC, tags=tag_list({"b": "2"}))[0]
    assert code == "ResourceAlreadyExistsException"
    assert tags_of(iot, policy) == {"a": "1"}
    pem = ca_certificate_pem()
    ca = iot.register_ca_certificate(caCertificate=pem, certificateMode="SNI_ONLY", tags=tag_list({"a": "1"}))
    code = error_of(iot.register_ca_certificate, caCertificate=pem, certificateMode="SNI_ONLY", tags=tag_list({}))[0]
    assert code == "ResourceAlreadyExistsException"
    assert tags_of(iot, ca["certificateArn"]) == {"a": "1"}


def test_tags_are_per_resource(iot: Any) -> None:
    first = iot.create_thing_group(thingGroupName="first", tags=tag_list({"a": "1"}))["thingGroupArn"]
    second = iot.create_thing_group(thingGroupName="second")["thingGroupArn"]
    policy = iot.create_policy(policyName="first", policyDocument=POLICY_DOC)["policyArn"]
    iot.tag_resource(resourceArn=second, tags=tag_list({"b": "2"}))
    assert (tags_of(iot, first), tags_of(iot, second), tags_of(iot, policy)) == ({"a": "1"}, {"b": "2"}, {})


# --------------------------------------------------------------------------- CA certificate ARNs


def test_ca_certificate_arn_is_the_cacert_form(iot: Any) -> None:
    created = iot.register_ca_certificate(caCertificate=ca_certificate_pem(), certificateMode="SNI_ONLY")
    expected = f"{ARN_PREFIX}:cacert/{created['certificateId']}"
    assert created["certificateArn"] == expected
    described = iot.describe_ca_certificate(certificateId=created["certificateId"])["certificateDescription"]
    assert described["certificateArn"] == expected
    assert [c["certificateArn"] for c in iot.list_ca_certificates()["certificates"]] == [expected]
