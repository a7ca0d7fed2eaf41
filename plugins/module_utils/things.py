# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Things, thing types and thing groups: validate, read, plan, ensure.

Every resource follows one path for check mode, diff and the real change:
``validate_*`` turns module parameters into a desired state (raising
``ValidationError`` before any client exists), ``read_*`` returns the resource
as a snake_case dict or None, ``plan_*`` compares the two and says which calls
would bring the resource to the desired state, and ``ensure_*`` runs the plan
(or, in check mode, returns what the plan predicts) as ``(changed, before,
after)``. The plan functions are pure, so the unit tests cover them without a
client.

Only what the user manages is compared: an option left unset keeps the remote
value, so server-added fields never cause a change.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, retry, tagging
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import (
    AwsCallError,
    ClientError,
    ValidationError,
    error_code,
    is_error,
    paginate,
    snake_dict,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import error_message
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    ATTRIBUTE_NAME_PATTERN,
    MAX_SEARCHABLE_ATTRIBUTES,
    MAX_THING_GROUP_ATTRIBUTES,
    MAX_THING_GROUPS_PER_THING,
    check_attribute_name,
    check_attribute_value,
    check_attributes,
    check_count,
    check_description,
    check_positive_int,
    check_string,
    check_tags,
    check_thing_attribute_count,
    check_thing_group_name,
    check_thing_name,
    check_thing_type_name,
    check_unique_names,
)

NOT_FOUND = "ResourceNotFoundException"
PAGE_SIZE = 250  # the largest page AWS serves: fewer calls against low list quotas (ListThings: 10 TPS)
INVALID_REQUEST = "InvalidRequestException"

Sleep = Callable[[float], None]
Clock = Callable[[], float]


# ---------------------------------------------------------------------------
# Shared helpers


# Attributes as AWS keeps them: an empty value means the attribute does not exist.
visible_attributes = iot_access.visible_attributes


def attributes_after(current: Mapping[str, str], desired: Optional[Mapping[str, str]], purge: bool) -> dict[str, str]:
    """The attributes a resource will have: desired replaces (purge) or merges into current.

    An empty desired value removes the attribute in both modes, as in AWS.
    """
    if desired is None:
        return dict(current)
    if purge:
        return visible_attributes(desired)
    merged = dict(current)
    merged.update(desired)
    return visible_attributes(merged)


def attribute_delta(current: Mapping[str, str], final: Mapping[str, str]) -> dict[str, str]:
    """The merge payload turning current into final: changed values, and "" for each removed name."""
    delta = {k: v for k, v in final.items() if current.get(k) != v}
    delta.update({k: "" for k in current if k not in final})
    return delta


def names_after(current: list[str], desired: Optional[list[str]], purge: bool) -> list[str]:
    """A set of names (thing groups, ...) after a replace (purge) or a merge, sorted."""
    if desired is None:
        return sorted(current)
    if purge:
        return sorted(set(desired))
    return sorted(set(current) | set(desired))


_message = error_message


# The deadline-bound retry of DeleteThing and DeleteThingType (the schedule lives in retry.py).
call_with_retry = retry.until_deadline


def _timeout_error(operation: str, hint: str) -> Callable[[BaseException], Exception]:
    def build(error: BaseException) -> Exception:
        response = getattr(error, "response", None) or {}
        return AwsCallError(
            operation=operation,
            code=error_code(error) or "Unknown",
            message=_message(error),
            request_id=response.get("ResponseMetadata", {}).get("RequestId"),
            hint=hint,
        )

    return build


def _state(params: Mapping[str, Any], choices: tuple[str, ...]) -> str:
    state = params.get("state") or choices[0]
    if state not in choices:
        raise ValidationError("state", f"must be one of {', '.join(choices)}, got {state!r}")
    return state


def _optional(params: Mapping[str, Any], key: str, check: Callable[[str, Any], Any]) -> Any:
    value = params.get(key)
    return None if value is None else check(key, value)


def _thing_type_option(field: str, value: Any) -> str:
    """A thing type name, or "" for "no thing type"."""
    value = check_string(field, value)
    return value if value == "" else check_thing_type_name(field, value)


def _billing_group_option(field: str, value: Any) -> str:
    """A billing group name, or "" for "in no billing group"."""
    value = check_string(field, value)
    return value if value == "" else check_thing_group_name(field, value)


def _parent_option(field: str, value: Any) -> str:
    """A parent group name, or "" for "top level"."""
    value = check_string(field, value)
    return value if value == "" else check_thing_group_name(field, value)


def _thing_group_list(field: str, value: Any) -> list[str]:
    names = check_unique_names(field, value, check_thing_group_name)
    check_count(field, len(names), MAX_THING_GROUPS_PER_THING, "a thing", "thing groups", verb="can be in")
    return names


# ---------------------------------------------------------------------------
# Things


def validate_thing(params: Mapping[str, Any]) -> dict[str, Any]:
    """The desired thing from module parameters; every rule that needs no remote state is checked here."""
    desired: dict[str, Any] = {
        "name": check_thing_name("name", params.get("name")),
        "state": _state(params, ("present", "absent")),
        "thing_type": _optional(params, "thing_type", _thing_type_option),
        "attributes": _optional(params, "attributes", check_attributes),
        "purge_attributes": bool(params.get("purge_attributes", True)),
        "thing_groups": _optional(params, "thing_groups", _thing_group_list),
        "purge_thing_groups": bool(params.get("purge_thing_groups", True)),
        # A billing group name, "" for none, None to leave it alone (issue 16).
        "billing_group": _optional(params, "billing_group", _billing_group_option),
        "force": bool(params.get("force", False)),
        "wait_timeout": check_positive_int("wait_timeout", params.get("wait_timeout", 60)),
    }
    if desired["attributes"] is not None:
        count = len(visible_attributes(desired["attributes"]))
        # Without a thing_type option the limit depends on the thing's current type: the
        # exact check runs in plan_thing once it is known; 50 is the bound in any case.
        typed = desired["thing_type"] != "" if desired["thing_type"] is not None else True
        check_thing_attribute_count("attributes", count, typed)
    return desired


def read_thing(client: Any, name: str) -> Optional[dict[str, Any]]:
    """The thing with its direct thing groups, or None when it does not exist."""
    return iot_access.read_thing(iot_access.as_call(client), name)


def plan_thing(current: Optional[Mapping[str, Any]], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The calls that make `current` (None: absent) look like `desired`, and the predicted result.

    Returns a dict with ``create`` (CreateThing arguments or None), ``update``
    (UpdateThing arguments or None), ``groups_to_add``, ``groups_to_remove`` and
    ``after`` (the thing as it will be). Limits that depend on the current state
    (attribute count after a merge or type change, groups after a merge) are
    checked here, after the read and before any change.
    """
    name = desired["name"]
    if current is None:
        thing_type = desired["thing_type"] or None
        attributes = attributes_after({}, desired["attributes"], True)
        groups = names_after([], desired["thing_groups"], True)
        create: Optional[dict[str, Any]] = {"thingName": name}
        if thing_type:
            create["thingTypeName"] = thing_type
        if attributes:
            create["attributePayload"] = {"attributes": attributes}
        update = None
        to_add, to_remove = groups, []
    else:
        thing_type = current["thing_type"] if desired["thing_type"] is None else (desired["thing_type"] or None)
        attributes = attributes_after(current["attributes"], desired["attributes"], desired["purge_attributes"])
        groups = names_after(current["thing_groups"], desired["thing_groups"], desired["purge_thing_groups"])
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
    billing = billing_before if desired.get("billing_group") is None else (desired["billing_group"] or None)
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


def ensure_thing_present(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    name = desired["name"]
    before = read_thing(client, name)
    plan = plan_thing(before, desired)
    if not plan_changes(plan):
        return False, before, before
    if check_mode:
        return True, before, plan["after"]
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
    return True, before, read_thing(client, name)


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
    call_with_retry(
        lambda: client.delete_thing(thingName=name),
        _still_attached,
        wait_timeout,
        _timeout_error("DeleteThing", hint),
        sleep,
        clock,
    )


def ensure_thing_absent(
    client: Any,
    desired: Mapping[str, Any],
    check_mode: bool,
    on_detach: Optional[Callable[[list[str]], None]] = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> tuple[bool, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """Delete the thing; attached principals make it fail unless force, which detaches them first.

    Only the attachment is removed: the certificates themselves are left as they are.
    """
    name = desired["name"]
    before = read_thing(client, name)
    if before is None:
        return False, None, None
    principals = list_thing_principals(client, name)
    if principals and not desired["force"]:
        raise ValidationError(
            "force",
            f"thing {name!r} still has {len(principals)} principal(s) attached ({', '.join(principals)}); "
            "detach them first, or set force=true to detach them and delete the thing",
        )
    if on_detach is not None and principals:
        on_detach(principals)
    if check_mode:
        return True, before, None
    for principal in principals:
        iot_access.unless_gone(
            iot_access.as_call(client), "detach_thing_principal", thingName=name, principal=principal
        )
    delete_thing(client, name, desired["wait_timeout"], sleep, clock)
    return True, before, None


# ---------------------------------------------------------------------------
# Thing types


def _searchable_attributes(field: str, value: Any) -> list[str]:
    names = check_unique_names(field, value, check_attribute_name)
    check_count(field, len(names), MAX_SEARCHABLE_ATTRIBUTES, "a thing type", "searchable attributes")
    return names


def validate_thing_type(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": check_thing_type_name("name", params.get("name")),
        "state": _state(params, ("present", "deprecated", "absent")),
        "description": _optional(params, "description", check_description),
        "searchable_attributes": _optional(params, "searchable_attributes", _searchable_attributes),
        "wait_timeout": check_positive_int("wait_timeout", params.get("wait_timeout", 360)),
    }


def describe_thing_type(client: Any, name: str) -> Optional[dict[str, Any]]:
    raw = iot_access.unless_gone(iot_access.as_call(client), "describe_thing_type", thingTypeName=name)
    if raw is None:
        return None
    raw.pop("ResponseMetadata", None)
    return raw


def normalize_thing_type(raw: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    if raw is None:
        return None
    properties = raw.get("thingTypeProperties") or {}
    metadata = raw.get("thingTypeMetadata") or {}
    return {
        "name": raw["thingTypeName"],
        "arn": raw.get("thingTypeArn"),
        "thing_type_id": raw.get("thingTypeId"),
        "description": properties.get("thingTypeDescription") or None,
        "searchable_attributes": list(properties.get("searchableAttributes") or []),
        "deprecated": bool(metadata.get("deprecated", False)),
    }


def read_thing_type(client: Any, name: str) -> Optional[dict[str, Any]]:
    return normalize_thing_type(describe_thing_type(client, name))


def plan_thing_type(current_raw: Optional[Mapping[str, Any]], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Calls for state present or deprecated: ``create`` (CreateThingType arguments), ``update``
    (UpdateThingType arguments), ``deprecate`` (None, True to deprecate, False to undo) and ``after``."""
    name = desired["name"]
    want_deprecated = desired["state"] == "deprecated"
    current = normalize_thing_type(current_raw)
    if current is None:
        properties: dict[str, Any] = {}
        if desired["description"]:
            properties["thingTypeDescription"] = desired["description"]
        if desired["searchable_attributes"]:
            properties["searchableAttributes"] = desired["searchable_attributes"]
        create: Optional[dict[str, Any]] = {"thingTypeName": name}
        if properties:
            create["thingTypeProperties"] = properties
        after = {
            "name": name,
            "arn": None,
            "thing_type_id": None,
            "description": desired["description"] or None,
            "searchable_attributes": list(desired["searchable_attributes"] or []),
            "deprecated": want_deprecated,
        }
        return {"create": create, "update": None, "deprecate": True if want_deprecated else None, "after": after}

    description = current["description"] if desired["description"] is None else (desired["description"] or None)
    searchable = (
        current["searchable_attributes"]
        if desired["searchable_attributes"] is None
        else desired["searchable_attributes"]
    )
    update = None
    if description != current["description"] or sorted(searchable) != sorted(current["searchable_attributes"]):
        # Send every property, the unmanaged MQTT 5 configuration included, so that the
        # update cannot drop what it does not mean to change.
        properties = dict((current_raw or {}).get("thingTypeProperties") or {})
        properties.pop("thingTypeDescription", None)
        if description is not None:
            properties["thingTypeDescription"] = description
        properties["searchableAttributes"] = list(searchable)
        update = {"thingTypeName": name, "thingTypeProperties": properties}
    deprecate = None
    if want_deprecated != current["deprecated"]:
        deprecate = want_deprecated
    after = dict(current, description=description, searchable_attributes=list(searchable), deprecated=want_deprecated)
    return {"create": None, "update": update, "deprecate": deprecate, "after": after}


def ensure_thing_type_present(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """State present or deprecated: create, update what UpdateThingType can change, (un)deprecate."""
    name = desired["name"]
    raw = describe_thing_type(client, name)
    before = normalize_thing_type(raw)
    plan = plan_thing_type(raw, desired)
    if not (plan["create"] or plan["update"] or plan["deprecate"] is not None):
        return False, before, before
    if check_mode:
        return True, before, plan["after"]
    if plan["create"]:
        client.create_thing_type(**plan["create"])
    # A deprecated type is undeprecated before it is updated, and updated before it is deprecated.
    if plan["deprecate"] is False:
        client.deprecate_thing_type(thingTypeName=name, undoDeprecate=True)
    if plan["update"]:
        client.update_thing_type(**plan["update"])
    if plan["deprecate"] is True:
        client.deprecate_thing_type(thingTypeName=name, undoDeprecate=False)
    return True, before, read_thing_type(client, name)


def delete_thing_type(
    client: Any, name: str, wait_timeout: float, sleep: Sleep = time.sleep, clock: Clock = time.monotonic
) -> None:
    """DeleteThingType, retried while AWS refuses it (it allows deletion 5 minutes after deprecation)."""
    hint = (
        f"AWS still refused to delete thing type {name!r} {wait_timeout}s after it was deprecated; AWS deletes a "
        "thing type only 5 minutes after its deprecation: raise wait_timeout or run the task again later."
    )

    def attempt() -> None:
        # Deleted meanwhile: done.
        iot_access.unless_gone(iot_access.as_call(client), "delete_thing_type", thingTypeName=name)

    call_with_retry(
        attempt,
        lambda e: is_error(e, INVALID_REQUEST),
        wait_timeout,
        _timeout_error("DeleteThingType", hint),
        sleep,
        clock,
    )


def ensure_thing_type_absent(
    client: Any,
    desired: Mapping[str, Any],
    check_mode: bool,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> tuple[bool, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """Deprecate (when needed), then delete, waiting up to wait_timeout for AWS to allow it."""
    name = desired["name"]
    before = read_thing_type(client, name)
    if before is None:
        return False, None, None
    things = client.list_things(thingTypeName=name, maxResults=10).get("things", [])
    if things:
        names = ", ".join(t["thingName"] for t in things)
        raise ValidationError(
            "state",
            f"thing type {name!r} still has things of this type ({names}{', ...' if len(things) >= 10 else ''}); "
            "change their thing_type or remove them first",
        )
    if check_mode:
        return True, before, None
    if not before["deprecated"]:
        client.deprecate_thing_type(thingTypeName=name, undoDeprecate=False)
    delete_thing_type(client, name, desired["wait_timeout"], sleep, clock)
    return True, before, None


# ---------------------------------------------------------------------------
# Thing groups


def _group_attributes(field: str, value: Any) -> dict[str, str]:
    attributes = check_attributes(field, value)
    check_count(field, len(visible_attributes(attributes)), MAX_THING_GROUP_ATTRIBUTES, "a thing group", "attributes")
    return attributes


def validate_thing_group(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": check_thing_group_name("name", params.get("name")),
        "state": _state(params, ("present", "absent")),
        "parent": _optional(params, "parent", _parent_option),
        "description": _optional(params, "description", check_description),
        "attributes": _optional(params, "attributes", _group_attributes),
        "purge_attributes": bool(params.get("purge_attributes", True)),
        "tags": _optional(params, "tags", check_tags),
        "purge_tags": bool(params.get("purge_tags", True)),
    }


def read_thing_group(client: Any, name: str, with_tags: bool = False) -> Optional[dict[str, Any]]:
    """The thing group (tags only when asked: they cost a call), or None when it does not exist."""
    raw = iot_access.unless_gone(iot_access.as_call(client), "describe_thing_group", thingGroupName=name)
    if raw is None:
        return None
    properties = raw.get("thingGroupProperties") or {}
    metadata = raw.get("thingGroupMetadata") or {}
    group: dict[str, Any] = {
        "name": raw["thingGroupName"],
        "arn": raw.get("thingGroupArn"),
        "thing_group_id": raw.get("thingGroupId"),
        "parent": metadata.get("parentGroupName") or None,
        "description": properties.get("thingGroupDescription") or None,
        "attributes": visible_attributes((properties.get("attributePayload") or {}).get("attributes")),
        "version": raw.get("version"),
    }
    if raw.get("queryString"):
        group["query_string"] = raw["queryString"]
    if with_tags:
        tags = paginate(client, "list_tags_for_resource", "tags", resourceArn=group["arn"])
        group["tags"] = {t["Key"]: t.get("Value", "") for t in tags}
    return group


def plan_thing_group(current: Optional[Mapping[str, Any]], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Calls for state present: ``create`` (CreateThingGroup arguments), ``update`` (UpdateThingGroup
    arguments), ``tags_to_set`` (dict), ``tags_to_remove`` (list) and ``after``."""
    name = desired["name"]
    if current is None:
        attributes = attributes_after({}, desired["attributes"], True)
        tags = dict(desired["tags"] or {})
        create: Optional[dict[str, Any]] = {"thingGroupName": name}
        if desired["parent"]:
            create["parentGroupName"] = desired["parent"]
        properties: dict[str, Any] = {}
        if desired["description"]:
            properties["thingGroupDescription"] = desired["description"]
        if attributes:
            properties["attributePayload"] = {"attributes": attributes}
        if properties:
            create["thingGroupProperties"] = properties
        if tags:
            create["tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        after: dict[str, Any] = {
            "name": name,
            "arn": None,
            "thing_group_id": None,
            "parent": desired["parent"] or None,
            "description": desired["description"] or None,
            "attributes": attributes,
            "version": None,
        }
        if desired["tags"] is not None:
            after["tags"] = tags
        return {"create": create, "update": None, "tags_to_set": {}, "tags_to_remove": [], "after": after}

    if current.get("query_string"):
        raise ValidationError(
            "name",
            f"{name!r} is a dynamic thing group (query {current['query_string']!r}); this module manages static groups",
        )
    if desired["parent"] is not None and (desired["parent"] or None) != current["parent"]:
        where = f"under {desired['parent']!r}" if desired["parent"] else "at the top level"
        raise ValidationError(
            "parent",
            f"thing group {name!r} has parent {current['parent']!r}; AWS cannot change a thing group's parent after "
            f"creation: remove the group and create it again {where}",
        )
    description = current["description"] if desired["description"] is None else (desired["description"] or None)
    attributes = attributes_after(current["attributes"], desired["attributes"], desired["purge_attributes"])
    check_count("attributes", len(attributes), MAX_THING_GROUP_ATTRIBUTES, "a thing group", "attributes")
    properties = {}
    if description != current["description"]:
        properties["thingGroupDescription"] = description or ""
    delta = attribute_delta(current["attributes"], attributes)
    if delta:
        properties["attributePayload"] = {"attributes": delta, "merge": True}
    update = None
    if properties:
        update = {"thingGroupName": name, "thingGroupProperties": properties}
        if current.get("version") is not None:
            update["expectedVersion"] = current["version"]
    after = dict(current, description=description, attributes=attributes)
    tags_to_set: dict[str, str] = {}
    tags_to_remove: list[str] = []
    if desired["tags"] is not None:
        current_tags = current.get("tags") or {}
        tags = tagging.desired_tags(current_tags, desired["tags"], desired["purge_tags"])
        tags_to_set = {k: v for k, v in tags.items() if current_tags.get(k) != v}
        tags_to_remove = sorted(k for k in current_tags if k not in tags)
        after["tags"] = tags
    return {
        "create": None,
        "update": update,
        "tags_to_set": tags_to_set,
        "tags_to_remove": tags_to_remove,
        "after": after,
    }


def ensure_thing_group_present(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    name = desired["name"]
    with_tags = desired["tags"] is not None
    before = read_thing_group(client, name, with_tags)
    plan = plan_thing_group(before, desired)
    if not (plan["create"] or plan["update"] or plan["tags_to_set"] or plan["tags_to_remove"]):
        return False, before, before
    if check_mode:
        return True, before, plan["after"]
    if plan["create"]:
        client.create_thing_group(**plan["create"])
    if plan["update"]:
        client.update_thing_group(**plan["update"])
    if before and (plan["tags_to_set"] or plan["tags_to_remove"]):
        # Untags before it tags: replacing tags near the 50-tag limit would overflow otherwise.
        tagging.apply_tags(client, before["arn"], before.get("tags") or {}, plan["after"]["tags"])
    return True, before, read_thing_group(client, name, with_tags)


def ensure_thing_group_absent(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """Delete the group; a group with child groups is refused with their names."""
    name = desired["name"]
    before = read_thing_group(client, name)
    if before is None:
        return False, None, None
    children = paginate(
        client, "list_thing_groups", "thingGroups", parentGroup=name, recursive=False, maxResults=PAGE_SIZE
    )
    if children:
        names = ", ".join(sorted(c["groupName"] for c in children))
        raise ValidationError(
            "state",
            f"thing group {name!r} still has child groups ({names}); AWS refuses to delete it: remove them first",
        )
    if check_mode:
        return True, before, None
    client.delete_thing_group(thingGroupName=name)
    return True, before, None


# ---------------------------------------------------------------------------
# Thing info


def _attribute_filter(field: str, value: Any) -> tuple[str, str]:
    text = check_string(field, value)
    if "=" not in text:
        raise ValidationError(
            field, f"must be NAME=VALUE (attribute names match {ATTRIBUTE_NAME_PATTERN}), got {text!r}"
        )
    name, attribute_value = text.split("=", 1)
    return check_attribute_name(field, name), check_attribute_value(field, attribute_value)


def validate_thing_info(params: Mapping[str, Any]) -> dict[str, Any]:
    query = {
        "name": _optional(params, "name", check_thing_name),
        "thing_type": _optional(params, "thing_type", check_thing_type_name),
        "attribute": _optional(params, "attribute", _attribute_filter),
        "thing_group": _optional(params, "thing_group", check_thing_group_name),
        "recursive": bool(params.get("recursive", False)),
        "include_groups": bool(params.get("include_groups", False)),
    }
    if query["name"] is not None:
        others = [k for k in ("thing_type", "attribute", "thing_group") if query[k] is not None]
        if others:
            raise ValidationError("name", f"cannot be combined with {', '.join(others)}: a name selects one thing")
    if query["recursive"] and query["thing_group"] is None:
        raise ValidationError("recursive", "applies to thing_group only; set thing_group too")
    return query


def _matches(thing: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    if query["thing_type"] is not None and thing.get("thingTypeName") != query["thing_type"]:
        return False
    if query["attribute"] is not None:
        name, value = query["attribute"]
        if (thing.get("attributes") or {}).get(name) != value:
            return False
    return True


def _describe_or_none(client: Any, name: str) -> Optional[dict[str, Any]]:
    raw = iot_access.unless_gone(iot_access.as_call(client), "describe_thing", thingName=name)
    if raw is None:
        return None
    raw.pop("ResponseMetadata", None)
    return raw


def find_things(client: Any, query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Things matching the query, all pages, snake_case, sorted by name; attribute names kept as they are."""
    if query["name"] is not None:
        found = _describe_or_none(client, query["name"])
        raws = [found] if found else []
    elif query["thing_group"] is not None:
        names = paginate(
            client,
            "list_things_in_thing_group",
            "things",
            thingGroupName=query["thing_group"],
            recursive=query["recursive"],
            maxResults=PAGE_SIZE,
        )
        raws = [
            raw for raw in (_describe_or_none(client, n) for n in sorted(set(names))) if raw and _matches(raw, query)
        ]
    else:
        params: dict[str, Any] = {"thingTypeName": query["thing_type"], "maxResults": PAGE_SIZE}
        if query["attribute"] is not None:
            params["attributeName"], params["attributeValue"] = query["attribute"]
        raws = paginate(client, "list_things", "things", **params)
    things = []
    for raw in sorted(raws, key=lambda r: r["thingName"]):
        thing = snake_dict(raw)
        thing["attributes"] = dict(raw.get("attributes") or {})
        if query["include_groups"]:
            try:
                groups = paginate(
                    client,
                    "list_thing_groups_for_thing",
                    "thingGroups",
                    thingName=raw["thingName"],
                    maxResults=PAGE_SIZE,
                )
            except ClientError as error:
                if not is_error(error, NOT_FOUND):  # deleted since it was listed
                    raise
                groups = []
            thing["thing_groups"] = sorted(g["groupName"] for g in groups)
        things.append(thing)
    return things


# ---------------------------------------------------------------------------
# Results

THING_DIFF_KEYS = ("name", "thing_type", "attributes", "thing_groups", "billing_group")
THING_TYPE_DIFF_KEYS = ("name", "description", "searchable_attributes", "deprecated")
THING_GROUP_DIFF_KEYS = ("name", "parent", "description", "attributes", "tags")


def diff_view(resource: Optional[Mapping[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """What the user manages, for --diff: identifiers and versions that only AWS sets are left out."""
    if not resource:
        return {}
    return {k: resource[k] for k in keys if k in resource}
