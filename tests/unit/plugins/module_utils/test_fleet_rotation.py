"""Fleet rotation end to end on the in-process moto (aws_keys devices), and the expiry/rotation rules.

moto is run with certificate ids as AWS makes them (SHA-256 of the DER), as the local endpoint does; its
CreateCertificateFromCsr puts a random key in the certificate (the endpoint fixes that), so csr devices are
proven in tests/integration/test_fleet_rotation.py.
"""

from __future__ import annotations

import datetime
import os
import time

import pytest
from moto.core.config import default_user_config

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import Caller, RateBudget

POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}'
FAST = {
    op: 1000.0
    for op in (
        "CreateKeysAndCertificate",
        "UpdateCertificate",
        "DeleteCertificate",
        "DescribeCertificate",
        "AttachPolicy",
        "DetachPolicy",
        "ListThings",
    )
}


@pytest.fixture
def iot(moto_iot, monkeypatch):
    monkeypatch.setitem(default_user_config, "iot", {**default_user_config.get("iot", {}), "use_valid_cert": True})
    moto_iot.client.create_policy(policyName="p", policyDocument=POLICY)
    return moto_iot


def run(iot, tmp_path, check=False, **extra):
    params = {
        "devices": [{"name": f"d{i}", "certificate": "aws_keys", "policies": ["p"]} for i in range(2)],
        "fleet_group": "fg",
        "output_dir": str(tmp_path / "out"),
        **extra,
    }
    spec = fleet.validate_fleet(params)
    call = Caller(iot.client, RateBudget(FAST), max_attempts=2)
    iot.calls.clear()
    plan, outcome, _seconds = fleet.run_fleet(call, spec, check)
    return plan, outcome


def active_certificates(iot, thing):
    ids = [arn.rsplit("/", 1)[1] for arn in iot.client.list_thing_principals(thingName=thing)["principals"]]
    described = [iot.client.describe_certificate(certificateId=i)["certificateDescription"] for i in ids]
    return sorted(d["certificateId"] for d in described if d["status"] == "ACTIVE")


def test_rotation_end_to_end_aws_keys(iot, tmp_path):
    run(iot, tmp_path)
    out = tmp_path / "out"
    old = {d: active_certificates(iot, d) for d in ("d0", "d1")}
    assert all(len(v) == 1 for v in old.values())
    # Requested now: the certificates made before are rotated, the new one (made after) never again.
    time.sleep(1.1)
    rule = {"devices": ["d0"], "requested_on": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    time.sleep(1.1)
    # Check mode first: the stage, no mutating call.
    plan, _outcome = run(iot, tmp_path, check=True, rotation=rule)
    assert iot.mutating() == []
    assert plan.devices[0].changes == ["rotate: issue new certificate"]
    assert plan.devices[1].rotation_stage is None
    plan, outcome = run(iot, tmp_path, rotation=rule)
    assert outcome.outcomes == {"d0": "updated", "d1": "unchanged"}
    now = active_certificates(iot, "d0")
    assert len(now) == 2 and old["d0"][0] in now
    new_id = next(i for i in now if i != old["d0"][0])
    assert oct(os.stat(out / "d0" / "next" / "private.pem.key").st_mode & 0o777) == "0o600"
    assert crypto.certificate_id((out / "d0" / "next" / "certificate.pem.crt").read_bytes()) == new_id
    assert crypto.certificate_id((out / "d0" / "certificate.pem.crt").read_bytes()) == old["d0"][0]
    policies = iot.client.list_attached_policies(target=f"arn:aws:iot:us-east-1:123456789012:cert/{new_id}")
    assert [p["policyName"] for p in policies["policies"]] == ["p"]
    # Waiting: no mutating call however often it runs; the stage names the new certificate.
    plan, outcome = run(iot, tmp_path, rotation=rule)
    assert iot.mutating() == []
    assert outcome.outcomes["d0"] == "unchanged"
    assert plan.devices[0].rotation.texts() == [f"rotate: waiting for confirmation of {new_id}"]
    # A name is not a confirmation.
    with pytest.raises(ValidationError, match="never the device alone"):
        run(iot, tmp_path, rotation={**rule, "confirmed": ["d0"]})
    # Confirmed: step 2 in the safe order, then the new files in place.
    plan, _outcome = run(iot, tmp_path, check=True, rotation={**rule, "confirmed": [new_id]})
    assert plan.devices[0].changes == [f"rotate: retire {old['d0'][0]}", "rotate: move the new files in place"]
    assert iot.mutating() == []
    plan, outcome = run(iot, tmp_path, rotation={**rule, "confirmed": [new_id]})
    assert [c for c in iot.mutating()] == [
        "UpdateCertificate",
        "DetachThingPrincipal",
        "DetachPolicy",
        "DeleteCertificate",
    ]
    assert active_certificates(iot, "d0") == [new_id]
    assert crypto.certificate_id((out / "d0" / "certificate.pem.crt").read_bytes()) == new_id
    assert not (out / "d0" / "next").exists()
    assert not (out / "d0" / ".fleet-rotation.json").exists()
    # Done: nothing more, even with the request and the confirmation still in git.
    plan, outcome = run(iot, tmp_path, rotation={**rule, "confirmed": [new_id]})
    assert iot.mutating() == []
    assert outcome.outcomes == {"d0": "unchanged", "d1": "unchanged"}
