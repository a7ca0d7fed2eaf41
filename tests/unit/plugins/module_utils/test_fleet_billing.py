"""The fleet's billing_group per device and in defaults (issue 16): planned from the listings, applied, idempotent."""

from __future__ import annotations

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import (
    ENGINE_OPERATIONS,
    Caller,
    RateBudget,
)

FAST = dict.fromkeys(ENGINE_OPERATIONS, 10000.0)


def run(iot, devices, check=False, **extra):
    spec = fleet.validate_fleet({"devices": devices, "fleet_group": "fg", **extra})
    iot.calls.clear()
    plan, outcome, _seconds = fleet.run_fleet(Caller(iot.client, RateBudget(FAST), max_attempts=2), spec, check)
    return plan, outcome


def billing_of(iot, thing):
    return iot.client.describe_thing(thingName=thing).get("billingGroupName")


def test_billing_group_per_device_and_in_defaults(moto_iot):
    iot = moto_iot
    for group in ("bg-a", "bg-b", "bg-other"):
        iot.client.create_billing_group(billingGroupName=group)
    iot.client.create_thing(thingName="d2")
    iot.client.add_thing_to_billing_group(billingGroupName="bg-other", thingName="d2")
    devices = [
        {"name": "d0"},
        {"name": "d1", "billing_group": "bg-b"},
        {"name": "d2"},
        {"name": "d3", "billing_group": ""},
    ]
    defaults = {"billing_group": "bg-a"}
    plan, _outcome = run(iot, devices, check=True, defaults=defaults)
    assert iot.mutating() == []
    changes = {d.name: d.changes for d in plan.devices}
    assert changes["d2"] == ["add to groups fg", "set billing group bg-a (was bg-other)"]
    assert "set billing group bg-b" in changes["d1"]
    assert not [c for c in changes["d3"] if "billing" in c]  # a new thing is in none already
    diff = {d["before_header"]: d for d in fleet.plan_diff(plan)}["device d2"]
    assert (diff["before"]["billing_group"], diff["after"]["billing_group"]) == ("bg-other", "bg-a")
    _plan, outcome = run(iot, devices, defaults=defaults, concurrency=1)
    assert outcome.failures == []
    assert [billing_of(iot, d) for d in ("d0", "d1", "d2", "d3")] == ["bg-a", "bg-b", "bg-a", None]
    # The other group is left first (a thing is in one billing group at a time).
    left = iot.calls.index("RemoveThingFromBillingGroup")
    assert iot.calls[left + 1] == "AddThingToBillingGroup"
    assert iot.mutating().count("RemoveThingFromBillingGroup") == 1
    # Again: nothing to change, no mutating call, no DescribeThing (every device is in a listed group) ...
    plan, outcome = run(iot, devices, defaults=defaults)
    assert iot.mutating() == []
    assert set(outcome.outcomes.values()) == {"unchanged"}
    # ... except d3, in none: described, as a thing in no listed group may be in another one.
    assert iot.count("DescribeThing") == 1
    # Cleared with "".
    run(iot, [{"name": "d1", "billing_group": ""}], defaults={})
    assert billing_of(iot, "d1") is None
    # Unset leaves it alone, without a read.
    run(iot, [{"name": "d0"}])
    assert billing_of(iot, "d0") == "bg-a"
    assert "ListThingsInBillingGroup" not in iot.calls


def test_a_missing_billing_group_fails_the_device_naming_it(moto_iot):
    plan, _outcome = run(moto_iot, [{"name": "d0", "billing_group": "nope"}], check=True)
    assert plan.devices[0].action == "failed"
    assert "billing group nope does not exist" in plan.devices[0].error


def test_billing_group_names_are_checked():
    with pytest.raises(ValidationError) as caught:
        fleet.validate_fleet({"devices": [{"name": "d0", "billing_group": "bad name"}], "fleet_group": "fg"})
    assert caught.value.field == "devices[0] (d0).billing_group"


def test_a_billing_group_an_earlier_task_creates_is_planned_in_check_mode_only_when_declared(moto_iot):
    iot = moto_iot
    devices = [{"name": "d0", "billing_group": "bg-new"}, {"name": "d1"}]
    plan, _outcome = run(iot, devices, check=True, check_mode=True)
    failed = next(d for d in plan.devices if d.name == "d0")
    assert failed.action == "failed"
    assert "billing group bg-new does not exist" in failed.error
    assert "declared_resources.billing_groups" in failed.error
    assert "billing_groups" not in plan.made_by_earlier_tasks  # the plan's shape without the option is unchanged

    declared = {"billing_groups": ["bg-new"]}
    plan, _outcome = run(iot, devices, check=True, check_mode=True, declared_resources=declared)
    planned = next(d for d in plan.devices if d.name == "d0")
    assert planned.action == "create" and planned.after["billing_group"] == "bg-new"
    assert plan.made_by_earlier_tasks["billing_groups"] == ["bg-new"]
    assert iot.mutating() == []
    # Outside check mode the declaration stands in for nothing: the group must exist by then.
    plan, _outcome = run(iot, devices, check=False, declared_resources=declared)
    assert next(d for d in plan.devices if d.name == "d0").action == "failed"
    assert iot.count("AddThingToBillingGroup") == 0


def test_declared_resources_names_its_three_keys(moto_iot):
    with pytest.raises(ValidationError, match="takes the keys policies, thing_types and billing_groups, got 'groups'"):
        fleet.validate_fleet({"devices": [{"name": "d0"}], "fleet_group": "fg", "declared_resources": {"groups": []}})
