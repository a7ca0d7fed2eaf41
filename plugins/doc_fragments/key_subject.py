# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The key options of the local-crypto modules (csr, local_ca, device_certificate). A module that says more
    # about one of them (what the key is for) gives its own description, which replaces this one.
    DOCUMENTATION = r"""
options:
  key_type:
    description:
      - The key algorithm. AWS IoT accepts EC P-256/P-384 and RSA 2048 or larger.
    type: str
    choices: [EC, RSA]
    default: EC
  curve:
    description:
      - The curve of an EC key.
    type: str
    choices: [P-256, P-384]
    default: P-256
  key_size:
    description:
      - The size in bits of an RSA key, at least 2048.
    type: int
    default: 2048
"""

    # The subject option of the same modules; each gives its own description (what the subject is of).
    SUBJECT = r"""
options:
  subject:
    description:
      - The subject.
    type: dict
    suboptions:
      common_name:
        description: CN.
        type: str
      country:
        description: C, a two-letter country code.
        type: str
      state_or_province:
        description: ST.
        type: str
      locality:
        description: L.
        type: str
      organization:
        description: O.
        type: str
      organizational_unit:
        description: OU.
        type: str
      distinguished_name_qualifier:
        description: dnQualifier.
        type: str
      serial_number:
        description: The subject's serialNumber attribute (not the certificate serial).
        type: str
"""
