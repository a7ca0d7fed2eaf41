#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provisioning_template_info
short_description: Read AWS IoT provisioning templates
version_added: 0.1.0
description:
  - Returns one provisioning template by name, or every template in the account and region, each with its
    default body, versions and tags.
options:
  name:
    description:
      - The template to read. Unset lists all templates.
    type: str
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - "IAM permissions: C(iot:ListProvisioningTemplates), C(iot:DescribeProvisioningTemplate),
    C(iot:ListProvisioningTemplateVersions), C(iot:ListTagsForResource)."
seealso:
  - module: iotfleet.provisioning.provisioning_template
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Read one template
  iotfleet.provisioning.provisioning_template_info:
    name: sensor-fleet
  register: sensor_template

- name: List every template
  iotfleet.provisioning.provisioning_template_info:
  register: all_templates
"""

RETURN = r"""
templates:
  description: The templates found; empty when none matches.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The template name.
      type: str
    arn:
      description: The template ARN.
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
    module = IoTModule(argument_spec=dict(name=dict(type="str")))

    def read() -> dict:
        name = module.params["name"]
        if name is not None:
            templates.validate({"name": name, "state": "absent"})  # the name rules, before any call
        return dict(changed=False, templates=templates.list_templates(module.client("iot"), name))

    module.run(read)


if __name__ == "__main__":
    main()
