"""The collection as users get it: built, installed, documented, grouped."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
import yaml
from harness import REPO

BIN = os.path.dirname(sys.executable)
MODULES = sorted(
    os.path.splitext(os.path.basename(path))[0]
    for path in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
    if not os.path.basename(path).startswith("_")
)


def _tool(name: str) -> str:
    candidate = os.path.join(BIN, name)
    return candidate if os.path.exists(candidate) else name


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, **kwargs)


@pytest.fixture(scope="module")
def installed_collections(tmp_path_factory) -> str:
    """Build the artifact with ansible-galaxy and install it into an empty collections path."""
    work = tmp_path_factory.mktemp("galaxy")
    build = _run([_tool("ansible-galaxy"), "collection", "build", "--output-path", str(work), REPO])
    assert build.returncode == 0, build.stderr
    artifacts = glob.glob(str(work / "iotfleet-provisioning-*.tar.gz"))
    assert len(artifacts) == 1, artifacts
    install_path = work / "collections"
    install = _run(
        [_tool("ansible-galaxy"), "collection", "install", "--offline", "-p", str(install_path), artifacts[0]]
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return str(install_path)


def test_artifact_leaves_out_development_files(installed_collections):
    root = os.path.join(installed_collections, "ansible_collections", "iotfleet", "provisioning")
    assert os.path.isfile(os.path.join(root, "plugins", "module_utils", "aws.py"))
    assert os.path.isfile(os.path.join(root, "meta", "runtime.yml"))
    for unwanted in (".venv", ".ci", "build", "tests/output", "demo-output"):
        assert not os.path.exists(os.path.join(root, unwanted)), unwanted


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_from_the_installed_artifact(module, installed_collections):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=installed_collections, ANSIBLE_NOCOLOR="1")
    result = _run([_tool("ansible-doc"), "-t", "module", f"iotfleet.provisioning.{module}"], env=env)
    assert result.returncode == 0, result.stderr
    assert f"iotfleet.provisioning.{module}" in result.stdout
    assert "EXAMPLES" in result.stdout
    assert "RETURN VALUES" in result.stdout


def _aws_modules() -> list[str]:
    """Modules that take the AWS options (they extend the aws doc fragment); local-crypto modules do not."""
    names = []
    for module in MODULES:
        with open(os.path.join(REPO, "plugins", "modules", f"{module}.py")) as handle:
            if "- iotfleet.provisioning.aws\n" in handle.read():
                names.append(module)
    return names


def test_action_group_lists_every_aws_module_and_extends_amazon_aws():
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        runtime = yaml.safe_load(handle)
    group = runtime["action_groups"]["aws"]
    listed = sorted(item for item in group if isinstance(item, str))
    assert listed == _aws_modules()
    assert "csr" not in listed  # takes no AWS options: module_defaults for the group would break it
    metadata = [item["metadata"] for item in group if isinstance(item, dict)]
    assert metadata == [{"extend_group": ["amazon.aws.aws"]}]
    assert runtime["requires_ansible"] == ">=2.17.0"
