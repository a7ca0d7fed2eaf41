"""api_rates reaches the fleet engine's budgets: checked by the throttles the endpoint's quota buckets count.

The endpoint enforces AWS's default quotas scaled to a tenth (CreateThing: 10 TPS, a 10-call bucket). Twenty
new devices, worked on twenty at a time: with CreateThing paced at 5 TPS the endpoint throttles no CreateThing;
with CreateThing allowed 1000 TPS (a quota the account does not have) it throttles some, and the engine still
ends with every device made.
"""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest
from harness import recap, reset_endpoint, run_playbook

PLAYBOOK = """
- name: Fleet with api_rates
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the fleet
      iotfleet.provisioning.fleet:
        endpoint_url: "{{ local_iot_endpoint }}"
        devices: "{{ devices }}"
        fleet_group: rates-fleet
        concurrency: 20
        api_rates: "{{ api_rates }}"
      register: fleet_result
"""


def _traffic(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/_local/traffic", data=data, method=method)
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.parametrize(("create_thing_tps", "throttled"), [(5, False), (1000, True)])
def test_api_rates_paces_the_engine(create_thing_tps, throttled, local_iot_endpoint, collections_path, tmp_path):
    reset_endpoint(local_iot_endpoint)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = {
        "local_iot_endpoint": local_iot_endpoint,
        "devices": [{"name": f"rates-{i:02d}"} for i in range(20)],
        "api_rates": {"CreateThing": create_thing_tps, "AddThingToThingGroup": 5},
    }
    _traffic(local_iot_endpoint, "POST", {"quotas": "aws-default", "quota_scale": 0.1, "reset_counters": True})
    try:
        result = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
        counters = _traffic(local_iot_endpoint)["counters"]
    finally:
        _traffic(local_iot_endpoint, "DELETE")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert recap(result.stdout)["changed"] == 1
    create = counters["CreateThing"]
    assert (create["throttles"] > 0) is throttled, counters
    assert create["calls"] - create["throttles"] == 20
    assert counters["AddThingToThingGroup"]["throttles"] == 0, counters
    iot = boto3.client(
        "iot",
        endpoint_url=local_iot_endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    members = iot.list_things_in_thing_group(thingGroupName="rates-fleet")["things"]
    assert sorted(members) == [f"rates-{i:02d}" for i in range(20)]
