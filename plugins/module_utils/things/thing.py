# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thing module's logic: validate, read, plan, ensure present and absent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    INVALID_REQUEST,
    PAGE_SIZE,
    Clock,
    Sleep,
    _billing_group_option,
    _message,
    _optional,
    _state,
    _thing_group_list,
    _thing_type_option,
    _timeout_error,
    attribute_delta,
    attributes_after,
    names_after,
    visible_attributes,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_THING_GROUPS_PER_THING,
    check_attributes,
    check_count,
    check_positive_int,
    check_thing_attribute_count,
    check_thing_name,
)

# ---------------------------------------------------------------------------
# Things


@dataclass(frozen=True)
class DesiredThing:
    """The thing the options ask for; None for what the task leaves alone ("" for thing_type and billing_group:
    none)."""

    name: str
    state: str = "present"
    thing_type: Optional[str] = None
    attributes: Optional[dict[str, str]] = None
    purge_attributes: bool = True
    thing_groups: Optional[list[str]] = None
    purge_thing_groups: bool = True
    billing_group: Optional[str] = None
    force: bool = False
    wait_timeout: int = 60


def validate_thing(params: Mapping[str, Any]) -> DesiredThing:
    """The desired thing from module parameters; every rule that needs no remote state is checked here."""
    desired = DesiredThing(
        name=check_thing_name("name", params.get("name")),
        state=_state(params, ("present", "absent")),
        thing_type=_optional(params, "thing_type", _thing_type_option),
        attributes=_optional(params, "attributes", check_attributes),
        purge_attributes=bool(params.get("purge_attributes", True)),
        thing_groups=_optional(params, "thing_groups", _thing_group_list),
        purge_thing_groups=bool(params.get("purge_thing_groups", True)),
        # A billing group name, "" for none, None to leave it alone (issue 16).
        billing_group=_optional(params, "billing_group", _billing_group_option),
        force=bool(params.get("force", False)),
        wait_timeout=check_positive_int("wait_timeout", params.get("wait_timeout", 60)),
    )
    if desired.attributes is not None:
        count = len(visible_attributes(desired.attributes))
        # Without a thing_type option the limit depends on the thing's current type: the
        # exact check runs in plan_thing once it is known; 50 is the bound in any case.
        typed = desired.thing_type != "" if desired.thing_type is not None else True
        check_thing_attribute_count("attributes", count, typed)
    return desired


def read_thing(client: Any, name: str) -> Optional[dict[str, Any]]:
    """The thing with its direct thing groups, or None when it does not exist."""
    return iot_access.read_thing(iot_access.as_call(client), name)


def plan_thing(current: Optional[Mapping[str, Any]], desired: DesiredThing) -> dict[str, Any]:
    """The calls that make `current` (None: absent) look like `desired`, and the predicted result.

    Returns a dict with ``create`` (CreateThing arguments or None), ``update``
    (UpdateThing arguments or None), ``groups_to_add``, ``groups_to_remove`` and
    ``after`` (the thing as it will be). Limits that depend on the current state
    (attribute count after a merge or type change, groups after a merge) are
    checked here, after the read and before any change.
    """
    name = desired.name
    if current is None:
        thing_type = desired.thing_type or None
        attributes = attributes_after({}, desired.attributes, True)
        groups = names_after([], desired.thing_groups, True)
        create: Optional[dict[str, Any]] = {"thingName": name}
        if thing_type:
            create["thingTypeName"] = thing_type
        if attributes:
            create["attributePayload"] = {"attributes": attributes}
        update = None
        to_add, to_remove = groups, []
    else:
        thing_type = current["thing_type"] if desired.thing_type is None else (desired.thing_type or None)
        attributes = attributes_after(current["attributes"], desired.attributes, desired.purge_attributes)
        groups = names_after(current["thing_groups"], desired.thing_groups, desired.purge_thing_groups)
        create = None
        update = {}
        if thing_type != current["thing_type"]:
            if thing_type:
                update["thingTypeName"] = thing_type
            else:
                update["removeThingType"] = True
        delta = attribute_delta(current["attributes"], attributes)
        if delta:
            update["attributePayload"] = {"attributes": delta, "merge": True}
        if update:
            update["thingName"] = name
            if current.get("version") is not None:
                update["expectedVersion"] = current["version"]
        else:
            update = None
        to_add = sorted(set(groups) - set(current["thing_groups"]))
        to_remove = sorted(set(current["thing_groups"]) - set(groups))

    check_thing_attribute_count("attributes", len(attributes), bool(thing_type))
    check_count("thing_groups", len(groups), MAX_THING_GROUPS_PER_THING, "a thing", "thing groups", verb="can be in")

    after = {
        "name": name,
        "arn": current["arn"] if current else None,
        "thing_id": current["thing_id"] if current else None,
        "thing_type": thing_type,
        "attributes": attributes,
        "thing_groups": groups,
        "version": current["version"] if current else None,
    }
    billing_before = (current or {}).get("billing_group")
    billing = billing_before if desired.billing_group is None else (desired.billing_group or None)
    if billing:
        after["billing_group"] = billing
    billing_change = None
    if billing != billing_before:
        billing_change = {"remove": billing_before, "add": billing}
    plan = {"create": create, "update": update, "groups_to_add": to_add, "groups_to_remove": to_remove, "after": after}
    plan["billing_group"] = billing_change  # a thing is in one billing group: leave the old one, join the new
    return plan


def plan_changes(plan: Mapping[str, Any]) -> bool:
    calls = (plan["create"], plan["update"], plan["groups_to_add"], plan["groups_to_remove"], plan.get("billing_group"))
    return any(bool(call) for call in calls)


def ensure_thing_present(client: Any, desired: DesiredThing, check_mode: bool) -> Ensured:
    name = desired.name
    before = read_thing(client, name)
    plan = plan_thing(before, desired)
    if not plan_changes(plan):
        return Ensured(False, before, before)
    if check_mode:
        return Ensured(True, before, plan["after"])
    if plan["create"]:
        client.create_thing(**plan["create"])
    if plan["update"]:
        client.update_thing(**plan["update"])
    if plan["groups_to_add"] or plan["groups_to_remove"]:
        client.update_thing_groups_for_thing(
            thingName=name, thingGroupsToAdd=plan["groups_to_add"], thingGroupsToRemove=plan["groups_to_remove"]
        )
    billing = plan.get("billing_group")
    if billing and billing["remove"]:
        client.remove_thing_from_billing_group(billingGroupName=billing["remove"], thingName=name)
    if billing and billing["add"]:
        client.add_thing_to_billing_group(billingGroupName=billing["add"], thingName=name)
    return Ensured(True, before, read_thing(client, name))


def list_thing_principals(client: Any, name: str) -> list[str]:
    return paginate(client, "list_thing_principals", "principals", thingName=name, maxResults=PAGE_SIZE)


def _still_attached(error: BaseException) -> bool:
    return is_error(error, INVALID_REQUEST) and "attached" in _message(error).lower()


def delete_thing(
    client: Any, name: str, wait_timeout: float, sleep: Sleep = time.sleep, clock: Clock = time.monotonic
) -> None:
    """DeleteThing, retried while AWS still sees principals that were just detached."""
    hint = (
        f"AWS still reported principals attached to thing {name!r} {wait_timeout}s after they were detached "
        "(detaching is eventually consistent): run the task again or raise wait_timeout."
    )
    retry.until_deadline(
        lambda: client.delete_thing(thingName=name),
        _still_attached,
        wait_timeout,
        _timeout_error("DeleteThing", hint),
        sleep,
        clock,
    )


def ensure_thing_absent(
    client: Any,
    desired: DesiredThing,
    check_mode: bool,
    on_detach: Optional[Callable[[list[str]], None]] = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> Ensured:
    """Delete the thing; attached principals make it fail unless force, which detaches them first.

    Only the attachment is removed: the certificates themselves are left as they are.
    """
    name = desired.name
    before = read_thing(client, name)
    if before is None:
        return Ensured(False, None, None)
    principals = list_thing_principals(client, name)
    if principals and not desired.force:
        raise ValidationError(
            "force",
            f"thing {name!r} still has {len(principals)} principal(s) attached ({', '.join(principals)}); "
            "detach them first, or set force=true to detach them and delete the thing",
        )
    if on_detach is not None and principals:
        on_detach(principals)
    if check_mode:
        return Ensured(True, before, None)
    for principal in principals:
        iot_access.unless_gone(
            iot_access.as_call(client), "detach_thing_principal", thingName=name, principal=principal
        )
    delete_thing(client, name, desired.wait_timeout, sleep, clock)
    return Ensured(True, before, None)
