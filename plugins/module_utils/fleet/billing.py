# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A device's billing group in the fleet (issue 16): read, planned and applied beside its thing groups.

A thing is in at most one billing group. ``billing_group`` in a device (or in ``defaults``) names it; V("") means
in none; unset leaves it alone. What a thing is in is read with ListThingsInBillingGroup per named billing group
(shared pages of 250); a device found in none of them, whose billing group is to be set or cleared, is described
(DescribeThing, 350 TPS: its ``billingGroupName`` says whether it is in another one, which is left first).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional, Set

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import PAGE_SIZE, Call

NONE = ""  # in no billing group


def named_billing_groups(spec: Any) -> List[str]:
    return sorted({d.billing_group for d in spec.devices if d.billing_group})


def read_billing(call: Call, spec: Any, snap: Any) -> int:
    """``snap.billing_groups`` (group -> members, None: no such group) and ``snap.billing_of`` (device -> its
    billing group, "" for none) for the devices that name one. Returns the number of DescribeThing calls."""
    wanted = [d for d in spec.devices if d.billing_group is not None and d.name in snap.things]
    groups = named_billing_groups(spec)
    if not groups and not wanted:
        return 0

    def members(group: str) -> Optional[Set[str]]:
        things = iot_access.pages_unless_gone(
            call, "list_things_in_billing_group", "things", billingGroupName=group, maxResults=PAGE_SIZE
        )
        return None if things is None else set(things)

    with ThreadPoolExecutor(max_workers=max(1, min(spec.concurrency, len(groups) or 1))) as pool:
        snap.billing_groups = dict(zip(groups, pool.map(members, groups)))
    unknown = []
    for device in wanted:
        found = [g for g, things in snap.billing_groups.items() if things and device.name in things]
        if found:
            snap.billing_of[device.name] = found[0]
        else:
            unknown.append(device.name)

    def described(name: str) -> Optional[str]:
        answer = iot_access.unless_gone(call, "describe_thing", thingName=name)
        return None if answer is None else answer.get("billingGroupName") or NONE

    if unknown:
        with ThreadPoolExecutor(max_workers=max(1, min(spec.concurrency, len(unknown)))) as pool:
            for name, group in zip(unknown, pool.map(described, unknown)):
                snap.billing_of[name] = NONE if group is None else group
    return len(unknown)


def plan_billing(device: Any, spec: Any, snap: Any, plan: Any, exists: bool) -> None:
    """The billing group step of one device (pure): leave the current group, join the desired one."""
    desired = device.billing_group
    if desired is None:
        return
    current = snap.billing_of.get(device.name, NONE) if exists else NONE
    # In check mode a billing group an earlier task of the play creates (declared_resources) is planned as made.
    made_earlier = spec.check_mode and desired in spec.declared_billing_groups
    if desired and snap.billing_groups.get(desired) is None and not made_earlier:
        plan.error = (
            f"billing_group: billing group {desired} does not exist; create it first "
            "(iotfleet.provisioning.billing_group), or list it in declared_resources.billing_groups when an "
            "earlier task of this play creates it"
        )
        return
    if exists:
        plan.before["billing_group"] = current or None
    plan.after["billing_group"] = desired or None
    if desired == current:
        return
    plan.billing_remove = current or None
    plan.billing_add = desired or None
    if desired:
        plan.changes.append(f"set billing group {desired}" + (f" (was {current})" if current else ""))
    else:
        plan.changes.append(f"remove from billing group {current}")


def apply_billing(call: Call, name: str, plan: Any) -> None:
    """RemoveThingFromBillingGroup (a thing is in one at a time), then AddThingToBillingGroup."""
    if plan.billing_remove:
        iot_access.unless_gone(
            call, "remove_thing_from_billing_group", billingGroupName=plan.billing_remove, thingName=name
        )
    if plan.billing_add:
        call("add_thing_to_billing_group", billingGroupName=plan.billing_add, thingName=name)
