"""Describe PEM files as JSON, with cryptography only (no collection code): an independent view for the targets.

Usage: inspect_pem.py CERTIFICATE [--key KEY] [--issuer ISSUER_CERTIFICATE] [--chain CHAIN]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def spki(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def signed_by(cert, public_key) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
            )
        else:
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


def extension(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def describe(path: str) -> dict:
    with open(path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    constraints = extension(cert, x509.BasicConstraints)
    usage = extension(cert, x509.KeyUsage)
    eku = extension(cert, x509.ExtendedKeyUsage)
    ski = extension(cert, x509.SubjectKeyIdentifier)
    aki = extension(cert, x509.AuthorityKeyIdentifier)
    return {
        "id": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "subject": cert.subject.rfc4514_string(),
        "subject_oids": {attribute.oid.dotted_string: attribute.value for attribute in cert.subject},
        "issuer": cert.issuer.rfc4514_string(),
        "ca": bool(constraints and constraints.value.ca),
        "ca_critical": bool(constraints and constraints.critical),
        "key_cert_sign": bool(usage and usage.value.key_cert_sign),
        "crl_sign": bool(usage and usage.value.crl_sign),
        "digital_signature": bool(usage and usage.value.digital_signature),
        "client_auth": bool(eku and x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in list(eku.value)),
        "ski": ski.value.digest.hex() if ski else None,
        "aki": aki.value.key_identifier.hex() if aki and aki.value.key_identifier else None,
        "validity_days": (cert.not_valid_after_utc - cert.not_valid_before_utc).days,
        "self_signed": signed_by(cert, cert.public_key()),
        "mode": oct(stat.S_IMODE(os.stat(path).st_mode)),
        "_cert": cert,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspect_pem.py")
    parser.add_argument("certificate")
    parser.add_argument("--key")
    parser.add_argument("--issuer")
    parser.add_argument("--chain")
    args = parser.parse_args(argv)
    info = describe(args.certificate)
    cert = info.pop("_cert")
    if args.key:
        with open(args.key, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), None)
        info["key_matches"] = spki(key) == spki(cert)
        info["key_mode"] = oct(stat.S_IMODE(os.stat(args.key).st_mode))
        info["key_type"] = (
            "EC"
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else "RSA"
            if isinstance(key, rsa.RSAPrivateKey)
            else "other"
        )
    if args.issuer:
        issuer = describe(args.issuer)["_cert"]
        info["signed_by_issuer"] = cert.issuer == issuer.subject and signed_by(cert, issuer.public_key())
    if args.chain:
        with open(args.chain, "rb") as handle:
            chain = x509.load_pem_x509_certificates(handle.read())
        info["chain_subjects"] = [c.subject.rfc4514_string() for c in chain]
        info["chain_starts_with_certificate"] = bool(chain) and chain[0] == cert
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
