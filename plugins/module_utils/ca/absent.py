# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a CA: INACTIVE, then DeleteCACertificate, behind the device-certificate guard."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.read import (
    list_device_certificates,
    read_ca_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.validate import DesiredCA, View
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import (
    StateConflictError,
    remove_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import is_error


def _sample(ids: List[str]) -> str:
    return ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")


def refuse_foreign_ca(desired: DesiredCA, before: View) -> None:
    """A CA registered with another JITP template (or none) than the one the task names is not this task's."""
    expected = (desired.registration_config or {}).get("template_name")
    if expected is None:
        return
    current = (before.get("registration_config") or {}).get("template_name")
    if current != expected:
        raise StateConflictError(
            "registration_config.template_name",
            f"CA certificate {desired.certificate_id} is registered with "
            f"{'the JITP template ' + current if current else 'no JITP template'}, not {expected}: this task does "
            "not own it and does not remove it",
        )


def active_device_guard(desired: DesiredCA, devices: List[Dict[str, Any]]) -> None:
    """Refuse to remove a CA while a device certificate it signed is still ACTIVE (ListCertificatesByCA)."""
    active = sorted(d["certificateId"] for d in devices if d.get("status") == "ACTIVE")
    if not active:
        return
    count = len(active)
    noun = "certificate it signed is" if count == 1 else "certificates it signed are"
    raise StateConflictError(
        "keep_inactive_device_certificates",
        f"CA certificate {desired.certificate_id} is not removed: {count} device {noun} still ACTIVE "
        f"({_sample(active)}). Those devices still connect with them; move each device to a certificate from the "
        "new CA, then set its old certificate INACTIVE (or revoke it), and run again",
    )


def _deactivation(before: View) -> Dict[str, str]:
    """UpdateCACertificate arguments that make the CA INACTIVE with auto-registration off (empty when it is)."""
    update = {}
    if before.get("status") != "INACTIVE":
        update["newStatus"] = "INACTIVE"
    if before.get("auto_registration_status") == "ENABLE":
        update["newAutoRegistrationStatus"] = "DISABLE"
    return update


def guard(desired: DesiredCA, devices: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The device certificates the removal takes with it (with force), after the guard said yes."""
    if desired.force:
        return devices
    if desired.keep_inactive_device_certificates:
        active_device_guard(desired, devices)
        return []
    if devices:
        device_ids = sorted(d["certificateId"] for d in devices)
        count = len(devices)
        noun = "certificate is" if count == 1 else "certificates are"
        raise StateConflictError(
            "force",
            f"CA certificate {desired.certificate_id} cannot be removed: {count} device {noun} still registered "
            f"with it ({_sample(device_ids)}). Remove them first, or set force: true to remove them (each is set "
            "INACTIVE, detached from its things and policies, and deleted), or keep_inactive_device_certificates: "
            "true to leave those that are not ACTIVE registered",
        )
    return []


def ensure_absent(client: Any, desired: DesiredCA, check_mode: bool) -> Ensured:
    """Deactivate and delete the CA, behind the device-certificate guard; with force, remove its devices first.

    ``extra``: ``removed_device_certificates``, the device certificate ids removed (or, in check mode, to be removed).
    """
    before = read_ca_certificate(client, desired.certificate_id)
    if before is None:
        return Ensured(False, extra={"removed_device_certificates": []})
    refuse_foreign_ca(desired, before)
    devices = list_device_certificates(client, desired.certificate_id)
    if desired.keep_inactive_device_certificates:
        # A rotation retires the CA in two steps: INACTIVE (and auto-registration off) at once, so no new device it
        # signed is registered, and deleted only once the guard passes. Registered devices keep connecting.
        deactivate = _deactivation(before)
        try:
            active_device_guard(desired, devices)
        except StateConflictError as refusal:
            if deactivate and not check_mode:
                client.update_ca_certificate(certificateId=desired.certificate_id, **deactivate)
            if not deactivate:
                raise
            raise StateConflictError(
                refusal.field,
                f"{refusal.rule} (meanwhile the CA {'would be' if check_mode else 'was'} set INACTIVE with "
                "auto-registration off: no new device it signed is registered)",
            ) from None
    removed = guard(desired, devices)
    done = Ensured(True, before, None, {"removed_device_certificates": sorted(d["certificateId"] for d in removed)})
    if check_mode:
        return done
    for device in removed:
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
        if is_error(e, "ResourceNotFoundException"):
            return done
        if is_error(e, "CertificateStateException"):
            raise StateConflictError(
                "state",
                f"AWS IoT refused to delete CA certificate {desired.certificate_id} "
                f"(CertificateStateException: {e.response.get('Error', {}).get('Message', '')}). It is INACTIVE "
                "now; devices it signed may still be registered: list them (ListCertificatesByCA), deactivate or "
                "remove them, and run again",
            ) from None
        raise
    return done
