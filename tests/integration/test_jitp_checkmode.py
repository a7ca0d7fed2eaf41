"""The jitp role beyond the basics: a first --check on an empty account, template parameters read from the
certificate, a lost CA that is not silently replaced, device.json, and inputs refused before any AWS call.

State is read back with plain boto3; calls are read from the endpoint's /_local/calls.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from harness import REPO, assert_nothing_done, control, iot_client, recap, reset_endpoint, run_playbook

PLAYBOOK = os.path.join(REPO, "playbooks", "jitp.yml")
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Search")
SERIAL_REF = {"Ref": "AWS::IoT::Certificate::SerialNumber"}


def _names(template_body: dict) -> list[str]:
    return sorted(template_body["Parameters"])


def _base(endpoint: str, area, region: str = "us-east-1") -> dict:
    return {
        "iot_endpoint_url": endpoint,
        "iot_region": region,
        "jitp_state_dir": str(area / "state"),
        "jitp_template_name": "jitp-plus",
        "jitp_role_name": "jitp-plus-role",
        "jitp_policy_name": "jitp-plus-policy",
    }


def _connect(endpoint: str, certificate_pem: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{endpoint}/_local/jitp/connect",
        data=json.dumps({"certificatePem": certificate_pem}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_first_check_on_an_empty_account_changes_nothing_and_uses_the_region_partition(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    variables = {
        **_base(local_iot_endpoint, area, region="cn-north-1"),
        "jitp_thing_attributes": {"serial": SERIAL_REF},
        "jitp_device_subject": {"serial_number": "SN-0"},
        "jitp_devices": ["s-1", {"id": "s-2", "subject": {"serial_number": "SN-2"}}],
    }
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables, check=True)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    calls = control(local_iot_endpoint, "/_local/calls")["calls"]
    assert [c for c in calls if not c.startswith(READ_ONLY_PREFIXES)] == []
    assert calls, "the check run read nothing: it planned blind"
    assert sorted(str(p.relative_to(area)) for p in area.rglob("*")) == []
    assert iot_client(local_iot_endpoint, "iam").list_roles()["Roles"] == []
    # The plan shows the policy with the China partition and the template declaring what it reads.
    assert "arn:aws-cn:iot:cn-north-1:" in result.stdout
    assert "arn:aws:iot:" not in result.stdout
    assert "AWS::IoT::Certificate::SerialNumber" in result.stdout
    assert "The CA would be created, registered with jitp-plus, and 2 device certificates issued" in result.stdout


def test_template_reads_the_certificate_devices_provision_and_a_lost_ca_is_not_replaced(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    root_ca = tmp_path / "AmazonRootCA1.pem"
    root_ca.write_text("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n")
    variables = {
        **_base(local_iot_endpoint, area),
        "jitp_thing_type": "jitp-sensor",
        "jitp_thing_attributes": {"serial": SERIAL_REF, "site": "lab"},
        "jitp_device_subject": {"organization": "iotfleet"},
        "jitp_devices": [{"id": "s-2", "subject": {"serial_number": "SN-2"}}],
        "jitp_root_ca_path": str(root_ca),
        "jitp_tags": {"team": "fleet"},
    }
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    iot = iot_client(local_iot_endpoint)
    template = iot.describe_provisioning_template(templateName="jitp-plus")
    body = json.loads(template["templateBody"])
    # Exactly what the resources read: not Organization, although the role writes it into the subject.
    assert _names(body) == [
        "AWS::IoT::Certificate::CommonName",
        "AWS::IoT::Certificate::Id",
        "AWS::IoT::Certificate::SerialNumber",
    ]
    device_dir = area / "state" / "devices" / "s-2"
    settings = json.loads((device_dir / "device.json").read_text())
    assert settings["client_id"] == settings["thing_name"] == "s-2"
    assert settings["sni"] == settings["endpoint"]
    assert settings["certificate"] == str(device_dir / "certificate-and-ca.pem.crt")
    assert settings["private_key"] == str(device_dir / "private.pem.key")
    assert settings["root_ca"] == str(device_dir / "AmazonRootCA1.pem")
    assert (device_dir / "AmazonRootCA1.pem").read_text() == root_ca.read_text()
    assert any("first connection" in line and "Reconnect" in line for line in settings["instructions"])
    assert oct((device_dir / "private.pem.key").stat().st_mode & 0o777) == "0o600"
    assert oct(device_dir.stat().st_mode & 0o777) == "0o700"

    status, answer = _connect(local_iot_endpoint, (device_dir / "certificate-and-ca.pem.crt").read_text())
    assert status == 200, answer
    thing = iot.describe_thing(thingName="s-2")
    assert thing["attributes"] == {"serial": "SN-2", "site": "lab"}
    assert thing["thingTypeName"] == "jitp-sensor"
    cas = iot.list_ca_certificates()["certificates"]
    assert len(cas) == 1
    assert iot.list_tags_for_resource(resourceArn=cas[0]["certificateArn"])["tags"] == [
        {"Key": "team", "Value": "fleet"}
    ]

    # The CA's files are lost (a fresh runner, a reinstalled collection): the next run fails naming the CA
    # still registered for the template, and registers no second CA.
    shutil.rmtree(area / "state" / "ca")
    lost = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert lost.returncode != 0
    assert f"CA {cas[0]['certificateId']} is already ACTIVE for the JITP template jitp-plus" in lost.stdout
    assert [c["certificateId"] for c in iot.list_ca_certificates()["certificates"]] == [cas[0]["certificateId"]]
    assert recap(lost.stdout)["failed"] == 1


def _ca_files(directory, key, ca: bool, algorithm=None, days: int = 400) -> tuple[str, str]:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "given CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, algorithm or hashes.SHA256())
    )
    directory.mkdir(exist_ok=True)
    certificate_path = directory / "ca.pem"
    key_path = directory / "ca.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certificate_path), str(key_path)


# A user's own JITP template: the thing is named "<Country>-<CommonName>"; a Default-less Country must be in
# every device certificate (the same check as subject_lacks_a_field below, fed by the user's Parameters).
OWN_BODY = {
    "Parameters": {
        "AWS::IoT::Certificate::Country": {"Type": "String"},
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {
                    "Fn::Join": [
                        "-",
                        [{"Ref": "AWS::IoT::Certificate::Country"}, {"Ref": "AWS::IoT::Certificate::CommonName"}],
                    ]
                }
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "jitp-plus-policy"}},
    },
}


REFUSALS = {
    "not_a_ca": "is not a CA certificate",
    "expires_soon": "device certificates are not signed with it",
    "rsa_1024": "too weak for AWS IoT: its RSA key has 1024 bits",
    "inside_collections": "jitp_ca_dir, jitp_ca_private_key_path: inside an ansible_collections tree",
    "subject_lacks_a_field": 'missing for ["d-1 (serial_number)"]',
    # CA rotation (jitp_cas): exactly one active CA; a retiring CA whose files are gone is never made anew.
    "two_active_cas": "exactly one is active (it signs the device certificates); jitp_verification_certificate_path"
    " is not used with jitp_cas",
    "retiring_ca_files_gone": 'jitp_cas: the files of ["old"] are gone',
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_before_any_aws_call_or_file(
    case: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    given = tmp_path / "given"
    variables = {**_base(local_iot_endpoint, area), "jitp_devices": ["d-1"]}
    if case in ("not_a_ca", "rsa_1024", "expires_soon"):
        key = ec.generate_private_key(ec.SECP256R1())
        if case == "rsa_1024":
            key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        days = 20 if case == "expires_soon" else 400
        certificate, key_path = _ca_files(given, key, ca=case != "not_a_ca", days=days)
        variables.update(
            jitp_ca_source="provided", jitp_ca_certificate_path=certificate, jitp_ca_private_key_path=key_path
        )
    elif case == "two_active_cas":
        variables["jitp_cas"] = [{"name": "a", "state": "active"}, {"name": "b", "state": "active"}]
    elif case == "retiring_ca_files_gone":
        variables["jitp_cas"] = [{"name": "old", "state": "retiring"}, {"name": "new", "state": "active"}]
    elif case == "inside_collections":
        variables["jitp_ca_dir"] = str(area / "ansible_collections" / "acme" / "keys" / "ca")
    else:
        variables["jitp_thing_attributes"] = {"serial": SERIAL_REF}
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode != 0
    assert_nothing_done(local_iot_endpoint, area)
    assert REFUSALS[case] in result.stdout, result.stdout[-5000:]


def test_bring_your_own_ca_encrypted_key_csr_device_own_policy_and_role(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    given = tmp_path / "given"
    ca_key = ec.generate_private_key(ec.SECP384R1())
    certificate_path, key_path = _ca_files(given, ca_key, ca=True, algorithm=hashes.SHA384())
    passphrase = "pass-phrase-never-shown"
    with open(key_path, "wb") as handle:
        handle.write(
            ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(passphrase.encode()),
            )
        )
    device_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "made-on-device")]))
        .sign(device_key, hashes.SHA256())
    )
    csr_path = given / "device.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    iam = iot_client(local_iot_endpoint, "iam")
    role_arn = iam.create_role(RoleName="my-own-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    variables = {
        **_base(local_iot_endpoint, area),
        "jitp_ca_source": "provided",
        "jitp_ca_certificate_path": certificate_path,
        "jitp_ca_private_key_path": key_path,
        "jitp_ca_private_key_passphrase": passphrase,
        "jitp_provisioning_role_arn": role_arn,
        "jitp_policy_document": policy,
        "jitp_devices": [{"id": "csr-1", "csr_path": str(csr_path)}],
    }
    first = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert first.returncode == 0, first.stdout[-12000:] + first.stderr[-3000:]
    assert passphrase not in first.stdout + first.stderr
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["my-own-role"]
    iot = iot_client(local_iot_endpoint)
    assert json.loads(iot.get_policy(policyName="jitp-plus-policy")["policyDocument"]) == policy
    assert iot.describe_provisioning_template(templateName="jitp-plus")["provisioningRoleArn"] == role_arn

    device_dir = area / "state" / "devices" / "csr-1"
    assert not (device_dir / "private.pem.key").exists()  # the key stayed on the device
    assert json.loads((device_dir / "device.json").read_text())["private_key"] is None
    chain = (device_dir / "certificate-and-ca.pem.crt").read_text()
    issued = x509.load_pem_x509_certificate(chain.encode())
    assert issued.public_key().public_numbers() == device_key.public_key().public_numbers()
    status, answer = _connect(local_iot_endpoint, chain)
    assert status == 200 and answer["thingName"] == "csr-1", answer

    again = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert again.returncode == 0, again.stdout[-12000:]
    assert recap(again.stdout)["changed"] == 0


def test_own_template_body_then_the_same_template_used_as_an_existing_one(
    local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    area = tmp_path / "area"
    area.mkdir()
    variables = {
        **_base(local_iot_endpoint, area),
        "jitp_certificate_mode": "SNI_ONLY",
        "jitp_template_body": OWN_BODY,
        "jitp_device_subject": {"country": "DE"},
        "jitp_devices": ["o-1"],
    }
    result = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), variables)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    iot = iot_client(local_iot_endpoint)
    assert json.loads(iot.describe_provisioning_template(templateName="jitp-plus")["templateBody"]) == OWN_BODY
    chain = (area / "state" / "devices" / "o-1" / "certificate-and-ca.pem.crt").read_text()
    status, answer = _connect(local_iot_endpoint, chain)
    assert status == 200 and answer["thingName"] == "DE-o-1", answer

    # The template is now someone else's to manage: the role only checks it exists and is JITP, and changes
    # nothing of it, nor of the role, policy and groups.
    existing = {**variables, "jitp_template_existing": True, "jitp_template_body": {}, "jitp_role_name": "unused"}
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    again = run_playbook(PLAYBOOK, local_iot_endpoint, collections_path, str(tmp_path), existing)
    assert again.returncode == 0, again.stdout[-12000:]
    assert recap(again.stdout)["changed"] == 0
    assert [
        c for c in control(local_iot_endpoint, "/_local/calls")["calls"] if not c.startswith(READ_ONLY_PREFIXES)
    ] == []
