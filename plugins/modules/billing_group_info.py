#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: billing_group_info
short_description: List AWS IoT billing groups
version_added: 0.1.0
description:
  - Lists billing groups (all pages), optionally only those whose name starts with a prefix, with their members.
  - Never changes anything.
options:
  name_prefix:
    description:
      - Only billing groups whose name starts with this.
    type: str
  include_things:
    description:
      - When V(true), each group lists its things (ListThingsInBillingGroup, all pages).
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:ListBillingGroups), C(iot:DescribeBillingGroup); with O(include_things) also
    C(iot:ListThingsInBillingGroup)."
seealso:
  - module: iotfleet.provisioning.billing_group
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Billing groups of the Lyon sites, with their things
  iotfleet.provisioning.billing_group_info:
    name_prefix: site-lyon
    include_things: true
  register: billing
"""

RETURN = r"""
billing_groups:
  description: The billing groups, sorted by name; empty when none matches.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The billing group name.
      type: str
      sample: site-lyon
    arn:
      description: The ARN.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:billinggroup/site-lyon
    billing_group_id:
      description: The id.
      type: str
      sample: 0b6c3c6e-4d3f-4a59-9a1e-3c2f6b1f9d20
    description:
      description: The description, or null.
      type: str
      sample: Devices billed to the Lyon site
    version:
      description: The version of the group record.
      type: int
      sample: 1
    things:
      description: The members, sorted.
      returned: when O(include_things=true)
      type: list
      elements: str
      sample: [sensor-001]
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.billing_groups import (
    find_billing_groups,
    validate_billing_group_info,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name_prefix=dict(type="str"),
            include_things=dict(type="bool", default=False),
        ),
    )

    def run() -> dict:
        query = validate_billing_group_info(module.params)
        groups = find_billing_groups(module.client("iot"), query["name_prefix"], query["include_things"])
        return dict(changed=False, billing_groups=groups)

    module.run(run)


if __name__ == "__main__":
    main()
