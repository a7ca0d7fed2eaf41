#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: billing_group
short_description: Manage AWS IoT billing groups and their members
version_added: 0.1.0
description:
  - Creates, updates and deletes a billing group, and optionally sets which things are in it.
  - A thing is in at most one billing group. Adding a thing that is in another billing group moves it (it is
    removed from that group first).
  - A thing's billing group can also be set on the thing, with the C(billing_group) option of
    M(iotfleet.provisioning.thing).
  - A second run with the same options reports no change and makes no mutating call.
options:
  name:
    description:
      - The billing group name, 1 to 128 letters, digits, V(:), V(_) or V(-).
    type: str
    required: true
  state:
    description:
      - V(present) creates the group or brings it to the given options; V(absent) deletes it (its things are then
        in no billing group).
    type: str
    default: present
    choices: [present, absent]
  description:
    description:
      - The description, at most 2028 printable ASCII characters. An empty string removes it; unset keeps it.
    type: str
  things:
    description:
      - Names of things that must be in the group. Each must exist.
      - When unset, membership is neither read nor changed.
    type: list
    elements: str
  purge_things:
    description:
      - When V(true), things in the group but not in O(things) are removed from it; when V(false), O(things) are
        added and the other members stay.
      - Has no effect when O(things) is unset.
    type: bool
    default: true
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the group, its members and where each added thing is now, and predicts the result.
  diff_mode:
    support: full
    details: The diff shows the name, description and (when O(things) is set) the members.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:DescribeBillingGroup), C(iot:CreateBillingGroup), C(iot:UpdateBillingGroup),
    C(iot:DeleteBillingGroup); with O(things) also C(iot:ListThingsInBillingGroup), C(iot:DescribeThing),
    C(iot:AddThingToBillingGroup), C(iot:RemoveThingFromBillingGroup)."
  - Billing group tags (cost allocation) are not managed by this version of the module.
seealso:
  - module: iotfleet.provisioning.thing
  - module: iotfleet.provisioning.billing_group_info
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A billing group for the Lyon site, with exactly these things
  iotfleet.provisioning.billing_group:
    name: site-lyon
    description: Devices billed to the Lyon site
    things: [sensor-001, sensor-002]

- name: Add one more thing, keep the others
  iotfleet.provisioning.billing_group:
    name: site-lyon
    things: [sensor-003]
    purge_things: false

- name: Delete the group
  iotfleet.provisioning.billing_group:
    name: site-lyon
    state: absent
"""

RETURN = r"""
billing_group:
  description: The billing group after the task (as predicted in check mode); empty when O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: The billing group name.
      type: str
      sample: site-lyon
    arn:
      description: The ARN; null in check mode when the group would be created.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:billinggroup/site-lyon
    billing_group_id:
      description: The id; null in check mode when the group would be created.
      type: str
      sample: 0b6c3c6e-4d3f-4a59-9a1e-3c2f6b1f9d20
    description:
      description: The description, or null.
      type: str
      sample: Devices billed to the Lyon site
    version:
      description: The version of the group record; null in check mode when the group would be created.
      type: int
      sample: 1
    things:
      description: The members, sorted.
      returned: when O(things) is set
      type: list
      elements: str
      sample: [sensor-001, sensor-002]
diff:
  description: The managed fields before and after, with C(--diff).
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.billing_groups import (
    diff_view,
    ensure_billing_group_absent,
    ensure_billing_group_present,
    validate_billing_group,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            description=dict(type="str"),
            things=dict(type="list", elements="str"),
            purge_things=dict(type="bool", default=True),
        ),
    )

    def run() -> dict:
        desired = validate_billing_group(module.params)
        return module.ensure(
            desired, ensure_billing_group_present, ensure_billing_group_absent, diff_view, "billing_group"
        )

    module.run(run)


if __name__ == "__main__":
    main()
