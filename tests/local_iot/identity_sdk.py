"""A device doing fleet provisioning with the real AWS IoT Device SDK v2 (awsiotsdk's ``IotIdentityClient``).

Only tests and the demo import this. ``provision(info, claim_cert, claim_key, ...)`` does what the SDK's fleet
provisioning sample does: connect with the claim, subscribe to the accepted/rejected topics, ask for a certificate
(CreateKeysAndCertificate, or CreateCertificateFromCsr with a key made here that never leaves the device), then
RegisterThing with the template's parameters, and write the new certificate and key.
"""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass
from typing import Any

from awscrt import mqtt
from awsiot import iotidentity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device_sdk import Device

TIMEOUT = 5.0


class Identity:
    """awsiotsdk's fleet provisioning client on a device connection; each call waits for accepted or rejected."""

    def __init__(self, device: Device) -> None:
        self.qos = mqtt.QoS.AT_LEAST_ONCE
        self.client = iotidentity.IotIdentityClient(device.connection)
        self.answers: queue.Queue[tuple[str, Any]] = queue.Queue()

    def _subscribe(self, name: str, request: Any) -> None:
        for outcome in ("accepted", "rejected"):
            subscribe = getattr(self.client, f"subscribe_to_{name}_{outcome}")
            future, _topic = subscribe(request, self.qos, lambda response, o=outcome: self.answers.put((o, response)))
            future.result(TIMEOUT)

    def create_keys(self) -> tuple[str, Any]:
        self._subscribe("create_keys_and_certificate", iotidentity.CreateKeysAndCertificateSubscriptionRequest())
        request = iotidentity.CreateKeysAndCertificateRequest()
        self.client.publish_create_keys_and_certificate(request, self.qos).result(TIMEOUT)
        return self.answers.get(timeout=TIMEOUT)

    def create_from_csr(self, csr: str) -> tuple[str, Any]:
        self._subscribe("create_certificate_from_csr", iotidentity.CreateCertificateFromCsrSubscriptionRequest())
        request = iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr)
        self.client.publish_create_certificate_from_csr(request, self.qos).result(TIMEOUT)
        return self.answers.get(timeout=TIMEOUT)

    def register(self, template: str, token: str, parameters: dict[str, str]) -> tuple[str, Any]:
        self._subscribe("register_thing", iotidentity.RegisterThingSubscriptionRequest(template_name=template))
        request = iotidentity.RegisterThingRequest(
            template_name=template, certificate_ownership_token=token, parameters=parameters
        )
        self.client.publish_register_thing(request, self.qos).result(TIMEOUT)
        return self.answers.get(timeout=TIMEOUT)


@dataclass
class Provisioned:
    """What a device got: its thing, certificate files and id, and the answers (``rejected`` when refused)."""

    outcome: str
    thing_name: str | None = None
    certificate_id: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    device_configuration: dict[str, str] | None = None


def _write(path: str, text: str, mode: int) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _csr_and_key(common_name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def provision(
    info: dict[str, Any],
    claim_cert: str,
    claim_key: str,
    client_id: str,
    template: str,
    parameters: dict[str, str],
    directory: str,
    use_csr: bool = False,
) -> Provisioned:
    """Exchange the claim for a device certificate and a thing; files go to ``directory`` (key 0600)."""
    with Device(info, claim_cert, claim_key, client_id) as device:
        identity = Identity(device)
        key_pem = None
        if use_csr:
            csr, key_pem = _csr_and_key(client_id)
            outcome, created = identity.create_from_csr(csr)
        else:
            outcome, created = identity.create_keys()
        if outcome != "accepted":
            return Provisioned(outcome, error_code=created.error_code, error_message=created.error_message)
        outcome, registered = identity.register(template, created.certificate_ownership_token, parameters)
    if outcome != "accepted":
        return Provisioned(
            outcome,
            certificate_id=created.certificate_id,
            error_code=registered.error_code,
            error_message=registered.error_message,
        )
    os.makedirs(directory, exist_ok=True)
    name = registered.thing_name
    return Provisioned(
        outcome,
        thing_name=name,
        certificate_id=created.certificate_id,
        cert_file=_write(os.path.join(directory, f"{name}.pem.crt"), created.certificate_pem, 0o644),
        key_file=_write(os.path.join(directory, f"{name}.pem.key"), key_pem or created.private_key, 0o600),
        device_configuration=registered.device_configuration,
    )
