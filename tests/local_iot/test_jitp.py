"""CA registration and the simulated first connection (JITP / JITR) of the local endpoint.

One endpoint for the module (started with launcher.py), reset before every test. Everything is driven with
plain boto3, urllib and cryptography, and every outcome is read back through the normal IoT APIs, so a handler
that answers without really doing the work fails here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import client, error_of, module_endpoint, reset

ROLE = "arn:aws:iam::123456789012:role/provisioning"
POLICY_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("jitp") as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    return client(endpoint)


def control(endpoint: str, path: str, payload: Any = None, method: str = "POST") -> tuple[int, dict[str, Any]]:
    data = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    request = urllib.request.Request(f"{endpoint}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def connect(endpoint: str, device_pem: str, chain: str | None = None) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"certificatePem": device_pem}
    if chain is not None:
        payload["chainPem"] = chain
    return control(endpoint, "/_local/jitp/connect", payload)


# --------------------------------------------------------------------------- certificates


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return pem_of(self.certificate)


def pem_of(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def der_id(pem: str) -> str:
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    ).hexdigest()


NAME_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "dnQualifier": NameOID.DN_QUALIFIER,
    "serialNumber": NameOID.SERIAL_NUMBER,
}


def name(**attributes: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NAME_OIDS[key], value) for key, value in attributes.items()])


def issue(
    subject: x509.Name,
    signer: Authority | None,
    key: ec.EllipticCurvePrivateKey | None = None,
    ca: bool | None = False,
    days: tuple[int, int] = (-1, 30),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for ``key`` (a new one by default), signed by ``signer`` (self-signed when None).

    ``ca`` True/False writes basicConstraints CA:TRUE/CA:FALSE; None leaves the extension out.
    """
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.certificate.subject if signer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return key, builder.sign(signer.key if signer else key, hashes.SHA256())


def make_ca(common_name: str = "Local CA", signer: Authority | None = None, ca: bool | None = True) -> Authority:
    key, certificate = issue(name(CN=common_name, O="Example"), signer, ca=ca)
    return Authority(key, certificate)


def device(signer: Authority, days: tuple[int, int] = (-1, 30), **subject: str) -> str:
    return pem_of(issue(name(**(subject or {"CN": "dev-1"})), signer, days=days)[1])


def verification(iot: Any, signer: Authority, code: str | None = None) -> str:
    common_name = code if code is not None else iot.get_registration_code()["registrationCode"]
    return pem_of(issue(name(CN=common_name), signer)[1])


def register_ca(iot: Any, authority: Authority, auto: bool = True, active: bool = True, **kwargs: Any) -> str:
    return iot.register_ca_certificate(
        caCertificate=authority.pem,
        verificationCertificate=verification(iot, authority),
        setAsActive=active,
        allowAutoRegistration=auto,
        **kwargs,
    )["certificateId"]


def describe_ca(iot: Any, ca_id: str) -> dict[str, Any]:
    return iot.describe_ca_certificate(certificateId=ca_id)


def ca_ids(iot: Any) -> list[str]:
    return [item["certificateId"] for item in iot.list_ca_certificates(pageSize=250)["certificates"]]


def certificate_ids(iot: Any) -> list[str]:
    return [item["certificateId"] for item in iot.list_certificates(pageSize=250)["certificates"]]


def thing_names(iot: Any) -> list[str]:
    return [thing["thingName"] for thing in iot.list_things(maxResults=250)["things"]]


def status_of(iot: Any, certificate_id: str) -> str:
    return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]


# A JITP template in the shape of the developer guide's example: thing named by the CommonName, attributes
# from the subject, a group, the certificate activated by its id, a policy.
def jitp_body(extra_parameters: dict[str, Any] | None = None, policy: dict[str, Any] | None = None) -> str:
    parameters = {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Country": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
        **(extra_parameters or {}),
    }
    attributes: dict[str, Any] = {"country": {"Ref": "AWS::IoT::Certificate::Country"}, "line": "jitp"}
    for parameter in extra_parameters or {}:
        attributes[parameter.split("::")[-1].lower()] = {"Ref": parameter}
    return json.dumps(
        {
            "Parameters": parameters,
            "Resources": {
                "thing": {
                    "Type": "AWS::IoT::Thing",
                    "Properties": {
                        "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                        "ThingTypeName": "sensor",
                        "AttributePayload": attributes,
                        "ThingGroups": ["fleet"],
                    },
                },
                "certificate": {
                    "Type": "AWS::IoT::Certificate",
                    "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
                },
                "policy": {"Type": "AWS::IoT::Policy", "Properties": policy or {"PolicyName": "device-policy"}},
            },
        }
    )


def jitp_world(iot: Any, template_body: str | None = None) -> None:
    """The resources a JITP template refers to, and a JITP template named ``jitp``."""
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_policy(policyName="device-policy", policyDocument=POLICY_DOCUMENT)
    iot.create_provisioning_template(
        templateName="jitp",
        templateBody=template_body or jitp_body(),
        provisioningRoleArn=ROLE,
        type="JITP",
        enabled=True,
    )


# --------------------------------------------------------------------------- registration code


def test_registration_code_is_stable_until_deleted(iot: Any) -> None:
    code = iot.get_registration_code()["registrationCode"]
    assert len(code) == 64 and all(char in "0123456789abcdef" for char in code)
    assert iot.get_registration_code()["registrationCode"] == code
    iot.delete_registration_code()
    fresh = iot.get_registration_code()["registrationCode"]
    assert fresh != code and len(fresh) == 64
    assert iot.get_registration_code()["registrationCode"] == fresh
    # a verification certificate made for the old code no longer proves anything
    authority = make_ca()
    code_, _unused, status = error_of(
        iot.register_ca_certificate,
        caCertificate=authority.pem,
        verificationCertificate=verification(iot, authority, code),
    )
    assert (code_, status) == ("RegistrationCodeValidationException", 400)


# --------------------------------------------------------------------------- RegisterCACertificate


def test_register_ca_with_a_good_verification_certificate(iot: Any) -> None:
    authority = make_ca()
    ca_id = register_ca(iot, authority)
    assert ca_id == der_id(authority.pem)
    described = describe_ca(iot, ca_id)
    description = described["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert description["autoRegistrationStatus"] == "ENABLE"
    assert description["certificateMode"] == "DEFAULT"
    assert description["certificatePem"] == authority.pem
    assert description["validity"]["notBefore"] == authority.certificate.not_valid_before_utc
    assert description["validity"]["notAfter"] == authority.certificate.not_valid_after_utc
    assert "registrationConfig" not in described
    assert ca_ids(iot) == [ca_id]


def test_register_ca_defaults_inactive_without_auto_registration(iot: Any) -> None:
    authority = make_ca()
    ca_id = iot.register_ca_certificate(
        caCertificate=authority.pem, verificationCertificate=verification(iot, authority)
    )["certificateId"]
    description = describe_ca(iot, ca_id)["certificateDescription"]
    assert (description["status"], description["autoRegistrationStatus"]) == ("INACTIVE", "DISABLE")


def test_verification_certificate_with_the_wrong_common_name(iot: Any) -> None:
    authority = make_ca()
    wrong = verification(iot, authority, "0" * 64)
    code, _unused, status = error_of(
        iot.register_ca_certificate, caCertificate=authority.pem, verificationCertificate=wrong
    )
    assert (code, status) == ("RegistrationCodeValidationException", 400)
    assert ca_ids(iot) == []


def test_verification_certificate_signed_by_another_key(iot: Any) -> None:
    authority, impostor = make_ca(), make_ca()  # same subject, different key
    forged = verification(iot, impostor)
    code, message, status = error_of(
        iot.register_ca_certificate, caCertificate=authority.pem, verificationCertificate=forged
    )
    assert (code, status) == ("CertificateValidationException", 400)
    assert "not signed" in message
    assert ca_ids(iot) == []


def test_default_mode_requires_a_verification_certificate(iot: Any) -> None:
    authority = make_ca()
    for extra in ({}, {"certificateMode": "DEFAULT"}):
        code, message, status = error_of(iot.register_ca_certificate, caCertificate=authority.pem, **extra)
        assert (code, status) == ("InvalidRequestException", 400)
        assert "verificationCertificate" in message
    assert ca_ids(iot) == []


def test_sni_only_takes_no_verification_certificate(iot: Any) -> None:
    authority = make_ca()
    code, message, _unused = error_of(
        iot.register_ca_certificate,
        caCertificate=authority.pem,
        verificationCertificate=verification(iot, authority),
        certificateMode="SNI_ONLY",
    )
    assert code == "InvalidRequestException" and "SNI_ONLY" in message
    ca_id = iot.register_ca_certificate(caCertificate=authority.pem, certificateMode="SNI_ONLY", setAsActive=True)[
        "certificateId"
    ]
    assert describe_ca(iot, ca_id)["certificateDescription"]["certificateMode"] == "SNI_ONLY"


@pytest.mark.parametrize("constraint", [False, None], ids=["CA:FALSE", "no basicConstraints"])
def test_only_a_ca_certificate_registers_as_a_ca(iot: Any, constraint: bool | None) -> None:
    leaf = make_ca(ca=constraint)
    code, message, status = error_of(
        iot.register_ca_certificate, caCertificate=leaf.pem, verificationCertificate=verification(iot, leaf)
    )
    assert (code, status) == ("CertificateValidationException", 400)
    assert "basicConstraints" in message
    assert ca_ids(iot) == []


def test_a_ca_registers_once(iot: Any) -> None:
    authority = make_ca()
    ca_id = register_ca(iot, authority)
    with pytest.raises(ClientError) as caught:
        register_ca(iot, authority)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ResourceAlreadyExistsException",
        409,
    )
    assert error["resourceId"] == ca_id
    assert ca_ids(iot) == [ca_id]


def test_at_most_ten_cas_with_the_same_subject(iot: Any) -> None:
    for _unused in range(10):
        iot.register_ca_certificate(caCertificate=make_ca("Shared").pem, certificateMode="SNI_ONLY")
    code, _unused, status = error_of(
        iot.register_ca_certificate, caCertificate=make_ca("Shared").pem, certificateMode="SNI_ONLY"
    )
    assert (code, status) == ("LimitExceededException", 410)
    iot.register_ca_certificate(caCertificate=make_ca("Other").pem, certificateMode="SNI_ONLY")
    assert len(ca_ids(iot)) == 11


def test_registration_config_forms(iot: Any) -> None:
    jitp_world(iot)
    iot.create_provisioning_template(
        templateName="fleet", templateBody=jitp_body(), provisioningRoleArn=ROLE, type="FLEET_PROVISIONING"
    )
    refusals = [
        ({"templateName": "missing"}, "ResourceNotFoundException", 404),
        ({"templateName": "fleet"}, "InvalidRequestException", 400),
        ({"templateBody": jitp_body()}, "InvalidRequestException", 400),
        ({"roleArn": ROLE}, "InvalidRequestException", 400),
        ({"templateBody": "{not json", "roleArn": ROLE}, "InvalidRequestException", 400),
        ({"templateBody": jitp_body(), "roleArn": "arn:aws:iam::123456789012:user/x"}, "InvalidRequestException", 400),
        ({"templateName": "jitp", "templateBody": jitp_body(), "roleArn": ROLE}, "InvalidRequestException", 400),
    ]
    for config, wanted_code, wanted_status in refusals:
        authority = make_ca()
        with pytest.raises(ClientError) as caught:
            register_ca(iot, authority, registrationConfig=config)
        response = caught.value.response
        assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
            wanted_code,
            wanted_status,
        ), config
    assert ca_ids(iot) == []
    by_name = register_ca(iot, make_ca(), registrationConfig={"templateName": "jitp"})
    assert describe_ca(iot, by_name)["registrationConfig"] == {"templateName": "jitp"}
    by_body = register_ca(iot, make_ca(), registrationConfig={"templateBody": jitp_body(), "roleArn": ROLE})
    assert describe_ca(iot, by_body)["registrationConfig"] == {"templateBody": jitp_body(), "roleArn": ROLE}


# --------------------------------------------------------------------------- UpdateCACertificate, delete, list


def test_update_ca_certificate_flows(iot: Any) -> None:
    jitp_world(iot)
    ca_id = register_ca(iot, make_ca(), auto=False)
    before = describe_ca(iot, ca_id)["certificateDescription"]
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE", newAutoRegistrationStatus="ENABLE")
    after = describe_ca(iot, ca_id)["certificateDescription"]
    assert (after["status"], after["autoRegistrationStatus"]) == ("INACTIVE", "ENABLE")
    assert after["lastModifiedDate"] >= before["lastModifiedDate"]
    assert after["customerVersion"] == before["customerVersion"] + 1

    iot.update_ca_certificate(certificateId=ca_id, registrationConfig={"templateName": "jitp"})
    assert describe_ca(iot, ca_id)["registrationConfig"] == {"templateName": "jitp"}
    assert describe_ca(iot, ca_id)["certificateDescription"]["status"] == "INACTIVE"  # unset: left alone

    code, _unused, _unused = error_of(
        iot.update_ca_certificate,
        certificateId=ca_id,
        registrationConfig={"templateName": "jitp"},
        removeAutoRegistration=True,
    )
    assert code == "InvalidRequestException"
    assert error_of(iot.update_ca_certificate, certificateId=ca_id, registrationConfig={"templateName": "nope"})[
        :3:2
    ] == ("ResourceNotFoundException", 404)

    iot.update_ca_certificate(certificateId=ca_id, removeAutoRegistration=True)
    described = describe_ca(iot, ca_id)
    assert "registrationConfig" not in described
    assert described["certificateDescription"]["autoRegistrationStatus"] == "ENABLE"

    iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE", newAutoRegistrationStatus="DISABLE")
    description = describe_ca(iot, ca_id)["certificateDescription"]
    assert (description["status"], description["autoRegistrationStatus"]) == ("ACTIVE", "DISABLE")
    unchanged = description["customerVersion"]
    iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")  # nothing to change
    assert describe_ca(iot, ca_id)["certificateDescription"]["customerVersion"] == unchanged

    assert error_of(iot.update_ca_certificate, certificateId="a" * 64, newStatus="ACTIVE")[0] == (
        "ResourceNotFoundException"
    )
    assert error_of(iot.update_ca_certificate, certificateId=ca_id, newAutoRegistrationStatus="MAYBE")[0] == (
        "InvalidRequestException"
    )


def test_delete_ca_certificate_only_when_inactive(iot: Any) -> None:
    ca_id = register_ca(iot, make_ca())
    code, _unused, status = error_of(iot.delete_ca_certificate, certificateId=ca_id)
    assert (code, status) == ("CertificateStateException", 406)
    assert ca_ids(iot) == [ca_id]
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=ca_id)
    assert ca_ids(iot) == []
    assert error_of(iot.describe_ca_certificate, certificateId=ca_id)[:3:2] == ("ResourceNotFoundException", 404)
    assert error_of(iot.delete_ca_certificate, certificateId=ca_id)[0] == "ResourceNotFoundException"


def test_list_ca_certificates_pages_and_filters(iot: Any) -> None:
    jitp_world(iot)
    first = register_ca(iot, make_ca("one"))
    second = register_ca(iot, make_ca("two"), registrationConfig={"templateName": "jitp"})
    third = register_ca(iot, make_ca("three"))
    seen, marker = [], None
    while True:
        kwargs: dict[str, Any] = {"pageSize": 1, "ascendingOrder": True}
        if marker:
            kwargs["marker"] = marker
        page = iot.list_ca_certificates(**kwargs)
        assert len(page["certificates"]) <= 1
        seen += [item["certificateId"] for item in page["certificates"]]
        marker = page.get("nextMarker")
        if not marker:
            break
    assert seen == [first, second, third]
    assert {item["status"] for item in iot.list_ca_certificates()["certificates"]} == {"ACTIVE"}
    assert [c["certificateId"] for c in iot.list_ca_certificates(templateName="jitp")["certificates"]] == [second]
    assert error_of(iot.list_ca_certificates, marker="Zm9yZWlnbg==")[0] == "InvalidRequestException"


# --------------------------------------------------------------------------- the first connection: JITP


def test_jitp_first_connection_provisions_the_device(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    authority = make_ca()
    ca_id = register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="sensor-7", C="DE", O="Example")
    certificate_id = der_id(pem)

    status, answer = connect(endpoint, pem)
    assert status == 200, answer
    assert answer["connected"] is True and answer["provisioned"] is True
    assert (answer["thingName"], answer["certificateId"], answer["status"]) == ("sensor-7", certificate_id, "ACTIVE")
    assert answer["caCertificateId"] == ca_id

    thing = iot.describe_thing(thingName="sensor-7")
    assert thing["attributes"] == {"country": "DE", "line": "jitp"}
    assert thing["thingTypeName"] == "sensor"
    assert [g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="sensor-7")["thingGroups"]] == ["fleet"]
    assert status_of(iot, certificate_id) == "ACTIVE"
    certificate_arn = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["certificateArn"]
    assert iot.list_thing_principals(thingName="sensor-7")["principals"] == [certificate_arn]
    assert [p["policyName"] for p in iot.list_attached_policies(target=certificate_arn)["policies"]] == [
        "device-policy"
    ]
    by_ca = iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]
    assert [item["certificateId"] for item in by_ca] == [certificate_id]

    # The second connection of the same device only connects: nothing new, nothing changed.
    status, again = connect(endpoint, pem)
    assert status == 200 and again["connected"] is True and again["provisioned"] is False
    assert (again["thingName"], again["certificateId"], again["status"]) == ("sensor-7", certificate_id, "ACTIVE")
    assert thing_names(iot) == ["sensor-7"] and certificate_ids(iot) == [certificate_id]
    assert iot.describe_thing(thingName="sensor-7")["version"] == thing["version"]


def test_jitp_with_template_body_and_role_and_a_policy_document(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    authority = make_ca()
    body = jitp_body(policy={"PolicyDocument": POLICY_DOCUMENT})
    register_ca(iot, authority, registrationConfig={"templateBody": body, "roleArn": ROLE})
    pem = device(authority, CN="sensor-8", C="FR")
    status, answer = connect(endpoint, pem, chain=authority.pem)
    assert status == 200 and answer["thingName"] == "sensor-8", answer
    arn = iot.describe_certificate(certificateId=der_id(pem))["certificateDescription"]["certificateArn"]
    policies = iot.list_attached_policies(target=arn)["policies"]
    assert [p["policyName"] for p in policies] == [hashlib.sha256(POLICY_DOCUMENT.encode()).hexdigest()]
    assert iot.describe_thing(thingName="sensor-8")["attributes"]["country"] == "FR"


def test_every_subject_parameter_reaches_the_template(iot: Any, endpoint: str) -> None:
    extra = {
        f"AWS::IoT::Certificate::{field}": {"Type": "String"}
        for field in ("Organization", "OrganizationalUnit", "DistinguishedNameQualifier", "StateName", "SerialNumber")
    }
    jitp_world(iot, jitp_body(extra))  # 7 attributes: the template's thing type allows them
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="d9", C="NL", O="Org", OU="Unit", dnQualifier="q1", ST="Utrecht", serialNumber="SN-42")
    status, answer = connect(endpoint, pem)
    assert status == 200, answer
    assert iot.describe_thing(thingName="d9")["attributes"] == {
        "country": "NL",
        "line": "jitp",
        "organization": "Org",
        "organizationalunit": "Unit",
        "distinguishednamequalifier": "q1",
        "statename": "Utrecht",
        "serialnumber": "SN-42",
    }


def test_a_missing_subject_field_fails_provisioning(iot: Any, endpoint: str) -> None:
    jitp_world(iot, jitp_body({"AWS::IoT::Certificate::SerialNumber": {"Type": "String"}}))
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="no-serial", C="DE")
    status, answer = connect(endpoint, pem)
    assert status == 403 and answer["connected"] is False
    assert answer["code"] == "PROVISIONING_FAILED"
    assert "AWS::IoT::Certificate::SerialNumber" in answer["reason"]
    assert status_of(iot, der_id(pem)) == "PENDING_ACTIVATION"
    assert thing_names(iot) == []
    # The same template with a Default for it provisions such a device.
    defaulted = jitp_body({"AWS::IoT::Certificate::SerialNumber": {"Type": "String", "Default": "none"}})
    iot.create_provisioning_template_version(templateName="jitp", templateBody=defaulted, setAsDefault=True)
    status, answer = connect(endpoint, pem)
    assert status == 200, answer
    assert iot.describe_thing(thingName="no-serial")["attributes"]["serialnumber"] == "none"
    assert status_of(iot, der_id(pem)) == "ACTIVE"


def test_a_template_that_fails_leaves_nothing_but_the_pending_certificate(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    iot.delete_thing_group(thingGroupName="fleet")  # the template names it: RegisterThing refuses
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="orphan", C="DE")
    status, answer = connect(endpoint, pem)
    assert status == 403 and answer["code"] == "PROVISIONING_FAILED"
    assert "ResourceRegistrationFailureException" in answer["reason"] and "fleet" in answer["reason"]
    assert thing_names(iot) == []
    assert certificate_ids(iot) == [der_id(pem)] and status_of(iot, der_id(pem)) == "PENDING_ACTIVATION"
    arn = iot.describe_certificate(certificateId=der_id(pem))["certificateDescription"]["certificateArn"]
    assert iot.list_attached_policies(target=arn)["policies"] == []


# --------------------------------------------------------------------------- refused connections


def test_a_certificate_from_an_unregistered_ca_is_refused(iot: Any, endpoint: str) -> None:
    stranger = make_ca()
    pem = device(stranger)
    for chain in (None, stranger.pem):
        status, answer = connect(endpoint, pem, chain)
        assert status == 403 and answer["code"] == "CA_NOT_REGISTERED"
        assert "CA not registered" in answer["reason"]
    assert certificate_ids(iot) == []


def test_a_signature_that_does_not_verify_is_refused(iot: Any, endpoint: str) -> None:
    registered, forger = make_ca("Same Name"), make_ca("Same Name")
    register_ca(iot, registered)
    status, answer = connect(endpoint, device(forger))  # issuer name matches, signature does not
    assert status == 403 and answer["code"] == "CA_NOT_REGISTERED"
    assert certificate_ids(iot) == []


def test_an_inactive_ca_is_refused(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    authority = make_ca()
    ca_id = register_ca(iot, authority, active=False, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="late", C="DE")
    status, answer = connect(endpoint, pem)
    assert status == 403 and answer["code"] == "CA_INACTIVE"
    assert certificate_ids(iot) == [] and thing_names(iot) == []
    iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")
    assert connect(endpoint, pem)[0] == 200


def test_auto_registration_off_is_refused(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    authority = make_ca()
    ca_id = register_ca(iot, authority, auto=False, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="waiting", C="DE")
    status, answer = connect(endpoint, pem)
    assert status == 403 and answer["code"] == "AUTO_REGISTRATION_DISABLED"
    assert "auto-registration disabled" in answer["reason"]
    assert certificate_ids(iot) == [] and thing_names(iot) == []
    iot.update_ca_certificate(certificateId=ca_id, newAutoRegistrationStatus="ENABLE")
    status, answer = connect(endpoint, pem)
    assert status == 200 and answer["thingName"] == "waiting"


def test_device_certificate_outside_its_validity_is_refused(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    for days in ((-30, -1), (1, 30)):
        status, answer = connect(endpoint, device(authority, days=days, CN="old", C="DE"))
        assert status == 403 and answer["code"] == "CERTIFICATE_INVALID"
    assert certificate_ids(iot) == []


def test_a_weak_device_certificate_is_refused_not_a_server_error(iot: Any, endpoint: str) -> None:
    # RegisterCertificate refuses RSA-1024 (CertificateValidationException); first contact must say so, not 500.
    jitp_world(iot)
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = pem_of(issue(name(CN="weak-1", C="DE"), authority, key=weak)[1])
    status, answer = connect(endpoint, pem)
    assert status == 403 and answer["code"] == "CERTIFICATE_INVALID", answer
    assert "CertificateValidationException" in answer["reason"]
    assert certificate_ids(iot) == [] and thing_names(iot) == []


def test_a_registered_certificate_that_is_not_active_is_refused(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="revoked-one", C="DE")
    assert connect(endpoint, pem)[0] == 200
    for new_status in ("INACTIVE", "REVOKED"):
        iot.update_certificate(certificateId=der_id(pem), newStatus=new_status)
        status, answer = connect(endpoint, pem)
        assert status == 403 and answer["code"] == "CERTIFICATE_NOT_ACTIVE" and answer["status"] == new_status
        assert status_of(iot, der_id(pem)) == new_status  # no re-provisioning reactivates it


def test_bad_requests(iot: Any, endpoint: str) -> None:
    assert control(endpoint, "/_local/jitp/connect", b"not json")[0] == 400
    status, answer = control(endpoint, "/_local/jitp/connect", {"chainPem": "x"})
    assert status == 400 and "certificatePem" in answer["reason"]
    assert control(endpoint, "/_local/jitp/connect", {"certificatePem": "garbage"})[0] == 400
    assert control(endpoint, "/_local/jitp/connect", method="GET")[0] == 405


# --------------------------------------------------------------------------- chains and intermediates


def test_the_signing_ca_must_be_registered_not_its_root(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    root = make_ca("Root")
    intermediate = make_ca("Intermediate", signer=root)
    register_ca(iot, root, registrationConfig={"templateName": "jitp"})
    pem = device(intermediate, CN="deep", C="DE")
    chain = intermediate.pem + root.pem
    for given in (None, chain):
        status, answer = connect(endpoint, pem, given)
        assert status == 403 and answer["code"] == "CA_NOT_REGISTERED"
    intermediate_id = register_ca(iot, intermediate, registrationConfig={"templateName": "jitp"})
    status, answer = connect(endpoint, pem, chain)
    assert status == 200 and answer["caCertificateId"] == intermediate_id
    assert [
        c["certificateId"] for c in iot.list_certificates_by_ca(caCertificateId=intermediate_id)["certificates"]
    ] == [der_id(pem)]


def test_the_chain_picks_the_issuer_among_cas_with_the_same_subject(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    old, new = make_ca("Rotated"), make_ca("Rotated")  # same subject, different keys
    register_ca(iot, old, registrationConfig={"templateName": "jitp"})
    new_id = register_ca(iot, new, registrationConfig={"templateName": "jitp"})
    pem = device(new, CN="rotated-device", C="DE")
    status, answer = connect(endpoint, pem, chain=new.pem)
    assert status == 200 and answer["caCertificateId"] == new_id
    other = device(new, CN="rotated-2", C="DE")
    status, answer = connect(endpoint, other)  # without a chain the signature finds it too
    assert status == 200 and answer["caCertificateId"] == new_id


def test_the_chain_decides_between_reissued_cas_with_the_same_key(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    old = make_ca("Reissued")
    _unused, renewed = issue(old.certificate.subject, None, key=old.key, ca=True)  # same subject, same key
    new = Authority(old.key, renewed)
    old_id = register_ca(iot, old, registrationConfig={"templateName": "jitp"})
    new_id = register_ca(iot, new, registrationConfig={"templateName": "jitp"})
    iot.update_ca_certificate(certificateId=old_id, newStatus="INACTIVE")
    pem = device(old, CN="reissued-device", C="DE")  # verifies with both
    status, answer = connect(endpoint, pem, chain=old.pem)  # the device presents the deactivated one
    assert status == 403 and answer["code"] == "CA_INACTIVE" and answer["caCertificateId"] == old_id
    status, answer = connect(endpoint, pem)  # no chain: the usable registration is found
    assert status == 200 and answer["caCertificateId"] == new_id


def test_a_template_without_a_status_still_activates_and_one_with_inactive_does_not(iot: Any, endpoint: str) -> None:
    body = json.loads(jitp_body())
    del body["Resources"]["certificate"]["Properties"]["Status"]
    jitp_world(iot, json.dumps(body))
    authority = make_ca()
    register_ca(iot, authority, registrationConfig={"templateName": "jitp"})
    pem = device(authority, CN="no-status", C="DE")
    status, answer = connect(endpoint, pem)
    assert status == 200 and answer["status"] == "ACTIVE"
    assert status_of(iot, der_id(pem)) == "ACTIVE"

    body["Resources"]["certificate"]["Properties"]["Status"] = "INACTIVE"
    iot.create_provisioning_template_version(templateName="jitp", templateBody=json.dumps(body), setAsDefault=True)
    other = device(authority, CN="kept-inactive", C="DE")
    status, answer = connect(endpoint, other)
    assert status == 403 and answer["code"] == "CERTIFICATE_NOT_ACTIVE"
    assert status_of(iot, der_id(other)) == "INACTIVE"
    assert "kept-inactive" in thing_names(iot)  # provisioned, but the device cannot connect with it


# --------------------------------------------------------------------------- JITR


def test_jitr_registers_pending_activation_and_records_the_event(iot: Any, endpoint: str) -> None:
    authority = make_ca()
    ca_id = register_ca(iot, authority)  # auto-registration on, no registration config
    pem = device(authority, CN="jitr-device")
    certificate_id = der_id(pem)
    status, answer = connect(endpoint, pem, chain=authority.pem)
    assert status == 403 and answer["code"] == "PENDING_ACTIVATION" and "pending activation" in answer["reason"]
    assert status_of(iot, certificate_id) == "PENDING_ACTIVATION"
    assert [c["certificateId"] for c in iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]] == [
        certificate_id
    ]
    assert thing_names(iot) == []
    status, events = control(endpoint, "/_local/jitp/events", method="GET")
    assert status == 200 and len(events["events"]) == 1
    event = events["events"][0]
    assert event["topic"] == f"$aws/events/certificates/registered/{ca_id}"
    assert event["message"]["certificateId"] == certificate_id
    assert event["message"]["caCertificateId"] == ca_id
    assert event["message"]["certificateStatus"] == "PENDING_ACTIVATION"
    assert event["message"]["awsAccountId"] == "123456789012"
    assert answer["event"] == event

    # Reconnecting before activation: still refused, registered once, no second event.
    status, again = connect(endpoint, pem)
    assert status == 403 and again["code"] == "PENDING_ACTIVATION"
    assert certificate_ids(iot) == [certificate_id]
    assert len(control(endpoint, "/_local/jitp/events", method="GET")[1]["events"]) == 1

    # Whatever activates it (a rule's Lambda on AWS), the device then connects.
    iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    status, connected = connect(endpoint, pem)
    assert status == 200 and connected["connected"] is True and connected["thingName"] is None


def test_events_are_per_account_and_region_and_reset(iot: Any, endpoint: str) -> None:
    authority = make_ca()
    register_ca(iot, authority)
    connect(endpoint, device(authority, CN="one"))
    assert len(control(endpoint, "/_local/jitp/events", method="GET")[1]["events"]) == 1
    assert control(endpoint, "/_local/jitp/events?region=eu-west-1", method="GET")[1]["events"] == []
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10):
        pass
    assert control(endpoint, "/_local/jitp/events", method="GET")[1]["events"] == []
