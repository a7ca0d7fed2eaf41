#!/usr/bin/env bash
# make test-matrix: each ansible-core minor version the collection claims (meta/runtime.yml requires_ansible)
# that this machine's Python runs, at an exact patch release: ansible-test sanity and one integration target
# (tests/integration/test_targets.py's `thing`: check mode, apply, idempotence, diff, removal).
# Not part of `make test` (several minutes per version). ansible-core 2.20 and newer need Python 3.12, so they
# are not in this list while the machine has Python 3.11; they are claimed by requires_ansible's open upper end
# but untested here (README, "Supported versions").
#
#   make test-matrix                       # every version below
#   make test-matrix VERSIONS="2.17.14"    # one
#
# Each version gets its own virtual environment (build/matrix/<version>) from constraints.txt, with only the
# ansible-core pin replaced, and its own ansible-test tree, so it never touches .venv or build/ansible-test.
# Results: build/matrix/results.txt, one line per version and step (a version run again replaces its lines).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3}
versions=${VERSIONS:-"2.17.14 2.18.19 2.19.14"}
target=${MATRIX_TARGET:-thing}
out=build/matrix
mkdir -p "$out"
results=$out/results.txt
touch "$results"
status=0

for version in $versions; do
  # A version's lines replace those of its previous run; other versions' lines stay.
  grep -v "^$version " "$results" > "$results.new" || true
  mv "$results.new" "$results"
  venv=$out/$version
  if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    grep -v '^ansible-core==\|^ansible-lint==\|^ansible-compat==\|^resolvelib==' constraints.txt > "$out/constraints-$version.txt"
    echo "ansible-core==$version" >> "$out/constraints-$version.txt"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$out/constraints-$version.txt" \
        "ansible-core==$version" -r requirements.txt -r tests/unit/requirements.txt \
        -r tests/integration/requirements.txt > "$out/install-$version.log" 2>&1; then
      echo "$version install FAILED (see $out/install-$version.log)" | tee -a "$results"
      status=1
      continue
    fi
    touch "$venv/.installed"
  fi
  actual=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')

  # ansible-test downloads get-pip for its own pinned pip version from a host this network cannot reach; the
  # stand-in scripts/ansible_test.sh writes (ensurepip, then pip) is cached under this version's name as well.
  pip_version=$(grep -ohP "pip='\K[0-9.]+" "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py | head -1)
  cache=$HOME/.ansible/test/cache
  if [ -n "$pip_version" ] && [ ! -f "$cache/get_pip_${pip_version//./_}.py" ]; then
    VENV_BIN=$repo/$venv/bin ANSIBLE_TEST_WORKDIR=$repo/$out/ansible-test-$version \
      bash scripts/ansible_test.sh --version > /dev/null 2>&1 || true  # writes the stand-in
    cp "$cache/get_pip_24_2.py" "$cache/get_pip_${pip_version//./_}.py"
  fi

  start=$(date +%s)
  if VENV_BIN=$repo/$venv/bin ANSIBLE_TEST_WORKDIR=$repo/$out/ansible-test-$version \
      bash scripts/ansible_test.sh sanity --venv --python 3.11 > "$out/sanity-$version.log" 2>&1; then
    verdict=passed
  else
    verdict=FAILED
    status=1
  fi
  echo "$actual sanity $verdict in $(( $(date +%s) - start )) s (log $out/sanity-$version.log)" | tee -a "$results"

  start=$(date +%s)
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/integration/test_targets.py \
      -k "test_target[$target]" > "$out/integration-$version.log" 2>&1; then
    verdict=passed
  else
    verdict=FAILED
    status=1
  fi
  echo "$actual integration target $target $verdict in $(( $(date +%s) - start )) s" \
    "(log $out/integration-$version.log)" | tee -a "$results"
done
echo "Results in $results"
exit $status
