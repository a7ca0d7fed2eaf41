"""`make test-aws`: the integration targets against the AWS account in your credentials. Never run by CI.

    IOTFLEET_AWS_TESTS=1 AWS_PROFILE=sandbox AWS_REGION=eu-west-1 make test-aws
    make test-aws ARGS="--dry-run"                 # the listing only: no AWS call, no switch needed
    make test-aws ARGS="--targets thing,policy"    # some targets only

It prints what it will create first, refuses to go on without IOTFLEET_AWS_TESTS=1, names every resource with a
random run prefix, and at the end (after a failure or Ctrl-C too) removes every resource with that prefix.
The targets run unchanged, as against the local endpoint: a recording relay (tests/integration/aws_relay.py)
stands where the endpoint was, re-signs each request with your credentials for AWS, and records the IoT calls
for the targets' "no mutating call on the second run" checks. Targets that need what only the local endpoint
does (fault injection, simulated device connections, its fixed account id) are skipped, each with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from aws_relay import RunningRelay
from aws_sweep import Sweep
from harness import run_playbook

SWITCH = "IOTFLEET_AWS_TESTS"
TARGETS_DIR = REPO / "tests" / "integration" / "targets"
PROBE = REPO / "tests" / "integration" / "iot_probe.py"
PROBE_PLUGINS = REPO / "tests" / "integration" / "plugins"

# What a local-only control path gives a target, and why AWS cannot.
LOCAL_ONLY_PATHS = {
    "traffic": "injects faults and quotas through /_local/traffic (AWS cannot be told to fail a call)",
    "jitp": "simulates a device's first connection through /_local/jitp (on AWS that takes a device on MQTT)",
    "dataplane": "connects devices to the local data plane (/_local/dataplane), not to AWS's",
    "registry": "seeds thousands of things through /_local/registry",
    "provisioning-claims": "shortens claim lifetimes through /_local/provisioning-claims",
    "provisioning-hooks": "answers pre-provisioning hooks through /_local/provisioning-hooks (AWS calls a Lambda)",
}
# Targets that assert what only the local endpoint has, found by reading them (a scan cannot see these).
LOCAL_ONLY_TARGETS = {
    "provisioning_role": "asserts the role ARN in the local endpoint's account (123456789012)",
    "fleet_indexing": "changes the account's fleet indexing configuration: account-wide, not named by the prefix "
    "(so no sweep can restore it), and indexing is billed",
}
# What each module, or an iot_probe create_* call, leaves in the account until the sweep.
MAKES = {
    "thing": "things",
    "thing_type": "thing types",
    "thing_group": "thing groups",
    "policy": "IoT policies",
    "certificate": "certificates",
    "fleet": "things, thing groups, certificates",
    "register_thing": "things, certificates",
    "provisioning_template": "provisioning templates",
    "provisioning_role": "IAM roles",
    "ca_certificate": "CA certificates",
    "thing_registration_task": "S3 objects, thing registration tasks",
    "billing_group": "billing groups",
    "dynamic_thing_group": "thing groups",
    "provisioning_claim": "claim certificates (AWS expires them after 5 minutes)",
}
PROBE_MAKES = {
    "thing": "things",
    "thing_type": "thing types",
    "thing_group": "thing groups",
    "dynamic_thing_group": "thing groups",
    "billing_group": "billing groups",
    "policy": "IoT policies",
    "policy_version": "IoT policies",
    "keys_and_certificate": "certificates",
    "certificate_from_csr": "certificates",
    "role": "IAM roles",
    "provisioning_template": "provisioning templates",
}
COST = (
    "Cost: none of these resources costs money at rest (AWS IoT Core bills connectivity, messaging and operations, "
    "not registry entries; IAM roles are free). The run's API calls are metered AWS IoT Core operations; no device "
    "connects and no message is sent. Thing types wait 5 minutes after deprecation before AWS deletes them."
)


def targets() -> list[str]:
    return sorted(p.name for p in TARGETS_DIR.iterdir() if (p / "tasks" / "main.yml").is_file())


def target_text(name: str) -> str:
    return "\n".join(p.read_text() for p in sorted((TARGETS_DIR / name).rglob("*")) if p.is_file())


def skip_reason(name: str) -> str:
    """Why a target cannot run against AWS ("" when it can)."""
    text = target_text(name)
    aliases = (TARGETS_DIR / name / "aliases").read_text().split() if (TARGETS_DIR / name / "aliases").exists() else []
    if "disabled" in aliases:
        return "disabled in its aliases file"
    reasons = [why for path, why in LOCAL_ONLY_PATHS.items() if f"/_local/{path}" in text]
    if "/moto-api/" in text:
        reasons.append("resets the whole account through /moto-api/reset")
    if name in LOCAL_ONLY_TARGETS:
        reasons.append(LOCAL_ONLY_TARGETS[name])
    return "; ".join(reasons)


def makes(name: str) -> list[str]:
    """The kinds of AWS resources a target makes: the modules it calls, and the iot_probe create_* calls."""
    text = target_text(name)
    kinds: set[str] = set()
    for module in re.findall(r"iotfleet\.provisioning\.(\w+):", text):
        if module in MAKES:
            kinds.update(k.strip() for k in MAKES[module].split(","))
    for call in re.findall(r"(?:\[\s*|['\"]|op:\s*)create_(\w+)", text):
        if call in PROBE_MAKES:
            kinds.add(PROBE_MAKES[call])
    return sorted(kinds)


def listing(prefix: str, region: str, selected: list[str]) -> list[str]:
    """The dry listing: what runs, what is skipped and why, what each target makes, the cost."""
    lines = [f"make test-aws: run prefix {prefix!r}, region {region or '(unset: set AWS_REGION)'}", "Will run:"]
    for name in selected:
        if not skip_reason(name):
            kinds = ", ".join(makes(name))
            made = f"makes {kinds}, named {prefix}NN-..." if kinds else "makes nothing in AWS"
            lines.append(f"  {name:28} {made}")
    lines.append("Skipped (the local endpoint runs them):")
    for name in selected:
        if skip_reason(name):
            lines.append(f"  {name:28} skipped: {skip_reason(name)}")
    lines.append(
        f"At the end, even after a failure: every thing, thing group, billing group, thing type, policy, provisioning "
        f"template and IAM role named {prefix}*, and certificates attached only to them, are removed."
    )
    lines.append(COST)
    return lines


PLAYBOOK = """
- name: Integration target {target} against AWS, through the recording relay
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/iotfleet.provisioning.aws:
      endpoint_url: "{{{{ local_iot_endpoint }}}}"
      region: {region}
      access_key: relay
      secret_key: relay
  roles:
    - role: {target}
"""


def run_target(name: str, index: int, prefix: str, relay_url: str, region: str, work: Path) -> tuple[bool, str]:
    """One target as tests/integration/test_targets.py runs it, pointed at the relay; (passed, output tail)."""
    area = work / name
    area.mkdir(parents=True, exist_ok=True)
    playbook = area / "play.yml"
    playbook.write_text(PLAYBOOK.format(target=name, region=region))
    env = {
        "ANSIBLE_ROLES_PATH": str(TARGETS_DIR),
        "ANSIBLE_ACTION_PLUGINS": str(PROBE_PLUGINS / "action"),
        "ANSIBLE_CALLBACK_PLUGINS": str(PROBE_PLUGINS / "callback"),
        "AWS_REGION": region,
    }
    collections = work / "collections"
    link = collections / "ansible_collections" / "iotfleet" / "provisioning"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    result = run_playbook(
        str(playbook),
        relay_url,
        str(collections),
        str(area),
        extra_env=env,
        extra_vars={
            "local_iot_endpoint": relay_url,
            "iot_probe": str(PROBE),
            "output_dir": str(area / "output"),
            "resource_prefix": f"{prefix}{index:02d}",
        },
    )
    return result.returncode == 0, (result.stdout[-6000:] + result.stderr[-2000:])


def aws_clients(upstream: str | None, region: str):
    """IoT and IAM clients for the sweep: the user's credentials, or the stand-in endpoint's."""
    import boto3

    if upstream:
        kwargs = {"endpoint_url": upstream, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client("iot", region_name=region, **kwargs), boto3.client("iam", region_name=region, **kwargs)
    return boto3.client("iot", region_name=region), boto3.client("iam", region_name=region)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--dry-run", action="store_true", help="print the listing and stop (no AWS call)")
    parser.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    parser.add_argument("--prefix", default="", help="the run prefix (default: it + 6 random hex digits)")
    parser.add_argument("--upstream", default="", help="forward to this URL instead of AWS (tests: a local endpoint)")
    parser.add_argument("--targets-dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--thing-type-wait", type=float, default=360.0, help="seconds to wait to delete a thing type")
    parser.add_argument("--work", default=str(REPO / "build" / "test-aws"), help="playbooks, outputs and logs")
    args = parser.parse_args(argv)
    global TARGETS_DIR
    if args.targets_dir:
        TARGETS_DIR = Path(args.targets_dir)

    prefix = args.prefix or f"it{secrets.token_hex(3)}"
    if not re.fullmatch(r"[a-z0-9]{6,12}", prefix):
        print(f"--prefix must be 6 to 12 lowercase letters or digits, got {prefix!r}", file=sys.stderr)
        return 2
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    wanted = [t for t in args.targets.split(",") if t] or targets()
    unknown = sorted(set(wanted) - set(targets()))
    if unknown:
        print(f"unknown targets: {', '.join(unknown)} (known: {', '.join(targets())})", file=sys.stderr)
        return 2
    print("\n".join(listing(prefix, region, wanted)), flush=True)
    if args.dry_run:
        return 0
    if os.environ.get(SWITCH) != "1":
        print(
            f"\nRefusing to run: set {SWITCH}=1 to create the resources above in the account of your AWS "
            "credentials (use a sandbox account).",
            file=sys.stderr,
        )
        return 2
    if not region:
        print("Refusing to run: set AWS_REGION to the region to test in.", file=sys.stderr)
        return 2

    work = Path(args.work) / prefix
    work.mkdir(parents=True, exist_ok=True)
    iot, iam = aws_clients(args.upstream or None, region)
    if not args.upstream:
        import boto3

        identity = boto3.client("sts", region_name=region).get_caller_identity()
        print(f"Account {identity['Account']} as {identity['Arn']}", flush=True)

    results: dict[str, str] = {}
    try:
        with RunningRelay(region, args.upstream or None) as relay_url:
            for index, name in enumerate(wanted):
                if skip_reason(name):
                    results[name] = f"skipped: {skip_reason(name)}"
                    continue
                started = time.monotonic()
                passed, tail = run_target(name, index, prefix, relay_url, region, work)
                results[name] = f"{'passed' if passed else 'FAILED'} in {time.monotonic() - started:.0f} s"
                print(f"{name}: {results[name]}", flush=True)
                if not passed:
                    (work / name / "failure.log").write_text(tail)
                    print(tail, flush=True)
    finally:
        print(f"Sweep of {prefix}*:", flush=True)
        report = Sweep(prefix, iot, iam, thing_type_wait=args.thing_type_wait).run()
        (work / "sweep.json").write_text(json.dumps(report, indent=2))
    failed_sweep = any(outcome.get("failed") for outcome in report.values())
    print("Results:")
    for name, outcome in results.items():
        print(f"  {name:28} {outcome}")
    print(
        f"Sweep: {sum(len(o.get('removed', [])) for o in report.values())} removed, "
        f"{sum(len(o.get('kept', [])) for o in report.values())} kept, "
        f"{sum(len(o.get('failed', [])) for o in report.values())} failed (details in {work / 'sweep.json'})"
    )
    return 1 if failed_sweep or any(r.startswith("FAILED") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
