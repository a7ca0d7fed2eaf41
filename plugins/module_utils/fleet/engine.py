# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``run_fleet``: read, plan and apply, one call."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.apply import (
    watch_certificate_calls,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.billing import read_billing
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.plan import (
    FleetPlan,
    full_plan_document,
    plan_fleet,
    write_json,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.run import (
    RunOutcome,
    apply_plan,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    FleetSpec,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.state import (
    read_certificate_facts,
    read_fleet_state,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_progress import Progress


def run_fleet(
    call: Any,
    spec: FleetSpec,
    check_mode: bool,
    clock: Callable[[], float] = time.monotonic,
    progress: Optional[Progress] = None,
) -> Tuple[FleetPlan, Optional[RunOutcome], float]:
    """Read, plan, and (unless check mode) apply. Returns the plan, the run (None in check mode), the duration."""
    started = clock()
    spec.check_mode = check_mode
    snap = read_fleet_state(call, spec, progress)
    # Dates and keys from the device files; DescribeCertificate only where a rule needs what no file has.
    read_certificate_facts(call, spec, snap)
    read_billing(call, spec, snap)
    plan = plan_fleet(spec, snap)
    if spec.plan_path:
        write_json(spec.plan_path, full_plan_document(plan))
    if check_mode:
        return plan, None, clock() - started
    if spec.output_dir:
        os.makedirs(spec.output_dir, mode=0o700, exist_ok=True)
    watch_certificate_calls(call)
    run = apply_plan(call, spec, plan, progress)
    return plan, run, clock() - started
