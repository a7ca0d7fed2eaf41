# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run: the orphan sweep, ``apply_plan`` over a thread pool, the summary."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.apply import (
    DeviceFailure,
    _remove_stale_temporaries,
    apply_device,
    delete_certificate,
    prune_device,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.local import (
    CallRecord,
    clear_marker,
    device_paths,
    read_local_device,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.plan import (
    DevicePlan,
    FleetPlan,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.rotation_apply import (
    apply_rotation,
    stage_reached,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    PAGE_SIZE,
    Call,
    FleetSpec,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.state import (
    read_certificates,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_progress import Progress


@dataclass
class SweepResult:
    deleted: List[str] = field(default_factory=list)
    # INACTIVE, unattached, in a window, but not provably this fleet's: left alone and reported.
    kept: List[str] = field(default_factory=list)


def sweep_orphans(
    call: Call,
    records: List[CallRecord],
    known_ids: Set[str],
    device_keys: Mapping[bytes, str],
    sleep: Callable[[float], None] = time.sleep,
    now: Optional[float] = None,
) -> SweepResult:
    """Delete the certificates this fleet's unfinished calls (``records``) provably left behind.

    A candidate is INACTIVE, or ACTIVE within the window of a CSR call (which makes its certificate ACTIVE),
    unknown to every device file (``known_ids``) and created within the window of a record. It is deleted (an
    ACTIVE one deactivated first), once found attached to no thing, when this fleet can prove it made it:
    its id was returned to a call whose files could not be written, or
    its public key is one of this fleet's device keys (``device_keys``: SPKI DER -> device). A certificate that
    a call with AWS-made keys may have left (its answer lost) cannot be told from one another tool or fleet made
    in the same window, INACTIVE and not yet attached: it is kept and reported, never deleted.
    """
    result = SweepResult()
    if not records:
        return result
    now = time.time() if now is None else now
    certificates = read_certificates(call)
    windows = [(r, *r.window(now)) for r in records]
    made = {cert_id for r in records for cert_id in r.made}
    candidates = {}
    for cert_id, info in certificates.items():
        if info["status"] not in ("INACTIVE", "ACTIVE") or cert_id in known_ids:
            continue
        inside = [r for r, low, high in windows if low <= info["created"] <= high]
        if info["status"] == "ACTIVE":
            # Only a CSR call makes an ACTIVE certificate, and only its device key can prove it this fleet's.
            inside = [r for r in inside if r.source == "csr"]
            if not inside:
                continue
        elif not inside and cert_id not in made:
            continue
        candidates[cert_id] = (info, inside)
    proven: List[str] = []
    # Public keys: only needed when a record's device key can tell its certificates.
    keyed = any(r.source != "aws_keys" for r in records) and device_keys
    unproven_aws = []
    for cert_id, (info, inside) in sorted(candidates.items(), key=lambda item: item[1][0]["created"]):
        if cert_id in made and info["status"] == "INACTIVE":
            proven.append(cert_id)
            continue
        if keyed:
            description = iot_access.unless_gone(call, "describe_certificate", certificateId=cert_id)
            pem = ((description or {}).get("certificateDescription") or {}).get("certificatePem")
            try:
                public = crypto.certificate_public_key(pem) if pem else None
            except crypto.CryptoError:
                public = None
            if public is not None and public in device_keys:
                proven.append(cert_id)
                continue
        if any(r.source == "aws_keys" and r.possibly_lost() for r in inside):
            unproven_aws.append(cert_id)  # this fleet lost an answer in its window: maybe ours, cannot tell

    def unattached(cert_id: str) -> bool:
        arn = candidates[cert_id][0]["arn"]
        return not call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE)

    result.kept.extend(cert_id for cert_id in unproven_aws if unattached(cert_id))
    orphans = [cert_id for cert_id in proven if unattached(cert_id)]
    for cert_id in orphans:
        info = candidates[cert_id][0]
        try:
            if info["status"] == "ACTIVE":
                # A CSR certificate carrying this fleet's device key, attached to nothing: it was never in use.
                call("update_certificate", certificateId=cert_id, newStatus="INACTIVE")
            delete_certificate(call, cert_id, info["arn"], sleep)
        except ClientError as e:
            if not is_error(e, "CertificateStateException", "DeleteConflictException"):
                raise
            result.kept.append(cert_id)  # activated or attached meanwhile: in use, left alone
            continue
        result.deleted.append(cert_id)
    result.kept.sort()
    return result


@dataclass
class RunOutcome:
    outcomes: Dict[str, str] = field(default_factory=dict)  # name -> created|updated|unchanged|pruned|failed
    failures: List[Dict[str, str]] = field(default_factory=list)
    orphans_deleted: List[str] = field(default_factory=list)
    orphans_kept: List[str] = field(default_factory=list)
    # name -> the rotation stage this run reached ("rotate: ..." texts; see rotation.py).
    rotation: Dict[str, str] = field(default_factory=dict)


def _error_text(error: BaseException) -> str:
    if isinstance(error, ClientError):
        err = getattr(error, "response", {}).get("Error", {})
        return f"{getattr(error, 'operation_name', 'AWS call')} failed with {err.get('Code')}: {err.get('Message')}"
    return str(error) or type(error).__name__


def apply_plan(
    call: Call,
    spec: FleetSpec,
    plan: FleetPlan,
    progress: Optional[Progress] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Apply every device's plan on a thread pool; failures are collected, never stop the others."""
    run = RunOutcome()
    for group in plan.groups_to_create:
        iot_access.ignoring(call, ("ResourceAlreadyExistsException",), "create_thing_group", thingGroupName=group)
    desired = {d.name: d for d in spec.devices}

    def work(device_plan: DevicePlan) -> Tuple[str, str, Optional[Dict[str, str]]]:
        name = device_plan.name
        if device_plan.action == "failed":
            return name, "failed", {"name": name, "step": "plan", "error": device_plan.error or "failed"}
        if device_plan.action == "unchanged":
            return name, "unchanged", None
        try:
            if device_plan.action == "prune":
                prune_device(call, spec, device_plan, sleep)
                return name, "pruned", None
            apply_device(call, spec, desired[name], device_plan)
            apply_rotation(call, spec, desired[name], device_plan, sleep)
        except DeviceFailure as e:
            return name, "failed", {"name": name, "step": e.step, "error": _error_text(e.error)}
        finally:
            reached = stage_reached(device_plan)
            if reached:
                run.rotation[name] = reached
        return name, "created" if device_plan.action == "create" else "updated", None

    if progress:
        progress.start_phase("apply", len(plan.devices))
    order = {d.name: index for index, d in enumerate(plan.devices)}
    with ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
        # As each device finishes (not in input order), so that progress is current.
        for future in as_completed([pool.submit(work, d) for d in plan.devices]):
            name, outcome, failure = future.result()
            run.outcomes[name] = outcome
            if failure:
                run.failures.append(failure)
            if progress:
                progress.advance(outcome)
    run.failures.sort(key=lambda f: order[f["name"]])
    # Orphan sweep: certificates of calls whose answer was lost (now or in an interrupted earlier run), read
    # from the marker files again (this run's own records included).
    records: List[CallRecord] = []
    known: Set[str] = set()
    keys: Dict[bytes, str] = {}
    if spec.output_dir:
        for device in spec.devices:
            local = read_local_device(spec.output_dir, device.name)
            records.extend(local.records)
            # Rotation: the main files and next/ both name certificates and keys of this fleet.
            known.update(i for i in (local.cert_id, local.main_cert_id, local.next_cert_id) if i)
            for public in (local.key_public, local.main_key_public, local.next_key_public, device.rotation_csr_public):
                if public:
                    keys[public] = device.name
    known.update(d.certificate_id for d in plan.devices if d.certificate_id)
    if records:
        swept = sweep_orphans(call, records, known, keys, sleep)
        run.orphans_deleted, run.orphans_kept = swept.deleted, swept.kept
        for name in sorted({r.device for r in records}):
            clear_marker(spec.output_dir, name)
            # The temporary files of the interrupted call (its device may have needed no new call this time).
            directory = device_paths(spec.output_dir, name)["dir"]
            if os.path.isdir(directory):
                _remove_stale_temporaries(directory)
    return run


def failure_warning(failures: List[Mapping[str, str]], total: int, max_failures: int) -> Optional[str]:
    """The warning of a run whose failed devices are within ``max_failures`` (so the task does not fail)."""
    if not failures or len(failures) > max_failures:
        return None
    shown = "; ".join(f"{f['name']} ({f['step']}): {f['error']}" for f in failures[:5])
    more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
    return (
        f"{len(failures)} of {total} device(s) failed (within max_failures {max_failures}, so the task did not "
        f"fail): {shown}{more}"
    )


def summary_result(run: RunOutcome, call_summary: Mapping[str, Any], duration: float) -> Dict[str, Any]:
    counts = {"created": 0, "updated": 0, "unchanged": 0, "pruned": 0, "failed": 0}
    for outcome in run.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return {
        **counts,
        "orphaned_certificates_deleted": len(run.orphans_deleted),
        "orphaned_certificates_kept": len(run.orphans_kept),
        **call_summary,
        "duration": round(duration, 3),
    }
