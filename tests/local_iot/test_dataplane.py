"""The data plane (dataplane.py) through a real device: the AWS IoT Device SDK v2 (awsiotsdk, awscrt's TLS).

One endpoint for the module, reset before each test. Every refusal is checked twice: the device sees it (the
SDK's connect fails, SUBACK failure, disconnected after a publish) and the endpoint's event says why, so a
refusal for the wrong reason (a TLS mistake instead of a policy decision) fails the test.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time
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

from device_sdk import Device, DeviceRefused, clear_events, dataplane_info
from endpoint_testing import client, module_endpoint, reset

ARN = "arn:aws:iot:us-east-1:123456789012"
ROLE = "arn:aws:iam::123456789012:role/provisioning"
# The roles' least-privilege device policy (roles/jitp/tasks/main.yml), with this account's ARNs.
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"{ARN}:topic/devices/${{iot:Connection.Thing.ThingName}}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": f"{ARN}:topicfilter/devices/${{iot:Connection.Thing.ThingName}}/*",
        },
    ],
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("dataplane") as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    clear_events(endpoint)
    return client(endpoint)


@pytest.fixture
def info(endpoint: str) -> dict[str, Any]:
    return dataplane_info(endpoint)


# --------------------------------------------------------------------------- helpers


def write(directory: Any, name: str, text: str) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def issue(
    common_name: str, signer: tuple[Any, x509.Certificate] | None = None, ca: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer[1].subject if signer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer[0] if signer else key, hashes.SHA256())
    )
    return key, certificate


def aws_keys_device(iot: Any, tmp_path: Any, thing: str, policy: str = "device") -> tuple[str, str, str]:
    """A thing with an AWS-generated certificate and the policy attached: (cert file, key file, certificate id)."""
    created = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=created["certificateArn"])
    iot.attach_policy(policyName=policy, target=created["certificateArn"])
    return (
        write(tmp_path, f"{thing}.pem", created["certificatePem"]),
        write(tmp_path, f"{thing}.key", created["keyPair"]["PrivateKey"]),
        created["certificateId"],
    )


def events(endpoint: str, kind: str) -> list[dict[str, Any]]:
    return [event for event in dataplane_info(endpoint)["events"] if event["event"] == kind]


def refusal_reasons(endpoint: str, at_least: int = 1, timeout: float = 5.0) -> list[str]:
    """The refusals the endpoint recorded, once there are ``at_least`` of them (or ``timeout`` seconds passed): the
    server records a refused handshake on its own thread, a moment after the client has seen it fail."""
    deadline = time.monotonic() + timeout
    while True:
        reasons = [event["reason"] for event in events(endpoint, "refused")]
        if len(reasons) >= at_least or time.monotonic() > deadline:
            return reasons
        time.sleep(0.05)


def refused_connect(info: dict[str, Any], cert: str, key: str, client_id: str) -> str:
    device = Device(info, cert, key, client_id)
    with pytest.raises(DeviceRefused) as caught:
        device.connect()
    device.disconnect()
    return str(caught.value)


# --------------------------------------------------------------------------- tests


def test_listener_reports_where_it_is_and_its_ca_file(endpoint: str, info: dict[str, Any]) -> None:
    assert info["host"] == "127.0.0.1" and info["port"] > 0
    with open(info["caFile"], "rb") as handle:
        root = x509.load_pem_x509_certificate(handle.read())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_shipped_policy_device_publishes_receives_and_is_refused_its_neighbours(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    cert_a, key_a, id_a = aws_keys_device(iot, tmp_path, "dev-a")
    cert_b, key_b, _id_b = aws_keys_device(iot, tmp_path, "dev-b")
    with Device(info, cert_a, key_a, "dev-a") as device_a, Device(info, cert_b, key_b, "dev-b") as device_b:
        assert device_a.subscribe("devices/dev-a/#") == 1
        with pytest.raises(DeviceRefused):  # SUBACK 0x80 for the neighbour's topics; the connection stays
            device_a.subscribe("devices/dev-b/#")
        assert device_b.subscribe("devices/dev-b/#") == 1
        device_a.publish("devices/dev-a/telemetry", b"from a")
        assert device_a.receive() == ("devices/dev-a/telemetry", b"from a")
        device_b.publish("devices/dev-b/telemetry", b"from b")
        assert device_b.receive() == ("devices/dev-b/telemetry", b"from b")
        with pytest.raises(queue.Empty):  # a never sees b's topic: its subscription was refused
            device_a.receive(timeout=0.3)
        # A publish on the neighbour's topic: AWS disconnects an MQTT 3.1.1 client.
        with pytest.raises(DeviceRefused):
            device_a.publish("devices/dev-b/telemetry", b"intruder")
    with pytest.raises(queue.Empty):
        device_b.receive(timeout=0.3)
    denied = [event for event in events(endpoint, "denied") if event["clientId"] == "dev-a"]
    assert denied[0]["topicFilter"] == "devices/dev-b/#"
    assert any("iot:Publish on topic/devices/dev-b/telemetry" in e["reason"] for e in events(endpoint, "disconnected"))
    # The neighbour's client id with a's certificate: iot:Connect denied, closed without CONNACK.
    assert "connect refused" in refused_connect(info, cert_a, key_a, "dev-b")
    assert any(
        f"iot:Connect on client/dev-b IMPLICIT_DENY (certificate {id_a})" in r for r in refusal_reasons(endpoint)
    )


def test_receive_is_authorized_per_subscriber(endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any) -> None:
    listener = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{ARN}:topic/open/*"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"},
        ],
    }
    iot.create_policy(policyName="listener", policyDocument=json.dumps(listener))
    cert, key, _cert_id = aws_keys_device(iot, tmp_path, "watcher", "listener")
    with Device(info, cert, key, "watcher") as watcher, Device(info, cert, key, "talker") as talker:
        watcher.subscribe("#")
        talker.publish("closed/x", b"hidden")
        talker.publish("open/x", b"seen")
        assert watcher.receive() == ("open/x", b"seen")
    assert [e["topic"] for e in events(endpoint, "denied") if e.get("action") == "iot:Receive"] == ["closed/x"]


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED"])
def test_inactive_and_revoked_certificates_are_refused(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any, status: str
) -> None:
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    cert, key, cert_id = aws_keys_device(iot, tmp_path, "dev-1")
    with Device(info, cert, key, "dev-1"):
        pass  # connects while ACTIVE
    iot.update_certificate(certificateId=cert_id, newStatus=status)
    refused_connect(info, cert, key, "dev-1")
    assert refusal_reasons(endpoint) == [f"certificate {cert_id} is {status}; only an ACTIVE certificate connects"]


def test_certificate_detached_from_its_policy_is_refused(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    cert, key, cert_id = aws_keys_device(iot, tmp_path, "dev-1")
    iot.detach_policy(policyName="device", target=f"{ARN}:cert/{cert_id}")
    refused_connect(info, cert, key, "dev-1")
    assert refusal_reasons(endpoint) == [f"iot:Connect on client/dev-1 IMPLICIT_DENY (certificate {cert_id})"]


def test_unregistered_and_unknown_ca_certificates_are_refused_at_tls(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    iot.create_policy(
        policyName="any",
        policyDocument=json.dumps({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}),
    )
    authority = issue("Unregistered CA", ca=True)
    key, certificate = issue("dev-x", authority)
    cert_file = write(tmp_path, "x.pem", pem(certificate) + pem(authority[1]))
    key_file = write(tmp_path, "x.key", key_pem(key))
    refused_connect(info, cert_file, key_file, "dev-x")
    self_key, self_signed = issue("dev-self")
    refused_connect(info, write(tmp_path, "s.pem", pem(self_signed)), write(tmp_path, "s.key", key_pem(self_key)), "s")
    reasons = refusal_reasons(endpoint, at_least=2)
    assert len(reasons) == 2 and all(reason.startswith("TLS handshake failed") for reason in reasons)
    assert iot.list_certificates()["certificates"] == []  # nothing was registered on the way


def test_csr_and_ca_less_registered_certificates_connect(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    iot.create_policy(
        policyName="any",
        policyDocument=json.dumps({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}),
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr-device")]))
        .sign(key, hashes.SHA256())
    )
    from_csr = iot.create_certificate_from_csr(
        certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(), setAsActive=True
    )
    iot.attach_policy(policyName="any", target=from_csr["certificateArn"])
    key_file = write(tmp_path, "csr.key", key_pem(key))
    with Device(info, write(tmp_path, "csr.pem", from_csr["certificatePem"]), key_file, "csr-device") as device:
        device.subscribe("t")
        device.publish("t", b"csr")
        assert device.receive() == ("t", b"csr")
    own_key, own = issue("own-device")
    registered = iot.register_certificate_without_ca(certificatePem=pem(own), status="ACTIVE")
    iot.attach_policy(policyName="any", target=registered["certificateArn"])
    with Device(info, write(tmp_path, "own.pem", pem(own)), write(tmp_path, "own.key", key_pem(own_key)), "own"):
        pass
    assert [e["clientId"] for e in events(endpoint, "connected")] == ["csr-device", "own"]


def test_thing_group_policies_apply_to_the_connection_thing(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    # No policy on the certificate: only the parent group's policy lets the thing connect and publish.
    group_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": f"{ARN}:topic/${{iot:Connection.Thing.Attributes[site]}}/*",
            },
        ],
    }
    iot.create_policy(policyName="group", policyDocument=json.dumps(group_policy))
    iot.create_thing_group(thingGroupName="parent")
    iot.create_thing_group(thingGroupName="child", parentGroupName="parent")
    iot.attach_policy(policyName="group", target=iot.describe_thing_group(thingGroupName="parent")["thingGroupArn"])
    created = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_thing(thingName="grouped", attributePayload={"attributes": {"site": "berlin"}})
    iot.attach_thing_principal(thingName="grouped", principal=created["certificateArn"])
    cert = write(tmp_path, "g.pem", created["certificatePem"])
    key = write(tmp_path, "g.key", created["keyPair"]["PrivateKey"])
    refused_connect(info, cert, key, "grouped")  # not yet in the group
    iot.add_thing_to_thing_group(thingGroupName="child", thingName="grouped")
    with Device(info, cert, key, "grouped") as device:
        device.publish("berlin/status", b"up")
        with pytest.raises(DeviceRefused):
            device.publish("paris/status", b"up")


def test_a_policy_the_endpoint_cannot_read_refuses_the_connection(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "iot:Connect",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            },
        ]
    }
    iot.create_policy(policyName="device", policyDocument=json.dumps(document))
    cert, key, _cert_id = aws_keys_device(iot, tmp_path, "dev-1")
    refused_connect(info, cert, key, "dev-1")
    assert refusal_reasons(endpoint) == [
        "the policy uses what the local endpoint does not emulate: policy device: the condition operator "
        "IpAddress is not emulated"
    ]


def test_second_connection_with_the_same_client_id_drops_the_first(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    cert, key, _cert_id = aws_keys_device(iot, tmp_path, "dev-1")
    with Device(info, cert, key, "dev-1") as first, Device(info, cert, key, "dev-1") as second:
        assert first.interrupted.wait(5)
        second.subscribe("devices/dev-1/x")
        second.publish("devices/dev-1/x", b"still here")
        assert second.receive() == ("devices/dev-1/x", b"still here")


def test_jitp_first_connection_provisions_and_is_dropped_then_the_device_connects(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    authority = issue("JITP CA", ca=True)
    code = iot.get_registration_code()["registrationCode"]
    verification = issue(code, authority)[1]
    template = {
        "Parameters": {
            "AWS::IoT::Certificate::CommonName": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": json.dumps(DEVICE_POLICY)}},
        },
    }
    ca_id = iot.register_ca_certificate(
        caCertificate=pem(authority[1]),
        verificationCertificate=pem(verification),
        setAsActive=True,
        allowAutoRegistration=True,
        registrationConfig={"templateBody": json.dumps(template), "roleArn": ROLE},
    )["certificateId"]
    key, certificate = issue("jitp-dev-1", authority)
    cert_file = write(tmp_path, "j.pem", pem(certificate) + pem(authority[1]))  # device certificate, then its CA
    key_file = write(tmp_path, "j.key", key_pem(key))
    refused_connect(info, cert_file, key_file, "jitp-dev-1")
    registration = events(endpoint, "jit-registration")
    assert len(registration) == 1 and registration[0]["answer"]["caCertificateId"] == ca_id
    cert_id = registration[0]["certificateId"]
    assert iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName="jitp-dev-1")["principals"] == [f"{ARN}:cert/{cert_id}"]
    with Device(info, cert_file, key_file, "jitp-dev-1") as device:
        device.subscribe("devices/jitp-dev-1/#")
        device.publish("devices/jitp-dev-1/hello", b"provisioned")
        assert device.receive() == ("devices/jitp-dev-1/hello", b"provisioned")


def test_test_authorization_answers_as_the_listener_decides(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    deny_all = {"Statement": [{"Effect": "Deny", "Action": "iot:*", "Resource": "*"}]}
    iot.create_policy(policyName="deny-all", policyDocument=json.dumps(deny_all))
    cert, key, cert_id = aws_keys_device(iot, tmp_path, "dev-a")
    principal = f"{ARN}:cert/{cert_id}"

    def decide(client_id: str, action: str, resource: str, **extra: Any) -> dict[str, Any]:
        answer = iot.test_authorization(
            principal=principal,
            clientId=client_id,
            authInfos=[{"actionType": action, "resources": [f"{ARN}:{resource}"]}],
            **extra,
        )
        (result,) = answer["authResults"]
        return result

    allowed = decide("dev-a", "CONNECT", "client/dev-a")
    assert allowed["authDecision"] == "ALLOWED"
    assert allowed["allowed"]["policies"] == [{"policyName": "device", "policyArn": f"{ARN}:policy/device"}]
    assert decide("dev-a", "SUBSCRIBE", "topicfilter/devices/dev-a/#")["authDecision"] == "ALLOWED"
    assert decide("dev-a", "SUBSCRIBE", "topicfilter/devices/dev-b/#")["authDecision"] == "IMPLICIT_DENY"
    assert decide("dev-a", "RECEIVE", "topic/devices/dev-b/x")["authDecision"] == "IMPLICIT_DENY"
    neighbour = decide("dev-b", "CONNECT", "client/dev-b")
    assert neighbour["authDecision"] == "IMPLICIT_DENY"
    assert neighbour["missingContextValues"] == ["iot:Connection.Thing.ThingName"]
    added = decide("dev-a", "CONNECT", "client/dev-a", policyNamesToAdd=["deny-all"])
    assert added["authDecision"] == "EXPLICIT_DENY"
    assert added["denied"]["explicitDeny"]["policies"][0]["policyName"] == "deny-all"
    assert decide("dev-a", "CONNECT", "client/dev-a", policyNamesToSkip=["device"])["authDecision"] == "IMPLICIT_DENY"
    # The listener decides the same: a connects as itself, is refused as its neighbour.
    with Device(info, cert, key, "dev-a"):
        pass
    refused_connect(info, cert, key, "dev-b")

    def error(**request: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            iot.test_authorization(**request)
        return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]

    connect = [{"actionType": "CONNECT", "resources": [f"{ARN}:client/x"]}]
    assert error(principal=f"{ARN}:cert/{'0' * 64}", authInfos=connect)[0] == "ResourceNotFoundException"
    assert error(principal=principal, authInfos=connect, policyNamesToAdd=["nope"])[0] == "ResourceNotFoundException"
    assert error(principal=principal, authInfos=connect, cognitoIdentityPoolId="us-east-1:pool")[0] == (
        "InvalidRequestException"
    )
    unreadable = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:*",
                "Resource": "*",
                "Condition": {"NumericLessThan": {"iot:ClientId": "3"}},
            }
        ]
    }
    iot.create_policy(policyName="unreadable", policyDocument=json.dumps(unreadable))
    code, message = error(principal=principal, authInfos=connect, policyNamesToAdd=["unreadable"])
    assert code == "InvalidRequestException" and "NumericLessThan" in message


def _claim_policy(template: str) -> dict[str, Any]:
    create, provision = "$aws/certificates/create", f"$aws/provisioning-templates/{template}/provision"
    return {
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/claim-*"},
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": [
                    f"{ARN}:topic/{create}/*",
                    f"{ARN}:topic/{create}-from-csr/*",
                    f"{ARN}:topic/{provision}/*",
                ],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [
                    f"{ARN}:topicfilter/{create}/*",
                    f"{ARN}:topicfilter/{create}-from-csr/*",
                    f"{ARN}:topicfilter/{provision}/*",
                ],
            },
        ]
    }


class Identity:
    """awsiotsdk's fleet provisioning client on a device connection; each call waits for accepted or rejected."""

    def __init__(self, device: Device) -> None:
        from awscrt import mqtt
        from awsiot import iotidentity

        self.api, self.qos = iotidentity, mqtt.QoS.AT_LEAST_ONCE
        self.client = iotidentity.IotIdentityClient(device.connection)
        self.answers: queue.Queue[tuple[str, Any]] = queue.Queue()

    def _subscribe(self, name: str, request: Any) -> None:
        for outcome in ("accepted", "rejected"):
            subscribe = getattr(self.client, f"subscribe_to_{name}_{outcome}")
            future, _topic = subscribe(request, self.qos, lambda response, o=outcome: self.answers.put((o, response)))
            future.result(5)

    def create_keys(self) -> tuple[str, Any]:
        self._subscribe("create_keys_and_certificate", self.api.CreateKeysAndCertificateSubscriptionRequest())
        self.client.publish_create_keys_and_certificate(self.api.CreateKeysAndCertificateRequest(), self.qos).result(5)
        return self.answers.get(timeout=5)

    def create_from_csr(self, csr: str) -> tuple[str, Any]:
        self._subscribe("create_certificate_from_csr", self.api.CreateCertificateFromCsrSubscriptionRequest())
        request = self.api.CreateCertificateFromCsrRequest(certificate_signing_request=csr)
        self.client.publish_create_certificate_from_csr(request, self.qos).result(5)
        return self.answers.get(timeout=5)

    def register(self, template: str, token: str, parameters: dict[str, str]) -> tuple[str, Any]:
        self._subscribe("register_thing", self.api.RegisterThingSubscriptionRequest(template_name=template))
        request = self.api.RegisterThingRequest(
            template_name=template, certificate_ownership_token=token, parameters=parameters
        )
        self.client.publish_register_thing(request, self.qos).result(5)
        return self.answers.get(timeout=5)


def test_fleet_provisioning_by_claim_over_mqtt(endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any) -> None:
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    iot.create_policy(policyName="claim", policyDocument=json.dumps(_claim_policy("fp*")))  # fp and fp-off
    template = {
        "Parameters": {"SerialNumber": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Fn::Join": ["", ["fp-", {"Ref": "SerialNumber"}]]}},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device"}},
        },
        "DeviceConfiguration": {"serial": {"Ref": "SerialNumber"}},
    }
    for name, enabled in (("fp", True), ("fp-off", False)):
        iot.create_provisioning_template(
            templateName=name,
            templateBody=json.dumps(template),
            provisioningRoleArn=ROLE,
            enabled=enabled,
            type="FLEET_PROVISIONING",
        )
    claim = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="claim", target=claim["certificateArn"])
    claim_cert = write(tmp_path, "claim.pem", claim["certificatePem"])
    claim_key = write(tmp_path, "claim.key", claim["keyPair"]["PrivateKey"])
    with Device(info, claim_cert, claim_key, "claim-1") as device:
        identity = Identity(device)
        outcome, created = identity.create_keys()
        assert outcome == "accepted"
        status = iot.describe_certificate(certificateId=created.certificate_id)["certificateDescription"]["status"]
        assert status == "PENDING_ACTIVATION"
        pending_cert = write(tmp_path, "pending.pem", created.certificate_pem)
        pending_key = write(tmp_path, "pending.key", created.private_key)
        refused_connect(info, pending_cert, pending_key, "fp-42")  # not before RegisterThing activates it
        assert refusal_reasons(endpoint)[-1] == (
            f"certificate {created.certificate_id} is PENDING_ACTIVATION; only an ACTIVE certificate connects"
        )
        outcome, rejected = identity.register("fp", "not-a-token", {"SerialNumber": "1"})
        assert (outcome, rejected.status_code, rejected.error_code) == (
            "rejected",
            400,
            "InvalidCertificateOwnershipToken",
        )
        outcome, registered = identity.register("fp", created.certificate_ownership_token, {"SerialNumber": "42"})
        assert outcome == "accepted", vars(registered)
        assert (registered.thing_name, registered.device_configuration) == ("fp-42", {"serial": "42"})
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fp-43")]))
            .sign(key, hashes.SHA256())
        )
        outcome, from_csr = identity.create_from_csr(csr.public_bytes(serialization.Encoding.PEM).decode())
        assert outcome == "accepted"
        issued = x509.load_pem_x509_certificate(from_csr.certificate_pem.encode())
        assert issued.public_key() == key.public_key()  # the CSR's key: it never left the device
        outcome, refused_template = identity.register(
            "fp-off", from_csr.certificate_ownership_token, {"SerialNumber": "43"}
        )
        assert (outcome, refused_template.error_code) == ("rejected", "InvalidRequest")
        assert "disabled" in refused_template.error_message
    # The claim certificate may not act as a device; the new certificate may, as its thing only.
    refused_connect(info, claim_cert, claim_key, "fp-42")
    cert = write(tmp_path, "fp.pem", created.certificate_pem)
    key_file = write(tmp_path, "fp.key", created.private_key)
    assert (
        iot.describe_certificate(certificateId=created.certificate_id)["certificateDescription"]["status"] == "ACTIVE"
    )
    with Device(info, cert, key_file, "fp-42") as provisioned:
        provisioned.subscribe("devices/fp-42/#")
        provisioned.publish("devices/fp-42/hello", b"by claim")
        assert provisioned.receive() == ("devices/fp-42/hello", b"by claim")
    events = [e for e in dataplane_info(endpoint)["events"] if e["event"] == "fleet-provisioning"]
    assert [e["outcome"].split(":")[0] for e in events] == ["accepted", "rejected", "accepted", "accepted", "rejected"]


def test_pre_provisioning_hook_stand_ins(endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any) -> None:
    hook_arn = "arn:aws:lambda:us-east-1:123456789012:function:allow-serials"
    iot.create_policy(policyName="claim", policyDocument=json.dumps(_claim_policy("hooked")))
    template = {
        "Parameters": {"SerialNumber": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "SerialNumber"}}},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
        },
    }
    iot.create_provisioning_template(
        templateName="hooked",
        templateBody=json.dumps(template),
        provisioningRoleArn=ROLE,
        enabled=True,
        type="FLEET_PROVISIONING",
        preProvisioningHook={"targetArn": hook_arn},
    )
    claim = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="claim", target=claim["certificateArn"])
    seen: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"allowProvisioning": True, "parameterOverrides": {"SerialNumber": "sn-77"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    def stand_in(body: dict[str, Any] | None) -> None:
        method = "DELETE" if body is None else "POST"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{endpoint}/_local/provisioning-hooks", data=data, method=method)
        urllib.request.urlopen(request, timeout=5).close()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stand_in(None)
    try:
        with Device(
            info,
            write(tmp_path, "c.pem", claim["certificatePem"]),
            write(tmp_path, "c.key", claim["keyPair"]["PrivateKey"]),
            "claim-2",
        ) as device:
            identity = Identity(device)
            outcome, created = identity.create_keys()
            token = created.certificate_ownership_token
            outcome, missing = identity.register("hooked", token, {"SerialNumber": "sn-1"})
            assert (outcome, missing.error_code) == ("rejected", "NotEmulated") and hook_arn in missing.error_message
            stand_in({"targetArn": hook_arn, "answer": {"allowProvisioning": False}})
            outcome, denied = identity.register("hooked", token, {"SerialNumber": "sn-1"})
            assert (outcome, denied.status_code, denied.error_code) == ("rejected", 403, "AccessDenied")
            stand_in({"targetArn": hook_arn, "url": f"http://127.0.0.1:{server.server_address[1]}/"})
            outcome, registered = identity.register("hooked", token, {"SerialNumber": "sn-1"})
            assert (outcome, registered.thing_name) == ("accepted", "sn-77")  # the hook's override won
    finally:
        server.shutdown()
        stand_in(None)
    (request,) = seen
    assert request["claimCertificateId"] == claim["certificateId"]
    assert request["certificateId"] == created.certificate_id
    assert (request["clientId"], request["parameters"]) == ("claim-2", {"SerialNumber": "sn-1"})
    assert request["templateArn"] == f"{ARN}:provisioningtemplate/hooked"
    assert iot.list_thing_principals(thingName="sn-77")["principals"] == [f"{ARN}:cert/{created.certificate_id}"]


def test_jitr_registration_event_reaches_a_subscriber_that_activates_the_device(
    endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any
) -> None:
    authority = issue("JITR CA", ca=True)
    verification = issue(iot.get_registration_code()["registrationCode"], authority)[1]
    ca_id = iot.register_ca_certificate(
        caCertificate=pem(authority[1]),
        verificationCertificate=pem(verification),
        setAsActive=True,
        allowAutoRegistration=True,
    )["certificateId"]
    watcher_policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/activator"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/$aws/events/certificates/*"},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{ARN}:topic/$aws/events/certificates/*"},
        ]
    }
    iot.create_policy(policyName="activator", policyDocument=json.dumps(watcher_policy))
    iot.create_policy(policyName="device", policyDocument=json.dumps(DEVICE_POLICY))
    cert, key, _cert_id = aws_keys_device(iot, tmp_path, "activator", "activator")
    device_key, device_certificate = issue("jitr-dev", authority)
    device_cert = write(tmp_path, "jitr.pem", pem(device_certificate) + pem(authority[1]))
    device_key_file = write(tmp_path, "jitr.key", key_pem(device_key))
    with Device(info, cert, key, "activator") as activator:
        activator.subscribe("$aws/events/certificates/registered/+")
        refused_connect(info, device_cert, device_key_file, "jitr-dev")  # registered PENDING_ACTIVATION, dropped
        topic, payload = activator.receive()
    event = json.loads(payload)
    assert topic == f"$aws/events/certificates/registered/{ca_id}"
    assert (event["caCertificateId"], event["certificateStatus"]) == (ca_id, "PENDING_ACTIVATION")
    refused_connect(info, device_cert, device_key_file, "jitr-dev")  # still pending: refused again
    # What a JITR function does with the event: activate, attach a thing and a policy.
    iot.update_certificate(certificateId=event["certificateId"], newStatus="ACTIVE")
    iot.create_thing(thingName="jitr-dev")
    iot.attach_thing_principal(thingName="jitr-dev", principal=f"{ARN}:cert/{event['certificateId']}")
    iot.attach_policy(policyName="device", target=f"{ARN}:cert/{event['certificateId']}")
    with Device(info, device_cert, device_key_file, "jitr-dev") as device:
        device.publish("devices/jitr-dev/up", b"activated")


def test_retained_messages_and_last_will(endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any) -> None:
    from awscrt import mqtt

    document = {
        "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe", "iot:Receive"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": [f"{ARN}:topic/state/*", f"{ARN}:topic/wills/*"]},
            {"Effect": "Allow", "Action": "iot:RetainPublish", "Resource": f"{ARN}:topic/state/*"},
        ]
    }
    iot.create_policy(policyName="broker", policyDocument=json.dumps(document))
    cert, key, _cert_id = aws_keys_device(iot, tmp_path, "b-1", "broker")
    will = mqtt.Will(topic="wills/b-2", qos=mqtt.QoS.AT_LEAST_ONCE, payload=b"b-2 is gone", retain=False)
    with Device(info, cert, key, "b-1") as first:
        first.publish("state/b-1", b"on", retain=True)
        with pytest.raises(DeviceRefused):  # iot:Publish allowed, iot:RetainPublish not: disconnected
            first.publish("wills/b-1", b"x", retain=True)
    with Device(info, cert, key, "watcher") as watcher:
        watcher.subscribe("state/#")
        assert watcher.receive() == ("state/b-1", b"on")  # kept for a later subscriber
        assert watcher.retained.get(timeout=1) is True
        watcher.subscribe("wills/#")
        leaving = Device(info, cert, key, "b-2", will=will).connect()
        with pytest.raises(DeviceRefused):  # the endpoint drops it: an unclean end, so its will goes out
            leaving.publish("forbidden/x", b"x")
        leaving.disconnect()
        assert watcher.receive() == ("wills/b-2", b"b-2 is gone")
    reasons = [event["reason"] for event in events(endpoint, "disconnected")]
    assert any("iot:RetainPublish on topic/wills/b-1 IMPLICIT_DENY" in reason for reason in reasons)
    with Device(info, cert, key, "b-1") as clearing:
        clearing.publish("state/b-1", b"", retain=True)  # an empty retained message clears the topic
    with Device(info, cert, key, "late") as late:
        late.subscribe("state/#")
        with pytest.raises(queue.Empty):
            late.receive(timeout=0.5)


def _raw_session(info: dict[str, Any], cert: str, key: str, connect: bytes) -> ssl.SSLSocket:
    """A bare TLS connection sending one CONNECT packet: what awscrt will not send (QoS 2, MQTT 5, no client id)."""
    context = ssl.create_default_context(cafile=info["caFile"])
    context.load_cert_chain(cert, key)
    raw = socket.create_connection(("localhost", info["port"]), timeout=5)
    session = context.wrap_socket(raw, server_hostname="localhost")
    session.sendall(connect)
    return session


def _connect_packet(client_id: str, level: int = 4) -> bytes:
    name, ident = b"\x00\x04MQTT", len(client_id).to_bytes(2, "big") + client_id.encode()
    body = name + bytes([level, 0x02]) + (30).to_bytes(2, "big") + (b"\x00" if level == 5 else b"") + ident
    return bytes([0x10, len(body)]) + body


def _read_all(session: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            chunk = session.recv(1024)
        except (ConnectionError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


def test_what_awscrt_cannot_send_is_refused(endpoint: str, iot: Any, info: dict[str, Any], tmp_path: Any) -> None:
    iot.create_policy(
        policyName="any",
        policyDocument=json.dumps({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}),
    )
    cert, key, _cert_id = aws_keys_device(iot, tmp_path, "raw", "any")
    # QoS 2: CONNACK accepted, then the PUBLISH (QoS 2, packet id 1) ends the connection without PUBREC.
    session = _raw_session(info, cert, key, _connect_packet("raw"))
    publish = b"\x00\x05qos/2" + b"\x00\x01" + b"x"
    session.sendall(bytes([0x34, len(publish)]) + publish)
    assert _read_all(session) == b"\x20\x02\x00\x00"
    # MQTT 5: CONNACK 0x01 (unacceptable protocol version), closed. An empty client id: CONNACK 0x02, closed.
    assert _read_all(_raw_session(info, cert, key, _connect_packet("raw", level=5))) == b"\x20\x02\x00\x01"
    assert _read_all(_raw_session(info, cert, key, _connect_packet(""))) == b"\x20\x02\x00\x02"
    reasons = [event["reason"] for event in dataplane_info(endpoint)["events"] if "reason" in event]
    assert reasons == [
        "PUBLISH with QoS 2 on qos/2: AWS IoT supports QoS 0 and 1 only",
        "only MQTT 3.1.1 is emulated (protocol 'MQTT' level 5)",
        "an empty client id is refused (our reading: AWS policies name the client id)",
    ]
