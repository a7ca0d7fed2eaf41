# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS IoT policies: documents, versions and attachments.

Everything the ``policy``, ``policy_attachment`` and ``policy_info`` modules do
lives here as small functions. Validation runs before any client exists; the
``ensure_*`` functions read the remote state, decide, and in check mode return
the predicted state without calling a mutating API, so that check mode, diff and
the real change come from one path.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from typing import Any, Callable, Iterable, Mapping

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access, retry, validation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import (
    ClientError,
    ValidationError,
    is_error,
    paginate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import check_policy_name

# AWS IoT limits (AWS_IOT_FACTS.md): a document is at most 2048 characters not
# counting whitespace, and a policy keeps at most 5 versions.
MAX_DOCUMENT_CHARACTERS = validation.POLICY_DOCUMENT_MAX
MAX_POLICY_VERSIONS = 5
REQUIRED_DOCUMENT_KEYS = ("Version", "Statement")

# Statement elements whose value may be written as a string or a list of strings;
# a one-item list and the plain string mean the same.
_LIST_OR_SCALAR_ELEMENTS = frozenset({"Action", "NotAction", "Resource", "NotResource"})
_PRINCIPAL_ELEMENTS = frozenset({"Principal", "NotPrincipal"})

# Targets policy_attachment accepts: a certificate id, a certificate ARN or a thing group ARN.
_CERTIFICATE_ID = re.compile(r"[0-9a-fA-F]{64}")
_TARGET_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iot:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"(?P<kind>cert|thinggroup)/(?P<resource>.+)"
)
_THING_GROUP_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")
# Hexadecimal only but not 64 characters: a mistyped certificate id, never read as a thing group name.
_HEX = re.compile(r"[0-9a-fA-F]+")

# The waits between DeletePolicy attempts (the schedule lives in retry.py: about five minutes).
DELETE_CONFLICT_RETRY_DELAYS = retry.POLICY_DELETE.waits


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


def size_without_whitespace(text: str) -> int:
    """How AWS measures a policy document: its characters, whitespace not counted."""
    return sum(1 for ch in text if not ch.isspace())


def parse_document(value: Any, field: str = "document") -> tuple[dict[str, Any], str]:
    """The document as a dict and as the JSON text to send, after every local check.

    A JSON string is sent as given (its formatting is the user's); a dict is sent
    as indented JSON. Checks: a JSON object, ``Version`` and ``Statement`` present,
    ``Statement`` an object or a non-empty list of objects, and at most 2048
    characters excluding whitespace.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValidationError(field, "a policy document must be a JSON object, got an empty string")
        try:
            parsed = json.loads(text)
        except ValueError as e:
            raise ValidationError(field, f"a policy document must be valid JSON: {e}") from None
    elif isinstance(value, Mapping):
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise ValidationError(field, f"a policy document must be JSON-serialisable: {e}") from None
        parsed = json.loads(text)
    else:
        raise ValidationError(field, f"a policy document must be a dict or a JSON string, got {_json_kind(value)}")
    if not isinstance(parsed, dict):
        raise ValidationError(field, f"a policy document must be a JSON object, got a JSON {_json_kind(parsed)}")
    missing = [key for key in REQUIRED_DOCUMENT_KEYS if key not in parsed]
    if missing:
        raise ValidationError(
            field, "a policy document must have " + " and ".join(repr(k) for k in missing) + " at the top level"
        )
    statement = parsed["Statement"]
    statements = statement if isinstance(statement, list) else [statement]
    if not statements or not all(isinstance(item, dict) for item in statements):
        raise ValidationError(field, "'Statement' must be an object or a non-empty list of objects")
    for index, item in enumerate(statements):
        check_statement(f"{field}.Statement[{index}]", item)
    size = size_without_whitespace(text)
    if size > MAX_DOCUMENT_CHARACTERS:
        raise ValidationError(
            field,
            f"a policy document may have at most {MAX_DOCUMENT_CHARACTERS} characters excluding whitespace, "
            f"this one has {size}",
        )
    return parsed, text


def check_statement(field: str, statement: Mapping[str, Any]) -> None:
    """What AWS IoT refuses in a statement (MalformedPolicyException): an Effect other than Allow or Deny (case
    matters: "Alow" or "allow" would be refused, never read as either), or no action or no resource."""
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise ValidationError(field, f'\'Effect\' must be "Allow" or "Deny" (case matters), got {effect!r}')
    for kind in ("Action", "Resource"):
        if kind not in statement and f"Not{kind}" not in statement:
            raise ValidationError(field, f"a statement needs '{kind}' (or 'Not{kind}')")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


def validate_policy(params: Mapping[str, Any]) -> dict[str, Any]:
    """The desired policy from the module options; raises ValidationError before any call."""
    desired: dict[str, Any] = {"name": validate_policy_name(params.get("name"))}
    if params.get("state", "present") == "present":
        if params.get("document") is None:
            raise ValidationError("document", "required when state=present")
        document, text = parse_document(params["document"])
        desired.update(document=document, document_text=text)
    return desired


# ---------------------------------------------------------------------------
# Normalisation and comparison
# ---------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """Dicts with sorted keys, all the way down; lists keep their order."""
    if isinstance(value, Mapping):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def _one_or_many(value: Any) -> Any:
    """A one-item list is the same as its item (IAM-style grammar)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return _canonical(value[0])
    return _canonical(value)


def _normalize_condition(condition: Any) -> Any:
    if not isinstance(condition, Mapping):
        return _canonical(condition)
    out = {}
    for operator in sorted(condition):
        body = condition[operator]
        if isinstance(body, Mapping):
            out[operator] = {key: _one_or_many(body[key]) for key in sorted(body)}
        else:
            out[operator] = _canonical(body)
    return out


def _normalize_statement(statement: Any) -> Any:
    if not isinstance(statement, Mapping):
        return _canonical(statement)
    out = {}
    for key in sorted(statement):
        value = statement[key]
        if key in _LIST_OR_SCALAR_ELEMENTS:
            out[key] = _one_or_many(value)
        elif key == "Condition":
            out[key] = _normalize_condition(value)
        elif key in _PRINCIPAL_ELEMENTS and isinstance(value, Mapping):
            out[key] = {kind: _one_or_many(value[kind]) for kind in sorted(value)}
        else:
            out[key] = _canonical(value)
    return out


def normalize_document(document: Any) -> Any:
    """The document in a canonical form, for comparison and diff.

    Not significant (normalised away): key order, whitespace (the document is
    parsed), a one-item list versus the plain value for Action, NotAction,
    Resource, NotResource, Principal entries and Condition values, and
    ``Statement`` as one object versus a one-item list. Significant: every value,
    including ``Version`` and ``Sid``, and the order of lists with several items.
    A value that is not a JSON object (a remote document that is not JSON) is
    returned unchanged.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
    if not isinstance(document, Mapping):
        return document
    out = {}
    for key in sorted(document):
        value = document[key]
        if key == "Statement":
            statements = value if isinstance(value, (list, tuple)) else [value]
            out[key] = [_normalize_statement(item) for item in statements]
        else:
            out[key] = _canonical(value)
    return out


def documents_equal(current: Any, desired: Any) -> bool:
    return normalize_document(current) == normalize_document(desired)


def parse_remote_document(text: Any) -> Any:
    """A document as AWS returns it (a JSON string), as a dict; text that is not JSON stays text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


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


def ensure_present(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None]:
    """Create the policy, or give it a new default version when the document differs.

    Returns (changed, before, after) as policy records (see read_policy); in
    check mode ``after`` is the prediction and nothing is changed.
    """
    name = desired["name"]
    current = read_policy(client, name)
    if current is None:
        predicted = {
            "name": name,
            "arn": None,
            "document": desired["document"],
            "default_version_id": "1",
            "versions": [{"version_id": "1", "is_default_version": True, "create_date": None}],
        }
        if check_mode:
            return True, None, predicted
        client.create_policy(policyName=name, policyDocument=desired["document_text"])
        return True, None, read_policy(client, name) or predicted

    if documents_equal(current["document"], desired["document"]):
        return False, current, current

    prune = versions_to_prune(current["versions"])
    kept = [v for v in current["versions"] if v["version_id"] not in prune]
    predicted = dict(
        current,
        document=desired["document"],
        # AWS assigns the new version id; it cannot be known before the call.
        default_version_id=None,
        versions=[dict(v, is_default_version=False) for v in kept]
        + [{"version_id": None, "is_default_version": True, "create_date": None}],
    )
    if check_mode:
        return True, current, predicted
    for version_id in prune:
        client.delete_policy_version(policyName=name, policyVersionId=version_id)
    client.create_policy_version(policyName=name, policyDocument=desired["document_text"], setAsDefault=True)
    return True, current, read_policy(client, name) or predicted


def _delete_policy(client: Any, name: str, sleep: Callable[[float], None]) -> None:
    iot_access.delete_policy(iot_access.as_call(client), name, sleep)


def ensure_absent(
    client: Any,
    name: str,
    check_mode: bool,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """Delete the policy: detach it (only with force), delete its non-default versions, delete it.

    Returns (changed, before, after, targets detached or to detach). Raises
    PolicyAttachedError when the policy is attached and force is false, in
    check mode too, because the real run would fail the same way.
    """
    current = read_policy(client, name)
    if current is None:
        return False, None, None, []
    targets = list_policy_targets(client, name)
    if targets and not force:
        raise PolicyAttachedError(name, targets)
    if check_mode:
        return True, current, None, targets
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
    return True, current, None, targets


# ---------------------------------------------------------------------------
# policy_attachment
# ---------------------------------------------------------------------------

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


def validate_attachment(params: Mapping[str, Any]) -> dict[str, Any]:
    """The desired attachment from the module options; raises ValidationError before any call."""
    return {
        "policy": validate_policy_name(params.get("policy"), field="policy"),
        "target": parse_target(params.get("target")),
        "state": params.get("state", "present"),
    }


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


def ensure_attached(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Attach the policy to the target unless it already is. Returns (changed, before, after)."""
    policy = desired["policy"]
    target_arn = resolve_target_arn(client, desired["target"])
    if read_attachment(client, policy, target_arn, missing_ok=False):
        view = attachment_view(policy, target_arn, True)
        return False, view, view
    before = attachment_view(policy, target_arn, False)
    # The policy must exist: check it first so that check mode predicts the real run's failure.
    client.get_policy(policyName=policy)
    if check_mode:
        return True, before, attachment_view(policy, target_arn, True)
    client.attach_policy(policyName=policy, target=target_arn)
    return True, before, attachment_view(policy, target_arn, read_attachment(client, policy, target_arn, False))


def ensure_detached(
    client: Any, desired: Mapping[str, Any], check_mode: bool
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Detach the policy from the target if it is attached. Returns (changed, before, after)."""
    policy = desired["policy"]
    target_arn = resolve_target_arn(client, desired["target"], missing_ok=True)
    if not read_attachment(client, policy, target_arn, missing_ok=True):
        view = attachment_view(policy, target_arn, False)
        return False, view, view
    before = attachment_view(policy, target_arn, True)
    if check_mode:
        return True, before, attachment_view(policy, target_arn, False)
    try:
        client.detach_policy(policyName=policy, target=target_arn)
    except ClientError as e:
        if not is_error(e, "ResourceNotFoundException"):
            raise
    return True, before, attachment_view(policy, target_arn, read_attachment(client, policy, target_arn, True))


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
