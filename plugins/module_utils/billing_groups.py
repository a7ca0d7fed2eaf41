# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Billing groups and their members.

A thing is in at most one billing group (DescribeThing names *the* billing group). Moving a thing removes it from
its current group first, which works whether AWS would refuse the add or move the thing itself.
``validate_billing_group`` (no call), ``read_billing_group``, ``plan_billing_group`` (pure) and the ``ensure_*``
functions returning an ``ensure.Ensured``, as the other resource families.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    check_description,
    check_thing_group_name,
    check_thing_name,
    check_unique_names,
)

PAGE_SIZE = 250
NOT_FOUND = "ResourceNotFoundException"
DIFF_KEYS = ("name", "description", "things")


@dataclass(frozen=True)
class DesiredBillingGroup:
    """The billing group the options ask for; ``description`` and ``things`` None mean "leave alone"."""

    name: str
    state: str = "present"
    description: Optional[str] = None
    things: Optional[list[str]] = None
    purge_things: bool = True


def validate_billing_group(params: Mapping[str, Any]) -> DesiredBillingGroup:
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    description = params.get("description")
    things = params.get("things")
    return DesiredBillingGroup(
        # Billing group names follow the thing group name rule ([a-zA-Z0-9:_-]+, 1-128) in the model.
        name=check_thing_group_name("name", params.get("name")),
        state=state,
        description=None if description is None else check_description("description", description),
        things=None if things is None else sorted(check_unique_names("things", things, check_thing_name)),
        purge_things=bool(params.get("purge_things", True)),
    )


def read_billing_group(client: Any, name: str, with_things: bool) -> Optional[dict[str, Any]]:
    try:
        raw = client.describe_billing_group(billingGroupName=name)
    except ClientError as error:
        if is_error(error, NOT_FOUND):
            return None
        raise
    group: dict[str, Any] = {
        "name": raw["billingGroupName"],
        "arn": raw.get("billingGroupArn"),
        "billing_group_id": raw.get("billingGroupId"),
        "description": (raw.get("billingGroupProperties") or {}).get("billingGroupDescription") or None,
        "version": raw.get("version"),
    }
    if with_things:
        group["things"] = sorted(
            paginate(client, "list_things_in_billing_group", "things", billingGroupName=name, maxResults=PAGE_SIZE)
        )
    return group


def current_billing_group_of(client: Any, thing: str) -> Optional[str]:
    """The thing's billing group; a ValidationError naming the thing when it does not exist."""
    try:
        raw = client.describe_thing(thingName=thing)
    except ClientError as error:
        if is_error(error, NOT_FOUND):
            raise ValidationError("things", f"thing {thing!r} does not exist; create it first") from error
        raise
    return raw.get("billingGroupName") or None


def plan_billing_group(current: Optional[Mapping[str, Any]], desired: DesiredBillingGroup) -> dict[str, Any]:
    """``create`` / ``update`` call arguments, ``add`` / ``remove`` thing names, and ``after``."""
    name = desired.name
    members = list((current or {}).get("things") or [])
    if desired.things is None:
        wanted = members
    elif desired.purge_things:
        wanted = list(desired.things)
    else:
        wanted = sorted(set(members) | set(desired.things))
    add = [t for t in wanted if t not in members]
    remove = [t for t in members if t not in wanted]
    if current is None:
        create: dict[str, Any] = {"billingGroupName": name}
        if desired.description:
            create["billingGroupProperties"] = {"billingGroupDescription": desired.description}
        after = {
            "name": name,
            "arn": None,
            "billing_group_id": None,
            "description": desired.description or None,
            "version": None,
        }
        if desired.things is not None:
            after["things"] = wanted
        return {"create": create, "update": None, "add": add, "remove": [], "after": after}
    description = current["description"] if desired.description is None else (desired.description or None)
    update = None
    if description != current["description"]:
        update = {
            "billingGroupName": name,
            "billingGroupProperties": {"billingGroupDescription": description or ""},
        }
        if current.get("version") is not None:
            update["expectedVersion"] = current["version"]
    after = dict(current, description=description)
    if desired.things is not None:
        after["things"] = wanted
    return {"create": None, "update": update, "add": add, "remove": remove, "after": after}


def ensure_billing_group_present(client: Any, desired: DesiredBillingGroup, check_mode: bool) -> Ensured:
    name = desired.name
    with_things = desired.things is not None
    before = read_billing_group(client, name, with_things)
    plan = plan_billing_group(before, desired)
    # Where each added thing is now: read before anything changes (and in check mode), so a missing thing fails
    # the task before the first mutating call.
    moves = {thing: current_billing_group_of(client, thing) for thing in plan["add"]}
    if not (plan["create"] or plan["update"] or plan["add"] or plan["remove"]):
        return Ensured(False, before, dict(before or {}))
    if check_mode:
        return Ensured(True, before, plan["after"])
    if plan["create"]:
        client.create_billing_group(**plan["create"])
    if plan["update"]:
        client.update_billing_group(**plan["update"])
    for thing in plan["remove"]:
        client.remove_thing_from_billing_group(billingGroupName=name, thingName=thing)
    for thing, previous in moves.items():
        if previous and previous != name:
            client.remove_thing_from_billing_group(billingGroupName=previous, thingName=thing)
        client.add_thing_to_billing_group(billingGroupName=name, thingName=thing)
    return Ensured(True, before, read_billing_group(client, name, with_things) or {})


def ensure_billing_group_absent(client: Any, desired: DesiredBillingGroup, check_mode: bool) -> Ensured:
    before = read_billing_group(client, desired.name, False)
    if before is None:
        return Ensured(False, None, None)
    if not check_mode:
        params: dict[str, Any] = {"billingGroupName": desired.name}
        if before.get("version") is not None:
            params["expectedVersion"] = before["version"]
        client.delete_billing_group(**params)
    return Ensured(True, before, None)


def diff_view(group: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    return {k: group[k] for k in DIFF_KEYS if group and k in group}


def validate_billing_group_info(params: Mapping[str, Any]) -> dict[str, Any]:
    """The billing_group_info query: a name prefix (None: every group) and whether to list members."""
    prefix = params.get("name_prefix")
    if prefix == "":
        raise ValidationError("name_prefix", "must not be empty; leave it unset to list every billing group")
    if prefix is not None:
        check_thing_group_name("name_prefix", prefix)
    return {"name_prefix": prefix, "include_things": bool(params.get("include_things"))}


def find_billing_groups(client: Any, name_prefix: Optional[str], with_things: bool) -> list[dict[str, Any]]:
    """Billing groups (all pages), described, sorted by name; members when asked."""
    listed = paginate(
        client, "list_billing_groups", "billingGroups", namePrefixFilter=name_prefix or None, maxResults=PAGE_SIZE
    )
    groups = []
    for item in sorted(listed, key=lambda g: g["groupName"]):
        group = read_billing_group(client, item["groupName"], with_things)
        if group is not None:  # deleted since it was listed
            groups.append(group)
    return groups
