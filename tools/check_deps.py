#!/usr/bin/env python3
"""Checks that modules under src/ include only the modules they may depend on.

The table is docs/architecture.md's; a lower module never includes a higher one, and the data
plane (net, l4, l7, http, tls, balance, snapshot) never includes config, store or api.
Prints one line per violation and exits 1 if there is any; prints nothing and exits 0 otherwise.
"""
import pathlib
import re
import sys

ALLOWED = {
    "base": set(),
    "net": {"base"},
    "tls": {"base", "net"},
    "http": {"base"},
    "balance": {"base"},
    "snapshot": {"base", "net", "balance", "tls"},
    "config": {"base", "net", "balance", "tls", "snapshot"},
    "health": {"base", "net", "http", "tls", "snapshot"},
    "l4": {"base", "net", "balance", "snapshot"},
    "l7": {"base", "net", "http", "tls", "balance", "snapshot"},
    "store": {"base", "net"},  # net: the etcd store runs on the control loop
    "api": {"base", "config", "store", "http", "snapshot", "net", "balance"},
    "metrics": {"base", "store"},
    "metering": {"base", "store"},
    "cluster": {"base", "net", "store", "snapshot"},
    "gslb": {"base", "net", "store", "snapshot"},
    "client": {"base", "net", "http"},  # the admin API's client (fulcrumctl, tests)
    "server": None,  # the composition root may include everything
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([a-z0-9_]+)/')


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    problems = []
    for path in sorted((root / "src").rglob("*")):
        if path.suffix not in (".h", ".cc"):
            continue
        module = path.relative_to(root / "src").parts[0]
        if module not in ALLOWED:
            problems.append(f"{path.relative_to(root)}: module '{module}' is not in the table")
            continue
        allowed = ALLOWED[module]
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            dep = m.group(1)
            if dep == module or allowed is None:
                continue
            if dep not in allowed:
                problems.append(f"{path.relative_to(root)}:{lineno}: {module} must not include {dep}/")
    for path in sorted((root / "tools").rglob("*")):
        if path.suffix in (".h", ".cc"):
            for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if m and (root / "src" / m.group(1)).is_dir():
                    problems.append(f"{path.relative_to(root)}:{lineno}: tools must not include src/")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
