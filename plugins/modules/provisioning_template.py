#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provisioning_template
short_description: Manage AWS IoT provisioning templates and their versions
version_added: 0.1.0
description:
  - Creates, updates and deletes a provisioning template (fleet provisioning or just-in-time provisioning).
  - The template body is parsed and validated offline before any AWS call (sections, resource types and
    properties, certificate sources, OverrideSettings and intrinsic functions). Errors name the path in the
    template, such as C(Resources.thing.Properties.ThingName).
  - A changed body becomes a new default version. When the template already holds the maximum number of
    versions, the oldest non-default version is deleted first. If an older version already has the desired
    body, it is made the default again instead of creating a new version.
  - Bodies are compared as parsed JSON, so formatting and key order are not a change.
options:
  name:
    description:
      - The template name, 1-36 characters of letters, digits, C(_) and C(-).
    type: str
    required: true
  template_body:
    description:
      - The template, as a dict or as a JSON or YAML string.
      - Required to create the template. Unset leaves the current body alone.
    type: raw
  description:
    description:
      - The template description, at most 500 characters. Unset leaves it alone.
    type: str
  enabled:
    description:
      - Whether devices can be provisioned with the template.
      - Unset leaves an existing template alone; a new template is created enabled.
    type: bool
  provisioning_role_arn:
    description:
      - The IAM role AWS IoT assumes to provision devices (see M(iotfleet.provisioning.provisioning_role)).
      - Required to create the template.
    type: str
  type:
    description:
      - The template type. AWS cannot change it after creation, so a different type fails unless O(recreate=true).
    type: str
    choices: [FLEET_PROVISIONING, JITP]
    default: FLEET_PROVISIONING
  recreate:
    description:
      - Delete and create the template again when O(type) differs from the existing template's type.
      - The template's versions are lost.
    type: bool
    default: false
  pre_provisioning_hook:
    description:
      - A Lambda function AWS IoT calls before provisioning a device (FLEET_PROVISIONING only).
      - An empty dict removes the hook; unset leaves it alone.
    type: dict
    suboptions:
      target_arn:
        description: The Lambda function ARN. Required unless the dict is empty.
        type: str
      payload_version:
        description: The payload version sent to the function; V(2020-04-01) when unset.
        type: str
  tags:
    description:
      - Tags as a dict. Unset leaves tags alone.
    type: dict
  purge_tags:
    description:
      - Remove tags not listed in O(tags). Tags starting with C(aws:) are never removed.
    type: bool
    default: true
  state:
    description:
      - Whether the template exists.
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
  - "IAM permissions: C(iot:DescribeProvisioningTemplate), C(iot:ListProvisioningTemplateVersions),
    C(iot:DescribeProvisioningTemplateVersion), C(iot:CreateProvisioningTemplate),
    C(iot:CreateProvisioningTemplateVersion), C(iot:DeleteProvisioningTemplateVersion),
    C(iot:UpdateProvisioningTemplate), C(iot:DeleteProvisioningTemplate), C(iot:ListTagsForResource),
    C(iot:TagResource), C(iot:UntagResource), and C(iam:PassRole) on the provisioning role."
seealso:
  - module: iotfleet.provisioning.provisioning_template_info
  - module: iotfleet.provisioning.register_thing
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A fleet provisioning template
  iotfleet.provisioning.provisioning_template:
    name: sensor-fleet
    description: Sensors provisioned by claim
    provisioning_role_arn: "{{ provisioning_role.role.arn }}"
    template_body:
      Parameters:
        SerialNumber: {Type: String}
        AWS::IoT::Certificate::Id: {Type: String}
      Resources:
        thing:
          Type: AWS::IoT::Thing
          Properties:
            ThingName: {"Fn::Join": ["", ["sensor-", {Ref: SerialNumber}]]}
            AttributePayload: {serial: {Ref: SerialNumber}}
        certificate:
          Type: AWS::IoT::Certificate
          Properties:
            CertificateId: {Ref: "AWS::IoT::Certificate::Id"}
            Status: ACTIVE
        policy:
          Type: AWS::IoT::Policy
          Properties:
            PolicyName: sensor-policy

- name: A JITP template from a file
  iotfleet.provisioning.provisioning_template:
    name: factory-jitp
    type: JITP
    provisioning_role_arn: "{{ provisioning_role.role.arn }}"
    template_body: "{{ lookup('ansible.builtin.file', 'jitp-template.json') }}"

- name: Remove a pre-provisioning hook
  iotfleet.provisioning.provisioning_template:
    name: sensor-fleet
    pre_provisioning_hook: {}
"""

RETURN = r"""
template:
  description: The template as it is now (or would be, in check mode); null after removal.
  returned: always
  type: dict
  contains:
    name:
      description: The template name.
      type: str
    arn:
      description: The template ARN (null in check mode before creation).
      type: str
    type:
      description: FLEET_PROVISIONING or JITP.
      type: str
    description:
      description: The description.
      type: str
    enabled:
      description: Whether the template is enabled.
      type: bool
    provisioning_role_arn:
      description: The provisioning role.
      type: str
    pre_provisioning_hook:
      description: The hook (C(target_arn), C(payload_version)), or null.
      type: dict
    default_version_id:
      description: The id of the default version.
      type: int
    template_body:
      description: The default version's body, parsed.
      type: dict
    versions:
      description: The versions, oldest first, each with C(version_id) and C(is_default_version).
      type: list
      elements: dict
    tags:
      description: The tags.
      type: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils import templates
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            template_body=dict(type="raw"),
            description=dict(type="str"),
            enabled=dict(type="bool"),
            provisioning_role_arn=dict(type="str"),
            type=dict(type="str", default="FLEET_PROVISIONING", choices=["FLEET_PROVISIONING", "JITP"]),
            recreate=dict(type="bool", default=False),
            pre_provisioning_hook=dict(
                type="dict",
                # Not required here: an empty dict means "remove the hook".
                options=dict(target_arn=dict(type="str"), payload_version=dict(type="str")),
            ),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
    )

    def apply() -> dict:
        desired = templates.validate(module.params)
        client = module.client("iot")
        if module.params["state"] == "absent":
            done = templates.ensure_absent(client, desired.name, module.check_mode)
        else:
            done = templates.ensure_present(client, desired, module.check_mode)
        return module.result(done, template=done.after)

    module.run(apply)


if __name__ == "__main__":
    main()
