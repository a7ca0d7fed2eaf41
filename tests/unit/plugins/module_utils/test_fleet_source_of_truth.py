"""Unit tests of the fleet planner on a controller without the device files (issue 10): AWS says what exists."""

from __future__ import annotations

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

ARN = "arn:aws:iot:us-east-1:123456789012:cert/"


def spec_of(devices, **extra):
    params = {"devices": devices, "fleet_group": "fg", "output_dir": "/x"}
    params.update(extra)
    return fleet.validate_fleet(params)


def snapshot(certificates, policy_targets=None, local=None):
    """Device ``a`` exists, in the fleet group, with ``certificates`` (id -> (status, created)) attached."""
    return fleet.Snapshot(
        groups={"fg": {"a"}},
        things={"a": {"thing_type": None, "attributes": {}, "version": 1}},
        principals={"a": [ARN + cert_id for cert_id in certificates]},
        certificates={
            cert_id: {"arn": ARN + cert_id, "status": status, "created": created}
            for cert_id, (status, created) in certificates.items()
        },
        policy_targets=policy_targets if policy_targets is not None else {"p": {ARN + c for c in certificates}},
        local={"a": local or fleet.LocalDevice()},
    )


@pytest.mark.parametrize("source", ["csr", "aws_keys"])
def test_no_files_and_an_active_attached_certificate_is_in_sync(source):
    spec = spec_of([{"name": "a", "certificate": source, "policies": ["p"]}])
    plan = fleet.plan_fleet(spec, snapshot({"c1": ("ACTIVE", 1)}))
    device = plan.devices[0]
    assert device.action == "unchanged"
    assert device.new_certificate is None
    assert device.changes == []
    assert (device.certificate_id, device.key) == ("c1", fleet.KEY_NOT_HERE)
    assert device.before["certificate"]["certificate_id"] == device.after["certificate"]["certificate_id"] == "c1"
    assert device.after["certificate"]["key"] == "not on this controller"
    assert fleet.plan_result(plan)["key_not_on_this_controller"] == {"count": 1, "devices": ["a"]}


def test_no_files_policies_are_converged_on_the_attached_certificate():
    spec = spec_of([{"name": "a", "certificate": "csr", "policies": ["p", "q"]}])
    device = fleet.plan_fleet(spec, snapshot({"c1": ("ACTIVE", 1)}, {"p": {ARN + "c1"}, "q": set()})).devices[0]
    assert device.action == "update"
    assert device.changes == ["attach policies q"]
    assert (device.certificate_id, device.policies_to_attach) == ("c1", ["q"])


def test_no_files_and_an_inactive_attached_certificate_is_activated_not_replaced():
    spec = spec_of([{"name": "a", "certificate": "aws_keys", "policies": ["p"]}])
    device = fleet.plan_fleet(spec, snapshot({"c1": ("INACTIVE", 1)})).devices[0]
    assert device.action == "update"
    assert device.new_certificate is None
    assert device.changes == ["activate certificate"]
    assert (device.certificate_id, device.activate) == ("c1", True)


def test_no_files_and_several_attached_certificates_uses_the_active_one():
    spec = spec_of([{"name": "a", "certificate": "csr", "policies": ["p"]}])
    certificates = {"old": ("INACTIVE", 5), "c1": ("ACTIVE", 1), "c2": ("ACTIVE", 3)}
    device = fleet.plan_fleet(spec, snapshot(certificates)).devices[0]
    assert device.action == "unchanged"
    assert (device.certificate_id, device.new_certificate) == ("c2", None)


def test_no_files_and_no_attached_certificate_still_creates_one():
    spec = spec_of([{"name": "a", "certificate": "csr"}])
    device = fleet.plan_fleet(spec, snapshot({})).devices[0]
    assert device.new_certificate == "csr"
    assert device.key is None


def test_replace_lost_keys_replaces_every_attached_certificate():
    spec = spec_of([{"name": "a", "certificate": "aws_keys", "policies": ["p"]}], replace_lost_keys=True)
    device = fleet.plan_fleet(spec, snapshot({"c1": ("ACTIVE", 1), "c2": ("INACTIVE", 2)})).devices[0]
    assert device.action == "update"
    assert device.new_certificate == "aws_keys"
    assert device.replace_certificates == [("c1", ARN + "c1"), ("c2", ARN + "c2")]
    assert device.changes == [
        "create certificate (aws_keys)",
        "replace certificate c1 (private.pem.key not on this controller)",
        "replace certificate c2 (private.pem.key not on this controller)",
    ]
    assert device.before["certificate"]["certificate_id"] == "c1"
    assert device.after["certificate"]["certificate_id"] == "(new)"
    assert fleet.plan_result(fleet.plan_fleet(spec, snapshot({"c1": ("ACTIVE", 1)})))["key_not_on_this_controller"] == {
        "count": 0,
        "devices": [],
    }


def test_replace_lost_keys_leaves_devices_with_their_files_alone():
    spec = spec_of([{"name": "a", "certificate": "csr", "policies": ["p"]}], replace_lost_keys=True)
    local = fleet.LocalDevice(key_public=b"K", cert_id="c1", cert_public=b"K", key_mode=0o600)
    device = fleet.plan_fleet(spec, snapshot({"c1": ("ACTIVE", 1)}, local=local)).devices[0]
    assert device.action == "unchanged"
    assert (device.key, device.replace_certificates) == (None, [])


def test_aws_keys_key_on_disk_without_its_certificate_still_fails():
    # The key file is here: it is never replaced, whatever is attached.
    spec = spec_of([{"name": "a", "certificate": "aws_keys"}], replace_lost_keys=True)
    local = fleet.LocalDevice(key_public=b"K", key_mode=0o600)
    device = fleet.plan_fleet(spec, snapshot({"c1": ("ACTIVE", 1)}, local=local)).devices[0]
    assert device.action == "failed"
    assert "a device key is never replaced" in device.error


def test_replace_lost_keys_must_be_a_bool():
    with pytest.raises(ValidationError, match="replace_lost_keys"):
        spec_of([{"name": "a", "certificate": "csr"}], replace_lost_keys="yes")


class Calls:
    def __init__(self, things):
        self.things = things
        self.made = []

    def __call__(self, method, **params):
        self.made.append((method, params))
        return {}

    def pages(self, method, key, **params):
        self.made.append((method, params))
        return self.things if method == "list_principal_things" else []


def test_retire_certificate_detaches_deactivates_and_deletes():
    calls = Calls(["a"])
    fleet.retire_certificate(calls, "a", "c1", ARN + "c1", sleep=lambda s: None)
    assert [made[0] for made in calls.made] == [
        "detach_thing_principal",
        "list_principal_things",
        "update_certificate",
        "list_attached_policies",
        "delete_certificate",
    ]
    assert calls.made[2][1] == {"certificateId": "c1", "newStatus": "INACTIVE"}


def test_retire_certificate_used_by_another_thing_is_only_detached():
    calls = Calls(["a", "b"])
    fleet.retire_certificate(calls, "a", "c1", ARN + "c1", sleep=lambda s: None)
    assert [made[0] for made in calls.made] == ["detach_thing_principal", "list_principal_things"]


def test_failure_warning_only_within_max_failures():
    failures = [{"name": f"d{i}", "step": "create thing", "error": "boom"} for i in range(7)]
    assert fleet.failure_warning([], 10, 3) is None
    assert fleet.failure_warning(failures[:4], 10, 3) is None  # the task fails instead
    text = fleet.failure_warning(failures[:2], 10, 3)
    assert text.startswith("2 of 10 device(s) failed (within max_failures 3")
    assert "d0 (create thing): boom; d1 (create thing): boom" in text
    text = fleet.failure_warning(failures, 10, 7)
    assert "d4" in text and "d5" not in text and text.endswith("and 2 more")
