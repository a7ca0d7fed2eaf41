#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: local_ca
short_description: Ensure a local certificate authority (CA key and self-signed CA certificate)
version_added: 0.1.0
description:
  - Ensures a CA private key at O(private_key_path) (mode 0600, written atomically) and a self-signed CA
    certificate for it at O(certificate_path) (mode 0644), for example to sign device certificates for AWS IoT
    just-in-time provisioning (see M(iotfleet.provisioning.device_certificate) and
    M(iotfleet.provisioning.ca_certificate)).
  - The certificate has basicConstraints CA:TRUE (critical), keyUsage keyCertSign and cRLSign (critical), and
    subject and authority key identifiers. It is signed with SHA-256.
  - Runs on any host and makes no AWS call. Run it where the CA key should live; the key never leaves that host.
  - An existing CA certificate is kept while it carries the key's public key and the requested subject, is a
    self-signed CA and stays valid for more than O(renew_margin_days). Otherwise a new certificate is made for
    the same key, so certificates the CA signed keep verifying. Changing O(validity_days) alone does not renew it.
  - The key is never replaced silently. An existing key of another type or size, or a missing key next to an
    existing CA certificate (a new key would be a new CA), fails the task unless O(force=true).
  - Not part of the C(iotfleet.provisioning.aws) action group, as it takes no AWS options.
options:
  state:
    description:
      - Whether the CA files exist. V(absent) removes both the certificate and the key.
    type: str
    choices: [present, absent]
    default: present
  private_key_path:
    description:
      - Where the CA private key is, or is to be created (PEM, PKCS#8, unencrypted, mode 0600).
    type: path
    required: true
  certificate_path:
    description:
      - Where the self-signed CA certificate is, or is to be written (PEM, mode 0644).
    type: path
    required: true
  subject:
    description:
      - The CA certificate's subject. Required with O(state=present).
  validity_days:
    description:
      - How long a new CA certificate is valid, in days.
    type: int
    default: 3650
  renew_margin_days:
    description:
      - A CA certificate that expires within this many days is renewed (same key). Must be less than
        O(validity_days).
    type: int
    default: 30
  key_type:
    description:
      - The key algorithm. AWS IoT accepts EC P-256/P-384 and RSA 2048 or larger CA keys.
  force:
    description:
      - Replace an existing key whose type or size differs from the request, make a new key when the key file is
        missing but a CA certificate exists, and overwrite a O(certificate_path) that does not hold a certificate.
      - The old CA is lost; device certificates it signed no longer chain to the new one.
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
    description: Returns the key and certificate (subject, validity, id) before and after, in diff mode.
    support: full
  idempotent:
    description: A second run with the same arguments keeps the key and the certificate and reports no change.
    support: full
requirements:
  - cryptography >= 3.1 on the host that runs the module
notes:
  - Makes no AWS call, so it needs no IAM permissions.
seealso:
  - module: iotfleet.provisioning.device_certificate
  - module: iotfleet.provisioning.ca_certificate
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A factory CA on the provisioning host
  iotfleet.provisioning.local_ca:
    private_key_path: /etc/pki/factory-ca.key
    certificate_path: /etc/pki/factory-ca.pem
    subject:
      common_name: Example Factory CA
      organization: Example Corp
      country: DE
    validity_days: 3650
  register: factory_ca

- name: Register it in AWS IoT for just-in-time provisioning
  iotfleet.provisioning.ca_certificate:
    ca_certificate_path: /etc/pki/factory-ca.pem
    ca_private_key_path: /etc/pki/factory-ca.key
    auto_registration: true
    registration_config:
      template_name: factory-jitp
"""

RETURN = r"""
private_key_path:
  description: Where the CA key is. The key itself is never returned.
  returned: always
  type: str
certificate_path:
  description: Where the CA certificate is.
  returned: always
  type: str
certificate_pem:
  description: The CA certificate (null in check mode when it would be made or renewed, and after removal).
  returned: always
  type: str
certificate:
  description: The CA certificate after the task (predicted in check mode); null after removal.
  returned: always
  type: dict
  contains:
    certificate_id:
      description: The SHA-256 of its DER bytes, which is also its AWS IoT certificate id; null when predicted.
      type: str
    subject:
      description: The subject as a dict of the option names above.
      type: dict
      sample: {"common_name": "Example Factory CA", "organization": "Example Corp"}
    subject_dn:
      description: The subject as an RFC 4514 string.
      type: str
      sample: CN=Example Factory CA,O=Example Corp
    issuer_dn:
      description: The issuer (the subject itself, for a self-signed CA).
      type: str
    serial_number:
      description: The certificate serial number, hexadecimal; null when predicted.
      type: str
    not_before:
      description: Start of validity (ISO 8601).
      type: str
    not_after:
      description: End of validity (ISO 8601).
      type: str
key:
  description: The key's type and curve or size.
  returned: when O(state=present)
  type: dict
  sample: {"type": "EC", "curve": "P-256"}
key_action:
  description: What happened to the key, one of V(kept), V(created), V(replaced), V(fixed mode), V(create).
  returned: when O(state=present)
  type: str
certificate_action:
  description: What happened to the certificate, one of V(kept), V(created), V(renewed), or in check mode
    V(create), V(renew).
  returned: when O(state=present)
  type: str
reason:
  description: Why the certificate was made or renewed; null when kept.
  returned: when O(state=present)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.iotfleet.provisioning.plugins.module_utils import keys
from ansible_collections.iotfleet.provisioning.plugins.module_utils import local_ca as backend
from ansible_collections.iotfleet.provisioning.plugins.module_utils.local_module import local_result, run_local


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            private_key_path=dict(type="path", required=True, no_log=False),
            certificate_path=dict(type="path", required=True),
            subject=keys.subject_argument_spec(),
            validity_days=dict(type="int", default=backend.DEFAULT_CA_VALIDITY_DAYS),
            renew_margin_days=dict(type="int", default=backend.DEFAULT_RENEW_MARGIN_DAYS),
            **keys.key_argument_spec(),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )

    def apply() -> dict:
        desired = backend.validate_local_ca(module.params)
        if desired.state == "absent":
            done = backend.ensure_local_ca_absent(desired, module.check_mode)
            fields = dict(certificate=None, certificate_pem=None)
        else:
            done = backend.ensure_local_ca(desired, module.check_mode)
            fields = dict(certificate=done.after["certificate"], key=done.after["private_key"])
        return local_result(
            module, done, private_key_path=desired.private_key_path, certificate_path=desired.certificate_path, **fields
        )

    run_local(module, apply, files="the CA files")


if __name__ == "__main__":
    main()
