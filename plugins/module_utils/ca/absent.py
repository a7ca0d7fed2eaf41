# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a CA: INACTIVE, then DeleteCACertificate, behind the device-certificate guard."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.read import (
    list_device_certificates,
    read_ca_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.validate import DesiredCA, View
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    StateConflictError,
    remove_certificate,
)


def ensure_absent(client: Any, desired: DesiredCA, check_mode: bool) -> Tuple[bool, Optional[View], None, List[str]]:
    """Deactivate and delete the CA; with force, first remove the device certificates registered with it.

    Returns ``(changed, before, None, device certificate ids removed or to be removed)``.
    """
    before = read_ca_certificate(client, desired.certificate_id)
    if before is None:
        return False, None, None, []
    devices = list_device_certificates(client, desired.certificate_id)
    device_ids = sorted(d["certificateId"] for d in devices)
    if devices and not desired.force:
        count = len(devices)
        noun = "certificate is" if count == 1 else "certificates are"
        raise StateConflictError(
            "force",
            f"CA certificate {desired.certificate_id} cannot be removed: {count} device {noun} still registered "
            f"with it ({', '.join(device_ids[:5])}{', ...' if count > 5 else ''}). Remove them first, or set "
            "force: true to remove them (each is set INACTIVE, detached from its things and policies, and deleted)",
        )
    if check_mode:
        return True, before, None, device_ids
    for device in devices:
        remove_certificate(
            client,
            {
                "certificate_id": device["certificateId"],
                "certificate_arn": device["certificateArn"],
                "status": device.get("status"),
            },
        )
    if before.get("status") != "INACTIVE":
        client.update_ca_certificate(certificateId=desired.certificate_id, newStatus="INACTIVE")
    try:
        client.delete_ca_certificate(certificateId=desired.certificate_id)
    except ClientError as e:
        if not is_error(e, "ResourceNotFoundException"):
            raise
    return True, before, None, device_ids
