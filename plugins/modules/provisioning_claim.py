#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provisioning_claim
short_description: Get a temporary provisioning claim for fleet provisioning by trusted user
version_added: 0.1.0
description:
  - Calls C(CreateProvisioningClaim) for a FLEET_PROVISIONING template and writes the temporary claim certificate
    and its private key, both mode 0600, written atomically. An installer (the trusted user) hands them to a
    device, which exchanges them over MQTT for its own certificate and thing (the fleet provisioning MQTT API).
  - "AWS makes a claim valid for five minutes and keeps no claim you could list or describe later, so idempotence
    is defined on the files. An existing claim is reused, and nothing changes, while O(certificate_path) and
    O(private_key_path) hold a certificate and its matching key, the record beside the certificate
    (C(<certificate_path>.claim.json), mode 0600, with the template name and certificate id) names O(template_name),
    and the certificate stays valid for at least O(min_valid_seconds). Otherwise a new claim replaces the files.
    The old claim is not revoked; it expires by itself."
  - The template is read first (C(DescribeProvisioningTemplate)). The task fails, before any claim is made and even
    when a valid claim file exists, if the template does not exist, is not of type FLEET_PROVISIONING, or is
    disabled, since a claim for it could not provision a device.
  - The claim certificate and private key are never part of the result or the diff.
options:
  template_name:
    description:
      - The FLEET_PROVISIONING template the claim is for, 1-36 letters, digits, C(_) or C(-).
    type: str
    required: true
  certificate_path:
    description:
      - Where the claim certificate is written (mode 0600). Its directory must exist.
    type: path
    required: true
  private_key_path:
    description:
      - Where the claim's private key is written (mode 0600). Its directory must exist.
    type: path
    required: true
  min_valid_seconds:
    description:
      - An existing claim is reused only while it stays valid at least this long, from 0 to 299.
      - Give the installer enough time to hand the claim to the device and the device to provision with it.
    type: int
    default: 60
  force:
    description:
      - Make a new claim even when the existing one could be reused.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether a new claim would be made; its id and expiration are known only from AWS's answer.
  diff_mode:
    support: full
  idempotent:
    support: full
    details: While the claim on disk can be reused, a run only reads the template.
notes:
  - "IAM permissions: C(iot:DescribeProvisioningTemplate) and C(iot:CreateProvisioningClaim) on the template."
  - C(CreateProvisioningClaim) makes a new claim on every call, so it is not retried after a lost answer or a
    server error; run the task again.
seealso:
  - module: iotfleet.provisioning.provisioning_template
  - name: Provisioning by trusted user (AWS IoT developer guide)
    description: How an installer's app uses a temporary claim.
    link: https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A claim for the installer's app, valid at least two more minutes
  iotfleet.provisioning.provisioning_claim:
    template_name: sensors
    certificate_path: /secure/installer/claim.pem.crt
    private_key_path: /secure/installer/claim.pem.key
    min_valid_seconds: 120
  register: claim

- name: Say until when it works
  ansible.builtin.debug:
    msg: "Claim {{ claim.claim.certificate_id }} works until {{ claim.claim.expiration }}"
"""

RETURN = r"""
claim:
  description: The claim on disk after the task (in check mode, a new claim's id and expiration are null).
  returned: success
  type: dict
  contains:
    template_name:
      description: The template the claim is for.
      type: str
      sample: sensors
    certificate_id:
      description: The claim certificate's id.
      type: str
      sample: 0f3d5c9e1b7a2d4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d
    expiration:
      description: When the claim stops working, ISO 8601 in UTC.
      type: str
      sample: "2026-12-05T07:05:00Z"
    seconds_left:
      description: Seconds of validity left when the task ended.
      type: int
      sample: 299
reused:
  description: Whether the existing claim was kept.
  returned: success
  type: bool
certificate_path:
  description: The claim certificate file.
  returned: success
  type: str
private_key_path:
  description: The claim private key file.
  returned: success
  type: str
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils import provisioning_claims
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            template_name=dict(type="str", required=True),
            certificate_path=dict(type="path", required=True),
            private_key_path=dict(type="path", required=True, no_log=False),
            min_valid_seconds=dict(type="int", default=provisioning_claims.DEFAULT_MIN_VALID_SECONDS),
            force=dict(type="bool", default=False),
        ),
    )

    def apply() -> dict:
        desired = provisioning_claims.validate(module.params)
        done = provisioning_claims.ensure_present(module.client("iot"), desired, module.check_mode)
        return module.result(
            done,
            claim=dict(done.after, seconds_left=provisioning_claims.seconds_left(done.after)),
            reused=not done.changed,
            certificate_path=desired.certificate_path,
            private_key_path=desired.private_key_path,
        )

    module.run(apply)


if __name__ == "__main__":
    main()
