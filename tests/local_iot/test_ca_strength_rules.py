"""The local endpoint refuses certificates AWS IoT refuses as too weak (RSA under 2048 bits, SHA-1 signatures).

AWS IoT (developer guide, "X.509 client certificates") supports signatures with SHA-256/384/512 only and keys of
RSA 2048+ or EC P-256/384/521. RegisterCACertificate and RegisterCertificate(WithoutCA) answer
CertificateValidationException; CreateCertificateFromCsr, whose model has no such error, InvalidRequestException.
One endpoint for the module; every refused call is checked to have stored nothing.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import client, error_of, module_endpoint, reset

NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("ca_strength") as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    return client(endpoint)


def _certificate(key: Any, issuer_key: Any, name: str, issuer: str, ca: bool, algorithm: Any) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, algorithm)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def sha1_signed(key: Any, name: str, ca: bool, issuer_key: Any = None, issuer: x509.Certificate | None = None) -> str:
    """A certificate signed with SHA-1, by openssl (cryptography refuses to make one); self-signed without issuer."""
    with tempfile.TemporaryDirectory() as area:
        paths = {n: os.path.join(area, n) for n in ("key", "cakey", "ca", "csr", "out")}
        with open(paths["key"], "wb") as handle:
            handle.write(_key_pem(key))
        constraints = f"basicConstraints=critical,CA:{'TRUE' if ca else 'FALSE'}"
        if issuer is None:
            command = ["openssl", "req", "-x509", "-key", paths["key"], "-sha1", "-subj", f"/CN={name}", "-days", "30"]
            command += ["-addext", constraints, "-out", paths["out"]]
        else:
            with open(paths["cakey"], "wb") as handle:
                handle.write(_key_pem(issuer_key))
            with open(paths["ca"], "w", encoding="ascii") as handle:
                handle.write(_pem(issuer))
            subprocess.run(
                ["openssl", "req", "-new", "-key", paths["key"], "-subj", f"/CN={name}", "-out", paths["csr"]],
                check=True,
                capture_output=True,
            )
            command = ["openssl", "x509", "-req", "-in", paths["csr"], "-CA", paths["ca"], "-CAkey", paths["cakey"]]
            command += ["-sha1", "-days", "30", "-set_serial", "7", "-out", paths["out"]]
        subprocess.run(command, check=True, capture_output=True)
        with open(paths["out"], encoding="ascii") as handle:
            return handle.read()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _weak_cas() -> dict[str, str]:
    """PEMs of CAs AWS refuses, keyed by what the refusal names."""
    rsa_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    k1 = ec.generate_private_key(ec.SECP256K1())
    return {
        "1024 bits": _pem(_certificate(rsa_1024, rsa_1024, "weak CA", "weak CA", True, hashes.SHA256())),
        "sha1": sha1_signed(ec.generate_private_key(ec.SECP256R1()), "weak CA", True),
        "secp256k1": _pem(_certificate(k1, k1, "weak CA", "weak CA", True, hashes.SHA256())),
    }


def test_weak_ca_certificates_are_refused_and_nothing_is_registered(iot: Any) -> None:
    for expected, ca in _weak_cas().items():
        code, message, status = error_of(iot.register_ca_certificate, caCertificate=ca, certificateMode="SNI_ONLY")
        assert (code, status) == ("CertificateValidationException", 400), (expected, message)
        assert expected in message
    assert iot.list_ca_certificates()["certificates"] == []


def test_weak_device_certificates_are_refused_with_and_without_their_ca(iot: Any) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_key, ca_key, "strong CA", "strong CA", True, hashes.SHA256())
    iot.register_ca_certificate(caCertificate=_pem(ca), certificateMode="SNI_ONLY", setAsActive=True)
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_by_key = _certificate(weak_key, ca_key, "dev-1", "strong CA", False, hashes.SHA256())
    weak_by_hash = sha1_signed(ec.generate_private_key(ec.SECP256R1()), "dev-2", False, ca_key, ca)
    for device, expected in ((_pem(weak_by_key), "1024 bits"), (weak_by_hash, "sha1")):
        code, message, _status = error_of(iot.register_certificate, certificatePem=device, caCertificatePem=_pem(ca))
        assert code == "CertificateValidationException" and expected in message
        code, message, _status = error_of(iot.register_certificate_without_ca, certificatePem=device)
        assert code == "CertificateValidationException" and expected in message
    assert iot.list_certificates()["certificates"] == []
    # The same CA signing a strong device certificate is accepted: the rule is about strength, nothing else.
    strong = _certificate(ec.generate_private_key(ec.SECP384R1()), ca_key, "dev-3", "strong CA", False, hashes.SHA384())
    assert iot.register_certificate(certificatePem=_pem(strong), caCertificatePem=_pem(ca))["certificateId"]


def test_a_csr_with_a_weak_key_is_refused(iot: Any) -> None:
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev")]))
        .sign(weak_key, hashes.SHA256())
    )
    code, message, _status = error_of(
        iot.create_certificate_from_csr, certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode()
    )
    assert code == "InvalidRequestException" and "2048" in message
    assert iot.list_certificates()["certificates"] == []
