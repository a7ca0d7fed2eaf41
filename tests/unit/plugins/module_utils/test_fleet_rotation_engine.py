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
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import (
    ENGINE_OPERATIONS,
    Caller,
    RateBudget,
)

POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}'
FAST = dict.fromkeys(ENGINE_OPERATIONS, 10000.0)  # pacing is not what these tests are about


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
    # Nothing to change, no rule: the reads of before this feature, and the dates from the files (no call).
    warm = ["ListThingPrincipals", "ListThingPrincipals", "ListThings", "ListThingsInThingGroup"]
    warm += ["ListCertificates", "ListTargetsForPolicy"]
    plan, _outcome = run(iot, tmp_path)
    assert sorted(iot.calls) == sorted(warm)
    assert {d.expiry["validity"] for d in plan.devices} == {"file"}
    assert {d.expiry["not_after"][:4] for d in plan.devices} == {str(datetime.date.today().year + 1)}  # moto's
    # With a rule and the files here: still no DescribeCertificate.
    run(iot, tmp_path, check=True, certificate_expiry={"warn_within_days": 30})
    assert sorted(iot.calls) == sorted(warm)
    # A fresh controller (no files): validity not read without a rule, DescribeCertificate with one.
    fresh = tmp_path / "fresh"
    plan, _outcome = run(iot, fresh, check=True)
    assert sorted(iot.calls) == sorted(warm)
    assert {d.expiry["validity"] for d in plan.devices} == {"not read"}
    plan, _outcome = run(iot, fresh, check=True, certificate_expiry={"warn_within_days": 400})
    assert sorted(iot.calls) == sorted([*warm, "DescribeCertificate", "DescribeCertificate"])
    assert {d.expiry["validity"] for d in plan.devices} == {"DescribeCertificate"}
    assert len(plan.warnings) == 2  # moto's certificates expire within a year
    old = {d: active_certificates(iot, d) for d in ("d0", "d1")}
    assert all(len(v) == 1 for v in old.values())
    # Requested now: the certificates made before are rotated, the new one (made after) never again.
    time.sleep(0.01)  # creation dates have milliseconds
    rule = {"devices": ["d0"], "requested_on": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    time.sleep(0.01)  # creation dates have milliseconds
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
    with pytest.raises(ValidationError, match="a device name alone is never a confirmation"):
        run(iot, tmp_path, rotation={**rule, "confirmed": ["d0"]})
    # Confirmed: step 2 in the safe order, then the new files in place.
    plan, _outcome = run(iot, tmp_path, check=True, rotation={**rule, "confirmed": [new_id]})
    assert plan.devices[0].changes == [f"rotate: retire {old['d0'][0]}", "rotate: move the new files in place"]
    assert iot.mutating() == []
    plan, outcome = run(iot, tmp_path, rotation={**rule, "confirmed": [new_id]})
    assert iot.mutating() == [
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


class Killed(BaseException):
    """The run stops here, as if killed: nothing after it runs (BaseException passes every handler)."""


class Killing:
    """The fleet's call, stopped before the ``nth`` call of ``method``; checks after every mutating call that
    every device still has an ACTIVE certificate attached."""

    def __init__(self, call, method, nth, iot, things):
        self.call, self.method, self.nth, self.iot, self.things = call, method, nth, iot, things
        self.seen = 0

    def __call__(self, method, **params):
        if method == self.method:
            self.seen += 1
            if self.seen == self.nth:
                raise Killed(method)
        answer = self.call(method, **params)
        if not method.startswith(("list_", "describe_", "get_")):
            for thing in self.things:
                assert active_certificates(self.iot, thing), f"{thing} had no ACTIVE certificate after {method}"
        return answer

    def pages(self, method, key, **params):
        return self.call.pages(method, key, **params)

    def summary(self):
        return self.call.summary()


# Each stop point of step 1 and step 2, one after the other: every rerun stops at the next point, the last
# one finishes. Between any two calls every device has an ACTIVE certificate.
STEP_1_STOPS = [("attach_thing_principal", 1), ("attach_policy", 1), ("update_certificate", 1)]
STEP_2_STOPS = [
    ("update_certificate", 1),
    ("detach_thing_principal", 1),
    ("detach_policy", 1),
    ("delete_certificate", 1),
]


def test_a_rotation_killed_between_calls_is_finished_by_the_next_run(iot, tmp_path):
    params = {
        "devices": [{"name": "d0", "certificate": "aws_keys", "policies": ["p"]}],
        "fleet_group": "fg",
        "output_dir": str(tmp_path / "out"),
    }

    def once(rule, kill=None):
        spec = fleet.validate_fleet({**params, "rotation": rule})
        call = Caller(iot.client, RateBudget(FAST), max_attempts=2)
        if kill:
            call = Killing(call, *kill, iot, ["d0"])
        return fleet.run_fleet(call, spec, False)

    once({})
    (old,) = active_certificates(iot, "d0")
    time.sleep(0.01)  # creation dates have milliseconds
    request = {"devices": ["d0"], "requested_on": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    time.sleep(0.01)
    for stop in STEP_1_STOPS:
        with pytest.raises(Killed):
            once(request, stop)
        assert old in active_certificates(iot, "d0")
    plan, _outcome, _seconds = once(request, ("delete_certificate", 1))  # finishes step 1, deletes nothing
    assert plan.devices[0].rotation_stage == "issue"
    now = active_certificates(iot, "d0")
    assert len(now) == 2
    (new,) = set(now) - {old}
    assert len(iot.client.list_certificates()["certificates"]) == 2  # one new certificate, whatever the stops
    confirmed = {**request, "confirmed": [new]}
    for stop in STEP_2_STOPS:
        with pytest.raises(Killed):
            once(confirmed, stop)
        assert new in active_certificates(iot, "d0")
    _plan, outcome, _seconds = once(confirmed, ("create_keys_and_certificate", 1))
    assert outcome.failures == []
    assert active_certificates(iot, "d0") == [new]
    ids = [c["certificateId"] for c in iot.client.list_certificates()["certificates"]]
    assert ids == [new]  # the old one deleted, no orphan
    out = tmp_path / "out" / "d0"
    assert crypto.certificate_id((out / "certificate.pem.crt").read_bytes()) == new
    key = (out / "private.pem.key").read_bytes()
    assert crypto.private_key_public_key(key) == crypto.certificate_public_key(
        (out / "certificate.pem.crt").read_bytes()
    )
    assert sorted(os.listdir(out)) == ["certificate.pem.crt", "private.pem.key"]
    iot.calls.clear()
    once(confirmed)
    assert iot.mutating() == []


def test_files_moved_halfway_are_finished(iot, tmp_path):
    """A run stopped between the two moves of step 2 (the key moved, the certificate not): the pair still
    matches, and the next run finishes the move."""
    params = {
        "devices": [{"name": "d0", "certificate": "aws_keys", "policies": ["p"]}],
        "fleet_group": "fg",
        "output_dir": str(tmp_path / "out"),
    }
    out = tmp_path / "out" / "d0"
    local = fleet.read_local_device(str(tmp_path / "out"), "d0")
    assert local.cert_id is None
    call = Caller(iot.client, RateBudget(FAST), max_attempts=2)
    fleet.run_fleet(call, fleet.validate_fleet(params), False)
    (old,) = active_certificates(iot, "d0")
    # Make a second certificate by hand as step 1 would, then stop halfway through the moves.
    answer = iot.client.create_keys_and_certificate(setAsActive=True)
    iot.client.attach_thing_principal(thingName="d0", principal=answer["certificateArn"])
    iot.client.attach_policy(policyName="p", target=answer["certificateArn"])
    (out / "next").mkdir(mode=0o700)
    (out / "next" / "certificate.pem.crt").write_text(answer["certificatePem"])
    os.replace(out / "private.pem.key", out / "old.key")
    (out / "private.pem.key").write_text(answer["keyPair"]["PrivateKey"])
    os.chmod(out / "private.pem.key", 0o600)
    local = fleet.read_local_device(str(tmp_path / "out"), "d0")
    assert (local.overlay, local.cert_id, local.main_cert_id) == (True, answer["certificateId"], old)
    assert local.key_public == local.cert_public
    plan, outcome, _seconds = fleet.run_fleet(
        call, fleet.validate_fleet({**params, "rotation": {"confirmed": [answer["certificateId"]]}}), False
    )
    assert outcome.failures == []
    assert plan.devices[0].changes == [f"rotate: retire {old}", "rotate: move the new files in place"]
    assert crypto.certificate_id((out / "certificate.pem.crt").read_bytes()) == answer["certificateId"]
    assert not (out / "next").exists()
