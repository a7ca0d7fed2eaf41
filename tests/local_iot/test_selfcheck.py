"""The endpoint refuses to start, naming the fix, when moto no longer fits one of its fixes.

Each case starts ``server.py`` in a child process after changing moto (or a fix) the way a new moto release
could, and expects exit code 3 with the fix's name on stderr instead of an endpoint that serves moto's answers.
"""

from __future__ import annotations

import os
import subprocess
import sys

import launcher
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# Run server.main() after ``sabotage`` (Python source) changed what the fixes rely on.
RUNNER = """
import sys
sys.path.insert(0, {here!r})
{sabotage}
import server
server.main(["--port", "{port}"])
"""

CASES = {
    # A moto whose IoTResponse lost a method a fix wraps: the fix cannot install.
    "method gone": (
        "from moto.iot.responses import IoTResponse\ndel IoTResponse.list_things_in_thing_group",
        "fix 'fidelity_things.list_things_in_thing_group' does not fit this moto",
    ),
    # A moto that answers a list in a shape the paging fix does not know (moto 5.2.6 re-paged our page).
    "answer shape changed": (
        "from moto.core.responses import ActionResult\nfrom moto.iot.responses import IoTResponse\n"
        "IoTResponse.list_things = lambda self: ActionResult([])",
        "'paging of ListThings' does not fit this moto",
    ),
    # A fix still installs, but its answer is no longer AWS's: the list loses its token.
    "token dropped": (
        "import fidelity_paging\n_page = fidelity_paging.page\n"
        "fidelity_paging.page = lambda items, limit, token: (_page(items, limit, token)[0], None)",
        "fix 'paging of list_things': AWS answers 2 items and a nextToken",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_endpoint_refuses_to_start_naming_the_fix(case: str) -> None:
    sabotage, named = CASES[case]
    code = RUNNER.format(here=HERE, sabotage=sabotage, port=launcher.free_port())
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "false"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "local AWS IoT endpoint refuses to start" in done.stderr
    assert named in done.stderr
