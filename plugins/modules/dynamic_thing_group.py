#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dynamic_thing_group
short_description: Manage AWS IoT dynamic thing groups
version_added: 0.1.0
description:
  - Creates, updates and deletes a dynamic thing group, whose members are the things a fleet indexing query
    matches (CreateDynamicThingGroup, UpdateDynamicThingGroup, DeleteDynamicThingGroup).
  - Dynamic thing groups need fleet indexing. The module checks it first (in check mode too) and fails with a
    message naming M(iotfleet.provisioning.fleet_indexing) when thing indexing is off.
  - A static thing group of the same name is never changed or deleted; the task fails and says so.
  - A second run with the same options reports no change and makes no mutating call.
options:
  name:
    description:
      - The thing group name, 1 to 128 letters, digits, V(:), V(_) or V(-).
    type: str
    required: true
  state:
    description:
      - V(present) creates the group or brings it to the given options; V(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
  query_string:
    description:
      - The fleet indexing query that selects the members, for example V(thingTypeName:sensor AND attributes.site:lyon).
      - Required with O(state=present).
    type: str
  index_name:
    description:
      - The index the query runs on. AWS supports one, C(AWS_Things).
    type: str
    default: AWS_Things
  query_version:
    description:
      - The query language version. AWS supports one, C(2017-09-30).
    type: str
    default: "2017-09-30"
  description:
    description:
      - The description, at most 2028 printable ASCII characters. An empty string removes it; unset keeps it.
    type: str
  attributes:
    description:
      - Group attribute names and values (at most 50). An empty string value removes that attribute.
    type: dict
  purge_attributes:
    description:
      - When V(true), attributes not in O(attributes) are removed; when V(false), O(attributes) are merged in.
    type: bool
    default: true
  tags:
    description:
      - Tag keys and values; unset leaves the tags alone. Keys starting with C(aws:) cannot be set.
    type: dict
  purge_tags:
    description:
      - When V(true), tags not in O(tags) are removed, except C(aws:) tags; when V(false), O(tags) are added.
    type: bool
    default: true
  list_members:
    description:
      - When V(true), the result lists the group's current members (ListThingsInThingGroup, all pages).
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Check mode checks the fleet indexing prerequisite and returns the predicted group.
  diff_mode:
    support: full
    details: The diff shows the query, index, version, description, attributes (and tags when set).
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:GetIndexingConfiguration), C(iot:DescribeThingGroup), C(iot:CreateDynamicThingGroup),
    C(iot:UpdateDynamicThingGroup), C(iot:DeleteDynamicThingGroup); with O(tags) also C(iot:ListTagsForResource),
    C(iot:TagResource), C(iot:UntagResource); with O(list_members) C(iot:ListThingsInThingGroup)."
  - AWS keeps membership current as the index changes, which takes a moment after a thing changes.
  - Dynamic thing groups cannot have a parent or child groups, and AWS refuses policies attached to them.
seealso:
  - module: iotfleet.provisioning.fleet_indexing
  - module: iotfleet.provisioning.thing_group
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Fleet indexing on (a dynamic group needs it)
  iotfleet.provisioning.fleet_indexing:
    thing_indexing: registry

- name: Every sensor in Lyon
  iotfleet.provisioning.dynamic_thing_group:
    name: lyon-sensors
    query_string: "thingTypeName:sensor AND attributes.site:lyon"
    description: Sensors on the Lyon site
    list_members: true

- name: Remove it
  iotfleet.provisioning.dynamic_thing_group:
    name: lyon-sensors
    state: absent
"""

RETURN = r"""
thing_group:
  description: The dynamic thing group after the task (as predicted in check mode); empty when O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: The group name.
      type: str
      sample: lyon-sensors
    arn:
      description: The group ARN; null in check mode when the group would be created.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:thinggroup/lyon-sensors
    query_string:
      description: The membership query.
      type: str
      sample: thingTypeName:sensor AND attributes.site:lyon
    index_name:
      description: The index the query runs on.
      type: str
      sample: AWS_Things
    query_version:
      description: The query version.
      type: str
      sample: "2017-09-30"
    status:
      description: The group status AWS reports (C(ACTIVE), C(BUILDING), C(REBUILDING)); null in check mode for a
        new group.
      type: str
      sample: ACTIVE
    description:
      description: The description, or null.
      type: str
      sample: Sensors on the Lyon site
    attributes:
      description: The group attributes.
      type: dict
      sample: {}
    tags:
      description: The tags.
      returned: when O(tags) is set
      type: dict
      sample: {}
    version:
      description: The version of the group record; null in check mode when the group would be created.
      type: int
      sample: 1
    members:
      description: The current members, sorted.
      returned: when O(list_members=true) and the group exists
      type: list
      elements: str
      sample: [sensor-001, sensor-002]
diff:
  description: The managed fields before and after, with C(--diff).
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.dynamic_groups import (
    diff_view,
    ensure_dynamic_group_absent,
    ensure_dynamic_group_present,
    validate_dynamic_group,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            query_string=dict(type="str"),
            index_name=dict(type="str", default="AWS_Things"),
            query_version=dict(type="str", default="2017-09-30"),
            description=dict(type="str"),
            attributes=dict(type="dict"),
            purge_attributes=dict(type="bool", default=True),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            list_members=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["query_string"])],
    )

    def run() -> dict:
        desired = validate_dynamic_group(module.params)
        return module.ensure(
            desired, ensure_dynamic_group_present, ensure_dynamic_group_absent, diff_view, "thing_group"
        )

    module.run(run)


if __name__ == "__main__":
    main()
