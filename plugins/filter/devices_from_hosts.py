# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devices_from_hosts filter: inventory hosts as fleet devices (documented in devices_from_hosts.yml)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ansible.errors import AnsibleFilterError

# The per-host variables read, without their prefix; the device keys of the fleet module.
DEVICE_KEYS = (
    "attributes",
    "thing_groups",
    "thing_type",
    "certificate",
    "certificate_pem",
    "certificate_pem_path",
    "policies",
)


def devices_from_hosts(hosts: Iterable[str], hostvars: Mapping, prefix: str = "bulk_device_") -> list[dict]:
    """One device per host: the name is the host's <prefix>name or its inventory name, then <prefix><key>."""
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Iterable):
        raise AnsibleFilterError(f"devices_from_hosts: the input must be a list of host names, got {hosts!r}")
    devices = []
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"devices_from_hosts: {host!r} is not a host of the inventory")
        variables = hostvars[host]
        device = {"name": variables.get(f"{prefix}name") or host}
        for key in DEVICE_KEYS:
            if f"{prefix}{key}" in variables:
                device[key] = variables[f"{prefix}{key}"]
        devices.append(device)
    return devices


class FilterModule:
    def filters(self):
        return {"devices_from_hosts": devices_from_hosts}
