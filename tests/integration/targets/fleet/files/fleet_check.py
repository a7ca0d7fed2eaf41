"""Check a fleet against the endpoint with plain boto3 (no collection code), or make test certificates.

Usage:
  fleet_check.py check EXPECTED_JSON_FILE   print {"ok": bool, "problems": [...], "devices": N, ...}
  fleet_check.py make-pem PATH CN           write a self-signed certificate PEM (for certificate: pem)
  fleet_check.py to-csv IN.jsonl OUT.csv    the same devices as a CSV (lists joined by ';', attributes.NAME columns)

EXPECTED_JSON_FILE: {"fleet_group": G, "output_dir": DIR, "devices": [{"name", "thing_type", "attributes",
"thing_groups", "certificate", "policies", "certificate_pem_path"}]}. For each device: the thing exists with
exactly these attributes and type, is in the fleet group and its groups, and (certificate != none) has exactly
one certificate principal, ACTIVE, whose public key matches the key file (aws_keys/csr) or whose id is the PEM's
(pem), with exactly the listed policies. Account-wide: no certificate is attached to no thing, none INACTIVE.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def client(endpoint: str | None = None):
    return boto3.client(
        "iot",
        endpoint_url=endpoint or os.environ["LOCAL_IOT_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=boto3.session.Config(retries={"mode": "standard", "max_attempts": 20}),
    )


def pages(iot, method, key, **params):
    items = []
    while True:
        page = getattr(iot, method)(**params)
        items.extend(page.get(key, []))
        token = page.get("nextToken") or page.get("nextMarker")
        if not token:
            return items
        params["marker" if "nextMarker" in page and "nextToken" not in page else "nextToken"] = token


def spki(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_id(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def check(expected: dict, endpoint: str | None = None) -> dict:
    iot = client(endpoint)
    problems = []
    group = expected["fleet_group"]
    members = set(pages(iot, "list_things_in_thing_group", "things", thingGroupName=group, maxResults=250))
    wanted = {d["name"] for d in expected["devices"]}
    if members != wanted:
        problems.append(
            f"fleet group members differ: extra {sorted(members - wanted)}, missing {sorted(wanted - members)}"
        )
    all_certs = {c["certificateId"]: c for c in pages(iot, "list_certificates", "certificates", pageSize=250)}
    cert_count = 0
    for device in expected["devices"]:
        name = device["name"]
        try:
            thing = iot.describe_thing(thingName=name)
        except iot.exceptions.ResourceNotFoundException:
            problems.append(f"{name}: thing missing")
            continue
        if (thing.get("thingTypeName") or None) != device.get("thing_type"):
            problems.append(f"{name}: thing type {thing.get('thingTypeName')!r}")
        want_attrs = {k: str(v) for k, v in (device.get("attributes") or {}).items()}
        if thing.get("attributes", {}) != want_attrs:
            problems.append(f"{name}: attributes {thing.get('attributes')} != {want_attrs}")
        groups = {g["groupName"] for g in pages(iot, "list_thing_groups_for_thing", "thingGroups", thingName=name)}
        if groups != {group, *(device.get("thing_groups") or [])}:
            problems.append(f"{name}: groups {sorted(groups)}")
        principals = pages(iot, "list_thing_principals", "principals", thingName=name)
        certs = [p for p in principals if ":cert/" in p]
        source = device.get("certificate", "none")
        if source == "none":
            continue
        if len(certs) != 1:
            problems.append(f"{name}: {len(certs)} certificates attached")
            continue
        cid = certs[0].rsplit("/", 1)[1]
        cert_count += 1
        desc = iot.describe_certificate(certificateId=cid)["certificateDescription"]
        if desc["status"] != "ACTIVE":
            problems.append(f"{name}: certificate {desc['status']}")
        if source == "pem":
            with open(device["certificate_pem_path"], "rb") as handle:
                if cert_id(handle.read()) != cid:
                    problems.append(f"{name}: certificate is not the given PEM")
        else:
            base = os.path.join(expected["output_dir"], name)
            try:
                with open(os.path.join(base, "private.pem.key"), "rb") as handle:
                    key = serialization.load_pem_private_key(handle.read(), None)
                with open(os.path.join(base, "certificate.pem.crt"), "rb") as handle:
                    file_pem = handle.read()
            except OSError as e:
                problems.append(f"{name}: {e}")
                continue
            mode = os.stat(os.path.join(base, "private.pem.key")).st_mode & 0o777
            if mode != 0o600:
                problems.append(f"{name}: key file mode {oct(mode)}")
            remote = x509.load_pem_x509_certificate(desc["certificatePem"].encode())
            if spki(remote) != spki(key):
                problems.append(f"{name}: certificate does not match the key file")
            if cert_id(file_pem) != cid:
                problems.append(f"{name}: certificate file is not the attached certificate")
        policies = sorted(
            p["policyName"] for p in pages(iot, "list_attached_policies", "policies", target=desc["certificateArn"])
        )
        if policies != sorted(device.get("policies") or []):
            problems.append(f"{name}: policies {policies}")
    orphans = []
    inactive = []
    for cid, cert in all_certs.items():
        if not pages(iot, "list_principal_things", "things", principal=cert["certificateArn"]):
            orphans.append(cid)
        if cert["status"] != "ACTIVE":
            inactive.append(cid)
    if orphans:
        problems.append(f"{len(orphans)} certificates attached to no thing")
    if inactive:
        problems.append(f"{len(inactive)} certificates not ACTIVE")
    return {
        "ok": not problems,
        "problems": problems,
        "devices": len(expected["devices"]),
        "certificates_total": len(all_certs),
        "certificates_attached": cert_count,
        "orphans": len(orphans),
        "orphan_ids": sorted(orphans),
        "inactive": len(inactive),
    }


def make_pem(path: str, common_name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    with open(path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))


def to_csv(source: str, target: str) -> None:
    import csv

    with open(source) as handle:
        devices = [json.loads(line) for line in handle if line.strip()]
    attributes = sorted({name for d in devices for name in d.get("attributes", {})})
    columns = ["name", "thing_type", "certificate", "certificate_pem_path", "thing_groups", "policies"]
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns + [f"attributes.{name}" for name in attributes])
        for d in devices:
            row = [";".join(d.get(c) or []) if c in ("thing_groups", "policies") else d.get(c, "") for c in columns]
            writer.writerow(row + [d.get("attributes", {}).get(name, "") for name in attributes])


def main(argv):
    if argv[0] == "check":
        with open(argv[1]) as handle:
            print(json.dumps(check(json.load(handle))))
    elif argv[0] == "make-pem":
        if not os.path.exists(argv[1]):
            make_pem(argv[1], argv[2])
        print(json.dumps({"path": argv[1]}))
    elif argv[0] == "to-csv":
        to_csv(argv[1], argv[2])
        print(json.dumps({"path": argv[2]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
