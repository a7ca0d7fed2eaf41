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
    C(iot:ListThingPrincipals) (only those of the query used)."
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
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    ALL_STATUSES,
    query_certificates,
    validate_certificate_query,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            certificate_id=dict(type="str"),
            thing=dict(type="str"),
            ca_certificate_id=dict(type="str"),
            status=dict(type="str", choices=list(ALL_STATUSES)),
            include_pem=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("certificate_id", "thing", "ca_certificate_id")],
    )

    def run() -> dict:
        query = validate_certificate_query(module.params)
        return dict(changed=False, certificates=query_certificates(module.client("iot"), query))

    module.run(run)


if __name__ == "__main__":
    main()
