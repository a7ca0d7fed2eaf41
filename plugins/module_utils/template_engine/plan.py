# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plan(rendered, current) -> the actions that bring the account to the rendered template."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_documents import normalize_document
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.expressions import (
    _check_attribute_count,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.limits import (
    CERTIFICATE_STATUSES,
    DEFAULT_OVERRIDE,
    TemplateError,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import MAX_THING_GROUPS_PER_THING

# --- plan -----------------------------------------------------------------------------------------------------


def empty_snapshot() -> Dict[str, Any]:
    """The account state when nothing the template names exists."""
    return {"thing": None, "principals": [], "certificate": None, "policies": {}}


def _action(resource: str, logical_id: Optional[str], action: str, reason: str, **extra: Any) -> Dict[str, Any]:
    out = {"resource": resource, "logical_id": logical_id, "action": action, "reason": reason, "changes": {}}
    out.update(extra)
    return out


def plan(
    rendered: Mapping[str, Any],
    current: Optional[Mapping[str, Any]] = None,
    will_exist: Optional[Set[str]] = None,
) -> List[Dict[str, Any]]:
    """What RegisterThing would do to reach ``rendered`` from ``current``, honouring OverrideSettings.

    ``will_exist``: names of missing policies that earlier tasks of the play create (their check mode only
    predicted them), planned as there rather than as a failure.
    """
    state = empty_snapshot()
    state.update(current or {})
    actions: List[Dict[str, Any]] = []
    thing, certificate = rendered.get("thing"), rendered.get("certificate")
    thing_action = certificate_action = None
    if thing:
        thing_action = plan_thing(thing, state["thing"])
        actions.append(thing_action)
    if certificate:
        certificate_action = plan_certificate(certificate, state)
        actions.append(certificate_action)
    if thing_action and certificate_action:
        actions.append(_plan_thing_principal(thing_action, certificate_action, state))
    for policy in rendered.get("policies") or []:
        policy_action = plan_policy(policy, (state["policies"] or {}).get(policy["logical_id"]), will_exist)
        actions.append(policy_action)
        if certificate_action:
            actions.append(_plan_policy_attachment(policy_action, certificate_action, state))
    return actions


def plan_is_empty(actions: Iterable[Mapping[str, Any]]) -> bool:
    """True when RegisterThing would change nothing (every action is "none")."""
    return all(action["action"] == "none" for action in actions)


def plan_failures(actions: Iterable[Mapping[str, Any]]) -> List[str]:
    """The reasons of the actions that would make RegisterThing fail."""
    return [f"{a['resource']} {a['logical_id']}: {a['reason']}" for a in actions if a["action"] == "fail"]


def thing_snapshot(thing: Mapping[str, Any]) -> Dict[str, Any]:
    """The thing as the planner compares it (only what a template manages)."""
    return {
        "thing_name": thing.get("thing_name"),
        "thing_type_name": thing.get("thing_type_name"),
        "attributes": dict(thing.get("attributes") or {}),
        "thing_groups": sorted(thing.get("thing_groups") or []),
        "billing_group_name": thing.get("billing_group_name"),
    }


def plan_thing(desired: Mapping[str, Any], current: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    name = desired["name"]
    if current is None:
        after = {
            "thing_name": name,
            "thing_type_name": desired["thing_type"],
            "attributes": dict(desired["attributes"] or {}),
            "thing_groups": sorted(desired["thing_groups"] or []),
            "billing_group_name": desired["billing_group"],
        }
        return _action(
            "thing",
            desired["logical_id"],
            "create",
            f"thing {name} does not exist",
            name=name,
            before=None,
            after=after,
        )
    before = thing_snapshot(current)
    after = dict(before, attributes=dict(before["attributes"]), thing_groups=list(before["thing_groups"]))
    changes: Dict[str, Any] = {}
    ignored: Dict[str, Any] = {}
    failures: List[str] = []
    overrides = desired["overrides"]

    def decide(key: str, mode: str, target: Any, label: str) -> None:
        if target == before[key]:
            return
        entry = {"before": before[key], "after": target}
        if mode == "DO_NOTHING":
            ignored[key] = dict(entry, override=mode)
        elif mode == "FAIL":
            failures.append(f"{label} would change and its OverrideSettings is FAIL")
            changes[key] = entry
        else:
            changes[key] = entry
            after[key] = target

    if desired["attributes"] is not None:
        mode = overrides["attributes"]
        target = dict(before["attributes"], **desired["attributes"]) if mode == "MERGE" else dict(desired["attributes"])
        decide("attributes", mode, target, "AttributePayload")
    if desired["thing_type"] is not None:
        decide("thing_type_name", overrides["thing_type"], desired["thing_type"], "ThingTypeName")
    if desired["thing_groups"] is not None:
        mode = overrides["thing_groups"]
        wanted = set(desired["thing_groups"]) | (set(before["thing_groups"]) if mode == "MERGE" else set())
        decide("thing_groups", mode, sorted(wanted), "ThingGroups")
        if "thing_groups" in changes:
            changes["thing_groups"]["add"] = sorted(wanted - set(before["thing_groups"]))
            changes["thing_groups"]["remove"] = sorted(set(before["thing_groups"]) - wanted)
    if desired["billing_group"] is not None:
        # AWS documents no OverrideSettings key for BillingGroup: the default applies.
        decide("billing_group_name", DEFAULT_OVERRIDE, desired["billing_group"], "BillingGroup")
    try:
        _check_attribute_count(len(after["attributes"]), bool(after["thing_type_name"]), "attributes")
        if len(after["thing_groups"]) > MAX_THING_GROUPS_PER_THING:
            raise TemplateError(
                "thing_groups",
                f"a thing can be in at most {MAX_THING_GROUPS_PER_THING} groups, got {len(after['thing_groups'])}",
            )
    except TemplateError as e:
        failures.append(str(e))
    extra = {"name": name, "before": before, "after": after, "changes": changes}
    if ignored:
        extra["ignored"] = ignored
    if failures:
        return _action("thing", desired["logical_id"], "fail", "; ".join(failures), **extra)
    if changes:
        return _action(
            "thing", desired["logical_id"], "update", f"thing {name} differs: {', '.join(sorted(changes))}", **extra
        )
    reason = f"thing {name} matches the template"
    if ignored:
        reason += f" (differences left alone by OverrideSettings: {', '.join(sorted(ignored))})"
    return _action("thing", desired["logical_id"], "none", reason, **extra)


def _matching_principal(
    fingerprint: Optional[str], principals: Iterable[Mapping[str, Any]]
) -> Optional[Mapping[str, Any]]:
    if not fingerprint:
        return None
    for principal in principals:
        if principal.get("public_key_fingerprint") == fingerprint and principal.get("certificate_id"):
            return principal
    return None


def plan_certificate(desired: Mapping[str, Any], state: Mapping[str, Any]) -> Dict[str, Any]:
    logical_id, source = desired["logical_id"], desired["source"]
    current = state.get("certificate")
    if source == "csr":
        # A CSR makes AWS issue a new certificate on every call. Idempotence: the thing already has a certificate
        # with this public key attached.
        match = _matching_principal(desired["public_key_fingerprint"], state.get("principals") or [])
        if match is None:
            return _action(
                "certificate",
                logical_id,
                "create",
                "no certificate with the CSR's public key is attached to the thing: AWS issues a new one",
                certificate_id=None,
                before=None,
                after={"certificate_id": None, "status": desired["status"]},
            )
        if not current or current.get("certificate_id") != match["certificate_id"]:
            current = match
    elif current is None or current.get("certificate_id") != desired["certificate_id"]:
        if source == "certificate_id":
            return _action(
                "certificate",
                logical_id,
                "fail",
                f"certificate {desired['certificate_id']} does not exist; CertificateId needs an existing certificate",
                certificate_id=desired["certificate_id"],
                before=None,
                after=None,
            )
        return _action(
            "certificate",
            logical_id,
            "create",
            f"certificate {desired['certificate_id']} is not registered",
            certificate_id=desired["certificate_id"],
            before=None,
            after={"certificate_id": desired["certificate_id"], "status": desired["status"]},
        )
    return _plan_certificate_status(desired, current)


def _plan_certificate_status(desired: Mapping[str, Any], current: Mapping[str, Any]) -> Dict[str, Any]:
    certificate_id, status = current["certificate_id"], current.get("status")
    before = {"certificate_id": certificate_id, "status": status}
    extra: Dict[str, Any] = {"certificate_id": certificate_id, "before": before, "after": dict(before)}
    logical_id, mode = desired["logical_id"], desired["overrides"]["status"]
    if status == desired["status"]:
        return _action("certificate", logical_id, "none", f"certificate {certificate_id} is {status}", **extra)
    change = {"status": {"before": status, "after": desired["status"]}}
    if status == "PENDING_ACTIVATION":
        # JITP and fleet provisioning finish by setting the template's status on a PENDING_ACTIVATION certificate,
        # whatever the OverrideSettings (the JITP page's step list; the fleet MQTT API page).
        extra["after"]["status"] = desired["status"]
        return _action(
            "certificate", logical_id, "update", "provisioning sets the template's status", changes=change, **extra
        )
    if not desired["status_set"] or mode == "DO_NOTHING":
        extra["ignored"] = {"status": dict(change["status"], override=mode if desired["status_set"] else "unset")}
        return _action(
            "certificate", logical_id, "none", f"certificate {certificate_id} exists; its status is left alone", **extra
        )
    if mode == "FAIL":
        return _action(
            "certificate",
            logical_id,
            "fail",
            "Status would change and its OverrideSettings is FAIL",
            changes=change,
            **extra,
        )
    if status not in CERTIFICATE_STATUSES:
        return _action(
            "certificate",
            logical_id,
            "fail",
            f"a {status} certificate cannot be set to {desired['status']}",
            changes=change,
            **extra,
        )
    extra["after"]["status"] = desired["status"]
    return _action(
        "certificate", logical_id, "update", f"certificate {certificate_id} status changes", changes=change, **extra
    )


def _plan_thing_principal(
    thing: Mapping[str, Any], certificate: Mapping[str, Any], state: Mapping[str, Any]
) -> Dict[str, Any]:
    certificate_id = certificate.get("certificate_id")
    extra = {"thing": thing["name"], "certificate_id": certificate_id}
    attached = (
        thing["action"] != "create"
        and certificate_id is not None
        and any(p.get("certificate_id") == certificate_id for p in state.get("principals") or [])
    )
    if attached:
        return _action("thing_principal", None, "none", "the certificate is attached to the thing", **extra)
    return _action("thing_principal", None, "create", "the certificate is not attached to the thing", **extra)


def normalise_policy_document(document: Any) -> Any:
    """A comparable form of a policy document: the policy module's normalisation, so both agree on equality."""
    return normalize_document(document)


def plan_policy(
    desired: Mapping[str, Any], current: Optional[Mapping[str, Any]], will_exist: Optional[Set[str]] = None
) -> Dict[str, Any]:
    logical_id = desired["logical_id"]
    if desired["name"] is not None:
        if current is None and desired["name"] in (will_exist or set()):
            return _action(
                "policy",
                logical_id,
                "none",
                f"policy {desired['name']} does not exist yet; an earlier task of the play creates it "
                "(declared_resources, check mode)",
                name=desired["name"],
            )
        if current is None:
            return _action(
                "policy",
                logical_id,
                "fail",
                f"policy {desired['name']} does not exist; a policy named without a document must already exist "
                "(list it in declared_resources.policies when an earlier task of the play creates it)",
                name=desired["name"],
            )
        return _action("policy", logical_id, "none", f"policy {desired['name']} exists", name=desired["name"])
    if current is not None and normalise_policy_document(current.get("policy_document")) == normalise_policy_document(
        desired["document"]
    ):
        return _action(
            "policy",
            logical_id,
            "none",
            "a policy with this document is attached to the certificate",
            name=current.get("policy_name"),
        )
    return _action(
        "policy",
        logical_id,
        "create",
        "no policy with this document is attached to the certificate; AWS creates one named by a hash of the document",
        name=None,
        after={"policy_document": desired["document"]},
    )


def _plan_policy_attachment(
    policy: Mapping[str, Any], certificate: Mapping[str, Any], state: Mapping[str, Any]
) -> Dict[str, Any]:
    name = policy.get("name")
    extra = {"policy": name, "certificate_id": certificate.get("certificate_id")}
    current = state.get("certificate") or {}
    attached = (
        certificate["action"] != "create"
        and policy["action"] == "none"
        and current.get("certificate_id") == certificate.get("certificate_id")
        and name in (current.get("attached_policies") or [])
    )
    if attached:
        return _action(
            "policy_attachment", policy["logical_id"], "none", f"policy {name} is attached to the certificate", **extra
        )
    return _action(
        "policy_attachment", policy["logical_id"], "create", "the policy is not attached to the certificate", **extra
    )
