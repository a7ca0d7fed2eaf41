"""Unit tests for the local CA backend: the CA key and certificate, device certificates, verification certificates.

Everything is checked with cryptography directly (extensions, signatures, key match), not with the code under test.
"""

from __future__ import annotations

import datetime
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import local_ca, x509_helpers
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

SUBJECT = {"common_name": "Factory CA", "organization": "Example Corp", "country": "DE"}
DEVICE_SUBJECT = {
    "common_name": "sensor-001",
    "serial_number": "SN-0001",
    "organization": "Example Corp",
    "organizational_unit": "Sensors",
    "country": "DE",
    "state_or_province": "Bavaria",
    "distinguished_name_qualifier": "line-7",
}


def load_cert(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def load_key(path):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), None)


def spki(obj):
    if hasattr(obj, "public_key"):
        obj = obj.public_key()
    return obj.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def verify(cert, issuer_public_key):
    """Raises when ``cert`` was not signed by the key of ``issuer_public_key``."""
    if isinstance(issuer_public_key, rsa.RSAPublicKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        issuer_public_key.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
        )
    else:
        issuer_public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


@pytest.fixture
def ca_params(tmp_path):
    return {
        "state": "present",
        "private_key_path": str(tmp_path / "ca.key"),
        "certificate_path": str(tmp_path / "ca.pem"),
        "subject": dict(SUBJECT),
        "validity_days": 3650,
        "renew_margin_days": 30,
        "key_type": "EC",
        "curve": "P-256",
        "key_size": 2048,
        "force": False,
    }


def make_ca(params, check_mode=False, now=None):
    return local_ca.ensure_local_ca(local_ca.validate_local_ca(params), check_mode, now=now)


# --- local CA: validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, field, rule",
    [
        ({"subject": None}, "subject", "needs at least one field"),
        ({"subject": {"country": "Germany"}}, "subject.country", "two-letter"),
        ({"renew_margin_days": 3650}, "renew_margin_days", "must be less than validity_days (3650)"),
        ({"validity_days": 0}, "validity_days", "between 1 and"),
        ({"renew_margin_days": -1}, "renew_margin_days", "0 or more"),
        ({"key_type": "DSA"}, "key_type", "must be one of EC, RSA"),
        ({"key_type": "RSA", "key_size": 1024}, "key_size", "at least 2048"),
    ],
)
def test_local_ca_validation_names_the_field_and_rule(ca_params, change, field, rule):
    ca_params.update(change)
    with pytest.raises(ValidationError) as error:
        local_ca.validate_local_ca(ca_params)
    assert error.value.field == field
    assert rule in error.value.rule


def test_local_ca_refuses_the_same_path_for_key_and_certificate(ca_params):
    ca_params["certificate_path"] = ca_params["private_key_path"]
    with pytest.raises(ValidationError, match="certificate_path: must differ from private_key_path"):
        local_ca.validate_local_ca(ca_params)


def test_local_ca_refuses_a_missing_directory(ca_params, tmp_path):
    ca_params["certificate_path"] = str(tmp_path / "missing" / "ca.pem")
    with pytest.raises(ValidationError, match=r"certificate_path: the directory .* does not exist"):
        local_ca.validate_local_ca(ca_params)


# --- local CA: create, keep, renew ---------------------------------------------------------------------------


def test_local_ca_creates_a_ca_key_and_self_signed_ca_certificate(ca_params):
    done = make_ca(ca_params)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert done.extra["key_action"] == "created" and done.extra["certificate_action"] == "created"
    assert mode(ca_params["private_key_path"]) == 0o600
    assert mode(ca_params["certificate_path"]) == 0o644
    key = load_key(ca_params["private_key_path"])
    cert = load_cert(ca_params["certificate_path"])
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert spki(cert) == spki(key)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Factory CA"
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
    verify(cert, key.public_key())
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=3650) <= lifetime <= datetime.timedelta(days=3650, minutes=10)
    assert after["certificate"]["certificate_id"] == local_ca.crypto.certificate_id(done.extra["certificate_pem"])
    assert after["certificate"]["subject"] == {
        "country": "DE",
        "organization": "Example Corp",
        "common_name": "Factory CA",
    }
    assert after["private_key"] == {"type": "EC", "curve": "P-256"}
    assert "PRIVATE" not in repr(after)


def test_local_ca_check_mode_predicts_and_writes_nothing(ca_params):
    done = make_ca(ca_params, check_mode=True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert done.extra["key_action"] == "create" and done.extra["certificate_action"] == "create"
    assert after["certificate"]["certificate_id"] is None
    assert after["certificate"]["subject_dn"] == "CN=Factory CA,O=Example Corp,C=DE"
    assert not os.path.exists(ca_params["private_key_path"])
    assert not os.path.exists(ca_params["certificate_path"])


def test_local_ca_second_run_keeps_key_and_certificate(ca_params):
    make_ca(ca_params)
    key_bytes = read(ca_params["private_key_path"])
    cert_bytes = read(ca_params["certificate_path"])
    for check_mode in (True, False):
        done = make_ca(ca_params, check_mode=check_mode)
        changed, before, after = done.changed, done.before, done.after
        assert not changed
        assert before == after
        assert done.extra["certificate_action"] == "kept" and done.extra.get("reason") is None
    assert read(ca_params["private_key_path"]) == key_bytes
    assert read(ca_params["certificate_path"]) == cert_bytes


def test_local_ca_renews_with_the_same_key_when_the_subject_changes(ca_params):
    make_ca(ca_params)
    key_bytes = read(ca_params["private_key_path"])
    old = load_cert(ca_params["certificate_path"])
    ca_params["subject"] = {"common_name": "Factory CA 2"}
    done = make_ca(ca_params, check_mode=True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and done.extra["certificate_action"] == "renew" and done.extra["reason"] == "its subject differs"
    assert load_cert(ca_params["certificate_path"]) == old
    done = make_ca(ca_params)
    changed, before, after = done.changed, done.before, done.after
    assert changed and done.extra["certificate_action"] == "renewed"
    new = load_cert(ca_params["certificate_path"])
    assert new.subject.rfc4514_string() == "CN=Factory CA 2"
    assert spki(new) == spki(old)
    assert read(ca_params["private_key_path"]) == key_bytes
    assert before["certificate"]["subject_dn"] != after["certificate"]["subject_dn"]


def test_local_ca_renews_within_the_margin_only(ca_params):
    make_ca(ca_params)
    cert = load_cert(ca_params["certificate_path"])
    just_outside = cert.not_valid_after_utc - datetime.timedelta(days=31)
    assert make_ca(ca_params, check_mode=True, now=just_outside).changed is False
    inside = cert.not_valid_after_utc - datetime.timedelta(days=29)
    done = make_ca(ca_params, now=inside)
    changed = done.changed
    assert changed and done.extra["reason"] == "it expires within renew_margin_days (30)"
    assert load_cert(ca_params["certificate_path"]).not_valid_after_utc > cert.not_valid_after_utc


def test_local_ca_never_replaces_a_missing_key_silently(ca_params):
    make_ca(ca_params)
    os.unlink(ca_params["private_key_path"])
    with pytest.raises(ValidationError) as error:
        make_ca(ca_params)
    assert error.value.field == "private_key_path"
    assert "set force: true to make a new CA" in error.value.rule
    assert not os.path.exists(ca_params["private_key_path"])
    ca_params["force"] = True
    done = make_ca(ca_params)
    changed = done.changed
    assert changed and done.extra["key_action"] == "created" and done.extra["certificate_action"] == "renewed"
    assert spki(load_cert(ca_params["certificate_path"])) == spki(load_key(ca_params["private_key_path"]))


def test_local_ca_never_replaces_a_key_of_another_type_silently(ca_params):
    make_ca(ca_params)
    ca_params.update(key_type="RSA", key_size=2048)
    with pytest.raises(ValidationError, match="a CA key is never replaced silently"):
        make_ca(ca_params)
    ca_params["force"] = True
    done = make_ca(ca_params)
    changed, after = done.changed, done.after
    assert changed and done.extra["key_action"] == "replaced"
    assert isinstance(load_key(ca_params["private_key_path"]), rsa.RSAPrivateKey)
    assert after["private_key"] == {"type": "RSA", "size": 2048}
    assert spki(load_cert(ca_params["certificate_path"])) == spki(load_key(ca_params["private_key_path"]))


def test_local_ca_refuses_to_overwrite_a_file_that_is_not_a_certificate(ca_params):
    with open(ca_params["certificate_path"], "w") as handle:
        handle.write("not a certificate")
    with pytest.raises(ValidationError, match=r"certificate_path: .* exists but is not a PEM-encoded"):
        make_ca(ca_params)
    ca_params["force"] = True
    assert make_ca(ca_params).changed
    load_cert(ca_params["certificate_path"])


def test_local_ca_replaces_a_certificate_that_is_not_a_ca(ca_params):
    make_ca(ca_params)
    key = load_key(ca_params["private_key_path"])
    name = local_ca.keys.x509_name(SUBJECT)
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=400))
        .sign(key, hashes.SHA256())
    )
    with open(ca_params["certificate_path"], "wb") as handle:
        handle.write(leaf.public_bytes(serialization.Encoding.PEM))
    done = make_ca(ca_params)
    changed = done.changed
    assert changed and done.extra["reason"] == "it is not a CA certificate"
    assert ext(load_cert(ca_params["certificate_path"]), x509.BasicConstraints).value.ca


def test_local_ca_absent_removes_both_files_then_reports_no_change(ca_params):
    make_ca(ca_params)
    ca_params["state"] = "absent"
    desired = local_ca.validate_local_ca(ca_params)
    done = local_ca.ensure_local_ca_absent(desired, check_mode=True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["certificate"]["subject_dn"] == "CN=Factory CA,O=Example Corp,C=DE" and after is None
    assert os.path.exists(ca_params["private_key_path"]) and os.path.exists(ca_params["certificate_path"])
    assert local_ca.ensure_local_ca_absent(desired, check_mode=False).changed
    assert not os.path.exists(ca_params["private_key_path"]) and not os.path.exists(ca_params["certificate_path"])
    done = local_ca.ensure_local_ca_absent(desired, check_mode=False)
    assert (done.changed, done.before, done.after) == (False, None, None)


# --- device certificates -------------------------------------------------------------------------------------


@pytest.fixture
def ca_files(ca_params):
    make_ca(ca_params)
    return ca_params["certificate_path"], ca_params["private_key_path"]


@pytest.fixture
def device_params(tmp_path, ca_files):
    return {
        "state": "present",
        "ca_certificate_path": ca_files[0],
        "ca_private_key_path": ca_files[1],
        "csr": None,
        "csr_path": None,
        "private_key_path": str(tmp_path / "device.key"),
        "key_type": "EC",
        "curve": "P-256",
        "key_size": 2048,
        "subject": dict(DEVICE_SUBJECT),
        "validity_days": 365,
        "renew_margin_days": 30,
        "certificate_path": str(tmp_path / "device.pem"),
        "chain_path": str(tmp_path / "chain.pem"),
        "force": False,
    }


def issue(params, check_mode=False, now=None, warn=None):
    desired = local_ca.validate_device_certificate(params)
    return local_ca.ensure_device_certificate(desired, check_mode, now=now, warn=warn or (lambda _message: None))


def test_device_certificate_with_a_new_key_signed_by_the_ca(device_params):
    done = issue(device_params)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before == {"certificate": None, "chain_written": False}
    assert done.extra["key_action"] == "created" and done.extra["certificate_action"] == "issued"
    ca = load_cert(device_params["ca_certificate_path"])
    cert = load_cert(device_params["certificate_path"])
    key = load_key(device_params["private_key_path"])
    assert mode(device_params["private_key_path"]) == 0o600
    assert mode(device_params["certificate_path"]) == 0o644
    assert spki(cert) == spki(key)
    assert cert.issuer == ca.subject
    verify(cert, ca.public_key())
    attributes = {a.oid: a.value for a in cert.subject}
    assert attributes == {
        NameOID.COMMON_NAME: "sensor-001",
        NameOID.SERIAL_NUMBER: "SN-0001",
        NameOID.ORGANIZATION_NAME: "Example Corp",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "Sensors",
        NameOID.COUNTRY_NAME: "DE",
        NameOID.STATE_OR_PROVINCE_NAME: "Bavaria",
        NameOID.DN_QUALIFIER: "line-7",
    }
    assert not ext(cert, x509.BasicConstraints).value.ca
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ext(cert, x509.KeyUsage).value.digital_signature
    ca_ski = ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    with open(device_params["chain_path"], "rb") as handle:
        chain = x509.load_pem_x509_certificates(handle.read())
    assert chain == [cert, ca]
    assert after["certificate"]["subject"] == DEVICE_SUBJECT
    assert after["certificate"]["issuer_dn"] == ca.subject.rfc4514_string()
    assert after["chain_written"] is True


def test_device_certificate_is_kept_on_a_second_run(device_params):
    issue(device_params)
    files = {p: read(device_params[p]) for p in ("certificate_path", "chain_path", "private_key_path")}
    for check_mode in (True, False):
        done = issue(device_params, check_mode=check_mode)
        changed, before, after = done.changed, done.before, done.after
        assert not changed and before == after
        assert done.extra["certificate_action"] == "kept" and done.extra["key_action"] == "kept"
    assert {p: read(device_params[p]) for p in files} == files


def test_device_certificate_check_mode_writes_nothing(device_params):
    done = issue(device_params, check_mode=True)
    changed, after = done.changed, done.after
    assert changed and done.extra["certificate_action"] == "issue" and done.extra["key_action"] == "create"
    assert after["certificate"]["certificate_id"] is None
    assert after["certificate"]["subject"] == DEVICE_SUBJECT
    for path in ("certificate_path", "chain_path", "private_key_path"):
        assert not os.path.exists(device_params[path])


def test_a_lost_chain_file_is_written_again_without_a_new_certificate(device_params):
    issue(device_params)
    cert_bytes = read(device_params["certificate_path"])
    os.unlink(device_params["chain_path"])
    done = issue(device_params)
    changed, before, after = done.changed, done.before, done.after
    assert changed and done.extra["certificate_action"] == "kept"
    assert before["chain_written"] is False and after["chain_written"] is True
    assert read(device_params["certificate_path"]) == cert_bytes
    assert read(device_params["chain_path"]).startswith(cert_bytes)


def test_device_certificate_from_a_csr_certifies_the_csr_key_with_its_subject(device_params, tmp_path):
    device_key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "from-csr")]))
        .sign(device_key, hashes.SHA256())
    )
    csr_path = tmp_path / "device.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    device_params.update(private_key_path=None, subject=None, csr_path=str(csr_path))
    done = issue(device_params)
    changed, after = done.changed, done.after
    cert = load_cert(device_params["certificate_path"])
    assert changed and done.extra.get("key_action") is None
    assert spki(cert) == spki(device_key)
    assert cert.subject.rfc4514_string() == "CN=from-csr"
    assert after["certificate"]["subject"] == {"common_name": "from-csr"}
    assert not issue(device_params).changed
    # The same CSR given as content finds the same certificate.
    device_params.update(csr_path=None, csr=csr_path.read_text())
    assert not issue(device_params).changed


def test_device_certificate_is_reissued_when_subject_or_ca_changes(device_params, tmp_path):
    issue(device_params)
    first = load_cert(device_params["certificate_path"])
    device_params["subject"] = dict(DEVICE_SUBJECT, serial_number="SN-0002")
    done = issue(device_params)
    changed = done.changed
    assert changed and done.extra["reason"] == "its subject differs" and done.extra["certificate_action"] == "reissued"
    second = load_cert(device_params["certificate_path"])
    assert spki(second) == spki(first)

    other = {
        "state": "present",
        "private_key_path": str(tmp_path / "other-ca.key"),
        "certificate_path": str(tmp_path / "other-ca.pem"),
        "subject": {"common_name": "Other CA"},
    }
    make_ca(other)
    device_params.update(ca_certificate_path=other["certificate_path"], ca_private_key_path=other["private_key_path"])
    done = issue(device_params)
    changed = done.changed
    assert changed and done.extra["reason"] == "it is not signed by this CA"
    verify(load_cert(device_params["certificate_path"]), load_cert(other["certificate_path"]).public_key())


def test_device_certificate_from_an_rsa_ca(tmp_path):
    ca = {
        "private_key_path": str(tmp_path / "rsa-ca.key"),
        "certificate_path": str(tmp_path / "rsa-ca.pem"),
        "subject": {"common_name": "RSA CA"},
        "key_type": "RSA",
        "key_size": 2048,
    }
    make_ca(ca)
    params = {
        "ca_certificate_path": ca["certificate_path"],
        "ca_private_key_path": ca["private_key_path"],
        "private_key_path": str(tmp_path / "d.key"),
        "subject": {"common_name": "d"},
        "certificate_path": str(tmp_path / "d.pem"),
    }
    assert issue(params).changed
    verify(load_cert(params["certificate_path"]), load_cert(ca["certificate_path"]).public_key())
    assert not issue(params).changed


def test_device_certificate_ends_with_the_ca(device_params, tmp_path):
    short = {
        "private_key_path": str(tmp_path / "short.key"),
        "certificate_path": str(tmp_path / "short.pem"),
        "subject": {"common_name": "Short CA"},
        "validity_days": 100,
    }
    make_ca(short)
    device_params.update(ca_certificate_path=short["certificate_path"], ca_private_key_path=short["private_key_path"])
    warnings = []
    issue(device_params, warn=warnings.append)
    ca = load_cert(short["certificate_path"])
    assert load_cert(device_params["certificate_path"]).not_valid_after_utc == ca.not_valid_after_utc
    assert "when the CA certificate expires" in warnings[0]
    assert not issue(device_params).changed


@pytest.mark.parametrize(
    "change, field, rule",
    [
        ({"private_key_path": None}, "csr, csr_path, private_key_path", "give exactly one"),
        ({"csr": "x"}, "csr, private_key_path", "give exactly one"),
        ({"subject": None}, "subject", "is required with private_key_path"),
        ({"subject": {"common_name": "x" * 65}}, "subject.common_name", "at most 64 characters"),
        ({"ca_certificate_path": None}, "ca_certificate_path", "is required with state=present"),
        ({"renew_margin_days": 400}, "renew_margin_days", "must be less than validity_days (365)"),
        ({"chain_path": "SAME"}, "chain_path", "must differ from certificate_path"),
    ],
)
def test_device_certificate_validation_names_the_field_and_rule(device_params, change, field, rule):
    if change.get("chain_path") == "SAME":
        change = {"chain_path": device_params["certificate_path"]}
    device_params.update(change)
    with pytest.raises(ValidationError) as error:
        local_ca.validate_device_certificate(device_params)
    assert error.value.field == field
    assert rule in error.value.rule


def test_device_certificate_refuses_a_bad_csr(device_params):
    device_params.update(
        private_key_path=None, csr="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
    )
    with pytest.raises(ValidationError) as error:
        local_ca.validate_device_certificate(device_params)
    assert error.value.field == "csr" and "certificate signing request" in error.value.rule


def test_device_certificate_refuses_a_ca_key_that_does_not_match(device_params, tmp_path):
    other = tmp_path / "other.key"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    device_params["ca_private_key_path"] = str(other)
    with pytest.raises(ValidationError, match=r"ca_private_key_path: the key in .* does not match the public key"):
        local_ca.validate_device_certificate(device_params)


def test_device_certificate_refuses_a_ca_that_is_not_a_ca(device_params, tmp_path):
    issue(device_params)
    device_params.update(
        ca_certificate_path=device_params["certificate_path"],
        ca_private_key_path=device_params["private_key_path"],
        certificate_path=str(tmp_path / "leaf2.pem"),
        private_key_path=str(tmp_path / "leaf2.key"),
        chain_path=None,
    )
    with pytest.raises(ValidationError, match=r"ca_certificate_path: .* is not a CA certificate"):
        local_ca.validate_device_certificate(device_params)


def test_device_certificate_refuses_a_ca_expiring_within_the_margin(device_params, tmp_path):
    short = {
        "private_key_path": str(tmp_path / "s.key"),
        "certificate_path": str(tmp_path / "s.pem"),
        "subject": {"common_name": "S"},
        "validity_days": 10,
        "renew_margin_days": 1,
    }
    make_ca(short)
    device_params.update(ca_certificate_path=short["certificate_path"], ca_private_key_path=short["private_key_path"])
    with pytest.raises(ValidationError, match=r"ca_certificate_path: the CA certificate .* expires on .*renew the CA"):
        local_ca.validate_device_certificate(device_params)


def test_device_certificate_absent_removes_certificate_chain_and_key(device_params):
    issue(device_params)
    device_params["state"] = "absent"
    desired = local_ca.validate_device_certificate(device_params)
    done = local_ca.ensure_device_certificate_absent(desired, check_mode=True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["certificate"]["subject"] == DEVICE_SUBJECT and after is None
    assert os.path.exists(device_params["certificate_path"])
    assert local_ca.ensure_device_certificate_absent(desired, check_mode=False).changed
    for path in ("certificate_path", "chain_path", "private_key_path"):
        assert not os.path.exists(device_params[path])
    done = local_ca.ensure_device_certificate_absent(desired, check_mode=False)
    assert (done.changed, done.before, done.after) == (False, None, None)


# --- verification certificates -------------------------------------------------------------------------------


def test_verification_certificate_has_the_code_as_cn_and_is_signed_by_the_ca(ca_files):
    ca = load_cert(ca_files[0])
    ca_key = load_key(ca_files[1])
    code = "a" * 64
    pem = x509_helpers.verification_certificate(ca, ca_key, code)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == f"CN={code}"
    assert cert.issuer == ca.subject
    verify(cert, ca.public_key())
    assert spki(cert) != spki(ca)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now <= datetime.timedelta(days=1)


def test_issued_by_rejects_a_forged_issuer_name(ca_files, tmp_path):
    ca = load_cert(ca_files[0])
    impostor = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(ca.subject)
        .public_key(impostor.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(impostor, hashes.SHA256())
    )
    assert not x509_helpers.issued_by(forged, ca)


def test_a_certificate_without_client_auth_is_issued_again(device_params):
    issue(device_params)
    ca = load_cert(device_params["ca_certificate_path"])
    key = load_key(device_params["private_key_path"])
    now = datetime.datetime.now(datetime.timezone.utc)
    server_style = x509_helpers.issue_certificate(
        ca,
        load_key(device_params["ca_private_key_path"]),
        key.public_key(),
        local_ca.keys.x509_name(DEVICE_SUBJECT),
        now,
        now + datetime.timedelta(days=300),
        client_auth=False,
    )
    with open(device_params["certificate_path"], "wb") as handle:
        handle.write(server_style.public_bytes(serialization.Encoding.PEM))
    done = issue(device_params)
    changed = done.changed
    assert changed and done.extra["reason"] == "it lacks the clientAuth extended key usage"
    assert list(ext(load_cert(device_params["certificate_path"]), x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
