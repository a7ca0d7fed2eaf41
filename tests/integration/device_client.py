"""A device for the integration tests: awsiotsdk (tests/local_iot/device_sdk.py) on the files a playbook wrote.

``prove_device`` is what every provisioning way must show by a real connection: the device connects with its
own client id, subscribes to and publishes on its own topics and receives its message, and is refused its
neighbour's topics (SUBACK failure; disconnected on publish) and its neighbour's client id.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest
from harness import REPO

LOCAL_IOT = os.path.join(REPO, "tests", "local_iot")
if LOCAL_IOT not in sys.path:
    sys.path.insert(0, LOCAL_IOT)

from device_sdk import Device, DeviceRefused, clear_events, dataplane_info

ARN = "arn:aws:iot:us-east-1:123456789012"
# The roles' device policy (roles/jitp/tasks/main.yml, roles/bulk/README.md) for this account.
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"{ARN}:topic/devices/${{iot:Connection.Thing.ThingName}}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": f"{ARN}:topicfilter/devices/${{iot:Connection.Thing.ThingName}}/*",
        },
    ],
}

__all__ = [
    "DEVICE_POLICY",
    "Device",
    "DeviceRefused",
    "clear_events",
    "dataplane_info",
    "prove_device",
    "refusals",
    "refused",
]


def refused(info: dict[str, Any], cert: str, key: str, client_id: str) -> None:
    """The connection must fail (the endpoint's event says why; see ``refusals``)."""
    device = Device(info, cert, key, client_id)
    with pytest.raises(DeviceRefused):
        device.connect()
    device.disconnect()


def refusals(url: str, at_least: int = 1, timeout: float = 5.0) -> list[str]:
    """The endpoint's refusals, once there are ``at_least`` (or ``timeout`` passed): the server records a refused
    handshake on its own thread, a moment after the client has seen it fail."""
    deadline = time.monotonic() + timeout
    while True:
        reasons = [event["reason"] for event in dataplane_info(url)["events"] if event["event"] == "refused"]
        if len(reasons) >= at_least or time.monotonic() > deadline:
            return reasons
        time.sleep(0.05)


def prove_device(info: dict[str, Any], cert: str, key: str, thing: str, neighbour: str) -> None:
    """Allowed: own client id, own topics (devices/<thing>/...). Refused: the neighbour's topics and client id."""
    with Device(info, cert, key, thing) as device:
        assert device.subscribe(f"devices/{thing}/#") == 1
        with pytest.raises(DeviceRefused):
            device.subscribe(f"devices/{neighbour}/#")
        device.publish(f"devices/{thing}/telemetry", f"hello from {thing}")
        assert device.receive() == (f"devices/{thing}/telemetry", f"hello from {thing}".encode())
        with pytest.raises(DeviceRefused):  # AWS disconnects an MQTT 3.1.1 client on a denied publish
            device.publish(f"devices/{neighbour}/telemetry", b"not mine")
    refused(info, cert, key, neighbour)
