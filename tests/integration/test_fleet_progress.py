"""Progress of a long fleet run, printed on the controller by the fleet action plugin.

The endpoint answers every IoT call 150 ms late, so a 12-device run takes a few seconds; with
progress_interval 0.3 the controller must print several progress lines, whose counts only grow, and the
progress file the user asked for must end with every device counted.
"""

from __future__ import annotations

import json
import re

from harness import control, recap, reset_endpoint, run_playbook

PLAYBOOK = """
- name: Fleet with progress
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the fleet
      iotfleet.provisioning.fleet:
        endpoint_url: "{{ local_iot_endpoint }}"
        devices: "{{ devices }}"
        defaults:
          certificate: csr
        fleet_group: progress-fleet
        output_dir: "{{ out }}"
        concurrency: 2
        progress_interval: 0.3
        progress_path: "{{ progress_file }}"
"""

LINE = re.compile(r"^localhost: fleet (read|apply) (\d+)/(\d+) (devices|certificate listings)", re.MULTILINE)


def test_fleet_prints_progress_on_the_controller(local_iot_endpoint, collections_path, tmp_path):
    reset_endpoint(local_iot_endpoint)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    progress_file = tmp_path / "progress.json"
    extra = {
        "local_iot_endpoint": local_iot_endpoint,
        "devices": [{"name": f"progress-{i:02d}"} for i in range(12)],
        "out": str(tmp_path / "out"),
        "progress_file": str(progress_file),
    }
    control(local_iot_endpoint, "/_local/traffic", "POST", {"latency_ms": 150})
    try:
        result = run_playbook(str(playbook), local_iot_endpoint, collections_path, str(tmp_path), extra)
    finally:
        control(local_iot_endpoint, "/_local/traffic", "DELETE")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert recap(result.stdout)["changed"] == 1
    lines = [(m.group(1), int(m.group(2)), int(m.group(3))) for m in LINE.finditer(result.stdout)]
    apply_lines = [line for line in lines if line[0] == "apply"]
    assert len(apply_lines) >= 2, result.stdout[-3000:]
    assert all(total == 12 for _phase, _done, total in apply_lines)
    counts = [done for _phase, done, _total in apply_lines]
    assert counts == sorted(counts)
    assert counts[0] < 12
    final = json.loads(progress_file.read_text())
    assert (final["phase"], final["done"], final["total"]) == ("done", 12, 12)
    assert final["outcomes"] == {"created": 12}
    # Each device: CreateThing, AddThingToThingGroup, CreateCertificateFromCsr (made ACTIVE), AttachThingPrincipal
    # (no policies); plus the group and the listings.
    assert final["api_calls"] >= 12 * 4
    # The console's last word: one line of counts (issue 10).
    assert "localhost: fleet progress-fleet: 12 create, 0 update, 0 prune, 0 unchanged" in result.stdout
