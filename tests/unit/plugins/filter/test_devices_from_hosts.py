"""The devices_from_hosts filter: inventory hosts as fleet devices."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.provisioning.plugins.filter.devices_from_hosts import devices_from_hosts

HOSTVARS = {
    "sensor-a": {"bulk_device_name": "dev-a", "bulk_device_attributes": {"serial": "1"}, "ansible_host": "10.0.0.1"},
    "dev-b": {
        "bulk_device_thing_groups": ["line-b"],
        "bulk_device_policies": ["p"],
        "bulk_device_certificate": "aws_keys",
        "bulk_device_thing_type": "sensor",
    },
    "dev-c": {"fleet_name": "renamed-c", "fleet_attributes": {"k": "v"}},
}


def test_name_defaults_to_the_host_and_only_defined_keys_are_set():
    assert devices_from_hosts(["sensor-a", "dev-b"], HOSTVARS) == [
        {"name": "dev-a", "attributes": {"serial": "1"}},
        {
            "name": "dev-b",
            "thing_groups": ["line-b"],
            "policies": ["p"],
            "certificate": "aws_keys",
            "thing_type": "sensor",
        },
    ]


def test_prefix_is_configurable():
    assert devices_from_hosts(["dev-c"], HOSTVARS, prefix="fleet_") == [{"name": "renamed-c", "attributes": {"k": "v"}}]


def test_unknown_host_and_bad_input_are_refused():
    with pytest.raises(AnsibleFilterError, match="'ghost' is not a host of the inventory"):
        devices_from_hosts(["ghost"], HOSTVARS)
    with pytest.raises(AnsibleFilterError, match="must be a list of host names"):
        devices_from_hosts("sensor-a", HOSTVARS)
