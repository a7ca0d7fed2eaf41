"""The certificate_rotation role through playbooks/certificate_rotation.yml, proven by a real device (awsiotsdk).

One test shares its runs. A device whose certificate (registered without a CA) ends in 10 days is rotated:
a check run says step 1 and calls nothing that changes; step 1 makes a second ACTIVE certificate beside the old
one and writes the key (0600) and certificate; the device connects with the old and with the new one; a second
run whose only confirmation is a wrong id (the old certificate's, which the device also reported) changes
nothing and calls nothing that changes; the confirmed run, from a fresh controller directory, retires the old
certificate in the safe order; then the old certificate is refused and the new one publishes. The confirmation
file is written the way an IoT rule on the presence events would: the certificate id the endpoint saw the
device connect with.

State is read back with plain boto3 and the endpoint's recorded calls, independently of the collection.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device_client import DEVICE_POLICY, Device, clear_events, dataplane_info, refusals, refused
from harness import REPO, control, iot_client, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "certificate_rotation.yml")
THING = "rot-dev"

POLICY = "rot-device-policy"


def _old_certificate(directory) -> tuple[str, str]:
    """A device key and a self-signed certificate ending in 10 days (inside the default 30-day window)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, THING)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=355))
        .not_valid_after(now + datetime.timedelta(days=10, hours=1))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir()
    key_path, cert_path = directory / "old.key", directory / "old.pem.crt"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def _active_certificates(iot) -> dict[str, dict[str, Any]]:
    ids = [p.rsplit("/", 1)[1] for p in iot.list_thing_principals(thingName=THING)["principals"]]
    described = {i: iot.describe_certificate(certificateId=i)["certificateDescription"] for i in ids}
    return {i: d for i, d in described.items() if d["status"] == "ACTIVE"}


def _publishes(info: dict[str, Any], cert: str, key: str) -> None:
    with Device(info, cert, key, THING) as device:
        assert device.subscribe(f"devices/{THING}/#") == 1
        device.publish(f"devices/{THING}/telemetry", b"rotating")
        assert device.receive() == (f"devices/{THING}/telemetry", b"rotating")


def _connected_certificates(url: str) -> list[str]:
    """What an IoT rule on $aws/events/presence/connected/+ would record: principalIdentifier per connection."""
    events = dataplane_info(url)["events"]
    return [e["certificateId"] for e in events if e["event"] == "connected" and e.get("clientId") == THING]


def _mutating_calls(url: str) -> list[str]:
    return [c for c in control(url, "/_local/calls")["calls"] if not c.startswith(("Describe", "List", "Get"))]


def test_a_device_is_rotated_one_safe_step_per_run(local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    url = local_iot_endpoint
    reset_endpoint(url)
    iot = iot_client(url)
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps(DEVICE_POLICY))
    iot.create_thing(thingName=THING)
    old_cert, old_key = _old_certificate(tmp_path / "device")
    with open(old_cert) as handle:
        registered = iot.register_certificate_without_ca(certificatePem=handle.read(), status="ACTIVE")
    old_id, old_arn = registered["certificateId"], registered["certificateArn"]
    iot.attach_thing_principal(thingName=THING, principal=old_arn)
    iot.attach_policy(policyName=POLICY, target=old_arn)
    controller = tmp_path / "controller"
    variables = {
        "iot_endpoint_url": url,
        "iot_region": "us-east-1",
        "certificate_rotation_thing": THING,
        "certificate_rotation_policies": [POLICY],
        "certificate_rotation_output_dir": str(controller / "out"),
    }

    def play(work, check: bool = False, **overrides: object):
        os.makedirs(work, exist_ok=True)
        control(url, "/_local/calls", "DELETE")
        result = run_playbook(PLAYBOOK, url, collections_path, str(work), {**variables, **overrides}, check=check)
        assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
        return result

    # A check run at rest with the certificate 10 days from its end: step 1 is announced, nothing changes.
    preview = play(controller, check=True)
    assert "step 1: a new certificate for rot-dev beside " + old_id in preview.stdout
    assert "10 days left, window 30 days" in preview.stdout, preview.stdout
    assert recap(preview.stdout)["changed"] >= 1
    assert _mutating_calls(url) == []
    assert not (controller / "out").exists() or not any((controller / "out").iterdir())

    # Step 1: a new ACTIVE certificate beside the old one, same policy, same thing; the files to deliver.
    first = play(controller)
    assert recap(first.stdout)["changed"] >= 1
    active = _active_certificates(iot)
    assert old_id in active and len(active) == 2
    (new_id,) = set(active) - {old_id}
    assert [
        p["policyName"] for p in iot.list_attached_policies(target=active[new_id]["certificateArn"])["policies"]
    ] == [POLICY]
    assert [p["policyName"] for p in iot.list_attached_policies(target=old_arn)["policies"]] == [POLICY]
    base = controller / "out" / f"{THING}.{old_id[:12]}"
    new_key, new_cert = str(base) + ".key", str(base) + ".pem.crt"
    assert stat.S_IMODE(os.stat(new_key).st_mode) == 0o600
    with open(new_cert) as handle:
        assert handle.read() == active[new_id]["certificatePem"]
    assert f"once it connects with certificate {new_id}" in first.stdout

    # During the rotation the device connects with either certificate.
    info = dataplane_info(url)
    clear_events(url)
    _publishes(info, old_cert, old_key)
    _publishes(info, new_cert, new_key)
    assert _connected_certificates(url) == [old_id, new_id]

    # A second run, from another controller directory, whose only confirmation is a wrong id (the old
    # certificate's, which the device also reported): nothing is confirmed, so nothing changes and no call
    # changes anything.
    waiting = play(tmp_path / "elsewhere", certificate_rotation_confirmed_ids=[old_id, "f" * 64])
    assert recap(waiting.stdout)["changed"] == 0, waiting.stdout[-8000:]
    assert _mutating_calls(url) == []
    assert "waiting: rot-dev rotates from " + old_id in waiting.stdout
    assert f"they retire nothing: {old_id}, {'f' * 64}" in waiting.stdout
    assert set(_active_certificates(iot)) == {old_id, new_id}

    # The confirmation file, as a rule on the presence events writes it: device -> the id it connected with last.
    confirmations = tmp_path / "confirmed.yml"
    confirmations.write_text(f"{THING}: {_connected_certificates(url)[-1]}\nother-device: {old_id}\n")

    # Step 2 from a fresh controller directory (no file of step 1 there): the stage comes from AWS.
    fresh = tmp_path / "fresh-controller"
    retired = play(
        fresh,
        certificate_rotation_confirmation_file=str(confirmations),
        certificate_rotation_output_dir=str(fresh / "out"),
    )
    assert recap(retired.stdout)["changed"] >= 1
    assert f"step 2: {new_id} is confirmed in use by rot-dev; retiring {old_id}" in retired.stdout
    # The safe order, and nothing touched the new certificate (it is ACTIVE and attached before).
    assert _mutating_calls(url) == ["UpdateCertificate", "DetachThingPrincipal", "DetachPolicy", "DeleteCertificate"]
    with pytest.raises(ClientError) as gone:
        iot.describe_certificate(certificateId=old_id)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert set(_active_certificates(iot)) == {new_id}
    assert not (fresh / "out").exists()

    # After retirement: the old certificate is refused, the new one publishes.
    clear_events(url)
    refused(info, old_cert, old_key, THING)
    assert refusals(url) != []
    _publishes(info, new_cert, new_key)
