#!/usr/bin/env bash
# Run ansible-test (sanity by default) offline-friendly.
#
# ansible-test wants the collection at .../ansible_collections/iotfleet/provisioning
# and does not follow symlinks, so the files git knows are copied into such a tree.
# Its pip bootstrap downloads get-pip.py from a host this network cannot reach;
# a cached stand-in that uses ensurepip is written first (see TESTING.md).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv_bin=${VENV_BIN:-$repo/.venv/bin}
work=${ANSIBLE_TEST_WORKDIR:-$repo/build/ansible-test}
dest=$work/ansible_collections/iotfleet/provisioning

cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
for version in 24_2 24_0 23_1 25_0; do
  cat > "$cache/get_pip_$version.py" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then pip with the given arguments."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PY
done

rm -rf "$dest"
mkdir -p "$dest"
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$dest/")
# ansible-test needs a git tree to know which files belong to the collection.
(cd "$dest" && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm snapshot)

cd "$dest"
if [ "$#" -eq 0 ]; then
  set -- sanity --venv --python 3.11
fi
exec "$venv_bin/ansible-test" "$@"
