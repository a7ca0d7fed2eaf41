#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_info
short_description: List AWS IoT device certificates
version_added: 0.1.0
description:
  - "Returns AWS IoT device certificates: one by id, those attached to a thing, those signed by a registered CA,
    or every certificate of the account and region."
  - Every page of the underlying list calls is read. Nothing is changed.
  - "Each certificate's validity dates, whole days left and public key are read from the certificate's PEM (the
    X.509 dates a TLS handshake checks; AWS's C(validity) field carries the same). A query by O(certificate_id) or
    O(thing) describes each certificate anyway, so they come at no extra call. A listing (every certificate, or by
    O(ca_certificate_id)) reads them only with O(include_validity) or O(expiring_within_days): one
    C(DescribeCertificate) per certificate, an API limited to 10 calls per second. RV(validity_read) says whether
    they were read."
options:
  certificate_id:
    description:
      - The id (64 hexadecimal characters) of one certificate. The list is empty when it does not exist.
      - Mutually exclusive with O(thing) and O(ca_certificate_id).
    type: str
  thing:
    description:
      - Only the certificates attached to this thing (C(ListThingPrincipals)). The list is empty when the thing
        does not exist.
    type: str
  ca_certificate_id:
    description:
      - Only the certificates signed by this registered CA certificate (C(ListCertificatesByCA)).
    type: str
  status:
    description:
      - Only the certificates with this status. Combines with the other options.
    type: str
    choices: [ACTIVE, INACTIVE, REVOKED, PENDING_TRANSFER, REGISTER_INACTIVE, PENDING_ACTIVATION]
  include_pem:
    description:
      - Also return each certificate's PEM. Costs one C(DescribeCertificate) call per certificate when listing.
    type: bool
    default: false
  include_validity:
    description:
      - For a listing (no O(certificate_id) or O(thing)), also read each certificate's validity, days left and
        public key, at one C(DescribeCertificate) call per certificate. Queries by O(certificate_id) or O(thing)
        always return them.
    type: bool
    default: false
  expiring_within_days:
    description:
      - Only the certificates whose validity ends within this many days from now (those already expired
        included). Reads the validity as O(include_validity) does.
      - A whole number from 0 to 36500.
    type: int
  include_attachments:
    description:
      - Also return each certificate's things and policies, at two calls per returned certificate
        (C(ListPrincipalThings) and C(ListAttachedPolicies)).
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.provisioning.aws
attributes:
  check_mode:
    description: Only reads, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  idempotent:
    description: Changes nothing.
    support: full
  action_group:
    description: Use C(group/iotfleet.provisioning.aws) in C(module_defaults) to set the connection options.
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:ListCertificates), C(iot:ListCertificatesByCA), C(iot:DescribeCertificate),
    C(iot:ListThingPrincipals), C(iot:ListPrincipalThings) and C(iot:ListAttachedPolicies) (only those of the query
    and options used)."
seealso:
  - module: iotfleet.provisioning.certificate
author:
  - iotfleet.provisioning developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Every ACTIVE certificate of the account
  iotfleet.provisioning.certificate_info:
    status: ACTIVE
  register: active_certificates

- name: The certificates of one device, with their PEM
  iotfleet.provisioning.certificate_info:
    thing: sensor-001
    include_pem: true
  register: sensor_certificates

- name: Certificates issued by our registered CA
  iotfleet.provisioning.certificate_info:
    ca_certificate_id: "{{ fleet_ca.certificate_id }}"

- name: ACTIVE certificates that expire within 30 days (one DescribeCertificate per certificate)
  iotfleet.provisioning.certificate_info:
    status: ACTIVE
    expiring_within_days: 30
  register: expiring

- name: Days left of the certificates of one device
  iotfleet.provisioning.certificate_info:
    thing: sensor-001
  register: sensor_certificates
- name: Warn on a certificate near its end
  ansible.builtin.debug:
    msg: "{{ item.certificate_id }} expires {{ item.validity.not_after }} ({{ item.days_left }} days)"
  loop: "{{ sensor_certificates.certificates }}"
  when: item.days_left is not none and item.days_left < 60
"""

RETURN = r"""
certificates:
  description: The selected certificates, sorted by id; empty when nothing matches.
  returned: always
  type: list
  elements: dict
  contains:
    certificate_id:
      description: The certificate id (SHA-256 of its DER bytes).
      type: str
      sample: 2d7c5a0e9f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5
    certificate_arn:
      description: The certificate ARN.
      type: str
    status:
      description: The certificate status.
      type: str
      sample: ACTIVE
    creation_date:
      description: When the certificate was created (ISO 8601).
      type: str
    ca_certificate_id:
      description:
        - The id of the CA certificate that signed it (null when registered without one).
        - AWS reports it only when describing a certificate, so it is returned for queries by O(certificate_id),
          O(thing) or O(ca_certificate_id), and with O(include_pem=true).
      type: str
      returned: when known
    certificate_mode:
      description: V(DEFAULT) or V(SNI_ONLY), when AWS reports it.
      type: str
      returned: when reported
    certificate_pem:
      description: The certificate PEM.
      type: str
      returned: when O(include_pem=true)
    validity:
      description:
        - The certificate's validity, read from its PEM; null when the PEM could not be read.
        - AWS-generated certificates (keys made by AWS, or signed from a CSR) end 2049-12-31T23:59:59Z;
          certificates signed by a CA carry the dates that CA gave them.
      type: dict
      returned: when RV(validity_read) applies (a query by id or thing, O(include_validity), O(expiring_within_days))
      contains:
        not_before:
          description: Start of validity (ISO 8601, UTC).
          type: str
          sample: "2024-05-01T12:00:00+00:00"
        not_after:
          description: End of validity (ISO 8601, UTC).
          type: str
          sample: "2049-12-31T23:59:59+00:00"
    days_left:
      description: Whole days until RV(certificates[].validity.not_after), rounded down; negative once expired.
      type: int
      returned: with RV(certificates[].validity)
      sample: 364
    public_key:
      description: The certificate's public key, V(RSA) with its size in bits, or V(EC) with its curve and size.
      type: dict
      returned: with RV(certificates[].validity)
      sample: {"type": "EC", "curve": "P-256", "size": 256}
    things:
      description: Names of the things the certificate is attached to, sorted.
      type: list
      elements: str
      returned: when O(include_attachments=true)
      sample: [sensor-001]
    policies:
      description: Names of the policies attached to the certificate, sorted.
      type: list
      elements: str
      returned: when O(include_attachments=true)
      sample: [sensor-policy]
validity_read:
  description:
    - Whether every returned certificate carries its validity. False for a listing without O(include_validity)
      or O(expiring_within_days) (validity not read, to spare DescribeCertificate calls), or when a PEM could not
      be read.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    ALL_STATUSES,
    validate_certificate_query,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.expiry import (
    query_with_expiry,
    validate_window,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            certificate_id=dict(type="str"),
            thing=dict(type="str"),
            ca_certificate_id=dict(type="str"),
            status=dict(type="str", choices=list(ALL_STATUSES)),
            include_pem=dict(type="bool", default=False),
            include_validity=dict(type="bool", default=False),
            expiring_within_days=dict(type="int"),
            include_attachments=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("certificate_id", "thing", "ca_certificate_id")],
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)

    def run() -> dict:
        query = validate_certificate_query(module.params)
        window = validate_window(module.params["expiring_within_days"])
        answer = query_with_expiry(
            module.client("iot"),
            query,
            module.params["include_validity"],
            window,
            include_attachments=module.params["include_attachments"],
        )
        return dict(changed=False, **answer)

    module.run(run)


if __name__ == "__main__":
    main()
