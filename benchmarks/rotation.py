"""Rotation benchmark: a fleet of N csr devices (200 by default) rotated with the fleet module, in the benchmark
setting (benchmarks' own endpoint, AWS's default TPS quotas, 50 ms per call).

    .venv/bin/python benchmarks/rotation.py [--devices 200]     # or: benchmarks/run.py --rotation 200

Runs, each an ansible-playbook of the fleet task: the cold fleet (set-up, not a rotation figure); step 1
(``rotation.devices`` with ``requested_on`` after the cold run: every device gets its new certificate); a run
waiting for confirmation (nothing to change); step 2 (``rotation.confirmed_file``: device -> new id, as a
presence-event rule would write it); a run after it (nothing to change). Per run: wall time, the module's own
time, calls per device, the quota bound of the minimal calls (measure.MINIMAL_CALLS rotate_issue/rotate_retire/
warm: the API whose calls / TPS is largest) and of the calls made, the load average.

Then the check: the endpoint's recorded effects (``/_local/calls`` -> ``effects``, each state change with its
time) are replayed from the state read before step 1: no device is ever without an ACTIVE certificate
(tests/integration/certificate_timeline.py). Written to benchmarks/rotation-results.json. Not a test.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import measure
import run as bench
from certificate_timeline import initial_state, replay

KINDS = {"step 1": "rotate_issue", "waiting": "warm", "step 2": "rotate_retire", "after": "warm"}


def _playbook(path: str, devices_file: str, output_dir: str, endpoint: str, rotation: dict | None) -> str:
    bench._fleet_playbook(path, devices_file, output_dir, endpoint, None)
    with open(path) as handle:
        plays = json.load(handle)
    if rotation:
        plays[0]["tasks"][0]["iotfleet.provisioning.fleet"]["rotation"] = rotation
    with open(path, "w") as handle:
        json.dump(plays, handle)
    return path


def _row(name: str, kind: str, devices: int, endpoint: Any, measured: dict, report: str, calls: list[str]) -> dict:
    quotas, default_tps = endpoint.quotas()
    made, made_api = measure.made_bound(calls, quotas, default_tps)
    minimal, minimal_api = measure.minimal_bound(kind, devices, quotas, default_tps)
    module_s = bench._read_summary(report).get("duration")
    mutating = [c for c in calls if not c.startswith(("List", "Describe", "Get"))]
    return {
        "run": name,
        "kind": kind,
        **measured,
        "module_s": module_s,
        "calls": len(calls),
        "calls_per_device": round(len(calls) / devices, 2),
        "mutating_calls_per_device": round(len(mutating) / devices, 2),
        "by_operation": dict(sorted(collections.Counter(calls).items())),
        "minimal_bound_s": round(minimal, 2),
        "minimal_limiting_api": minimal_api,
        "minimal_ratio": round(measured["wall_s"] / minimal, 3) if minimal else None,
        "module_minimal_ratio": round(module_s / minimal, 3) if minimal and module_s else None,
        "bound_made_s": round(made, 2),
        "made_limiting_api": made_api,
    }


def rotate(devices: int, latency_ms: float) -> dict:
    work = tempfile.mkdtemp(prefix="iotfleet-rotation-")
    collections_root = bench._collections_path()
    env = bench._environment(collections_root)
    devices_file = os.path.join(work, "devices.jsonl")
    bench._devices_file(devices_file, devices)
    out = os.path.join(work, "fleet-output")
    report = os.path.join(out, "report.json")
    rows = []
    with bench.Endpoint(work, 1.0, latency_ms) as endpoint:
        endpoint.reset()
        endpoint.make_policy()
        cold = _playbook(os.path.join(work, "cold.json"), devices_file, out, endpoint.url, None)
        measured = bench.run_playbook(cold, env)
        rows.append(_row("cold fleet (set-up)", "cold", devices, endpoint, measured, report, endpoint.calls()))
        names = [f"bench-{index:05d}" for index in range(devices)]
        time.sleep(0.01)  # creation dates have milliseconds
        rule = {"devices": names, "requested_on": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        state = initial_state(endpoint.client(), names)
        confirmed_path = os.path.join(work, "confirmed.json")
        runs = [
            ("step 1", rule),
            ("waiting", rule),
            ("step 2", {**rule, "confirmed_file": confirmed_path}),
            ("after", {**rule, "confirmed_file": confirmed_path}),
        ]
        bench._request(f"{endpoint.url}/_local/calls", "DELETE")
        effects: list[dict] = []
        for name, rotation in runs:
            if name == "step 2":
                # What a presence-event rule would have written: each device -> the id of its NEW certificate.
                confirmed = {}
                for device in names:
                    with open(os.path.join(out, device, "next", "certificate.pem.crt"), "rb") as handle:
                        confirmed[device] = _certificate_id(handle.read())
                with open(confirmed_path, "w") as handle:
                    json.dump(confirmed, handle)
            playbook = _playbook(os.path.join(work, f"{name}.json"), devices_file, out, endpoint.url, rotation)
            measured = bench.run_playbook(playbook, env)
            answer = bench._request(f"{endpoint.url}/_local/calls")
            effects += answer["effects"]
            calls = [c for c in answer["calls"] if c]
            rows.append(_row(name, KINDS[name], devices, endpoint, measured, report, calls))
            bench._request(f"{endpoint.url}/_local/calls", "DELETE")
            _print(rows[-1])
        timeline = replay(state, effects)
        remaining = initial_state(endpoint.client(), names)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(collections_root, ignore_errors=True)
    each_one = all(len(ids) == 1 for ids in remaining["attached"].values())
    return {
        "devices": devices,
        "latency_ms": latency_ms,
        "runs": rows,
        "mutating_runs_needed": sum(1 for r in rows[1:] if r["mutating_calls_per_device"] > 0),
        "timeline": {k: v for k, v in timeline.items() if k != "final_active"}
        | {"violations": timeline["violations"][:10]},
        "every_device_one_certificate_at_the_end": each_one,
        "certificates_left": len(remaining["status"]),
    }


def _certificate_id(pem: bytes) -> str:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _print(row: dict) -> None:
    print(
        f"  {row['run']}: wall {row['wall_s']} s, module {row['module_s']} s, {row['calls_per_device']} calls/device "
        f"({row['mutating_calls_per_device']} mutating), bound of the minimal calls {row['minimal_bound_s']} s "
        f"({row['minimal_limiting_api']}) ratio {row['minimal_ratio']} (module {row['module_minimal_ratio']}), "
        f"bound of the calls made {row['bound_made_s']} s ({row['made_limiting_api']}); load "
        f"{row['load_before']} -> {row['load_after']}",
        flush=True,
    )


def summary(result: dict) -> None:
    timeline = result["timeline"]
    print(
        f"== rotation of {result['devices']} devices: {result['mutating_runs_needed']} runs with changes (step 1, "
        f"step 2; the waiting run and the run after make no mutating call); {timeline['effects_applied']} state "
        f"changes replayed, least ACTIVE certificates of a device at any moment {timeline['least_active']}, "
        f"devices ever without one: {len(timeline['violations'])}; one certificate each at the end: "
        f"{result['every_device_one_certificate_at_the_end']} ({result['certificates_left']} certificates left)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "rotation-results.json"))
    args = parser.parse_args()
    print(f"rotation benchmark, {args.devices} devices; load at start {measure.load_average()}", flush=True)
    result = rotate(args.devices, args.latency_ms)
    summary(result)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
