# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""policy_check: ask AWS IoT (TestAuthorization) what a principal may do, and compare with what is expected."""

from __future__ import annotations

import re
from typing import Any, Mapping

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    CERTIFICATE_ARN_PATTERN,
    CERTIFICATE_ID_PATTERN,
    check_policy_name,
    check_string,
)

# TestAuthorization's action types, and the resource type each one is checked against (AWS IoT policy actions).
ACTIONS: dict[str, str] = {"connect": "client", "publish": "topic", "subscribe": "topicfilter", "receive": "topic"}
# What a check may expect; "denied" accepts either kind of deny.
EXPECTATIONS: dict[str, tuple[str, ...]] = {
    "allowed": ("ALLOWED",),
    "denied": ("EXPLICIT_DENY", "IMPLICIT_DENY"),
    "explicit_deny": ("EXPLICIT_DENY",),
    "implicit_deny": ("IMPLICIT_DENY",),
}
# The model's limits: AuthInfos has 1-10 members; a client id is at most 128 characters (AWS IoT quotas).
MAX_AUTH_INFOS = 10
CLIENT_ID_MAX = 128
MAX_POLICY_NAMES = 10
_IOT_ARN = re.compile(r"^arn:aws[a-z-]*:iot:[a-z0-9-]+:[0-9]{12}:(?P<type>client|topic|topicfilter)/.+$", re.DOTALL)
_SHORT = re.compile(r"^(?P<type>client|topic|topicfilter)/.+$", re.DOTALL)


def _policy_names(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if len(value) > MAX_POLICY_NAMES:
        raise ValidationError(field, f"at most {MAX_POLICY_NAMES} policy names, got {len(value)}")
    return [check_policy_name(f"{field}[{index}]", name) for index, name in enumerate(value)]


def _check(index: int, check: Any) -> dict[str, str]:
    where = f"checks[{index}]"
    if not isinstance(check, Mapping):
        raise ValidationError(where, "must be a dictionary with action, resource and expect")
    unknown = sorted(set(check) - {"action", "resource", "expect"})
    if unknown:
        raise ValidationError(where, f"unknown keys {', '.join(unknown)}; the keys are action, resource and expect")
    action = str(check.get("action") or "").lower()
    if action not in ACTIONS:
        raise ValidationError(f"{where}.action", f"one of {', '.join(ACTIONS)}, got {check.get('action')!r}")
    resource = check_string(f"{where}.resource", check.get("resource"))
    match = _IOT_ARN.match(resource) or _SHORT.match(resource)
    if match is None or "\n" in resource:
        raise ValidationError(
            f"{where}.resource",
            "an AWS IoT resource ARN (arn:PARTITION:iot:REGION:ACCOUNT:client/..., topic/... or topicfilter/...) or "
            f"the part after the account (client/ID, topic/NAME, topicfilter/FILTER), got {resource!r}",
        )
    if match.group("type") != ACTIONS[action]:
        raise ValidationError(
            f"{where}.resource",
            f"{action} is authorized on {ACTIONS[action]}/... resources, not {match.group('type')}/... "
            "(AWS IoT policies: iot:Connect on client/, iot:Publish and iot:Receive on topic/, "
            "iot:Subscribe on topicfilter/)",
        )
    expect = str(check.get("expect") or "allowed").lower()
    if expect not in EXPECTATIONS:
        raise ValidationError(f"{where}.expect", f"one of {', '.join(EXPECTATIONS)}, got {check.get('expect')!r}")
    return {"action": action, "resource": resource, "expect": expect}


def validate(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request, checked before any AWS call; ValidationError names the field and the rule."""
    principal = check_string("principal", params.get("principal"))
    if not (re.fullmatch(CERTIFICATE_ARN_PATTERN, principal) or re.fullmatch(CERTIFICATE_ID_PATTERN, principal)):
        raise ValidationError(
            "principal",
            "a certificate ARN (arn:PARTITION:iot:REGION:ACCOUNT:cert/ID) or a certificate id (64 hexadecimal "
            f"characters), matched whole, got {principal[:140]!r}",
        )
    client_id = params.get("client_id")
    if client_id is not None:
        client_id = check_string("client_id", client_id)
        if not client_id or len(client_id) > CLIENT_ID_MAX:
            raise ValidationError("client_id", f"1-{CLIENT_ID_MAX} characters, got {len(client_id)}")
    checks = params.get("checks") or []
    if not checks:
        raise ValidationError("checks", "at least one check (action, resource, expect) is required")
    return {
        "principal": principal,
        "client_id": client_id,
        "checks": [_check(index, check) for index, check in enumerate(checks)],
        "add": _policy_names("policy_names_to_add", params.get("policy_names_to_add")),
        "skip": _policy_names("policy_names_to_skip", params.get("policy_names_to_skip")),
    }


def principal_arn(client: Any, principal: str) -> str:
    """The certificate ARN of a certificate id (DescribeCertificate); an ARN as it is."""
    if principal.startswith("arn:"):
        return principal
    response = client.describe_certificate(certificateId=principal.lower())
    return response["certificateDescription"]["certificateArn"]


def full_resource(resource: str, arn: str) -> str:
    """A short resource (topic/x) in the principal's partition, region and account."""
    if resource.startswith("arn:"):
        return resource
    partition, region, account = arn.split(":")[1], arn.split(":")[3], arn.split(":")[4]
    return f"arn:{partition}:iot:{region}:{account}:{resource}"


def _names(policies: Any) -> list[str]:
    return sorted(item.get("policyName", "") for item in (policies or {}).get("policies", []) or [])


def run_checks(client: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """Every check's answer (TestAuthorization, up to 10 per call) and the ones that differ from expected."""
    arn = principal_arn(client, request["principal"])
    checks = [dict(check, resource=full_resource(check["resource"], arn)) for check in request["checks"]]
    results: list[dict[str, Any]] = []
    for start in range(0, len(checks), MAX_AUTH_INFOS):
        batch = checks[start : start + MAX_AUTH_INFOS]
        params: dict[str, Any] = {
            "principal": arn,
            "authInfos": [{"actionType": c["action"].upper(), "resources": [c["resource"]]} for c in batch],
        }
        if request.get("client_id"):
            params["clientId"] = request["client_id"]
        if request.get("add"):
            params["policyNamesToAdd"] = list(request["add"])
        if request.get("skip"):
            params["policyNamesToSkip"] = list(request["skip"])
        answer = client.test_authorization(**params)
        answers = answer.get("authResults", [])
        if len(answers) != len(batch):
            raise ValueError(f"TestAuthorization answered {len(answers)} results for {len(batch)} questions")
        for check, result in zip(batch, answers):
            decision = result.get("authDecision", "")
            denied = result.get("denied") or {}
            results.append(
                {
                    "action": check["action"],
                    "resource": check["resource"],
                    "expect": check["expect"],
                    "decision": decision,
                    "passed": decision in EXPECTATIONS[check["expect"]],
                    "allowed_by": _names(result.get("allowed")),
                    "explicitly_denied_by": _names(denied.get("explicitDeny")),
                    "missing_context_values": list(result.get("missingContextValues") or []),
                }
            )
    failed = [result for result in results if not result["passed"]]
    return {"principal_arn": arn, "results": results, "failed": failed}


def failure_message(outcome: Mapping[str, Any]) -> str:
    failed = outcome["failed"]
    lines = [
        f"{item['action']} on {item['resource']}: expected {item['expect']}, AWS IoT answered {item['decision']}"
        + (f" (explicit deny by {', '.join(item['explicitly_denied_by'])})" if item["explicitly_denied_by"] else "")
        + (f" (allowed by {', '.join(item['allowed_by'])})" if item["allowed_by"] else "")
        + (
            f" (no value for {', '.join(item['missing_context_values'])}: is client_id the thing name?)"
            if item["missing_context_values"]
            else ""
        )
        for item in failed
    ]
    return f"{len(failed)} of {len(outcome['results'])} authorization checks differ from the expectation: " + "; ".join(
        lines
    )
