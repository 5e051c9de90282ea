"""``alerting`` never imports the collector: it runs on what the daemon hands it (a reader, a
ledger connection), so it is tested and reused without it."""

import subprocess
import sys

IMPORT_ALL = """
import importlib, pkgutil, sys
import alerting
for module in pkgutil.walk_packages(alerting.__path__, "alerting."):
    importlib.import_module(module.name)
print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] == "collector")))
"""


def test_no_module_of_alerting_imports_the_collector():
    found = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=True
    )
    assert found.stdout.split() == []
