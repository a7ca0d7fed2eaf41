# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate_rotation_plan and certificate_rotation_confirmations filters (documented in the .yml files
beside): the certificate_rotation role's decisions, from module_utils/certificates/rotation.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.rotation import (
    confirmed_for,
    rotation_plan,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError


def certificate_rotation_confirmations(text, thing, field="certificate_rotation_confirmation_file"):
    """The certificate ids a confirmation file's text confirms for ``thing``."""
    try:
        return confirmed_for(text, thing, field)
    except ValidationError as error:
        raise AnsibleFilterError(str(error)) from None


def certificate_rotation_plan(certificates, thing, policy=None, confirmed=None):
    """The stage of ``thing``'s rotation and the step this run takes."""
    if not isinstance(certificates, list):
        raise AnsibleFilterError(
            f"certificate_rotation_plan: the input must be certificate_info's certificates list, got {certificates!r}"
        )
    return rotation_plan(certificates, thing, policy or {}, confirmed or [])


class FilterModule:
    def filters(self):
        return {
            "certificate_rotation_plan": certificate_rotation_plan,
            "certificate_rotation_confirmations": certificate_rotation_confirmations,
        }
