# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the remote state: ``read_fleet_state(call, spec) -> Snapshot`` from paged list calls."""

from __future__ import annotations

import datetime
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import expiry, rotation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.local import (
    LocalDevice,
    read_local_device,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    PAGE_SIZE,
    Call,
    FleetSpec,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_progress import Progress
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import DEFAULT_TPS

# ---------------------------------------------------------------------------
# Reading the remote state
# ---------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What exists: enough for the planner to decide every step without another call."""

    groups: Dict[str, Optional[Set[str]]] = field(default_factory=dict)  # group -> member names (None: no group)
    things: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # name -> thing_type, attributes, version
    principals: Dict[str, List[str]] = field(default_factory=dict)  # thing -> principal ARNs (where read)
    certificates: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # id -> arn, status, created
    policy_targets: Dict[str, Optional[Set[str]]] = field(default_factory=dict)  # policy -> target ARNs
    # Thing types a device is to get (created or changed things only) -> {"deprecated": bool} (None: no type).
    thing_types: Dict[str, Optional[Dict[str, Any]]] = field(default_factory=dict)
    local: Dict[str, LocalDevice] = field(default_factory=dict)
    recovered: Dict[str, Dict[str, str]] = field(default_factory=dict)  # name -> {id, pem} found by public key
    # Certificate id -> expiry.CertFacts (dates, key): from the device files, certificate_pem, DescribeCertificate.
    facts: Dict[str, Any] = field(default_factory=dict)
    # Billing groups (billing.py): named group -> members (None: no such group); device -> its group ("" none).
    billing_groups: Dict[str, Optional[Set[str]]] = field(default_factory=dict)
    billing_of: Dict[str, str] = field(default_factory=dict)


def cert_id_of_arn(arn: str) -> Optional[str]:
    return iot_access.certificate_id_of_arn(arn)


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def read_group_members(call: Call, group: str) -> Optional[Set[str]]:
    things = iot_access.pages_unless_gone(
        call, "list_things_in_thing_group", "things", thingGroupName=group, maxResults=PAGE_SIZE
    )
    return None if things is None else set(things)


def read_policy_targets(call: Call, policy: str) -> Optional[Set[str]]:
    targets = iot_access.pages_unless_gone(
        call, "list_targets_for_policy", "targets", policyName=policy, pageSize=PAGE_SIZE
    )
    return None if targets is None else set(targets)


def read_thing_type(call: Call, name: str) -> Optional[Dict[str, Any]]:
    answer = iot_access.unless_gone(call, "describe_thing_type", thingTypeName=name)
    if answer is None:
        return None
    return {"deprecated": bool((answer.get("thingTypeMetadata") or {}).get("deprecated"))}


def types_to_check(spec: FleetSpec, things: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """The thing types a device would get by this run: only those are read (AWS refuses a missing or
    deprecated one at CreateThing/UpdateThing; a thing that already has its type needs no read)."""
    wanted = set()
    for device in spec.devices:
        current = things.get(device.name)
        if device.thing_type and (current is None or current["thing_type"] != device.thing_type):
            wanted.add(device.thing_type)
    return sorted(wanted)


def read_certificates(call: Call) -> Dict[str, Dict[str, Any]]:
    certs = call.pages("list_certificates", "certificates", pageSize=PAGE_SIZE)
    return {
        c["certificateId"]: {
            "arn": c["certificateArn"],
            "status": c.get("status"),
            "created": _timestamp(c.get("creationDate")),
        }
        for c in certs
    }


def _thing_view(thing: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields the planner compares, from a ListThings entry or a DescribeThing answer (same names)."""
    view = iot_access.thing_view(thing)
    return {key: view[key] for key in ("thing_type", "attributes", "version", "arn")}


def listing_page_budget(devices: int, rates: Optional[Mapping[str, float]] = None) -> int:
    """How many ListThings pages cost no more quota-time than one DescribeThing per device.

    A page (250 things) takes 1/10 s of ListThings quota, a DescribeThing 1/350 s of its own: 35 describes
    cost one page. Paging the account up to this budget and describing the devices not seen by then is
    never more than twice the cheaper of the two reads (all pages or all describes), whatever the size of
    the account, which is unknown until it has been read.
    """
    rates = rates or DEFAULT_TPS
    describes_per_page = rates["DescribeThing"] / rates["ListThings"]
    return max(1, math.ceil(devices / describes_per_page))


def read_things(
    call: Call, names: Set[str], concurrency: int, rates: Optional[Mapping[str, float]] = None
) -> Dict[str, Dict[str, Any]]:
    """The things among ``names`` that exist: ListThings pages within the budget, then DescribeThing for the rest."""
    things: Dict[str, Dict[str, Any]] = {}
    params: Dict[str, Any] = {"maxResults": PAGE_SIZE}
    complete = False
    for _page in range(listing_page_budget(len(names), rates)):
        page = call("list_things", **params)
        for thing in page.get("things", []):
            if thing["thingName"] in names:
                things[thing["thingName"]] = _thing_view(thing)
        if not page.get("nextToken"):
            complete = True
            break
        params["nextToken"] = page["nextToken"]
    if complete:
        return things

    def describe(name: str) -> Optional[Dict[str, Any]]:
        answer = iot_access.unless_gone(call, "describe_thing", thingName=name)
        return None if answer is None else _thing_view(answer)

    unseen = sorted(names - set(things))
    for name, view in zip(unseen, _parallel(concurrency, describe, unseen)):
        if view is not None:
            things[name] = view
    return things


def _parallel(concurrency: int, func: Callable[[Any], Any], items: List[Any]) -> List[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items)))) as pool:
        return list(pool.map(func, items))


def read_fleet_state(call: Call, spec: FleetSpec, progress: Optional[Progress] = None) -> Snapshot:
    """The state the planner needs, from as few calls as the input allows.

    Listings of different APIs draw on different quotas, so they overlap: the group and thing listings
    together, then the per-thing principal listings (the long part) beside the certificate and policy
    listings.
    """
    snap = Snapshot()
    for device in spec.devices:
        snap.local[device.name] = read_local_device(spec.output_dir, device.name)
    needs_certs = any(d.certificate != "none" for d in spec.devices)
    markers = any(local.records for local in snap.local.values())
    wanted = {d.name for d in spec.devices}
    with ThreadPoolExecutor(max_workers=2) as side:
        groups = {group: side.submit(read_group_members, call, group) for group in spec.named_groups}
        # Only pruning needs the fleet group's members before the things are read (they are read too).
        pruned = sorted((groups[spec.fleet_group].result() or set()) - wanted) if spec.prune else []
        rates = {**DEFAULT_TPS, **spec.api_rates}
        snap.things = read_things(call, wanted | set(pruned), spec.concurrency, rates)
        snap.groups = {group: future.result() for group, future in groups.items()}
        types = {name: side.submit(read_thing_type, call, name) for name in types_to_check(spec, snap.things)}
        certificates = side.submit(read_certificates, call) if (needs_certs or pruned or markers) else None
        targets = {policy: side.submit(read_policy_targets, call, policy) for policy in spec.named_policies}
        need_principals = [d.name for d in spec.devices if d.certificate != "none" and d.name in snap.things] + [
            name for name in pruned if name in snap.things
        ]
        if progress:
            progress.start_phase("read", len(need_principals))

        def principals_of(name: str) -> List[str]:
            principals = call.pages("list_thing_principals", "principals", thingName=name, maxResults=PAGE_SIZE)
            if progress:
                progress.advance()
            return principals

        results = _parallel(spec.concurrency, principals_of, need_principals)
        snap.principals = dict(zip(need_principals, results))
        if certificates is not None:
            snap.certificates = certificates.result()
        snap.policy_targets = {policy: future.result() for policy, future in targets.items()}
        snap.thing_types = {name: future.result() for name, future in types.items()}
    # A device with its key on disk but no certificate file: look for its certificate by public key
    # among the certificates attached to its thing and, when a call of an earlier run was left unfinished
    # (killed between writing the key and the certificate), among the INACTIVE certificates made within that
    # call's window (DescribeCertificate only for those).
    lookups = []
    file_ids = {local.cert_id for local in snap.local.values() if local.cert_id}
    now = time.time()
    for device in spec.devices:
        local = snap.local[device.name]
        if device.certificate in ("aws_keys", "csr") and local.key_public and not local.cert_id:
            for arn in snap.principals.get(device.name, []):
                if cert_id_of_arn(arn):
                    lookups.append((device.name, cert_id_of_arn(arn)))
            windows = [r.window(now) for r in local.records]
            # A CSR certificate is made ACTIVE; either way only the device's own public key can match it.
            statuses = ("INACTIVE", "ACTIVE") if device.certificate == "csr" else ("INACTIVE",)
            for cert_id, info in sorted(snap.certificates.items()):
                if (
                    info["status"] in statuses
                    and cert_id not in file_ids
                    and any(low <= info["created"] <= high for low, high in windows)
                ):
                    lookups.append((device.name, cert_id))

    def describe(item: Tuple[str, str]) -> Tuple[str, str, Optional[str]]:
        name, cert_id = item
        description = iot_access.describe_certificate(call, cert_id)
        return name, cert_id, None if description is None else description.get("certificatePem")

    for name, cert_id, pem in _parallel(spec.concurrency, describe, lookups):
        if pem and name not in snap.recovered:
            try:
                if crypto.certificate_public_key(pem) == snap.local[name].key_public:
                    snap.recovered[name] = {"id": cert_id, "pem": pem}
            except crypto.CryptoError:
                continue
    return snap


def read_certificate_facts(call: Call, spec: FleetSpec, snap: Snapshot) -> int:
    """Each device's certificate dates and key: from its files and certificate_pem (no call); DescribeCertificate
    only when a rule needs them (``spec.needs_validity``), for the oldest ACTIVE certificate attached to a thing
    that no file describes. Returns the number of DescribeCertificate calls."""
    for device in spec.devices:
        local = snap.local.get(device.name)
        if local is not None:
            snap.facts.update(local.facts)
        if device.certificate_pem and device.certificate_id:
            facts = expiry.facts_of_pem(device.certificate_pem, "file")
            if facts is not None:
                snap.facts[device.certificate_id] = facts
    if not spec.needs_validity:
        return 0
    wanted = []
    for device in spec.devices:
        if device.certificate == "none":
            continue
        active = rotation.active_attached(snap, device.name)
        if active and active[0] not in snap.facts:
            wanted.append(active[0])
    snap.facts.update(expiry.describe_many(call, sorted(set(wanted)), spec.concurrency))
    return len(set(wanted))
