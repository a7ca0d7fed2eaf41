"""The local endpoint's provisioning APIs, driven with plain boto3.

One endpoint per module (started with launcher.py), reset between tests. Every
check reads state back through moto's normal APIs, so a handler that answers
without really creating something fails here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import urllib.request
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import client, error_of, module_endpoint, reset

ROLE = "arn:aws:iam::123456789012:role/provisioning"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:hook"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("provisioning_api") as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    return client(endpoint)


def body(resources: dict[str, Any], parameters: dict[str, Any] | None = None, **sections: Any) -> str:
    document: dict[str, Any] = {"Parameters": parameters or {}, "Resources": resources}
    document.update(sections)
    return json.dumps(document)


def thing_resource(name: Any = None, **properties: Any) -> dict[str, Any]:
    props = {"ThingName": name if name is not None else {"Ref": "ThingName"}, **properties}
    return {"Type": "AWS::IoT::Thing", "Properties": props}


SIMPLE = body({"thing": thing_resource()}, {"ThingName": {"Type": "String"}})


def create_template(iot: Any, name: str = "tmpl", template_body: str = SIMPLE, **kwargs: Any) -> dict[str, Any]:
    return iot.create_provisioning_template(
        templateName=name, templateBody=template_body, provisioningRoleArn=ROLE, **kwargs
    )


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(common_name: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def make_cert(common_name: str, issuer: tuple[x509.Name, Any] | None = None, ca: bool = False) -> tuple[str, Any]:
    key = ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), (subject, key)


def counts(iot: Any) -> tuple[int, int, int]:
    return (
        len(iot.list_things()["things"]),
        len(iot.list_certificates()["certificates"]),
        len(iot.list_policies()["policies"]),
    )


POLICY_DOC = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)


# --------------------------------------------------------------------------- provisioning templates


def test_create_and_describe_template(iot: Any) -> None:
    created = create_template(iot, description="widgets", tags=[{"Key": "team", "Value": "fleet"}])
    assert created["templateName"] == "tmpl"
    assert created["templateArn"] == "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/tmpl"
    assert created["defaultVersionId"] == 1
    described = iot.describe_provisioning_template(templateName="tmpl")
    assert described["templateArn"] == created["templateArn"]
    assert described["description"] == "widgets"
    assert described["templateBody"] == SIMPLE
    assert described["defaultVersionId"] == 1
    assert described["enabled"] is False  # not given: disabled
    assert described["type"] == "FLEET_PROVISIONING"
    assert described["provisioningRoleArn"] == ROLE
    assert "preProvisioningHook" not in described
    assert isinstance(described["creationDate"], datetime.datetime)
    assert described["lastModifiedDate"] == described["creationDate"]
    tags = iot.list_tags_for_resource(resourceArn=created["templateArn"])["tags"]
    assert tags == [{"Key": "team", "Value": "fleet"}]


def test_duplicate_template_name_conflicts(iot: Any) -> None:
    created = create_template(iot)
    with pytest.raises(ClientError) as caught:
        create_template(iot, template_body=body({"t": thing_resource("x")}))
    response = caught.value.response
    assert response["Error"]["Code"] == "ResourceAlreadyExistsException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert response["resourceArn"] == created["templateArn"]
    assert iot.describe_provisioning_template(templateName="tmpl")["templateBody"] == SIMPLE


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"templateName": "bad name"}, "templateName"),
        ({"templateName": "x" * 37}, "templateName"),
        # Length, pattern and enum rules of the model: the message names the field (either layer may catch them).
        ({"description": "d" * 501}, "description"),
        ({"description": "line\nbreak"}, "description"),
        ({"templateBody": "{" + " " * 10240 + "}"}, "templateBody"),
        ({"templateBody": "{not json"}, "not valid JSON"),
        ({"templateBody": "[]"}, "must be a JSON object"),
        ({"templateBody": json.dumps({"Parameters": {}})}, "Resources: required"),
        ({"templateBody": body({"x": {"Type": "AWS::IoT::Widget", "Properties": {}}})}, "Resources.x.Type"),
        ({"templateBody": body({"t": thing_resource({"Fn::If": ["c", "a", "b"]})})}, "unsupported function Fn::If"),
        ({"templateBody": body({"t": thing_resource({"Ref": "Nope"})})}, "not declared in Parameters"),
        ({"templateBody": body({"t": thing_resource("x")}, Conditions={})}, "unsupported sections"),
        ({"templateBody": body({"t": thing_resource("x", Color="red")})}, "unsupported properties"),
        (
            {"templateBody": body({"c": {"Type": "AWS::IoT::Certificate", "Properties": {"Status": "ACTIVE"}}})},
            "exactly one of CertificateSigningRequest, CertificateId, CertificatePem",
        ),
        (
            {
                "templateBody": body(
                    {"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "a", "PolicyDocument": "{}"}}}
                )
            },
            "exactly one of PolicyName or PolicyDocument",
        ),
        (
            {"templateBody": body({"t": {**thing_resource("x"), "OverrideSettings": {"ThingTypeName": "MERGE"}}})},
            "OverrideSettings.ThingTypeName: must be one of DO_NOTHING, REPLACE, FAIL",
        ),
        (
            {"templateBody": body({"a": thing_resource("x"), "b": thing_resource("y")})},
            "at most one AWS::IoT::Thing",
        ),
        ({"provisioningRoleArn": "arn:aws:iam::123456789012:user/someone"}, "provisioningRoleArn"),
        ({"type": "BULK"}, "type"),
        ({"type": "JITP", "preProvisioningHook": {"targetArn": LAMBDA}}, "only supported for templates of type FLEET"),
        ({"preProvisioningHook": {"targetArn": "arn:aws:sns:us-east-1:123456789012:topic"}}, "only Lambda"),
        ({"tags": [{"Key": "aws:reserved", "Value": "x"}]}, "reserved"),
    ],
)
def test_create_template_refuses_invalid_input(iot: Any, kwargs: dict[str, Any], fragment: str) -> None:
    request = {"templateName": "tmpl", "templateBody": SIMPLE, "provisioningRoleArn": ROLE, **kwargs}
    code, message, status = error_of(iot.create_provisioning_template, **request)
    assert (code, status) == ("InvalidRequestException", 400)
    assert fragment in message
    assert iot.list_provisioning_templates()["templates"] == []


def test_fifty_one_tags_exceed_the_limit(iot: Any) -> None:
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    code, _unused, status = error_of(
        iot.create_provisioning_template, templateName="t", templateBody=SIMPLE, provisioningRoleArn=ROLE, tags=tags
    )
    assert (code, status) == ("LimitExceededException", 410)
    assert iot.list_provisioning_templates()["templates"] == []


def test_pre_provisioning_hook_rules(iot: Any) -> None:
    create_template(iot, preProvisioningHook={"targetArn": LAMBDA})
    hook = iot.describe_provisioning_template(templateName="tmpl")["preProvisioningHook"]
    assert hook == {"targetArn": LAMBDA, "payloadVersion": "2020-04-01"}
    code, message, _unused = error_of(
        iot.update_provisioning_template,
        templateName="tmpl",
        preProvisioningHook={"targetArn": LAMBDA},
        removePreProvisioningHook=True,
    )
    assert code == "InvalidRequestException" and "cannot be given together" in message
    iot.update_provisioning_template(templateName="tmpl", description="no hook change")
    assert "preProvisioningHook" in iot.describe_provisioning_template(templateName="tmpl")
    iot.update_provisioning_template(templateName="tmpl", removePreProvisioningHook=True)
    assert "preProvisioningHook" not in iot.describe_provisioning_template(templateName="tmpl")

    create_template(iot, name="jitp", type="JITP")
    assert iot.describe_provisioning_template(templateName="jitp")["type"] == "JITP"
    code, message, _unused = error_of(
        iot.update_provisioning_template, templateName="jitp", preProvisioningHook={"targetArn": LAMBDA}
    )
    assert code == "InvalidRequestException" and "FLEET_PROVISIONING" in message
    assert "preProvisioningHook" not in iot.describe_provisioning_template(templateName="jitp")


def test_list_templates_pages(iot: Any) -> None:
    for index in range(5):
        create_template(
            iot, name=f"t{index}", enabled=index % 2 == 0, type="JITP" if index == 4 else "FLEET_PROVISIONING"
        )
    seen: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"maxResults": 2}
    pages = 0
    while True:
        response = iot.list_provisioning_templates(**kwargs)
        pages += 1
        assert len(response["templates"]) <= 2
        seen.extend(response["templates"])
        if "nextToken" not in response:
            break
        kwargs["nextToken"] = response["nextToken"]
    assert pages == 3
    assert [t["templateName"] for t in seen] == [f"t{i}" for i in range(5)]
    assert [t["enabled"] for t in seen] == [True, False, True, False, True]
    assert seen[4]["type"] == "JITP"
    assert set(seen[0]) == {"templateArn", "templateName", "creationDate", "lastModifiedDate", "enabled", "type"}
    paginated = [
        t["templateName"] for p in iot.get_paginator("list_provisioning_templates").paginate() for t in p["templates"]
    ]
    assert paginated == [f"t{i}" for i in range(5)]
    assert error_of(iot.list_provisioning_templates, maxResults=251)[0] == "InvalidRequestException"
    assert error_of(iot.list_provisioning_templates, nextToken="garbage")[0] == "InvalidRequestException"


def test_update_template(iot: Any) -> None:
    create_template(iot)
    before = iot.describe_provisioning_template(templateName="tmpl")
    other_role = "arn:aws:iam::123456789012:role/other"
    iot.update_provisioning_template(
        templateName="tmpl", description="new", enabled=True, provisioningRoleArn=other_role
    )
    after = iot.describe_provisioning_template(templateName="tmpl")
    assert (after["description"], after["enabled"], after["provisioningRoleArn"]) == ("new", True, other_role)
    assert after["lastModifiedDate"] > before["lastModifiedDate"]
    assert after["creationDate"] == before["creationDate"]
    iot.update_provisioning_template(templateName="tmpl", enabled=False)
    after = iot.describe_provisioning_template(templateName="tmpl")
    assert (after["description"], after["enabled"]) == ("new", False)  # unset options left alone
    assert (
        error_of(iot.update_provisioning_template, templateName="tmpl", defaultVersionId=9)[0]
        == "ResourceNotFoundException"
    )
    assert (
        error_of(iot.update_provisioning_template, templateName="nope", enabled=True)[0] == "ResourceNotFoundException"
    )
    code, message, _unused = error_of(
        iot.update_provisioning_template, templateName="tmpl", provisioningRoleArn="x" * 25
    )
    assert code == "InvalidRequestException" and "provisioningRoleArn" in message


def test_template_versions_cap_and_default_rules(iot: Any) -> None:
    create_template(iot)
    bodies = {1: SIMPLE}
    for version in range(2, 6):
        bodies[version] = body({"thing": thing_resource(f"v{version}")})
        created = iot.create_provisioning_template_version(
            templateName="tmpl", templateBody=bodies[version], setAsDefault=version == 3
        )
        assert created["versionId"] == version
        assert created["isDefaultVersion"] is (version == 3)
    described = iot.describe_provisioning_template(templateName="tmpl")
    assert described["defaultVersionId"] == 3 and described["templateBody"] == bodies[3]

    code, _unused, status = error_of(
        iot.create_provisioning_template_version, templateName="tmpl", templateBody=body({"t": thing_resource("v6")})
    )
    assert (code, status) == ("VersionsLimitExceededException", 409)
    assert len(iot.list_provisioning_template_versions(templateName="tmpl")["versions"]) == 5

    code, _unused, status = error_of(iot.delete_provisioning_template_version, templateName="tmpl", versionId=3)
    assert (code, status) == ("DeleteConflictException", 409)
    iot.delete_provisioning_template_version(templateName="tmpl", versionId=1)
    created = iot.create_provisioning_template_version(
        templateName="tmpl", templateBody=body({"t": thing_resource("v6")})
    )
    assert created["versionId"] == 6  # ids are not reused

    versions = iot.list_provisioning_template_versions(templateName="tmpl")["versions"]
    assert [(v["versionId"], v["isDefaultVersion"]) for v in versions] == [
        (2, False),
        (3, True),
        (4, False),
        (5, False),
        (6, False),
    ]
    first = iot.list_provisioning_template_versions(templateName="tmpl", maxResults=2)
    assert [v["versionId"] for v in first["versions"]] == [2, 3] and "nextToken" in first

    version = iot.describe_provisioning_template_version(templateName="tmpl", versionId=2)
    assert version["templateBody"] == bodies[2] and version["isDefaultVersion"] is False
    iot.update_provisioning_template(templateName="tmpl", defaultVersionId=5)
    described = iot.describe_provisioning_template(templateName="tmpl")
    assert described["defaultVersionId"] == 5 and described["templateBody"] == bodies[5]
    iot.delete_provisioning_template_version(templateName="tmpl", versionId=3)  # no longer the default
    assert error_of(iot.describe_provisioning_template_version, templateName="tmpl", versionId=3)[0] == (
        "ResourceNotFoundException"
    )
    assert error_of(iot.delete_provisioning_template_version, templateName="tmpl", versionId=1)[0] == (
        "ResourceNotFoundException"
    )
    code, message, _unused = error_of(iot.create_provisioning_template_version, templateName="tmpl", templateBody="{}")
    assert code == "InvalidRequestException" and "Resources" in message
    assert error_of(iot.list_provisioning_template_versions, templateName="nope")[0] == "ResourceNotFoundException"


def test_delete_template(iot: Any) -> None:
    arn = create_template(iot, tags=[{"Key": "a", "Value": "b"}])["templateArn"]
    iot.delete_provisioning_template(templateName="tmpl")
    assert error_of(iot.describe_provisioning_template, templateName="tmpl")[0] == "ResourceNotFoundException"
    assert error_of(iot.delete_provisioning_template, templateName="tmpl")[0] == "ResourceNotFoundException"
    assert error_of(iot.list_tags_for_resource, resourceArn=arn)[0] == "ResourceNotFoundException"
    create_template(iot)  # the name is free again, and the old tags are gone
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_template_used_by_a_ca_cannot_be_deleted(iot: Any) -> None:
    create_template(iot, name="jitp", type="JITP")
    ca_pem, _unused = make_cert("Local CA", ca=True)
    iot.register_ca_certificate(
        caCertificate=ca_pem, certificateMode="SNI_ONLY", setAsActive=True, registrationConfig={"templateName": "jitp"}
    )
    code, _unused, status = error_of(iot.delete_provisioning_template, templateName="jitp")
    assert (code, status) == ("DeleteConflictException", 409)
    assert iot.describe_provisioning_template(templateName="jitp")["templateName"] == "jitp"


def test_tags_on_templates(iot: Any) -> None:
    arn = create_template(iot)["templateArn"]
    iot.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    iot.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "changed"}])
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"Key": "a", "Value": "changed"},
        {"Key": "b", "Value": "2"},
    ]
    iot.untag_resource(resourceArn=arn, tagKeys=["a", "missing"])
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]
    missing = arn.replace("/tmpl", "/other")
    assert error_of(iot.tag_resource, resourceArn=missing, tags=[{"Key": "a", "Value": "1"}])[0] == (
        "ResourceNotFoundException"
    )
    thing_arn = iot.create_thing(thingName="t")["thingArn"]
    code, message, _unused = error_of(iot.list_tags_for_resource, resourceArn=thing_arn)
    assert code == "InvalidRequestException" and "only on provisioning templates" in message
    code, _unused, status = error_of(
        iot.tag_resource, resourceArn=arn, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    )
    assert (code, status) == ("LimitExceededException", 410)
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]


def test_reset_clears_templates(iot: Any, endpoint: str) -> None:
    create_template(iot)
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    assert iot.list_provisioning_templates()["templates"] == []


def test_calls_are_recorded(iot: Any, endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_local/calls", method="DELETE"), timeout=10).close()
    create_template(iot)
    iot.register_thing(templateBody=SIMPLE, parameters={"ThingName": "dev"})
    with urllib.request.urlopen(f"{endpoint}/_local/calls", timeout=10) as response:
        calls = json.load(response)["calls"]
    assert calls == ["CreateProvisioningTemplate", "RegisterThing"]


# --------------------------------------------------------------------------- RegisterThing


FULL_PARAMETERS = {
    "ThingName": {"Type": "String"},
    "CSR": {"Type": "String"},
    "Location": {"Type": "String", "Default": "WA"},
}


def full_template(**thing_properties: Any) -> str:
    return body(
        {
            "thing": thing_resource(AttributePayload={"location": {"Ref": "Location"}}, **thing_properties),
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}, "Status": "Active"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": POLICY_DOC}},
        },
        FULL_PARAMETERS,
    )


def test_register_thing_with_csr(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_billing_group(billingGroupName="billing")
    csr_pem, key = make_csr("device-1")
    template = full_template(ThingTypeName="sensor", ThingGroups=["fleet"], BillingGroup="billing")
    response = iot.register_thing(templateBody=template, parameters={"ThingName": "device-1", "CSR": csr_pem})

    arns = response["resourceArns"]
    assert set(arns) == {"thing", "certificate", "policy"}
    certificate = x509.load_pem_x509_certificate(response["certificatePem"].encode())
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-1"

    thing = iot.describe_thing(thingName="device-1")
    assert thing["thingArn"] == arns["thing"]
    assert thing["attributes"] == {"location": "WA"}  # the parameter's Default
    assert thing["thingTypeName"] == "sensor"
    assert thing["billingGroupName"] == "billing"
    assert [g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="device-1")["thingGroups"]] == ["fleet"]

    certificate_id = arns["certificate"].split("/")[-1]
    described = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert described["certificatePem"] == response["certificatePem"]
    assert iot.list_thing_principals(thingName="device-1")["principals"] == [arns["certificate"]]

    policy_name = hashlib.sha256(POLICY_DOC.encode()).hexdigest()
    assert arns["policy"].endswith(f":policy/{policy_name}")
    assert json.loads(iot.get_policy(policyName=policy_name)["policyDocument"]) == json.loads(POLICY_DOC)
    attached = iot.list_attached_policies(target=arns["certificate"])["policies"]
    assert [p["policyName"] for p in attached] == [policy_name]

    # Again with a new CSR: a second certificate, the same policy reused, the thing left alone.
    csr2, _unused = make_csr("device-1")
    second = iot.register_thing(templateBody=template, parameters={"ThingName": "device-1", "CSR": csr2})
    assert second["resourceArns"]["certificate"] != arns["certificate"]
    assert second["resourceArns"]["policy"] == arns["policy"]
    assert counts(iot) == (1, 2, 1)
    assert sorted(iot.list_thing_principals(thingName="device-1")["principals"]) == sorted(
        [arns["certificate"], second["resourceArns"]["certificate"]]
    )


def test_register_thing_with_existing_certificate_id(iot: Any) -> None:
    created = iot.create_keys_and_certificate(setAsActive=False)
    iot.create_policy(policyName="device-policy", policyDocument=POLICY_DOC)
    template = body(
        {
            "thing": thing_resource(),
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device-policy"}},
        },
        {"ThingName": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
    )
    parameters = {"ThingName": "dev", "AWS::IoT::Certificate::Id": created["certificateId"]}
    response = iot.register_thing(templateBody=template, parameters=parameters)
    assert "certificatePem" not in response
    assert response["resourceArns"]["certificate"] == created["certificateArn"]
    assert response["resourceArns"]["policy"].endswith(":policy/device-policy")
    status = iot.describe_certificate(certificateId=created["certificateId"])["certificateDescription"]["status"]
    assert status == "ACTIVE"
    assert iot.list_thing_principals(thingName="dev")["principals"] == [created["certificateArn"]]
    assert [p["policyName"] for p in iot.list_attached_policies(target=created["certificateArn"])["policies"]] == [
        "device-policy"
    ]

    missing = dict(parameters, ThingName="other")
    missing["AWS::IoT::Certificate::Id"] = "0" * 64
    code, message, status = error_of(iot.register_thing, templateBody=template, parameters=missing)
    assert (code, status) == ("ResourceRegistrationFailureException", 400)
    assert "Certificate" in message and "not found" in message
    assert error_of(iot.describe_thing, thingName="other")[0] == "ResourceNotFoundException"


def cert_pem_template(with_ca: bool, status: str = "ACTIVE", override: str | None = None) -> str:
    properties: dict[str, Any] = {"CertificatePem": {"Ref": "Cert"}, "Status": status}
    parameters = {"ThingName": {"Type": "String"}, "Cert": {"Type": "String"}}
    if with_ca:
        properties["CACertificatePem"] = {"Ref": "CA"}
        parameters["CA"] = {"Type": "String"}
    certificate: dict[str, Any] = {"Type": "AWS::IoT::Certificate", "Properties": properties}
    if override:
        certificate["OverrideSettings"] = {"Status": override}
    return body({"thing": thing_resource(), "certificate": certificate}, parameters)


def test_register_thing_with_certificate_pem(iot: Any) -> None:
    device_pem, _unused = make_cert("device")
    response = iot.register_thing(
        templateBody=cert_pem_template(False), parameters={"ThingName": "d", "Cert": device_pem}
    )
    certificate_arn = response["resourceArns"]["certificate"]
    described = iot.describe_certificate(certificateId=certificate_arn.split("/")[-1])["certificateDescription"]
    assert described["certificatePem"] == device_pem and described["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName="d")["principals"] == [certificate_arn]

    # The same PEM again: the existing certificate, no second one; DO_NOTHING keeps its status.
    again = iot.register_thing(
        templateBody=cert_pem_template(False, status="INACTIVE", override="DO_NOTHING"),
        parameters={"ThingName": "d", "Cert": device_pem},
    )
    assert again["resourceArns"]["certificate"] == certificate_arn
    assert len(iot.list_certificates()["certificates"]) == 1
    assert iot.describe_certificate(certificateId=certificate_arn.split("/")[-1])["certificateDescription"][
        "status"
    ] == ("ACTIVE")
    # FAIL with a different status conflicts; REPLACE (the default for Status) applies it.
    code, _unused, _unused = error_of(
        iot.register_thing,
        templateBody=cert_pem_template(False, status="INACTIVE", override="FAIL"),
        parameters={"ThingName": "d", "Cert": device_pem},
    )
    assert code == "ResourceConflictsException"
    iot.register_thing(
        templateBody=cert_pem_template(False, status="INACTIVE"), parameters={"ThingName": "d", "Cert": device_pem}
    )
    assert iot.describe_certificate(certificateId=certificate_arn.split("/")[-1])["certificateDescription"][
        "status"
    ] == ("INACTIVE")


def test_register_thing_with_certificate_pem_and_ca(iot: Any) -> None:
    ca_pem, ca_issuer = make_cert("Local CA", ca=True)
    device_pem, _unused = make_cert("device", issuer=ca_issuer)
    stranger_pem, _unused = make_cert("stranger")
    parameters = {"ThingName": "d", "Cert": device_pem, "CA": ca_pem}

    code, message, _unused = error_of(iot.register_thing, templateBody=cert_pem_template(True), parameters=parameters)
    assert code == "ResourceRegistrationFailureException" and "not registered" in message
    assert counts(iot) == (0, 0, 0)

    iot.register_ca_certificate(caCertificate=ca_pem, certificateMode="SNI_ONLY", setAsActive=True)
    code, message, _unused = error_of(
        iot.register_thing, templateBody=cert_pem_template(True), parameters=dict(parameters, Cert=stranger_pem)
    )
    assert code == "ResourceRegistrationFailureException" and "not signed by" in message
    assert counts(iot) == (0, 0, 0)

    response = iot.register_thing(templateBody=cert_pem_template(True), parameters=parameters)
    certificate_id = response["resourceArns"]["certificate"].split("/")[-1]
    assert (
        iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["certificatePem"] == device_pem
    )


def existing_thing(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="old-type")
    iot.create_thing_type(thingTypeName="new-type")
    for group in ("g-old", "g-new"):
        iot.create_thing_group(thingGroupName=group)
    iot.create_thing(thingName="dev", thingTypeName="old-type", attributePayload={"attributes": {"a": "1", "b": "2"}})
    iot.add_thing_to_thing_group(thingGroupName="g-old", thingName="dev")


def register_override(iot: Any, overrides: dict[str, str] | None) -> dict[str, Any]:
    thing = thing_resource(AttributePayload={"b": "20", "c": "3"}, ThingTypeName="new-type", ThingGroups=["g-new"])
    if overrides is not None:
        thing["OverrideSettings"] = overrides
    return iot.register_thing(
        templateBody=body({"thing": thing}, {"ThingName": {"Type": "String"}}), parameters={"ThingName": "dev"}
    )


def thing_state(iot: Any) -> tuple[dict[str, str], str, list[str]]:
    thing = iot.describe_thing(thingName="dev")
    groups = sorted(g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="dev")["thingGroups"])
    return thing["attributes"], thing.get("thingTypeName"), groups


def test_override_default_leaves_an_existing_thing_alone(iot: Any) -> None:
    existing_thing(iot)
    response = register_override(iot, None)
    assert response["resourceArns"]["thing"].endswith(":thing/dev")
    assert thing_state(iot) == ({"a": "1", "b": "2"}, "old-type", ["g-old"])


def test_override_replace(iot: Any) -> None:
    existing_thing(iot)
    register_override(iot, {"AttributePayload": "REPLACE", "ThingTypeName": "REPLACE", "ThingGroups": "REPLACE"})
    assert thing_state(iot) == ({"b": "20", "c": "3"}, "new-type", ["g-new"])


def test_override_merge(iot: Any) -> None:
    existing_thing(iot)
    register_override(iot, {"AttributePayload": "MERGE", "ThingGroups": "MERGE"})
    assert thing_state(iot) == ({"a": "1", "b": "20", "c": "3"}, "old-type", ["g-new", "g-old"])


def test_override_fail(iot: Any) -> None:
    existing_thing(iot)
    csr_pem, _unused = make_csr("dev")
    thing = thing_resource(AttributePayload={"a": "9"})
    thing["OverrideSettings"] = {"AttributePayload": "FAIL"}
    template = body(
        {
            "thing": thing,
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": csr_pem}},
        },
        {"ThingName": {"Type": "String"}},
    )
    code, message, _unused = error_of(iot.register_thing, templateBody=template, parameters={"ThingName": "dev"})
    assert code == "ResourceConflictsException" and "AttributePayload" in message
    assert thing_state(iot) == ({"a": "1", "b": "2"}, "old-type", ["g-old"])
    assert iot.list_certificates()["certificates"] == []  # nothing created on failure
    # FAIL with the value the thing already has is no conflict.
    same = template.replace('"a": "9"', '"a": "1", "b": "2"')
    iot.register_thing(templateBody=same, parameters={"ThingName": "dev"})
    assert len(iot.list_certificates()["certificates"]) == 1


def test_missing_parameter_and_defaults(iot: Any) -> None:
    csr_pem, _unused = make_csr("x")
    code, message, status = error_of(iot.register_thing, templateBody=full_template(), parameters={"ThingName": "dev"})
    assert (code, status) == ("InvalidRequestException", 400)
    assert "CSR" in message
    assert counts(iot) == (0, 0, 0)
    iot.register_thing(templateBody=full_template(), parameters={"ThingName": "dev", "CSR": csr_pem, "Location": "NY"})
    assert iot.describe_thing(thingName="dev")["attributes"] == {"location": "NY"}


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"ThingTypeName": "ghost"}, "Thing Type ghost not found"),
        ({"ThingGroups": ["ghost"]}, "Thing Group ghost not found"),
        ({"BillingGroup": "ghost"}, "Billing Group ghost not found"),
    ],
)
def test_missing_referenced_resources_fail_registration(iot: Any, properties: dict[str, Any], message: str) -> None:
    csr_pem, _unused = make_csr("dev")
    code, text, status = error_of(
        iot.register_thing, templateBody=full_template(**properties), parameters={"ThingName": "dev", "CSR": csr_pem}
    )
    assert (code, status) == ("ResourceRegistrationFailureException", 400)
    assert message in text
    assert counts(iot) == (0, 0, 0)


def test_unknown_policy_name_fails_registration(iot: Any) -> None:
    template = body(
        {"thing": thing_resource("dev"), "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "ghost"}}}
    )
    code, message, _unused = error_of(iot.register_thing, templateBody=template)
    assert code == "ResourceRegistrationFailureException" and "Policy ghost not found" in message
    assert counts(iot) == (0, 0, 0)


def test_intrinsic_functions(iot: Any) -> None:
    template = body(
        {
            "thing": thing_resource(
                {"Fn::Join": ["-", ["dev", {"Fn::Select": [1, {"Fn::Split": [",", {"Ref": "Serials"}]}]}]]},
                AttributePayload={
                    "url": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Url"]},
                    "label": {"Fn::Sub": "${Site}/${Tag}"},
                    "pair": {"Fn::Sub": ["${x}:${Site}", {"x": {"Ref": "Tag"}}]},
                },
            )
        },
        {"Serials": {"Type": "String"}, "Site": {"Type": "String"}, "Tag": {"Type": "String", "Default": "t1"}},
        Mappings={"Sites": {"paris": {"Url": "example.com/paris"}}},
    )
    response = iot.register_thing(templateBody=template, parameters={"Serials": "a,b,c", "Site": "paris"})
    assert response["resourceArns"]["thing"].endswith(":thing/dev-b")
    assert iot.describe_thing(thingName="dev-b")["attributes"] == {
        "url": "example.com/paris",
        "label": "paris/t1",
        "pair": "t1:paris",
    }


@pytest.mark.parametrize(
    ("name", "parameters", "fragment"),
    [
        ({"Fn::Select": [5, {"Fn::Split": [",", "a,b"]}]}, {}, "out of range"),
        ({"Fn::FindInMap": ["Sites", "nowhere", "Url"]}, {}, "no value at Mappings.Sites.nowhere.Url"),
        ({"Fn::Join": ["", ["bad name", "!"]]}, {}, "ThingName"),
        ({"Fn::Sub": "${Ghost}"}, {}, "neither a declared parameter"),
    ],
)
def test_bad_templates_fail_before_anything_is_created(
    iot: Any, name: Any, parameters: dict[str, str], fragment: str
) -> None:
    template = body({"thing": thing_resource(name)}, Mappings={"Sites": {"paris": {"Url": "u"}}})
    code, message, _unused = error_of(iot.register_thing, templateBody=template, parameters=parameters)
    assert code == "InvalidRequestException" and fragment in message
    assert counts(iot) == (0, 0, 0)


def test_sub_escape_and_declared_names() -> None:
    # ${!Name} is a literal ${Name}; attribute values cannot hold "$", so this is checked on the engine directly.
    import provisioning_api

    evaluate = provisioning_api.Evaluator({"Site": "paris"}, {})
    assert evaluate({"Fn::Sub": "${Site}-${!Literal}"}, "x") == "paris-${Literal}"
    template = provisioning_api.parse_template(
        json.dumps({"Resources": {"t": thing_resource({"Fn::Sub": "${!Free}"})}})
    )
    assert list(template.resources) == ["t"]


def test_attribute_limits(iot: Any) -> None:
    attributes = {f"k{i}": "v" for i in range(4)}
    code, message, _unused = error_of(
        iot.register_thing, templateBody=body({"t": thing_resource("d", AttributePayload=attributes)})
    )
    assert code == "InvalidRequestException"
    assert "without a thing type can have at most 3 attributes, got 4" in message
    iot.create_thing_type(thingTypeName="typed")
    iot.register_thing(
        templateBody=body({"t": thing_resource("d", AttributePayload=attributes, ThingTypeName="typed")})
    )
    assert iot.describe_thing(thingName="d")["attributes"] == attributes


def test_certificate_status_and_source_rules(iot: Any) -> None:
    csr_pem, _unused = make_csr("x")
    bad_status = body(
        {
            "c": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": csr_pem, "Status": "REVOKED"},
            }
        }
    )
    code, message, _unused = error_of(iot.register_thing, templateBody=bad_status)
    assert code == "InvalidRequestException" and "ACTIVE or INACTIVE" in message
    inactive = body(
        {
            "c": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": csr_pem, "Status": "Inactive"},
            }
        }
    )
    certificate_arn = iot.register_thing(templateBody=inactive)["resourceArns"]["c"]
    status = iot.describe_certificate(certificateId=certificate_arn.split("/")[-1])["certificateDescription"]["status"]
    assert status == "INACTIVE"
    not_a_csr = body({"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": "nonsense"}}})
    code, message, _unused = error_of(iot.register_thing, templateBody=not_a_csr)
    assert code == "InvalidRequestException" and "CertificateSigningRequest" in message
    assert len(iot.list_certificates()["certificates"]) == 1


def test_several_policies_by_logical_id(iot: Any) -> None:
    iot.create_policy(policyName="named", policyDocument=POLICY_DOC)
    csr_pem, _unused = make_csr("x")
    other_doc = POLICY_DOC.replace("iot:Connect", "iot:Publish")
    template = body(
        {
            "cert": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": csr_pem}},
            "p1": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "named"}},
            "p2": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": other_doc}},
        }
    )
    arns = iot.register_thing(templateBody=template)["resourceArns"]
    assert set(arns) == {"cert", "p1", "p2"}
    attached = sorted(p["policyName"] for p in iot.list_attached_policies(target=arns["cert"])["policies"])
    assert attached == sorted(["named", hashlib.sha256(other_doc.encode()).hexdigest()])
    bad_doc = body({"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": "not json"}}})
    code, message, _unused = error_of(iot.register_thing, templateBody=bad_doc)
    assert code == "InvalidRequestException" and "PolicyDocument" in message


def test_thing_groups_one_per_hierarchy(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="root")
    iot.create_thing_group(thingGroupName="child", parentGroupName="root")
    template = body({"t": thing_resource("dev", ThingGroups=["root", "child"])})
    code, message, _unused = error_of(iot.register_thing, templateBody=template)
    assert code == "InvalidRequestException" and "only one group of a hierarchy" in message
    assert counts(iot) == (0, 0, 0)
    # REPLACE moves an existing thing from the child to the root of the same hierarchy.
    iot.create_thing(thingName="dev")
    iot.add_thing_to_thing_group(thingGroupName="child", thingName="dev")
    replace = thing_resource("dev", ThingGroups=["root"])
    replace["OverrideSettings"] = {"ThingGroups": "REPLACE"}
    iot.register_thing(templateBody=body({"t": replace}))
    assert [g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="dev")["thingGroups"]] == ["root"]


def test_revoked_certificate_is_refused(iot: Any) -> None:
    created = iot.create_keys_and_certificate(setAsActive=False)
    iot.update_certificate(certificateId=created["certificateId"], newStatus="REVOKED")
    template = body(
        {
            "t": thing_resource("dev"),
            "c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": created["certificateId"]}},
        }
    )
    code, message, _unused = error_of(iot.register_thing, templateBody=template)
    assert code == "ResourceRegistrationFailureException" and "REVOKED" in message
    assert error_of(iot.describe_thing, thingName="dev")[0] == "ResourceNotFoundException"


def test_apply_undoes_its_work_when_a_step_fails() -> None:
    # In process, on a bare moto backend whose last step (attaching the thing) fails: all before it is undone.
    import provisioning_api
    from moto.iot.models import IoTBackend

    backend = IoTBackend("us-east-1", "123456789012")
    backend.create_thing_group("g", None, {})
    csr_pem, _unused = make_csr("dev")
    template = body(
        {
            "t": thing_resource("dev", AttributePayload={"a": "1"}, ThingGroups=["g"]),
            "c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": csr_pem}},
            "p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": POLICY_DOC}},
        }
    )
    plan = provisioning_api.plan_registration(backend, template, {})

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("injected failure")

    backend.attach_thing_principal = fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="injected failure"):
        provisioning_api.apply_registration(backend, plan)
    assert (len(backend.things), len(backend.certificates), len(backend.policies)) == (0, 0, 0)
    assert (len(backend.principal_policies), len(backend.principal_things)) == (0, 0)
    assert not backend.describe_thing_group("g").things
