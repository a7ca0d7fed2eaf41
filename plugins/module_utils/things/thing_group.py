# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thing_group module's logic: validate, read, plan, ensure present and absent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, tagging
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    PAGE_SIZE,
    _optional,
    _parent_option,
    _state,
    attribute_delta,
    attributes_after,
    visible_attributes,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_THING_GROUP_ATTRIBUTES,
    check_attributes,
    check_count,
    check_description,
    check_tags,
    check_thing_group_name,
)

# ---------------------------------------------------------------------------
# Thing groups


def _group_attributes(field: str, value: Any) -> dict[str, str]:
    attributes = check_attributes(field, value)
    check_count(field, len(visible_attributes(attributes)), MAX_THING_GROUP_ATTRIBUTES, "a thing group", "attributes")
    return attributes


@dataclass(frozen=True)
class DesiredThingGroup:
    """The thing group the options ask for; None for what the task leaves alone ("" for parent: top level)."""

    name: str
    state: str = "present"
    parent: Optional[str] = None
    description: Optional[str] = None
    attributes: Optional[dict[str, str]] = None
    purge_attributes: bool = True
    tags: Optional[dict[str, str]] = None
    purge_tags: bool = True


def validate_thing_group(params: Mapping[str, Any]) -> DesiredThingGroup:
    return DesiredThingGroup(
        name=check_thing_group_name("name", params.get("name")),
        state=_state(params, ("present", "absent")),
        parent=_optional(params, "parent", _parent_option),
        description=_optional(params, "description", check_description),
        attributes=_optional(params, "attributes", _group_attributes),
        purge_attributes=bool(params.get("purge_attributes", True)),
        tags=_optional(params, "tags", check_tags),
        purge_tags=bool(params.get("purge_tags", True)),
    )


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


def plan_group_properties(
    current: Mapping[str, Any], desired: Any
) -> tuple[Optional[str], dict[str, str], dict[str, Any]]:
    """The description and attributes an existing group (static or dynamic) will have, and the
    ``thingGroupProperties`` that change it (empty when nothing does). ``desired`` has description, attributes and
    purge_attributes, None for what the task leaves alone."""
    description = current["description"] if desired.description is None else (desired.description or None)
    attributes = attributes_after(current["attributes"], desired.attributes, desired.purge_attributes)
    check_count("attributes", len(attributes), MAX_THING_GROUP_ATTRIBUTES, "a thing group", "attributes")
    properties: dict[str, Any] = {}
    if description != current["description"]:
        properties["thingGroupDescription"] = description or ""
    delta = attribute_delta(current["attributes"], attributes)
    if delta:
        properties["attributePayload"] = {"attributes": delta, "merge": True}
    return description, attributes, properties


def plan_thing_group(current: Optional[Mapping[str, Any]], desired: DesiredThingGroup) -> dict[str, Any]:
    """Calls for state present: ``create`` (CreateThingGroup arguments), ``update`` (UpdateThingGroup
    arguments), ``tags_to_set`` (dict), ``tags_to_remove`` (list) and ``after``."""
    name = desired.name
    if current is None:
        attributes = attributes_after({}, desired.attributes, True)
        tags = dict(desired.tags or {})
        create: Optional[dict[str, Any]] = {"thingGroupName": name}
        if desired.parent:
            create["parentGroupName"] = desired.parent
        properties: dict[str, Any] = {}
        if desired.description:
            properties["thingGroupDescription"] = desired.description
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
            "parent": desired.parent or None,
            "description": desired.description or None,
            "attributes": attributes,
            "version": None,
        }
        if desired.tags is not None:
            after["tags"] = tags
        return {"create": create, "update": None, "tags_to_set": {}, "tags_to_remove": [], "after": after}

    if current.get("query_string"):
        raise ValidationError(
            "name",
            f"{name!r} is a dynamic thing group (query {current['query_string']!r}); this module manages static groups",
        )
    if desired.parent is not None and (desired.parent or None) != current["parent"]:
        where = f"under {desired.parent!r}" if desired.parent else "at the top level"
        raise ValidationError(
            "parent",
            f"thing group {name!r} has parent {current['parent']!r}; AWS cannot change a thing group's parent after "
            f"creation: remove the group and create it again {where}",
        )
    description, attributes, properties = plan_group_properties(current, desired)
    update = None
    if properties:
        update = {"thingGroupName": name, "thingGroupProperties": properties}
        if current.get("version") is not None:
            update["expectedVersion"] = current["version"]
    after = dict(current, description=description, attributes=attributes)
    tags_to_set: dict[str, str] = {}
    tags_to_remove: list[str] = []
    if desired.tags is not None:
        current_tags = current.get("tags") or {}
        tags = tagging.desired_tags(current_tags, desired.tags, desired.purge_tags)
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


def ensure_thing_group_present(client: Any, desired: DesiredThingGroup, check_mode: bool) -> Ensured:
    name = desired.name
    with_tags = desired.tags is not None
    before = read_thing_group(client, name, with_tags)
    plan = plan_thing_group(before, desired)
    if not (plan["create"] or plan["update"] or plan["tags_to_set"] or plan["tags_to_remove"]):
        return Ensured(False, before, before)
    if check_mode:
        return Ensured(True, before, plan["after"])
    if plan["create"]:
        client.create_thing_group(**plan["create"])
    if plan["update"]:
        client.update_thing_group(**plan["update"])
    if before and (plan["tags_to_set"] or plan["tags_to_remove"]):
        # Untags before it tags: replacing tags near the 50-tag limit would overflow otherwise.
        tagging.apply_tags(client, before["arn"], before.get("tags") or {}, plan["after"]["tags"])
    return Ensured(True, before, read_thing_group(client, name, with_tags))


def ensure_thing_group_absent(client: Any, desired: DesiredThingGroup, check_mode: bool) -> Ensured:
    """Delete the group; a group with child groups is refused with their names."""
    name = desired.name
    before = read_thing_group(client, name)
    if before is None:
        return Ensured(False, None, None)
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
        return Ensured(True, before, None)
    client.delete_thing_group(thingGroupName=name)
    return Ensured(True, before, None)
