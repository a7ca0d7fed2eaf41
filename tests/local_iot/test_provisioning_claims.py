"""CreateProvisioningClaim (provisioning_claims.py) and its temporary certificate on the data plane, with awsiotsdk.

One endpoint for the module. A trusted-user claim provisions a device with its own template only, is refused
every other topic, and is refused once expired (the lifetime is set to a second here, not AWS's five minutes).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest
from cryptography import x509

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from device_sdk import Device, DeviceRefused, clear_events, dataplane_info
from endpoint_testing import client, error_of, module_endpoint, reset
from identity_sdk import provision

ROLE = "arn:aws:iam::123456789012:role/provisioning"
TEMPLATE = {
    "Parameters": {"SerialNumber": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "SerialNumber"}}},
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
    },
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("provisioning_claims") as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    clear_events(endpoint)
    return client(endpoint)


def claims_control(endpoint: str, method: str = "GET", body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{endpoint}/_local/provisioning-claims", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def template(iot: Any, name: str, enabled: bool = True, kind: str = "FLEET_PROVISIONING") -> None:
    body = TEMPLATE
    if kind == "JITP":
        body = {
            **TEMPLATE,
            "Parameters": {**TEMPLATE["Parameters"], "SerialNumber": {"Type": "String", "Default": "x"}},
        }
    iot.create_provisioning_template(
        templateName=name, templateBody=json.dumps(body), provisioningRoleArn=ROLE, enabled=enabled, type=kind
    )


def files(tmp_path: Any, claim: dict[str, Any], name: str) -> tuple[str, str]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.write_text(claim["certificatePem"])
    key.write_text(claim["keyPair"]["PrivateKey"])
    return str(cert), str(key)


def test_claims_only_for_an_enabled_fleet_provisioning_template(endpoint: str, iot: Any) -> None:
    template(iot, "jitp", kind="JITP")
    template(iot, "off", enabled=False)
    template(iot, "fleet")
    code, message, status = error_of(iot.create_provisioning_claim, templateName="jitp")
    assert (code, status) == ("InvalidRequestException", 400) and "JITP" in message
    code, message, status = error_of(iot.create_provisioning_claim, templateName="off")
    assert (code, status) == ("InvalidRequestException", 400) and "disabled" in message
    code, _message, status = error_of(iot.create_provisioning_claim, templateName="missing")
    assert (code, status) == ("ResourceNotFoundException", 404)
    before = datetime.datetime.now(datetime.timezone.utc)
    claim = iot.create_provisioning_claim(templateName="fleet")
    certificate = x509.load_pem_x509_certificate(claim["certificatePem"].encode())
    # AWS's five minutes by default; the certificate's notAfter is the claim's expiration.
    assert 295 <= (claim["expiration"] - before).total_seconds() <= 305
    assert certificate.not_valid_after_utc == claim["expiration"]
    assert len(claim["certificateId"]) == 64 and "PRIVATE KEY" in claim["keyPair"]["PrivateKey"]
    # Not an ordinary registered certificate (our reading): no listing, no policies to attach.
    assert claim["certificateId"] not in [c["certificateId"] for c in iot.list_certificates()["certificates"]]
    assert claims_control(endpoint)["claims"][0]["templateName"] == "fleet"


def test_a_trusted_user_claim_provisions_with_its_template_only_until_it_expires(
    endpoint: str, iot: Any, tmp_path: Any
) -> None:
    info = dataplane_info(endpoint)
    template(iot, "fleet")
    template(iot, "other")
    cert, key = files(tmp_path, iot.create_provisioning_claim(templateName="fleet"), "claim")
    device = provision(info, cert, key, "installer-1", "fleet", {"SerialNumber": "sn-1"}, str(tmp_path), use_csr=True)
    assert (device.outcome, device.thing_name) == ("accepted", "sn-1"), device
    status = iot.describe_certificate(certificateId=device.certificate_id)["certificateDescription"]["status"]
    assert status == "ACTIVE"
    # Its implicit permissions stop at its own template's topics: another template's, or any other topic,
    # disconnects it (an unauthorized publish on MQTT 3.1.1).
    for topic in ("$aws/provisioning-templates/other/provision/json", "devices/sn-1/hello"):
        with Device(info, cert, key, "installer-2") as claim_device, pytest.raises(DeviceRefused):
            claim_device.publish(topic, b"{}")
    reasons = [e["reason"] for e in dataplane_info(endpoint)["events"] if e["event"] == "disconnected"]
    assert any("iot:Publish on topic/$aws/provisioning-templates/other/provision/json" in r for r in reasons)
    assert any("iot:Publish on topic/devices/sn-1/hello" in r for r in reasons)

    claims_control(endpoint, "POST", {"lifetimeSeconds": 1})
    try:
        short = iot.create_provisioning_claim(templateName="fleet")
    finally:
        claims_control(endpoint, "DELETE")
    assert claims_control(endpoint)["lifetimeSeconds"] == 300
    short_cert, short_key = files(tmp_path, short, "short")
    time.sleep(max(0.0, (short["expiration"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 0.2)
    with pytest.raises(DeviceRefused):
        Device(info, short_cert, short_key, "installer-3").connect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        refused = [e["reason"] for e in dataplane_info(endpoint)["events"] if e["event"] == "refused"]
        if refused:
            break
        time.sleep(0.05)
    assert refused and "expired" in refused[-1], refused


def test_the_claim_lifetime_setting_is_checked(endpoint: str) -> None:
    for bad in ({}, {"lifetimeSeconds": 0}, {"lifetimeSeconds": "5"}, {"lifetimeSeconds": True}):
        with pytest.raises(urllib.error.HTTPError) as caught:
            claims_control(endpoint, "POST", bad)
        assert caught.value.code == 400
    assert claims_control(endpoint)["lifetimeSeconds"] == 300
