"""Fleet certificate rotation proven by devices (awsiotsdk) on the local endpoint's data plane.

Three devices, one per way a key is made: ``r-csr`` (csr, the fleet makes the new key), ``r-aws`` (aws_keys)
and ``r-dev`` (csr, the device made the new key and gives its CSR). Two playbooks, each several tasks:

1. cold fleet; the rotation requested (step 1); a run waiting for confirmation (no change,
   no mutating call);
   -> each device connects with its old certificate and with its new one;
2. the confirmations (a device -> new id file); a fresh controller's check mode shows the same stages (AWS
   decides); step 2; a run after it (no change, no mutating call);
   -> the old certificates are refused, the new ones connect; the device files are the new ones.
"""

from __future__ import annotations

import hashlib
import json
import os

import yaml
from certificate_timeline import replay
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device_client import Device, clear_events, dataplane_info, refused
from harness import control, iot_client, recap, reset_endpoint, run_playbook

ACCOUNT = "123456789012"
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"arn:aws:iot:us-east-1:{ACCOUNT}:client/${{iot:Connection.Thing.ThingName}}",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        }
    ],
}
READS = ("List", "Describe", "Get")

STEP_1 = """
- name: Rotation, step 1
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/iotfleet.provisioning.aws:
      endpoint_url: "{{ endpoint }}"
      region: us-east-1
  tasks:
    - name: Cold fleet
      iotfleet.provisioning.fleet:
        devices: "{{ devices }}"
        fleet_group: rotation-fleet
        output_dir: "{{ out }}"
    - name: The request, made after the certificates it rotates
      ansible.builtin.set_fact:
        rule:
          devices: [r-csr, r-aws, r-dev]
          requested_on: "{{ now(utc=true).isoformat() }}"
    - name: Keep the request (it stays in git)
      ansible.builtin.copy:
        content: "{{ rule | to_json }}"
        dest: "{{ work }}/rule.json"
        mode: "0644"
    - name: Step 1
      iotfleet.provisioning.fleet:
        devices: "{{ devices }}"
        fleet_group: rotation-fleet
        output_dir: "{{ out }}"
        rotation: "{{ rule }}"
        report_path: "{{ work }}/report1.json"
      register: step1
    - name: The calls so far
      ansible.builtin.uri:
        url: "{{ endpoint }}/_local/calls"
      register: before
    - name: Waiting for confirmation
      iotfleet.provisioning.fleet:
        devices: "{{ devices }}"
        fleet_group: rotation-fleet
        output_dir: "{{ out }}"
        rotation: "{{ rule }}"
      register: waiting
    - name: The calls of the waiting run
      ansible.builtin.uri:
        url: "{{ endpoint }}/_local/calls"
      register: calls
    - name: Results
      vars:
        seen: "{{ before.json.calls | length }}"
      ansible.builtin.copy:
        content: "{{ {'step1': step1, 'waiting': waiting, 'calls': calls.json.calls[seen:]} | to_json }}"
        dest: "{{ work }}/step1.json"
        mode: "0644"
"""

STEP_2 = """
- name: Rotation, step 2
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/iotfleet.provisioning.aws:
      endpoint_url: "{{ endpoint }}"
      region: us-east-1
  tasks:
    - name: A fresh controller sees the same stages (AWS decides)
      iotfleet.provisioning.fleet:
        devices: "{{ devices }}"
        fleet_group: rotation-fleet
        output_dir: "{{ work }}/fresh"
        rotation: "{{ rule | combine({'confirmed_file': confirmed}) }}"
        certificate_expiry:
          warn_within_days: 36500
      check_mode: true
      register: fresh
    - name: Step 2
      iotfleet.provisioning.fleet:
        devices: "{{ devices }}"
        fleet_group: rotation-fleet
        output_dir: "{{ out }}"
        rotation: "{{ rule | combine({'confirmed_file': confirmed}) }}"
        report_path: "{{ work }}/report2.json"
      register: step2
    - name: The calls so far
      ansible.builtin.uri:
        url: "{{ endpoint }}/_local/calls"
      register: before
    - name: Again, the request and the confirmations still in git
      iotfleet.provisioning.fleet:
        devices: "{{ devices }}"
        fleet_group: rotation-fleet
        output_dir: "{{ out }}"
        rotation: "{{ rule | combine({'confirmed_file': confirmed}) }}"
      register: after
    - name: The calls of the run after
      ansible.builtin.uri:
        url: "{{ endpoint }}/_local/calls"
      register: calls
    - name: Results
      vars:
        seen: "{{ before.json.calls | length }}"
      ansible.builtin.copy:
        content: "{{ {'fresh': fresh, 'step2': step2, 'after': after, 'calls': calls.json.calls[seen:]} | to_json }}"
        dest: "{{ work }}/step2.json"
        mode: "0644"
"""


def _playbook(text: str, name: str, endpoint: str, collections_path: str, work: str, variables: dict) -> dict:
    path = os.path.join(work, f"{name}.yml")
    with open(path, "w") as handle:
        handle.write(text)
    result = run_playbook(path, endpoint, collections_path, work, extra_vars=variables)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert recap(result.stdout)["failed"] == 0
    with open(os.path.join(work, f"{name}.json")) as handle:
        return json.load(handle)


def _device_csr(work: str) -> tuple[str, str]:
    """The r-dev device's new key (it stays with the device: here, outside output_dir) and its CSR."""
    key = ec.generate_private_key(ec.SECP384R1())
    key_path, csr_path = os.path.join(work, "r-dev-new.key"), os.path.join(work, "r-dev.csr")
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    os.chmod(key_path, 0o600)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r-dev")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    with open(csr_path, "wb") as handle:
        handle.write(csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path


def _certificate_id(path: str) -> str:
    with open(path, "rb") as handle:
        certificate = x509.load_pem_x509_certificate(handle.read())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _connects(info: dict, cert: str, key: str, thing: str) -> None:
    with Device(info, cert, key, thing) as device:
        assert device.connected


def _active(iot, thing: str) -> list[str]:
    ids = [p.rsplit("/", 1)[1] for p in iot.list_thing_principals(thingName=thing)["principals"]]
    statuses = {i: iot.describe_certificate(certificateId=i)["certificateDescription"]["status"] for i in ids}
    return sorted(i for i, status in statuses.items() if status == "ACTIVE")


def test_fleet_rotation_devices_connect_with_old_and_new_then_only_new(local_iot_endpoint, collections_path, tmp_path):
    endpoint, work = local_iot_endpoint, str(tmp_path)
    reset_endpoint(endpoint)
    clear_events(endpoint)
    iot = iot_client(endpoint)
    iot.create_policy(policyName="rotation-policy", policyDocument=json.dumps(DEVICE_POLICY))
    new_key, csr_path = _device_csr(work)
    out = os.path.join(work, "out")
    devices = [
        {"name": "r-csr", "certificate": "csr", "policies": ["rotation-policy"]},
        {"name": "r-aws", "certificate": "aws_keys", "policies": ["rotation-policy"]},
        {"name": "r-dev", "certificate": "csr", "policies": ["rotation-policy"], "rotation_csr_path": csr_path},
        # Not rotated: its billing group (issue 16), moved from the one it is in (the endpoint refuses an add while
        # the thing is in another billing group).
        {"name": "r-bill", "billing_group": "bill-a"},
    ]
    for group in ("bill-a", "bill-old"):
        iot.create_billing_group(billingGroupName=group)
    iot.create_thing(thingName="r-bill")
    iot.add_thing_to_billing_group(billingGroupName="bill-old", thingName="r-bill")
    names = [d["name"] for d in devices if d["name"] != "r-bill"]
    variables = {"endpoint": endpoint, "devices": devices, "out": out, "work": work}

    one = _playbook(STEP_1, "step1", endpoint, collections_path, work, variables)
    planned = {d["name"]: d for d in one["step1"]["plan"]["devices"]}
    assert {n: planned[n]["changes"] for n in names} == {n: ["rotate: issue new certificate"] for n in names}
    assert one["step1"]["changed"] is True
    assert one["step1"]["summary"]["updated"] == 3  # r-bill changed in the cold run (its own task)
    assert one["waiting"]["changed"] is False
    assert one["calls"].count("ListThingPrincipals") == 3  # the waiting run's own calls, reads only
    assert one["calls"].count("ListThingsInBillingGroup") == 1 and "DescribeThing" not in one["calls"]
    assert [c for c in one["calls"] if not c.startswith(READS)] == []
    assert one["waiting"]["plan"]["rotation"]["counts"] == {"issue": 0, "waiting": 3, "retire": 0, "promote": 0}

    assert iot.describe_thing(thingName="r-bill")["billingGroupName"] == "bill-a"
    info = dataplane_info(endpoint)
    old, new = {}, {}
    for name in names:
        main, nxt = os.path.join(out, name), os.path.join(out, name, "next")
        old[name] = _certificate_id(os.path.join(main, "certificate.pem.crt"))
        new[name] = _certificate_id(os.path.join(nxt, "certificate.pem.crt"))
        assert _active(iot, name) == sorted([old[name], new[name]])
        waiting = {d["name"]: d for d in one["waiting"]["plan"]["rotation"]["devices"]}[name]
        assert waiting["text"] == f"rotate: waiting for confirmation of {new[name]}"
        key = new_key if name == "r-dev" else os.path.join(nxt, "private.pem.key")
        if name != "r-dev":
            assert oct(os.stat(key).st_mode & 0o777) == "0o600"
        assert not os.path.exists(os.path.join(nxt, "private.pem.key")) or name != "r-dev"
        # During the rotation: the old certificate and the new one both connect.
        _connects(info, os.path.join(main, "certificate.pem.crt"), os.path.join(main, "private.pem.key"), name)
        _connects(info, os.path.join(nxt, "certificate.pem.crt"), key, name)
    with open(os.path.join(out, "r-csr", "next", "private.pem.key"), "rb") as handle:
        assert serialization.load_pem_private_key(handle.read(), None).curve.name == "secp256r1"
    old_files = {n: (os.path.join(work, f"{n}-old.crt"), os.path.join(work, f"{n}-old.key")) for n in names}
    for name, (cert, key) in old_files.items():
        os.link(os.path.join(out, name, "certificate.pem.crt"), cert)
        os.link(os.path.join(out, name, "private.pem.key"), key)

    # The confirmations a presence-event rule would write: device -> the NEW certificate's id.
    confirmed = os.path.join(work, "confirmed.yml")
    with open(confirmed, "w") as handle:
        yaml.safe_dump(new, handle)
    with open(os.path.join(work, "rule.json")) as handle:
        rule = json.load(handle)
    two = _playbook(
        STEP_2, "step2", endpoint, collections_path, work, {**variables, "rule": rule, "confirmed": confirmed}
    )
    # No files there: the dates were read with DescribeCertificate (a rule needs them), of the OLD certificates.
    assert two["fresh"]["plan"]["expiry"]["validity"] == {"DescribeCertificate": 3}
    soonest = {e["name"]: e for e in two["fresh"]["plan"]["expiry"]["soonest"]}
    assert {n: soonest[n]["certificate_id"] for n in names} == old
    warning = next(w for w in two["fresh"]["warnings"] if w.startswith("certificate_expiry"))
    assert warning.startswith("certificate_expiry: 3 device(s) have a certificate expiring within 36500 days")
    assert f"r-aws ({old['r-aws']}, expires " in warning and "rotation: rotate: retire" in warning
    fresh = {d["name"]: d for d in two["fresh"]["plan"]["devices"]}
    assert {n: fresh[n]["changes"] for n in names} == {n: [f"rotate: retire {old[n]}"] for n in names}
    diff = {d["before_header"]: d for d in two["fresh"]["diff"]}["device r-aws"]
    assert diff["before"]["rotation"] == f"waiting for confirmation of {new['r-aws']}"
    assert diff["after"]["rotation"] == f"rotate: retire {old['r-aws']}"
    assert two["step2"]["changed"] is True and two["step2"]["summary"]["updated"] == 3
    assert two["after"]["changed"] is False
    assert two["calls"].count("ListThingPrincipals") == 3
    assert [c for c in two["calls"] if not c.startswith(READS)] == []
    with open(os.path.join(work, "report2.json")) as handle:
        report = {row["name"]: row for row in json.load(handle)["devices"]}
    assert report["r-csr"]["rotation"] == f"rotate: done, {new['r-csr']} in use, retired {old['r-csr']}"

    for name in names:
        assert _active(iot, name) == [new[name]]
        main = os.path.join(out, name)
        assert _certificate_id(os.path.join(main, "certificate.pem.crt")) == new[name]
        assert not os.path.exists(os.path.join(main, "next"))
        # After step 2: the old certificate is refused, the new one connects.
        refused(info, *old_files[name], name)
        key = new_key if name == "r-dev" else os.path.join(main, "private.pem.key")
        _connects(info, os.path.join(main, "certificate.pem.crt"), key, name)
    assert not os.path.exists(os.path.join(out, "r-dev", "private.pem.key"))  # its key is on the device
    remaining = {c["certificateId"] for c in iot.list_certificates()["certificates"]}
    assert remaining == set(new.values())
    # From the endpoint's record of every state change since the reset: no thing was ever without an ACTIVE
    # certificate once it had one.
    timeline = replay({"status": {}, "attached": {}}, control(endpoint, "/_local/calls")["effects"])
    assert timeline["violations"] == []
    assert timeline["things"] == 3 and timeline["least_active"] == 1
    assert timeline["final_active"] == {n: [new[n]] for n in names}
