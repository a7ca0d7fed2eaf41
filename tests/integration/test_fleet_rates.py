"""api_rates reaches the fleet engine's budgets: checked by the throttles the endpoint's quota buckets count.

The endpoint enforces AWS's default quotas scaled to a tenth (CreateThing: 10 TPS, a 10-call bucket). Twenty
new devices, worked on twenty at a time: with CreateThing paced at 5 TPS the endpoint throttles no CreateThing;
with CreateThing allowed 1000 TPS (a quota the account does not have) it throttles some, and the engine still
ends with every device made.
"""

from __future__ import annotations

import pytest
from harness import control, iot_client, recap, reset_endpoint, run_playbook

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
    settings = {"quotas": "aws-default", "quota_scale": 0.1, "reset_counters": True}
    control(local_iot_endpoint, "/_local/traffic", "POST", settings)
    try:
        result = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
        counters = control(local_iot_endpoint, "/_local/traffic")["counters"]
    finally:
        control(local_iot_endpoint, "/_local/traffic", "DELETE")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert recap(result.stdout)["changed"] == 1
    create = counters["CreateThing"]
    assert (create["throttles"] > 0) is throttled, counters
    assert create["calls"] - create["throttles"] == 20
    assert counters["AddThingToThingGroup"]["throttles"] == 0, counters
    members = iot_client(local_iot_endpoint).list_things_in_thing_group(thingGroupName="rates-fleet")["things"]
    assert sorted(members) == [f"rates-{i:02d}" for i in range(20)]
