"""The bulk role through playbooks/bulk.yml: the same fleet by either engine, then a second run that changes nothing.

State is read back with plain boto3, independently of the collection.
"""

from __future__ import annotations

import json
import os
import stat

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from harness import REPO, assert_nothing_done, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "bulk.yml")
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
DEVICES = [
    {"name": "bulk-dev-0", "attributes": {"serial": "s0"}},
    {"name": "bulk-dev-1", "attributes": {"serial": "s1"}, "thing_groups": ["bulk-line-a"]},
    {"name": "bulk-dev-2", "attributes": {"serial": "s2"}, "thing_groups": ["bulk-line-b"]},
]


def _client(service: str, endpoint: str):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def _assert_fleet(endpoint: str, output_dir) -> None:
    """Every device: thing with the merged attributes and groups, one ACTIVE certificate with the policy, files."""
    iot = _client("iot", endpoint)
    for device in DEVICES:
        name = device["name"]
        thing = iot.describe_thing(thingName=name)
        assert thing["attributes"] == {"model": "m1", **device["attributes"]}, name
        groups = sorted(g["groupName"] for g in iot.list_thing_groups_for_thing(thingName=name)["thingGroups"])
        assert groups == sorted(["bulk-fleet", *device.get("thing_groups", [])]), name
        principals = iot.list_thing_principals(thingName=name)["principals"]
        assert len(principals) == 1, name
        certificate_id = principals[0].rsplit("/", 1)[1]
        description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        assert description["status"] == "ACTIVE"
        policies = iot.list_attached_policies(target=principals[0])["policies"]
        assert [p["policyName"] for p in policies] == ["bulk-policy"]
        device_dir = output_dir / name
        assert (device_dir / "certificate.pem.crt").read_text() == description["certificatePem"]
        key_path = device_dir / "private.pem.key"
        assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        issued = x509.load_pem_x509_certificate(description["certificatePem"].encode())
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert key.public_key().public_bytes(*spki) == issued.public_key().public_bytes(*spki)
    assert len(iot.list_certificates()["certificates"]) == len(DEVICES)
    members = iot.list_things_in_thing_group(thingGroupName="bulk-fleet")["things"]
    assert sorted(members) == sorted(d["name"] for d in DEVICES)


def _variables(endpoint: str, engine: str, output_dir, **extra: object) -> dict[str, object]:
    return {
        "iot_endpoint_url": endpoint,
        "iot_region": "us-east-1",
        "bulk_engine": engine,
        "bulk_attributes": {"model": "m1"},
        "bulk_fleet_group": "bulk-fleet",
        "bulk_policy_name": "bulk-policy",
        "bulk_policy_document": POLICY,
        "bulk_output_dir": str(output_dir),
        **extra,
    }


# The same devices as inventory hosts; the first one renamed by bulk_device_name.
INVENTORY = {
    "bulk_sensors": {
        "hosts": {
            "sensor-zero": {"bulk_device_name": "bulk-dev-0", "bulk_device_attributes": {"serial": "s0"}},
            "bulk-dev-1": {"bulk_device_attributes": {"serial": "s1"}, "bulk_device_thing_groups": ["bulk-line-a"]},
            "bulk-dev-2": {"bulk_device_attributes": {"serial": "s2"}, "bulk_device_thing_groups": ["bulk-line-b"]},
        }
    }
}


def _device_source(source: str, tmp_path) -> dict[str, object]:
    """The role variables that give DEVICES: as a list, a JSON-lines file, a CSV file or an inventory group."""
    if source == "vars":
        return {"bulk_devices": DEVICES}
    if source == "jsonl":
        devices_file = tmp_path / "devices.jsonl"
        devices_file.write_text("".join(json.dumps(d) + "\n" for d in DEVICES))
        return {"bulk_devices_file": str(devices_file)}
    if source == "csv":
        devices_file = tmp_path / "devices.csv"
        rows = [f"{d['name']},{d['attributes']['serial']},{';'.join(d.get('thing_groups', []))}" for d in DEVICES]
        devices_file.write_text("name,attributes.serial,thing_groups\n" + "\n".join(rows) + "\n")
        return {"bulk_devices_file": str(devices_file)}
    assert source == "inventory"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(INVENTORY))
    return {"bulk_inventory_group": "bulk_sensors", "_inventory": str(inventory)}


def _play(endpoint: str, collections_path: str, tmp_path, variables: dict[str, object], check: bool = False):
    variables = dict(variables)
    inventory = variables.pop("_inventory", None)
    result = run_playbook(
        PLAYBOOK, endpoint, collections_path, str(tmp_path), variables, check=check, inventory=inventory
    )
    assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("source", ["vars", "jsonl", "csv", "inventory"])
def test_registration_task_engine_provisions_once_then_changes_nothing(
    source: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    _client("s3", local_iot_endpoint).create_bucket(Bucket="bulk-input")
    output_dir = tmp_path / "devices"
    extra: dict[str, object] = {"bulk_bucket": "bulk-input", "bulk_poll_interval": 1, "bulk_wait_timeout": 120}
    extra.update(_device_source(source, tmp_path))
    variables = _variables(local_iot_endpoint, "registration_task", output_dir, **extra)

    first = _play(local_iot_endpoint, collections_path, tmp_path, variables)
    assert recap(first.stdout)["changed"] > 0
    _assert_fleet(local_iot_endpoint, output_dir)
    iot = _client("iot", local_iot_endpoint)
    assert len(iot.list_thing_registration_tasks()["taskIds"]) == 1

    second = _play(local_iot_endpoint, collections_path, tmp_path, variables)
    assert recap(second.stdout)["changed"] == 0, second.stdout[-8000:]
    assert len(iot.list_thing_registration_tasks()["taskIds"]) == 1
    _assert_fleet(local_iot_endpoint, output_dir)

    if source != "vars":
        return
    # A check run with a changed fleet-wide attribute predicts the update and changes nothing. Run for one source
    # only: every source becomes the same bulk_device_list (roles/bulk/tasks/main.yml) before the engine's tasks
    # read it, which the two runs above prove for each source (the same fleet, then nothing to change); the
    # preview is the engine's path from that list on, the same for all sources.
    preview = _play(
        local_iot_endpoint, collections_path, tmp_path, {**variables, "bulk_attributes": {"model": "m2"}}, check=True
    )
    assert recap(preview.stdout)["changed"] >= 1
    assert '"model": "m2"' in preview.stdout
    assert iot.describe_thing(thingName="bulk-dev-0")["attributes"]["model"] == "m1"


def test_registration_task_engine_refuses_devices_that_do_not_fit_one_template(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    devices = [{"name": "a", "attributes": {"x": "1"}}, {"name": "b", "attributes": {"y": "1"}}]
    variables = _variables(
        local_iot_endpoint, "registration_task", tmp_path / "d", bulk_bucket="bulk-input", bulk_devices=devices
    )
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode != 0
    assert "every device must have the same attribute names" in result.stdout
    assert _client("iot", local_iot_endpoint).list_things()["things"] == []


@pytest.mark.parametrize("source", ["vars", "inventory"])
def test_api_engine_provisions_the_same_fleet_once_then_changes_nothing(
    source: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    output_dir = tmp_path / "devices"
    variables = _variables(local_iot_endpoint, "api", output_dir, **_device_source(source, tmp_path))
    first = _play(local_iot_endpoint, collections_path, tmp_path, variables)
    assert recap(first.stdout)["changed"] > 0
    _assert_fleet(local_iot_endpoint, output_dir)
    second = _play(local_iot_endpoint, collections_path, tmp_path, variables)
    assert recap(second.stdout)["changed"] == 0, second.stdout[-8000:]
    _assert_fleet(local_iot_endpoint, output_dir)


def test_an_inventory_group_the_inventory_lacks_is_refused_before_any_call(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    variables = _variables(local_iot_endpoint, "api", tmp_path / "d", bulk_inventory_group="no_such_group")
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode != 0
    assert "bulk_inventory_group: the inventory has no group no_such_group" in result.stdout
    # One rule per assert: the message names only the rule that failed.
    assert "bulk_bucket" not in result.stdout and "give exactly one of them" not in result.stdout
    assert _client("iot", local_iot_endpoint).list_policies()["policies"] == []


@pytest.mark.parametrize(
    ("engine", "name", "source"),
    [
        ("api", "../../x", "vars"),
        ("api", "nl-dev\n", "vars"),
        ("registration_task", "nl-dev\n", "vars"),
        ("registration_task", "../../x", "jsonl"),
    ],
)
def test_a_path_like_device_name_is_refused_before_any_file_or_call(
    engine: str, name: str, source: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    """A device name builds <bulk_output_dir>/<name>/: '../../x' would land outside it."""
    reset_endpoint(local_iot_endpoint)
    _client("s3", local_iot_endpoint).create_bucket(Bucket="bulk-input")
    area = tmp_path / "area"
    area.mkdir()
    devices = [{"name": "bulk-dev-0", "attributes": {"serial": "s0"}}, {"name": name, "attributes": {"serial": "s1"}}]
    extra: dict[str, object] = {"bulk_bucket": "bulk-input", "bulk_poll_interval": 1, "bulk_wait_timeout": 60}
    if source == "jsonl":
        devices_file = tmp_path / "devices.jsonl"
        devices_file.write_text("".join(json.dumps(d) + "\n" for d in devices))
        extra["bulk_devices_file"] = str(devices_file)
        variable = "bulk_devices_file"
    else:
        extra["bulk_devices"] = devices
        variable = "bulk_devices"
    variables = _variables(local_iot_endpoint, engine, area / "a" / "devices", **extra)
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode != 0
    assert_nothing_done(local_iot_endpoint, area)
    # Then the message: it names the variable and the rule.
    assert f"{variable}: every device name must be 1 to 128 characters" in result.stdout, result.stdout[-5000:]
    assert json.dumps([name]) in result.stdout
