# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM role AWS IoT assumes to provision devices (bulk registration tasks, JITP, fleet templates).

The role is trusted by iot.amazonaws.com only, with the aws:SourceAccount / aws:SourceArn conditions AWS IoT's
cross-service confused deputy guidance recommends; it carries the AWSIoTThingsRegistration managed policy and, for
bulk registration tasks, an inline policy that reads one S3 input object. Those are the policies this module owns;
any other policy on the role is reported (and removed only when purge_policies asks for it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_documents import documents_equal

REGISTRATION_POLICY_NAME = "AWSIoTThingsRegistration"
INPUT_READ_POLICY_NAME = "iotfleet-registration-input-read"
IOT_SERVICE_PRINCIPAL = "iot.amazonaws.com"

# Every pattern is applied with fullmatch: `$` alone also matches before a trailing newline ("nl-dev\n").
# AWS's \w (Java) is ASCII; Python's is Unicode unless told otherwise.
ROLE_NAME_PATTERN = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
ROLE_PATH_PATTERN = re.compile(r"/|/[\x21-\x7e]{1,510}/")
ROLE_DESCRIPTION_PATTERN = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]{0,1000}")
BUCKET_PATTERN = re.compile(r"[a-zA-Z0-9._-]{3,256}")
KEY_PATTERN = re.compile(r"[a-zA-Z0-9!_.*'()/-]{1,1024}")
ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


def registration_policy_arn(partition: str) -> str:
    return f"arn:{partition}:iam::aws:policy/service-role/{REGISTRATION_POLICY_NAME}"


def source_arns(partition: str, account: str, regions: list[str]) -> list[str]:
    """What AWS IoT may act for: any IoT resource of this account in these regions."""
    return [f"arn:{partition}:iot:{region}:{account}:*" for region in regions]


def trust_policy(partition: str, account: str, regions: list[str]) -> dict[str, Any]:
    """Only AWS IoT may assume the role, and only on behalf of this account's IoT resources in these regions.

    aws:SourceAccount and aws:SourceArn are the condition keys AWS IoT's cross-service confused deputy
    guidance recommends (both, naming the same account).
    """
    arns = source_arns(partition, account, regions)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": IOT_SERVICE_PRINCIPAL},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": arns[0] if len(arns) == 1 else arns},
                },
            }
        ],
    }


def trust_sources(role: dict[str, Any]) -> list[str]:
    """The aws:SourceArn values of a trust policy this module wrote (for messages)."""
    arns: list[str] = []
    statements = role["trust_policy"].get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        value = statement.get("Condition", {}).get("ArnLike", {}).get("aws:SourceArn", [])
        arns.extend([value] if isinstance(value, str) else value)
    return arns


def input_read_policy(partition: str, bucket: str, key: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/{key}",
            }
        ],
    }


@dataclass(frozen=True)
class DesiredRole:
    """The provisioning role the options ask for; None for what is left to the account (source_account: the
    caller's, source_regions: the module's region)."""

    name: str
    path: str = "/"
    description: Optional[str] = None
    s3_bucket: Optional[str] = None
    s3_key: Optional[str] = None
    source_account: Optional[str] = None
    source_regions: Optional[list[str]] = None
    purge_policies: bool = False


def validate(params: dict[str, Any]) -> DesiredRole:
    """The desired role, from the module's options; raises ValidationError before any call."""
    name = params["name"]
    if not isinstance(name, str) or not ROLE_NAME_PATTERN.fullmatch(name):
        raise ValidationError("name", f"must be 1-64 characters of letters, digits and +=,.@_- (got {name!r})")
    path = params.get("path") or "/"
    if not ROLE_PATH_PATTERN.fullmatch(path):
        raise ValidationError(
            "path", f"must be '/' or start and end with '/', at most 512 printable ASCII characters (got {path!r})"
        )
    description = params.get("description")
    if description is not None and len(description) > 1000:
        raise ValidationError("description", f"must be at most 1000 characters (got {len(description)})")
    if description is not None and not ROLE_DESCRIPTION_PATTERN.fullmatch(description):
        raise ValidationError("description", "must hold only printable Latin-1 characters, tabs and line breaks")
    bucket, key = params.get("s3_bucket"), params.get("s3_key")
    if bool(bucket) != bool(key):
        raise ValidationError("s3_bucket", "s3_bucket and s3_key must be given together")
    if bucket and not BUCKET_PATTERN.fullmatch(bucket):
        raise ValidationError("s3_bucket", f"must match [a-zA-Z0-9._-]{{3,256}} (got {bucket!r})")
    if key and not KEY_PATTERN.fullmatch(key):
        raise ValidationError("s3_key", f"must match [a-zA-Z0-9!_.*'()/-]{{1,1024}} (got {key!r})")
    account = params.get("source_account")
    if account is not None and not ACCOUNT_PATTERN.fullmatch(account):
        raise ValidationError("source_account", f"must be a 12-digit AWS account id (got {account!r})")
    regions = params.get("source_regions")
    if regions is not None:
        if not regions:
            raise ValidationError("source_regions", "must name at least one region (unset: the module's region)")
        for region in regions:
            if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region):
                raise ValidationError("source_regions", f"must be AWS region names such as eu-west-1 (got {region!r})")
        regions = sorted(set(regions))
    return DesiredRole(
        name=name,
        path=path,
        description=description,
        s3_bucket=bucket,
        s3_key=key,
        source_account=account,
        source_regions=regions,
        purge_policies=bool(params.get("purge_policies")),
    )


def client_partition(client: Any) -> str:
    # IAM is global (region "aws-global"); botocore knows the partition from the endpoint resolution.
    return getattr(client.meta, "partition", None) or "aws"


def _document(value: Any) -> dict[str, Any]:
    # boto3 returns IAM policy documents URL-decoded and parsed, but older versions returned strings.
    if isinstance(value, str):
        from urllib.parse import unquote

        return json.loads(unquote(value))
    return value


def read_role(client: Any, name: str) -> dict[str, Any] | None:
    """The role as this module manages it, or None when it does not exist."""
    try:
        role = client.get_role(RoleName=name)["Role"]
    except Exception as error:
        if is_error(error, "NoSuchEntity", "NoSuchEntityException"):
            return None
        raise
    attached = []
    for page in client.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        attached.extend(p["PolicyArn"] for p in page["AttachedPolicies"])
    inline: dict[str, Any] = {}
    for page in client.get_paginator("list_role_policies").paginate(RoleName=name):
        for policy_name in page["PolicyNames"]:
            inline[policy_name] = _document(
                client.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            )
    return {
        "name": role["RoleName"],
        "arn": role["Arn"],
        "path": role["Path"],
        "description": role.get("Description"),
        "trust_policy": _document(role["AssumeRolePolicyDocument"]),
        "managed_policy_arns": sorted(attached),
        "inline_policies": inline,
    }


def owned_policies(partition: str) -> tuple[set[str], set[str]]:
    """The managed policy ARNs and inline policy names this module puts on the role (and may change)."""
    return {registration_policy_arn(partition)}, {INPUT_READ_POLICY_NAME}


def extra_policies(role: dict[str, Any] | None, partition: str) -> dict[str, list[str]]:
    """The policies on the role that this module did not put there: it cannot tell who needs them."""
    if role is None:
        return {"managed_policy_arns": [], "inline_policy_names": []}
    managed, inline = owned_policies(partition)
    return {
        "managed_policy_arns": sorted(arn for arn in role["managed_policy_arns"] if arn not in managed),
        "inline_policy_names": sorted(name for name in role["inline_policies"] if name not in inline),
    }


def role_warnings(done: Ensured, desired: DesiredRole, extra: dict[str, list[str]], check_mode: bool) -> list[str]:
    """What the module warns about after ensure_present: a trust policy it replaced, policies it does not manage."""
    before, after = done.before, done.after
    messages = []
    if before is not None and before["trust_policy"] != after["trust_policy"]:
        verb = "would be replaced (check mode)" if check_mode else "was replaced"
        messages.append(
            f"role {desired.name}: its trust policy {verb} by one that lets only AWS IoT, acting for "
            f"{', '.join(trust_sources(after))}, assume it. It was: {json.dumps(before['trust_policy'])}"
        )
    if (extra["managed_policy_arns"] or extra["inline_policy_names"]) and not desired.purge_policies:
        messages.append(
            f"role {desired.name} has policies this module does not manage, and AWS IoT gets their "
            f"permissions whenever it assumes the role: managed {extra['managed_policy_arns']}, inline "
            f"{extra['inline_policy_names']}. Remove them, or set purge_policies: true to remove them here."
        )
    return messages


def _desired_state(
    desired: DesiredRole, partition: str, current: dict[str, Any] | None, trust: dict[str, Any]
) -> dict[str, Any]:
    purge = desired.purge_policies
    owned_managed, owned_inline = owned_policies(partition)
    inline = {
        name: document
        for name, document in (current or {}).get("inline_policies", {}).items()
        if not purge or name in owned_inline
    }
    if desired.s3_bucket:
        document = input_read_policy(partition, desired.s3_bucket, desired.s3_key)
        if not documents_equal(inline.get(INPUT_READ_POLICY_NAME), document):
            inline[INPUT_READ_POLICY_NAME] = document
    managed = {arn for arn in (current or {}).get("managed_policy_arns", []) if not purge or arn in owned_managed}
    managed |= owned_managed
    description = desired.description
    if description is None and current is not None:
        description = current.get("description")
    if current is not None and documents_equal(current["trust_policy"], trust):
        trust = current["trust_policy"]  # the same policy, written differently: keep AWS's copy
    return {
        "name": desired.name,
        "arn": (current or {}).get("arn"),
        "path": current["path"] if current else desired.path,
        "description": description,
        "trust_policy": trust,
        "managed_policy_arns": sorted(managed),
        "inline_policies": inline,
    }


def _client_region(client: Any) -> str:
    region = getattr(client.meta, "region_name", None)
    if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region):
        raise ValidationError(
            "source_regions",
            f"the module's region ({region!r}) is not an AWS IoT region: name the regions whose AWS IoT uses the role",
        )
    return region


def _source_account(
    desired: DesiredRole, current: dict[str, Any] | None, caller_account: Callable[[], str] | None
) -> str:
    """The account AWS IoT must act for: the option, else the account that owns the role, else the caller's."""
    if desired.source_account:
        return desired.source_account
    if current is not None and current.get("arn"):
        return current["arn"].split(":")[4]
    if caller_account is None:
        raise ValidationError("source_account", "is required when the caller's account cannot be looked up")
    return caller_account()


def ensure_present(
    client: Any,
    desired: DesiredRole,
    check_mode: bool,
    caller_account: Callable[[], str] | None = None,
) -> Ensured:
    """Create or converge the role.

    The trust policy is enforced: whatever the role trusted before, it ends up trusting only AWS IoT, for this
    account and these regions. Policies other than the module's own stay attached (see extra_policies) unless
    desired.purge_policies. caller_account returns the caller's account id (STS GetCallerIdentity); it is
    called only for a new role without source_account.
    """
    partition = client_partition(client)
    before = read_role(client, desired.name)
    if before is not None and desired.path != before["path"] and desired.path != "/":
        raise ValidationError("path", f"cannot change an existing role's path ({before['path']} -> {desired.path})")
    account = _source_account(desired, before, caller_account)
    regions = desired.source_regions or [_client_region(client)]
    after = _desired_state(desired, partition, before, trust_policy(partition, account, regions))
    if before == after:
        return Ensured(False, before, before)
    if check_mode:
        if before is None and caller_account is not None:
            # A role's ARN follows from its account, path and name: predicting it lets a check run plan the
            # tasks that take it (a registration task's role_arn) instead of failing on an empty value.
            after["arn"] = f"arn:{partition}:iam::{caller_account()}:role{desired.path}{desired.name}"
        return Ensured(True, before, after)

    name = desired.name
    if before is None:
        kwargs: dict[str, Any] = {
            "RoleName": name,
            "Path": desired.path,
            "AssumeRolePolicyDocument": json.dumps(after["trust_policy"]),
        }
        if desired.description is not None:
            kwargs["Description"] = desired.description
        client.create_role(**kwargs)
        before_managed: list[str] = []
        before_inline: dict[str, Any] = {}
    else:
        # The trust policy first: a role that trusts too much stops doing so before anything else is touched.
        if after["trust_policy"] != before["trust_policy"]:
            client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(after["trust_policy"]))
        if after["description"] != before["description"]:
            client.update_role(RoleName=name, Description=after["description"] or "")
        before_managed = before["managed_policy_arns"]
        before_inline = before["inline_policies"]
    for arn in after["managed_policy_arns"]:
        if arn not in before_managed:
            client.attach_role_policy(RoleName=name, PolicyArn=arn)
    for policy_name, document in after["inline_policies"].items():
        if before_inline.get(policy_name) != document:
            client.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    # Only with purge_policies: what is not ours goes.
    for arn in before_managed:
        if arn not in after["managed_policy_arns"]:
            client.detach_role_policy(RoleName=name, PolicyArn=arn)
    for policy_name in before_inline:
        if policy_name not in after["inline_policies"]:
            client.delete_role_policy(RoleName=name, PolicyName=policy_name)
    return Ensured(True, before, read_role(client, name) or after)


def ensure_absent(client: Any, name: str, check_mode: bool) -> Ensured:
    before = read_role(client, name)
    if before is None:
        return Ensured(False, None, None)
    if check_mode:
        return Ensured(True, before, None)
    for arn in before["managed_policy_arns"]:
        client.detach_role_policy(RoleName=name, PolicyArn=arn)
    for policy_name in before["inline_policies"]:
        client.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for page in client.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
        for profile in page["InstanceProfiles"]:
            client.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    client.delete_role(RoleName=name)
    return Ensured(True, before, None)
