"""The fleet in an account with many more things than the fleet: the plan does not read the account whole.

600 other things (3 pages of ListThings) and a fleet of 3 devices, one of which exists already: the page
budget for 3 devices is one page, so the engine reads one page and describes the devices not seen on it.
Checked from the endpoint's call recorder; the fleet ends right and a second run changes nothing.
"""

from __future__ import annotations

from harness import control, iot_client, recap, reset_endpoint, run_playbook

PLAYBOOK = """
- name: Fleet in a large account
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the fleet
      iotfleet.provisioning.fleet:
        endpoint_url: "{{ local_iot_endpoint }}"
        devices:
          - {name: zz-fleet-0, attributes: {model: m1}}
          - {name: zz-fleet-1, attributes: {model: m1}}
          - {name: zz-fleet-2, attributes: {model: m1}}
        fleet_group: large-account-fleet
"""


def test_fleet_reads_one_page_and_describes_the_rest(local_iot_endpoint, collections_path, tmp_path):
    reset_endpoint(local_iot_endpoint)
    iot = iot_client(local_iot_endpoint)
    for index in range(600):
        iot.create_thing(thingName=f"other-{index:04d}")
    # Exists already, with an attribute the fleet changes; sorts after the other things.
    iot.create_thing(thingName="zz-fleet-1", attributePayload={"attributes": {"model": "old"}})
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = {"local_iot_endpoint": local_iot_endpoint}

    control(local_iot_endpoint, "/_local/calls", "DELETE")
    first = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 1
    calls = [c for c in control(local_iot_endpoint, "/_local/calls")["calls"] if c]
    assert calls.count("ListThings") == 1, calls
    # None of the three is on the first page of 250: each is described once.
    assert calls.count("DescribeThing") == 3, calls
    assert calls.count("CreateThing") == 2
    assert calls.count("UpdateThing") == 1
    for name in ("zz-fleet-0", "zz-fleet-1", "zz-fleet-2"):
        assert iot.describe_thing(thingName=name)["attributes"] == {"model": "m1"}
    assert len(iot.list_things(maxResults=250)["things"]) == 250  # the account really is paged

    control(local_iot_endpoint, "/_local/calls", "DELETE")
    second = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout)["changed"] == 0
    calls = [c for c in control(local_iot_endpoint, "/_local/calls")["calls"] if c]
    assert calls.count("ListThings") == 1 and calls.count("DescribeThing") == 3, calls
