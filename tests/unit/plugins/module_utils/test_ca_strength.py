"""CA strength, encrypted CA keys, validate_only and the second-CA guard (ca.py, local_ca.py); no AWS.

AWS IoT accepts signatures with SHA-256/384/512 and keys of RSA 2048+ or EC P-256/384/521 only. A weak CA must be
refused by validation, before any client exists, naming the option and the rule.
"""

from __future__ import annotations

import datetime
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import ca, local_ca, x509_helpers
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import StateConflictError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

NOW = datetime.datetime.now(datetime.timezone.utc)
KEY_OPTIONS = ("ca_private_key_path", "ca_private_key_passphrase", "validate_only", "fail_on_other_template_ca")


def self_signed(key, algorithm=None, cn="factory CA"):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, algorithm or hashes.SHA256())
    )


def pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def write_key(tmp_path, key, passphrase=None, filename="ca.key"):
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    path = tmp_path / filename
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return str(path)


def sha1_ca(tmp_path):
    """A SHA-1 signed CA made by openssl (cryptography refuses to sign with SHA-1), and its key file."""
    key_path = write_key(tmp_path, ec.generate_private_key(ec.SECP256R1()), filename="sha1.key")
    out = os.path.join(str(tmp_path), "sha1.pem")
    command = ["openssl", "req", "-x509", "-key", key_path, "-sha1", "-subj", "/CN=old CA", "-days", "30"]
    command.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-out", out])
    subprocess.run(command, check=True, capture_output=True)
    with open(out, encoding="ascii") as handle:
        return handle.read(), key_path


def params(**overrides):
    base = {name: None for name in ("ca_certificate_pem", "ca_certificate_path", "certificate_id")}
    base.update(
        state="present",
        verification_certificate_pem=None,
        ca_private_key_path=None,
        ca_private_key_passphrase=None,
        certificate_mode=None,
        status=None,
        auto_registration=None,
        registration_config=None,
        tags=None,
        purge_tags=True,
        force=False,
        validate_only=False,
        fail_on_other_template_ca=False,
    )
    base.update(overrides)
    return base


def refusal(**overrides):
    with pytest.raises(ValidationError) as caught:
        ca.validate_ca_certificate(params(**overrides))
    return str(caught.value)


def test_weak_cas_are_refused_naming_the_option_and_the_rule(tmp_path):
    rsa_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    k1 = ec.generate_private_key(ec.SECP256K1())
    sha1_pem, _key = sha1_ca(tmp_path)
    cases = {
        "its RSA key has 1024 bits; AWS IoT requires at least 2048": pem(self_signed(rsa_1024)),
        "signed with SHA-1; AWS IoT accepts signatures with SHA-256, SHA-384 or SHA-512 only": sha1_pem,
        "curve secp256k1; AWS IoT accepts NIST P-256, P-384 and P-521 only": pem(self_signed(k1)),
    }
    for rule, text in cases.items():
        message = refusal(ca_certificate_pem=text, certificate_mode="SNI_ONLY")
        assert message.startswith("ca_certificate_pem"), message
        assert "too weak for AWS IoT" in message and rule in message, message


def test_strong_cas_pass_and_a_weak_ca_can_still_be_removed(tmp_path):
    for key, algorithm in (
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), hashes.SHA256()),
        (ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()),
        (ec.generate_private_key(ec.SECP521R1()), hashes.SHA512()),
    ):
        text = pem(self_signed(key, algorithm))
        assert ca.validate_ca_certificate(params(ca_certificate_pem=text, certificate_mode="SNI_ONLY")).certificate_id
    # Removing a CA registered before the rule existed must stay possible.
    sha1_pem, _key = sha1_ca(tmp_path)
    assert ca.validate_ca_certificate(params(ca_certificate_pem=sha1_pem, state="absent")).certificate_id


def test_a_device_certificate_is_not_signed_by_a_weak_ca_nor_for_a_weak_csr(tmp_path):
    sha1_pem, key_path = sha1_ca(tmp_path)
    ca_path = tmp_path / "sha1.pem"
    ca_path.write_text(sha1_pem)
    with pytest.raises(ValidationError) as caught:
        x509_helpers.load_signing_ca(str(ca_path), key_path)
    assert str(caught.value).startswith("ca_certificate_path") and "SHA-1" in str(caught.value)

    strong_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ca.pem").write_text(pem(self_signed(strong_key)))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-1")]))
        .sign(weak, hashes.SHA256())
    )
    device = {
        "state": "present",
        "certificate_path": str(tmp_path / "dev.crt"),
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "ca_certificate_path": str(tmp_path / "ca.pem"),
        "ca_private_key_path": write_key(tmp_path, strong_key),
    }
    with pytest.raises(ValidationError) as caught:
        local_ca.validate_device_certificate(device)
    assert str(caught.value).startswith("csr") and "1024 bits" in str(caught.value)
    assert not (tmp_path / "dev.crt").exists()


def test_an_encrypted_ca_key_needs_its_passphrase_which_no_message_repeats(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    text = pem(self_signed(key))
    path = write_key(tmp_path, key, passphrase="s3cret-phrase")
    message = refusal(ca_certificate_pem=text, ca_private_key_path=path)
    assert message.startswith("ca_private_key_path") and "give its passphrase" in message
    message = refusal(ca_certificate_pem=text, ca_private_key_path=path, ca_private_key_passphrase="wrong-phrase")
    assert "cannot be decrypted" in message and "wrong-phrase" not in message
    desired = ca.validate_ca_certificate(
        params(ca_certificate_pem=text, ca_private_key_path=path, ca_private_key_passphrase="s3cret-phrase")
    )
    assert desired.ca_private_key.public_key().public_numbers() == key.public_key().public_numbers()
    plain = write_key(tmp_path, key, filename="plain.key")
    message = refusal(ca_certificate_pem=text, ca_private_key_path=plain, ca_private_key_passphrase="s3cret-phrase")
    assert message.startswith("ca_private_key_passphrase") and "not an encrypted private key" in message


class ListOnly:
    """ListCACertificates filtered by template, in two pages; nothing else may be called."""

    def __init__(self, cas):
        self.cas = cas
        self.calls = []

    def can_paginate(self, _operation):
        return False

    def list_ca_certificates(self, templateName, pageSize, marker=None):
        self.calls.append(("list_ca_certificates", templateName, marker))
        matching = [c for c in self.cas if c["template"] == templateName]
        start = int(marker or 0)
        page = {"certificates": [{k: c[k] for k in ("certificateId", "status")} for c in matching[start : start + 1]]}
        if start + 1 < len(matching):
            page["nextMarker"] = str(start + 1)
        return page


def test_a_second_ca_for_the_same_template_is_refused_in_check_mode_too():
    key = ec.generate_private_key(ec.SECP256R1())
    desired = ca.validate_ca_certificate(
        params(
            ca_certificate_pem=pem(self_signed(key)),
            certificate_mode="SNI_ONLY",
            registration_config={"template_name": "jitp-devices"},
            fail_on_other_template_ca=True,
        )
    )
    old = "a" * 64
    client = ListOnly(
        [
            {"certificateId": "b" * 64, "status": "INACTIVE", "template": "jitp-devices"},
            {"certificateId": old, "status": "ACTIVE", "template": "jitp-devices"},
            {"certificateId": "c" * 64, "status": "ACTIVE", "template": "other"},
        ]
    )
    with pytest.raises(StateConflictError) as caught:
        ca.register(client, desired, check_mode=True)
    assert old in str(caught.value) and "restore the CA certificate and key" in str(caught.value)
    assert "b" * 64 not in str(caught.value) and "c" * 64 not in str(caught.value)
    assert [c[0] for c in client.calls] == ["list_ca_certificates", "list_ca_certificates"]
    # Only the inactive one left: registration goes ahead (check mode predicts it).
    client.cas = client.cas[:1]
    assert ca.register(client, desired, check_mode=True).changed is True


def test_validate_only_and_the_guard_need_what_they_work_on():
    assert refusal(certificate_id="a" * 64, validate_only=True).startswith("validate_only")
    key = ec.generate_private_key(ec.SECP256R1())
    message = refusal(ca_certificate_pem=pem(self_signed(key)), fail_on_other_template_ca=True)
    assert message.startswith("fail_on_other_template_ca") and "template_name" in message
