"""The fleet in an account with many more things than the fleet: the plan does not read the account whole.

600 other things (3 pages of ListThings) and a fleet of 3 devices, one of which exists already: the page
budget for 3 devices is one page, so the engine reads one page and describes the devices not seen on it.
Checked from the endpoint's call recorder; the fleet ends right and a second run changes nothing.
"""

from __future__ import annotations

import json
import urllib.request

import boto3
from harness import recap, reset_endpoint, run_playbook

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


def _calls(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/_local/calls", timeout=10) as response:
        return [c for c in json.load(response)["calls"] if c]


def _clear_calls(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_local/calls", method="DELETE"), timeout=10).close()


def test_fleet_reads_one_page_and_describes_the_rest(local_iot_endpoint, collections_path, tmp_path):
    reset_endpoint(local_iot_endpoint)
    iot = boto3.client(
        "iot",
        endpoint_url=local_iot_endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    for index in range(600):
        iot.create_thing(thingName=f"other-{index:04d}")
    # Exists already, with an attribute the fleet changes; sorts after the other things.
    iot.create_thing(thingName="zz-fleet-1", attributePayload={"attributes": {"model": "old"}})
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = {"local_iot_endpoint": local_iot_endpoint}

    _clear_calls(local_iot_endpoint)
    first = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] == 1
    calls = _calls(local_iot_endpoint)
    assert calls.count("ListThings") == 1, calls
    # None of the three is on the first page of 250: each is described once.
    assert calls.count("DescribeThing") == 3, calls
    assert calls.count("CreateThing") == 2
    assert calls.count("UpdateThing") == 1
    for name in ("zz-fleet-0", "zz-fleet-1", "zz-fleet-2"):
        assert iot.describe_thing(thingName=name)["attributes"] == {"model": "m1"}
    assert len(iot.list_things(maxResults=250)["things"]) == 250  # the account really is paged

    _clear_calls(local_iot_endpoint)
    second = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout)["changed"] == 0
    calls = _calls(local_iot_endpoint)
    assert calls.count("ListThings") == 1 and calls.count("DescribeThing") == 3, calls
