# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CA certificates registered in AWS IoT (the trust anchor of just-in-time provisioning).

Functions, in the order the ca_certificate module uses them:

* ``validate_ca_certificate(params) -> DesiredCA``: checks every option, parses the CA certificate, the given
  verification certificate, the CA key file and the registration config, all before any client exists; raises
  ``ValidationError(field, rule)``.
* ``read_ca_certificate(client, certificate_id, with_tags)``: the CA as the module shows it, or None. The id is the
  SHA-256 of the CA's DER, known locally, so a re-run finds the CA with one DescribeCACertificate, no search.
* ``ensure_present(client, desired, check_mode)`` and ``ensure_absent(client, desired, check_mode)``: return an
  ``ensure.Ensured`` (``ensure_absent``'s ``extra``: ``removed_device_certificates``, the device certificates it
  removes or would remove); in check mode they predict ``after`` from the same plan without calling anything that
  changes state.

Registration in DEFAULT mode needs a verification certificate: one given by the user, or one made here from the
CA key (GetRegistrationCode, then a certificate with that code as CN, signed by the CA key, for a throwaway key).
The CA key is read on the host that runs the module and is never sent anywhere.

The package, by stage: ``validate`` (options, local files), ``read`` (views, DescribeCACertificate,
ListCertificatesByCA), ``present`` (register, update), ``absent`` (the guard, INACTIVE, delete). Import from the
package: the names below are its interface.
"""

from __future__ import annotations

from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.absent import ensure_absent
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.present import (
    ensure_present,
    other_template_cas,
    plan_update,
    register,
    registration_config_matches,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.read import (
    ca_view,
    list_device_certificates,
    read_ca_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.validate import (
    DesiredCA,
    validate_ca_certificate,
    validate_registration_config,
    validated_view,
)

__all__ = [
    "DesiredCA",
    "ca_view",
    "ensure_absent",
    "ensure_present",
    "list_device_certificates",
    "other_template_cas",
    "plan_update",
    "read_ca_certificate",
    "register",
    "registration_config_matches",
    "validate_ca_certificate",
    "validate_registration_config",
    "validated_view",
]
