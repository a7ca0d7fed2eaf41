# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=absent: ``ensure_absent`` and ``remove_certificate`` (the steps live in ``iot_access``)."""

from __future__ import annotations

import time
from typing import Any, Callable

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.intent import (
    clear_intent,
    resolve_intent,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    locate_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    DesiredCertificate,
    View,
    Warn,
    _no_warn,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured

# ---------------------------------------------------------------------------
# Absent
# ---------------------------------------------------------------------------


def ensure_absent(
    client: Any,
    desired: DesiredCertificate,
    check_mode: bool,
    warn: Warn = _no_warn,
    sleep: Callable[[float], None] = time.sleep,
) -> Ensured:
    """The certificate removed (``remove_certificate``). ``extra`` holds the orphaned certificates found through an
    intent record (``orphaned_certificates_deleted`` / ``_suspected``)."""
    location = locate_certificate(client, desired, warn)
    intent = resolve_intent(client, desired, location, check_mode, warn)
    if location.certificate is None:
        if not check_mode:
            clear_intent(desired)
        return Ensured(bool(intent.deleted), None, None, intent.result())
    before = location.certificate.view
    if check_mode:
        return Ensured(True, before, None, intent.result())
    remove_certificate(client, before, sleep)
    clear_intent(desired)
    return Ensured(True, before, None, intent.result())


def remove_certificate(client: Any, view: View, sleep: Callable[[float], None] = time.sleep) -> None:
    """INACTIVE, detach every thing, detach every policy, delete: the order AWS requires (``iot_access``)."""
    iot_access.remove_certificate(
        iot_access.as_call(client), view["certificate_id"], view["certificate_arn"], view["status"], sleep
    )
