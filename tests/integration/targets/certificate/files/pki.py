"""Test PKI for the certificate targets: keys, CSRs, certificates, and independent checks of files.

It shares no code with the collection, so what it reports checks the modules rather than repeats them.

  pki.py key KEY                            a new EC P-256 private key (PEM, mode 0600)
  pki.py csr KEY CSR CN                     a CSR for KEY
  pki.py self-signed KEY CERT CN            a self-signed certificate for KEY
  pki.py issue CA_KEY CA_CERT KEY CERT CN   a certificate for KEY signed by the CA
  pki.py verification CA_KEY CA_CERT CODE CERT
                                            the verification certificate of RegisterCACertificate: CN is the
                                            account's registration code, a fresh key, signed by the CA
  pki.py inspect [--cert CERT] [--key KEY] [--csr CSR]
      prints JSON: certificate_id (SHA-256 of the DER decoded from the PEM's base64 by hand), the file modes,
      and whether the public keys of the given files are all the same (keys_match)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import stat
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _load_key(path: str):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None)


def _load_cert(path: str):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def _spki(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate(subject: str, public_key, issuer: str, signer, ca: bool = False) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "key":
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write(args[0], pem, 0o600)
    elif command == "csr":
        key = _load_key(args[0])
        csr = x509.CertificateSigningRequestBuilder().subject_name(_name(args[2])).sign(key, hashes.SHA256())
        _write(args[1], csr.public_bytes(serialization.Encoding.PEM), 0o644)
    elif command == "self-signed":
        key = _load_key(args[0])
        _write(args[1], _certificate(args[2], key.public_key(), args[2], key, ca=True), 0o644)
    elif command == "issue":
        ca_key, ca_cert, key = _load_key(args[0]), _load_cert(args[1]), _load_key(args[2])
        issuer = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        _write(args[3], _certificate(args[4], key.public_key(), issuer, ca_key), 0o644)
    elif command == "verification":
        ca_key, ca_cert = _load_key(args[0]), _load_cert(args[1])
        issuer = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        key = ec.generate_private_key(ec.SECP256R1())
        _write(args[3], _certificate(args[2], key.public_key(), issuer, ca_key), 0o644)
    elif command == "inspect":
        report: dict = {}
        keys = []
        pairs = dict(zip(args[0::2], args[1::2]))
        if "--cert" in pairs:
            with open(pairs["--cert"]) as handle:
                text = handle.read()
            body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S).group(1)
            report["certificate_id"] = hashlib.sha256(base64.b64decode("".join(body.split()))).hexdigest()
            report["cert_mode"] = oct(stat.S_IMODE(os.stat(pairs["--cert"]).st_mode))
            keys.append(_spki(_load_cert(pairs["--cert"])))
        if "--key" in pairs:
            report["key_mode"] = oct(stat.S_IMODE(os.stat(pairs["--key"]).st_mode))
            keys.append(_spki(_load_key(pairs["--key"])))
        if "--csr" in pairs:
            with open(pairs["--csr"], "rb") as handle:
                keys.append(_spki(x509.load_pem_x509_csr(handle.read())))
        report["keys_match"] = len(keys) > 1 and all(k == keys[0] for k in keys)
        print(json.dumps(report))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
