"""The numbers app: phone-number inventory, leases, pools and inbound messages.

The package name is the one ARCHITECTURE.md gives, and it shadows the standard
library's `numbers` module (the abstract number classes that decimal,
fractions, json and Django import). So that both keep working, this file first
runs the standard library module's own code in this namespace: `numbers.Number`
and friends are exactly the standard classes, and `numbers.models` etc. are
this app. tests/test_stdlib_shim.py guards it.
"""
import os as _os
import sysconfig as _sysconfig

_STDLIB_NUMBERS = _os.path.join(_sysconfig.get_paths()["stdlib"], "numbers.py")
with open(_STDLIB_NUMBERS, encoding="utf-8") as _source:
    exec(compile(_source.read(), _STDLIB_NUMBERS, "exec"))  # noqa: S102 - the standard library's own file
