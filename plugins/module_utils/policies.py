# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS IoT policies: the ``policy`` module (read, versions, create, delete) and ``policy_info``.

Documents are checked and compared in ``policy_documents``, attachments are ``policy_attachments``.
Validation runs before any client exists; the
``ensure_*`` functions read the remote state, decide, and in check mode return
the predicted state without calling a mutating API, so that check mode, diff and
the real change come from one path.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_documents import (
    documents_equal,
    normalize_document,
    parse_document,
    parse_remote_document,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import check_policy_name

# AWS IoT limit (AWS_IOT_FACTS.md): a policy keeps at most 5 versions.
MAX_POLICY_VERSIONS = 5


class PolicyAttachedError(Exception):
    """Removal refused: the policy is still attached and force is false."""

    def __init__(self, name: str, targets: list[str]):
        self.name = name
        self.targets = list(targets)
        shown = ", ".join(self.targets)
        super().__init__(
            f"force: policy '{name}' is attached to {len(self.targets)} target(s) ({shown}); "
            "detach it first or set force=true to detach it from every target and delete it"
        )


# ---------------------------------------------------------------------------
# Validation (no AWS call, no client)
# ---------------------------------------------------------------------------


def validate_policy_name(name: Any, field: str = "name") -> str:
    """The policy name, or ValidationError naming the AWS rule it breaks."""
    return check_policy_name(field, name)


@dataclass(frozen=True)
class DesiredPolicy:
    """The policy the module options ask for; ``document`` (a dict) and ``document_text`` (what is sent) are set
    with state=present only."""

    name: str
    document: Optional[dict[str, Any]] = None
    document_text: Optional[str] = None


def validate_policy(params: Mapping[str, Any]) -> DesiredPolicy:
    """The desired policy from the module options; raises ValidationError before any call."""
    name = validate_policy_name(params.get("name"))
    if params.get("state", "present") != "present":
        return DesiredPolicy(name)
    if params.get("document") is None:
        raise ValidationError("document", "required when state=present")
    document, text = parse_document(params["document"])
    return DesiredPolicy(name, document, text)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def _version_sort_key(version: Mapping[str, Any]) -> tuple[Any, int]:
    created = version.get("createDate")
    stamp = created.timestamp() if isinstance(created, datetime.datetime) else float("inf")
    try:
        number = int(version.get("versionId") or 0)
    except ValueError:
        number = 0
    return (stamp, number)


def list_policy_versions(client: Any, name: str) -> list[dict[str, Any]]:
    """All versions, oldest first: version_id, is_default_version, create_date (ISO 8601)."""
    response = client.list_policy_versions(policyName=name)
    versions = sorted(response.get("policyVersions", []), key=_version_sort_key)
    return [
        {
            "version_id": v.get("versionId"),
            "is_default_version": bool(v.get("isDefaultVersion")),
            "create_date": _iso(v.get("createDate")),
        }
        for v in versions
    ]


def read_policy(client: Any, name: str) -> dict[str, Any] | None:
    """The policy with its default document (a dict) and its versions, or None when it does not exist."""
    try:
        response = client.get_policy(policyName=name)
        versions = list_policy_versions(client, name)
    except ClientError as e:
        if is_error(e, "ResourceNotFoundException"):
            return None
        raise
    return {
        "name": response.get("policyName", name),
        "arn": response.get("policyArn"),
        "document": parse_remote_document(response.get("policyDocument")),
        "default_version_id": response.get("defaultVersionId"),
        "versions": versions,
    }


def list_policy_targets(client: Any, name: str) -> list[str]:
    """Every target (certificate, thing group, Cognito identity ARN) the policy is attached to."""
    try:
        return paginate(client, "list_targets_for_policy", "targets", policyName=name, pageSize=250)
    except ClientError as e:
        if is_error(e, "ResourceNotFoundException"):
            return []
        raise


def policy_result(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the policy module returns: name, arn, document, default_version_id, version_count."""
    if not policy:
        return {}
    return {
        "name": policy["name"],
        "arn": policy.get("arn"),
        "document": policy.get("document"),
        "default_version_id": policy.get("default_version_id"),
        "version_count": len(policy.get("versions") or []),
    }


def policy_diff_view(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a policy the user manages, normalised, for --diff."""
    if not policy:
        return {}
    return {"name": policy["name"], "document": normalize_document(policy.get("document"))}


# ---------------------------------------------------------------------------
# policy: ensure present / absent
# ---------------------------------------------------------------------------


def versions_to_prune(versions: Iterable[Mapping[str, Any]], limit: int = MAX_POLICY_VERSIONS) -> list[str]:
    """Ids of the oldest non-default versions to delete so that one more version fits under the limit.

    ``versions`` is oldest first (as list_policy_versions returns them).
    """
    versions = list(versions)
    excess = len(versions) - (limit - 1)
    if excess <= 0:
        return []
    candidates = [v["version_id"] for v in versions if not v.get("is_default_version")]
    return candidates[:excess]


def ensure_present(client: Any, desired: DesiredPolicy, check_mode: bool) -> Ensured:
    """Create the policy, or give it a new default version when the document differs.

    ``before`` and ``after`` are policy records (see read_policy); in check mode
    ``after`` is the prediction and nothing is changed.
    """
    name = desired.name
    current = read_policy(client, name)
    if current is None:
        predicted = {
            "name": name,
            "arn": None,
            "document": desired.document,
            "default_version_id": "1",
            "versions": [{"version_id": "1", "is_default_version": True, "create_date": None}],
        }
        if check_mode:
            return Ensured(True, None, predicted)
        client.create_policy(policyName=name, policyDocument=desired.document_text)
        return Ensured(True, None, read_policy(client, name) or predicted)

    if documents_equal(current["document"], desired.document):
        return Ensured(False, current, current)

    prune = versions_to_prune(current["versions"])
    kept = [v for v in current["versions"] if v["version_id"] not in prune]
    predicted = dict(
        current,
        document=desired.document,
        # AWS assigns the new version id; it cannot be known before the call.
        default_version_id=None,
        versions=[dict(v, is_default_version=False) for v in kept]
        + [{"version_id": None, "is_default_version": True, "create_date": None}],
    )
    if check_mode:
        return Ensured(True, current, predicted)
    for version_id in prune:
        client.delete_policy_version(policyName=name, policyVersionId=version_id)
    client.create_policy_version(policyName=name, policyDocument=desired.document_text, setAsDefault=True)
    return Ensured(True, current, read_policy(client, name) or predicted)


def _delete_policy(client: Any, name: str, sleep: Callable[[float], None]) -> None:
    iot_access.delete_policy(iot_access.as_call(client), name, sleep)


def ensure_absent(
    client: Any,
    name: str,
    check_mode: bool,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Ensured:
    """Delete the policy: detach it (only with force), delete its non-default versions, delete it.

    ``extra["detached_targets"]``: the targets detached (or to detach). Raises
    PolicyAttachedError when the policy is attached and force is false, in
    check mode too, because the real run would fail the same way.
    """
    current = read_policy(client, name)
    if current is None:
        return Ensured(False, extra={"detached_targets": []})
    targets = list_policy_targets(client, name)
    if targets and not force:
        raise PolicyAttachedError(name, targets)
    if check_mode:
        return Ensured(True, current, None, {"detached_targets": targets})
    for target in targets:
        try:
            client.detach_policy(policyName=name, target=target)
        except ClientError as e:
            if not is_error(e, "ResourceNotFoundException"):
                raise
    for version in current["versions"]:
        if version["is_default_version"]:
            continue
        try:
            client.delete_policy_version(policyName=name, policyVersionId=version["version_id"])
        except ClientError as e:
            if not is_error(e, "ResourceNotFoundException"):
                raise
    _delete_policy(client, name, sleep)
    return Ensured(True, current, None, {"detached_targets": targets})


# ---------------------------------------------------------------------------
# policy_attachment
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# policy_info
# ---------------------------------------------------------------------------


def validate_policy_info(params: Mapping[str, Any]) -> dict[str, Any]:
    name = params.get("name")
    return {
        "name": validate_policy_name(name) if name is not None else None,
        "include_documents": bool(params.get("include_documents")),
    }


def describe_policy(client: Any, name: str) -> dict[str, Any] | None:
    """One policy in full: document, default version, every version, every target. None when absent."""
    policy = read_policy(client, name)
    if policy is None:
        return None
    result = policy_result(policy)
    result["versions"] = policy["versions"]
    result["targets"] = list_policy_targets(client, name)
    return result


def list_all_policies(client: Any, include_documents: bool = False) -> list[dict[str, Any]]:
    """Every policy (all pages of ListPolicies); with include_documents, also each default document."""
    policies = []
    for item in paginate(client, "list_policies", "policies", pageSize=250):
        entry: dict[str, Any] = {"name": item.get("policyName"), "arn": item.get("policyArn")}
        if include_documents:
            try:
                response = client.get_policy(policyName=entry["name"])
            except ClientError as e:
                if is_error(e, "ResourceNotFoundException"):
                    continue  # deleted since it was listed
                raise
            entry["document"] = parse_remote_document(response.get("policyDocument"))
            entry["default_version_id"] = response.get("defaultVersionId")
        policies.append(entry)
    return policies


def policy_info(client: Any, query: Mapping[str, Any]) -> list[dict[str, Any]]:
    if query.get("name"):
        found = describe_policy(client, query["name"])
        return [found] if found else []
    return list_all_policies(client, include_documents=query.get("include_documents", False))
