#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing_principal
short_description: Attach a certificate or other principal to an AWS IoT thing
version_added: 0.1.0
description:
  - Attaches a principal (usually a device certificate) to a thing, or detaches it.
  - With O(exclusive), the attachment type is managed too. AWS sets the type when the principal is attached, so a
    different type is applied by detaching and attaching again.
options:
  thing:
    description:
      - The thing name. It must exist for O(state=present).
    type: str
    required: true
  principal:
    description:
      - A certificate ARN, a certificate id (64 hexadecimal characters, turned into its ARN), or an Amazon Cognito
        identity id (C(REGION:ID)), the other principal AWS IoT accepts. Anything else, including a value with
        surrounding spaces or a line break, is refused before any AWS call.
    type: str
    required: true
  exclusive:
    description:
      - V(true) attaches the principal with C(thingPrincipalType=EXCLUSIVE_THING) (this thing is then the only one
        it can be attached to), V(false) with C(NON_EXCLUSIVE_THING).
      - When unset, a new attachment gets AWS's default (C(NON_EXCLUSIVE_THING)) and an existing one keeps its type.
    type: bool
  state:
    description:
      - Whether the principal should be attached to the thing.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - iotfleet.provisioning.aws
attributes:
  check_mode:
    description: Predicts the change with the same planning as a real run, without calling a mutating API.
    support: full
  diff_mode:
    description: Shows the resource before and after the change.
    support: full
  idempotent:
    description: A second run with the same options changes nothing and calls no mutating API.
    support: full
  action_group:
    description: Use C(group/iotfleet.provisioning.aws) in C(module_defaults) to set the connection options.
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:ListThingPrincipalsV2), C(iot:AttachThingPrincipal), C(iot:DetachThingPrincipal), and
    C(iot:DescribeCertificate) when O(principal) is a certificate id."
seealso:
  - module: iotfleet.provisioning.certificate
author:
  - iotfleet.provisioning developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Attach a certificate to a thing, exclusively
  iotfleet.provisioning.thing_principal:
    thing: sensor-001
    principal: "{{ sensor_cert.certificate.certificate_arn }}"
    exclusive: true

- name: Detach a certificate, given by id, from a thing
  iotfleet.provisioning.thing_principal:
    thing: sensor-001
    principal: 2d7c5a0e9f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
    state: absent
"""

RETURN = r"""
thing:
  description: The thing name.
  returned: always
  type: str
  sample: sensor-001
principal:
  description: The principal, a certificate id turned into its ARN; null when that certificate does not exist.
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:cert/2d7c5a0e9f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
attached:
  description: Whether the principal is (or, in check mode, would be) attached to the thing.
  returned: always
  type: bool
  sample: true
thing_principal_type:
  description: V(EXCLUSIVE_THING) or V(NON_EXCLUSIVE_THING) while attached; null when not attached.
  returned: always
  type: str
  sample: EXCLUSIVE_THING
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    ensure_thing_principal_absent,
    ensure_thing_principal_present,
    resolve_principal,
    validate_thing_principal,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import check_principal


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            thing=dict(type="str", required=True),
            principal=dict(type="str", required=True),
            exclusive=dict(type="bool"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
    )

    def run() -> dict:
        desired = validate_thing_principal(module.params)
        # The whole value as given, before any call: validate_thing_principal strips it and lets any other
        # string through as "another principal".
        check_principal("principal", module.params["principal"])
        client = module.client("iot")
        principal = resolve_principal(client, desired)
        ensure = ensure_thing_principal_present if desired.state == "present" else ensure_thing_principal_absent
        done = ensure(client, desired, principal, module.check_mode)
        return module.result(
            done,
            thing=desired.thing,
            principal=principal,
            attached=done.after is not None,
            thing_principal_type=(done.after or {}).get("thing_principal_type"),
        )

    module.run(run)


if __name__ == "__main__":
    main()
