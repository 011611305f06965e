"""Trellis's test suite.

Every worker the suite starts, in this process or as a child process (which inherits the environment),
runs its workflows in Temporal's sandbox, so a non-deterministic call on any workflow path the tests
drive fails the test. The worker runs them unsandboxed by default (decision 0026); the tests that run
the stack as `make run` starts it (tests/platform/test_faults.py) turn the sandbox off again.
"""

import os

os.environ.setdefault("TRELLIS_WORKFLOW_SANDBOX", "true")
