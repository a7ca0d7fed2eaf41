"""Unit tests for provisioning_claims: validation, reuse of a claim on disk, check mode, refusals, files and modes.

AWS is a small stand-in: DescribeProvisioningTemplate answers the template given, CreateProvisioningClaim issues a
real certificate (its notAfter the claim's expiration) and records each call.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import provisioning_claims as claims
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

NOW = datetime.datetime(2026, 12, 5, 7, 0, tzinfo=datetime.timezone.utc)


class FakeIoT:
    def __init__(self, template: dict | None) -> None:
        self.template = template
        self.calls: list[str] = []

    def describe_provisioning_template(self, templateName: str) -> dict:
        self.calls.append("DescribeProvisioningTemplate")
        if self.template is None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "Describe")
        return self.template

    def create_provisioning_claim(self, templateName: str) -> dict:
        self.calls.append("CreateProvisioningClaim")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "claim")])
        expiration = NOW + datetime.timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=1))
            .not_valid_after(expiration)
            .sign(key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        der = cert.public_bytes(serialization.Encoding.DER)
        return {
            "certificateId": hashlib.sha256(der).hexdigest(),
            "certificatePem": pem,
            "keyPair": {"PrivateKey": private, "PublicKey": ""},
            "expiration": expiration,
        }


FLEET = {"templateName": "fleet", "type": "FLEET_PROVISIONING", "enabled": True}


def desired(tmp_path, **overrides) -> claims.DesiredClaim:
    params = {
        "template_name": "fleet",
        "certificate_path": str(tmp_path / "claim.pem.crt"),
        "private_key_path": str(tmp_path / "claim.pem.key"),
        "min_valid_seconds": 60,
        "force": False,
        **overrides,
    }
    return claims.validate(params)


def test_validation_names_the_field_before_any_call(tmp_path) -> None:
    for overrides, field in (
        ({"template_name": "no spaces"}, "template_name"),
        ({"min_valid_seconds": 300}, "min_valid_seconds"),
        ({"certificate_path": str(tmp_path / "missing" / "c.pem")}, "certificate_path"),
        ({"private_key_path": str(tmp_path / "claim.pem.crt")}, "private_key_path"),
    ):
        with pytest.raises(ValidationError) as caught:
            desired(tmp_path, **overrides)
        assert caught.value.field == field


def test_a_claim_is_made_written_0600_then_reused_until_it_runs_short(tmp_path) -> None:
    client = FakeIoT(FLEET)
    wanted = desired(tmp_path)
    done = claims.ensure_present(client, wanted, check_mode=True, now=NOW)
    changed, before, after = done.changed, done.before, done.after
    assert (changed, before, after["certificate_id"]) == (True, None, None)
    assert client.calls == ["DescribeProvisioningTemplate"] and not os.listdir(tmp_path)

    done = claims.ensure_present(client, wanted, check_mode=False, now=NOW)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None and after["expiration"] == "2026-12-05T07:05:00Z"
    for path in (wanted.certificate_path, wanted.private_key_path, wanted.record_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["claim.pem.crt", "claim.pem.crt.claim.json", "claim.pem.key"]

    client.calls.clear()
    later = NOW + datetime.timedelta(minutes=3)  # two minutes left, more than 60 s
    assert claims.ensure_present(client, wanted, check_mode=False, now=later) == Ensured(False, after, after)
    assert client.calls == ["DescribeProvisioningTemplate"]
    assert claims.seconds_left(after, later) == 120

    # Too little left, another template's claim, a key that does not match, or force: a new claim.
    for now, variant in (
        (NOW + datetime.timedelta(minutes=4, seconds=30), wanted),
        (later, desired(tmp_path, force=True)),
    ):
        done = claims.ensure_present(client, variant, check_mode=False, now=now)
        changed, before, renewed = done.changed, done.before, done.after
        assert changed and renewed["certificate_id"] != before["certificate_id"]
    other = claims.DesiredClaim("other", wanted.certificate_path, wanted.private_key_path, 60, False)
    assert claims.read_local_claim(other)["template_name"] == "fleet"
    with open(wanted.private_key_path, "w") as handle:
        handle.write(FakeIoT(FLEET).create_provisioning_claim("fleet")["keyPair"]["PrivateKey"])
    assert claims.read_local_claim(wanted) is None


@pytest.mark.parametrize(
    "template, message",
    [
        (None, "no provisioning template fleet"),
        ({**FLEET, "type": "JITP"}, "is a JITP template"),
        ({**FLEET, "enabled": False}, "is disabled"),
    ],
)
def test_a_template_that_cannot_provision_is_refused_before_a_claim(tmp_path, template, message) -> None:
    client = FakeIoT(template)
    with pytest.raises(ValidationError) as caught:
        claims.ensure_present(client, desired(tmp_path), check_mode=False, now=NOW)
    assert caught.value.field == "template_name" and message in caught.value.rule
    assert client.calls == ["DescribeProvisioningTemplate"] and not os.listdir(tmp_path)
