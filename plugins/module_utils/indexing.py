# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet indexing: the account's indexing configuration (UpdateIndexingConfiguration) and its prerequisite check.

``validate_fleet_indexing`` turns module parameters into a desired state (before any call), ``read_indexing``
reads GetIndexingConfiguration into a snake_case view, ``plan_indexing`` (pure) says which call brings the account
to the desired state, ``ensure_fleet_indexing`` runs it or predicts it in check mode as an ``ensure.Ensured``.
UpdateIndexingConfiguration replaces a whole structure (thing or thing group indexing), so the update carries the
current values of everything the task leaves unset.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

THING_INDEX = "AWS_Things"
QUERY_VERSION = "2017-09-30"  # the only query version AWS supports
THING_INDEXING_MODES = {"off": "OFF", "registry": "REGISTRY", "registry_and_shadow": "REGISTRY_AND_SHADOW"}
MAX_NAMED_SHADOWS = 10  # default quota of named shadow names in the indexing filter
SHADOW_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,64}$")
CUSTOM_FIELD_TYPES = ("String", "Number", "Boolean")
ENABLE_HINT = "enable it with iotfleet.provisioning.fleet_indexing (thing_indexing: registry)"


def _bool_or_none(params: Mapping[str, Any], key: str) -> Optional[bool]:
    value = params.get(key)
    return None if value is None else bool(value)


def _named_shadows(value: Any) -> Optional[list[str]]:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError("named_shadows", f"must be a list of shadow names, got {type(value).__name__}")
    names = []
    for name in value:
        if not isinstance(name, str) or not SHADOW_NAME_PATTERN.match(name):
            raise ValidationError("named_shadows", f"each name is 1-64 letters, digits, ':', '_' or '-', got {name!r}")
        if name not in names:
            names.append(name)
    if len(names) > MAX_NAMED_SHADOWS:
        raise ValidationError(
            "named_shadows", f"at most {MAX_NAMED_SHADOWS} names (AWS's default quota), got {len(names)}"
        )
    return sorted(names)


def _custom_fields(value: Any) -> Optional[list[dict[str, str]]]:
    if value is None:
        return None
    fields = []
    for index, item in enumerate(value):
        where = f"custom_fields[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValidationError(where, "must be a dict with a non-empty 'name' and a 'type'")
        if item.get("type") not in CUSTOM_FIELD_TYPES:
            raise ValidationError(
                f"{where}.type", f"must be one of {', '.join(CUSTOM_FIELD_TYPES)}, got {item.get('type')!r}"
            )
        fields.append({"name": item["name"], "type": item["type"]})
    return sorted(fields, key=lambda f: f["name"])


@dataclass(frozen=True)
class DesiredIndexing:
    """The indexing configuration the options ask for, with the keys of the read view; None for what the task
    leaves alone."""

    thing_indexing: Optional[str] = None
    thing_connectivity: Optional[bool] = None
    device_defender: Optional[bool] = None
    named_shadows: Optional[list[str]] = None
    custom_fields: Optional[list[dict[str, str]]] = None
    thing_group_indexing: Optional[bool] = None


def validate_fleet_indexing(params: Mapping[str, Any]) -> DesiredIndexing:
    """The desired configuration; None for what the task leaves alone. Rules that need no AWS call are checked."""
    mode = params.get("thing_indexing")
    if mode is not None and mode not in THING_INDEXING_MODES:
        raise ValidationError("thing_indexing", f"must be one of {', '.join(THING_INDEXING_MODES)}, got {mode!r}")
    desired = DesiredIndexing(
        thing_indexing=mode,
        thing_connectivity=_bool_or_none(params, "thing_connectivity"),
        device_defender=_bool_or_none(params, "device_defender"),
        named_shadows=_named_shadows(params.get("named_shadows")),
        custom_fields=_custom_fields(params.get("custom_fields")),
        thing_group_indexing=_bool_or_none(params, "thing_group_indexing"),
    )
    check_combination(asdict(desired), "thing_indexing")
    return desired


def check_combination(config: Mapping[str, Any], mode_field: str) -> None:
    """AWS: connectivity and Device Defender indexing need thing indexing on; named shadows are shadow data."""
    mode = config.get("thing_indexing")
    if mode is None:
        return
    needs_on = [k for k in ("thing_connectivity", "device_defender") if config.get(k)]
    if config.get("named_shadows"):
        needs_on.append("named_shadows")
    if mode == "off" and needs_on:
        raise ValidationError(
            mode_field,
            f"is off, but {', '.join(needs_on)} need thing indexing: set thing_indexing to registry or "
            "registry_and_shadow, or turn them off",
        )
    if config.get("named_shadows") and mode != "registry_and_shadow":
        raise ValidationError(
            "named_shadows", f"named shadows are shadow data: they need thing_indexing registry_and_shadow, not {mode}"
        )


def read_indexing(client: Any) -> dict[str, Any]:
    raw = client.get_indexing_configuration()
    thing = raw.get("thingIndexingConfiguration") or {}
    group = raw.get("thingGroupIndexingConfiguration") or {}
    mode = (thing.get("thingIndexingMode") or "OFF").lower()
    named_on = (thing.get("namedShadowIndexingMode") or "OFF") == "ON"
    return {
        "thing_indexing": mode,
        "thing_connectivity": (thing.get("thingConnectivityIndexingMode") or "OFF") == "STATUS",
        "device_defender": (thing.get("deviceDefenderIndexingMode") or "OFF") == "VIOLATIONS",
        "named_shadows": sorted((thing.get("filter") or {}).get("namedShadowNames") or []) if named_on else [],
        "custom_fields": sorted(
            ({"name": f["name"], "type": f.get("type", "String")} for f in thing.get("customFields") or []),
            key=lambda f: f["name"],
        ),
        "thing_group_indexing": (group.get("thingGroupIndexingMode") or "OFF") == "ON",
        "_thing_raw": thing,  # carried into an update so that what AWS keeps (geoLocations, ...) stays
    }


THING_KEYS = ("thing_indexing", "thing_connectivity", "device_defender", "named_shadows", "custom_fields")
VIEW_KEYS = (*THING_KEYS, "thing_group_indexing")


def view(config: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    return {k: config[k] for k in VIEW_KEYS if config and k in config}


def _thing_structure(after: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    structure: dict[str, Any] = {
        "thingIndexingMode": THING_INDEXING_MODES[after["thing_indexing"]],
        "thingConnectivityIndexingMode": "STATUS" if after["thing_connectivity"] else "OFF",
        "deviceDefenderIndexingMode": "VIOLATIONS" if after["device_defender"] else "OFF",
        "namedShadowIndexingMode": "ON" if after["named_shadows"] else "OFF",
    }
    shadow_filter = {k: v for k, v in (raw.get("filter") or {}).items() if k != "namedShadowNames"}
    if after["named_shadows"]:
        shadow_filter["namedShadowNames"] = list(after["named_shadows"])
    if shadow_filter:
        structure["filter"] = shadow_filter
    if after["custom_fields"]:
        structure["customFields"] = [dict(f) for f in after["custom_fields"]]
    return structure


def plan_indexing(current: Mapping[str, Any], desired: DesiredIndexing) -> dict[str, Any]:
    """``update`` (UpdateIndexingConfiguration arguments, or None) and ``after``."""
    wanted = asdict(desired)
    after = {k: (current[k] if wanted[k] is None else wanted[k]) for k in VIEW_KEYS}
    if after["thing_indexing"] == "off" and desired.thing_indexing == "off":
        # Turning thing indexing off turns off what depends on it, unless the task asks for it explicitly.
        for key, off in (("thing_connectivity", False), ("device_defender", False), ("named_shadows", [])):
            if wanted[key] is None:
                after[key] = off
    check_combination(after, "thing_indexing")
    update: dict[str, Any] = {}
    if any(after[k] != current[k] for k in THING_KEYS):
        update["thingIndexingConfiguration"] = _thing_structure(after, current.get("_thing_raw") or {})
    if after["thing_group_indexing"] != current["thing_group_indexing"]:
        update["thingGroupIndexingConfiguration"] = {
            "thingGroupIndexingMode": "ON" if after["thing_group_indexing"] else "OFF"
        }
    return {"update": update or None, "after": after}


def ensure_fleet_indexing(client: Any, desired: DesiredIndexing, check_mode: bool) -> Ensured:
    before = read_indexing(client)
    plan = plan_indexing(before, desired)
    if plan["update"] is None:
        return Ensured(False, view(before), view(before))
    if check_mode:
        return Ensured(True, view(before), view(plan["after"]))
    client.update_indexing_configuration(**plan["update"])
    return Ensured(True, view(before), view(read_indexing(client)))


def require_thing_indexing(client: Any, what: str) -> dict[str, Any]:
    """The current configuration; a ValidationError naming the fix when thing indexing is off."""
    current = read_indexing(client)
    if current["thing_indexing"] == "off":
        raise ValidationError(what, f"needs fleet indexing, which is off in this account and region: {ENABLE_HINT}")
    return current
