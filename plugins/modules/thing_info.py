#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing_info
short_description: Find AWS IoT things
version_added: 0.1.0
description:
  - Returns one thing by name, or every thing that matches the filters (all pages).
  - Without any option it lists every thing in the account and region.
  - Never changes anything.
options:
  name:
    description:
      - Return this thing only; the list is empty when it does not exist.
      - Cannot be combined with O(thing_type), O(attribute) or O(thing_group).
    type: str
  thing_type:
    description:
      - Only things of this thing type.
    type: str
  attribute:
    description:
      - Only things with this attribute value, written V(NAME=VALUE) (the first V(=) separates them).
    type: str
  thing_group:
    description:
      - Only things in this thing group. The group must exist.
      - Each member is described with one C(DescribeThing) call; O(thing_type) and O(attribute) filter the result.
    type: str
  recursive:
    description:
      - With O(thing_group), also return the things of its child groups.
    type: bool
    default: false
  include_groups:
    description:
      - Add C(thing_groups) to every thing, at the cost of one C(ListThingGroupsForThing) call per thing.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Runs in check mode too; the module never changes anything.
  diff_mode:
    support: none
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:DescribeThing) (with O(name) or O(thing_group)), C(iot:ListThings),
    C(iot:ListThingsInThingGroup) (with O(thing_group)), C(iot:ListThingGroupsForThing) (with O(include_groups))."
seealso:
  - module: iotfleet.provisioning.thing
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: One thing
  iotfleet.provisioning.thing_info:
    name: sensor-0001
  register: found

- name: Every sensor of model s200, with its groups
  iotfleet.provisioning.thing_info:
    thing_type: sensor
    attribute: model=s200
    include_groups: true
  register: s200

- name: Everything in building A and its sub-groups
  iotfleet.provisioning.thing_info:
    thing_group: building-a
    recursive: true
  register: building_a
"""

RETURN = r"""
things:
  description: The matching things, sorted by name; empty when nothing matches.
  returned: always
  type: list
  elements: dict
  contains:
    thing_name:
      description: The thing name.
      type: str
      sample: sensor-0001
    thing_arn:
      description: The thing ARN.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:thing/sensor-0001
    thing_type_name:
      description: The thing type name.
      returned: when the thing has a type
      type: str
      sample: sensor
    attributes:
      description: The attributes, names kept as they are.
      type: dict
      sample: {"model": "s200"}
    version:
      description: The registry version of the thing record.
      type: int
      sample: 1
    thing_id:
      description: The thing id.
      returned: with O(name) or O(thing_group)
      type: str
      sample: 8f2a1c4e-93b1-4d1e-a0c6-2f5b9e7d1a33
    default_client_id:
      description: The default MQTT client id.
      returned: with O(name) or O(thing_group)
      type: str
      sample: sensor-0001
    billing_group_name:
      description: The billing group of the thing.
      returned: with O(name) or O(thing_group), when the thing is in a billing group
      type: str
      sample: fleet-a
    thing_groups:
      description: Names of the thing groups the thing belongs to directly, sorted.
      returned: when O(include_groups=true)
      type: list
      elements: str
      sample: [building-a]
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.info import find_things, validate_thing_info


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str"),
            thing_type=dict(type="str"),
            attribute=dict(type="str"),
            thing_group=dict(type="str"),
            recursive=dict(type="bool", default=False),
            include_groups=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("name", "thing_type"), ("name", "attribute"), ("name", "thing_group")],
    )

    def run() -> dict:
        query = validate_thing_info(module.params)
        return dict(changed=False, things=find_things(module.client("iot"), query))

    module.run(run)


if __name__ == "__main__":
    main()
