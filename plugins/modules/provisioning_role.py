#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provisioning_role
short_description: Manage the IAM role AWS IoT assumes to provision devices
version_added: 0.1.0
description:
  - Ensures an IAM role that C(iot.amazonaws.com) may assume, with the AWS managed policy
    C(AWSIoTThingsRegistration) attached.
  - Bulk registration tasks, just-in-time provisioning and fleet provisioning templates name such a role.
  - With O(s3_bucket) and O(s3_key), the role may also read that one S3 object (the input file of a bulk
    registration task), through an inline policy named C(iotfleet-registration-input-read).
  - Other managed and inline policies already on the role are left alone.
options:
  name:
    description:
      - The role name.
    type: str
    required: true
  path:
    description:
      - The role's IAM path. It cannot change after creation.
    type: str
    default: /
  description:
    description:
      - The role's description. Unset leaves an existing description alone.
    type: str
  s3_bucket:
    description:
      - The bucket of the registration task input file. Requires O(s3_key).
    type: str
  s3_key:
    description:
      - The key of the registration task input file. Requires O(s3_bucket).
    type: str
  state:
    description:
      - V(absent) detaches the managed policies, deletes the inline policies and then the role.
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - "IAM permissions: C(iam:GetRole), C(iam:CreateRole), C(iam:UpdateRole), C(iam:UpdateAssumeRolePolicy),
    C(iam:ListAttachedRolePolicies), C(iam:AttachRolePolicy), C(iam:DetachRolePolicy), C(iam:ListRolePolicies),
    C(iam:GetRolePolicy), C(iam:PutRolePolicy), C(iam:DeleteRolePolicy), C(iam:ListInstanceProfilesForRole),
    C(iam:RemoveRoleFromInstanceProfile), C(iam:DeleteRole), and C(iam:PassRole) for whoever later hands the
    role to AWS IoT."
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Role for just-in-time provisioning
  iotfleet.provisioning.provisioning_role:
    name: iot-jitp-provisioning
  register: jitp_role

- name: Role for a bulk registration task that reads one input file
  iotfleet.provisioning.provisioning_role:
    name: iot-bulk-registration
    description: Lets AWS IoT read the bulk registration input and create things
    s3_bucket: my-fleet-bucket
    s3_key: registration/batch-001.jsonl
"""

RETURN = r"""
role:
  description: The role as it is now (or would be, in check mode); null after removal.
  returned: always
  type: dict
  contains:
    name:
      description: The role name.
      type: str
      sample: iot-bulk-registration
    arn:
      description: The role ARN, to give to AWS IoT (null in check mode before creation).
      type: str
      sample: arn:aws:iam::123456789012:role/iot-bulk-registration
    path:
      description: The role path.
      type: str
      sample: /
    description:
      description: The role description.
      type: str
    trust_policy:
      description: The trust policy document.
      type: dict
    managed_policy_arns:
      description: The managed policies attached to the role.
      type: list
      elements: str
    inline_policies:
      description: The inline policies, by name.
      type: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iam
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule, result_with_diff


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            path=dict(type="str", default="/"),
            description=dict(type="str"),
            s3_bucket=dict(type="str"),
            s3_key=dict(type="str", no_log=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_together=[["s3_bucket", "s3_key"]],
    )

    def apply() -> dict:
        desired = iam.validate(module.params)
        client = module.client("iam")
        if module.params["state"] == "absent":
            changed, before, after = iam.ensure_absent(client, desired["name"], module.check_mode)
        else:
            changed, before, after = iam.ensure_present(client, desired, module.check_mode)
        return result_with_diff(module, changed, before, after, role=after)

    module.run(apply)


if __name__ == "__main__":
    main()
