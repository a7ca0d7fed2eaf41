#!/usr/bin/env bash
# make demo: start the local AWS IoT endpoint, run playbooks/demo.yml twice (the second run must
# report changed=0), show what was written, and stop the endpoint.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=${VENV:-.venv}
port=${PORT:-5123}
bin=$repo/$venv/bin
out=$repo/demo-output
endpoint=http://127.0.0.1:$port
pidfile=$repo/.local_iot.pid

collections=$repo/build/collections
mkdir -p "$collections/ansible_collections/iotfleet"
ln -sfn "$repo" "$collections/ansible_collections/iotfleet/provisioning"

"$bin/python" tests/local_iot/launcher.py start --port "$port" --pidfile "$pidfile" --log "$repo/.local_iot.log"
trap '"$bin/python" tests/local_iot/launcher.py stop --pidfile "$pidfile"' EXIT
"$bin/python" - "$endpoint" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/moto-api/reset", method="POST")).close()
PY

export ANSIBLE_COLLECTIONS_PATH=$collections
export ANSIBLE_PYTHON_INTERPRETER=$bin/python
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
rm -rf "$out"

run() {
  "$bin/ansible-playbook" -i localhost, -c local playbooks/demo.yml \
    -e "iot_endpoint_url=$endpoint" -e "demo_output_dir=$out" "$@"
}

echo "== first run: provisions the demo devices, JITP, two small fleets and fleet provisioning by claim"
run
echo "== second run: must change nothing"
run | tee "$repo/build/demo-second-run.log"
if ! grep -Eq 'localhost +: ok=[0-9]+ +changed=0 ' "$repo/build/demo-second-run.log"; then
  echo "demo: the second run changed something; it must be idempotent" >&2
  exit 1
fi
echo
echo "== a device online: demo-sensor-001 connects with the files above (AWS IoT Device SDK, MQTT over mutual TLS)"
"$bin/python" - "$endpoint" "$out/demo-sensor-001" <<'PY'
import json, os, sys
sys.path.insert(0, "tests/local_iot")
from device_sdk import Device, dataplane_info

endpoint, folder = sys.argv[1], sys.argv[2]
with open(os.path.join(folder, "device.json")) as handle:
    settings = json.load(handle)
info = dataplane_info(endpoint)  # the local listener's port and its stand-in for Amazon Root CA 1
thing = settings["thing_name"]
cert, key = (os.path.join(folder, settings[name]) for name in ("certificate", "private_key"))
print(f"connecting as {thing} to localhost:{info['port']} (on AWS: {settings['endpoint']}:{settings['port']})")
with Device(info, cert, key, thing) as device:
    device.subscribe(f"devices/{thing}/#")
    device.publish(f"devices/{thing}/hello", json.dumps({"thing": thing, "status": "online"}))
    topic, payload = device.receive()
    print(f"first message received on {topic}: {payload.decode()}")
PY
echo
echo "== a device provisioned by claim: it swaps the bundle's claim for its own certificate and thing (fleet provisioning)"
"$bin/python" - "$endpoint" "$out/fleet-provisioning/bundle" "$out/demo-claim-device" <<'PY'
import json, os, sys
sys.path.insert(0, "tests/local_iot")
from device_sdk import Device, dataplane_info
from identity_sdk import provision

endpoint, bundle, folder = sys.argv[1:4]
with open(os.path.join(bundle, "config.json")) as handle:
    config = json.load(handle)
info = dataplane_info(endpoint)  # the local listener's port and its stand-in for Amazon Root CA 1
claim = [os.path.join(bundle, config[name]) for name in ("cert", "key")]
client_id = config["client_id"].replace("<unique per device>", "001")
got = provision(info, *claim, client_id, config["template_name"], {"SerialNumber": "001"}, folder, use_csr=True)
if got.outcome != "accepted":
    sys.exit(f"fleet provisioning refused the device: {got.error_code}: {got.error_message}")
print(f"{client_id} got certificate {got.certificate_id[:12]}... and thing {got.thing_name}")
with Device(info, got.cert_file, got.key_file, got.thing_name) as device:
    device.subscribe(f"devices/{got.thing_name}/#")
    device.publish(f"devices/{got.thing_name}/hello", json.dumps({"thing": got.thing_name, "status": "online"}))
    topic, payload = device.receive()
    print(f"first message received on {topic}: {payload.decode()}")
PY
echo
echo "== demo done. Local AWS IoT endpoint: $endpoint (stopped now). Files written:"
find "$out" -type f -printf '%m %p\n' | sort -k2
