"""The fleet's pacing table and the local endpoint's quota table are two readings of AWS's published defaults.

They are kept as separate copies on purpose (the endpoint imports nothing from plugins/, so each checks the
other); this test says where they disagree for an operation the fleet engine calls (issue 11).
"""

from __future__ import annotations

import ast
import os

from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet_rate

TRAFFIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "local_iot", "traffic.py")


def endpoint_constants() -> dict:
    """AWS_DEFAULT_TPS and UNLISTED_TPS as written in traffic.py, read without importing the endpoint."""
    with open(TRAFFIC, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = {}
    for node in tree.body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id in ("AWS_DEFAULT_TPS", "UNLISTED_TPS"):
            found[target.id] = ast.literal_eval(node.value)
    return found


def test_every_operation_the_engine_calls_has_the_same_rate_in_both_tables():
    endpoint = endpoint_constants()
    assert set(endpoint) == {"AWS_DEFAULT_TPS", "UNLISTED_TPS"}
    assert endpoint["UNLISTED_TPS"] == fleet_rate.UNLISTED_TPS
    differ = {
        op: (
            fleet_rate.DEFAULT_TPS.get(op, fleet_rate.UNLISTED_TPS),
            endpoint["AWS_DEFAULT_TPS"].get(op, endpoint["UNLISTED_TPS"]),
        )
        for op in sorted(fleet_rate.ENGINE_OPERATIONS)
        if fleet_rate.DEFAULT_TPS.get(op, fleet_rate.UNLISTED_TPS)
        != endpoint["AWS_DEFAULT_TPS"].get(op, endpoint["UNLISTED_TPS"])
    }
    assert differ == {}, "fleet_rate.DEFAULT_TPS vs tests/local_iot/traffic.py AWS_DEFAULT_TPS (fleet, endpoint)"
