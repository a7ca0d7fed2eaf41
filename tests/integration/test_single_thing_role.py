"""The single_thing role through playbooks/single_thing.yml: provision, run again (changed=0), check --diff.

State is read back with plain boto3, independently of the collection.
"""

from __future__ import annotations

import datetime
import json
import os
import stat

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import REPO, assert_nothing_done, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "single_thing.yml")
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
}


def _iot(endpoint: str):
    return boto3.client(
        "iot", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def _self_signed_pem(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


CASES = [
    ("modules", "device_csr"),
    ("modules", "aws_keys"),
    ("template", "device_csr"),
    ("template", "existing_pem"),
]


@pytest.mark.parametrize(("method", "source"), CASES)
def test_single_thing_provisions_once_and_then_changes_nothing(
    method: str, source: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    name = f"role-{method}-{source}".replace("_", "-")
    device_dir = tmp_path / "device"
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "single_thing_name": name,
        "single_thing_method": method,
        "single_thing_certificate_source": source,
        "single_thing_attributes": {"model": "v1"},
        "single_thing_groups": ["role-fleet"],
        "single_thing_policy_name": "role-device-policy",
        "single_thing_policy_document": POLICY,
        "single_thing_output_dir": str(device_dir),
        "single_thing_controller_dir": str(tmp_path / "controller"),
    }
    if source == "existing_pem":
        variables["single_thing_certificate_pem"] = _self_signed_pem(name)

    def play(check: bool = False, **overrides: object):
        result = run_playbook(
            PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), {**variables, **overrides}, check=check
        )
        assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
        return result

    first = play()
    assert recap(first.stdout)["changed"] > 0

    iot = _iot(local_iot_endpoint)
    thing = iot.describe_thing(thingName=name)
    assert thing["attributes"] == {"model": "v1"}
    groups = iot.list_thing_groups_for_thing(thingName=name)["thingGroups"]
    assert [g["groupName"] for g in groups] == ["role-fleet"]
    principals = iot.list_thing_principals(thingName=name)["principals"]
    assert len(principals) == 1
    certificate_id = principals[0].rsplit("/", 1)[1]
    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    assert description["status"] == "ACTIVE"
    policies = iot.list_attached_policies(target=principals[0])["policies"]
    assert [p["policyName"] for p in policies] == ["role-device-policy"]

    # The device's files: key 0600 (made there, or copied from the controller), the certificate AWS holds,
    # and the connection settings.
    settings = json.loads((device_dir / "device.json").read_text())
    assert settings["thing_name"] == name
    assert settings["certificate_id"] == certificate_id
    assert settings["endpoint"] == iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    # What a device must do, with absolute paths; no root CA is named that this run did not write (issue 10).
    assert settings["client_id"] == name and settings["sni"] == settings["endpoint"]
    assert settings["root_ca"] is None and settings["root_ca_url"].endswith("AmazonRootCA1.pem")
    assert os.path.isabs(settings["certificate"]) and os.path.isabs(settings["private_key"])
    assert (device_dir / "certificate.pem.crt").read_text() == description["certificatePem"]
    if source != "existing_pem":
        key_path = device_dir / "private.pem.key"
        assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        issued = x509.load_pem_x509_certificate(description["certificatePem"].encode())
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        assert key.public_key().public_bytes(serialization.Encoding.DER, spki) == issued.public_key().public_bytes(
            serialization.Encoding.DER, spki
        )

    second = play()
    assert recap(second.stdout)["changed"] == 0, second.stdout[-8000:]
    assert len(iot.list_certificates()["certificates"]) == 1

    # A check run with a changed attribute reports the change and its diff, and changes nothing.
    preview = play(check=True, single_thing_attributes={"model": "v2"})
    assert recap(preview.stdout)["changed"] >= 1
    assert '"model": "v2"' in preview.stdout
    assert iot.describe_thing(thingName=name)["attributes"] == {"model": "v1"}
    assert len(iot.list_certificates()["certificates"]) == 1


@pytest.mark.parametrize("name", ["../../x", "nl-dev\n"])
def test_a_path_like_name_is_refused_before_any_file_or_call(
    name: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    """The name builds both directories: '../../x' lands two levels up, 'nl-dev\\n' holds a line break."""
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "single_thing_name": name,
        "single_thing_policy_name": "role-device-policy",
        "single_thing_policy_document": POLICY,
        # The directories as the defaults build them, under a tree this test watches as a whole.
        "single_thing_output_dir": str(area / "a" / "b" / "devices") + "/{{ single_thing_name }}",
        "single_thing_controller_dir": str(area / "c" / "d" / "credentials") + "/{{ single_thing_name }}",
    }
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode != 0
    assert_nothing_done(local_iot_endpoint, area)
    # Then the message: it names the variable and the rule.
    assert "single_thing_name: must be 1 to 128 characters" in result.stdout, result.stdout[-5000:]
    assert "[a-zA-Z0-9:_-]+" in result.stdout
