"""The anchor: a plain boto3 script doing a cold fleet's work, as a Terraform-like tool would.

    python benchmarks/boto3_cold.py ENDPOINT_URL COUNT PREFIX GROUP POLICY [THREADS]

Per device, with THREADS threads (default 10): a key and CSR made locally, CreateThing, AddThingToThingGroup,
CreateCertificateFromCsr (ACTIVE), AttachThingPrincipal, AttachPolicy. No reads, no plan, no files, no crash
safety: the least work a tool can do. Throttles are retried by botocore (standard mode). Prints one JSON line
with the wall time and the calls made.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def csr_for(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def main(endpoint: str, count: int, prefix: str, group: str, policy: str, threads: int = 10) -> None:
    config = Config(retries={"mode": "standard", "max_attempts": 20}, max_pool_connections=threads + 2)
    iot = boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    )

    def provision(index: int) -> None:
        name = f"{prefix}-{index:05d}"
        iot.create_thing(thingName=name, attributePayload={"attributes": {"model": "bench"}})
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)
        cert = iot.create_certificate_from_csr(certificateSigningRequest=csr_for(name), setAsActive=True)
        iot.attach_thing_principal(thingName=name, principal=cert["certificateArn"])
        iot.attach_policy(policyName=policy, target=cert["certificateArn"])

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(provision, range(count)))
    print(json.dumps({"wall_s": round(time.monotonic() - start, 2), "calls": 5 * count}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], *(int(a) for a in sys.argv[6:]))
