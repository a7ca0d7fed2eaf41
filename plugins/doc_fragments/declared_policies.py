# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The declared_resources option of the modules that attach policies by name (the fleet module has its own,
    # with thing types too).
    DOCUMENTATION = r"""
options:
  declared_resources:
    description:
      - Policies that earlier tasks of the same play create, so that a first C(--check) plans. In check mode
        those tasks only predict the creation; a policy this task names that does not exist and is listed here
        is planned as made by them instead of failing. Outside check mode it must exist.
    type: dict
    suboptions:
      policies:
        description: Policy names.
        type: list
        elements: str
"""
