# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thing_principal module's logic: attachments of any principal to a thing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    describe_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    EXCLUSIVE_THING,
    NON_EXCLUSIVE_THING,
    PAGE_SIZE,
    StateConflictError,
    View,
    validate_certificate_id,
    validate_thing_name,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error

# ---------------------------------------------------------------------------
# thing_principal
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DesiredThingPrincipal:
    thing: str
    principal: str
    # True when principal is a certificate id that must be turned into its ARN.
    principal_is_certificate_id: bool = False
    exclusive: Optional[bool] = None
    state: str = "present"

    @property
    def principal_type(self) -> Optional[str]:
        if self.exclusive is None:
            return None
        return EXCLUSIVE_THING if self.exclusive else NON_EXCLUSIVE_THING


_CERT_ARN = re.compile(r"^arn:[^:]+:iot:[^:]*:\d*:cert/(?P<id>[^/]+)$")


def validate_thing_principal(params: Mapping[str, Any]) -> DesiredThingPrincipal:
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {state!r}")
    thing = validate_thing_name(params.get("thing"))
    principal = params.get("principal")
    if not isinstance(principal, str) or not principal.strip():
        raise ValidationError("principal", "must be a certificate ARN, a certificate id or another principal")
    principal = principal.strip()
    is_id = False
    match = _CERT_ARN.match(principal)
    if match:
        validate_certificate_id(match.group("id"), "principal")
    elif re.match(r"^[0-9a-fA-F]+$", principal):
        principal = validate_certificate_id(principal, "principal")
        is_id = True
    elif ":cert/" in principal:
        raise ValidationError(
            "principal", f"is not a certificate ARN (arn:PARTITION:iot:REGION:ACCOUNT:cert/ID): {principal!r}"
        )
    exclusive = params.get("exclusive")
    return DesiredThingPrincipal(
        thing=thing,
        principal=principal,
        principal_is_certificate_id=is_id,
        exclusive=None if exclusive is None else bool(exclusive),
        state=state,
    )


def resolve_principal(client: Any, desired: DesiredThingPrincipal) -> Optional[str]:
    """The principal's ARN (a certificate id is looked up), or None when that certificate does not exist."""
    if not desired.principal_is_certificate_id:
        return desired.principal
    description = describe_certificate(client, desired.principal)
    return description["certificateArn"] if description else None


def read_thing_principal(client: Any, thing: str, principal: str) -> Tuple[bool, Optional[View]]:
    """(thing exists, the attachment or None) from ListThingPrincipalsV2."""
    try:
        objects = paginate(
            client, "list_thing_principals_v2", "thingPrincipalObjects", thingName=thing, maxResults=PAGE_SIZE
        )
    except ClientError as e:
        if is_error(e, "ResourceNotFoundException"):
            return False, None
        raise
    for obj in objects:
        if obj.get("principal") == principal:
            return True, thing_principal_view(thing, principal, obj.get("thingPrincipalType") or NON_EXCLUSIVE_THING)
    return True, None


def thing_principal_view(thing: str, principal: str, principal_type: str) -> View:
    return {"thing": thing, "principal": principal, "thing_principal_type": principal_type}


def ensure_thing_principal_present(
    client: Any, desired: DesiredThingPrincipal, arn: Optional[str], check_mode: bool
) -> Ensured:
    """Attach ``arn`` (from ``resolve_principal``) to the thing with the wanted type."""
    if arn is None:
        raise StateConflictError("principal", f"no certificate {desired.principal} exists in this account and region")
    thing_exists, before = read_thing_principal(client, desired.thing, arn)
    if not thing_exists and not check_mode:
        raise StateConflictError("thing", f"{desired.thing} does not exist; create it first")
    wanted_type = desired.principal_type
    if before is not None and (wanted_type is None or before["thing_principal_type"] == wanted_type):
        return Ensured(False, before, before)
    predicted = thing_principal_view(desired.thing, arn, wanted_type or NON_EXCLUSIVE_THING)
    if check_mode:
        return Ensured(True, before, predicted)
    if before is not None:
        # The type of an attachment is set when it is made: re-attach to change it.
        client.detach_thing_principal(thingName=desired.thing, principal=arn)
    kwargs = {"thingPrincipalType": wanted_type} if wanted_type else {}
    client.attach_thing_principal(thingName=desired.thing, principal=arn, **kwargs)
    _exists, after = read_thing_principal(client, desired.thing, arn)
    return Ensured(True, before, after or predicted)


def ensure_thing_principal_absent(
    client: Any, desired: DesiredThingPrincipal, arn: Optional[str], check_mode: bool
) -> Ensured:
    """Detach ``arn`` (from ``resolve_principal``; None when the certificate is gone) from the thing."""
    if arn is None:
        return Ensured(False)
    _exists, before = read_thing_principal(client, desired.thing, arn)
    if before is None:
        return Ensured(False)
    if check_mode:
        return Ensured(True, before, None)
    try:
        client.detach_thing_principal(thingName=desired.thing, principal=arn)
    except ClientError as e:
        if not is_error(e, "ResourceNotFoundException"):
            raise
    return Ensured(True, before, None)
