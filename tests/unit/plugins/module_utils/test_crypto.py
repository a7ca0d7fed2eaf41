"""Unit tests for the local crypto helpers: ids, PEM parsing, public keys, atomic writes."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import CryptoError


def _key(kind: str = "ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert_pem(key, cn: str = "device") -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _csr_pem(key, cn: str = "device") -> str:
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def _der_by_hand(pem: str) -> bytes:
    """DER straight from the base64 body, without cryptography: an independent reading of the PEM."""
    body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S).group(1)
    return base64.b64decode("".join(body.split()))


@pytest.fixture(scope="module")
def key_a():
    return _key("rsa")


@pytest.fixture(scope="module")
def key_b():
    return _key("ec")


# --- certificate ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_certificate_id_is_sha256_of_der(kind):
    pem = _cert_pem(_key(kind))
    expected = hashlib.sha256(_der_by_hand(pem)).hexdigest()
    assert crypto.certificate_id(pem) == expected
    assert crypto.certificate_id(pem.encode()) == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)


def test_certificate_id_ignores_text_around_and_line_endings(key_a):
    pem = _cert_pem(key_a)
    wrapped = "subject=CN = device\n" + pem.replace("\n", "\r\n") + "\ntrailing words\n"
    assert crypto.certificate_id(wrapped) == crypto.certificate_id(pem)


def test_certificate_ids_differ_between_certificates(key_a):
    assert crypto.certificate_id(_cert_pem(key_a, "one")) != crypto.certificate_id(_cert_pem(key_a, "two"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no '-----BEGIN CERTIFICATE-----' block"),
        ("hello", "no '-----BEGIN CERTIFICATE-----' block"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid PEM-encoded X.509"),
    ],
)
def test_malformed_certificates_are_refused(text, message):
    with pytest.raises(CryptoError, match=re.escape(message)):
        crypto.certificate_id(text)


def test_two_certificates_in_one_pem_are_refused(key_a, key_b):
    with pytest.raises(CryptoError, match=re.escape("exactly one PEM X.509 certificate, found 2")):
        crypto.load_certificate(_cert_pem(key_a) + _cert_pem(key_b))


def test_a_csr_is_not_a_certificate(key_a):
    with pytest.raises(CryptoError, match="no '-----BEGIN CERTIFICATE-----' block"):
        crypto.load_certificate(_csr_pem(key_a))


def test_non_ascii_pem_is_refused():
    with pytest.raises(CryptoError, match="non-ASCII"):
        crypto.load_certificate("caf\u00e9".encode())


@pytest.mark.parametrize(
    "value, ok",
    [
        ("a" * 64, True),
        ("A1" * 32, True),
        ("a" * 63, False),
        ("a" * 65, False),
        ("g" * 64, False),
        # Matched whole: with re.match, "$" also matches before a final line break.
        ("a" * 64 + "\n", False),
        (None, False),
        (123, False),
    ],
)
def test_is_certificate_id(value, ok):
    assert crypto.is_certificate_id(value) is ok


# --- CSRs and keys ------------------------------------------------------------------------------------------


def test_csr_with_a_broken_signature_is_refused(key_a):
    csr = x509.load_pem_x509_csr(_csr_pem(key_a).encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # flip a bit of the signature
    broken = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)).decode()
    broken += "-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(CryptoError, match="signature does not verify"):
        crypto.load_csr(broken)


def test_malformed_csr_is_refused():
    with pytest.raises(CryptoError, match="no '-----BEGIN CERTIFICATE REQUEST-----' block"):
        crypto.load_csr("not a csr")
    with pytest.raises(CryptoError, match="not a valid PEM-encoded certificate signing request"):
        crypto.load_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def test_encrypted_private_key_is_refused(key_b):
    encrypted = key_b.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(CryptoError, match="encrypted private key"):
        crypto.load_private_key(encrypted)


def test_bad_private_key_message_does_not_echo_the_content():
    secret_looking = "-----BEGIN PRIVATE KEY-----\nQUJDREVGR0g=\n-----END PRIVATE KEY-----\n"
    with pytest.raises(CryptoError) as caught:
        crypto.load_private_key(secret_looking)
    assert "QUJDREVGR0g" not in str(caught.value)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_public_keys_match_across_certificate_csr_and_private_key(kind):
    key = _key(kind)
    other = _key(kind)
    cert, csr, key_pem = _cert_pem(key), _csr_pem(key), _key_pem(key)
    assert crypto.certificate_public_key(cert) == crypto.csr_public_key(csr) == crypto.private_key_public_key(key_pem)
    assert crypto.same_public_key(crypto.load_certificate(cert), crypto.load_csr(csr))
    assert crypto.same_public_key(crypto.load_private_key(key_pem), crypto.certificate_public_key(cert))
    assert not crypto.same_public_key(crypto.load_certificate(cert), other)
    assert crypto.certificate_public_key(_cert_pem(other)) != crypto.csr_public_key(csr)


def test_public_key_der_is_subject_public_key_info(key_b):
    expected = key_b.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert crypto.private_key_public_key(_key_pem(key_b)) == expected


# --- files --------------------------------------------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
@pytest.mark.parametrize("mode", [crypto.PRIVATE_KEY_MODE, crypto.CERTIFICATE_MODE])
def test_atomic_write_sets_the_mode_whatever_the_umask(tmp_path, umask, mode):
    path = tmp_path / "out.pem"
    old = os.umask(umask)
    try:
        crypto.write_file_atomic(str(path), b"data\n", mode)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data\n"
    assert _mode(path) == mode
    assert os.listdir(tmp_path) == ["out.pem"]


def test_atomic_write_replaces_a_wider_file_with_the_narrow_mode(tmp_path):
    path = tmp_path / "device.key"
    path.write_bytes(b"old")
    os.chmod(path, 0o666)
    crypto.write_file_atomic(str(path), b"new", crypto.PRIVATE_KEY_MODE)
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600


def test_pending_file_is_private_before_commit_and_leaves_nothing_when_discarded(tmp_path):
    old = os.umask(0)
    try:
        pending = crypto.PendingFile(str(tmp_path / "k.key"), crypto.PRIVATE_KEY_MODE)
    finally:
        os.umask(old)
    temp = pending.tmp_path
    assert os.path.dirname(temp) == str(tmp_path)
    assert _mode(temp) == 0o600
    pending.discard()
    assert os.listdir(tmp_path) == []
    pending.discard()  # a second discard is harmless


def test_pending_file_commit_once(tmp_path):
    pending = crypto.PendingFile(str(tmp_path / "c.pem"), crypto.CERTIFICATE_MODE)
    pending.commit(b"pem")
    assert (tmp_path / "c.pem").read_bytes() == b"pem"
    with pytest.raises(ValueError, match="already committed"):
        pending.commit(b"again")
    assert os.listdir(tmp_path) == ["c.pem"]


def test_pending_file_in_a_missing_directory_fails_before_anything(tmp_path):
    with pytest.raises(OSError):
        crypto.PendingFile(str(tmp_path / "missing" / "k.key"), crypto.PRIVATE_KEY_MODE)


def test_failed_replace_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.pem"
    path.write_bytes(b"old")

    def refuse(_src, _dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(crypto.os, "replace", refuse)
    with pytest.raises(OSError):
        crypto.write_file_atomic(str(path), b"new", crypto.CERTIFICATE_MODE)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["c.pem"]


def test_read_file_and_file_differs(tmp_path):
    path = tmp_path / "f"
    assert crypto.read_file(str(path)) is None
    assert crypto.file_differs(str(path), b"x")
    path.write_bytes(b"x")
    assert crypto.read_file(str(path)) == b"x"
    assert not crypto.file_differs(str(path), b"x")
    assert crypto.file_differs(str(path), b"x\n")
