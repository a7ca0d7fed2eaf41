"""playbooks/multi_account/fleet.yml: four (account, region) pairs in one run, two local endpoints standing in
for AWS (each serving two regions), each pair with its own devices, endpoint and keys; the merged report adds
them up, no device lands in another pair's region, and a pair that fails stops neither the others nor the
report, and fails the run by name."""

from __future__ import annotations

import json
import os
import re

import boto3
import launcher
import yaml
from harness import REPO, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "multi_account", "fleet.yml")


def _iot(url: str, region: str):
    return boto3.client(
        "iot", endpoint_url=url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_pairs_in_one_run(local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    log = tmp_path / "second-endpoint.log"
    with launcher.running_endpoint(log_path=str(log)) as second:
        pairs = {
            "acct-a-eu-west-1": (local_iot_endpoint, "eu-west-1", ["eu-1", "eu-2", "eu-3"]),
            "acct-a-us-east-2": (second, "us-east-2", ["use-1", "use-2"]),
            "acct-b-ap-southeast-2": (local_iot_endpoint, "ap-southeast-2", ["ap-1", "ap-2", "ap-3", "ap-4"]),
        }
        hosts = {
            "acct-c-eu-central-1": {
                "iot_region": "eu-central-1",
                "iot_endpoint_url": second,
                "iot_access_key": "testing",
                "iot_secret_key": "testing",
                "iot_devices_file": str(tmp_path / "missing.yml"),
            }
        }
        for host, (url, region, names) in pairs.items():
            devices = tmp_path / f"{host}.yml"
            devices.write_text(yaml.safe_dump({"devices": [{"name": f"mr-{name}"} for name in names]}))
            hosts[host] = {
                "iot_account": host.split("-")[1],
                "iot_region": region,
                "iot_endpoint_url": url,
                "iot_access_key": "testing",
                "iot_secret_key": "testing",
                "iot_devices_file": str(devices),
            }
        inventory = tmp_path / "inventory.yml"
        group_vars = {"iot_fleet_group": "mr-sensors", "iot_policy_name": "mr-device"}
        inventory.write_text(
            yaml.safe_dump({"all": {"children": {"iot_fleets": {"vars": group_vars, "hosts": hosts}}}})
        )
        output = tmp_path / "fleets"
        result = run_playbook(
            PLAYBOOK,
            local_iot_endpoint,
            collections_path,
            str(tmp_path),
            extra_vars={"fleet_output_root": str(output)},
            extra_env={"ANSIBLE_FORKS": "3"},
            inventory=str(inventory),
        )
        out = result.stdout
        assert result.returncode == 2, out[-8000:] + result.stderr[-3000:]
        for host in pairs:
            assert re.search(rf"^{host}\s+: ok=3\s+changed=2\s+unreachable=0\s+failed=0", out, re.M), host
        assert re.search(r"^acct-c-eu-central-1\s+: .*failed=0 .*rescued=1", out, re.M)
        assert "Failed pairs: acct-c-eu-central-1 (see " in out

        report = json.loads((output / "fleets-report.json").read_text())
        by_pair = {line["pair"]: line for line in report["pairs"]}
        assert sorted(by_pair) == sorted([*pairs, "acct-c-eu-central-1"])
        failed = by_pair.pop("acct-c-eu-central-1")
        assert failed["error"].startswith("The fleet of this account and region: ") and "missing.yml" in failed["error"]
        assert failed["created"] == 0
        for host, (_url, region, names) in pairs.items():
            line = by_pair[host]
            assert (line["region"], line["created"], line["failed"], line["error"]) == (region, len(names), 0, "")
            assert line["summary_line"] and line["api_calls"] > 0
            assert (output / f"{host}-report.json").is_file()
            assert sorted(p.name for p in (output / host).iterdir()) == sorted(f"mr-{n}" for n in names)
        assert report["totals"]["created"] == 9 and report["totals"]["pairs_failed"] == ["acct-c-eu-central-1"]

        # Each region holds its pair's devices, each with one certificate carrying the pair's policy; the
        # regions nobody named (us-east-2 on the first endpoint, eu-west-1 on the second) hold nothing.
        for host, (url, region, names) in pairs.items():
            iot = _iot(url, region)
            members = iot.list_things_in_thing_group(thingGroupName="mr-sensors")["things"]
            assert sorted(members) == sorted(f"mr-{n}" for n in names), host
            for thing in members:
                (principal,) = iot.list_thing_principals(thingName=thing)["principals"]
                policies = iot.list_attached_policies(target=principal)["policies"]
                assert [p["policyName"] for p in policies] == ["mr-device"]
        assert _iot(local_iot_endpoint, "us-east-2").list_things()["things"] == []
        assert _iot(second, "eu-west-1").list_things()["things"] == []
        assert _iot(second, "eu-central-1").list_things()["things"] == []
