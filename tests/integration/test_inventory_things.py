"""The iotfleet.provisioning.things inventory plugin, run by ansible-inventory against the local endpoint.

One registry of a few thousand things (seeded through /_local/registry/seed: one request, not thousands), read
by four ansible-inventory runs that each assert several things: a query while fleet indexing is off fails and
names fleet_indexing; --list with every group kind, compose, keyed_groups and groups, and the paging of the reads;
--list with every filter, certificates, strict and the connection from the environment; --graph from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import ansible_env, control, iot_client, reset_endpoint

THINGS = 2400
BIN = os.path.dirname(sys.executable)


def _seed(url: str) -> dict[str, str]:
    iot = iot_client(url)
    iot.create_thing_type(thingTypeName="gateway")
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing_group(thingGroupName="site")
    iot.create_thing_group(thingGroupName="site-lyon", parentGroupName="site")
    iot.create_thing_group(thingGroupName="lab")
    iot.create_billing_group(billingGroupName="bill-a")
    things = []
    for i in range(THINGS):
        item = {
            "thingName": f"dev-{i:04d}",
            "thingTypeName": "gateway" if i % 2 == 0 else "sensor",
            "attributes": {"site": "lyon" if i % 3 == 0 else "paris", "fw": str(i % 4)},
        }
        item["thingGroups"] = ["site-lyon"] if i % 3 == 0 else (["lab"] if i % 7 == 0 else [])
        if i % 5 == 0:
            item["billingGroup"] = "bill-a"
        things.append(item)
    things.append({"thingName": "bare:thing"})  # no type, no attributes, no group
    answer = control(url, "/_local/registry/seed", "POST", {"region": "us-east-1", "things": things})
    assert answer == {"created": THINGS + 1}
    # Certificates on three gateways of Lyon with fw 0 (dev-0000, dev-0012, dev-0024): ACTIVE, INACTIVE, none.
    certs = {}
    for name, status in (("dev-0000", "ACTIVE"), ("dev-0012", "INACTIVE")):
        cert = iot.create_keys_and_certificate(setAsActive=status == "ACTIVE")
        if status == "INACTIVE":
            iot.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
        iot.attach_thing_principal(thingName=name, principal=cert["certificateArn"])
        certs[name] = cert["certificateId"]
    return certs


def _inventory(tmp_path: Path, env: dict[str, str], name: str, config: str, *args: str):
    path = tmp_path / f"{name}.iot_things.yml"
    path.write_text(config)
    return subprocess.run(
        [os.path.join(BIN, "ansible-inventory"), "-i", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _plain(value):
    """ansible-inventory --list marks values from the registry unsafe ({"__ansible_unsafe": ...}): unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _calls(url: str) -> list[str]:
    return control(url, "/_local/calls")["calls"]


def test_inventory_things(local_iot_endpoint: str, collections_path: str, tmp_path: Path) -> None:
    url = local_iot_endpoint
    reset_endpoint(url)
    certs = _seed(url)
    env = ansible_env(url, collections_path, str(tmp_path))
    env["ANSIBLE_INVENTORY_ENABLED"] = "iotfleet.provisioning.things"
    env["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] = "true"
    iot = iot_client(url)

    # 1. A query needs fleet indexing: refused before any search, with the module that turns it on.
    query_only = "plugin: iotfleet.provisioning.things\nendpoint_url: {url}\nquery: 'attributes.site:lyon'\n"
    refused = _inventory(tmp_path, env, "query", query_only.format(url=url), "--list")
    assert refused.returncode != 0
    assert "iotfleet.provisioning.fleet_indexing" in refused.stderr, refused.stderr
    assert "SearchIndex" not in _calls(url)

    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})
    iot.create_dynamic_thing_group(thingGroupName="fw-three", queryString="attributes.fw:3")

    # 2. Everything, every group kind, constructed; the connection from options (aliases), not the environment.
    control(url, "/_local/calls", "DELETE")
    full = f"""
plugin: iotfleet.provisioning.things
aws_endpoint_url: {url}
aws_region: us-east-1
aws_access_key_id: testing
aws_secret_access_key: testing
group_by: [thing_groups, thing_type, billing_group]
compose:
  site_upper: iot_attributes.site | upper
keyed_groups:
  - key: iot_attributes.fw
    prefix: fw
groups:
  in_lyon: "'site-lyon' in iot_thing_groups"
"""
    listed = _inventory(tmp_path, {**env, "AWS_REGION": "eu-west-1"}, "full", full, "--list")
    assert listed.returncode == 0, listed.stderr
    raw = json.loads(listed.stdout)
    # Registry data is never templated: an attribute value such as "{{ lookup(...) }}" stays text.
    assert raw["_meta"]["hostvars"]["dev-0003"]["iot_attributes"]["site"] == {"__ansible_unsafe": "lyon"}
    data = _plain(raw)
    hostvars = data["_meta"]["hostvars"]
    assert len(hostvars) == THINGS + 1
    assert hostvars["dev-0003"] == {
        "iot_thing_name": "dev-0003",
        "iot_thing_arn": "arn:aws:iot:us-east-1:123456789012:thing/dev-0003",
        "iot_thing_type": "sensor",
        "iot_attributes": {"site": "lyon", "fw": "3"},
        "iot_version": 1,
        "iot_thing_groups": ["site-lyon"],
        "iot_dynamic_thing_groups": ["fw-three"],
        "iot_billing_group": None,
        "site_upper": "LYON",
    }
    assert hostvars["bare:thing"]["iot_thing_type"] is None and hostvars["bare:thing"]["iot_attributes"] == {}
    assert hostvars["dev-0005"]["iot_billing_group"] == "bill-a"
    assert data["thing_group_site"]["children"] == ["thing_group_site_lyon"]
    lyon = set(data["thing_group_site_lyon"]["hosts"])
    assert lyon == {f"dev-{i:04d}" for i in range(0, THINGS, 3)}
    assert set(data["in_lyon"]["hosts"]) == lyon
    assert len(data["thing_group_lab"]["hosts"]) == len([i for i in range(THINGS) if i % 7 == 0 and i % 3])
    assert set(data["thing_group_fw_three"]["hosts"]) == {f"dev-{i:04d}" for i in range(3, THINGS, 4)}
    assert len(data["thing_type_gateway"]["hosts"]) == THINGS // 2
    assert len(data["billing_group_bill_a"]["hosts"]) == THINGS // 5
    assert len(data["fw_0"]["hosts"]) == THINGS // 4
    calls = _calls(url)
    # Pages of 250 (the endpoint's default page is 25): 2,401 things are 10 ListThings calls, not 97.
    assert calls.count("ListThings") == 10
    assert "ListThingGroupsForThing" not in calls and "DescribeThing" not in calls
    assert "ListThingPrincipals" not in calls  # certificates were not asked for

    # 3. Every filter at once, certificates, strict, and the connection from the environment (AWS_REGION before
    #    AWS_DEFAULT_REGION, as the modules); cached.
    cache_dir = tmp_path / "cache"
    filtered = f"""
plugin: iotfleet.provisioning.things
thing_groups: [site]
thing_types: [gateway]
attributes:
  fw: "0"
query: "thingName:dev-00*"
certificates: true
strict: true
compose:
  first_cert_status: (iot_certificates | first).status if iot_certificates else 'none'
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: {cache_dir}
"""
    env_connection = {**env, "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "us-east-1"}
    control(url, "/_local/calls", "DELETE")
    selected = _inventory(tmp_path, env_connection, "filtered", filtered, "--list")
    assert selected.returncode == 0, selected.stderr
    chosen = _plain(json.loads(selected.stdout))["_meta"]["hostvars"]
    # Lyon (site-lyon, a child of site: i % 3 == 0), gateways (even), fw 0 (i % 4 == 0), names dev-00xx: i < 100.
    assert sorted(chosen) == [f"dev-{i:04d}" for i in range(0, 100, 12)]
    assert chosen["dev-0000"]["iot_certificates"] == [
        {
            "certificate_id": certs["dev-0000"],
            "certificate_arn": f"arn:aws:iot:us-east-1:123456789012:cert/{certs['dev-0000']}",
            "status": "ACTIVE",
        }
    ]
    assert chosen["dev-0012"]["first_cert_status"] == "INACTIVE"
    assert chosen["dev-0024"]["iot_certificates"] == [] and chosen["dev-0024"]["first_cert_status"] == "none"
    calls = _calls(url)
    assert calls.count("ListThingPrincipals") == len(chosen)  # one per selected thing, not per thing listed
    assert "SearchIndex" in calls

    # 4. From the cache: a thing deleted since is still there, and nothing is read from AWS.
    iot.delete_thing(thingName="dev-0036")
    control(url, "/_local/calls", "DELETE")
    cached = _inventory(tmp_path, env_connection, "filtered", filtered, "--graph")
    assert cached.returncode == 0, cached.stderr
    assert "dev-0036" in cached.stdout and "dev-0048" in cached.stdout
    assert _calls(url) == []
    reset_endpoint(url)
