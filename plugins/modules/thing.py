#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing
short_description: Manage AWS IoT things
version_added: 0.1.0
description:
  - Creates, updates and deletes a thing in the AWS IoT registry, with its thing type, attributes and
    static thing group memberships.
  - Only what is given is managed. An option left unset keeps the thing's current value.
  - A second run with the same options reports no change and makes no mutating call.
options:
  name:
    description:
      - The thing name, 1 to 128 letters, digits, V(:), V(_) or V(-).
    type: str
    required: true
  state:
    description:
      - V(present) creates the thing or brings it to the given options.
      - V(absent) deletes it. A thing with attached principals (certificates) is only deleted with O(force=true).
    type: str
    default: present
    choices: [present, absent]
  thing_type:
    description:
      - The thing type of the thing. The type must exist and must not be deprecated.
      - An empty string removes the thing's type.
      - When unset, the thing keeps its current type (none for a new thing).
    type: str
  attributes:
    description:
      - Attribute names and values. Names have at most 128 characters, values at most 800 (see AWS IoT limits).
      - Numbers are stored as written; V(true) and V(false) as lowercase strings.
      - An empty string value removes that attribute, also with O(purge_attributes=false).
      - A thing without a thing type can have at most 3 attributes, a thing with one at most 50.
    type: dict
  purge_attributes:
    description:
      - When V(true), attributes not in O(attributes) are removed.
      - When V(false), O(attributes) are merged into the current ones.
      - Has no effect when O(attributes) is unset.
    type: bool
    default: true
  thing_groups:
    description:
      - Names of the static thing groups the thing belongs to directly. The groups must exist.
      - A thing is in at most 10 thing groups, and in at most one group of a hierarchy.
    type: list
    elements: str
  purge_thing_groups:
    description:
      - When V(true), the thing is removed from groups not in O(thing_groups).
      - When V(false), the thing is added to O(thing_groups) and stays in its other groups.
      - Has no effect when O(thing_groups) is unset.
    type: bool
    default: true
  billing_group:
    description:
      - The billing group the thing is in, which must exist. A thing is in at most one billing group, so a thing
        in another one is moved. An empty string takes the thing out of its billing group.
      - When unset, the thing's billing group is left as it is.
    type: str
    version_added: 0.1.0
  force:
    description:
      - With O(state=absent), detach every principal (certificate) from the thing before deleting it.
      - The certificates themselves are left as they are; only the attachment is removed.
      - Without it, deleting a thing that still has principals fails and names them.
    type: bool
    default: false
  wait_timeout:
    description:
      - With O(state=absent), how many seconds to keep retrying the deletion while AWS still reports principals
        that were just detached (detaching is eventually consistent).
    type: int
    default: 60
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Check mode runs the same planning as a real run and returns the predicted result.
  diff_mode:
    support: full
    details: The diff shows the managed fields (name, thing_type, attributes and thing_groups) before and after.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:DescribeThing), C(iot:ListThingGroupsForThing), C(iot:CreateThing), C(iot:UpdateThing),
    C(iot:UpdateThingGroupsForThing); for O(state=absent) also C(iot:ListThingPrincipals), C(iot:DeleteThing) and,
    with O(force=true), C(iot:DetachThingPrincipal); with O(billing_group) C(iot:AddThingToBillingGroup) and
    C(iot:RemoveThingFromBillingGroup)."
  - The attribute count is checked before any call when it can be; when it depends on the thing's current type
    (O(thing_type) unset) or current attributes (O(purge_attributes=false)), it is checked after the thing is read
    and before anything changes.
seealso:
  - module: iotfleet.provisioning.thing_info
  - module: iotfleet.provisioning.thing_type
  - module: iotfleet.provisioning.thing_group
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A thing of type sensor, in two groups
  iotfleet.provisioning.thing:
    name: sensor-0001
    thing_type: sensor
    attributes:
      model: s200
      firmware: "1.4.2"
    thing_groups:
      - building-a
      - temperature

- name: Add one attribute and one group, keeping the others
  iotfleet.provisioning.thing:
    name: sensor-0001
    attributes:
      installed: "2024-05-01"
    purge_attributes: false
    thing_groups: [floor-3]
    purge_thing_groups: false

- name: Remove the thing type and one attribute
  iotfleet.provisioning.thing:
    name: sensor-0001
    thing_type: ""
    attributes:
      firmware: ""
    purge_attributes: false

- name: Delete the thing, detaching its certificates first
  iotfleet.provisioning.thing:
    name: sensor-0001
    state: absent
    force: true
"""

RETURN = r"""
thing:
  description: The thing after the task (as predicted in check mode); empty when O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: The thing name.
      type: str
      sample: sensor-0001
    arn:
      description: The thing ARN; null in check mode when the thing would be created.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:thing/sensor-0001
    thing_id:
      description: The thing id; null in check mode when the thing would be created.
      type: str
      sample: 8f2a1c4e-93b1-4d1e-a0c6-2f5b9e7d1a33
    thing_type:
      description: The thing type name, or null when the thing has none.
      type: str
      sample: sensor
    attributes:
      description: The attributes, names and values as stored.
      type: dict
      sample: {"model": "s200", "firmware": "1.4.2"}
    thing_groups:
      description: Names of the thing groups the thing belongs to directly, sorted.
      type: list
      elements: str
      sample: [building-a, temperature]
    billing_group:
      description: The billing group the thing is in.
      returned: when the thing is in a billing group
      type: str
      sample: site-lyon
    version:
      description: The registry version of the thing record; null in check mode when the thing would be created.
      type: int
      sample: 3
detached_principals:
  description:
    - The principals (certificate ARNs) that were detached, or in check mode would be, to delete the thing
      with O(force=true).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["arn:aws:iot:eu-west-1:123456789012:cert/3f1e5c..."]
diff:
  description: The managed fields (name, thing_type, attributes, thing_groups, billing_group) before and after,
    with C(--diff).
  returned: when diff mode is on
  type: dict
"""

from functools import partial

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import THING_DIFF_KEYS, diff_view
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing import (
    ensure_thing_absent,
    ensure_thing_present,
    validate_thing,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            thing_type=dict(type="str"),
            attributes=dict(type="dict"),
            purge_attributes=dict(type="bool", default=True),
            thing_groups=dict(type="list", elements="str"),
            purge_thing_groups=dict(type="bool", default=True),
            billing_group=dict(type="str"),
            force=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=60),
        ),
    )

    def run() -> dict:
        desired = validate_thing(module.params)
        client = module.client("iot")
        view = partial(diff_view, keys=THING_DIFF_KEYS)
        if desired.state == "present":
            done = ensure_thing_present(client, desired, module.check_mode)
            return module.result(done, view, thing=done.after)
        detached: list = []
        done = ensure_thing_absent(client, desired, module.check_mode, on_detach=detached.extend)
        return module.result(done, view, thing={}, detached_principals=detached)

    module.run(run)


if __name__ == "__main__":
    main()
