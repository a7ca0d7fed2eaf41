"""A JITP CA rotation through playbooks/jitp.yml (jitp_cas), proven by devices on the data plane (awsiotsdk).

One endpoint state, one sequence of runs as a GitOps pipeline would make them over days:

1. ``ca-1`` active: dev-a and dev-b get certificates from it; the first connection of each is dropped while JITP
   provisions it (the registration event names its thing), the next one may use its own topics only.
2. ``ca-1`` retiring, ``ca-2`` active: the role's device certificates come from ca-2 (dev-a's and dev-b's again,
   for the same keys; dev-c new). dev-c is provisioned while ca-1 is still registered; dev-a's old certificate
   (what the device in the field still has) still connects; a new device of ca-1 is refused. The same run again
   changes nothing and makes no mutating call.
3. ``ca-1`` retired while the old certificates are ACTIVE: a check run predicts the refusal without a mutating
   call; the run refuses to delete it (the count, no DeleteCACertificate call); ca-1 is INACTIVE now and its
   registered devices still connect (as AWS documents).
4. The devices connect with their ca-2 certificates and their old ones are deactivated; ca-1 is deleted; a
   device signed by ca-1 is refused, ca-2's devices connect.
5. The active CA's files lost (a fresh runner without the state volume): the run fails naming the registered CA
   instead of registering a new one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device_client import Device, clear_events, dataplane_info, prove_device, refused
from harness import REPO, control, iot_client, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "jitp.yml")
TEMPLATE = "jitp-rotation"


def mutating_calls(url: str) -> list[str]:
    return [call for call in control(url, "/_local/calls")["calls"] if not call.startswith(("Describe", "List", "Get"))]


def connects(info: dict, cert: str, key: str, client_id: str) -> None:
    with Device(info, cert, key, client_id):
        pass


def provisioned_on_first_connect(info: dict, cert: str, key: str, client_id: str) -> None:
    refused(info, cert, key, client_id)  # registered and provisioned by JITP, then dropped as AWS does
    connects(info, cert, key, client_id)


def signed_by(ca_dir: str, common_name: str, out_dir: str) -> tuple[str, str]:
    """A device key and certificate (followed by the CA) signed with the CA's key, as a factory line would."""
    with open(os.path.join(ca_dir, "ca.pem.crt"), "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    with open(os.path.join(ca_dir, "ca.pem.key"), "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(out_dir, "chain.pem"), os.path.join(out_dir, "key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def test_a_jitp_ca_rotation_over_days(local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    reset_endpoint(local_iot_endpoint)
    clear_events(local_iot_endpoint)
    info = dataplane_info(local_iot_endpoint)
    state, devices = tmp_path / "state", tmp_path / "devices"
    iot = iot_client(local_iot_endpoint)

    def play(cas: list, device_ids: list, check: bool = False, ok: bool = True):
        variables = {
            "iot_endpoint_url": local_iot_endpoint,
            "iot_region": "us-east-1",
            "jitp_state_dir": str(state),
            "jitp_template_name": TEMPLATE,
            "jitp_cas": cas,
            "jitp_devices": device_ids,
            "jitp_output_dir": str(devices),
            "jitp_root_ca_path": info["caFile"],
        }
        result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables, check=check)
        assert (result.returncode == 0) is ok, result.stdout[-6000:] + result.stderr[-2000:]
        return result

    def files(device: str) -> tuple[str, str]:
        with open(devices / device / "device.json") as handle:
            settings = json.load(handle)
        return settings["certificate"], settings["private_key"]

    def principals_of(thing: str) -> list[str]:
        return [p.split("/")[-1] for p in iot.list_thing_principals(thingName=thing)["principals"]]

    def ca_status(ca_id: str) -> dict:
        description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
        return {"status": description["status"], "auto": description["autoRegistrationStatus"]}

    def cert_id_of(path: str) -> str:
        with open(path, "rb") as handle:
            first = x509.load_pem_x509_certificates(handle.read())[0]
        return hashlib.sha256(first.public_bytes(serialization.Encoding.DER)).hexdigest()

    # 1. One active CA; its two devices are provisioned by their first connection, then may use their own topics
    # only (what test_jitp_device_connect proved for the single CA, folded in here to share the runs).
    play([{"name": "ca-1", "state": "active"}], ["dev-a", "dev-b"])
    assert iot.list_things()["things"] == []  # nothing is provisioned before a device connects
    old = {}
    for device, neighbour in (("dev-a", "dev-b"), ("dev-b", "dev-a")):
        cert, key = files(device)
        refused(info, cert, key, device)  # first contact: registered, provisioned, dropped
        registrations = [e for e in dataplane_info(local_iot_endpoint)["events"] if e["event"] == "jit-registration"]
        assert registrations[-1]["answer"]["thingName"] == device
        assert registrations[-1]["certificateId"] == cert_id_of(cert)
        assert iot.describe_certificate(certificateId=cert_id_of(cert))["certificateDescription"]["status"] == "ACTIVE"
        assert principals_of(device) == [cert_id_of(cert)]
        prove_device(info, cert, key, device, neighbour)
        field_copy = tmp_path / f"{device}-in-the-field"  # what the device keeps until it gets its new certificate
        shutil.copytree(devices / device, field_copy)
        old[device] = (str(field_copy / "certificate-and-ca.pem.crt"), str(field_copy / "private.pem.key"))

    # 2. ca-2 active, ca-1 retiring: the role's device certificates come from ca-2, a new device (dev-c) included.
    rotation = [{"name": "ca-1", "state": "retiring"}, {"name": "ca-2", "state": "active"}]
    play(rotation, ["dev-a", "dev-b", "dev-c"])
    ca_ids = {name: cert_id_of(str(state / "cas" / name / "ca.pem.crt")) for name in ("ca-1", "ca-2")}
    listed = iot.list_ca_certificates(templateName=TEMPLATE)["certificates"]
    assert sorted(ca["certificateId"] for ca in listed) == sorted(ca_ids.values())
    assert ca_status(ca_ids["ca-1"]) == {"status": "ACTIVE", "auto": "DISABLE"}
    assert ca_status(ca_ids["ca-2"]) == {"status": "ACTIVE", "auto": "ENABLE"}
    new = {device: files(device) for device in ("dev-a", "dev-b", "dev-c")}
    ca_2_pem = (state / "cas" / "ca-2" / "ca.pem.crt").read_text()
    for device in ("dev-a", "dev-b"):  # the same device key, a certificate from ca-2 (followed by ca-2)
        assert Path(new[device][1]).read_bytes() == Path(old[device][1]).read_bytes()
        assert cert_id_of(new[device][0]) != cert_id_of(old[device][0])
        assert (devices / device / "certificate-and-ca.pem.crt").read_text().endswith(ca_2_pem)
    provisioned_on_first_connect(info, *new["dev-c"], "dev-c")  # a device of ca-2, while ca-1 is still registered
    assert principals_of("dev-c") == [cert_id_of(new["dev-c"][0])]
    connects(info, *old["dev-a"], "dev-a")  # a device of the retiring CA still connects
    late = signed_by(str(state / "cas" / "ca-1"), "dev-late", str(tmp_path / "late"))
    refused(info, *late, "dev-late")  # no new device of the retiring CA is registered
    assert "dev-late" not in [t["thingName"] for t in iot.list_things()["things"]]
    # The same run again: nothing changes, no mutating call.
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    assert recap(play(rotation, ["dev-a", "dev-b", "dev-c"]).stdout)["changed"] == 0
    assert mutating_calls(local_iot_endpoint) == []

    # 3. ca-1 retired while the old certificates of dev-a and dev-b are ACTIVE: the guard refuses, with the count
    # and no DeleteCACertificate call; ca-1 is INACTIVE meanwhile and its registered devices still connect.
    # (The device list is left out from here on: the role never removes device files, and it keeps the runs short.)
    retired = [{"name": "ca-1", "state": "retired"}, {"name": "ca-2", "state": "active"}]
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    predicted = play(retired, [], check=True, ok=False)  # check mode predicts the refusal, and changes nothing
    assert "2 device certificates it signed are still ACTIVE" in predicted.stdout
    assert "the CA would be set INACTIVE" in predicted.stdout and mutating_calls(local_iot_endpoint) == []
    assert ca_status(ca_ids["ca-1"]) == {"status": "ACTIVE", "auto": "DISABLE"}
    result = play(retired, [], ok=False)
    assert "2 device certificates it signed are still ACTIVE" in result.stdout, result.stdout[-4000:]
    assert "DeleteCACertificate" not in control(local_iot_endpoint, "/_local/calls")["calls"]
    assert ca_status(ca_ids["ca-1"]) == {"status": "INACTIVE", "auto": "DISABLE"}
    connects(info, *old["dev-a"], "dev-a")  # registered certificates of an INACTIVE CA keep working (AWS docs)
    refused(info, *late, "dev-late")

    # 4. dev-a and dev-b move to their ca-2 certificates (JITP through ca-2 attaches them to the same things), their
    # old ones are deactivated; then the retired ca-1 is deleted.
    for device in ("dev-a", "dev-b"):
        provisioned_on_first_connect(info, *new[device], device)
        assert sorted(principals_of(device)) == sorted([cert_id_of(old[device][0]), cert_id_of(new[device][0])])
        iot.update_certificate(certificateId=cert_id_of(old[device][0]), newStatus="INACTIVE")
    play(retired, [])
    assert [ca["certificateId"] for ca in iot.list_ca_certificates()["certificates"]] == [ca_ids["ca-2"]]
    refused(info, *old["dev-a"], "dev-a")  # after retirement, a device signed by the old CA is refused
    refused(info, *late, "dev-late")
    for device in ("dev-a", "dev-c"):
        connects(info, *new[device], device)

    # 5. The active CA's files lost (a fresh runner without the state volume): the run fails naming the registered
    # CA instead of registering a new one beside it.
    shutil.rmtree(state / "cas" / "ca-2")
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    result = play([{"name": "ca-2", "state": "active"}], [], ok=False)
    assert ca_ids["ca-2"] in result.stdout and "is already ACTIVE for the JITP template" in result.stdout
    assert "RegisterCACertificate" not in control(local_iot_endpoint, "/_local/calls")["calls"]
