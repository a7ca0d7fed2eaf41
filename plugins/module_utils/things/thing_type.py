# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thing_type module's logic: validate, read, plan, ensure (deletion waits for AWS's deprecation delay)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    INVALID_REQUEST,
    Clock,
    Sleep,
    _optional,
    _state,
    _timeout_error,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_SEARCHABLE_ATTRIBUTES,
    check_attribute_name,
    check_count,
    check_description,
    check_positive_int,
    check_thing_type_name,
    check_unique_names,
)

# ---------------------------------------------------------------------------
# Thing types


def _searchable_attributes(field: str, value: Any) -> list[str]:
    names = check_unique_names(field, value, check_attribute_name)
    check_count(field, len(names), MAX_SEARCHABLE_ATTRIBUTES, "a thing type", "searchable attributes")
    return names


@dataclass(frozen=True)
class DesiredThingType:
    """The thing type the options ask for; None for what the task leaves alone."""

    name: str
    state: str = "present"
    description: Optional[str] = None
    searchable_attributes: Optional[list[str]] = None
    wait_timeout: int = 360


def validate_thing_type(params: Mapping[str, Any]) -> DesiredThingType:
    return DesiredThingType(
        name=check_thing_type_name("name", params.get("name")),
        state=_state(params, ("present", "deprecated", "absent")),
        description=_optional(params, "description", check_description),
        searchable_attributes=_optional(params, "searchable_attributes", _searchable_attributes),
        wait_timeout=check_positive_int("wait_timeout", params.get("wait_timeout", 360)),
    )


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


def plan_thing_type(current_raw: Optional[Mapping[str, Any]], desired: DesiredThingType) -> dict[str, Any]:
    """Calls for state present or deprecated: ``create`` (CreateThingType arguments), ``update``
    (UpdateThingType arguments), ``deprecate`` (None, True to deprecate, False to undo) and ``after``."""
    name = desired.name
    want_deprecated = desired.state == "deprecated"
    current = normalize_thing_type(current_raw)
    if current is None:
        properties: dict[str, Any] = {}
        if desired.description:
            properties["thingTypeDescription"] = desired.description
        if desired.searchable_attributes:
            properties["searchableAttributes"] = desired.searchable_attributes
        create: Optional[dict[str, Any]] = {"thingTypeName": name}
        if properties:
            create["thingTypeProperties"] = properties
        after = {
            "name": name,
            "arn": None,
            "thing_type_id": None,
            "description": desired.description or None,
            "searchable_attributes": list(desired.searchable_attributes or []),
            "deprecated": want_deprecated,
        }
        return {"create": create, "update": None, "deprecate": True if want_deprecated else None, "after": after}

    description = current["description"] if desired.description is None else (desired.description or None)
    searchable = (
        current["searchable_attributes"] if desired.searchable_attributes is None else desired.searchable_attributes
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


def ensure_thing_type_present(client: Any, desired: DesiredThingType, check_mode: bool) -> Ensured:
    """State present or deprecated: create, update what UpdateThingType can change, (un)deprecate."""
    name = desired.name
    raw = describe_thing_type(client, name)
    before = normalize_thing_type(raw)
    plan = plan_thing_type(raw, desired)
    if not (plan["create"] or plan["update"] or plan["deprecate"] is not None):
        return Ensured(False, before, before)
    if check_mode:
        return Ensured(True, before, plan["after"])
    if plan["create"]:
        client.create_thing_type(**plan["create"])
    # A deprecated type is undeprecated before it is updated, and updated before it is deprecated.
    if plan["deprecate"] is False:
        client.deprecate_thing_type(thingTypeName=name, undoDeprecate=True)
    if plan["update"]:
        client.update_thing_type(**plan["update"])
    if plan["deprecate"] is True:
        client.deprecate_thing_type(thingTypeName=name, undoDeprecate=False)
    return Ensured(True, before, read_thing_type(client, name))


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

    retry.until_deadline(
        attempt,
        lambda e: is_error(e, INVALID_REQUEST),
        wait_timeout,
        _timeout_error("DeleteThingType", hint),
        sleep,
        clock,
    )


def ensure_thing_type_absent(
    client: Any,
    desired: DesiredThingType,
    check_mode: bool,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> Ensured:
    """Deprecate (when needed), then delete, waiting up to wait_timeout for AWS to allow it."""
    name = desired.name
    before = read_thing_type(client, name)
    if before is None:
        return Ensured(False, None, None)
    things = client.list_things(thingTypeName=name, maxResults=10).get("things", [])
    if things:
        names = ", ".join(t["thingName"] for t in things)
        raise ValidationError(
            "state",
            f"thing type {name!r} still has things of this type ({names}{', ...' if len(things) >= 10 else ''}); "
            "change their thing_type or remove them first",
        )
    if check_mode:
        return Ensured(True, before, None)
    if not before["deprecated"]:
        client.deprecate_thing_type(thingTypeName=name, undoDeprecate=False)
    delete_thing_type(client, name, desired.wait_timeout, sleep, clock)
    return Ensured(True, before, None)
