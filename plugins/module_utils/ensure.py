# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ensure contract: what every ``ensure_present`` / ``ensure_absent`` of a resource family returns.

A family's ``validate_*`` turns the module options into its desired state (a dataclass) before any call; its
``ensure_*`` functions take that, read, plan, and (unless in check mode) change, and return one ``Ensured``:

- ``changed``: whether the run changed something (or, in check mode, would);
- ``before`` / ``after``: the resource's view before and after (in check mode, the prediction; None where it
  does not exist);
- ``extra``: what the module returns beside the resource, by its return name (``detached_targets`` of a policy
  removal, a registration task's ``task_id``/``devices``/``files``...); empty for most.

Check mode, diff and the real change come from the same path, so a module's ``main()`` only picks the function,
passes the desired state and turns the ``Ensured`` into its result (``result``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional


@dataclass(frozen=True)
class Ensured:
    """The outcome of an ensure_* function (see the module docstring)."""

    changed: bool
    before: Any = None
    after: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def result(
    ensured: Ensured, diff_mode: bool, view: Optional[Callable[[Any], Any]] = None, **fields: Any
) -> dict[str, Any]:
    """A module's result: changed, the extras, the given fields, and the diff (of ``view`` of each side) when asked."""
    out: dict[str, Any] = dict(changed=ensured.changed, **ensured.extra)
    out.update(fields)
    if diff_mode:
        before, after = (view(ensured.before), view(ensured.after)) if view else (ensured.before, ensured.after)
        out["diff"] = {"before": before or {}, "after": after or {}}
    return out
