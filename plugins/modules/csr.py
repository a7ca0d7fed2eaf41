#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: csr
short_description: Ensure a device private key and return a certificate signing request for it
version_added: 0.1.0
description:
  - Ensures a private key at O(private_key_path) (mode 0600, written atomically) and returns a PEM certificate
    signing request (CSR) for it with the given subject.
  - Runs on any host and makes no AWS call. Run it on the device itself, so that the private key is born where it
    is used and never travels; send only the CSR to AWS (for example with M(iotfleet.provisioning.certificate)
    or M(iotfleet.provisioning.register_thing)).
  - An existing key of the requested type and size is kept. An existing key of another type or size is never
    replaced silently, and the task fails unless O(force=true).
  - With O(csr_path), the CSR is also written there and kept on later runs while it still matches the key
    and subject.
  - Not part of the C(iotfleet.provisioning.aws) action group, as it takes no AWS options.
options:
  private_key_path:
    description:
      - Where the private key is, or is to be created (PEM, PKCS#8, unencrypted, mode 0600).
    type: path
    required: true
  subject:
    description:
      - The CSR subject. AWS IoT ignores it for certificates it signs from a CSR, but templates and people read it.
    required: true
  csr_path:
    description:
      - Also write the CSR to this path (mode 0644), and keep it on later runs while it matches.
    type: path
  force:
    description:
      - Replace an existing key whose type or size differs from the request. The old key is lost.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.key_subject
  - iotfleet.provisioning.key_subject.subject
attributes:
  check_mode:
    description: Can run in check mode and predict the change without writing anything.
    support: full
  diff_mode:
    description: Returns the key and CSR actions as before and after in diff mode.
    support: full
  idempotent:
    description: A second run with the same arguments keeps the key and reports no change.
    support: full
requirements:
  - cryptography >= 3.0 on the host that runs the module
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Make the device key on the device and get a CSR
  iotfleet.provisioning.csr:
    private_key_path: /etc/iot/private.pem.key
    subject:
      common_name: sensor-001
      organization: Example Corp
  register: device_csr

- name: Have AWS IoT sign it, from the controller
  iotfleet.provisioning.certificate:
    csr: "{{ device_csr.csr }}"
    certificate_path: /tmp/sensor-001.pem.crt
    thing: sensor-001
  delegate_to: localhost
"""

RETURN = r"""
csr:
  description: The CSR in PEM form (null in check mode when the key does not exist yet).
  returned: always
  type: str
private_key_path:
  description: Where the private key is.
  returned: always
  type: str
csr_path:
  description: Where the CSR was written, when O(csr_path) was given.
  returned: when csr_path is given
  type: str
key:
  description: The key's type and curve or size.
  returned: always
  type: dict
  sample: {"type": "EC", "curve": "P-256"}
key_action:
  description: What happened to the key, one of V(kept), V(created), V(replaced), V(fixed mode), V(create).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.iotfleet.provisioning.plugins.module_utils import keys
from ansible_collections.iotfleet.provisioning.plugins.module_utils.local_module import local_result, run_local


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            private_key_path=dict(type="path", required=True, no_log=False),
            **keys.key_argument_spec(),
            subject=keys.subject_argument_spec(required=True),
            csr_path=dict(type="path"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )

    def apply() -> dict:
        desired = keys.validate_csr(module.params)
        done = keys.ensure_key_and_csr(desired, module.check_mode)
        fields = {"csr_path": desired.csr_path} if desired.csr_path else {}
        return local_result(module, done, private_key_path=desired.private_key_path, **fields)

    run_local(module, apply, files="the key or CSR", crypto_field="private_key_path")


if __name__ == "__main__":
    main()
