"""A JITP CA rotation through playbooks/jitp.yml (jitp_cas), proven by devices on the data plane (awsiotsdk).

One endpoint state, one sequence of runs as a GitOps pipeline would make them over days:

1. ``ca-1`` active: the device certificate of ``dev-a`` is issued by it; dev-a is provisioned on first connect.
2. ``ca-1`` retiring, ``ca-2`` active: the role's device certificates come from ca-2 (dev-a's again, for the same
   key; dev-b new). A device from ca-2 (dev-b) is provisioned while ca-1 is still registered; dev-a's old
   certificate (the one the device in the field still has) still connects; a new device of ca-1 is refused.
   The same run again changes nothing and makes no mutating call; a check run predicts nothing.
3. ``ca-1`` retired while dev-a's old certificate is ACTIVE: the guard refuses to delete it (the count, no
   DeleteCACertificate call); ca-1 is INACTIVE now and the registered device still connects (as AWS documents).
4. dev-a connects with its new certificate (JITP through ca-2) and its old certificate is deactivated; the retired
   ca-1 is deleted; a device signed by ca-1 is refused, ca-2's devices still connect. Again: nothing changes.
5. The active CA's files lost (a fresh runner without the state volume): the run fails naming the registered CA
   instead of registering a new one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device_client import Device, clear_events, dataplane_info, refused
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

    def ca_status(name: str) -> dict:
        ca_id = ca_ids[name]
        description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
        return {"status": description["status"], "auto": description["autoRegistrationStatus"]}

    def cert_id_of(path: str) -> str:
        with open(path, "rb") as handle:
            first = x509.load_pem_x509_certificates(handle.read())[0]
        return hashlib.sha256(first.public_bytes(serialization.Encoding.DER)).hexdigest()

    # 1. One active CA; dev-a is provisioned by its first connection.
    play([{"name": "ca-1", "state": "active"}], ["dev-a"])
    cert_a1, key_a = files("dev-a")
    provisioned_on_first_connect(info, cert_a1, key_a, "dev-a")
    field_copy = tmp_path / "dev-a-in-the-field"  # what the device keeps until it gets its new certificate
    shutil.copytree(devices / "dev-a", field_copy)
    old_cert, old_key = str(field_copy / "certificate-and-ca.pem.crt"), str(field_copy / "private.pem.key")

    # 2. ca-2 active, ca-1 retiring.
    rotation = [{"name": "ca-1", "state": "retiring"}, {"name": "ca-2", "state": "active"}]
    play(rotation, ["dev-a", "dev-b"])
    ca_ids = {name: cert_id_of(str(state / "cas" / name / "ca.pem.crt")) for name in ("ca-1", "ca-2")}
    listed = iot.list_ca_certificates(templateName=TEMPLATE)["certificates"]
    assert sorted(ca["certificateId"] for ca in listed) == sorted(ca_ids.values())
    assert ca_status("ca-1") == {"status": "ACTIVE", "auto": "DISABLE"}
    assert ca_status("ca-2") == {"status": "ACTIVE", "auto": "ENABLE"}
    cert_a2, key_a2 = files("dev-a")
    assert key_a2 == key_a and cert_id_of(cert_a2) != cert_id_of(old_cert)  # same device key, ca-2's certificate
    assert (
        (devices / "dev-a" / "certificate-and-ca.pem.crt")
        .read_text()
        .endswith((state / "cas" / "ca-2" / "ca.pem.crt").read_text())
    )
    cert_b, key_b = files("dev-b")
    provisioned_on_first_connect(info, cert_b, key_b, "dev-b")  # from ca-2, ca-1 still registered
    assert [p.split("/")[-1] for p in iot.list_thing_principals(thingName="dev-b")["principals"]] == [
        cert_id_of(cert_b)
    ]
    connects(info, old_cert, old_key, "dev-a")  # a device of the retiring CA still connects
    late_cert, late_key = signed_by(str(state / "cas" / "ca-1"), "dev-late", str(tmp_path / "late"))
    refused(info, late_cert, late_key, "dev-late")  # no new device of the retiring CA is registered
    assert "dev-late" not in [t["thingName"] for t in iot.list_things()["things"]]

    control(local_iot_endpoint, "/_local/calls", "DELETE")
    assert recap(play(rotation, ["dev-a", "dev-b"]).stdout)["changed"] == 0
    assert recap(play(rotation, ["dev-a", "dev-b"], check=True).stdout)["changed"] == 0
    mutating = [
        c
        for c in control(local_iot_endpoint, "/_local/calls")["calls"]
        if not c.startswith(("Describe", "List", "Get"))
    ]
    assert mutating == []

    # 3. ca-1 retired while dev-a's old certificate is ACTIVE: refused, with the count; ca-1 INACTIVE meanwhile.
    retired = [{"name": "ca-1", "state": "retired"}, {"name": "ca-2", "state": "active"}]
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    result = play(retired, ["dev-a", "dev-b"], ok=False)
    assert "1 device certificate it signed is still ACTIVE" in result.stdout, result.stdout[-4000:]
    assert "DeleteCACertificate" not in control(local_iot_endpoint, "/_local/calls")["calls"]
    assert ca_status("ca-1") == {"status": "INACTIVE", "auto": "DISABLE"}
    connects(info, old_cert, old_key, "dev-a")  # registered certificates of an INACTIVE CA keep working
    refused(info, late_cert, late_key, "dev-late")

    # 4. dev-a moves to its ca-2 certificate, its old one is deactivated; then ca-1 goes.
    provisioned_on_first_connect(info, cert_a2, key_a, "dev-a")
    principals = [p.split("/")[-1] for p in iot.list_thing_principals(thingName="dev-a")["principals"]]
    assert sorted(principals) == sorted([cert_id_of(old_cert), cert_id_of(cert_a2)])
    iot.update_certificate(certificateId=cert_id_of(old_cert), newStatus="INACTIVE")
    play(retired, ["dev-a", "dev-b"])
    assert [ca["certificateId"] for ca in iot.list_ca_certificates()["certificates"]] == [ca_ids["ca-2"]]
    refused(info, old_cert, old_key, "dev-a")
    refused(info, late_cert, late_key, "dev-late")
    connects(info, cert_a2, key_a, "dev-a")
    connects(info, cert_b, key_b, "dev-b")
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    assert recap(play(retired, ["dev-a", "dev-b"]).stdout)["changed"] == 0
    mutating = [
        c
        for c in control(local_iot_endpoint, "/_local/calls")["calls"]
        if not c.startswith(("Describe", "List", "Get"))
    ]
    assert mutating == []

    # 5. The active CA's files lost: the run fails naming the registered CA, nothing is registered.
    shutil.rmtree(state / "cas" / "ca-2")
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    result = play([{"name": "ca-2", "state": "active"}], [], ok=False)
    assert ca_ids["ca-2"] in result.stdout and "is already ACTIVE for the JITP template" in result.stdout
    assert "RegisterCACertificate" not in control(local_iot_endpoint, "/_local/calls")["calls"]
