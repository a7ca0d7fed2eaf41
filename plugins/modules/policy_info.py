#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: policy_info
short_description: Describe AWS IoT policies
version_added: 0.1.0
description:
  - With O(name), returns that policy in full (its default document, every version and every target it is
    attached to).
  - Without O(name), returns every policy of the account and region (all pages of C(ListPolicies)), by name and ARN,
    and with O(include_documents=true) also each default document.
options:
  name:
    description:
      - The policy to describe. When unset, all policies are listed.
    type: str
    aliases: [policy_name]
  include_documents:
    description:
      - When listing all policies, also fetch each policy's default document and version id (one C(GetPolicy)
        call per policy).
      - Ignored with O(name), which always returns the document.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: The module changes nothing, so it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:GetPolicy), C(iot:ListPolicyVersions) and C(iot:ListTargetsForPolicy) with O(name);
    C(iot:ListPolicies), and C(iot:GetPolicy) with O(include_documents), without."
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Describe one policy, with its versions and targets
  iotfleet.provisioning.policy_info:
    name: device-least-privilege
  register: device_policy

- name: List every policy with its document
  iotfleet.provisioning.policy_info:
    include_documents: true
  register: all_policies
"""

RETURN = r"""
policies:
  description:
    - The policies found. With O(name), one item, or none when the policy does not exist.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The policy name.
      type: str
      returned: always
      sample: device-least-privilege
    arn:
      description: The policy ARN.
      type: str
      returned: always
      sample: arn:aws:iot:eu-west-1:123456789012:policy/device-least-privilege
    document:
      description: The default version's document, parsed.
      type: dict
      returned: with O(name), or with O(include_documents=true)
      sample: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
               "Resource": "arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}",
               "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}}]}
    default_version_id:
      description: The id of the default version.
      type: str
      returned: with O(name), or with O(include_documents=true)
      sample: "2"
    version_count:
      description: How many versions the policy has.
      type: int
      returned: with O(name)
      sample: 2
    versions:
      description: Every version, oldest first.
      type: list
      elements: dict
      returned: with O(name)
      contains:
        version_id:
          description: The version id.
          type: str
          sample: "1"
        is_default_version:
          description: Whether this version is the default.
          type: bool
          sample: false
        create_date:
          description: When the version was created (ISO 8601).
          type: str
          sample: "2024-05-01T12:00:00+00:00"
    targets:
      description: The ARNs of the certificates, thing groups and identities the policy is attached to.
      type: list
      elements: str
      returned: with O(name)
      sample: ["arn:aws:iot:eu-west-1:123456789012:thinggroup/fleet-a"]
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policies import (
    policy_info,
    validate_policy_info,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", aliases=["policy_name"]),
            include_documents=dict(type="bool", default=False),
        ),
    )

    def run() -> dict:
        query = validate_policy_info(module.params)
        return dict(changed=False, policies=policy_info(module.client("iot"), query))

    module.run(run)


if __name__ == "__main__":
    main()
