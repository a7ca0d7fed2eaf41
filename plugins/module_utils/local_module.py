# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the local-crypto modules (csr, local_ca, device_certificate) end: one place for errors and the result.

Each module's ``main()`` declares its options and hands an ``action`` to ``run_local``. The action returns the
module's result, built from an ``ensure.Ensured`` by ``local_result`` (as ``IoTModule.result`` does for the AWS
modules: changed, the extras, the fields, the diff when asked); ``run_local`` turns the three failures these
modules know (a broken rule of the input, unusable key or certificate material, a file that cannot be
written) into a message that names the field or the file. Nothing here imports the AWS core.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import result as ensured_result
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

LocalAction = Callable[[], Dict[str, Any]]


def local_result(
    module: AnsibleModule, done: Ensured, view: Optional[Callable[[Any], Any]] = None, **fields: Any
) -> Dict[str, Any]:
    """The module's result from an ensure_* outcome: changed, its extras, ``fields``, the diff when asked."""
    return ensured_result(done, bool(module._diff), view, **fields)


def run_local(module: AnsibleModule, action: LocalAction, files: str, crypto_field: str = "") -> None:
    """Run ``action`` and exit the module; ``files`` names what an OSError could not write."""
    if not crypto.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=crypto.CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        result = action()
    except ValidationError as error:
        module.fail_json(msg=str(error))
    except crypto.CryptoError as error:
        module.fail_json(msg=f"{crypto_field}: {error}" if crypto_field else str(error))
    except OSError as error:
        module.fail_json(msg=f"Could not write {files}: {error}")
    module.exit_json(**result)
