#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate
short_description: Manage AWS IoT device certificates
version_added: 0.1.0
description:
  - Creates, registers, updates and deletes AWS IoT X.509 device certificates, attaches them to a thing and
    attaches policies to them.
  - "A certificate comes from exactly one source: keys made by AWS (O(create_keys)), a certificate signing request
    (O(csr) or O(csr_path)), an existing PEM certificate (O(certificate_pem) or O(certificate_pem_path), with
    O(ca_certificate_pem) when its CA is registered), or an existing certificate (O(certificate_id))."
  - "Runs are idempotent and never mint a second certificate for the same device. A PEM certificate is found by its
    id (the SHA-256 of its DER bytes). A certificate made from a CSR or from AWS-generated keys is found again by the
    certificate an earlier run wrote to O(certificate_path) when its public key matches the CSR or the key at
    O(private_key_path), or by that public key among the certificates attached to O(thing)."
  - "Without a source, the certificate is found the same way: from O(certificate_path), or from the key at
    O(private_key_path) among the certificates of O(thing)."
  - "A new certificate is created INACTIVE and activated last, once its files are written and its thing and
    policies attached, so a failure half-way never leaves an ACTIVE certificate that nothing uses. The private key
    and the certificate are written before anything else can fail; after fixing the cause, running the task again
    completes the certificate instead of making another one."
  - "C(CreateKeysAndCertificate) and C(CreateCertificateFromCsr) make a new certificate on every call, so they are
    never retried after a lost answer or a server error (only after throttling or a connection that was never made); a
    certificate that C(CreateCertificateFromCsr) made although its answer was lost is found in the same run by the
    CSR's public key. Before the call, an intent record (C(.NAME.create-intent.json) beside O(private_key_path), or
    for a CSR beside O(certificate_path), mode 0600) notes the call; it is removed when the task succeeds. While it
    exists, a run finds what that call made: the certificate whose id it recorded, or one created meanwhile that
    carries the key or the CSR's public key. It completes that certificate and deletes the other such certificates
    that are INACTIVE and attached to nothing (RV(orphaned_certificates_deleted)). A certificate made by a call whose
    answer, and so whose private key, was lost carries nothing that proves whose it is: the INACTIVE certificates
    attached to nothing that were created meanwhile are reported in RV(orphaned_certificates_suspected) and a warning,
    never deleted."
  - "O(state=absent) deactivates the certificate, detaches it from every thing and every policy, then deletes it.
    Local files (O(certificate_path), O(private_key_path)) are left in place."
options:
  state:
    description:
      - Whether the certificate should exist.
    type: str
    choices: [present, absent]
    default: present
  create_keys:
    description:
      - Let AWS IoT make a key pair and a certificate (C(CreateKeysAndCertificate)).
      - The private key is returned by AWS only once. It is written to O(private_key_path) (mode 0600, atomically)
        as soon as the response arrives and is never part of the module's result.
      - If O(private_key_path) already exists but no certificate with its public key is found, the task fails
        rather than overwrite the key.
      - Needs O(certificate_path) or O(thing), through which later runs find the certificate.
    type: bool
    default: false
  private_key_path:
    description:
      - Where the private key of O(create_keys) is written, on the host the module runs on. Required with
        O(create_keys).
      - Without a certificate source, the key at this path identifies the certificate among those attached to
        O(thing).
    type: path
  csr:
    description:
      - A PEM certificate signing request; AWS IoT signs it (C(CreateCertificateFromCsr)).
      - Needs O(certificate_path) or O(thing), through which later runs find the certificate.
      - Mutually exclusive with the other sources.
    type: str
  csr_path:
    description:
      - Like O(csr), read from a file on the host the module runs on.
    type: path
  certificate_pem:
    description:
      - An existing PEM certificate to register (C(RegisterCertificate) with O(ca_certificate_pem), else
        C(RegisterCertificateWithoutCA)).
    type: str
  certificate_pem_path:
    description:
      - Like O(certificate_pem), read from a file on the host the module runs on.
    type: path
  ca_certificate_pem:
    description:
      - The PEM of the CA (registered in AWS IoT) that signed O(certificate_pem).
    type: str
  certificate_id:
    description:
      - The id (64 hexadecimal characters) of an existing certificate to manage. It cannot create one.
    type: str
  certificate_path:
    description:
      - Where the certificate PEM is written (mode 0644, atomically, only when the content differs), on the host the
        module runs on.
      - Later runs find the certificate again from this file.
    type: path
  status:
    description:
      - The certificate status. Applied (C(UpdateCertificate)) only when it differs from the current one.
      - When unset, a certificate from O(create_keys), O(csr), O(csr_path), O(certificate_pem) or
        O(certificate_pem_path) is V(ACTIVE), the working certificate of a device; this is also how a re-run
        activates a certificate whose creation stopped half-way.
      - When unset with O(certificate_id), or without a source, the status is left alone.
    type: str
    choices: [ACTIVE, INACTIVE, REVOKED]
  thing:
    description:
      - A thing to attach the certificate to. It must exist. Other things the certificate is attached to are left
        alone (use M(iotfleet.provisioning.thing_principal) to detach them).
    type: str
  policies:
    description:
      - Names of policies to attach to the certificate (at most 10, the AWS limit).
      - When given, this is the complete list unless O(purge_policies=false). When unset, attachments are left alone.
    type: list
    elements: str
  purge_policies:
    description:
      - When V(true) (the default) and O(policies) is given, policies attached to the certificate but not listed are
        detached. When V(false), listed policies are only added.
      - Set it to V(false) when other tasks (for example M(iotfleet.provisioning.policy_attachment)) also attach
        policies to this certificate.
    type: bool
    default: true
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.declared_policies
attributes:
  check_mode:
    description: Predicts the change with the same planning as a real run, without calling a mutating API.
    support: full
    details: A certificate that would be made is predicted with RV(certificate.certificate_id=null).
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
  - "IAM permissions: C(iot:CreateKeysAndCertificate), C(iot:CreateCertificateFromCsr), C(iot:RegisterCertificate),
    C(iot:RegisterCertificateWithoutCA), C(iot:DescribeCertificate), C(iot:UpdateCertificate),
    C(iot:DeleteCertificate), C(iot:ListThingPrincipals), C(iot:ListPrincipalThings), C(iot:AttachThingPrincipal),
    C(iot:DetachThingPrincipal), C(iot:ListAttachedPolicies), C(iot:AttachPolicy), C(iot:DetachPolicy)
    (only those of the source and steps used)."
  - The files are read and written on the host the module runs on; use C(delegate_to) to keep keys on the controller.
  - Needs the Python library C(cryptography) on that host.
seealso:
  - module: iotfleet.provisioning.certificate_info
  - module: iotfleet.provisioning.thing_principal
author:
  - iotfleet.provisioning developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Keys and certificate made by AWS, attached to a thing with a policy
  iotfleet.provisioning.certificate:
    create_keys: true
    private_key_path: /etc/iot/sensor-001.key
    certificate_path: /etc/iot/sensor-001.pem
    thing: sensor-001
    policies: [sensor-policy]
  register: sensor_cert

- name: A certificate for the device's own key, from its CSR
  iotfleet.provisioning.certificate:
    csr_path: /etc/iot/sensor-002.csr
    certificate_path: /etc/iot/sensor-002.pem
    thing: sensor-002
    policies: [sensor-policy]

- name: Register a certificate issued by our CA (the CA is registered in AWS IoT)
  iotfleet.provisioning.certificate:
    certificate_pem: "{{ lookup('file', 'sensor-003.pem') }}"
    ca_certificate_pem: "{{ lookup('file', 'fleet-ca.pem') }}"
    thing: sensor-003

- name: Deactivate a certificate
  iotfleet.provisioning.certificate:
    certificate_id: "{{ sensor_cert.certificate.certificate_id }}"
    status: INACTIVE

- name: Remove the certificate of a device (deactivate, detach things and policies, delete)
  iotfleet.provisioning.certificate:
    certificate_path: /etc/iot/sensor-001.pem
    state: absent
"""

RETURN = r"""
certificate:
  description:
    - The certificate after the task (predicted in check mode); empty when O(state=absent).
  returned: always
  type: dict
  contains:
    certificate_id:
      description: The certificate id (SHA-256 of its DER bytes); null when check mode predicts a new one.
      type: str
      sample: 2d7c5a0e9f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
    certificate_arn:
      description: The certificate ARN; null when check mode predicts a new one.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:cert/2d7c5a0e9f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
    status:
      description: ACTIVE, INACTIVE, REVOKED, PENDING_TRANSFER or PENDING_ACTIVATION.
      type: str
      sample: ACTIVE
    creation_date:
      description: When the certificate was created (ISO 8601); null when check mode predicts a new one.
      type: str
      sample: "2024-05-01T12:00:00+00:00"
    ca_certificate_id:
      description: The id of the CA certificate that signed it, when registered with one.
      type: str
    things:
      description: Names of the things the certificate is attached to.
      type: list
      elements: str
      sample: [sensor-001]
    policies:
      description: Names of the policies attached to the certificate.
      type: list
      elements: str
      sample: [sensor-policy]
certificate_path:
  description: The O(certificate_path) option, when given.
  returned: always
  type: str
  sample: /etc/iot/sensor-001.pem
private_key_path:
  description: The O(private_key_path) option, when given. The key itself is never returned.
  returned: always
  type: str
  sample: /etc/iot/sensor-001.key
orphaned_certificates_deleted:
  description:
    - Ids of certificates an interrupted earlier run of this task made (proven by its intent record and the key or
      CSR), INACTIVE and attached to nothing, that were deleted (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: []
orphaned_certificates_suspected:
  description:
    - Ids of INACTIVE certificates attached to nothing that were created while a C(CreateKeysAndCertificate) call of
      an earlier run of this task went unanswered (its private key was lost). Nothing proves they are this task's,
      so they are left alone; remove them with O(certificate_id) and O(state=absent) once checked.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    ensure_absent,
    ensure_present,
    validate_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import DECLARED_POLICIES_OPTION


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            create_keys=dict(type="bool", default=False, no_log=False),
            private_key_path=dict(type="path", no_log=False),
            csr=dict(type="str"),
            csr_path=dict(type="path"),
            certificate_pem=dict(type="str"),
            certificate_pem_path=dict(type="path"),
            ca_certificate_pem=dict(type="str"),
            certificate_id=dict(type="str"),
            certificate_path=dict(type="path"),
            status=dict(type="str", choices=["ACTIVE", "INACTIVE", "REVOKED"]),
            thing=dict(type="str"),
            policies=dict(type="list", elements="str"),
            purge_policies=dict(type="bool", default=True),
            declared_resources=DECLARED_POLICIES_OPTION,
        ),
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)

    def run() -> dict:
        desired = validate_certificate(module.params)
        client = module.client("iot")
        ensure = ensure_present if desired.state == "present" else ensure_absent
        done = ensure(client, desired, module.check_mode, module.warn)
        return module.result(
            done,
            certificate=done.after or {},
            certificate_path=desired.certificate_path,
            private_key_path=desired.private_key_path,
        )

    module.run(run)


if __name__ == "__main__":
    main()
