# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-device planning, offline against the template: CSRs from per-device keys, the plan's actions."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Set

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    keys,
    template_engine,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.spec import (
    DEVICE_DIR_MODE,
    FAILED,
    NONE,
    PRIVATE_KEY_FILE,
    REGISTER,
    UPDATE,
    DesiredTask,
)

# --- per-device planning ------------------------------------------------------------------------------------------


def device_dir(output_dir: str, name: str) -> str:
    return os.path.join(output_dir, name)


def prepare_csr(desired: DesiredTask, device: Dict[str, Any], check_mode: bool) -> bool:
    """Put the device's CSR in its parameters, making its key (0600) when missing. Returns files changed.

    In check mode a missing key is not written: a throw-away key gives the plan its CSR, and the plan shows
    a new certificate, as the real run would.
    """
    name = desired.csr_parameter
    if not name:
        return False
    directory = device_dir(desired.output_dir, device["name"])
    key_path = os.path.join(directory, PRIVATE_KEY_FILE)
    changed = False
    if not os.path.isdir(directory):
        changed = True
        if not check_mode:
            os.makedirs(directory, DEVICE_DIR_MODE, exist_ok=True)
    made = keys.ensure_private_key(key_path, desired.key_spec, False, check_mode)
    changed |= made.changed
    key = made.key
    if key is None:  # check mode: the key would be made now
        key = keys.generate_key(desired.key_spec)
        device["key_missing"] = True
    device["parameters"][name] = keys.make_csr(key, {"common_name": device["name"][:64]}).decode()
    return changed


def _changes(actions: List[Dict[str, Any]]) -> List[str]:
    return [
        f"{a['resource']}{'.' + a['logical_id'] if a.get('logical_id') else ''}: {a['action']}"
        for a in actions
        if a["action"] != "none"
    ]


def plan_device(
    client: Any,
    template: template_engine.ProvisioningTemplate,
    device: Dict[str, Any],
    will_exist: Optional[Set[str]] = None,
) -> Dict[str, Any]:
    """Render and plan one device; sets device action (none/register/update/failed), plan, error."""
    try:
        rendered = template_engine.render(template, device["parameters"])
    except ValidationError as error:
        device.update(action=FAILED, error=f"{error}", stage="plan", plan=[])
        return device
    state = template_engine.read_current_state(client, rendered)
    actions = template_engine.plan(rendered, state, will_exist)
    device["plan"] = actions
    failures = template_engine.plan_failures(actions)
    certificate = next((a for a in actions if a["resource"] == "certificate"), None)
    device["certificate_id"] = certificate.get("certificate_id") if certificate else None
    device["rendered_certificate_source"] = (rendered.get("certificate") or {}).get("source")
    if failures:
        device.update(action=FAILED, error="RegisterThing would fail: " + "; ".join(failures), stage="plan")
    elif template_engine.plan_is_empty(actions):
        device["action"] = NONE
    elif (
        certificate is not None and certificate["action"] != "create" and device["rendered_certificate_source"] == "csr"
    ):
        # The device has its certificate; a task line would make AWS issue another one from the CSR.
        device["action"] = UPDATE
    else:
        device["action"] = REGISTER
    return device


def plan_devices(
    client: Any, template: template_engine.ProvisioningTemplate, desired: DesiredTask, check_mode: bool
) -> bool:
    """Plan every device in input order. Returns whether key files were (or would be) made."""
    files_changed = False
    for device in desired.devices:
        device.setdefault("error", None)
        device.setdefault("certificate_id", None)
        files_changed |= prepare_csr(desired, device, check_mode)
        plan_device(client, template, device, set(desired.declared_policies) if check_mode else None)
    return files_changed
