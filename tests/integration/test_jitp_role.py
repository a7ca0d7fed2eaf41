"""The jitp role through playbooks/jitp.yml: set up, run again (changed=0), then a device connects.

The "device connects" step uses the local endpoint's JITP simulation (POST /_local/jitp/connect), which
applies the CA's template as AWS documents. State is read back with plain boto3.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import boto3
import pytest
from harness import REPO, assert_nothing_done, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "jitp.yml")


def _iot(endpoint: str):
    return boto3.client(
        "iot", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def _connect(endpoint: str, certificate_pem: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{endpoint}/_local/jitp/connect",
        data=json.dumps({"certificatePem": certificate_pem}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize("certificate_mode", ["DEFAULT", "SNI_ONLY"])
def test_jitp_role_sets_up_once_and_a_device_is_provisioned_on_first_connect(
    certificate_mode: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    devices = tmp_path / "devices"
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "jitp_ca_dir": str(tmp_path / "ca"),
        "jitp_certificate_mode": certificate_mode,
        "jitp_template_name": "jitp-test",
        "jitp_role_name": "jitp-test-role",
        "jitp_policy_name": "jitp-test-policy",
        "jitp_thing_attributes": {"provisioned_by": "jitp"},
        "jitp_thing_groups": ["jitp-fleet"],
        "jitp_devices": ["sensor-001", "sensor-002"],
        "jitp_device_subject": {"organization": "iotfleet"},
        "jitp_output_dir": str(devices),
    }

    def play(check: bool = False):
        result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables, check=check)
        assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
        return result

    assert recap(play().stdout)["changed"] > 0
    assert recap(play().stdout)["changed"] == 0
    # The mode changes only the CA registration: the check run and the run after a device connected (below) are
    # made once, in DEFAULT mode (test time).
    if certificate_mode == "DEFAULT":
        assert recap(play(check=True).stdout)["changed"] == 0

    iot = _iot(local_iot_endpoint)
    cas = iot.list_ca_certificates()["certificates"]
    assert len(cas) == 1
    ca = iot.describe_ca_certificate(certificateId=cas[0]["certificateId"])
    assert ca["certificateDescription"]["status"] == "ACTIVE"
    assert ca["certificateDescription"]["autoRegistrationStatus"] == "ENABLE"
    assert ca["certificateDescription"]["certificateMode"] == certificate_mode
    assert ca["registrationConfig"]["templateName"] == "jitp-test"
    assert iot.describe_provisioning_template(templateName="jitp-test")["type"] == "JITP"

    # Nothing is provisioned until a device connects.
    assert iot.list_things()["things"] == []
    certificate_pem = (devices / "sensor-001" / "certificate-and-ca.pem.crt").read_text()
    status, answer = _connect(local_iot_endpoint, certificate_pem)
    assert status == 200, answer
    assert answer["thingName"] == "sensor-001"

    thing = iot.describe_thing(thingName="sensor-001")
    assert thing["attributes"] == {"provisioned_by": "jitp"}
    groups = iot.list_thing_groups_for_thing(thingName="sensor-001")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["jitp-fleet"]
    principals = iot.list_thing_principals(thingName="sensor-001")["principals"]
    assert len(principals) == 1
    description = iot.describe_certificate(certificateId=principals[0].rsplit("/", 1)[1])["certificateDescription"]
    assert description["status"] == "ACTIVE"
    attached = iot.list_attached_policies(target=principals[0])["policies"]
    assert [p["policyName"] for p in attached] == ["jitp-test-policy"]
    # The second device is untouched until it connects; the first device's reconnect changes nothing.
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["sensor-001"]
    assert _connect(local_iot_endpoint, certificate_pem)[0] == 200
    assert len(iot.list_certificates()["certificates"]) == 1

    # The role run after a device was provisioned still changes nothing.
    if certificate_mode == "DEFAULT":
        assert recap(play().stdout)["changed"] == 0


@pytest.mark.parametrize("bad", [["../../x"], ["nl-dev\n", "sensor 05!"]])
def test_a_path_like_device_id_is_refused_before_any_file_or_call(
    bad: list[str], local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    """A device id builds its directory and the certificate's CN: '../../x' would land outside jitp_output_dir.

    'sensor 05!' cannot be a thing name: its certificate would stay PENDING_ACTIVATION for ever.
    """
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "jitp_ca_dir": str(area / "ca"),
        "jitp_template_name": "jitp-test",
        "jitp_role_name": "jitp-test-role",
        "jitp_policy_name": "jitp-test-policy",
        "jitp_devices": ["sensor-001", *bad],
        "jitp_output_dir": str(area / "a" / "b" / "devices"),
    }
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode != 0
    assert_nothing_done(local_iot_endpoint, area)
    # Then the message: it names the variable and the rule.
    assert "jitp_devices: every device id must be 1 to 128 characters" in result.stdout, result.stdout[-5000:]
    assert json.dumps(bad) in result.stdout
