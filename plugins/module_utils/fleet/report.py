# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report files: a CSV/JSON report of the run, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Mapping

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.plan import (
    FleetPlan,
    expiry_result,
    rotation_result,
    rotation_text,
    write_json,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.run import (
    RunOutcome,
)

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The CSV columns, one row per device.
REPORT_FIELDS = (
    "name",
    "outcome",
    "changes",
    "certificate_id",
    "key",
    "not_after",
    "days_left",
    "validity",
    "rotation",
    "failed_step",
    "error",
)


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with a single quote (shown as text)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_report(path: str, summary: Mapping[str, Any], run: RunOutcome, plan: FleetPlan) -> None:
    """The run report as JSON at ``path`` and a CSV (one row per device) beside it."""
    errors = {f["name"]: f for f in run.failures}
    rows = []
    for d in plan.devices:
        failure = errors.get(d.name, {})
        rows.append(
            {
                "name": d.name,
                "outcome": run.outcomes.get(d.name, "not run"),
                "changes": "; ".join(d.changes),
                "certificate_id": d.certificate_id or "",
                "key": f"replaced (was {d.key})" if d.replace_certificates else d.key or "",
                "not_after": (d.expiry or {}).get("not_after") or "",
                "days_left": "" if (d.expiry or {}).get("days_left") is None else d.expiry["days_left"],
                "validity": (d.expiry or {}).get("validity") or "",
                "rotation": run.rotation.get(d.name) or rotation_text(d) or "",
                "failed_step": failure.get("step", ""),
                "error": failure.get("error", ""),
            }
        )
    write_json(
        path,
        {
            "summary": dict(summary),
            "failures": run.failures,
            "orphaned_certificates_deleted": run.orphans_deleted,
            "orphaned_certificates_kept": run.orphans_kept,
            "expiry": expiry_result(plan),
            "expiry_warnings": plan.warnings,  # certificate_expiry: each device, certificate, date, days left
            "rotation": rotation_result(plan)["counts"],
            "devices": rows,
        },
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(REPORT_FIELDS))
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    crypto.write_file_atomic(os.path.splitext(path)[0] + ".csv", out.getvalue().encode(), 0o644)
