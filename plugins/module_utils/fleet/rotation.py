# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate rotation in the fleet: the rule (``rotation``), the confirmations, and each device's stage.

AWS is the source of truth, the files are outputs: a rotation in progress is a thing with two or more ACTIVE
certificates attached, the newest (by creation date) the new one. Each run moves a device one safe step:

* ``issue`` (step 1): a device selected by the rule (its certificate expires within ``expiring_within_days``,
  it is listed in ``devices`` and its certificate was created before ``requested_on``, or its key is below
  ``key_minimum``) gets a new certificate beside the old one: same policies, attached to the same thing, its
  files written to ``<output_dir>/<name>/next/`` (the key 0600) before anything else can fail. The old one is
  untouched.
* ``waiting``: nothing to do until the NEW certificate's id is confirmed (``confirmed`` / ``confirmed_file``).
  The registry does not record which certificate a device connected with; a name alone is never a
  confirmation (a name left in git would retire the old certificate of the next rotation as it starts), nor is
  time elapsed or a recent connection (the device may have connected with the old certificate).
* ``retire`` (step 2): the confirmed new certificate is ACTIVE and attached, so every other certificate attached
  to the thing and created before it goes, in the order UpdateCertificate INACTIVE, DetachThingPrincipal,
  DetachPolicy (each), DeleteCertificate (one another thing also uses is only detached from this thing). The
  intent is recorded in ``<output_dir>/<name>/.fleet-rotation.json`` first, so a run stopped between two of these
  calls finishes them on the next run. Then ``next/`` replaces the device's files (``promote``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.confirmations import (
    check_certificate_ids,
    parse_confirmations,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import expiry

ROTATION_KEYS = ("expiring_within_days", "devices", "requested_on", "key_minimum", "confirmed", "confirmed_file")
# The key AWS makes with CreateKeysAndCertificate.
AWS_KEYS_RSA_BITS = 2048
EC_CURVES = ((256, "P-256"), (384, "P-384"), (521, "P-521"))

ISSUE = "issue"
WAITING = "waiting"
RETIRE = "retire"
PROMOTE = "promote"


@dataclass
class RotationRule:
    expiring_within_days: Optional[int] = None
    devices: List[str] = field(default_factory=list)
    requested_on: Optional[datetime.datetime] = None
    rsa_bits: Optional[int] = None
    ec_bits: Optional[int] = None
    confirmed_ids: Set[str] = field(default_factory=set)
    confirmed_by_device: Dict[str, Set[str]] = field(default_factory=dict)

    @property
    def selects(self) -> bool:
        return self.expiring_within_days is not None or bool(self.devices) or self.key_rule

    @property
    def key_rule(self) -> bool:
        return self.rsa_bits is not None or self.ec_bits is not None

    def confirmed(self, name: str, cert_id: str) -> bool:
        return cert_id in self.confirmed_ids or cert_id in self.confirmed_by_device.get(name, set())

    def new_key_spec(self) -> Dict[str, str]:
        """The key made for a csr device: EC, on the smallest NIST curve that meets ``ec_bits``."""
        for bits, curve in EC_CURVES:
            if self.ec_bits is None or bits >= self.ec_bits:
                return {"type": "EC", "curve": curve}
        return {"type": "EC", "curve": "P-521"}

    def key_below(self, key_type: Optional[str], key_bits: Optional[int]) -> Optional[str]:
        minimum = {"RSA": self.rsa_bits, "EC": self.ec_bits}.get(key_type or "")
        if minimum is not None and (key_bits or 0) < minimum:
            return f"its {key_type} {key_bits}-bit key is below key_minimum ({minimum} bits)"
        return None


def _parse_date(field_name: str, value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
    raise ValidationError(field_name, f"must be a date like 2026-12-05 (or an ISO 8601 time), got {value!r}")


def validate_rotation(raw: Any) -> RotationRule:
    """``rotation``: checked whole before any call; the confirmation file is read here."""
    rule = RotationRule()
    if raw is None:
        return rule
    if not isinstance(raw, Mapping):
        raise ValidationError("rotation", f"must be a dictionary, got {type(raw).__name__}")
    unknown = sorted(k for k in raw if k not in ROTATION_KEYS)
    if unknown:
        raise ValidationError(f"rotation.{unknown[0]}", f"is not an option; use {', '.join(ROTATION_KEYS)}")
    rule.expiring_within_days = expiry.check_days("rotation.expiring_within_days", raw.get("expiring_within_days"))
    devices = raw.get("devices")
    if devices is not None:
        if not isinstance(devices, list) or not all(isinstance(d, str) and d for d in devices):
            raise ValidationError("rotation.devices", "must be a list of device names")
        rule.devices = list(devices)
    if rule.devices and raw.get("requested_on") is None:
        raise ValidationError(
            "rotation.requested_on",
            "is required with rotation.devices: a listed device is rotated while its certificate was created "
            "before this date, so the list can stay in git without rotating the devices again",
        )
    if raw.get("requested_on") is not None:
        rule.requested_on = _parse_date("rotation.requested_on", raw["requested_on"])
    minimum = raw.get("key_minimum")
    if minimum is not None:
        if not isinstance(minimum, Mapping) or set(minimum) - {"rsa_bits", "ec_bits"}:
            raise ValidationError("rotation.key_minimum", "must be a dictionary with rsa_bits and/or ec_bits")
        for key, low, high in (("rsa_bits", 2048, 16384), ("ec_bits", 256, 521)):
            value = minimum.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValidationError(
                    f"rotation.key_minimum.{key}",
                    f"must be a number of bits from {low} to {high} (what AWS IoT accepts), got {value!r}",
                )
            setattr(rule, key, value)
    confirmed = raw.get("confirmed")
    if confirmed is not None:
        if not isinstance(confirmed, list):
            raise ValidationError("rotation.confirmed", "must be a list of certificate ids")
        rule.confirmed_ids = check_certificate_ids("rotation.confirmed", confirmed)
    path = raw.get("confirmed_file")
    if path is not None:
        data = crypto.read_file(path) if isinstance(path, str) else None
        if data is None:
            raise ValidationError("rotation.confirmed_file", f"{path} cannot be read")
        filed = parse_confirmations(data.decode("utf-8", "replace"), "rotation.confirmed_file")
        rule.confirmed_ids |= filed.ids
        rule.confirmed_by_device = filed.by_device
    return rule


def check_rotation_devices(rule: RotationRule, devices: List[Any]) -> None:
    """The rule against the devices: listed devices exist and can rotate; aws_keys keys meet the minimum."""
    by_name = {d.name: d for d in devices}
    for index, name in enumerate(rule.devices):
        if name not in by_name:
            raise ValidationError(f"rotation.devices[{index}]", f"{name} is not a device of the input")
        if by_name[name].certificate in ("pem", "none"):
            raise ValidationError(f"rotation.devices[{index}]", refusal(name, by_name[name].certificate))
    if rule.rsa_bits is not None and rule.rsa_bits > AWS_KEYS_RSA_BITS:
        aws = [d.name for d in devices if d.certificate == "aws_keys"]
        if aws:
            raise ValidationError(
                "rotation.key_minimum.rsa_bits",
                f"{rule.rsa_bits} is more than the {AWS_KEYS_RSA_BITS}-bit RSA keys AWS makes for aws_keys devices "
                f"(e.g. {aws[0]}): every new certificate would be below it again; use certificate: csr for them",
            )


def refusal(name: str, source: str) -> str:
    if source == "none":
        return f"device {name} has no certificate (certificate: none): nothing to rotate"
    return (
        f"device {name} uses certificate: pem, a certificate made outside this module: the fleet cannot make its "
        "successor; register the new certificate (certificate_pem) yourself, or switch the device to csr"
    )


@dataclass
class RotationPlan:
    stage: Optional[str] = None  # issue | waiting | retire | promote (None: no rotation)
    reason: Optional[str] = None  # why step 1 (expiry, request, key)
    old: List[Tuple[str, str, str]] = field(default_factory=list)  # (id, arn, status) to retire
    new_id: Optional[str] = None
    promote: bool = False  # next/ replaces the device's files
    key_spec: Optional[Dict[str, str]] = None  # csr: the new key (None: the device's CSR file)
    old_id: Optional[str] = None  # issue: the certificate being replaced (its policies are copied)
    old_arn: Optional[str] = None

    def texts(self) -> List[str]:
        """The stage as the plan, the diff and the report say it."""
        if self.stage == ISSUE:
            return ["rotate: issue new certificate"]
        if self.stage == WAITING:
            return [f"rotate: waiting for confirmation of {self.new_id}"]
        texts = [f"rotate: retire {old_id}" for old_id, _arn, _status in self.old] if self.stage == RETIRE else []
        if self.promote:
            texts.append("rotate: move the new files in place")
        return texts


def active_attached(snap: Any, name: str) -> List[str]:
    """The ACTIVE certificates attached to the thing, oldest first."""
    ids = [iot_arn_id(arn) for arn in snap.principals.get(name, [])]
    active = [i for i in ids if i and (snap.certificates.get(i) or {}).get("status") == "ACTIVE"]
    return sorted(set(active), key=lambda i: (snap.certificates[i]["created"], i))


def iot_arn_id(arn: str) -> Optional[str]:
    return arn.rsplit("/", 1)[1] if ":cert/" in arn else None


def facts_target(snap: Any, name: str, plan_cert_id: Optional[str]) -> Optional[str]:
    """The certificate whose expiry the device is judged by: the oldest ACTIVE one attached (the one a device
    in rotation may still use), else the certificate the plan keeps."""
    active = active_attached(snap, name)
    return active[0] if active else plan_cert_id


def selection_reasons(
    rule: RotationRule, name: str, created: float, facts: Optional[expiry.CertFacts], now: datetime.datetime
) -> List[str]:
    """Why the rule selects a device whose one ACTIVE certificate was created at ``created`` (empty: it does not)."""
    reasons = []
    days = facts.days_left(now) if facts else None
    if rule.expiring_within_days is not None and days is not None and days <= rule.expiring_within_days:
        reasons.append(
            f"it expires {expiry.iso(facts.not_after)} ({days} days left, within expiring_within_days "
            f"{rule.expiring_within_days})"
        )
    if name in rule.devices and rule.requested_on is not None and created < rule.requested_on.timestamp():
        reasons.append(f"requested (rotation.devices; made before requested_on {rule.requested_on.date()})")
    below = rule.key_below(facts.key_type, facts.key_bits) if facts else None
    if below:
        reasons.append(below)
    return reasons


def plan_rotation(device: Any, spec: Any, snap: Any, plan: Any, now: datetime.datetime) -> None:
    """The device's rotation stage and its expiry, in ``plan.rotation`` / ``plan.expiry`` (pure: no call)."""
    rule: RotationRule = spec.rotation
    rot = RotationPlan()
    plan.rotation = rot
    if device.certificate == "none" or plan.error:
        return
    name = device.name
    local = snap.local.get(name)
    certs = snap.certificates
    active = active_attached(snap, name)
    # Expiry: of the oldest ACTIVE certificate attached (the one a device may still use), else the plan's one.
    target = facts_target(snap, name, plan.certificate_id)
    facts = (snap.facts.get(target) or (local.facts.get(target) if local else None)) if target else None
    if target:
        plan.expiry = {
            "certificate_id": target,
            "not_after": expiry.iso(facts.not_after) if facts else None,
            "days_left": facts.days_left(now) if facts else None,
            "validity": facts.source if facts and facts.not_after else expiry.NOT_READ,
            "key": facts.key_text() if facts else None,
        }
    new = active[-1] if active else None
    attached = {iot_arn_id(arn) for arn in snap.principals.get(name, [])} - {None}
    olds: Set[str] = set()
    if new:
        olds = {
            i
            for i in attached
            if i != new
            and i in certs
            and certs[i]["status"] in ("ACTIVE", "INACTIVE")
            and certs[i]["created"] <= certs[new]["created"]
        }
    if len(active) >= 2 and certs[active[-1]]["created"] == certs[active[-2]]["created"]:
        plan.error = (
            f"rotation: certificates {active[-2]} and {active[-1]} of {name} are both ACTIVE and were created at the "
            "same moment: which one is new cannot be told; remove the one the device does not use"
        )
        return
    recorded = [r for r in (local.retiring if local else []) if new and r["new"] == new and r["id"] in certs]
    overlay_new = bool(local and local.overlay and local.cert_id)
    if new and (olds or recorded) and (rule.confirmed(name, new) or recorded):
        rot.stage, rot.new_id = RETIRE, new
        for i in sorted(olds | {r["id"] for r in recorded}, key=lambda i: (certs[i]["created"], i)):
            rot.old.append((i, certs[i]["arn"], certs[i]["status"]))
        rot.promote = overlay_new and local.cert_id == new
    elif len(active) >= 2:
        rot.stage, rot.new_id = WAITING, new
    elif overlay_new and active and local.cert_id not in active:
        # Step 1 was interrupted after next/ was written: the plan attaches and activates the new certificate.
        rot.stage, rot.new_id = ISSUE, local.cert_id
    elif overlay_new and active == [local.cert_id]:
        rot.stage, rot.promote, rot.new_id = PROMOTE, True, local.cert_id  # step 2 ran elsewhere, or stopped
    elif local and local.next_key_public is not None and not local.next_cert_id and len(active) == 1:
        # Step 1 of a csr device began (its new key is in next/): it goes on with that key.
        if device.certificate != "csr":
            plan.error = (
                f"rotation: {name}/next/ holds a key but no certificate (step 1 was stopped between writing the "
                "two); remove that directory to issue again (the certificate it made is INACTIVE and attached to "
                "nothing: the orphan sweep reports it)"
            )
            return
        rot.stage, rot.reason = ISSUE, "step 1 began in an earlier run"
    elif (
        rule.selects
        and len(active) == 1
        and plan.certificate_id == active[0]
        and not plan.new_certificate
        and not plan.replace_certificates
    ):
        reasons = selection_reasons(rule, name, certs[active[0]]["created"], facts, now)
        if reasons:
            if device.certificate == "pem":
                plan.error = f"rotation: {refusal(name, 'pem')} (selected: {'; '.join(reasons)})"
                return
            newer = [
                i
                for i in attached
                if i in certs and certs[i]["status"] == "INACTIVE" and certs[i]["created"] > certs[active[0]]["created"]
            ]
            if newer:
                plan.error = (
                    f"rotation: certificate {newer[0]}, INACTIVE and attached to {name}, is newer than its ACTIVE "
                    f"certificate {active[0]}: a step 1 stopped on another controller (its key is there); run the "
                    "fleet there to finish it, or remove that certificate (iotfleet.provisioning.certificate "
                    "state=absent)"
                )
                return
            if device.rotation_csr_public is not None and local and local.cert_public == device.rotation_csr_public:
                plan.error = (
                    f"rotation_csr_path: the CSR of {name} has the key of its current certificate {active[0]}; "
                    "a rotation needs a CSR from a new key"
                )
                return
            rot.stage, rot.reason = ISSUE, "; ".join(reasons)
    if rot.stage == ISSUE and device.certificate == "csr" and device.rotation_csr is None:
        rot.key_spec = rule.new_key_spec()
    if rot.stage == ISSUE and active:
        rot.old_id, rot.old_arn = active[0], certs[active[0]]["arn"]
    _apply_expiry_rule(spec, name, plan, facts, target, now)
    changing = rot.stage in (ISSUE, RETIRE, PROMOTE)
    if rot.stage:
        texts = rot.texts()
        if changing:
            plan.changes.extend(t for t in texts if t not in plan.changes)
        plan.before["rotation"] = _stage_before(rot, active)
        plan.after["rotation"] = texts[-1] if texts else None


def _stage_before(rot: RotationPlan, active: List[str]) -> str:
    if rot.stage == WAITING or rot.stage == RETIRE:
        return f"waiting for confirmation of {rot.new_id}"
    if rot.stage == PROMOTE:
        return "old certificate retired, new files in next/"
    return f"in use: {', '.join(active) or 'none'}"


def _apply_expiry_rule(
    spec: Any, name: str, plan: Any, facts: Optional[expiry.CertFacts], target: Optional[str], now: datetime.datetime
) -> None:
    """certificate_expiry: a warning, or a plan error for the device (a warning while it is being rotated)."""
    rule: expiry.ExpiryRule = spec.expiry
    if not rule.declared or facts is None or facts.not_after is None or target is None:
        return
    days = facts.days_left(now)
    date = expiry.iso(facts.not_after)
    rotating = plan.rotation is not None and plan.rotation.stage is not None
    if rule.fail_within_days is not None and days <= rule.fail_within_days and not rotating:
        plan.error = (
            f"certificate_expiry: certificate {target} of device {name} expires {date} ({days} days left), within "
            f"fail_within_days {rule.fail_within_days}; rotate it (rotation.expiring_within_days) or replace it"
        )
        return
    warn = rule.warn_within_days if rule.warn_within_days is not None else -1
    fail = rule.fail_within_days if rule.fail_within_days is not None else -1
    if days <= max(warn, fail):
        state = f", rotation: {plan.rotation.texts()[0]}" if rotating and plan.rotation.texts() else ""
        plan.warnings.append(f"{name} ({target}, expires {date}, {days} days left{state})")
