# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``policy_attachment`` module: a policy attached to, or detached from, a certificate or a thing group."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policies import validate_policy_name

# Targets policy_attachment accepts: a certificate id, a certificate ARN or a thing group ARN.
_CERTIFICATE_ID = re.compile(r"[0-9a-fA-F]{64}")
_TARGET_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iot:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"(?P<kind>cert|thinggroup)/(?P<resource>.+)"
)
_THING_GROUP_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")
# Hexadecimal only but not 64 characters: a mistyped certificate id, never read as a thing group name.
_HEX = re.compile(r"[0-9a-fA-F]+")


TARGET_RULE = (
    "a target must be a certificate id (64 hexadecimal characters), a certificate ARN "
    "(arn:aws:iot:REGION:ACCOUNT:cert/ID), a thing group ARN (arn:aws:iot:REGION:ACCOUNT:thinggroup/NAME) "
    "or a thing group name (1-128 characters [a-zA-Z0-9:_-])"
)


def parse_target(value: Any, field: str = "target") -> dict[str, Any]:
    """What a target is: {'kind': 'certificate'|'thing_group', 'arn': ARN or None, 'certificate_id': ...}.

    A bare certificate id has no ARN yet (resolve_target_arn finds it).
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(field, f"{TARGET_RULE}, got an empty value")
    if _CERTIFICATE_ID.fullmatch(value):
        return {"kind": "certificate", "arn": None, "certificate_id": value.lower()}
    match = _TARGET_ARN.fullmatch(value)
    if match:
        resource = match.group("resource")
        if match.group("kind") == "cert":
            if _CERTIFICATE_ID.fullmatch(resource):
                certificate_id = resource.lower()
                prefix = value[: len(value) - len(resource)]
                return {"kind": "certificate", "arn": prefix + certificate_id, "certificate_id": certificate_id}
            raise ValidationError(
                field, f"a certificate ARN must end in cert/ and a 64-hexadecimal-character id, got {value!r}"
            )
        if _THING_GROUP_NAME.fullmatch(resource):
            return {"kind": "thing_group", "arn": value, "certificate_id": None}
        raise ValidationError(
            field,
            f"a thing group ARN must end in thinggroup/ and a name of 1-128 characters [a-zA-Z0-9:_-], got {value!r}",
        )
    if _THING_GROUP_NAME.fullmatch(value) and not _HEX.fullmatch(value):
        # A name, as the thing_group module takes it: its ARN is looked up (DescribeThingGroup).
        return {"kind": "thing_group", "arn": None, "certificate_id": None, "thing_group": value}
    raise ValidationError(field, f"{TARGET_RULE}, got {value!r}")


@dataclass(frozen=True)
class DesiredAttachment:
    """The attachment the module options ask for; ``target`` as parse_target gives it."""

    policy: str
    target: dict[str, Any]
    state: str = "present"


def validate_attachment(params: Mapping[str, Any]) -> DesiredAttachment:
    """The desired attachment from the module options; raises ValidationError before any call."""
    return DesiredAttachment(
        policy=validate_policy_name(params.get("policy"), field="policy"),
        target=parse_target(params.get("target")),
        state=params.get("state", "present"),
    )


def resolve_target_arn(client: Any, target: Mapping[str, Any], missing_ok: bool = False) -> str | None:
    """The target's ARN; a bare certificate id is looked up with DescribeCertificate.

    An unknown certificate id raises AWS's ResourceNotFoundException, or gives None with missing_ok.
    """
    if target.get("arn"):
        return target["arn"]
    try:
        if target["kind"] == "thing_group":
            return client.describe_thing_group(thingGroupName=target["thing_group"])["thingGroupArn"]
        response = client.describe_certificate(certificateId=target["certificate_id"])
    except ClientError as e:
        if missing_ok and is_error(e, "ResourceNotFoundException"):
            return None
        raise
    return response["certificateDescription"]["certificateArn"]


def attached_policy_names(client: Any, target_arn: str) -> list[str]:
    """Names of the policies attached directly to the target (not inherited from parent groups)."""
    policies = paginate(client, "list_attached_policies", "policies", target=target_arn, pageSize=250)
    return [p.get("policyName") for p in policies]


def read_attachment(client: Any, policy: str, target_arn: str | None, missing_ok: bool) -> bool:
    """Whether the policy is attached to the target. With missing_ok, a target that does not exist is 'not attached'."""
    if target_arn is None:
        return False
    try:
        return policy in attached_policy_names(client, target_arn)
    except ClientError as e:
        if missing_ok and is_error(e, "ResourceNotFoundException"):
            return False
        raise


def attachment_view(policy: str, target_arn: str | None, attached: bool) -> dict[str, Any]:
    return {"policy": policy, "target_arn": target_arn, "attached": attached}


def ensure_attached(client: Any, desired: DesiredAttachment, check_mode: bool) -> Ensured:
    """Attach the policy to the target unless it already is."""
    policy = desired.policy
    target_arn = resolve_target_arn(client, desired.target)
    if read_attachment(client, policy, target_arn, missing_ok=False):
        view = attachment_view(policy, target_arn, True)
        return Ensured(False, view, view)
    before = attachment_view(policy, target_arn, False)
    # The policy must exist: check it first so that check mode predicts the real run's failure.
    client.get_policy(policyName=policy)
    if check_mode:
        return Ensured(True, before, attachment_view(policy, target_arn, True))
    client.attach_policy(policyName=policy, target=target_arn)
    return Ensured(
        True, before, attachment_view(policy, target_arn, read_attachment(client, policy, target_arn, False))
    )


def ensure_detached(client: Any, desired: DesiredAttachment, check_mode: bool) -> Ensured:
    """Detach the policy from the target if it is attached."""
    policy = desired.policy
    target_arn = resolve_target_arn(client, desired.target, missing_ok=True)
    if not read_attachment(client, policy, target_arn, missing_ok=True):
        view = attachment_view(policy, target_arn, False)
        return Ensured(False, view, view)
    before = attachment_view(policy, target_arn, True)
    if check_mode:
        return Ensured(True, before, attachment_view(policy, target_arn, False))
    try:
        client.detach_policy(policyName=policy, target=target_arn)
    except ClientError as e:
        if not is_error(e, "ResourceNotFoundException"):
            raise
    return Ensured(True, before, attachment_view(policy, target_arn, read_attachment(client, policy, target_arn, True)))
