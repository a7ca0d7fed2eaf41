#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: policy_check
short_description: Assert what an AWS IoT certificate may do, with TestAuthorization
version_added: 0.1.0
description:
  - Asks AWS IoT (C(TestAuthorization)) whether a certificate, connecting with a client id, may connect,
    publish, subscribe and receive on the resources listed in O(checks), and fails when an answer differs
    from the check's expectation, so a playbook can assert least privilege before a device is in hand.
  - The policies evaluated are those AWS IoT would use for the device (attached to the certificate, and to the
    thing groups of the thing named by O(client_id)), plus O(policy_names_to_add) and minus
    O(policy_names_to_skip).
  - Nothing is changed; the module runs the same in check mode.
options:
  principal:
    description:
      - The certificate, by ARN (C(arn:PARTITION:iot:REGION:ACCOUNT:cert/ID)) or by id (64 hexadecimal
        characters, turned into its ARN with C(DescribeCertificate)).
    type: str
    required: true
  client_id:
    description:
      - The MQTT client id the device connects with, 1-128 characters. Thing policy variables such as
        C(${iot:Connection.Thing.ThingName}) resolve only when it is the name of a thing attached to the
        certificate.
    type: str
  checks:
    description:
      - The questions and the expected answers, at least one. They are asked ten at a time (the API's limit).
    type: list
    elements: dict
    required: true
    suboptions:
      action:
        description:
          - V(connect) (on C(client/ID)), V(publish) or V(receive) (on C(topic/NAME)), V(subscribe) (on
            C(topicfilter/FILTER)).
        type: str
        required: true
        choices: [connect, publish, subscribe, receive]
      resource:
        description:
          - The resource ARN, or the part after the account (C(client/sensor-1), C(topic/devices/sensor-1/data),
            C(topicfilter/devices/sensor-1/#)), completed with the certificate's partition, region and account.
        type: str
        required: true
      expect:
        description:
          - V(allowed); V(denied) (explicitly or implicitly); V(explicit_deny) or V(implicit_deny) for one kind.
        type: str
        default: allowed
        choices: [allowed, denied, explicit_deny, implicit_deny]
  policy_names_to_add:
    description:
      - Policies (at most 10) evaluated as if they were attached, for example a new version to try.
    type: list
    elements: str
  policy_names_to_skip:
    description:
      - Attached policies (at most 10) left out of the evaluation.
    type: list
    elements: str
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
  - "IAM permissions: C(iot:TestAuthorization), and C(iot:DescribeCertificate) when O(principal) is an id."
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: The device policy lets sensor-1 act as itself only
  iotfleet.provisioning.policy_check:
    principal: "{{ sensor_certificate.certificate_id }}"
    client_id: sensor-1
    checks:
      - {action: connect, resource: client/sensor-1}
      - {action: publish, resource: topic/devices/sensor-1/telemetry}
      - {action: subscribe, resource: "topicfilter/devices/sensor-1/#"}
      - {action: connect, resource: client/sensor-2, expect: denied}
      - {action: publish, resource: topic/devices/sensor-2/telemetry, expect: denied}
"""

RETURN = r"""
principal_arn:
  description: The certificate ARN the questions were asked for.
  type: str
  returned: success
  sample: arn:aws:iot:eu-west-1:123456789012:cert/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
results:
  description: One entry per check, in order, with AWS IoT's answer (also returned when the module fails).
  type: list
  elements: dict
  returned: always, when the questions could be asked
  contains:
    action:
      description: The action asked about.
      type: str
      sample: publish
    resource:
      description: The full resource ARN asked about.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:topic/devices/sensor-1/telemetry
    expect:
      description: The expectation.
      type: str
      sample: allowed
    decision:
      description: AWS IoT's decision, C(ALLOWED), C(EXPLICIT_DENY) or C(IMPLICIT_DENY).
      type: str
      sample: ALLOWED
    passed:
      description: Whether the decision meets the expectation.
      type: bool
      sample: true
    allowed_by:
      description: The policies that allowed it.
      type: list
      elements: str
      sample: [device-least-privilege]
    explicitly_denied_by:
      description: The policies that denied it explicitly.
      type: list
      elements: str
      sample: []
    missing_context_values:
      description: Policy variables that had no value (for example a thing name when O(client_id) names no
        thing attached to the certificate).
      type: list
      elements: str
      sample: []
failed_checks:
  description: How many checks differ from their expectation (the module fails when more than 0).
  type: int
  returned: always, when the questions could be asked
  sample: 0
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_check import (
    failure_message,
    run_checks,
    validate,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            principal=dict(type="str", required=True),
            client_id=dict(type="str"),
            checks=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    action=dict(type="str", required=True, choices=["connect", "publish", "subscribe", "receive"]),
                    resource=dict(type="str", required=True),
                    expect=dict(
                        type="str",
                        default="allowed",
                        choices=["allowed", "denied", "explicit_deny", "implicit_deny"],
                    ),
                ),
            ),
            policy_names_to_add=dict(type="list", elements="str"),
            policy_names_to_skip=dict(type="list", elements="str"),
        ),
    )

    def run() -> dict:
        request = validate(module.params)
        outcome = run_checks(module.client("iot"), request)
        result = dict(
            changed=False,
            principal_arn=outcome["principal_arn"],
            results=outcome["results"],
            failed_checks=len(outcome["failed"]),
        )
        if outcome["failed"]:
            module.fail_json(msg=failure_message(outcome), **result)
        return result

    module.run(run)


if __name__ == "__main__":
    main()
