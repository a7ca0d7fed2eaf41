# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM role AWS IoT assumes to provision devices (bulk registration tasks, JITP, fleet templates).

The role is trusted by iot.amazonaws.com, carries the AWSIoTThingsRegistration managed policy
and, for bulk registration tasks, an inline policy that reads one S3 input object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ValidationError, is_error

REGISTRATION_POLICY_NAME = "AWSIoTThingsRegistration"
INPUT_READ_POLICY_NAME = "iotfleet-registration-input-read"
IOT_SERVICE_PRINCIPAL = "iot.amazonaws.com"

ROLE_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{1,64}$")
ROLE_PATH_PATTERN = re.compile(r"^(/|/[\x21-\x7e]+/)$")
BUCKET_PATTERN = re.compile(r"^[a-zA-Z0-9._-]{3,256}$")
KEY_PATTERN = re.compile(r"^[a-zA-Z0-9!_.*'()/-]{1,1024}$")


def registration_policy_arn(partition: str) -> str:
    return f"arn:{partition}:iam::aws:policy/service-role/{REGISTRATION_POLICY_NAME}"


def trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": IOT_SERVICE_PRINCIPAL},
                "Action": "sts:AssumeRole",
            }
        ],
    }


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


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """The desired role, from the module's options; raises ValidationError before any call."""
    name = params["name"]
    if not ROLE_NAME_PATTERN.match(name or ""):
        raise ValidationError("name", f"must be 1-64 characters of letters, digits and +=,.@_- (got {name!r})")
    path = params.get("path") or "/"
    if not ROLE_PATH_PATTERN.match(path):
        raise ValidationError("path", f"must be '/' or start and end with '/' (got {path!r})")
    description = params.get("description")
    if description is not None and len(description) > 1000:
        raise ValidationError("description", f"must be at most 1000 characters (got {len(description)})")
    bucket, key = params.get("s3_bucket"), params.get("s3_key")
    if bool(bucket) != bool(key):
        raise ValidationError("s3_bucket", "s3_bucket and s3_key must be given together")
    if bucket and not BUCKET_PATTERN.match(bucket):
        raise ValidationError("s3_bucket", f"must match [a-zA-Z0-9._-]{{3,256}} (got {bucket!r})")
    if key and not KEY_PATTERN.match(key):
        raise ValidationError("s3_key", f"must match [a-zA-Z0-9!_.*'()/-]{{1,1024}} (got {key!r})")
    return {"name": name, "path": path, "description": description, "s3_bucket": bucket, "s3_key": key}


def _partition(client: Any) -> str:
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


def _desired_state(desired: dict[str, Any], partition: str, current: dict[str, Any] | None) -> dict[str, Any]:
    inline = dict((current or {}).get("inline_policies", {}))
    if desired["s3_bucket"]:
        inline[INPUT_READ_POLICY_NAME] = input_read_policy(partition, desired["s3_bucket"], desired["s3_key"])
    managed = set((current or {}).get("managed_policy_arns", []))
    managed.add(registration_policy_arn(partition))
    description = desired["description"]
    if description is None and current is not None:
        description = current.get("description")
    return {
        "name": desired["name"],
        "arn": (current or {}).get("arn"),
        "path": current["path"] if current else desired["path"],
        "description": description,
        "trust_policy": trust_policy(),
        "managed_policy_arns": sorted(managed),
        "inline_policies": inline,
    }


def _trusts_iot(document: dict[str, Any]) -> bool:
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if IOT_SERVICE_PRINCIPAL in services and "sts:AssumeRole" in actions:
            return True
    return False


def ensure_present(
    client: Any, desired: dict[str, Any], check_mode: bool
) -> tuple[bool, dict[str, Any] | None, dict[str, Any]]:
    partition = _partition(client)
    before = read_role(client, desired["name"])
    if before is not None and desired["path"] != before["path"] and desired["path"] != "/":
        raise ValidationError("path", f"cannot change an existing role's path ({before['path']} -> {desired['path']})")
    after = _desired_state(desired, partition, before)
    if before is not None and _trusts_iot(before["trust_policy"]):
        # Keep a trust policy that already lets IoT assume the role (it may trust more principals).
        after["trust_policy"] = before["trust_policy"]
    if before == after:
        return False, before, before
    if check_mode:
        return True, before, after

    name = desired["name"]
    if before is None:
        kwargs: dict[str, Any] = {
            "RoleName": name,
            "Path": desired["path"],
            "AssumeRolePolicyDocument": json.dumps(after["trust_policy"]),
        }
        if desired["description"] is not None:
            kwargs["Description"] = desired["description"]
        client.create_role(**kwargs)
        before_managed: list[str] = []
        before_inline: dict[str, Any] = {}
    else:
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
    return True, before, read_role(client, name) or after


def ensure_absent(client: Any, name: str, check_mode: bool) -> tuple[bool, dict[str, Any] | None, None]:
    before = read_role(client, name)
    if before is None:
        return False, None, None
    if check_mode:
        return True, before, None
    for arn in before["managed_policy_arns"]:
        client.detach_role_policy(RoleName=name, PolicyArn=arn)
    for policy_name in before["inline_policies"]:
        client.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for page in client.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
        for profile in page["InstanceProfiles"]:
            client.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    client.delete_role(RoleName=name)
    return True, before, None
