"""Hides the AWS Common Runtime from the Ansible processes the integration tests start.

awscrt is a test dependency (the device SDK the data-plane tests connect with), not a requirement of the collection.
botocore imports it at start-up whenever it is installed (about 0.08 s of CPU in every module run, some 10% of a
module's CPU here), so with it visible the tests would run the modules on a controller unlike the one the collection's
requirements describe, and slower. ansible_env() in harness.py puts this directory first on PYTHONPATH; botocore treats
the ImportError as "no CRT", as on a controller without the device SDK.
"""

raise ImportError("awscrt is hidden from Ansible processes in the integration tests (see this file's docstring)")
