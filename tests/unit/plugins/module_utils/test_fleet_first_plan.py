"""The fleet's first plan of a new fleet (issue 10): declared prerequisites, thing types, readable plans.

A first ``--check`` of a play that creates a policy and a thing type before the fleet task must plan, not
fail; a prerequisite nothing creates must fail in check mode too, naming it; a thing type AWS would refuse at
CreateThing is found while planning; pruned devices show their certificates; one diff entry per device.
"""

from __future__ import annotations

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

ARN = "arn:aws:iot:eu-west-1:123456789012:cert/"


def spec_of(devices, check_mode=False, **extra):
    params = {"devices": devices, "fleet_group": "fg", "output_dir": "/nonexistent-fleet-out", **extra}
    spec = fleet.validate_fleet(params)
    spec.check_mode = check_mode
    return spec


NEW_DEVICE = {"name": "a", "thing_type": "sensor", "certificate": "csr", "policies": ["device-policy"]}
DECLARED = {"policies": ["device-policy"], "thing_types": ["sensor"]}


def empty_account(**extra):
    """Nothing exists: no group, no policy, no thing type (as read by read_fleet_state)."""
    return fleet.Snapshot(
        groups={"fg": None}, policy_targets={"device-policy": None}, thing_types={"sensor": None}, **extra
    )


def test_check_mode_plans_declared_policy_and_thing_type_as_made_by_earlier_tasks():
    spec = spec_of([NEW_DEVICE], check_mode=True, declared_resources=DECLARED)
    plan = fleet.plan_fleet(spec, empty_account())
    device = plan.devices[0]
    assert (device.action, device.error) == ("create", None)
    assert device.create_thing == {"thingName": "a", "thingTypeName": "sensor"}
    assert device.policies_to_attach == ["device-policy"]
    assert plan.made_by_earlier_tasks == {"policies": ["device-policy"], "thing_types": ["sensor"]}
    assert fleet.plan_result(plan)["made_by_earlier_tasks"] == plan.made_by_earlier_tasks


@pytest.mark.parametrize("check_mode", [True, False])
def test_missing_policy_nothing_declares_fails_naming_it(check_mode):
    spec = spec_of([{**NEW_DEVICE, "thing_type": None}], check_mode=check_mode)
    device = fleet.plan_fleet(spec, empty_account()).devices[0]
    assert device.action == "failed"
    assert device.error.startswith("policies: policy device-policy does not exist; create it first")
    assert "declared_resources.policies" in device.error


@pytest.mark.parametrize("check_mode", [True, False])
def test_missing_thing_type_nothing_declares_fails_while_planning(check_mode):
    # Before: predicted fine, then CreateThing failed with ResourceNotFoundException without naming the type.
    spec = spec_of([{"name": "a", "thing_type": "sensor"}], check_mode=check_mode)
    device = fleet.plan_fleet(spec, empty_account()).devices[0]
    assert device.action == "failed"
    assert device.error.startswith("thing_type: thing type sensor does not exist; create it first")
    assert device.create_thing is None


def test_declared_resources_stand_in_only_in_check_mode():
    spec = spec_of([NEW_DEVICE], check_mode=False, declared_resources=DECLARED)
    plan = fleet.plan_fleet(spec, empty_account())
    assert plan.devices[0].action == "failed"
    assert "declared_resources.thing_types says an earlier task creates it" in plan.devices[0].error
    assert plan.made_by_earlier_tasks == {}


def test_deprecated_thing_type_fails_a_new_thing_but_not_one_that_has_it():
    spec = spec_of([{"name": "new", "thing_type": "old"}, {"name": "kept", "thing_type": "old"}])
    snap = fleet.Snapshot(
        groups={"fg": {"kept"}},
        things={"kept": {"thing_type": "old", "attributes": {}, "version": 1}},
        thing_types={"old": {"deprecated": True}},
    )
    plan = {d.name: d for d in fleet.plan_fleet(spec, snap).devices}
    assert plan["new"].action == "failed"
    assert "thing type old is deprecated" in plan["new"].error
    assert plan["kept"].action == "unchanged"


def test_thing_types_are_read_only_for_things_that_get_one():
    spec = spec_of(
        [
            {"name": "new", "thing_type": "t1"},
            {"name": "same", "thing_type": "t2"},
            {"name": "moved", "thing_type": "t3"},
        ]
    )
    things = {
        "same": {"thing_type": "t2", "attributes": {}, "version": 1},
        "moved": {"thing_type": "t2", "attributes": {}, "version": 1},
    }
    assert fleet.types_to_check(spec, things) == ["t1", "t3"]


@pytest.mark.parametrize(
    "declared, field",
    [
        ({"policies": ["bad policy"]}, "declared_resources.policies[0]"),
        ({"thing_types": ["a/b"]}, "declared_resources.thing_types[0]"),
        ({"groups": ["g"]}, "declared_resources"),
        ({"policies": "p"}, "declared_resources.policies"),
    ],
)
def test_declared_resources_are_checked_before_any_call(declared, field):
    with pytest.raises(ValidationError) as error:
        spec_of([NEW_DEVICE], declared_resources=declared)
    assert str(error.value).startswith(field + ":")


def test_output_dir_inside_an_installed_collection_is_refused():
    path = "/home/u/.ansible/collections/ansible_collections/iotfleet/provisioning/playbooks/keys"
    with pytest.raises(ValidationError) as error:
        spec_of([NEW_DEVICE], output_dir=path)
    assert str(error.value).startswith("output_dir:")
    assert "ansible_collections tree" in str(error.value)


def test_plan_path_in_a_missing_directory_is_made(tmp_path):
    # A fresh checkout lacks the directory: the plan is still written (check mode included).
    path = tmp_path / "plans" / "pr-42" / "plan.json"
    spec = spec_of([{"name": "a"}], plan_path=str(path))
    fleet.write_json(spec.plan_path, {"ok": True})
    assert path.read_text().strip().startswith("{")


def test_pruned_device_shows_its_certificates_and_diff_never_pairs_two_devices():
    spec = spec_of([{"name": "new"}, {"name": "kept"}], prune=True, max_prune=1)
    snap = fleet.Snapshot(
        groups={"fg": {"kept", "gone"}},
        things={n: {"thing_type": None, "attributes": {"k": n}, "version": 1} for n in ("kept", "gone")},
        principals={"gone": [ARN + "c1"]},
        certificates={"c1": {"arn": ARN + "c1", "status": "ACTIVE", "created": 1.0}},
    )
    plan = fleet.plan_fleet(spec, snap)
    gone = next(d for d in plan.devices if d.name == "gone")
    assert gone.changes == [
        "decommission",
        "detach certificate c1, then deactivate and delete it unless another thing uses it",
        "remove from groups fg",
        "delete thing",
    ]
    assert gone.before["certificates"] == [{"certificate_id": "c1", "status": "ACTIVE"}]
    assert gone.certificate_id == "c1"
    diffs = fleet.plan_diff(plan)
    assert [(d["before_header"], d["after_header"]) for d in diffs] == [
        ("device new", "device new (create)"),
        ("device gone", "device gone (prune)"),
    ]
    assert diffs[0]["before"] == {} and diffs[1]["after"] == {}


def test_summary_line_counts_every_action():
    counts = {"create": 3, "update": 5, "prune": 2, "unchanged": 43, "failed": 0, "create_thing_group": 0}
    assert fleet.summary_line(counts, False, "sensors") == "sensors: 3 create, 5 update, 2 prune, 43 unchanged"
    counts.update(failed=1, create_thing_group=2)
    assert fleet.summary_line(counts, True, "s") == (
        "s: check mode, nothing changed: 3 create, 5 update, 2 prune, 43 unchanged, 1 failed, "
        "2 thing group(s) to create"
    )


class SharedCertificateCall:
    """A certificate attached to the pruned thing and to another one: records every call made."""

    def __init__(self):
        self.calls = []

    def pages(self, method, key, **params):
        self.calls.append(method)
        assert method == "list_principal_things"
        return ["gone", "neighbour"]

    def __call__(self, method, **params):
        self.calls.append(method)
        return {}


def test_prune_only_detaches_a_certificate_another_thing_uses():
    # Before: it was deactivated first, cutting the neighbour off, and only then found shared.
    plan = fleet.DevicePlan(name="gone", action="prune", prune_principals=[ARN + "c1"])
    call = SharedCertificateCall()
    fleet.prune_device(call, spec_of([]), plan, sleep=lambda _s: None)
    assert call.calls == ["list_principal_things", "detach_thing_principal", "delete_thing"]


class CertificateCalls:
    """Answers a cold device's calls; records each (method, setAsActive or newStatus)."""

    def __init__(self):
        self.calls = []

    def pages(self, method, key, **params):
        return []

    def __call__(self, method, **params):
        self.calls.append((method, params.get("setAsActive", params.get("newStatus"))))
        if method in ("create_certificate_from_csr", "create_keys_and_certificate"):
            return {
                "certificateId": "c" * 64,
                "certificateArn": ARN + "c" * 64,
                "certificatePem": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
                "keyPair": {"PrivateKey": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"},
            }
        return {}


@pytest.mark.parametrize(
    "source, create, activate",
    [
        # The key is on disk before the call: the certificate is made ACTIVE, no UpdateCertificate (issue 11).
        ("csr", ("create_certificate_from_csr", True), []),
        # AWS's key passes through once: INACTIVE until attached and given its policies, then activated.
        ("aws_keys", ("create_keys_and_certificate", False), [("update_certificate", "ACTIVE")]),
    ],
)
def test_cold_device_makes_exactly_the_minimal_calls(tmp_path, source, create, activate):
    spec = spec_of([{"name": "a", "certificate": source, "policies": ["p"]}], output_dir=str(tmp_path))
    snap = fleet.Snapshot(groups={"fg": set()}, policy_targets={"p": set()})
    plan = fleet.plan_fleet(spec, snap)
    call = CertificateCalls()
    fleet.apply_device(call, spec, spec.devices[0], plan.devices[0])
    assert call.calls == [
        ("create_thing", None),
        ("add_thing_to_thing_group", None),
        create,
        ("attach_thing_principal", None),
        ("attach_policy", None),
        *activate,
    ]
