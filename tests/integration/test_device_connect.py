"""Every way the collection provisions a device, proven by a real device: awsiotsdk on the files it wrote.

One playbook provisions nine devices, each one way (the certificate module with AWS keys, with a CSR, with an
existing PEM; register_thing; a thing registration task; the single_thing role by modules and by template; the
fleet module with AWS keys and with a CSR), all with the
roles' least-privilege policy. Each device then connects to the endpoint's MQTT listener with exactly the
certificate and key files the run wrote and the root CA the role put beside them, publishes and receives on
its own topics, and is refused its neighbour's topics and client id. A second playbook changes certificates
the way a user would (status INACTIVE, REVOKED, a policy detached) and issues a certificate from a local CA that
was never registered; each of those is refused in its own test.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device_client import DEVICE_POLICY, clear_events, dataplane_info, prove_device, refusals, refused
from harness import iot_client, recap, reset_endpoint, run_playbook

POLICY = "device-least-privilege"


HEADER = """
- name: Devices for the data plane
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/iotfleet.provisioning.aws:
      endpoint_url: "{{ endpoint }}"
      region: us-east-1
      access_key: testing
      secret_key: testing
  tasks:
"""

PROVISION = (
    HEADER
    + """
    - name: The least-privilege device policy
      iotfleet.provisioning.policy: {name: "{{ policy }}", document: "{{ policy_document }}"}

    - name: Certificate module, AWS-generated keys
      iotfleet.provisioning.certificate:
        create_keys: true
        private_key_path: "{{ out }}/dev-keys/private.pem.key"
        certificate_path: "{{ out }}/dev-keys/certificate.pem.crt"
        status: ACTIVE
        thing: dev-keys
        policies: ["{{ policy }}"]
      register: keys_certificate

    - name: The device's key and CSR
      iotfleet.provisioning.csr:
        private_key_path: "{{ out }}/dev-csr/private.pem.key"
        subject: {common_name: dev-csr}
      register: csr

    - name: Certificate module, from the CSR
      iotfleet.provisioning.certificate:
        csr: "{{ csr.csr }}"
        certificate_path: "{{ out }}/dev-csr/certificate.pem.crt"
        status: ACTIVE
        thing: dev-csr
        policies: ["{{ policy }}"]

    - name: Certificate module, an existing PEM
      iotfleet.provisioning.certificate:
        certificate_pem_path: "{{ out }}/dev-pem/certificate.pem.crt"
        status: ACTIVE
        thing: dev-pem
        policies: ["{{ policy }}"]

    - name: register_thing with a template
      iotfleet.provisioning.register_thing:
        template_body:
          Parameters: {ThingName: {Type: String}, CSR: {Type: String}}
          Resources:
            thing: {Type: "AWS::IoT::Thing", Properties: {ThingName: {Ref: ThingName}}}
            certificate:
              Type: "AWS::IoT::Certificate"
              Properties: {CertificateSigningRequest: {Ref: CSR}, Status: ACTIVE}
            policy: {Type: "AWS::IoT::Policy", Properties: {PolicyName: "{{ policy }}"}}
        parameters: {ThingName: dev-reg}
        private_key_path: "{{ out }}/dev-reg/private.pem.key"
        certificate_path: "{{ out }}/dev-reg/certificate.pem.crt"

    - name: The fleet module, one device per certificate source it makes
      iotfleet.provisioning.fleet:
        fleet_group: data-plane-fleet
        output_dir: "{{ out }}/fleet"
        devices:
          - {name: dev-fleet-keys, certificate: aws_keys, policies: ["{{ policy }}"]}
          - {name: dev-fleet-csr, certificate: csr, policies: ["{{ policy }}"]}

    - name: A bulk thing registration task (one device)
      iotfleet.provisioning.thing_registration_task:
        template_body:
          Parameters: {ThingName: {Type: String}, CSR: {Type: String}}
          Resources:
            thing: {Type: "AWS::IoT::Thing", Properties: {ThingName: {Ref: ThingName}}}
            certificate:
              Type: "AWS::IoT::Certificate"
              Properties: {CertificateSigningRequest: {Ref: CSR}, Status: ACTIVE}
            policy: {Type: "AWS::IoT::Policy", Properties: {PolicyName: "{{ policy }}"}}
        devices: [{ThingName: dev-task}]
        csr_parameter: CSR
        output_dir: "{{ out }}/task"
        bucket: "{{ bucket }}"
        role_arn: "{{ role_arn }}"
        poll_interval: 1
        wait_timeout: 60

    - name: The single_thing role, by modules and by template
      ansible.builtin.include_role:
        name: iotfleet.provisioning.single_thing
      vars:
        single_thing_name: "{{ item.name }}"
        single_thing_method: "{{ item.method }}"
        single_thing_certificate_source: "{{ item.source }}"
        single_thing_policy_name: "{{ policy }}"
        single_thing_output_dir: "{{ out }}/{{ item.name }}"
        single_thing_controller_dir: "{{ out }}/controller/{{ item.name }}"
        single_thing_root_ca_src: "{{ root_ca }}"
      loop:
        - {name: dev-role-modules, method: modules, source: aws_keys}
        - {name: dev-role-template, method: template, source: device_csr}

    - name: policy_check agrees with the connections (TestAuthorization, same evaluator as the listener)
      iotfleet.provisioning.policy_check: &policy_check
        endpoint_url: "{{ endpoint }}"
        region: us-east-1
        access_key: testing
        secret_key: testing
        principal: "{{ keys_certificate.certificate.certificate_id }}"
        client_id: dev-keys
        checks:
          - {action: connect, resource: client/dev-keys}
          - {action: publish, resource: topic/devices/dev-keys/telemetry}
          - {action: subscribe, resource: "topicfilter/devices/dev-keys/#"}
          - {action: receive, resource: topic/devices/dev-keys/telemetry}
          - {action: connect, resource: client/dev-other, expect: denied}
          - {action: publish, resource: topic/devices/dev-other/telemetry, expect: implicit_deny}
      register: least_privilege

    - name: policy_check fails when an expectation is wrong
      iotfleet.provisioning.policy_check:
        <<: *policy_check
        checks:
          - {action: subscribe, resource: "topicfilter/devices/dev-other/#"}
      register: wrong_expectation
      ignore_errors: true

    - name: The answers
      ansible.builtin.assert:
        that:
          - least_privilege is not changed and least_privilege.failed_checks == 0
          - least_privilege.results | map(attribute='decision') | list == ['ALLOWED'] * 4 + ['IMPLICIT_DENY'] * 2
          - wrong_expectation is failed and wrong_expectation.failed_checks == 1
          - "'expected allowed, AWS IoT answered IMPLICIT_DENY' in wrong_expectation.msg"
"""
)

CHANGE = (
    HEADER
    + """
    - name: A certificate deactivated
      iotfleet.provisioning.certificate: {certificate_id: "{{ ids['dev-keys'] }}", status: INACTIVE}

    - name: A certificate revoked
      iotfleet.provisioning.certificate: {certificate_id: "{{ ids['dev-csr'] }}", status: REVOKED}

    - name: A certificate detached from its policy
      iotfleet.provisioning.policy_attachment: {policy: "{{ policy }}", target: "{{ ids['dev-pem'] }}", state: absent}

    - name: A local CA that is never registered in AWS IoT
      iotfleet.provisioning.local_ca:
        private_key_path: "{{ out }}/rogue-ca/ca.key"
        certificate_path: "{{ out }}/rogue-ca/ca.pem"
        subject: {common_name: Unregistered CA}

    - name: A device certificate it signs
      iotfleet.provisioning.device_certificate:
        ca_certificate_path: "{{ out }}/rogue-ca/ca.pem"
        ca_private_key_path: "{{ out }}/rogue-ca/ca.key"
        private_key_path: "{{ out }}/rogue/private.pem.key"
        certificate_path: "{{ out }}/rogue/certificate.pem.crt"
        chain_path: "{{ out }}/rogue/chain.pem"
        subject: {common_name: dev-rogue}
"""
)


def _existing_pem(directory: str) -> None:
    """The user's own key and self-signed certificate for the existing-PEM case."""
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-pem")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    with open(os.path.join(directory, "certificate.pem.crt"), "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(directory, "private.pem.key"), "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def _run(playbook: str, name: str, endpoint: str, collections_path: str, work: str, variables: dict[str, Any]) -> None:
    path = os.path.join(work, f"{name}.yml")
    with open(path, "w") as handle:
        handle.write(playbook)
    result = run_playbook(path, endpoint, collections_path, work, extra_vars=variables)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert recap(result.stdout)["failed"] == 0


def _provision(endpoint: str, collections_path: str, work: str) -> dict[str, Any]:
    """The first playbook's outcome: the device files, the data plane's whereabouts, certificate ids by thing."""
    reset_endpoint(endpoint)
    clear_events(endpoint)
    out = os.path.join(work, "out")
    _existing_pem(os.path.join(out, "dev-pem"))
    # Set-up that is not what is proven (each module task costs seconds): directories and the certificate
    # module's things.
    for folder in ("dev-keys", "dev-csr", "dev-reg", "rogue-ca", "rogue"):
        os.makedirs(os.path.join(out, folder), mode=0o700, exist_ok=True)
    iot = iot_client(endpoint)
    for thing in ("dev-keys", "dev-csr", "dev-pem"):
        iot.create_thing(thingName=thing)
    # The registration task's input bucket and the role AWS IoT assumes (what the task needs, not what is proven).
    iot_client(endpoint, "s3").create_bucket(Bucket="device-connect-input")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    role = iot_client(endpoint, "iam").create_role(
        RoleName="device-connect-registration", AssumeRolePolicyDocument=json.dumps(trust)
    )
    info = dataplane_info(endpoint)
    variables = {
        "endpoint": endpoint,
        "out": out,
        "policy": POLICY,
        "policy_document": DEVICE_POLICY,
        "root_ca": info["caFile"],
        "bucket": "device-connect-input",
        "role_arn": role["Role"]["Arn"],
    }
    _run(PROVISION, "provision", endpoint, collections_path, work, variables)
    ids = {}
    for thing in ("dev-keys", "dev-csr", "dev-pem"):
        (principal,) = iot.list_thing_principals(thingName=thing)["principals"]
        ids[thing] = principal.split("/")[-1]
    return {"out": out, "info": info, "ids": ids, "work": work, "variables": variables}


def files(provisioned: dict[str, Any], thing: str) -> tuple[str, str]:
    folder = os.path.join(provisioned["out"], "fleet", thing) if thing.startswith("dev-fleet") else None
    folder = os.path.join(provisioned["out"], "task", thing) if thing == "dev-task" else folder
    folder = folder or os.path.join(provisioned["out"], thing)
    return os.path.join(folder, "certificate.pem.crt"), os.path.join(folder, "private.pem.key")


MODULE_DEVICES = ("dev-keys", "dev-csr", "dev-pem", "dev-reg", "dev-task", "dev-fleet-keys", "dev-fleet-csr")
ROLE_DEVICES = ("dev-role-modules", "dev-role-template")


def _prove_role_device(provisioned: dict[str, Any], thing: str) -> None:
    with open(os.path.join(provisioned["out"], thing, "device.json")) as handle:
        settings = json.load(handle)
    # The device's own settings; only the host and port are the local listener's (DescribeEndpoint's host name
    # does not resolve here), and its root CA is the endpoint's stand-in the role copied.
    with open(settings["root_ca"]) as copied, open(provisioned["info"]["caFile"]) as original:
        assert copied.read() == original.read()
    info = {**provisioned["info"], "caFile": settings["root_ca"]}
    prove_device(info, settings["certificate"], settings["private_key"], settings["thing_name"], "dev-keys")


def _as(thing: str, proof: Any, *args: Any) -> None:
    """Run one device's proof; a failure names the device (all devices share one test, see below)."""
    try:
        proof(*args)
    except Exception as error:  # an assertion or a refusal
        pytest.fail(f"{thing}: {type(error).__name__}: {error}")


# One test for the whole module: its two playbooks cost tens of seconds, and pytest-xdist's load scheduling
# would run a module-scoped set-up once per worker. Each device and each refusal is still asserted on its own,
# with its name in the failure; tests/local_iot/test_dataplane.py has each refusal as its own test.
def test_every_way_of_provisioning_connects_and_changed_certificates_are_refused(
    local_iot_endpoint: str, collections_path: str, tmp_path: Any
) -> None:
    provisioned = _provision(local_iot_endpoint, collections_path, str(tmp_path))
    # The devices are independent (each its own client id; a neighbour's id is refused before it is a session),
    # so they prove themselves side by side: a few seconds instead of one per device.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        proofs = [
            pool.submit(_as, thing, prove_device, provisioned["info"], *files(provisioned, thing), thing, "dev-other")
            for thing in MODULE_DEVICES
        ]
        proofs += [pool.submit(_as, thing, _prove_role_device, provisioned, thing) for thing in ROLE_DEVICES]
        for proof in proofs:
            proof.result()

    # The second playbook: INACTIVE, REVOKED, a policy detached, and a certificate of a CA never registered.
    variables = {**provisioned["variables"], "ids": provisioned["ids"]}
    _run(CHANGE, "change", local_iot_endpoint, collections_path, provisioned["work"], variables)
    ids, info = provisioned["ids"], provisioned["info"]
    expected = {
        "dev-keys": f"certificate {ids['dev-keys']} is INACTIVE; only an ACTIVE certificate connects",
        "dev-csr": f"certificate {ids['dev-csr']} is REVOKED; only an ACTIVE certificate connects",
        "dev-pem": f"iot:Connect on client/dev-pem IMPLICIT_DENY (certificate {ids['dev-pem']})",
    }
    for thing, reason in expected.items():
        clear_events(local_iot_endpoint)
        _as(thing, refused, info, *files(provisioned, thing), thing)
        assert refusals(local_iot_endpoint) == [reason], thing
    clear_events(local_iot_endpoint)
    rogue = os.path.join(provisioned["out"], "rogue")
    _as("dev-rogue", refused, info, os.path.join(rogue, "chain.pem"), os.path.join(rogue, "private.pem.key"), "r")
    (reason,) = refusals(local_iot_endpoint)
    assert reason.startswith("TLS handshake failed"), reason
