# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate rotation of one device: its stage, read from AWS alone, and the one safe step a run takes.

The semantics (shared with the fleet module and docs/certificate_rotation.md):

* AWS is the source of truth. A thing with one ACTIVE certificate is at rest; with two or more ACTIVE
  certificates attached it is rotating, and the newest by creation date is the new one. Files on disk are outputs
  for delivery, never state, so a run on a fresh controller continues where the last one stopped.
* Step 1 (at rest, and a trigger holds: the validity ends within the expiry window, a request, or a key below the
  declared minimum): a new certificate beside the old one, same policies, attached to the same thing.
* Step 2 (rotating, and the new certificate's id is confirmed): the old certificates are retired. The AWS registry
  does not record which certificate a device connected with, so the confirmation is explicit: the NEW certificate's
  id, never a device name (a name left in git would retire the old certificate of the next rotation the moment it
  starts), never a guess from time elapsed or a recent connection (a device may still connect with the old one).

Nothing here calls AWS: the role reads the thing's certificates with certificate_info and hands them in.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.confirmations import (
    check_certificate_ids,
    parse_confirmations,
)

# What a run does; "blocked" refuses to guess (the role fails with the plan's message).
STEP_1 = "step1"
STEP_2 = "step2"
WAIT = "wait"
NOTHING = "none"
BLOCKED = "blocked"


def confirmed_for(entries: Any, thing: str, field: str = "confirmation_file") -> List[str]:
    """The certificate ids confirmed for ``thing``: a list of ids as a task gives them, or a confirmation file's
    text (confirmations.py: from a device mapping only ``thing``'s entry counts)."""
    if isinstance(entries, (list, tuple)):
        return sorted(check_certificate_ids(field, entries))
    return sorted(parse_confirmations(entries, field).for_device(thing))


def _stamp(certificate: Mapping[str, Any]) -> str:
    return str(certificate.get("creation_date") or "")


def _triggers(current: Mapping[str, Any], policy: Mapping[str, Any]) -> List[str]:
    reasons = []
    if policy.get("requested"):
        reasons.append("rotation requested")
    if current["certificate_id"] in {str(i).lower() for i in policy.get("replace_ids") or ()}:
        reasons.append(f"certificate {current['certificate_id']} is listed for replacement")
    window = policy.get("expiry_days")
    days = current.get("days_left")
    if window is not None and days is not None and days <= window:
        reasons.append(f"validity ends {current['validity']['not_after']} ({days} days left, window {window} days)")
    key = current.get("public_key") or {}
    minimum = {"RSA": policy.get("minimum_rsa_size"), "EC": policy.get("minimum_ec_size")}.get(key.get("type"))
    if minimum and key.get("size") is not None and key["size"] < minimum:
        reasons.append(f"{key['type']} key of {key['size']} bits, below the declared minimum of {minimum}")
    return reasons


def rotation_plan(
    certificates: Sequence[Mapping[str, Any]],
    thing: str,
    policy: Optional[Mapping[str, Any]] = None,
    confirmed: Iterable[str] = (),
) -> Dict[str, Any]:
    """The stage of ``thing``'s rotation and the step this run takes.

    ``certificates``: certificate_info's answer for the thing (status, creation_date, validity, days_left,
    public_key). ``policy``: ``expiry_days``, ``requested``, ``replace_ids`` (ids of certificates to replace: unlike
    ``requested``, safe to leave in git, since a retired certificate is never current again), ``minimum_rsa_size``,
    ``minimum_ec_size``.
    ``confirmed``: certificate ids confirmed as in use by the device.
    """
    policy = policy or {}
    confirmed_ids = sorted({c.lower() for c in confirmed})
    active = sorted(
        (c for c in certificates if c.get("status") == "ACTIVE"), key=lambda c: (_stamp(c), c["certificate_id"])
    )
    plan: Dict[str, Any] = {
        "thing": thing,
        "active": [c["certificate_id"] for c in active],
        "current": None,
        "new": None,
        "old": [],
        "reasons": [],
        "confirmed_ids": confirmed_ids,
        "unmatched_confirmations": [],
        "validity_unknown": [c["certificate_id"] for c in active if c.get("validity") is None],
    }
    if not active:
        return dict(
            plan,
            stage="no_certificate",
            action=BLOCKED,
            message=f"thing {thing} has no ACTIVE certificate attached: there is nothing to rotate (provision the "
            "device first, for example with the single_thing role)",
        )
    if len(active) == 1:
        current = active[0]
        plan["current"] = current["certificate_id"]
        plan["unmatched_confirmations"] = [c for c in confirmed_ids if c != current["certificate_id"]]
        # A step 2 stopped after UpdateCertificate INACTIVE leaves the old certificate attached: with the current
        # one confirmed, the next run finishes it (detach, delete), as the fleet does; unconfirmed, it stays.
        stopped = [
            c["certificate_id"]
            for c in certificates
            if c.get("status") == "INACTIVE" and _stamp(c) < _stamp(current) and c["certificate_id"] != plan["current"]
        ]
        if stopped and current["certificate_id"] in confirmed_ids:
            return dict(
                plan,
                stage="rotating",
                action=STEP_2,
                new=current["certificate_id"],
                old=sorted(stopped),
                message=f"step 2 (finishing a stopped run): {current['certificate_id']} is confirmed in use by "
                f"{thing}; retiring the INACTIVE {', '.join(sorted(stopped))} still attached (detached, deleted)",
            )
        reasons = _triggers(current, policy)
        plan["reasons"] = reasons
        if reasons:
            return dict(
                plan,
                stage="at_rest",
                action=STEP_1,
                message=f"step 1: a new certificate for {thing} beside {current['certificate_id']} "
                f"({'; '.join(reasons)}); the current certificate is left untouched",
            )
        unknown = (
            " (its validity could not be read, so the expiry window was not checked)"
            if plan["validity_unknown"]
            else ""
        )
        return dict(
            plan,
            stage="at_rest",
            action=NOTHING,
            message=f"nothing to do: {thing} uses {current['certificate_id']} and no rotation trigger holds{unknown}",
        )
    newest = active[-1]
    if _stamp(active[-2]) == _stamp(newest):
        return dict(
            plan,
            stage="rotating",
            action=BLOCKED,
            message=f"thing {thing} has ACTIVE certificates created at the same moment "
            f"({active[-2]['certificate_id']}, {newest['certificate_id']}): which one is new cannot be told from "
            "AWS, so nothing is retired; retire the one the device does not use with the certificate module",
        )
    old = [c["certificate_id"] for c in active[:-1]]
    plan.update(new=newest["certificate_id"], old=old)
    plan["unmatched_confirmations"] = [c for c in confirmed_ids if c != newest["certificate_id"]]
    if newest["certificate_id"] in confirmed_ids:
        return dict(
            plan,
            stage="rotating",
            action=STEP_2,
            message=f"step 2: {newest['certificate_id']} is confirmed in use by {thing}; retiring {', '.join(old)} "
            "(INACTIVE, detached from the thing and its policies, deleted)",
        )
    return dict(
        plan,
        stage="rotating",
        action=WAIT,
        message=f"waiting: {thing} rotates from {', '.join(old)} to {newest['certificate_id']}; nothing is retired "
        f"until {newest['certificate_id']} is confirmed (certificate_rotation_confirmed_ids or the confirmation file)",
    )
