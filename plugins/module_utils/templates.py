# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provisioning templates as AWS stores them: the template, its versions, its hook and tags.

The template body itself is parsed and validated by template_engine; this file only
knows how to read a template, compare it with the desired one and change the difference.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import tagging, template_engine
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error

NAME_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,36}", re.ASCII)
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
LAMBDA_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+(:[\w$-]+)?", re.ASCII)
PAYLOAD_VERSIONS = ("2020-04-01",)
TEMPLATE_TYPES = ("FLEET_PROVISIONING", "JITP")
MAX_DESCRIPTION = 500
# AWS caps the versions of a template (VersionsLimitExceededException); 5 is the documented
# figure for policies and the safe assumption here. A full template loses its oldest non-default version.
MAX_VERSIONS = 5


def serialise_body(body: dict[str, Any]) -> str:
    """The body as sent to AWS (the engine's compact JSON, so length checks match what is sent)."""
    return template_engine.template_body_json(body)


@dataclass(frozen=True)
class DesiredTemplate:
    """The provisioning template the options ask for (only ``name`` with state=absent); None for what the task
    leaves alone (``pre_provisioning_hook`` {}: remove the hook)."""

    name: str
    type: str = "FLEET_PROVISIONING"
    template_body: Optional[dict[str, Any]] = None
    description: Optional[str] = None
    enabled: Optional[bool] = None
    provisioning_role_arn: Optional[str] = None
    pre_provisioning_hook: Optional[dict[str, Any]] = None
    tags: Optional[dict[str, str]] = None
    purge_tags: bool = True
    recreate: bool = False


def validate(params: dict[str, Any]) -> DesiredTemplate:
    """The desired template from the module options; raises ValidationError before any call."""
    name = params["name"]
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ValidationError("name", f"must be 1-36 characters of letters, digits, '_' or '-' (got {name!r})")
    if params.get("state", "present") == "absent":
        return DesiredTemplate(name)

    template_type = params.get("type") or "FLEET_PROVISIONING"
    body = params.get("template_body")
    if body is not None:
        # Validated offline (sections, resources, functions, type rules, size); errors name their path.
        body = template_engine.parse(body, template_type=template_type).body
    description = params.get("description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ValidationError("description", f"must be at most {MAX_DESCRIPTION} characters (got {len(description)})")
    role_arn = params.get("provisioning_role_arn")
    if role_arn is not None and not ROLE_ARN_PATTERN.fullmatch(role_arn):
        raise ValidationError("provisioning_role_arn", f"must be an IAM role ARN (got {role_arn!r})")
    hook = params.get("pre_provisioning_hook")
    if hook is not None and not any(hook.values()):
        hook = {}  # an empty dict asks for the hook's removal
    if hook is not None:
        if hook and template_type != "FLEET_PROVISIONING":
            raise ValidationError("pre_provisioning_hook", "is only allowed for FLEET_PROVISIONING templates")
        if hook:
            target = hook.get("target_arn")
            if not target or not LAMBDA_ARN_PATTERN.fullmatch(target):
                raise ValidationError(
                    "pre_provisioning_hook.target_arn", f"must be a Lambda function ARN (got {target!r})"
                )
            version = hook.get("payload_version") or PAYLOAD_VERSIONS[0]
            if version not in PAYLOAD_VERSIONS:
                raise ValidationError(
                    "pre_provisioning_hook.payload_version", f"must be one of {', '.join(PAYLOAD_VERSIONS)}"
                )
            hook = {"target_arn": target, "payload_version": version}
    return DesiredTemplate(
        name=name,
        type=template_type,
        template_body=body,
        description=description,
        enabled=params.get("enabled"),
        provisioning_role_arn=role_arn,
        pre_provisioning_hook=hook,  # None: leave alone; {}: remove
        tags=tagging.validate_tags("tags", params.get("tags")),
        purge_tags=params.get("purge_tags", True),
        recreate=bool(params.get("recreate")),
    )


def _hook_from_api(hook: dict[str, Any] | None) -> dict[str, Any] | None:
    if not hook:
        return None
    return {"target_arn": hook.get("targetArn"), "payload_version": hook.get("payloadVersion")}


def _hook_to_api(hook: dict[str, Any]) -> dict[str, Any]:
    return {"targetArn": hook["target_arn"], "payloadVersion": hook["payload_version"]}


def read_template(client: Any, name: str) -> dict[str, Any] | None:
    """The template with its default body (parsed), versions and tags, or None."""
    try:
        response = client.describe_provisioning_template(templateName=name)
    except Exception as error:
        if is_error(error, "ResourceNotFoundException"):
            return None
        raise
    versions = paginate(client, "list_provisioning_template_versions", "versions", templateName=name)
    return {
        "name": response["templateName"],
        "arn": response["templateArn"],
        "type": response.get("type") or "FLEET_PROVISIONING",
        "description": response.get("description") or "",
        "enabled": bool(response.get("enabled")),
        "provisioning_role_arn": response.get("provisioningRoleArn"),
        "pre_provisioning_hook": _hook_from_api(response.get("preProvisioningHook")),
        "default_version_id": response.get("defaultVersionId"),
        "template_body": json.loads(response.get("templateBody") or "{}"),
        "versions": sorted(
            ({"version_id": v["versionId"], "is_default_version": bool(v.get("isDefaultVersion"))} for v in versions),
            key=lambda v: v["version_id"],
        ),
        "tags": tagging.read_tags(client, response["templateArn"]),
    }


def _predict(desired: DesiredTemplate, current: dict[str, Any] | None) -> dict[str, Any]:
    """The template as it will be after ensure_present (used for check mode and the diff)."""
    base = (
        dict(current)
        if current
        else {
            "name": desired.name,
            "arn": None,
            "type": desired.type,
            "description": "",
            "enabled": True,
            "provisioning_role_arn": None,
            "pre_provisioning_hook": None,
            "default_version_id": None,
            "template_body": {},
            "versions": [],
            "tags": {},
        }
    )
    for key in ("description", "enabled", "provisioning_role_arn", "template_body"):
        if getattr(desired, key) is not None:
            base[key] = getattr(desired, key)
    if desired.pre_provisioning_hook is not None:
        base["pre_provisioning_hook"] = desired.pre_provisioning_hook or None
    base["tags"] = tagging.desired_tags(base["tags"], desired.tags, desired.purge_tags)
    return base


def _comparable(template: dict[str, Any] | None) -> dict[str, Any] | None:
    if template is None:
        return None
    return {k: v for k, v in template.items() if k not in ("versions", "default_version_id", "arn")}


def _make_room_for_a_version(client: Any, name: str, versions: list[dict[str, Any]]) -> None:
    """At the version cap, delete the oldest non-default version so a new one fits."""
    if len(versions) < MAX_VERSIONS:
        return
    removable = [v for v in versions if not v["is_default_version"]]
    if not removable:  # only possible with a cap of one; nothing to prune
        return
    oldest = min(removable, key=lambda v: v["version_id"])
    client.delete_provisioning_template_version(templateName=name, versionId=oldest["version_id"])


def _find_version_with_body(client: Any, name: str, versions: list[dict[str, Any]], body: dict[str, Any]) -> Any:
    for version in versions:
        if version["is_default_version"]:
            continue
        described = client.describe_provisioning_template_version(templateName=name, versionId=version["version_id"])
        if json.loads(described.get("templateBody") or "{}") == body:
            return version["version_id"]
    return None


def _create(client: Any, desired: DesiredTemplate) -> None:
    kwargs: dict[str, Any] = {
        "templateName": desired.name,
        "templateBody": serialise_body(desired.template_body),
        "provisioningRoleArn": desired.provisioning_role_arn,
        "type": desired.type,
        # AWS creates templates disabled unless told; we always say which.
        "enabled": True if desired.enabled is None else desired.enabled,
    }
    if desired.description:
        kwargs["description"] = desired.description
    if desired.pre_provisioning_hook:
        kwargs["preProvisioningHook"] = _hook_to_api(desired.pre_provisioning_hook)
    if desired.tags:
        kwargs["tags"] = [{"Key": k, "Value": v} for k, v in desired.tags.items()]
    client.create_provisioning_template(**kwargs)


def ensure_present(client: Any, desired: DesiredTemplate, check_mode: bool) -> Ensured:
    name = desired.name
    before = read_template(client, name)
    if before is None or (desired.type != before["type"] and desired.recreate):
        for field in ("template_body", "provisioning_role_arn"):
            if getattr(desired, field) is None:
                raise ValidationError(field, "is required to create a provisioning template")
        after = _predict(desired, None)
        if check_mode:
            return Ensured(True, before, after)
        if before is not None:
            client.delete_provisioning_template(templateName=name)
        _create(client, desired)
        return Ensured(True, before, read_template(client, name) or after)

    if desired.type != before["type"]:
        raise ValidationError(
            "type",
            f"template {name} is {before['type']} and AWS cannot change a template's type in place; "
            "set recreate: true to delete and create it again",
        )
    if desired.pre_provisioning_hook and before["type"] != "FLEET_PROVISIONING":
        raise ValidationError("pre_provisioning_hook", "is only allowed for FLEET_PROVISIONING templates")

    after = _predict(desired, before)
    if _comparable(after) == _comparable(before):
        return Ensured(False, before, before)
    if check_mode:
        return Ensured(True, before, after)

    if after["template_body"] != before["template_body"]:
        existing = _find_version_with_body(client, name, before["versions"], after["template_body"])
        if existing is not None:
            client.update_provisioning_template(templateName=name, defaultVersionId=existing)
        else:
            _make_room_for_a_version(client, name, before["versions"])
            client.create_provisioning_template_version(
                templateName=name, templateBody=serialise_body(after["template_body"]), setAsDefault=True
            )
    update: dict[str, Any] = {}
    if after["description"] != before["description"]:
        update["description"] = after["description"]
    if after["enabled"] != before["enabled"]:
        update["enabled"] = after["enabled"]
    if after["provisioning_role_arn"] != before["provisioning_role_arn"]:
        update["provisioningRoleArn"] = after["provisioning_role_arn"]
    if after["pre_provisioning_hook"] != before["pre_provisioning_hook"]:
        if after["pre_provisioning_hook"]:
            update["preProvisioningHook"] = _hook_to_api(after["pre_provisioning_hook"])
        else:
            update["removePreProvisioningHook"] = True
    if update:
        client.update_provisioning_template(templateName=name, **update)
    tagging.apply_tags(client, before["arn"], before["tags"], after["tags"])
    return Ensured(True, before, read_template(client, name) or after)


def ensure_absent(client: Any, name: str, check_mode: bool) -> Ensured:
    before = read_template(client, name)
    if before is None:
        return Ensured(False, None, None)
    if not check_mode:
        client.delete_provisioning_template(templateName=name)
    return Ensured(True, before, None)


def list_templates(client: Any, name: str | None = None) -> list[dict[str, Any]]:
    """One template by name (empty list if absent), or every template in the account and region."""
    if name is not None:
        template = read_template(client, name)
        return [template] if template else []
    summaries = paginate(client, "list_provisioning_templates", "templates")
    found = (read_template(client, summary["templateName"]) for summary in summaries)
    return [template for template in found if template is not None]
