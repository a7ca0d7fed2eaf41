# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Things, thing types and thing groups: validate, read, plan, ensure.

Every resource follows one path for check mode, diff and the real change:
``validate_*`` turns module parameters into a desired state (raising
``ValidationError`` before any client exists), ``read_*`` returns the resource
as a snake_case dict or None, ``plan_*`` compares the two and says which calls
would bring the resource to the desired state, and ``ensure_*`` runs the plan
(or, in check mode, returns what the plan predicts) as an ``ensure.Ensured``
(changed, before, after). The plan functions are pure, so the unit tests cover them without a
client.

Only what the user manages is compared: an option left unset keeps the remote
value, so server-added fields never cause a change.

The package, by resource: common (shared helpers, results), thing, thing_type, thing_group and
info (thing_info). Import from the package: the names below are its interface.
"""

from __future__ import annotations

from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    INVALID_REQUEST,
    NOT_FOUND,
    PAGE_SIZE,
    THING_DIFF_KEYS,
    THING_GROUP_DIFF_KEYS,
    THING_TYPE_DIFF_KEYS,
    Clock,
    Sleep,
    attribute_delta,
    attributes_after,
    call_with_retry,
    diff_view,
    names_after,
    visible_attributes,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.info import (
    find_things,
    validate_thing_info,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing import (
    delete_thing,
    ensure_thing_absent,
    ensure_thing_present,
    list_thing_principals,
    plan_changes,
    plan_thing,
    read_thing,
    validate_thing,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_group import (
    ensure_thing_group_absent,
    ensure_thing_group_present,
    plan_thing_group,
    read_thing_group,
    validate_thing_group,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_type import (
    delete_thing_type,
    describe_thing_type,
    ensure_thing_type_absent,
    ensure_thing_type_present,
    normalize_thing_type,
    plan_thing_type,
    read_thing_type,
    validate_thing_type,
)

__all__ = [
    "INVALID_REQUEST",
    "NOT_FOUND",
    "PAGE_SIZE",
    "THING_DIFF_KEYS",
    "THING_GROUP_DIFF_KEYS",
    "THING_TYPE_DIFF_KEYS",
    "Clock",
    "Sleep",
    "attribute_delta",
    "attributes_after",
    "call_with_retry",
    "delete_thing",
    "delete_thing_type",
    "describe_thing_type",
    "diff_view",
    "ensure_thing_absent",
    "ensure_thing_group_absent",
    "ensure_thing_group_present",
    "ensure_thing_present",
    "ensure_thing_type_absent",
    "ensure_thing_type_present",
    "find_things",
    "list_thing_principals",
    "names_after",
    "normalize_thing_type",
    "plan_changes",
    "plan_thing",
    "plan_thing_group",
    "plan_thing_type",
    "read_thing",
    "read_thing_group",
    "read_thing_type",
    "validate_thing",
    "validate_thing_group",
    "validate_thing_info",
    "validate_thing_type",
    "visible_attributes",
]
