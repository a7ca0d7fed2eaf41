"""Fleet benchmark: achieved wall time against the AWS quota lower bound.

    .venv/bin/python benchmarks/run.py [--devices 500] [--naive-devices 10] [--latency-ms 50]

Starts the local endpoint with AWS's default TPS quotas and a per-call latency, then runs:

  (a) cold:  the fleet module on a new fleet (thing, fleet group, CSR certificate, policy, attachments);
  (b) warm:  the same input again, nothing to change;
  (c) naive: the single_thing role looped once per device on a smaller fleet, scaled to the full size.

  (d) anchor: benchmarks/boto3_cold.py, a plain 10-thread boto3 script doing the cold work with no reads,
      no plan and no crash safety (5 calls per device), in the same run against the same quotas.

For each it prints wall time and two quota lower bounds, each the maximum over APIs of calls / TPS at the
quotas the endpoint enforced: "bound made" from the calls the run made (it cannot show a wasteful call), and
"bound min" from the minimal call set a correct tool needs for the same work (MINIMAL_CALLS below; it does).
Then their ratios, API calls per device and the peak memory of the ansible-playbook process tree, and the cold
fleet's wall time against the script's. Written to benchmarks/results.json. Not part of the tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "local_iot"))

import launcher

# The least-privilege device policy the roles ship: connect only as its own attached thing, topics under its name.
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": "arn:aws:iot:us-east-1:123456789012:topic/devices/${iot:Connection.Thing.ThingName}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/devices/${iot:Connection.Thing.ThingName}/*",
        },
    ],
}

# Runs a command and reports the peak resident memory of its process tree (ru_maxrss of the children, KiB).
MEASURE = """
import json, resource, subprocess, sys
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(json.dumps({"rc": code, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _delete(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30).close()


def _collections_path() -> str:
    root = tempfile.mkdtemp(prefix="iotfleet-bench-")
    os.makedirs(os.path.join(root, "ansible_collections", "iotfleet"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "iotfleet", "provisioning"))
    return root


def _environment(collections: str, endpoint: str) -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        LOCAL_IOT_ENDPOINT=endpoint,
    )
    return env


def _fleet_playbook(path: str, devices_file: str, output_dir: str, endpoint: str) -> None:
    play = [
        {
            "name": "Benchmark fleet",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/iotfleet.provisioning.aws": {"endpoint_url": endpoint, "region": "us-east-1"}},
            "tasks": [
                {
                    "name": "Policy",
                    "iotfleet.provisioning.policy": {"name": "bench-policy", "document": POLICY},
                },
                {
                    "name": "Fleet",
                    "iotfleet.provisioning.fleet": {
                        "devices_file": devices_file,
                        "fleet_group": "bench-fleet",
                        "output_dir": output_dir,
                        "report_path": os.path.join(output_dir, "report.json"),
                    },
                },
            ],
        }
    ]
    with open(path, "w") as handle:
        json.dump(play, handle)


def _naive_playbook(path: str, count: int, output_dir: str, endpoint: str) -> None:
    plays = [
        {
            "name": f"Naive device {index}",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/iotfleet.provisioning.aws": {"endpoint_url": endpoint, "region": "us-east-1"}},
            "roles": [
                {
                    "role": "iotfleet.provisioning.single_thing",
                    "vars": {
                        "single_thing_name": f"naive-{index:04d}",
                        "single_thing_groups": ["naive-fleet"],
                        "single_thing_attributes": {"model": "bench"},
                        "single_thing_policy_name": "bench-policy",
                        "single_thing_policy_document": POLICY,
                        "single_thing_certificate_source": "device_csr",
                        "single_thing_output_dir": os.path.join(output_dir, f"naive-{index:04d}"),
                        "single_thing_controller_dir": os.path.join(output_dir, "controller", f"naive-{index:04d}"),
                    },
                }
            ],
        }
        for index in range(count)
    ]
    with open(path, "w") as handle:
        json.dump(plays, handle)


# The calls a correct tool cannot do without, per device, for the benchmark's devices (a CSR certificate, one
# policy, the fleet group). Cold: the five changes (reads of an empty account are a page or two, left out).
# Nothing to change: which certificate each thing has is known only per thing (ListThingPrincipals); the
# things, group members, certificates and policy targets come from shared pages of 250, counted per page.
MINIMAL_CALLS = {
    "cold": {
        "CreateThing": 1.0,
        "AddThingToThingGroup": 1.0,
        "CreateCertificateFromCsr": 1.0,
        "AttachThingPrincipal": 1.0,
        "AttachPolicy": 1.0,
    },
    "warm": {
        "ListThingPrincipals": 1.0,
        "ListThings": 1 / 250,
        "ListThingsInThingGroup": 1 / 250,
        "ListCertificates": 1 / 250,
        "ListTargetsForPolicy": 1 / 250,
    },
}


def _minimal_bound(kind: str, devices: int, quotas: dict[str, float], default_tps: float) -> tuple[float, str]:
    return max(
        (math.ceil(per_device * devices) / quotas.get(op, default_tps), op)
        for op, per_device in MINIMAL_CALLS[kind].items()
    )


def _bound(calls: list[str], quotas: dict[str, float], default_tps: float) -> tuple[float, str]:
    counts = collections.Counter(calls)
    worst = max(((count / quotas.get(op, default_tps), op) for op, count in counts.items()), default=(0.0, "-"))
    return worst


def _scenario(
    name: str, playbook: str, env: dict[str, str], endpoint: str, devices: int, kind: str, scale: float = 1.0
) -> dict:
    _delete(f"{endpoint}/_local/calls")
    start = time.monotonic()
    measured = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            playbook,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - start
    outcome = json.loads(measured.stdout.strip().splitlines()[-1])
    if outcome["rc"] != 0:
        raise SystemExit(f"{name}: ansible-playbook failed (rc={outcome['rc']}); rerun it by hand: {playbook}")
    calls = [c for c in _get(f"{endpoint}/_local/calls")["calls"] if c]
    traffic = _get(f"{endpoint}/_local/traffic")
    quotas, default_tps = traffic["quota_tps"] or {}, traffic["unlisted_tps"] or 10.0
    bound, limiting = _bound(calls, quotas, default_tps)
    minimal, minimal_api = _minimal_bound(kind, devices, quotas, default_tps)
    return {
        "scenario": name,
        "devices": devices,
        "scale": scale,
        "wall_s": round(wall * scale, 2),
        "bound_s": round(bound * scale, 2),
        "ratio": round(wall / bound, 3) if bound else None,
        "minimal_bound_s": round(minimal * scale, 2),
        "minimal_ratio": round(wall / minimal, 3) if minimal else None,
        "minimal_limiting_api": minimal_api,
        "limiting_api": limiting,
        "calls_per_device": round(len(calls) / devices, 2),
        "peak_memory_mib": round(outcome["maxrss_kib"] / 1024, 1),
    }


def _read_summary(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle).get("summary", {})
    except (OSError, ValueError):
        return {}


def _anchor(endpoint: str, devices: int) -> dict:
    """The plain boto3 script on other thing names, after the cold run made the group and the policy."""
    _delete(f"{endpoint}/_local/calls")
    script = os.path.join(REPO, "benchmarks", "boto3_cold.py")
    done = subprocess.run(
        [sys.executable, script, endpoint, str(devices), "anchor", "bench-fleet", "bench-policy"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"boto3 anchor failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--naive-devices", type=int, default=10)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results.json"))
    parser.add_argument("--skip-naive", action="store_true", help="run only the fleet scenarios (a) and (b)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="iotfleet-bench-work-")
    collections_path = _collections_path()
    devices_file = os.path.join(work, "devices.jsonl")
    with open(devices_file, "w") as handle:
        for index in range(args.devices):
            device = {
                "name": f"bench-{index:05d}",
                "attributes": {"model": "bench"},
                "certificate": "csr",
                "policies": ["bench-policy"],
            }
            handle.write(json.dumps(device) + "\n")

    flags = ["--quotas", "aws-default", "--latency-ms", str(args.latency_ms)]
    with launcher.running_endpoint(extra_args=flags, log_path=os.path.join(work, "endpoint.log")) as endpoint:
        env = _environment(collections_path, endpoint)
        os.makedirs(os.path.join(work, "fleet-output"), exist_ok=True)
        fleet_playbook = os.path.join(work, "fleet.json")
        _fleet_playbook(fleet_playbook, devices_file, os.path.join(work, "fleet-output"), endpoint)
        naive_playbook = os.path.join(work, "naive.json")
        _naive_playbook(naive_playbook, args.naive_devices, os.path.join(work, "naive-output"), endpoint)
        report = os.path.join(work, "fleet-output", "report.json")
        results = []
        for name, kind in (("cold fleet (fleet module)", "cold"), ("nothing to change (fleet module)", "warm")):
            results.append(_scenario(name, fleet_playbook, env, endpoint, args.devices, kind))
            # The wall time includes ansible-playbook's start and the policy task; the module's own time does not.
            results[-1]["module_s"] = _read_summary(report).get("duration")
        anchor = _anchor(endpoint, args.devices)
        if not args.skip_naive:
            results.append(
                _scenario(
                    f"naive single_thing loop ({args.naive_devices} devices, scaled)",
                    naive_playbook,
                    env,
                    endpoint,
                    args.naive_devices,
                    "cold",
                    scale=args.devices / args.naive_devices,
                )
            )

    header = (
        f"{'scenario':48} {'wall s':>8} {'bound min':>9} {'ratio':>6} {'bound made':>10} {'ratio':>6} "
        f"{'calls/dev':>9} {'peak MiB':>8}  limiting API (min / made)"
    )
    print(header)
    for row in results:
        print(
            f"{row['scenario']:48} {row['wall_s']:>8} {row['minimal_bound_s']:>9} {row['minimal_ratio']!s:>6} "
            f"{row['bound_s']:>10} {row['ratio']!s:>6} {row['calls_per_device']:>9} {row['peak_memory_mib']:>8}  "
            f"{row['minimal_limiting_api']} / {row['limiting_api']}"
        )
    cold = results[0]
    print(
        f"anchor: plain boto3, 10 threads, {args.devices} devices cold: {anchor['wall_s']} s "
        f"({anchor['calls'] / args.devices:g} calls/device); the cold fleet took {cold['wall_s']} s, "
        f"{cold['wall_s'] / anchor['wall_s']:.3f}x the script's wall time "
        f"(the fleet module's own run: {cold['module_s']} s, {cold['module_s'] / anchor['wall_s']:.3f}x; "
        f"nothing to change: {results[1]['module_s']} s)"
    )
    with open(args.output, "w") as handle:
        json.dump(
            {
                "devices": args.devices,
                "latency_ms": args.latency_ms,
                "quotas": "aws-default",
                "results": results,
                "anchor_boto3_10_threads": anchor,
            },
            handle,
            indent=2,
        )
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
