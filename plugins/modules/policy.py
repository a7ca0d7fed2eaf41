#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: policy
short_description: Manage an AWS IoT policy and its versions
version_added: 0.1.0
description:
  - Creates, updates and deletes an AWS IoT policy.
  - A changed document becomes a new default policy version. AWS keeps at most 5 versions of a policy; when the
    policy already has 5, the oldest version that is not the default is deleted first.
  - Documents are compared after normalisation, so that key order, whitespace, a one-item list instead of a plain
    string (in C(Action), C(NotAction), C(Resource), C(NotResource) and condition values) and C(Statement) given as
    one object instead of a one-item list are not changes. C(Version), C(Sid), every other value and the order of
    lists with several items are significant.
options:
  name:
    description:
      - The policy name, 1-128 characters of letters, digits and C(_+=,.@-).
    type: str
    required: true
    aliases: [policy_name]
  document:
    description:
      - The policy document, as a dict or as a JSON string (for example from P(ansible.builtin.file#lookup)).
      - It must be a JSON object with C(Version) and C(Statement), and have at most 2048 characters not counting
        whitespace. These are checked before any AWS call.
      - A JSON string is sent to AWS as given; a dict is sent as indented JSON.
      - Required when O(state=present).
    type: raw
  state:
    description:
      - V(present) creates the policy or makes O(document) its default version.
      - V(absent) deletes the policy with all its versions.
    type: str
    default: present
    choices: [present, absent]
  force:
    description:
      - With O(state=absent), a policy still attached to certificates or thing groups is refused (in check mode
        too, naming the targets) unless O(force=true), which detaches it from every target first.
      - Non-default versions are always deleted with the policy; O(force) is only about attachments.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the policy name and the normalised document before and after.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:GetPolicy), C(iot:ListPolicyVersions), C(iot:CreatePolicy), C(iot:CreatePolicyVersion),
    C(iot:DeletePolicyVersion), C(iot:ListTargetsForPolicy), C(iot:DetachPolicy) (with O(force)), C(iot:DeletePolicy)."
  - AWS can take up to five minutes after a detach before the policy can be deleted, so a removal retries
    C(DeleteConflictException) for about five minutes before it fails.
  - In check mode a new version's id is not known yet, so RV(policy.default_version_id) is V(null) when a new version
    would be created, and RV(policy.arn) is V(null) when the policy would be created.
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A policy that lets a device connect as its own thing name and use its own topics
  iotfleet.provisioning.policy:
    name: device-least-privilege
    document:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: iot:Connect
          Resource: "arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}"
          Condition:
            Bool:
              iot:Connection.Thing.IsAttached: "true"
        - Effect: Allow
          Action: [iot:Publish, iot:Receive]
          Resource: "arn:aws:iot:eu-west-1:123456789012:topic/devices/${iot:Connection.Thing.ThingName}/*"
        - Effect: Allow
          Action: iot:Subscribe
          Resource: "arn:aws:iot:eu-west-1:123456789012:topicfilter/devices/${iot:Connection.Thing.ThingName}/*"

- name: The document from a file kept in git
  iotfleet.provisioning.policy:
    name: fleet-a
    document: "{{ lookup('ansible.builtin.file', 'policies/fleet-a.json') }}"

- name: Delete a policy, detaching it from every certificate and thing group first
  iotfleet.provisioning.policy:
    name: retired-policy
    state: absent
    force: true
"""

RETURN = r"""
policy:
  description: The policy after the task (in check mode, as it would be). Empty when the policy does not exist.
  returned: always
  type: dict
  contains:
    name:
      description: The policy name.
      returned: always
      type: str
      sample: device-least-privilege
    arn:
      description: The policy ARN (V(null) in check mode when the policy would be created).
      returned: always
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:policy/device-least-privilege
    document:
      description: The default version's document, parsed.
      returned: always
      type: dict
      sample: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
               "Resource": "arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}",
               "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}}]}
    default_version_id:
      description: The id of the default version (V(null) in check mode when a new version would be created).
      returned: always
      type: str
      sample: "3"
    version_count:
      description: How many versions the policy has (at most 5).
      returned: always
      type: int
      sample: 3
detached_targets:
  description:
    - With O(state=absent) and O(force=true), the ARNs the policy was (or in check mode would be) detached from.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["arn:aws:iot:eu-west-1:123456789012:cert/0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"]
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policies import (
    PolicyAttachedError,
    ensure_absent,
    ensure_present,
    policy_diff_view,
    policy_result,
    validate_policy,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["policy_name"]),
            document=dict(type="raw"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["document"])],
    )

    def run() -> dict:
        desired = validate_policy(module.params)
        client = module.client("iot")
        if module.params["state"] == "present":
            done = ensure_present(client, desired, module.check_mode)
        else:
            try:
                done = ensure_absent(client, desired.name, module.check_mode, force=module.params["force"])
            except PolicyAttachedError as e:
                module.fail_json(msg=str(e), targets=e.targets)
        return module.result(done, policy_diff_view, policy=policy_result(done.after))

    module.run(run)


if __name__ == "__main__":
    main()
