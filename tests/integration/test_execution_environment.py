"""The execution environment: the image definition (docs/execution-environment/) makes a build context with
`ansible-builder create`, and the collection artifact carries meta/execution-environment.yml so that
ansible-builder's introspection finds requirements.txt and bindep.txt in it. No container runtime is needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import yaml
from harness import REPO

BIN = os.path.dirname(sys.executable)


def _run(*args: str, cwd: str | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, cwd=cwd)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _requirement_lines(path: str) -> list[str]:
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def test_execution_environment_context_and_introspection(tmp_path) -> None:
    built = tmp_path / "artifact"
    _run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(built), REPO)
    (artifact,) = list(built.glob("iotfleet-provisioning-*.tar.gz"))

    # The definition as the docs tell users to use it: the artifact copied to build/iotfleet-provisioning.tar.gz.
    checkout = tmp_path / "checkout"
    shutil.copytree(os.path.join(REPO, "docs", "execution-environment"), checkout / "docs" / "execution-environment")
    (checkout / "build").mkdir()
    shutil.copy(artifact, checkout / "build" / "iotfleet-provisioning.tar.gz")
    definition = checkout / "docs" / "execution-environment" / "execution-environment.yml"
    context = tmp_path / "context"
    _run(os.path.join(BIN, "ansible-builder"), "create", "-f", str(definition), "-c", str(context))

    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "introspect" in containerfile  # the collections' own requirements are read inside the build
    copied = context / "_build" / "collections" / "iotfleet-provisioning.tar.gz"
    assert copied.read_bytes() == artifact.read_bytes()
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": "/build/collections/iotfleet-provisioning.tar.gz", "type": "file"}]

    # The image's ansible-core range starts where meta/runtime.yml's requires_ansible does.
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        requires = yaml.safe_load(handle)["requires_ansible"]
    spec = yaml.safe_load(definition.read_text())["dependencies"]["ansible_core"]["package_pip"]
    assert requires.split(",")[0] in spec, (requires, spec)

    # Introspection of the installed artifact: exactly requirements.txt and bindep.txt, attributed to us.
    collections = tmp_path / "collections"
    _run(os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", str(collections), str(artifact))
    found = yaml.safe_load(_run(os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", str(collections)))
    suffix = "  # from collection iotfleet.provisioning"
    assert found["python"] == [line + suffix for line in _requirement_lines(os.path.join(REPO, "requirements.txt"))]
    assert found["system"] == [line + suffix for line in _requirement_lines(os.path.join(REPO, "bindep.txt"))]
    assert any(line.startswith("boto3") for line in found["python"])
