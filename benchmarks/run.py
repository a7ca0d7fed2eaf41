"""Fleet benchmark: wall time against the AWS quota lower bound, memory and planning time, from 500 to 100,000 devices.

    .venv/bin/python benchmarks/run.py            # the standard set, 500 devices (about 3 minutes)
    .venv/bin/python benchmarks/run.py --scale    # and 1,000, 10,000 and a 100,000-device plan (about 25 minutes)
    .venv/bin/python benchmarks/run.py --no-standard --rotation 200   # a 200-device rotation (benchmarks/rotation.py)

Every endpoint is benchmarks' own server (tests/local_iot/large_registry.py: server.py plus a seed control path,
indexed lookups and request caches, so the emulator's own CPU stays out of the figures) with AWS's default TPS
quotas; the load average of the machine is printed beside every figure.

Standard set, 500 devices, real quotas, 50 ms per call:

  (a) cold: the fleet module on a new fleet (thing, fleet group, CSR certificate, policy, attachments);
  (b) warm: the same input again, nothing to change;
  (c) anchor: benchmarks/boto3_cold.py, a plain 10-thread boto3 script doing the cold work with no reads, no
      plan and no crash safety (5 calls per device), timed from its process start like the playbook;
  (d) start-up: where the playbook's time outside the fleet module goes (Ansible's start, the policy task);
  (e) optional (--naive): the single_thing role looped once per device on 10 devices, scaled to 500.

A cold run repeats (fresh registry) while the load average was above --high-load; every attempt is kept.

Scale set (--scale): 1,000 and 10,000 devices cold and warm, with the endpoint's quotas multiplied by
--quota-scale F and its latency divided by F (the fleet's api_rates follow the scaled quotas), so a run takes
minutes: each second here stands for F seconds at AWS's default quotas, as far as the run is bound by quotas and
latency (Ansible's start and the controller's CPU do not scale, so mapping them back overstates them). Then a
plan-only run (check mode) of 100,000 devices against a registry seeded through the endpoint's seed path: the
fleet exists (things in the fleet group, each with an ACTIVE certificate carrying the policy), 1% of the devices
change an attribute and 1% are new.

Per run: wall time, the fleet module's own time, planning time (reading the account and computing the plan, from
the fleet's progress file), two quota lower bounds (the maximum over APIs of calls / TPS): "bound min" from the
minimal call set a correct tool needs for the same work (measure.MINIMAL_CALLS), "bound made" from the calls the
run made; their ratios; API calls per device; peak memory of the controller's process tree (ansible-playbook and
every child, sampled from /proc; the endpoint is not in it). Written to benchmarks/results.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "local_iot"))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import launcher
import measure

SERVER = os.path.join(REPO, "tests", "local_iot", "large_registry.py")
ACCOUNT = "123456789012"

# The least-privilege device policy the roles ship: connect only as its own attached thing, topics under its name.
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"arn:aws:iot:us-east-1:{ACCOUNT}:client/${{iot:Connection.Thing.ThingName}}",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"arn:aws:iot:us-east-1:{ACCOUNT}:topic/devices/${{iot:Connection.Thing.ThingName}}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": f"arn:aws:iot:us-east-1:{ACCOUNT}:topicfilter/devices/${{iot:Connection.Thing.ThingName}}/*",
        },
    ],
}


def _request(url: str, method: str = "GET", body: Any = None, timeout: float = 900) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


class Endpoint:
    """The benchmark's endpoint process (quotas, latency) on a free port; a context manager."""

    def __init__(self, work: str, quota_scale: float, latency_ms: float) -> None:
        self.quota_scale, self.latency_ms = quota_scale, latency_ms
        self.port = launcher.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(work, f"endpoint-{self.port}.log")
        self.args = ["--quotas", "aws-default", "--quota-scale", f"{quota_scale:g}", "--latency-ms", f"{latency_ms:g}"]

    def __enter__(self) -> Endpoint:
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="false")  # a reset in seconds, not tens
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, SERVER, "--port", str(self.port), "--no-mqtt", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        launcher.wait_healthy(self.url, timeout=120, process=self.process, log_path=self.log)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def reset(self) -> None:
        """An empty registry, full quota buckets, no recorded calls."""
        _request(f"{self.url}/moto-api/reset", "POST", {})
        _request(f"{self.url}/_local/traffic", "DELETE")
        _request(f"{self.url}/_local/calls", "DELETE")

    def client(self) -> Any:
        import boto3  # pylint: disable=import-outside-toplevel

        return boto3.client(
            "iot", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )

    def make_policy(self) -> None:
        """The device policy, made before a timed run (not counted in its calls: the list is cleared after)."""
        self.client().create_policy(policyName="bench-policy", policyDocument=json.dumps(POLICY))
        _request(f"{self.url}/_local/calls", "DELETE")

    def quotas(self) -> tuple[dict[str, float], float]:
        traffic = _request(f"{self.url}/_local/traffic")
        return traffic["quota_tps"] or {}, traffic["unlisted_tps"] or 10.0

    def calls(self) -> list[str]:
        return [c for c in _request(f"{self.url}/_local/calls")["calls"] if c]


def _collections_path() -> str:
    root = tempfile.mkdtemp(prefix="iotfleet-bench-")
    os.makedirs(os.path.join(root, "ansible_collections", "iotfleet"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "iotfleet", "provisioning"))
    return root


def _engine_operations(collections: str) -> list[str]:
    """The operations the fleet's api_rates may name (its own list, so a scaled run paces every one)."""
    sys.path.insert(0, collections)
    from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet_rate

    return sorted(fleet_rate.ENGINE_OPERATIONS)


def _environment(collections: str) -> dict[str, str]:
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
    )
    return env


def _devices_file(path: str, count: int, changed_every: int = 0, start: int = 0) -> None:
    """``count`` devices bench-NNNNN from ``start``; with ``changed_every`` N, every Nth has another model."""
    with open(path, "w") as handle:
        for index in range(start, start + count):
            model = "bench-v2" if changed_every and index % changed_every == 0 else "bench"
            device = {"name": f"bench-{index:05d}", "attributes": {"model": model}, "certificate": "csr"}
            device["policies"] = ["bench-policy"]
            handle.write(json.dumps(device) + "\n")


def _fleet_playbook(path: str, devices_file: str, output_dir: str, endpoint: str, rates: dict | None) -> str:
    fleet: dict[str, Any] = {
        "devices_file": devices_file,
        "fleet_group": "bench-fleet",
        "output_dir": output_dir,
        "report_path": os.path.join(output_dir, "report.json"),
        "progress_path": os.path.join(output_dir, "progress.json"),
        "progress_interval": 0.2,
        "declared_resources": {"policies": ["bench-policy"]},
    }
    if rates:
        fleet["api_rates"] = rates
    play = {
        "name": "Benchmark fleet",
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {"group/iotfleet.provisioning.aws": {"endpoint_url": endpoint, "region": "us-east-1"}},
        # The policy is made beforehand (make_policy), as for the boto3 script: the timed play does the same work.
        "tasks": [{"name": "Fleet", "iotfleet.provisioning.fleet": fleet}],
    }
    with open(path, "w") as handle:
        json.dump([play], handle)
    return path


def _startup_playbooks(work: str, endpoint: str) -> tuple[str, str]:
    """A play that does nothing, and one with only the (unchanged) policy task: Ansible's fixed costs."""
    base = {"hosts": "localhost", "gather_facts": False}
    empty = os.path.join(work, "empty.json")
    with open(empty, "w") as handle:
        json.dump([{**base, "name": "Nothing", "tasks": [{"ansible.builtin.meta": "noop"}]}], handle)
    policy = os.path.join(work, "policy.json")
    defaults = {"group/iotfleet.provisioning.aws": {"endpoint_url": endpoint, "region": "us-east-1"}}
    task = {"name": "Policy", "iotfleet.provisioning.policy": {"name": "bench-policy", "document": POLICY}}
    with open(policy, "w") as handle:
        json.dump([{**base, "name": "Policy only", "module_defaults": defaults, "tasks": [task]}], handle)
    return empty, policy


def _naive_playbook(path: str, count: int, output_dir: str, endpoint: str) -> str:
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
    return path


def run_playbook(playbook: str, env: dict[str, str], check: bool = False, progress: str | None = None) -> dict:
    """ansible-playbook with its process tree's memory sampled; the planning time when a progress file is given."""
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    command += ["--check"] if check else []
    if progress and os.path.exists(progress):
        os.remove(progress)
    clock = measure.PlanningClock(progress) if progress else None
    load = measure.load_average()
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen([*command, playbook], env=env, stdout=output, stderr=subprocess.STDOUT)
        with measure.TreeMemory(process.pid, on_sample=clock.poll if clock else None) as memory:
            code = process.wait()
        wall = time.monotonic() - start
        cpu = measure.cpu_seconds(before, resource.getrusage(resource.RUSAGE_CHILDREN))
        if clock:
            clock.poll()
        if code != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"ansible-playbook failed (rc={code}): {playbook}\n{tail}")
    return {
        "wall_s": round(wall, 2),
        # CPU seconds of the whole tree (user + system): what the run costs on an idle machine, load aside.
        "cpu_s": cpu,
        "planning_s": clock.planning(check) if clock else None,
        "load_before": load,
        "load_after": measure.load_average(),
        **memory.result(),
    }


def fleet_row(name: str, kind: str, devices: int, endpoint: Endpoint, measured: dict, report: str | None) -> dict:
    calls = endpoint.calls()
    quotas, default_tps = endpoint.quotas()
    made, made_api = measure.made_bound(calls, quotas, default_tps)
    minimal, minimal_api = measure.minimal_bound(kind, devices, quotas, default_tps)
    module_s = _read_summary(report).get("duration") if report else None
    wall = measured["wall_s"]
    return {
        "scenario": name,
        "kind": kind,
        "devices": devices,
        "quota_scale": endpoint.quota_scale,
        "latency_ms": endpoint.latency_ms,
        **measured,
        "module_s": module_s,
        "minimal_bound_s": round(minimal, 2),
        "minimal_ratio": round(wall / minimal, 3) if minimal else None,
        "module_minimal_ratio": round(module_s / minimal, 3) if minimal and module_s else None,
        "minimal_limiting_api": minimal_api,
        "bound_s": round(made, 2),
        "ratio": round(wall / made, 3) if made else None,
        "limiting_api": made_api,
        "calls_per_device": round(len(calls) / devices, 2),
        # At AWS's default quotas the quota- and latency-bound time is F times longer.
        "minimal_bound_at_aws_quotas_s": round(minimal * endpoint.quota_scale, 1),
    }


def _read_summary(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle).get("summary", {})
    except (OSError, ValueError):
        return {}


def _fresh_dir(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def anchor(endpoint: Endpoint, devices: int) -> dict:
    """The plain boto3 script on other thing names, after the cold run made the group and the policy."""
    _request(f"{endpoint.url}/_local/calls", "DELETE")
    script = os.path.join(REPO, "benchmarks", "boto3_cold.py")
    load = measure.load_average()
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, script, endpoint.url, str(devices), "anchor", "bench-fleet", "bench-policy"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - start
    cpu = measure.cpu_seconds(before, resource.getrusage(resource.RUSAGE_CHILDREN))
    if done.returncode != 0:
        raise SystemExit(f"boto3 anchor failed: {done.stderr[-2000:]}")
    own = json.loads(done.stdout.strip().splitlines()[-1])
    quotas, default_tps = endpoint.quotas()
    minimal, _api = measure.minimal_bound("cold", devices, quotas, default_tps)
    return {
        "wall_s": round(wall, 2),  # from the process start: interpreter, imports and client included
        "script_s": own["wall_s"],  # the script's own clock: after its imports and client
        "cpu_s": cpu,
        "calls": own["calls"],
        "minimal_bound_s": round(minimal, 2),
        "minimal_ratio": round(wall / minimal, 3),
        "load_before": load,
        "load_after": measure.load_average(),
    }


def standard(args: argparse.Namespace, work: str, collections: str, env: dict[str, str]) -> dict:
    """500 devices at AWS's default quotas: cold (repeated while the load is high), warm, anchor, start-up costs."""
    devices = args.devices
    devices_file = os.path.join(work, "devices.jsonl")
    _devices_file(devices_file, devices)
    out = os.path.join(work, "fleet-output")
    attempts = []
    with Endpoint(work, 1.0, args.latency_ms) as endpoint:
        playbook = _fleet_playbook(os.path.join(work, "fleet.json"), devices_file, out, endpoint.url, None)
        report, progress = os.path.join(out, "report.json"), os.path.join(out, "progress.json")
        for attempt in range(1, args.repeat + 1):
            endpoint.reset()
            endpoint.make_policy()
            _fresh_dir(out)
            measured = run_playbook(playbook, env, progress=progress)
            attempts.append(fleet_row("cold fleet (fleet module)", "cold", devices, endpoint, measured, report))
            _print_rows(attempts[-1:], f"cold attempt {attempt}")
            if max(measured["load_before"], measured["load_after"]) <= args.high_load:
                break
        cold = min(attempts, key=lambda row: row["wall_s"])
        _request(f"{endpoint.url}/_local/calls", "DELETE")
        measured = run_playbook(playbook, env, progress=progress)
        warm = fleet_row("nothing to change (fleet module)", "warm", devices, endpoint, measured, report)
        _print_rows([warm], "warm")
        script = anchor(endpoint, devices)
        empty, policy_only = _startup_playbooks(work, endpoint.url)
        startup = {"empty_play": run_playbook(empty, env), "policy_task_only": run_playbook(policy_only, env)}
        naive = None
        if args.naive:
            naive_book = _naive_playbook(
                os.path.join(work, "naive.json"), 10, os.path.join(work, "naive"), endpoint.url
            )
            _request(f"{endpoint.url}/_local/calls", "DELETE")
            measured = run_playbook(naive_book, env)
            naive = fleet_row("naive single_thing loop (10 devices)", "cold", 10, endpoint, measured, None)
    return {"cold": cold, "cold_attempts": attempts, "warm": warm, "anchor": script, "startup": startup, "naive": naive}


def scaled(args: argparse.Namespace, size: int, work: str, collections: str, env: dict[str, str]) -> list[dict]:
    """Cold and warm at ``size`` devices with quotas x F and latency / F, on a fresh endpoint."""
    factor = args.quota_scale
    devices_file = os.path.join(work, f"devices-{size}.jsonl")
    _devices_file(devices_file, size)
    out = _fresh_dir(os.path.join(work, f"fleet-{size}"))
    rows = []
    with Endpoint(work, factor, args.latency_ms / factor) as endpoint:
        quotas, default_tps = endpoint.quotas()
        rates = measure.scaled_rates(_engine_operations(collections), quotas, default_tps)
        playbook = _fleet_playbook(os.path.join(work, f"fleet-{size}.json"), devices_file, out, endpoint.url, rates)
        report, progress = os.path.join(out, "report.json"), os.path.join(out, "progress.json")
        endpoint.make_policy()
        for name, kind in (("cold fleet", "cold"), ("nothing to change", "warm")):
            _request(f"{endpoint.url}/_local/calls", "DELETE")
            measured = run_playbook(playbook, env, progress=progress)
            rows.append(fleet_row(f"{name}, {size} devices", kind, size, endpoint, measured, report))
            _print_rows(rows[-1:], f"{size} {kind}")
    return rows


def plan_only(args: argparse.Namespace, size: int, work: str, collections: str, env: dict[str, str]) -> dict:
    """Check mode for a large fleet against a seeded registry: 1% attribute changes, 1% new devices."""
    factor = args.plan_quota_scale
    existing = size - size // 100
    devices_file = os.path.join(work, f"devices-{size}.jsonl")
    _devices_file(devices_file, size, changed_every=100)
    out = _fresh_dir(os.path.join(work, f"plan-{size}"))
    with Endpoint(work, factor, args.latency_ms / factor) as endpoint:
        quotas, default_tps = endpoint.quotas()
        rates = measure.scaled_rates(_engine_operations(collections), quotas, default_tps)
        endpoint.make_policy()
        endpoint.client().create_thing_group(thingGroupName="bench-fleet")
        body = {"prefix": "bench-", "count": existing, "thing_group": "bench-fleet", "attributes": {"model": "bench"}}
        seeded = _request(
            f"{endpoint.url}/_local/seed", "POST", {**body, "certificates": True, "policy": "bench-policy"}
        )
        print(f"seeded {seeded['things']} things and {seeded['certificates']} certificates in {seeded['seconds']} s")
        playbook = _fleet_playbook(os.path.join(work, f"plan-{size}.json"), devices_file, out, endpoint.url, rates)
        plan_file = os.path.join(out, "plan.json")
        with open(playbook) as handle:
            plays = json.load(handle)
        plays[0]["tasks"][0]["iotfleet.provisioning.fleet"]["plan_path"] = plan_file
        with open(playbook, "w") as handle:
            json.dump(plays, handle)
        _request(f"{endpoint.url}/_local/calls", "DELETE")
        measured = run_playbook(playbook, env, check=True, progress=os.path.join(out, "progress.json"))
        row = fleet_row(f"plan only (check mode), {size} devices", "warm", size, endpoint, measured, None)
    with open(plan_file) as handle:
        counts = json.load(handle).get("counts", {})
    row.update(kind="plan", seeded=seeded, plan_counts=counts, module_s=row["planning_s"])
    _print_rows([row], f"{size} plan only")
    return row


def _print_rows(rows: list[dict], title: str) -> None:
    print(f"-- {title}")
    for row in rows:
        print(
            f"  {row['scenario']}: wall {row['wall_s']} s, module {row.get('module_s')} s, planning "
            f"{row.get('planning_s')} s, bound min {row['minimal_bound_s']} s ({row['minimal_limiting_api']}) "
            f"ratio {row['minimal_ratio']}, bound made {row['bound_s']} s ratio {row['ratio']}, "
            f"{row['calls_per_device']} calls/device, peak RSS {row['peak_rss_mib']} MiB (PSS "
            f"{row['peak_pss_mib']} MiB, {row['processes_at_peak']} processes); quotas x{row['quota_scale']:g}, "
            f"latency {row['latency_ms']:g} ms; load {row['load_before']} -> {row['load_after']}",
            flush=True,
        )


def summary(results: dict) -> None:
    print("\n== summary (load average before -> after each figure)")
    if "standard" in results:
        standard_summary(results["standard"])
    scale_summary(results)


def standard_summary(std: dict) -> None:
    cold, warm, script = std["cold"], std["warm"], std["anchor"]
    print(
        f"cold {cold['devices']}: playbook {cold['wall_s']} s = {cold['minimal_ratio']}x the minimal bound "
        f"{cold['minimal_bound_s']} s "
        f"(target 1.05x); module {cold['module_s']} s = {cold['module_minimal_ratio']}x; load {cold['load_before']}"
        f" -> {cold['load_after']}; attempts {[a['wall_s'] for a in std['cold_attempts']]}"
    )
    print(
        f"anchor (10-thread boto3, from process start): {script['wall_s']} s = {script['minimal_ratio']}x "
        f"(its own clock {script['script_s']} s); playbook / anchor = {cold['wall_s'] / script['wall_s']:.3f}, "
        f"module / anchor = {cold['module_s'] / script['wall_s']:.3f}; load {script['load_before']}"
    )
    print(
        f"nothing to change {warm['devices']}: playbook {warm['wall_s']} s = {warm['minimal_ratio']}x the bound "
        f"{warm['minimal_bound_s']} s (target 1.10x); module {warm['module_s']} s = {warm['module_minimal_ratio']}x"
    )
    start = std["startup"]
    outside = round(cold["wall_s"] - (cold["module_s"] or 0), 2)
    empty, policy = start["empty_play"], start["policy_task_only"]
    print(
        f"outside the fleet module: {outside} s of the cold playbook; an empty play takes {empty['wall_s']} s "
        f"({empty['cpu_s']} CPU s), a play with only the policy task {policy['wall_s']} s ({policy['cpu_s']} CPU s; "
        f"load {empty['load_before']}); the cold playbook used {cold['cpu_s']} CPU s, the script {script['cpu_s']}; "
        f"planning inside the module {cold['planning_s']} s"
    )


def scale_summary(results: dict) -> None:
    rows = results.get("scale", [])
    if rows:
        print("scale (quotas x F, latency / F; a second here is F seconds at AWS's default quotas):")
        for row in rows:
            print(
                f"  {row['scenario']}: wall {row['wall_s']} s, planning {row['planning_s']} s, peak RSS "
                f"{row['peak_rss_mib']} MiB (PSS {row['peak_pss_mib']}), bound min {row['minimal_bound_s']} s "
                f"(x{row['quota_scale']:g} quotas; {row['minimal_bound_at_aws_quotas_s']} s at AWS's), ratio "
                f"{row['minimal_ratio']}, load {row['load_before']} -> {row['load_after']}"
            )
        print("  growth exponent k (figure ~ devices^k): " + json.dumps(results.get("growth", {})))


def growth_table(rows: list[dict]) -> dict:
    table: dict[str, Any] = {}
    for kind in ("cold", "warm", "plan"):
        points = sorted(((r["devices"], r) for r in rows if r["kind"] == kind), key=lambda point: point[0])
        for (n1, r1), (n2, r2) in zip(points, points[1:]):
            for figure in ("peak_rss_mib", "planning_s", "wall_s"):
                key = f"{kind} {figure} {n1}->{n2}"
                table[key] = measure.growth((n1, r1[figure] or 0), (n2, r2[figure] or 0))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="cold attempts at most, while the load is high")
    parser.add_argument("--high-load", type=float, default=2.0, help="a load average above this repeats the cold run")
    parser.add_argument("--naive", action="store_true", help="also the single_thing loop (10 devices)")
    parser.add_argument("--scale", action="store_true", help="also 1,000 and 10,000 devices and the plan-only run")
    parser.add_argument("--sizes", default="1000,10000", help="fleet sizes of --scale (comma-separated)")
    parser.add_argument("--quota-scale", type=float, default=2.0, help="F for the scale runs (quotas x F)")
    parser.add_argument("--plan-devices", default="100000", help="devices of the plan-only runs (comma-separated)")
    parser.add_argument("--plan-quota-scale", type=float, default=10.0, help="F for the plan-only run")
    parser.add_argument("--no-standard", action="store_true", help="leave out the 500-device set (trying sizes)")
    parser.add_argument(
        "--rotation", type=int, default=0, metavar="N", help="also rotate N devices (benchmarks/rotation.py)"
    )
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results.json"))
    args = parser.parse_args()

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="iotfleet-bench-work-")
    collections = _collections_path()
    env = _environment(collections)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_at_start": measure.load_average()}}
    if not args.no_standard:
        results["standard"] = standard(args, work, collections, env)
    if args.scale:
        rows = []
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            rows += scaled(args, size, work, collections, env)
        for size in (int(s) for s in args.plan_devices.split(",") if s.strip()):
            rows.append(plan_only(args, size, work, collections, env))
        results["scale"] = rows
        results["growth"] = growth_table(rows)
    if args.rotation:
        import rotation  # pylint: disable=import-outside-toplevel

        results["rotation"] = rotation.rotate(args.rotation, args.latency_ms)
        rotation.summary(results["rotation"])
    results["seconds"] = round(time.monotonic() - started, 1)
    summary(results)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"written to {args.output} ({results['seconds']} s in all)")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(collections, ignore_errors=True)


if __name__ == "__main__":
    main()
