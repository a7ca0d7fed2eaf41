"""Planning time grows with the fleet, not with its square (issue 11: 10,000 devices planned in 85 s before).

The groups the fleet manages (FleetSpec.named_groups) are read from every device; the planner worked them out
again for each device. These tests count how often it does, whatever the number of devices.
"""

from __future__ import annotations

from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet


def _spec(count: int) -> fleet.FleetSpec:
    devices = [{"name": f"d-{i:04d}", "thing_groups": [f"g{i % 3}"], "attributes": {"k": "v"}} for i in range(count)]
    return fleet.validate_fleet({"devices": devices, "fleet_group": "fg", "state": "present"})


def _evaluations(monkeypatch, count: int) -> tuple[int, fleet.FleetPlan]:
    seen = []
    original = fleet.FleetSpec.named_groups

    def counted(spec):
        seen.append(1)
        return original.fget(spec)

    monkeypatch.setattr(fleet.FleetSpec, "named_groups", property(counted))
    snap = fleet.Snapshot(groups={"fg": {"d-0000"}, "g0": {"d-0000"}, "g1": {"d-0000"}, "g2": None})
    snap.things = {"d-0000": {"thing_type": None, "attributes": {"k": "v"}, "version": 1}}
    plan = fleet.plan_fleet(_spec(count), snap)
    return len(seen), plan


def test_the_managed_groups_are_worked_out_a_fixed_number_of_times(monkeypatch):
    small, _plan = _evaluations(monkeypatch, 3)
    large, plan = _evaluations(monkeypatch, 300)
    assert small == large <= 3
    # The plan is still the one per device: d-0000 leaves g1, every other device joins its group.
    first = plan.devices[0]
    assert (first.action, first.groups_to_remove, first.groups_to_add) == ("update", ["g1"], [])
    assert plan.devices[1].groups_to_add == ["fg", "g1"] and plan.groups_to_create == ["g2"]
