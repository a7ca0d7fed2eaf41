#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing_type
short_description: Manage AWS IoT thing types
version_added: 0.1.0
description:
  - Creates, updates, deprecates, undeprecates and deletes an AWS IoT thing type.
  - Things of a type can have up to 50 attributes (3 without a type), and a type names up to 3 searchable attributes.
  - A changed O(description) or O(searchable_attributes) on an existing type is applied with C(UpdateThingType).
    Other thing type properties (such as the MQTT 5 propagating attributes) are kept as they are.
  - A second run with the same options reports no change and makes no mutating call.
options:
  name:
    description:
      - The thing type name, 1 to 128 letters, digits, V(:), V(_) or V(-).
    type: str
    required: true
  state:
    description:
      - V(present) creates the type, or undeprecates it when it is deprecated.
      - V(deprecated) creates the type when needed and deprecates it. No new thing can be given a deprecated type.
      - V(absent) deprecates the type when needed, then deletes it. AWS deletes a thing type only 5 minutes after its
        deprecation, so this waits up to O(wait_timeout) seconds. A type that things still use is not deleted.
    type: str
    default: present
    choices: [present, deprecated, absent]
  description:
    description:
      - The description, at most 2028 printable ASCII characters. An empty string removes it.
      - When unset, the current description is kept.
    type: str
  searchable_attributes:
    description:
      - Up to 3 attribute names that can be searched with C(ListThings). Their order does not matter.
      - When unset, the current searchable attributes are kept.
    type: list
    elements: str
  wait_timeout:
    description:
      - With O(state=absent), how many seconds to keep retrying the deletion of the deprecated type.
    type: int
    default: 360
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Check mode runs the same planning as a real run and returns the predicted result.
  diff_mode:
    support: full
    details: The diff shows the managed fields (name, description, searchable_attributes and deprecated) before
      and after.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:DescribeThingType), C(iot:CreateThingType), C(iot:UpdateThingType),
    C(iot:DeprecateThingType); for O(state=absent) also C(iot:ListThings) and C(iot:DeleteThingType)."
  - The AWS developer guide once called thing types immutable; the current API has C(UpdateThingType), which this
    module uses. If AWS refuses a change, the task fails with AWS's message and nothing else is changed.
seealso:
  - module: iotfleet.provisioning.thing
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A thing type for sensors
  iotfleet.provisioning.thing_type:
    name: sensor
    description: Temperature and humidity sensors
    searchable_attributes: [model, site]

- name: Stop new things from getting the old type
  iotfleet.provisioning.thing_type:
    name: sensor-v1
    state: deprecated

- name: Delete a type (deprecates it first and waits until AWS allows the deletion)
  iotfleet.provisioning.thing_type:
    name: sensor-v1
    state: absent
"""

RETURN = r"""
thing_type:
  description: The thing type after the task (as predicted in check mode); empty when O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: The thing type name.
      type: str
      sample: sensor
    arn:
      description: The thing type ARN; null in check mode when the type would be created.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:thingtype/sensor
    thing_type_id:
      description: The thing type id; null in check mode when the type would be created.
      type: str
      sample: 0f5e8c2d-7a61-4a9e-b5b2-1c9d3e4f5a6b
    description:
      description: The description, or null when there is none.
      type: str
      sample: Temperature and humidity sensors
    searchable_attributes:
      description: The searchable attribute names.
      type: list
      elements: str
      sample: [model, site]
    deprecated:
      description: Whether the type is deprecated.
      type: bool
      sample: false
diff:
  description: The managed fields (name, description, searchable_attributes, deprecated) before and after,
    with C(--diff).
  returned: when diff mode is on
  type: dict
"""

from functools import partial

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import THING_TYPE_DIFF_KEYS, diff_view
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_type import (
    ensure_thing_type_absent,
    ensure_thing_type_present,
    validate_thing_type,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "deprecated", "absent"]),
            description=dict(type="str"),
            searchable_attributes=dict(type="list", elements="str"),
            wait_timeout=dict(type="int", default=360),
        ),
    )

    def run() -> dict:
        desired = validate_thing_type(module.params)
        view = partial(diff_view, keys=THING_TYPE_DIFF_KEYS)
        return module.ensure(desired, ensure_thing_type_present, ensure_thing_type_absent, view, "thing_type")

    module.run(run)


if __name__ == "__main__":
    main()
