#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: policy_attachment
short_description: Attach an AWS IoT policy to a certificate or thing group, or detach it
version_added: 0.1.0
description:
  - Makes sure an AWS IoT policy is attached to (O(state=present)) or detached from (O(state=absent)) one target,
    a certificate (given by its id or ARN) or a thing group (given by its ARN).
  - Only direct attachments count; a policy inherited from a parent thing group is not an attachment of the target.
options:
  policy:
    description:
      - The policy name, 1-128 characters of letters, digits and C(_+=,.@-).
    type: str
    required: true
    aliases: [policy_name]
  target:
    description:
      - A certificate id (64 hexadecimal characters), which is turned into the certificate ARN with
        C(DescribeCertificate).
      - Or a certificate ARN, C(arn:aws:iot:REGION:ACCOUNT:cert/ID).
      - Or a thing group ARN, C(arn:aws:iot:REGION:ACCOUNT:thinggroup/NAME).
      - Or a thing group name (1-128 characters C([a-zA-Z0-9:_-])), as M(iotfleet.provisioning.thing_group)
        takes it, turned into its ARN with C(DescribeThingGroup). A value of 64 hexadecimal characters is read
        as a certificate id.
      - Anything else is refused before any AWS call.
    type: str
    required: true
  state:
    description:
      - V(present) attaches the policy, V(absent) detaches it.
      - With V(absent), a certificate id that does not exist is not an error (nothing is attached to it).
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
    details: The diff shows the policy, the target ARN and whether the policy is attached, before and after.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:ListAttachedPolicies), C(iot:GetPolicy), C(iot:AttachPolicy), C(iot:DetachPolicy),
    and C(iot:DescribeCertificate) when O(target) is a certificate id."
  - AWS allows at most 10 policies on one certificate; an 11th fails with C(LimitExceededException).
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Let a device's certificate use the device policy
  iotfleet.provisioning.policy_attachment:
    policy: device-least-privilege
    target: "{{ device_certificate.certificate.certificate_id }}"

- name: Give every device of a thing group the fleet policy
  iotfleet.provisioning.policy_attachment:
    policy: fleet-a
    target: fleet-a

- name: Take a policy off a certificate
  iotfleet.provisioning.policy_attachment:
    policy: old-policy
    target: arn:aws:iot:eu-west-1:123456789012:cert/0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
    state: absent
"""

RETURN = r"""
attached:
  description: Whether the policy is attached to the target after the task (in check mode, would be).
  returned: always
  type: bool
  sample: true
target_arn:
  description:
    - The target's ARN.
    - V(null) only with O(state=absent) when O(target) is a certificate id that does not exist.
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:thinggroup/fleet-a
policy:
  description: The policy name.
  returned: always
  type: str
  sample: device-least-privilege
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_attachments import (
    ensure_attached,
    ensure_detached,
    validate_attachment,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            policy=dict(type="str", required=True, aliases=["policy_name"]),
            target=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
    )

    def run() -> dict:
        desired = validate_attachment(module.params)
        ensure = ensure_attached if desired.state == "present" else ensure_detached
        done = ensure(module.client("iot"), desired, module.check_mode)
        return module.result(
            done, attached=done.after["attached"], target_arn=done.after["target_arn"], policy=desired.policy
        )

    module.run(run)


if __name__ == "__main__":
    main()
