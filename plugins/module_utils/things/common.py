# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the thing, thing type and thing group modules share: attribute and name merges, option checks, diffs."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import (
    AwsCallError,
    ValidationError,
    error_code,
    error_message,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_THING_GROUPS_PER_THING,
    check_count,
    check_string,
    check_thing_group_name,
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
# Results

THING_DIFF_KEYS = ("name", "thing_type", "attributes", "thing_groups", "billing_group")
THING_TYPE_DIFF_KEYS = ("name", "description", "searchable_attributes", "deprecated")
THING_GROUP_DIFF_KEYS = ("name", "parent", "description", "attributes", "tags")


def diff_view(resource: Optional[Mapping[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """What the user manages, for --diff: identifiers and versions that only AWS sets are left out."""
    if not resource:
        return {}
    return {k: resource[k] for k in keys if k in resource}
