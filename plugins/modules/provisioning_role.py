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
  - Ensures an IAM role that only C(iot.amazonaws.com) may assume, with the AWS managed policy
    C(AWSIoTThingsRegistration) attached.
  - Bulk registration tasks, just-in-time provisioning and fleet provisioning templates name such a role.
  - The trust policy is enforced, not merged. It allows C(sts:AssumeRole) to the AWS IoT service principal
    only, with the conditions AWS IoT's cross-service confused deputy guidance recommends,
    C(aws:SourceAccount) (O(source_account)) and C(aws:SourceArn) C(arn:aws:iot:REGION:ACCOUNT:*)
    (O(source_regions)). An existing role that trusts anything else (another principal, every AWS principal, no
    conditions) is changed to that policy, shown in the diff and predicted in check mode, with a warning.
  - With O(s3_bucket) and O(s3_key), the role may also read that one S3 object (the input file of a bulk
    registration task), through an inline policy named C(iotfleet-registration-input-read).
  - Other managed and inline policies found on the role are reported in RV(extra_policies) and in a warning,
    since AWS IoT gets their permissions too; they are removed only with O(purge_policies=true).
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
  source_account:
    description:
      - The account on whose behalf AWS IoT may assume the role (condition C(aws:SourceAccount), and the account
        in C(aws:SourceArn)).
      - Unset, the account that owns the role, or for a new role the caller's account (STS C(GetCallerIdentity)).
    type: str
  source_regions:
    description:
      - The regions whose AWS IoT may assume the role; the trust policy's C(aws:SourceArn) is
        C(arn:aws:iot:REGION:ACCOUNT:*) for each.
      - Unset, the module's O(region). IAM roles are global; a role used by AWS IoT in several regions lists
        them all here (otherwise runs in different regions would keep replacing each other's trust policy).
    type: list
    elements: str
  purge_policies:
    description:
      - When V(true), managed policies other than C(AWSIoTThingsRegistration) are detached and inline policies
        other than C(iotfleet-registration-input-read) are deleted.
      - When V(false), they are left in place and reported in RV(extra_policies) with a warning, since the module
        cannot prove who else relies on them.
    type: bool
    default: false
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
    role to AWS IoT. A new role without O(source_account) also calls C(sts:GetCallerIdentity), which needs no
    permission."
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

- name: Role used by AWS IoT in two regions; detach whatever else was attached to it
  iotfleet.provisioning.provisioning_role:
    name: iot-fleet-provisioning
    source_account: "123456789012"
    source_regions: [eu-west-1, us-east-1]
    purge_policies: true
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
extra_policies:
  description:
    - The policies found on the role that this module does not manage (before any removal by
      O(purge_policies)). Empty lists for a new role and after O(state=absent).
  returned: always
  type: dict
  contains:
    managed_policy_arns:
      description: Managed policies other than C(AWSIoTThingsRegistration).
      type: list
      elements: str
      sample: [arn:aws:iam::aws:policy/AdministratorAccess]
    inline_policy_names:
      description: Inline policies other than C(iotfleet-registration-input-read).
      type: list
      elements: str
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iam
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            path=dict(type="str", default="/"),
            description=dict(type="str"),
            s3_bucket=dict(type="str"),
            s3_key=dict(type="str", no_log=False),
            source_account=dict(type="str"),
            source_regions=dict(type="list", elements="str"),
            purge_policies=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_together=[["s3_bucket", "s3_key"]],
    )

    def apply() -> dict:
        desired = iam.validate(module.params)
        client = module.client("iam")
        if module.params["state"] == "absent":
            done = iam.ensure_absent(client, desired.name, module.check_mode)
            return module.result(done, role=done.after, extra_policies=iam.extra_policies(None, ""))

        def caller_account() -> str:
            return module.client("sts").get_caller_identity()["Account"]

        done = iam.ensure_present(client, desired, module.check_mode, caller_account)
        extra = iam.extra_policies(done.before, iam.client_partition(client))
        for message in iam.role_warnings(done, desired, extra, module.check_mode):
            module.warn(message)
        return module.result(done, role=done.after, extra_policies=extra)

    module.run(apply)


if __name__ == "__main__":
    main()
