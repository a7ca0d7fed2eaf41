#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: device_certificate
short_description: Issue a device certificate signed by a local CA
version_added: 0.1.0
description:
  - "Issues an X.509 device certificate signed by a local CA (see M(iotfleet.provisioning.local_ca)) and writes it
    to O(certificate_path) (mode 0644, atomically), and optionally the chain (certificate, then CA certificate) to
    O(chain_path): a device connecting for just-in-time provisioning presents that chain."
  - "The certificate is for the key of a CSR (O(csr) or O(csr_path)), or for a device key kept or made at
    O(private_key_path) (mode 0600; an existing key of another type is never replaced silently, see O(force))."
  - "Its subject carries the fields AWS IoT JITP templates read (C(AWS::IoT::Certificate::CommonName),
    C(SerialNumber), C(Organization), C(OrganizationalUnit), C(Country), C(StateName),
    C(DistinguishedNameQualifier)). It has basicConstraints CA:FALSE, keyUsage digitalSignature, extended key
    usage clientAuth, and subject and authority key identifiers. It is signed with SHA-256 and never outlives the
    CA certificate."
  - An existing certificate is kept while it has the same subject and public key, is signed by this CA, has
    clientAuth, and stays valid for more than O(renew_margin_days); otherwise a new one is issued.
  - Runs on any host and makes no AWS call; the CA key is read where the module runs and never leaves that host.
  - Not part of the C(iotfleet.provisioning.aws) action group, as it takes no AWS options.
options:
  state:
    description:
      - Whether the certificate exists. V(absent) removes O(certificate_path), O(chain_path) and, when given,
        O(private_key_path).
    type: str
    choices: [present, absent]
    default: present
  ca_certificate_path:
    description:
      - The CA certificate (PEM, basicConstraints CA:TRUE). Required with O(state=present).
      - It must be what AWS IoT accepts, checked before anything is written; an RSA key of at least 2048 bits or
        an EC key on P-256, P-384 or P-521, signed with SHA-256, SHA-384 or SHA-512 (no SHA-1).
    type: path
  ca_private_key_path:
    description:
      - The CA's private key (PEM); it must match O(ca_certificate_path). Required with O(state=present).
      - An encrypted key needs O(ca_private_key_passphrase).
    type: path
  ca_private_key_passphrase:
    description:
      - The passphrase of an encrypted O(ca_private_key_path). It is never logged.
    type: str
  csr:
    description:
      - A PEM certificate signing request to certify. Its signature is checked, and its key must be one AWS IoT
        accepts (RSA of at least 2048 bits, or EC on P-256, P-384 or P-521).
      - Exactly one of O(csr), O(csr_path) and O(private_key_path) is required with O(state=present).
    type: str
  csr_path:
    description:
      - Like O(csr), read from a file on the host the module runs on.
    type: path
  private_key_path:
    description:
      - A device key to certify, kept when it exists with the requested type, else made (mode 0600).
    type: path
  key_type:
    description:
      - The algorithm of a key made at O(private_key_path).
  subject:
    description:
      - The certificate's subject. Required with O(private_key_path); with a CSR, the CSR's subject is used when
        unset.
    type: dict
    suboptions:
      common_name:
        description: CN (C(AWS::IoT::Certificate::CommonName)); JITP templates often name the thing after it.
        type: str
      serial_number:
        description: The subject's serialNumber attribute, not the certificate serial
          (C(AWS::IoT::Certificate::SerialNumber)).
        type: str
      organization:
        description: O (C(AWS::IoT::Certificate::Organization)).
        type: str
      organizational_unit:
        description: OU (C(AWS::IoT::Certificate::OrganizationalUnit)).
        type: str
      country:
        description: C, a two-letter country code (C(AWS::IoT::Certificate::Country)).
        type: str
      state_or_province:
        description: ST (C(AWS::IoT::Certificate::StateName)).
        type: str
      distinguished_name_qualifier:
        description: dnQualifier (C(AWS::IoT::Certificate::DistinguishedNameQualifier)).
        type: str
      locality:
        description: L (not read by JITP templates).
        type: str
  validity_days:
    description:
      - How long a new certificate is valid, in days (cut short to the CA certificate's end of validity).
    type: int
    default: 365
  renew_margin_days:
    description:
      - A certificate that expires within this many days is issued again. Must be less than O(validity_days).
      - The CA certificate must stay valid beyond this margin.
    type: int
    default: 30
  certificate_path:
    description:
      - Where the certificate is, or is to be written (PEM, mode 0644).
    type: path
    required: true
  chain_path:
    description:
      - Also write the certificate followed by the CA certificate here (PEM, mode 0644).
    type: path
  force:
    description:
      - Replace an existing key at O(private_key_path) whose type or size differs from the request, and overwrite
        a O(certificate_path) that does not hold a certificate.
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
    description: Returns the certificate (subject, issuer, validity, id) before and after, in diff mode.
    support: full
  idempotent:
    description: A second run with the same arguments keeps the certificate and reports no change.
    support: full
requirements:
  - cryptography >= 3.1 on the host that runs the module
notes:
  - Makes no AWS call, so it needs no IAM permissions.
seealso:
  - module: iotfleet.provisioning.local_ca
  - module: iotfleet.provisioning.ca_certificate
  - module: iotfleet.provisioning.csr
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: A device key and a certificate from the factory CA, with the chain JITP devices present
  iotfleet.provisioning.device_certificate:
    ca_certificate_path: /etc/pki/factory-ca.pem
    ca_private_key_path: /etc/pki/factory-ca.key
    private_key_path: /srv/devices/sensor-001/device.key
    certificate_path: /srv/devices/sensor-001/device.pem
    chain_path: /srv/devices/sensor-001/chain.pem
    subject:
      common_name: sensor-001
      serial_number: SN-0001
      organization: Example Corp
      country: DE

- name: Certify the key of a CSR made on the device
  iotfleet.provisioning.device_certificate:
    ca_certificate_path: /etc/pki/factory-ca.pem
    ca_private_key_path: /etc/pki/factory-ca.key
    csr: "{{ device_csr.csr }}"
    certificate_path: /srv/devices/sensor-002/device.pem
"""

RETURN = r"""
certificate_path:
  description: Where the certificate is.
  returned: always
  type: str
chain_path:
  description: Where the chain is, when O(chain_path) is given.
  returned: always
  type: str
private_key_path:
  description: Where the device key is, when O(private_key_path) is given. The key itself is never returned.
  returned: always
  type: str
certificate_pem:
  description: The certificate (null in check mode when it would be issued, and after removal).
  returned: always
  type: str
certificate:
  description: The certificate after the task (predicted in check mode); null after removal.
  returned: always
  type: dict
  contains:
    certificate_id:
      description: The SHA-256 of its DER bytes, which is also its AWS IoT certificate id; null when predicted.
      type: str
    subject:
      description: The subject as a dict of the option names above.
      type: dict
      sample: {"common_name": "sensor-001", "serial_number": "SN-0001"}
    subject_dn:
      description: The subject as an RFC 4514 string.
      type: str
    issuer_dn:
      description: The issuer, the CA's subject.
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
  description: The device key's type and curve or size.
  returned: when O(private_key_path) is given with O(state=present)
  type: dict
  sample: {"type": "EC", "curve": "P-256"}
key_action:
  description: What happened to the key, one of V(kept), V(created), V(replaced), V(fixed mode), V(create).
  returned: when O(private_key_path) is given with O(state=present)
  type: str
certificate_action:
  description: What happened to the certificate, one of V(kept), V(issued), V(reissued), or in check mode
    V(issue), V(reissue).
  returned: when O(state=present)
  type: str
reason:
  description: Why the certificate was issued; null when kept.
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
            ca_certificate_path=dict(type="path"),
            ca_private_key_path=dict(type="path", no_log=False),
            ca_private_key_passphrase=dict(type="str", no_log=True),
            csr=dict(type="str"),
            csr_path=dict(type="path"),
            private_key_path=dict(type="path", no_log=False),
            **keys.key_argument_spec(),
            subject=keys.subject_argument_spec(),
            validity_days=dict(type="int", default=backend.DEFAULT_DEVICE_VALIDITY_DAYS),
            renew_margin_days=dict(type="int", default=backend.DEFAULT_RENEW_MARGIN_DAYS),
            certificate_path=dict(type="path", required=True),
            chain_path=dict(type="path"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )

    def apply() -> dict:
        desired = backend.validate_device_certificate(module.params)
        if desired.state == "absent":
            done = backend.ensure_device_certificate_absent(desired, module.check_mode)
            fields = dict(certificate=None, certificate_pem=None)
        else:
            done = backend.ensure_device_certificate(desired, module.check_mode, warn=module.warn)
            fields = dict(certificate=done.after["certificate"])
            if desired.private_key_path:
                fields.update(key=done.after.get("private_key"))
        return local_result(
            module,
            done,
            certificate_path=desired.certificate_path,
            chain_path=desired.chain_path,
            private_key_path=desired.private_key_path,
            **fields,
        )

    run_local(module, apply, files="the certificate files")


if __name__ == "__main__":
    main()
