#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing_group
short_description: Manage AWS IoT static thing groups
version_added: 0.1.0
description:
  - Creates, updates and deletes a static thing group, with its parent, description, attributes and tags.
  - Only what is given is managed. An option left unset keeps the group's current value.
  - Thing membership is managed on the thing, with M(iotfleet.provisioning.thing).
  - A second run with the same options reports no change and makes no mutating call.
options:
  name:
    description:
      - The thing group name, 1 to 128 letters, digits, V(:), V(_) or V(-).
    type: str
    required: true
  state:
    description:
      - V(present) creates the group or brings it to the given options.
      - V(absent) deletes it. A group that still has child groups is not deleted; the task fails and names them.
    type: str
    default: present
    choices: [present, absent]
  parent:
    description:
      - The parent group, which must exist. An empty string means a top-level group.
      - AWS sets the parent only when the group is created; a different parent for an existing group fails the task.
      - When unset, an existing group keeps its parent and a new group is created at the top level.
    type: str
  description:
    description:
      - The description, at most 2028 printable ASCII characters. An empty string removes it.
      - When unset, the current description is kept.
    type: str
  attributes:
    description:
      - Attribute names and values (at most 50), with the same name and value rules as thing attributes.
      - An empty string value removes that attribute, also with O(purge_attributes=false).
    type: dict
  purge_attributes:
    description:
      - When V(true), attributes not in O(attributes) are removed; when V(false), O(attributes) are merged in.
      - Has no effect when O(attributes) is unset.
    type: bool
    default: true
  tags:
    description:
      - Tag keys and values. Keys starting with C(aws:) are reserved by AWS and cannot be set.
      - When unset, the tags are neither read nor changed.
    type: dict
  purge_tags:
    description:
      - When V(true), tags not in O(tags) are removed, except tags starting with C(aws:), which are never removed.
      - When V(false), O(tags) are added to the current ones.
      - Has no effect when O(tags) is unset.
    type: bool
    default: true
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Check mode runs the same planning as a real run and returns the predicted result.
  diff_mode:
    support: full
    details: The diff shows the managed fields (name, parent, description, attributes, and tags when O(tags) is
      set) before and after.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:DescribeThingGroup), C(iot:CreateThingGroup), C(iot:UpdateThingGroup); with O(tags) also
    C(iot:ListTagsForResource), C(iot:TagResource), C(iot:UntagResource); for O(state=absent) C(iot:ListThingGroups)
    and C(iot:DeleteThingGroup)."
  - Dynamic thing groups are not managed by this module; naming one fails the task.
  - AWS limits a group hierarchy to 7 levels and a group to 100 direct child groups.
seealso:
  - module: iotfleet.provisioning.thing
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A top-level group for a site
  iotfleet.provisioning.thing_group:
    name: building-a
    description: Devices in building A
    attributes:
      city: Lyon
    tags:
      cost-center: "4711"

- name: A child group
  iotfleet.provisioning.thing_group:
    name: building-a-floor-3
    parent: building-a

- name: Add an attribute, keep the others
  iotfleet.provisioning.thing_group:
    name: building-a
    attributes:
      manager: ops-team
    purge_attributes: false

- name: Delete the child group, then its parent
  iotfleet.provisioning.thing_group:
    name: "{{ item }}"
    state: absent
  loop: [building-a-floor-3, building-a]
"""

RETURN = r"""
thing_group:
  description: The thing group after the task (as predicted in check mode); empty when O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: The thing group name.
      type: str
      sample: building-a
    arn:
      description: The thing group ARN; null in check mode when the group would be created.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:thinggroup/building-a
    thing_group_id:
      description: The thing group id; null in check mode when the group would be created.
      type: str
      sample: 4b3f7c1e-2d8a-4e6f-9a0b-5c7d1e2f3a4b
    parent:
      description: The parent group name, or null for a top-level group.
      type: str
      sample: null
    description:
      description: The description, or null when there is none.
      type: str
      sample: Devices in building A
    attributes:
      description: The group attributes.
      type: dict
      sample: {"city": "Lyon"}
    tags:
      description: The tags.
      returned: when O(tags) is set
      type: dict
      sample: {"cost-center": "4711"}
    version:
      description: The version of the group record; null in check mode when the group would be created.
      type: int
      sample: 2
diff:
  description: The managed fields (name, parent, description, attributes, and tags when O(tags) is set) before
    and after, with C(--diff).
  returned: when diff mode is on
  type: dict
"""

from functools import partial

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    THING_GROUP_DIFF_KEYS,
    diff_view,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_group import (
    ensure_thing_group_absent,
    ensure_thing_group_present,
    validate_thing_group,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            parent=dict(type="str"),
            description=dict(type="str"),
            attributes=dict(type="dict"),
            purge_attributes=dict(type="bool", default=True),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
        ),
    )

    def run() -> dict:
        desired = validate_thing_group(module.params)
        view = partial(diff_view, keys=THING_GROUP_DIFF_KEYS)
        return module.ensure(desired, ensure_thing_group_present, ensure_thing_group_absent, view, "thing_group")

    module.run(run)


if __name__ == "__main__":
    main()
