# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dynamic thing groups: a thing group whose members are the answer to a fleet indexing query.

Same shape as the other resource families: ``validate_dynamic_group`` (no call), ``read_dynamic_group``,
``plan_dynamic_group`` (pure), ``ensure_dynamic_group_present`` / ``ensure_dynamic_group_absent`` returning
an ``ensure.Ensured`` (changed, before, after). A static group of the same name is never changed or deleted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import tagging
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.indexing import (
    QUERY_VERSION,
    THING_INDEX,
    require_thing_indexing,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import attributes_after
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_group import plan_group_properties
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_THING_GROUP_ATTRIBUTES,
    check_attributes,
    check_count,
    check_description,
    check_string,
    check_tags,
    check_thing_group_name,
)

PAGE_SIZE = 250
DIFF_KEYS = ("name", "query_string", "index_name", "query_version", "description", "attributes", "tags")


def _optional(params: Mapping[str, Any], key: str, check: Any) -> Any:
    value = params.get(key)
    return None if value is None else check(key, value)


@dataclass(frozen=True)
class DesiredDynamicGroup:
    """The dynamic group the options ask for; None for what the task leaves alone."""

    name: str
    state: str = "present"
    query_string: Optional[str] = None
    index_name: str = THING_INDEX
    query_version: str = QUERY_VERSION
    description: Optional[str] = None
    attributes: Optional[dict[str, str]] = None
    purge_attributes: bool = True
    tags: Optional[dict[str, str]] = None
    purge_tags: bool = True
    list_members: bool = False


def validate_dynamic_group(params: Mapping[str, Any]) -> DesiredDynamicGroup:
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    desired = DesiredDynamicGroup(
        name=check_thing_group_name("name", params.get("name")),
        state=state,
        query_string=_optional(params, "query_string", check_string),
        index_name=params.get("index_name") or THING_INDEX,
        query_version=params.get("query_version") or QUERY_VERSION,
        description=_optional(params, "description", check_description),
        attributes=_optional(params, "attributes", check_attributes),
        purge_attributes=bool(params.get("purge_attributes", True)),
        tags=_optional(params, "tags", check_tags),
        purge_tags=bool(params.get("purge_tags", True)),
        list_members=bool(params.get("list_members", False)),
    )
    if desired.index_name != THING_INDEX:
        raise ValidationError("index_name", f"AWS supports one index for dynamic thing groups, {THING_INDEX}")
    if desired.query_version != QUERY_VERSION:
        raise ValidationError("query_version", f"AWS supports one query version, {QUERY_VERSION}")
    if state == "present" and (desired.query_string is None or not desired.query_string.strip()):
        raise ValidationError("query_string", "is required with state=present and must not be empty")
    if desired.attributes is not None:
        check_count("attributes", len(desired.attributes), MAX_THING_GROUP_ATTRIBUTES, "a thing group", "attributes")
    return desired


def read_dynamic_group(client: Any, name: str, with_tags: bool) -> Optional[dict[str, Any]]:
    """The group, or None. A static group of that name is refused: this module does not own it."""
    try:
        raw = client.describe_thing_group(thingGroupName=name)
    except ClientError as error:
        if is_error(error, "ResourceNotFoundException"):
            return None
        raise
    if not raw.get("queryString"):
        raise ValidationError(
            "name",
            f"{name!r} is a static thing group; this module manages dynamic groups only "
            "(iotfleet.provisioning.thing_group manages static ones)",
        )
    properties = raw.get("thingGroupProperties") or {}
    group: dict[str, Any] = {
        "name": raw["thingGroupName"],
        "arn": raw.get("thingGroupArn"),
        "thing_group_id": raw.get("thingGroupId"),
        "query_string": raw["queryString"],
        "index_name": raw.get("indexName") or THING_INDEX,
        "query_version": raw.get("queryVersion") or QUERY_VERSION,
        "status": raw.get("status"),
        "description": properties.get("thingGroupDescription") or None,
        "attributes": {
            k: v for k, v in ((properties.get("attributePayload") or {}).get("attributes") or {}).items() if v != ""
        },
        "version": raw.get("version"),
    }
    if with_tags:
        group["tags"] = tagging.read_tags(client, group["arn"])
    return group


def plan_dynamic_group(current: Optional[Mapping[str, Any]], desired: DesiredDynamicGroup) -> dict[str, Any]:
    """``create`` (CreateDynamicThingGroup arguments), ``update`` (UpdateDynamicThingGroup arguments), ``after``."""
    name = desired.name
    if current is None:
        attributes = attributes_after({}, desired.attributes, True)
        properties: dict[str, Any] = {}
        if desired.description:
            properties["thingGroupDescription"] = desired.description
        if attributes:
            properties["attributePayload"] = {"attributes": attributes}
        create: dict[str, Any] = {
            "thingGroupName": name,
            "queryString": desired.query_string,
            "indexName": desired.index_name,
            "queryVersion": desired.query_version,
        }
        if properties:
            create["thingGroupProperties"] = properties
        if desired.tags:
            create["tags"] = [{"Key": k, "Value": v} for k, v in sorted(desired.tags.items())]
        after = {
            "name": name,
            "arn": None,
            "thing_group_id": None,
            "query_string": desired.query_string,
            "index_name": desired.index_name,
            "query_version": desired.query_version,
            "status": None,
            "description": desired.description or None,
            "attributes": attributes,
            "version": None,
        }
        if desired.tags is not None:
            after["tags"] = dict(desired.tags)
        return {"create": create, "update": None, "after": after}

    description, attributes, properties = plan_group_properties(current, desired)
    update: Optional[dict[str, Any]] = None
    query_changed = desired.query_string is not None and desired.query_string != current["query_string"]
    if properties or query_changed:
        update = {"thingGroupName": name, "thingGroupProperties": properties}
        if query_changed:
            update["queryString"] = desired.query_string
        if current.get("version") is not None:
            update["expectedVersion"] = current["version"]
    after = dict(current, description=description, attributes=attributes)
    if query_changed:
        after["query_string"] = desired.query_string
    if desired.tags is not None:
        after["tags"] = tagging.desired_tags(current.get("tags") or {}, desired.tags, desired.purge_tags)
    return {"create": None, "update": update, "after": after}


def _members(client: Any, name: str) -> list[str]:
    return sorted(paginate(client, "list_things_in_thing_group", "things", thingGroupName=name, maxResults=PAGE_SIZE))


def ensure_dynamic_group_present(client: Any, desired: DesiredDynamicGroup, check_mode: bool) -> Ensured:
    # The prerequisite first, in check mode too: a plan that AWS would refuse is no plan.
    require_thing_indexing(client, "query_string")
    name = desired.name
    with_tags = desired.tags is not None
    before = read_dynamic_group(client, name, with_tags)
    plan = plan_dynamic_group(before, desired)
    tags_differ = before is not None and with_tags and plan["after"].get("tags") != before.get("tags")
    changed = bool(plan["create"] or plan["update"] or tags_differ)
    if changed and not check_mode:
        if plan["create"]:
            client.create_dynamic_thing_group(**plan["create"])
        if plan["update"]:
            client.update_dynamic_thing_group(**plan["update"])
        if tags_differ and before is not None:
            tagging.apply_tags(client, before["arn"], before.get("tags") or {}, plan["after"]["tags"])
        after = read_dynamic_group(client, name, with_tags) or {}
    else:
        after = dict(plan["after"])
    if desired.list_members and after.get("arn"):
        after["members"] = _members(client, name)
    return Ensured(changed, before, after)


def ensure_dynamic_group_absent(client: Any, desired: DesiredDynamicGroup, check_mode: bool) -> Ensured:
    before = read_dynamic_group(client, desired.name, False)
    if before is None:
        return Ensured(False, None, None)
    if not check_mode:
        client.delete_dynamic_thing_group(thingGroupName=desired.name)
    return Ensured(True, before, None)


def diff_view(group: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    return {k: group[k] for k in DIFF_KEYS if group and k in group}
