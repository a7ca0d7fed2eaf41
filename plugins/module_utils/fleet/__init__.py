# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet engine: the desired state of many devices, planned from list calls and applied concurrently.

Stages, each a small function:

* ``load_device_rows`` / ``validate_fleet(params) -> FleetSpec``: the input (a list or a CSV/YAML/JSON(L)
  file), defaults merged under every device, every limit checked before any client exists.
* ``read_fleet_state(call, spec) -> Snapshot``: the remote state from paged list calls
  (ListThingsInThingGroup per named group, ListThings within a page budget and DescribeThing for the
  devices not seen by then, ListCertificates, ListTargetsForPolicy per named policy) plus
  ListThingPrincipals only for existing things that should carry a certificate, and the local
  key/certificate files.
* ``plan_fleet(spec, snapshot) -> FleetPlan``: a pure function: per device the steps that make it match.
* ``apply_plan(call, spec, plan, ...)``: a thread pool over devices; each device's steps run in
  dependency order (thing, groups, certificate, attach, policies, activate).

Nothing is lost: a certificate is created INACTIVE; the private key and certificate are written (files
prepared before the call, committed right after it) before the next step; it is attached, given its
policies, and activated last. Before every attempt of a certificate-creating call the device's marker file
records it (``CallRecord``: source, time, attempts); a call whose every attempt was answered leaves no record.
A record left behind (an answer lost to a dropped connection or a 5xx, a killed process) lets the orphan sweep
of the same or the next run delete what it can prove this fleet made, and nothing else: INACTIVE, attached to
nothing, unknown to every device file, created within the record's own window, and either returned to this
run, or carrying the public key of one of this fleet's device keys, or (AWS-made keys, whose certificate
cannot be told by its key) no more of them in the windows than the attempts whose answers were lost.

The package, by stage: ``rows`` (the devices file), ``spec`` (input rules, ``FleetSpec``), ``local`` (files in
output_dir, call records), ``state`` (reads), ``plan`` (pure), ``apply`` (one device's steps, through
``iot_access``), ``run`` (the pool, the orphan sweep, the summary), ``report`` and ``engine`` (``run_fleet``).
Issue 15 and 16: ``expiry`` (certificate dates and keys, ``certificate_expiry``), ``rotation`` (the rule, the
confirmations, each device's stage, planned from AWS) and ``rotation_apply`` (step 1, step 2, the files moved in
place), ``billing`` (a device's billing group).
Import from the package: the names below are its interface.
"""

from __future__ import annotations

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.apply import (
    DeviceFailure,
    _after_attempt,
    _before_attempt,
    _create_certificate,
    _device_records,
    apply_device,
    delete_certificate,
    prune_device,
    retire_certificate,
    watch_certificate_calls,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.engine import (
    run_fleet,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.local import (
    CallRecord,
    LocalDevice,
    clear_marker,
    device_paths,
    read_local_device,
    write_records,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.plan import (
    DevicePlan,
    FleetPlan,
    full_plan_document,
    plan_device,
    plan_diff,
    plan_fleet,
    plan_prune,
    plan_result,
    summary_line,
    thing_type_error,
    write_json,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.report import (
    FORMULA_STARTS,
    csv_cell,
    write_report,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.rows import (
    csv_rows,
    json_rows,
    load_device_rows,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.run import (
    RunOutcome,
    SweepResult,
    apply_plan,
    failure_warning,
    summary_result,
    sweep_orphans,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    ATTEMPT_SECONDS,
    CERT_FILE,
    CERTIFICATE_SOURCES,
    CREATE_OPERATIONS,
    DEVICE_KEYS,
    KEY_FILE,
    KEY_NOT_HERE,
    KEY_SPEC,
    MARKER_FILE,
    MARKER_SKEW_SECONDS,
    PAGE_SIZE,
    PLAN_LISTING_LIMIT,
    Call,
    DesiredDevice,
    FleetSpec,
    check_outside_collections,
    merge_defaults,
    parse_max_prune,
    prune_allowance,
    validate_device,
    validate_fleet,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.state import (
    Snapshot,
    cert_id_of_arn,
    listing_page_budget,
    read_certificates,
    read_fleet_state,
    read_group_members,
    read_policy_targets,
    read_thing_type,
    read_things,
    types_to_check,
)

# crypto and the private names: what the unit tests reach through the package, as before the split.
__all__ = [
    "ATTEMPT_SECONDS",
    "CERTIFICATE_SOURCES",
    "CERT_FILE",
    "CREATE_OPERATIONS",
    "DEVICE_KEYS",
    "FORMULA_STARTS",
    "KEY_FILE",
    "KEY_NOT_HERE",
    "KEY_SPEC",
    "MARKER_FILE",
    "MARKER_SKEW_SECONDS",
    "PAGE_SIZE",
    "PLAN_LISTING_LIMIT",
    "Call",
    "CallRecord",
    "DesiredDevice",
    "DeviceFailure",
    "DevicePlan",
    "FleetPlan",
    "FleetSpec",
    "LocalDevice",
    "RunOutcome",
    "Snapshot",
    "SweepResult",
    "_after_attempt",
    "_before_attempt",
    "_create_certificate",
    "_device_records",
    "apply_device",
    "apply_plan",
    "cert_id_of_arn",
    "check_outside_collections",
    "clear_marker",
    "crypto",
    "csv_cell",
    "csv_rows",
    "delete_certificate",
    "device_paths",
    "failure_warning",
    "full_plan_document",
    "json_rows",
    "listing_page_budget",
    "load_device_rows",
    "merge_defaults",
    "parse_max_prune",
    "plan_device",
    "plan_diff",
    "plan_fleet",
    "plan_prune",
    "plan_result",
    "prune_allowance",
    "prune_device",
    "read_certificates",
    "read_fleet_state",
    "read_group_members",
    "read_local_device",
    "read_policy_targets",
    "read_thing_type",
    "read_things",
    "retire_certificate",
    "run_fleet",
    "summary_line",
    "summary_result",
    "sweep_orphans",
    "thing_type_error",
    "types_to_check",
    "validate_device",
    "validate_fleet",
    "watch_certificate_calls",
    "write_json",
    "write_records",
    "write_report",
]
