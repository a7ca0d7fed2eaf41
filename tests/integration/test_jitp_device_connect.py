"""The jitp role's devices on a real connection: the first one is dropped while AWS provisions, the next works.

playbooks/jitp.yml sets up the CA, template and policy and issues two device certificates, with the endpoint's
stand-in for Amazon Root CA 1 as ``jitp_root_ca_path``. Each device then connects with what its ``device.json``
names (certificate followed by its CA, key, root CA, client id), through awsiotsdk: the first connection is
closed after JITP registered and provisioned the certificate, the second succeeds, and the device may use its
own topics only. No /_local control path is involved.
"""

from __future__ import annotations

import json
import os

from device_client import clear_events, dataplane_info, prove_device, refused
from harness import REPO, iot_client, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "jitp.yml")


def test_jitp_devices_are_provisioned_by_their_first_connection(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    clear_events(local_iot_endpoint)
    info = dataplane_info(local_iot_endpoint)
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "jitp_ca_dir": str(tmp_path / "ca"),
        "jitp_template_name": "jitp-device-connect",
        "jitp_devices": ["sensor-001", "sensor-002"],
        "jitp_output_dir": str(tmp_path / "devices"),
        "jitp_root_ca_path": info["caFile"],
    }
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), extra_vars=variables)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert recap(result.stdout)["failed"] == 0
    iot = iot_client(local_iot_endpoint)
    assert iot.list_things()["things"] == []  # nothing is provisioned before a device connects

    for device in ("sensor-001", "sensor-002"):
        with open(tmp_path / "devices" / device / "device.json") as handle:
            settings = json.load(handle)
        device_info = {**info, "caFile": settings["root_ca"]}
        cert, key, client_id = settings["certificate"], settings["private_key"], settings["client_id"]
        refused(device_info, cert, key, client_id)  # first contact: registered, provisioned, dropped
        registrations = [e for e in dataplane_info(local_iot_endpoint)["events"] if e["event"] == "jit-registration"]
        assert registrations[-1]["answer"]["thingName"] == device
        cert_id = registrations[-1]["certificateId"]
        description = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
        assert description["status"] == "ACTIVE"
        assert [p.split("/")[-1] for p in iot.list_thing_principals(thingName=device)["principals"]] == [cert_id]
        neighbour = "sensor-002" if device == "sensor-001" else "sensor-001"
        prove_device(device_info, cert, key, client_id, neighbour)
    assert os.path.basename(settings["root_ca"]) == "AmazonRootCA1.pem"
