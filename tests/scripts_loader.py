"""The one way tests import the command-line scripts under scripts/ (they are not a package): each script is
loaded once per test session and registered in ``sys.modules`` under its own name, so every test module sees the
same module object (and dataclasses can look their module up)."""
import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(SCRIPTS / f"{name}.py"):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
