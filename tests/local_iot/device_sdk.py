"""A device for tests: the real AWS IoT Device SDK v2 for Python (awsiotsdk, awscrt's native TLS) on the listener.

Only tests and the demo import this; the endpoint itself does not. ``dataplane_info(url)`` asks the endpoint
where its MQTT listener is; ``Device`` connects with a certificate file, a key file and the endpoint's CA file
(the stand-in for Amazon Root CA 1), to ``localhost``: the server certificate is valid for it and for every
region's ``*.iot.<region>.amazonaws.com``, which do not resolve to this machine.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import urllib.request
from typing import Any

from awscrt import mqtt
from awsiot import mqtt_connection_builder

TIMEOUT = 5.0


class DeviceRefused(Exception):
    """The endpoint refused the device (connection closed, SUBACK failure, disconnected after a publish)."""


def dataplane_info(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_local/dataplane", timeout=10) as response:
        return json.loads(response.read())


def clear_events(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_local/dataplane", method="DELETE"), timeout=10).close()


class Device:
    """One MQTT 3.1.1 connection made by awsiotsdk's mtls_from_path, with what it received."""

    def __init__(self, info: dict[str, Any], cert_file: str, key_file: str, client_id: str, **options: Any) -> None:
        self.client_id = client_id
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.retained: queue.Queue[bool] = queue.Queue()  # the retain flag of each message, in the same order
        self.interrupted = threading.Event()
        self.connection = mqtt_connection_builder.mtls_from_path(
            endpoint="localhost",
            port=info["port"],
            cert_filepath=cert_file,
            pri_key_filepath=key_file,
            ca_filepath=info["caFile"],
            client_id=client_id,
            clean_session=True,
            keep_alive_secs=30,
            on_connection_interrupted=self._on_interrupted,
            **options,  # e.g. will=mqtt.Will(...)
        )
        self.connected = False

    def _on_interrupted(self, connection: Any, error: Any, **kwargs: Any) -> None:
        self.interrupted.set()

    def _on_message(self, topic: str, payload: bytes, retain: bool = False, **kwargs: Any) -> None:
        self.messages.put((topic, payload))
        self.retained.put(retain)

    def connect(self) -> Device:
        try:
            self.connection.connect().result(TIMEOUT)
        except Exception as error:  # awscrt raises AwsCrtError (or a connection-return-code exception)
            raise DeviceRefused(f"connect refused: {error}") from error
        self.connected = True
        return self

    def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        future, _packet_id = self.connection.subscribe(topic_filter, mqtt.QoS(qos), callback=self._on_message)
        try:
            result = future.result(TIMEOUT)
        except Exception as error:
            raise DeviceRefused(f"subscribe to {topic_filter} refused: {error}") from error
        if result.get("qos") is None or int(result["qos"]) == 0x80:
            raise DeviceRefused(f"subscribe to {topic_filter} refused: SUBACK failure")
        return int(result["qos"])

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait for the PUBACK (QoS 1); DeviceRefused if the endpoint disconnects instead."""
        future, _packet_id = self.connection.publish(topic, payload, mqtt.QoS(qos), retain=retain)
        try:
            future.result(TIMEOUT)
        except Exception as error:
            raise DeviceRefused(f"publish to {topic} refused: {error}") from error
        if self.interrupted.is_set():
            raise DeviceRefused(f"publish to {topic}: the endpoint disconnected the device")

    def receive(self, timeout: float = TIMEOUT) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def disconnect(self) -> None:
        if self.connected:
            # After the endpoint dropped the device, awscrt is reconnecting: do not wait long for it.
            with contextlib.suppress(Exception):
                self.connection.disconnect().result(0.3 if self.interrupted.is_set() else TIMEOUT)
            self.connected = False

    def __enter__(self) -> Device:
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()
