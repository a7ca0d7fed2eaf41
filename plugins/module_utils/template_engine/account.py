# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""read_current_state: the snapshot plan compares with, read from the account (reads only)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.plan import (
    _matching_principal,
    empty_snapshot,
    normalise_policy_document,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.render import (
    public_key_fingerprint,
)

# --- reading the account --------------------------------------------------------------------------------------


def read_thing(client: Any, thing_name: str) -> Optional[Dict[str, Any]]:
    """DescribeThing plus ListThingGroupsForThing, or None when the thing does not exist."""
    response = iot_access.unless_gone(iot_access.as_call(client), "describe_thing", thingName=thing_name)
    if response is None:
        return None
    groups = paginate(client, "list_thing_groups_for_thing", "thingGroups", thingName=thing_name)
    return {
        "thing_name": response["thingName"],
        "thing_arn": response.get("thingArn"),
        "thing_type_name": response.get("thingTypeName"),
        "attributes": dict(response.get("attributes") or {}),
        "billing_group_name": response.get("billingGroupName"),
        "version": response.get("version"),
        "thing_groups": sorted(group["groupName"] for group in groups),
    }


def read_certificate(client: Any, certificate_id: str, with_policies: bool = True) -> Optional[Dict[str, Any]]:
    """DescribeCertificate (status, public key) and ListAttachedPolicies, or None when it does not exist."""
    description = iot_access.describe_certificate(iot_access.as_call(client), certificate_id)
    if description is None:
        return None
    try:
        fingerprint: Optional[str] = public_key_fingerprint(description.get("certificatePem") or "")
    except ValueError:
        fingerprint = None
    snapshot = {
        "certificate_id": description["certificateId"],
        "certificate_arn": description.get("certificateArn"),
        "status": description.get("status"),
        "public_key_fingerprint": fingerprint,
    }
    if with_policies:
        policies = paginate(client, "list_attached_policies", "policies", target=snapshot["certificate_arn"])
        snapshot["attached_policies"] = sorted(p["policyName"] for p in policies)
    return snapshot


_certificate_id_of = iot_access.certificate_id_of_arn


def read_thing_principals(client: Any, thing_name: str) -> List[Dict[str, Any]]:
    """The thing's principals; certificates with their status and public key fingerprint."""
    principals = []
    for arn in paginate(client, "list_thing_principals", "principals", thingName=thing_name):
        entry: Dict[str, Any] = {"principal": arn, "certificate_id": _certificate_id_of(arn)}
        if entry["certificate_id"]:
            found = read_certificate(client, entry["certificate_id"], with_policies=False)
            entry["status"] = found["status"] if found else None
            entry["public_key_fingerprint"] = found["public_key_fingerprint"] if found else None
        principals.append(entry)
    return principals


def read_policy(client: Any, policy_name: str) -> Optional[Dict[str, Any]]:
    """GetPolicy, or None when the policy does not exist."""
    response = iot_access.unless_gone(iot_access.as_call(client), "get_policy", policyName=policy_name)
    if response is None:
        return None
    return {
        "policy_name": response["policyName"],
        "policy_arn": response.get("policyArn"),
        "policy_document": normalise_policy_document(response.get("policyDocument")),
        "default_version_id": response.get("defaultVersionId"),
    }


def read_current_state(
    client: Any, rendered: Mapping[str, Any], public_key_fingerprint: Optional[str] = None
) -> Dict[str, Any]:
    """The snapshot ``plan`` compares with: only reads (Describe/List/Get), never a change.

    ``public_key_fingerprint`` overrides the one computed from the template's CSR (for callers that hold the key).
    """
    state = empty_snapshot()
    thing = rendered.get("thing")
    if thing:
        state["thing"] = read_thing(client, thing["name"])
        if state["thing"] is not None:
            state["principals"] = read_thing_principals(client, thing["name"])
    certificate = rendered.get("certificate")
    if certificate:
        certificate_id = certificate.get("certificate_id")
        if certificate["source"] == "csr":
            match = _matching_principal(
                public_key_fingerprint or certificate.get("public_key_fingerprint"), state["principals"]
            )
            certificate_id = match["certificate_id"] if match else None
        if certificate_id:
            state["certificate"] = read_certificate(client, certificate_id)
    attached = (state["certificate"] or {}).get("attached_policies") or []
    attached_documents: Dict[str, Optional[Dict[str, Any]]] = {}
    for policy in rendered.get("policies") or []:
        if policy["name"] is not None:
            state["policies"][policy["logical_id"]] = read_policy(client, policy["name"])
            continue
        wanted = normalise_policy_document(policy["document"])
        state["policies"][policy["logical_id"]] = None
        for name in attached:
            if name not in attached_documents:
                attached_documents[name] = read_policy(client, name)
            found = attached_documents[name]
            if found is not None and found["policy_document"] == wanted:
                state["policies"][policy["logical_id"]] = found
                break
    return state
