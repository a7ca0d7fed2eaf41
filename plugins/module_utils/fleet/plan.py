# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning (pure): ``plan_fleet(spec, snapshot) -> FleetPlan`` and the plan's result and diff."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import billing, expiry, rotation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.local import (
    CallRecord,
    LocalDevice,
    device_paths,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    CERT_FILE,
    KEY_FILE,
    KEY_NOT_HERE,
    PLAN_LISTING_LIMIT,
    DesiredDevice,
    FleetSpec,
    _check_attribute_count,
    prune_allowance,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.state import (
    Snapshot,
    cert_id_of_arn,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    attribute_delta,
    attributes_after,
)

# ---------------------------------------------------------------------------
# Planning (pure)
# ---------------------------------------------------------------------------


@dataclass
class DevicePlan:
    name: str
    action: str = "unchanged"  # create | update | unchanged | prune | failed
    changes: List[str] = field(default_factory=list)
    create_thing: Optional[Dict[str, Any]] = None
    update_thing: Optional[Dict[str, Any]] = None
    groups_to_add: List[str] = field(default_factory=list)
    groups_to_remove: List[str] = field(default_factory=list)
    billing_remove: Optional[str] = None  # the billing group to leave, then the one to join (billing.py)
    billing_add: Optional[str] = None
    # Certificate: the one to use (id) or one to make (new_certificate = aws_keys|csr|pem).
    certificate_id: Optional[str] = None
    certificate_arn: Optional[str] = None
    new_certificate: Optional[str] = None
    write_certificate_pem: Optional[str] = None  # recovered by public key: write the file
    fix_key_mode: bool = False  # the key file is readable by others: make it 0600
    attach_certificate: bool = False
    policies_to_attach: List[str] = field(default_factory=list)
    policies_to_detach: List[str] = field(default_factory=list)
    activate: bool = False
    # The key of the certificate in use is not in output_dir here: KEY_NOT_HERE (None: it is, or no key file).
    key: Optional[str] = None
    # replace_lost_keys: the certificates (id, ARN) the new one replaces, detached and deleted after it is ACTIVE.
    replace_certificates: List[Tuple[str, str]] = field(default_factory=list)
    error: Optional[str] = None
    # Prune only: principal ARNs to decommission and groups to leave.
    prune_principals: List[str] = field(default_factory=list)
    before: Dict[str, Any] = field(default_factory=dict)
    after: Dict[str, Any] = field(default_factory=dict)
    # Rotation (rotation.py): the device's stage; expiry: its certificate's dates; warnings: certificate_expiry's.
    rotation: Optional[rotation.RotationPlan] = None
    expiry: Optional[Dict[str, Any]] = None
    warnings: List[str] = field(default_factory=list)

    @property
    def rotation_stage(self) -> Optional[str]:
        return self.rotation.stage if self.rotation else None


@dataclass
class FleetPlan:
    devices: List[DevicePlan]
    groups_to_create: List[str]
    records: List[CallRecord]  # certificate calls of earlier runs that may have left a certificate behind
    # Check mode: declared_resources that do not exist yet, planned as made by earlier tasks of the play.
    made_by_earlier_tasks: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def warnings(self) -> List[str]:
        return [w for d in self.devices for w in d.warnings]

    def counts(self) -> Dict[str, int]:
        counts = {"create": 0, "update": 0, "unchanged": 0, "prune": 0, "failed": 0}
        for device in self.devices:
            counts[device.action] = counts.get(device.action, 0) + 1
        counts["create_thing_group"] = len(self.groups_to_create)
        return counts

    @property
    def changing(self) -> List[DevicePlan]:
        return [d for d in self.devices if d.action in ("create", "update", "prune")]


def _certificate_view(status: Optional[str], cert_id: Optional[str], policies: List[str]) -> Dict[str, Any]:
    return {"certificate_id": cert_id, "status": status, "policies": sorted(policies)}


def thing_type_error(device: DesiredDevice, spec: FleetSpec, snap: Snapshot) -> Optional[str]:
    """Why AWS would refuse the thing type this device is to get (None: it would not, or it is not read)."""
    name = device.thing_type
    current = snap.things.get(device.name)
    if not name or name not in snap.thing_types or (current is not None and current["thing_type"] == name):
        return None
    info = snap.thing_types[name]
    if info is None:
        if spec.check_mode and name in spec.declared_thing_types:
            return None
        if name in spec.declared_thing_types:
            return (
                f"thing_type: thing type {name} does not exist, though declared_resources.thing_types says an "
                "earlier task creates it; check that task"
            )
        return (
            f"thing_type: thing type {name} does not exist; create it first (iotfleet.provisioning.thing_type), or "
            "list it in declared_resources.thing_types when an earlier task of this play creates it"
        )
    if info["deprecated"]:
        return (
            f"thing_type: thing type {name} is deprecated and AWS gives it to no thing; undeprecate it "
            "(iotfleet.provisioning.thing_type with deprecated: false) or choose another type"
        )
    return None


def plan_device(
    device: DesiredDevice,
    spec: FleetSpec,
    snap: Snapshot,
    named_groups: Optional[List[str]] = None,
    now: Optional[datetime.datetime] = None,
) -> DevicePlan:
    # named_groups: spec.named_groups, worked out once per plan (it reads every device: once per device made
    # planning quadratic, 85 s for 10,000 devices).
    named = spec.named_groups if named_groups is None else named_groups
    plan = DevicePlan(name=device.name)
    current = snap.things.get(device.name)
    plan.error = thing_type_error(device, spec, snap)
    if plan.error:
        plan.action = "failed"
        return plan
    # Thing
    if current is None:
        attributes = attributes_after({}, device.attributes, True)
        _check_attribute_count(f"{device.name}.attributes", attributes, bool(device.thing_type))
        plan.create_thing = {"thingName": device.name}
        if device.thing_type:
            plan.create_thing["thingTypeName"] = device.thing_type
        if attributes:
            plan.create_thing["attributePayload"] = {"attributes": attributes}
        plan.changes.append("create thing")
        thing_type = device.thing_type
    else:
        thing_type = current["thing_type"] if device.thing_type is None else device.thing_type
        attributes = attributes_after(current["attributes"], device.attributes, device.purge_attributes)
        _check_attribute_count(f"{device.name}.attributes", attributes, bool(thing_type))
        update: Dict[str, Any] = {}
        if thing_type != current["thing_type"]:
            update["thingTypeName"] = thing_type
            plan.changes.append(f"set thing type {thing_type}")
        delta = attribute_delta(current["attributes"], attributes)
        if delta:
            update["attributePayload"] = {"attributes": delta, "merge": True}
            plan.changes.append("update attributes " + ", ".join(sorted(delta)))
        if update:
            update["thingName"] = device.name
            if current.get("version") is not None:
                update["expectedVersion"] = current["version"]
            plan.update_thing = update
    # Groups: the fleet group always; other named groups as the device lists them.
    desired_groups = {spec.fleet_group} | set(device.thing_groups or [])
    for group in sorted(desired_groups):
        members = snap.groups.get(group)
        if members is None or device.name not in members:
            plan.groups_to_add.append(group)
    if device.thing_groups is not None:
        for group in named:
            if group in desired_groups:
                continue
            members = snap.groups.get(group) or set()
            if device.name in members:
                plan.groups_to_remove.append(group)
    if plan.groups_to_add:
        plan.changes.append("add to groups " + ", ".join(plan.groups_to_add))
    if plan.groups_to_remove:
        plan.changes.append("remove from groups " + ", ".join(plan.groups_to_remove))
    before_groups = sorted(g for g in named if device.name in (snap.groups.get(g) or set()))
    after_groups = sorted((set(before_groups) | set(plan.groups_to_add)) - set(plan.groups_to_remove))
    plan.before = (
        {"thing_type": current["thing_type"], "attributes": current["attributes"], "thing_groups": before_groups}
        if current
        else {}
    )
    plan.after = {"thing_type": thing_type or None, "attributes": attributes, "thing_groups": after_groups}
    billing.plan_billing(device, spec, snap, plan, current is not None)
    # Certificate
    if device.certificate != "none":
        will_exist = set(spec.declared_policies) if spec.check_mode else set()
        _plan_certificate(device, snap, plan, spec.output_dir, spec.replace_lost_keys, will_exist)
        local = snap.local.get(device.name)
        if (
            not plan.error
            and device.certificate in ("aws_keys", "csr")
            and local is not None
            and local.key_public is not None
            and local.key_mode is not None
            and local.key_mode != crypto.PRIVATE_KEY_MODE
        ):
            # As the csr module does: a private key readable by others is made 0600 (reported as a change).
            plan.fix_key_mode = True
            plan.changes.append(f"set {KEY_FILE} mode to 0600 (was {local.key_mode:04o})")
            if plan.before:
                plan.before["key_file_mode"] = f"{local.key_mode:04o}"
            plan.after["key_file_mode"] = f"{crypto.PRIVATE_KEY_MODE:04o}"
        if current is not None:
            rotation.plan_rotation(device, spec, snap, plan, now or expiry.utcnow())
    if plan.error:
        plan.action = "failed"
    elif current is None:
        plan.action = "create"
    elif plan.changes:
        plan.action = "update"
    return plan


def _attached_in_order(snap: Snapshot, principals: List[str]) -> List[str]:
    """The ids of the certificates attached to a thing that exist: ACTIVE first, then the newest first."""
    ids = {cert_id_of_arn(arn) for arn in principals} - {None}
    found = [cert_id for cert_id in ids if cert_id in snap.certificates]
    return sorted(
        found,
        key=lambda i: (snap.certificates[i]["status"] != "ACTIVE", -snap.certificates[i]["created"], i),
    )


def _plan_certificate(
    device: DesiredDevice,
    snap: Snapshot,
    plan: DevicePlan,
    output_dir: Optional[str] = None,
    replace_lost_keys: bool = False,
    will_exist: Optional[Set[str]] = None,
) -> None:
    """The certificate steps; ``will_exist``: missing policies an earlier task creates (check mode only)."""
    will_exist = will_exist or set()
    local = snap.local.get(device.name) or LocalDevice()
    principals = snap.principals.get(device.name, [])
    attached_ids = {cert_id_of_arn(arn) for arn in principals}
    cert_id: Optional[str] = None
    if device.certificate == "pem":
        cert_id = device.certificate_id
        if cert_id not in snap.certificates:
            plan.new_certificate = "pem"
    else:
        if local.key_error:
            plan.error = local.key_error
            return
        if local.cert_id:
            if local.key_public is not None and local.cert_public != local.key_public:
                plan.error = f"{CERT_FILE} does not match {KEY_FILE}: fix or remove the device's files"
                return
            if local.key_public is None and device.certificate == "aws_keys":
                plan.error = f"{CERT_FILE} exists but {KEY_FILE} is missing: the key is lost; remove the files"
                return
            if local.cert_id in snap.certificates:
                cert_id = local.cert_id
        elif device.name in snap.recovered:
            cert_id = snap.recovered[device.name]["id"]
            plan.write_certificate_pem = snap.recovered[device.name]["pem"]
            plan.changes.append(f"write {CERT_FILE} of the certificate that has the key's public key")
        if cert_id is None and local.key_public is not None and device.certificate == "aws_keys":
            # AWS makes a new key with every certificate: making one would replace this key file.
            why = (
                f"its certificate {local.cert_id} in {CERT_FILE} no longer exists in AWS IoT"
                if local.cert_id
                else f"its certificate was not found ({CERT_FILE} is missing and no certificate attached to the "
                "thing, or left by an interrupted run, has the key's public key)"
            )
            key_path = device_paths(output_dir, device.name)["key"] if output_dir else KEY_FILE
            plan.error = (
                f"{key_path} exists but {why}; a device key is never replaced by a new one: "
                f"restore the key's certificate in {CERT_FILE}, or move the device's {KEY_FILE} (and "
                f"{CERT_FILE}) away to have a new key and certificate made"
            )
            return
        if cert_id is None and local.key_public is None and local.cert_id is None:
            # No files here (a fresh controller): AWS says what exists. A certificate attached to the thing
            # (ACTIVE or INACTIVE) is the device's; its key is on the device, never made again for lack of files.
            attached = [
                i
                for i in _attached_in_order(snap, principals)
                if snap.certificates[i]["status"] in ("ACTIVE", "INACTIVE")
            ]
            if attached:
                plan.key = KEY_NOT_HERE
                if replace_lost_keys:
                    plan.replace_certificates = [(i, snap.certificates[i]["arn"]) for i in attached]
                else:
                    cert_id = attached[0]
        if cert_id is None:
            plan.new_certificate = device.certificate
    if plan.new_certificate:
        plan.changes.append(f"create certificate ({plan.new_certificate})")
        for old, _arn in plan.replace_certificates:
            plan.changes.append(f"replace certificate {old} ({KEY_FILE} {KEY_NOT_HERE})")
        plan.attach_certificate = True
        # CSR certificates are made ACTIVE (the key was on disk before the call: a lost answer's certificate is
        # found again, or swept, by that key); the others INACTIVE, activated once attached (one more call).
        plan.activate = plan.new_certificate != "csr"
        plan.policies_to_attach = list(device.policies or [])
        status = None
        current_policies: List[str] = []
    else:
        info = snap.certificates[cert_id]
        plan.certificate_id = cert_id
        plan.certificate_arn = info["arn"]
        status = info["status"]
        plan.attach_certificate = cert_id not in attached_ids
        plan.activate = status != "ACTIVE"
        current_policies = sorted(p for p, targets in snap.policy_targets.items() if targets and info["arn"] in targets)
        if device.policies is not None:
            plan.policies_to_attach = [p for p in device.policies if p not in current_policies]
            plan.policies_to_detach = [p for p in current_policies if p not in device.policies]
    missing = [p for p in device.policies or [] if snap.policy_targets.get(p) is None and p not in will_exist]
    if missing:
        plan.error = (
            f"policies: policy {missing[0]} does not exist; create it first (iotfleet.provisioning.policy), or "
            "list it in declared_resources.policies when an earlier task of this play creates it (that list "
            "stands in for the policy in check mode only)"
        )
        return
    if plan.new_certificate is None and plan.attach_certificate:
        plan.changes.append("attach certificate")
    if plan.policies_to_attach and not plan.new_certificate:
        plan.changes.append("attach policies " + ", ".join(plan.policies_to_attach))
    if plan.policies_to_detach:
        plan.changes.append("detach policies " + ", ".join(plan.policies_to_detach))
    if plan.activate and not plan.new_certificate:
        plan.changes.append("activate certificate")
    if plan.before:
        if plan.replace_certificates:
            old_id, old_arn = plan.replace_certificates[0]
            old_policies = sorted(p for p, targets in snap.policy_targets.items() if targets and old_arn in targets)
            plan.before["certificate"] = _certificate_view(snap.certificates[old_id]["status"], old_id, old_policies)
            plan.before["certificate"]["key"] = KEY_NOT_HERE
        else:
            plan.before["certificate"] = _certificate_view(status, plan.certificate_id, current_policies)
            if plan.key:
                plan.before["certificate"]["key"] = plan.key
    after_policies = device.policies if device.policies is not None else current_policies
    plan.after["certificate"] = _certificate_view(
        "ACTIVE", plan.certificate_id or "(new)" if plan.new_certificate else plan.certificate_id, after_policies
    )
    if plan.key and not plan.new_certificate:
        plan.after["certificate"]["key"] = plan.key


def plan_fleet(spec: FleetSpec, snap: Snapshot, now: Optional[datetime.datetime] = None) -> FleetPlan:
    """Per device the steps that make it match, the prune list, and the guard. No call, no file."""
    devices = []
    named_groups = spec.named_groups
    now = now or expiry.utcnow()
    for device in spec.devices:
        try:
            devices.append(plan_device(device, spec, snap, named_groups, now))
        except ValidationError as e:
            devices.append(DevicePlan(name=device.name, action="failed", error=str(e)))
    managed = snap.groups.get(spec.fleet_group) or set()
    wanted = {d.name for d in spec.devices}
    if spec.prune:
        to_prune = sorted(managed - wanted)
        allowed = prune_allowance(spec.max_prune, len(managed))
        if to_prune and not spec.prune_all and (spec.empty_input or len(to_prune) == len(managed)):
            # Retiring the whole fleet is a decision of its own, never the side effect of an empty or wrong
            # input, whatever max_prune allows.
            why = (
                spec.empty_input
                or f"none of the {len(managed)} devices in thing group {spec.fleet_group} is in the input"
            )
            raise ValidationError(
                "prune",
                f"{why}: prune would decommission every device of thing group {spec.fleet_group} "
                f"({len(to_prune)}); nothing was changed. An input with no devices, or none of the current ones, "
                "never prunes whatever max_prune says; to retire the whole fleet set prune_all: true "
                "(run it in check mode first to see what it removes)",
            )
        # prune_all with an empty input is the decision to retire the fleet; otherwise the guard stands.
        if len(to_prune) > allowed and not (spec.prune_all and spec.empty_input):
            kind, amount = spec.max_prune
            limit = f"{amount:g}%" if kind == "percent" else f"{int(amount)}"
            raise ValidationError(
                "max_prune",
                f"prune would remove {len(to_prune)} of the {len(managed)} devices in thing group "
                f"{spec.fleet_group} but max_prune {limit} allows {allowed}; nothing was changed. Check the input "
                "(a truncated file?) or raise max_prune",
            )
        devices.extend(plan_prune(name, snap) for name in to_prune)
    groups_to_create = sorted(g for g in spec.named_groups if snap.groups.get(g) is None)
    records = [r for device in spec.devices for r in (snap.local.get(device.name) or LocalDevice()).records]
    made_earlier: Dict[str, List[str]] = {}
    if spec.check_mode:
        made_earlier = {
            "policies": [p for p in spec.declared_policies if snap.policy_targets.get(p, set()) is None],
            "thing_types": [t for t in spec.declared_thing_types if t in snap.thing_types and not snap.thing_types[t]],
        }
        if spec.declared_billing_groups:  # only when declared: the two keys above are what earlier plans had
            made_earlier["billing_groups"] = [
                g for g in spec.declared_billing_groups if snap.billing_groups.get(g, set()) is None
            ]
    return FleetPlan(
        devices=devices, groups_to_create=groups_to_create, records=records, made_by_earlier_tasks=made_earlier
    )


def plan_prune(name: str, snap: Snapshot) -> DevicePlan:
    """A device to decommission, with the certificates it takes with it (shown in the plan, diff and report)."""
    plan = DevicePlan(name=name, action="prune", changes=["decommission"])
    plan.prune_principals = list(snap.principals.get(name, []))
    plan.groups_to_remove = sorted(g for g, members in snap.groups.items() if members and name in members)
    certificates = []
    for arn in plan.prune_principals:
        cert_id = cert_id_of_arn(arn)
        if cert_id:
            status = (snap.certificates.get(cert_id) or {}).get("status")
            certificates.append({"certificate_id": cert_id, "status": status})
            plan.changes.append(
                f"detach certificate {cert_id}, then deactivate and delete it unless another thing uses it"
            )
        else:
            plan.changes.append(f"detach principal {arn}")
    if plan.groups_to_remove:
        plan.changes.append("remove from groups " + ", ".join(plan.groups_to_remove))
    plan.changes.append("delete thing")
    plan.certificate_id = ";".join(c["certificate_id"] for c in certificates) or None
    thing = snap.things.get(name)
    if thing:
        plan.before = {
            "thing_type": thing["thing_type"],
            "attributes": thing["attributes"],
            "thing_groups": plan.groups_to_remove,
            "certificates": certificates,
        }
    return plan


def summary_line(counts: Mapping[str, int], check_mode: bool, fleet_group: str) -> str:
    """One line for the console: ``sensors: 3 create, 5 update, 2 prune, 43 unchanged`` (check mode says so)."""
    parts = [f"{counts.get(action, 0)} {action}" for action in ("create", "update", "prune", "unchanged")]
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    if counts.get("create_thing_group"):
        verb = "to create" if check_mode else "created"
        parts.append(f"{counts['create_thing_group']} thing group(s) {verb}")
    return f"{fleet_group}: " + ("check mode, nothing changed: " if check_mode else "") + ", ".join(parts)


def rotation_text(d: DevicePlan) -> Optional[str]:
    texts = d.rotation.texts() if d.rotation and d.rotation.stage else []
    return "; ".join(texts) or None


def expiry_result(plan: FleetPlan) -> Dict[str, Any]:
    """Validity read (and from where) or not, and the certificates that expire first."""
    known = [d for d in plan.devices if d.expiry]
    dated = sorted((d for d in known if d.expiry["days_left"] is not None), key=lambda d: d.expiry["days_left"])
    by_source: Dict[str, int] = {}
    for d in known:
        by_source[d.expiry["validity"]] = by_source.get(d.expiry["validity"], 0) + 1
    return {
        "validity": by_source,  # file | DescribeCertificate | not read -> devices
        "soonest": [{"name": d.name, **d.expiry} for d in dated[:10]],
        "warnings": len([d for d in plan.devices if d.warnings]),
    }


def rotation_result(plan: FleetPlan) -> Dict[str, Any]:
    counts = {stage: 0 for stage in (rotation.ISSUE, rotation.WAITING, rotation.RETIRE, rotation.PROMOTE)}
    listed = []
    for d in plan.devices:
        if d.rotation_stage:
            counts[d.rotation_stage] += 1
            listed.append({"name": d.name, "stage": d.rotation_stage, "text": rotation_text(d)})
    return {"counts": counts, "devices": listed[:PLAN_LISTING_LIMIT]}


def plan_result(plan: FleetPlan) -> Dict[str, Any]:
    listing = [
        {
            "name": d.name,
            "action": d.action,
            "changes": d.changes,
            **({"error": d.error} if d.error else {}),
            **({"rotation": rotation_text(d)} if d.rotation_stage else {}),
        }
        for d in plan.devices
        if d.action != "unchanged" or d.rotation_stage
    ]
    keys_elsewhere = [d.name for d in plan.devices if d.key == KEY_NOT_HERE and not d.replace_certificates]
    return {
        "counts": plan.counts(),
        "thing_groups_to_create": plan.groups_to_create,
        "devices": listing[:PLAN_LISTING_LIMIT],
        "devices_listed": min(len(listing), PLAN_LISTING_LIMIT),
        "devices_not_listed": max(0, len(listing) - PLAN_LISTING_LIMIT),
        "pending_certificate_markers": len(plan.records),
        # Devices whose attached certificate is in use though its key is not in output_dir here (first 50).
        "key_not_on_this_controller": {"count": len(keys_elsewhere), "devices": keys_elsewhere[:PLAN_LISTING_LIMIT]},
        "made_by_earlier_tasks": plan.made_by_earlier_tasks,
        "expiry": expiry_result(plan),
        "rotation": rotation_result(plan),
    }


def plan_diff(plan: FleetPlan) -> List[Dict[str, Any]]:
    """One diff per changing device (the first 50), each under its own header: a device that goes and one
    that comes are never shown as one changed into the other. A device waiting in a rotation is shown too
    (its stage, no change)."""
    shown = [
        d
        for d in plan.devices
        if d.action in ("create", "update", "prune") or (d.action == "unchanged" and d.rotation_stage)
    ]
    return [
        {
            "before_header": f"device {d.name}",
            "after_header": f"device {d.name} ({d.action})",
            "before": d.before or {},
            "after": {} if d.action == "prune" else d.after,
        }
        for d in shown[:PLAN_LISTING_LIMIT]
    ]


def full_plan_document(plan: FleetPlan) -> Dict[str, Any]:
    return {
        "counts": plan.counts(),
        "thing_groups_to_create": plan.groups_to_create,
        "made_by_earlier_tasks": plan.made_by_earlier_tasks,
        "rotation": rotation_result(plan)["counts"],
        "devices": [
            {
                "name": d.name,
                "action": d.action,
                "changes": d.changes,
                "error": d.error,
                "key": d.key,
                "before": d.before,
                "after": d.after,
                "expiry": d.expiry,
                "rotation": rotation_text(d),
            }
            for d in plan.devices
        ],
    }


def write_json(path: str, data: Any) -> None:
    # A plan or report directory a fresh checkout lacks is made (validate_fleet checked it can be).
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    crypto.write_file_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode(), 0o644)
