#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ca_certificate
short_description: Register a CA certificate in AWS IoT for just-in-time provisioning
version_added: 0.1.0
description:
  - Registers a CA certificate in AWS IoT, changes its status, auto-registration and registration config
    (the JITP template), manages its tags, and removes it.
  - The CA is identified by its certificate id, the SHA-256 of its DER bytes, computed locally. A later run finds
    it with one C(DescribeCACertificate) call, without any search.
  - "Registering in C(DEFAULT) mode needs proof that you hold the CA key: a verification certificate whose subject
    CN is the account's registration code, signed by the CA. Give it (O(verification_certificate_pem)), or give
    O(ca_private_key_path) and the module makes one: it calls C(GetRegistrationCode) and signs a certificate for a
    fresh throwaway key, valid for one day, with the CA key. The CA key is read on the host that runs the module
    and never leaves it."
  - In C(SNI_ONLY) mode no verification certificate is sent.
  - Status, auto-registration and registration config of a registered CA are changed in place
    (C(UpdateCACertificate)), only when they differ. Unset options leave the registered values alone.
  - "O(state=absent) sets the CA INACTIVE, then deletes it. While device certificates registered with the CA
    remain (C(ListCertificatesByCA)), the task fails and says how many, unless O(force=true): then each of them is
    first set INACTIVE, detached from its things and policies, and deleted. With
    O(keep_inactive_device_certificates=true) only an ACTIVE device certificate stops the removal (the task fails
    with their count and what to do); the others stay registered."
  - "Before removing, the task can prove the CA is its own: O(ca_private_key_path) must hold the CA's key (checked
    offline, before any call), and O(registration_config.template_name) must be the JITP template the CA is
    registered with (else the task fails and removes nothing)."
options:
  state:
    description:
      - Whether the CA certificate is registered.
    type: str
    choices: [present, absent]
    default: present
  ca_certificate_pem:
    description:
      - The CA certificate, PEM. It must be a CA certificate (basicConstraints CA:TRUE).
      - "To be registered it must also be what AWS IoT accepts, checked before any call: an RSA key of at least
        2048 bits or an EC key on P-256, P-384 or P-521, signed with SHA-256, SHA-384 or SHA-512 (no SHA-1)."
      - Exactly one of O(ca_certificate_pem), O(ca_certificate_path) and O(certificate_id) is required.
    type: str
  ca_certificate_path:
    description:
      - Like O(ca_certificate_pem), read from a file on the host the module runs on.
    type: path
  certificate_id:
    description:
      - The id (64 hexadecimal characters) of a registered CA certificate, to change or remove it without its PEM.
      - It cannot register a CA.
    type: str
  verification_certificate_pem:
    description:
      - A verification certificate for C(DEFAULT) mode, PEM; its subject CN must be the registration code
        (C(GetRegistrationCode)) and it must be issued by the CA. It is checked to be issued by the CA before any
        call; AWS checks the code.
      - Mutually exclusive with O(ca_private_key_path); not allowed with O(certificate_mode=SNI_ONLY).
      - Only used when the CA is registered; a registered CA needs neither.
    type: str
  ca_private_key_path:
    description:
      - The CA's private key (PEM), on the host the module runs on, to make the verification certificate. It
        must match the CA certificate's public key. An encrypted key needs O(ca_private_key_passphrase).
      - Mutually exclusive with O(verification_certificate_pem); not allowed with O(certificate_mode=SNI_ONLY).
      - With O(state=absent), the proof that the task holds the CA key; the CA is not removed when it does not
        match.
    type: path
  ca_private_key_passphrase:
    description:
      - The passphrase of an encrypted O(ca_private_key_path). It is never logged.
    type: str
  validate_only:
    description:
      - Only check the options and the local files (the CA certificate, its strength, the CA key and that it
        matches, the verification certificate and that the CA issued it), and return the certificate id. No AWS
        client is made and nothing changes, so a playbook can refuse a bad CA before its first AWS call.
    type: bool
    default: false
  fail_on_other_template_ca:
    description:
      - "When the CA is not registered yet, first list the CAs registered with
        O(registration_config.template_name) (C(ListCACertificates)) and fail, naming them, if another one is
        ACTIVE. A CA whose key was lost then fails loudly instead of a second CA being registered for the same
        template. Needs O(registration_config.template_name). Also applies in check mode (it only reads)."
    type: bool
    default: false
  allowed_template_ca_ids:
    description:
      - With O(fail_on_other_template_ca), the ids of the other CAs that may be ACTIVE for the template (a planned
        CA rotation, where the playbook declares every CA it holds). Any other ACTIVE CA still fails the task.
    type: list
    elements: str
  keep_inactive_device_certificates:
    description:
      - With O(state=absent), the retirement of a CA in a rotation, in two steps. The CA is set INACTIVE with
        auto-registration off at once (no new device it signed is registered; registered ones keep connecting, as
        AWS documents). It is deleted only once no device certificate it signed is ACTIVE
        (C(ListCertificatesByCA)); until then the task fails with their count and what to do. Device certificates
        in other states are left registered. Mutually exclusive with O(force).
    type: bool
    default: false
  certificate_mode:
    description:
      - V(DEFAULT) (needs a verification certificate) or V(SNI_ONLY) (no verification; devices send SNI).
      - A CA is registered in V(DEFAULT) mode when unset. AWS IoT cannot change the mode of a registered CA, so a
        different mode fails, naming the current one.
    type: str
    choices: [DEFAULT, SNI_ONLY]
  status:
    description:
      - The CA status. A CA is registered V(ACTIVE) when unset; a registered CA's status is left alone when unset.
    type: str
    choices: [ACTIVE, INACTIVE]
  auto_registration:
    description:
      - Whether device certificates signed by this CA are registered automatically when a device first connects
        (needed for just-in-time provisioning and registration).
      - A CA is registered without auto-registration when unset; a registered CA's setting is left alone.
    type: bool
  registration_config:
    description:
      - The provisioning template AWS IoT applies to devices whose certificate this CA signed (JITP).
      - With O(state=absent), only O(registration_config.template_name) is used, as a proof of ownership (the CA
        must be registered with that template).
      - Either O(registration_config.template_name), or O(registration_config.template_body) with
        O(registration_config.role_arn). A given config replaces the registered one (only when it differs);
        unset leaves the registered config alone. This module does not remove a registration config.
    type: dict
    suboptions:
      template_name:
        description:
          - The name of a provisioning template of type JITP (see M(iotfleet.provisioning.provisioning_template)).
        type: str
      template_body:
        description:
          - A JITP template body, as a dict or a JSON or YAML string. It is validated offline; bodies are compared
            as parsed JSON.
        type: raw
      role_arn:
        description:
          - The IAM role AWS IoT assumes to provision devices (see M(iotfleet.provisioning.provisioning_role)).
            Required with O(registration_config.template_body).
        type: str
  tags:
    description:
      - Tags as a dict. Unset leaves tags alone (and they are not read, so C(iot:ListTagsForResource) is only
        needed when this is given).
    type: dict
  purge_tags:
    description:
      - Remove tags not listed in O(tags). Tags starting with C(aws:) are never removed.
    type: bool
    default: true
  force:
    description:
      - With O(state=absent), first remove every device certificate registered with the CA.
    type: bool
    default: false
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
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:DescribeCACertificate), C(iot:RegisterCACertificate), C(iot:GetRegistrationCode)
    (with O(ca_private_key_path)), C(iot:ListCACertificates) (with O(fail_on_other_template_ca)),
    C(iot:UpdateCACertificate), C(iot:DeleteCACertificate),
    C(iot:ListCertificatesByCA), C(iot:ListTagsForResource), C(iot:TagResource), C(iot:UntagResource)
    (with O(tags)); with O(force), also C(iot:UpdateCertificate), C(iot:ListPrincipalThings),
    C(iot:DetachThingPrincipal), C(iot:ListAttachedPolicies), C(iot:DetachPolicy), C(iot:DeleteCertificate); and
    C(iam:PassRole) on O(registration_config.role_arn)."
  - Needs the Python library C(cryptography) on the host that runs the module.
seealso:
  - module: iotfleet.provisioning.local_ca
  - module: iotfleet.provisioning.device_certificate
  - module: iotfleet.provisioning.provisioning_template
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Register the factory CA for just-in-time provisioning with a JITP template
  iotfleet.provisioning.ca_certificate:
    ca_certificate_path: /etc/pki/factory-ca.pem
    ca_private_key_path: /etc/pki/factory-ca.key
    auto_registration: true
    registration_config:
      template_name: factory-jitp
    tags:
      team: fleet
  register: factory_ca

- name: Register a CA with a verification certificate made elsewhere (the CA key stays offline)
  iotfleet.provisioning.ca_certificate:
    ca_certificate_pem: "{{ lookup('ansible.builtin.file', 'offline-ca.pem') }}"
    verification_certificate_pem: "{{ lookup('ansible.builtin.file', 'verification.pem') }}"

- name: Register a CA in SNI_ONLY mode
  iotfleet.provisioning.ca_certificate:
    ca_certificate_path: /etc/pki/partner-ca.pem
    certificate_mode: SNI_ONLY

- name: Stop registering new devices with it
  iotfleet.provisioning.ca_certificate:
    certificate_id: "{{ factory_ca.ca_certificate.certificate_id }}"
    auto_registration: false

- name: Retire an old CA once no device certificate it signed is ACTIVE (proving the task holds its key)
  iotfleet.provisioning.ca_certificate:
    ca_certificate_path: /etc/pki/factory-ca-2024.pem
    ca_private_key_path: /etc/pki/factory-ca-2024.key
    registration_config:
      template_name: factory-jitp
    state: absent
    keep_inactive_device_certificates: true

- name: Remove the CA and every device certificate registered with it
  iotfleet.provisioning.ca_certificate:
    ca_certificate_path: /etc/pki/factory-ca.pem
    state: absent
    force: true
"""

RETURN = r"""
ca_certificate:
  description:
    - The CA certificate after the task (predicted in check mode); empty after removal.
    - With O(validate_only=true), only C(certificate_id), C(not_after) and C(valid_days_left).
  returned: always
  type: dict
  contains:
    certificate_id:
      description: The CA certificate id, the SHA-256 of its DER bytes.
      type: str
      sample: 8d2e3f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70
    arn:
      description: The CA certificate ARN; null when check mode predicts a registration.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:cacert/8d2e3f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70
    status:
      description: V(ACTIVE) or V(INACTIVE).
      type: str
      sample: ACTIVE
    auto_registration_status:
      description: V(ENABLE) or V(DISABLE), as AWS reports it (null if AWS does not report it).
      type: str
      sample: ENABLE
    registration_config:
      description: The registration config (C(template_name), or C(template_body) parsed and C(role_arn)), or null.
      type: dict
      sample: {"template_name": "factory-jitp"}
    certificate_mode:
      description: V(DEFAULT) or V(SNI_ONLY), as AWS reports it (null if AWS does not report it).
      type: str
      sample: DEFAULT
    creation_date:
      description: When the CA was registered (ISO 8601); null when check mode predicts a registration.
      type: str
      sample: "2024-05-01T12:00:00+00:00"
    not_after:
      description: When the CA certificate expires (ISO 8601).
      type: str
      returned: with O(validate_only=true)
    valid_days_left:
      description: Whole days until the CA certificate expires (negative once expired).
      type: int
      returned: with O(validate_only=true)
    tags:
      description: The tags.
      type: dict
      returned: when O(tags) is given
      sample: {"team": "fleet"}
removed_device_certificates:
  description:
    - With O(state=absent), the ids of the device certificates registered with the CA that were removed (or, in
      check mode, would be). Empty when there were none.
  returned: when O(state=absent)
  type: list
  elements: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca import (
    ensure_absent,
    ensure_present,
    validate_ca_certificate,
    validated_view,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            ca_certificate_pem=dict(type="str"),
            ca_certificate_path=dict(type="path"),
            certificate_id=dict(type="str"),
            verification_certificate_pem=dict(type="str"),
            ca_private_key_path=dict(type="path", no_log=False),
            ca_private_key_passphrase=dict(type="str", no_log=True),
            validate_only=dict(type="bool", default=False),
            fail_on_other_template_ca=dict(type="bool", default=False),
            allowed_template_ca_ids=dict(type="list", elements="str"),
            keep_inactive_device_certificates=dict(type="bool", default=False),
            certificate_mode=dict(type="str", choices=["DEFAULT", "SNI_ONLY"]),
            status=dict(type="str", choices=["ACTIVE", "INACTIVE"]),
            auto_registration=dict(type="bool"),
            registration_config=dict(
                type="dict",
                options=dict(
                    template_name=dict(type="str"),
                    template_body=dict(type="raw"),
                    role_arn=dict(type="str"),
                ),
            ),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
        ),
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)

    def run() -> dict:
        desired = validate_ca_certificate(module.params)
        if desired.validate_only:
            return {"changed": False, "ca_certificate": validated_view(desired)}
        return module.ensure(desired, ensure_present, ensure_absent, returned="ca_certificate")

    module.run(run)


if __name__ == "__main__":
    main()
