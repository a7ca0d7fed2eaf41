# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thing_info module's logic: validated queries over things."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate, snake_dict
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    NOT_FOUND,
    PAGE_SIZE,
    _optional,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    ATTRIBUTE_NAME_PATTERN,
    check_attribute_name,
    check_attribute_value,
    check_string,
    check_thing_group_name,
    check_thing_name,
    check_thing_type_name,
)

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
