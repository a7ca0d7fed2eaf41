#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: register_thing
short_description: Provision one device from a provisioning template, idempotently
version_added: 0.1.0
description:
  - Provisions a thing, its certificate and policies from a provisioning template and a parameter map, with
    AWS IoT's C(RegisterThing).
  - The template is validated and rendered offline, then planned against the account's current state
    (honouring C(OverrideSettings)). C(RegisterThing) is called only when the plan changes something, so a
    device already provisioned as the template says reports no change and gets no second certificate.
  - A template with a C(CertificateSigningRequest) makes AWS issue a new certificate on every call. When the thing
    already has a certificate with the CSR's public key and only other resources differ, the template sent names
    that certificate by its id instead, so no second certificate is issued.
  - Check mode returns the plan without changing anything.
options:
  template_body:
    description:
      - The template, as a dict or a JSON or YAML string. Mutually exclusive with O(template_name).
    type: raw
  template_name:
    description:
      - Use the default version of this provisioning template. Mutually exclusive with O(template_body).
    type: str
  parameters:
    description:
      - The template parameters. Values are sent as strings.
    type: dict
    default: {}
  csr:
    description:
      - A PEM certificate signing request, passed in the parameter the template's C(CertificateSigningRequest)
        refers to with a C(Ref) to a parameter.
    type: str
  csr_path:
    description:
      - Read the CSR from this file on the host that runs the module.
    type: path
  private_key_path:
    description:
      - Make (or keep) a private key at this path on the host that runs the module and send a CSR for it.
      - Prefer making the key on the device with M(iotfleet.provisioning.csr) and passing O(csr).
    type: path
  key_type:
    description: The key type when O(private_key_path) makes a key.
    type: str
    choices: [EC, RSA]
    default: EC
  curve:
    description: The EC curve when O(private_key_path) makes a key.
    type: str
    choices: [P-256, P-384]
    default: P-256
  key_size:
    description: The RSA key size when O(private_key_path) makes a key.
    type: int
    default: 2048
  csr_subject:
    description:
      - The subject of the CSR made with O(private_key_path) (keys as in M(iotfleet.provisioning.csr)).
      - Defaults to the common name V(iot-device).
    type: dict
  certificate_path:
    description:
      - Write the device's certificate (PEM, mode 0644) here, on the host that runs the module.
    type: path
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.declared_policies
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - "IAM permissions: C(iot:RegisterThing), C(iot:DescribeThing), C(iot:ListThingGroupsForThing),
    C(iot:ListThingPrincipals), C(iot:DescribeCertificate), C(iot:ListAttachedPolicies), C(iot:GetPolicy), and
    C(iot:DescribeProvisioningTemplate) with O(template_name)."
  - AWS does not document what RegisterThing does to an existing resource when a template gives no
    C(OverrideSettings); the plan assumes the existing value is left alone and lists such differences as ignored.
seealso:
  - module: iotfleet.provisioning.provisioning_template
  - module: iotfleet.provisioning.csr
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Provision a device from a template and a CSR made on the device
  iotfleet.provisioning.register_thing:
    template_body:
      Parameters:
        ThingName: {Type: String}
        CSR: {Type: String}
      Resources:
        thing:
          Type: AWS::IoT::Thing
          Properties:
            ThingName: {Ref: ThingName}
        certificate:
          Type: AWS::IoT::Certificate
          Properties:
            CertificateSigningRequest: {Ref: CSR}
            Status: ACTIVE
        policy:
          Type: AWS::IoT::Policy
          Properties:
            PolicyName: device-policy
    parameters:
      ThingName: sensor-001
    csr: "{{ device_csr.csr }}"
    certificate_path: /srv/credentials/sensor-001.pem.crt
  register: registration

- name: Preview what a stored template would do for a device
  iotfleet.provisioning.register_thing:
    template_name: sensor-fleet
    parameters:
      SerialNumber: "0042"
      AWS::IoT::Certificate::Id: "{{ certificate_id }}"
  check_mode: true
  register: preview
"""

RETURN = r"""
plan:
  description:
    - What RegisterThing does (or would do), one entry per resource, with C(resource), C(logical_id), C(action)
      (V(create), V(update), V(none) or V(fail)), C(reason), C(changes) and, where known, C(before) and C(after).
  returned: always
  type: list
  elements: dict
resource_arns:
  description: The ARNs of the provisioned resources, keyed by the template's logical ids.
  returned: always
  type: dict
  sample: {"thing": "arn:aws:iot:eu-west-1:123456789012:thing/sensor-001"}
certificate_id:
  description: The device certificate's id (null in check mode before it exists).
  returned: always
  type: str
certificate_path:
  description: Where the certificate was written.
  returned: when certificate_path is given
  type: str
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils import registration
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import DECLARED_POLICIES_OPTION


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            template_body=dict(type="raw"),
            template_name=dict(type="str"),
            parameters=dict(type="dict", default={}),
            csr=dict(type="str"),
            csr_path=dict(type="path"),
            private_key_path=dict(type="path", no_log=False),
            key_type=dict(type="str", choices=["EC", "RSA"], default="EC"),
            curve=dict(type="str", choices=["P-256", "P-384"], default="P-256"),
            key_size=dict(type="int", default=2048),
            csr_subject=dict(type="dict"),
            certificate_path=dict(type="path"),
            declared_resources=DECLARED_POLICIES_OPTION,
        ),
        mutually_exclusive=[["template_body", "template_name"], ["csr", "csr_path", "private_key_path"]],
        required_one_of=[["template_body", "template_name"]],
    )

    def apply() -> dict:
        desired = registration.validate(module.params)
        result = registration.register(module.client("iot"), desired, module.check_mode)
        if module.params["certificate_path"]:
            result["certificate_path"] = module.params["certificate_path"]
        if module.diff_mode:
            result["diff"] = registration.plan_diff(result["plan"])
        return result

    module.run(apply)


if __name__ == "__main__":
    main()
