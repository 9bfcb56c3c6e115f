"""Write the catalog of node types (and their versions) an installed n8n engine knows.

    .venv/bin/python n8n/catalog.py [--engine var/n8n-engine] [--out n8n/node_types_<version>.json]

Reads the node descriptions n8n ships (`dist/types/nodes.json` of n8n-nodes-base and of
@n8n/n8n-nodes-langchain) under the engine's node_modules (`scripts/n8n-engine install` puts it
in var/n8n-engine). tests/n8n/test_workflow_structure.py checks the workflow against the committed
catalog, so that test runs everywhere without n8n; regenerate the catalog when the engine's n8n
version changes.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Node package → the prefix of its node types in a workflow ("type": "<prefix>.<name>").
PACKAGES = {
    "n8n-nodes-base": "n8n-nodes-base",
    "@n8n/n8n-nodes-langchain": "@n8n/n8n-nodes-langchain",
}


def _versions(value: Any) -> list[float | int]:
    return [value] if isinstance(value, int | float) else list(value)


def catalog_build(engine: Path) -> dict[str, Any]:
    modules = engine / "node_modules"
    n8n_version = json.loads((modules / "n8n" / "package.json").read_text())["version"]
    node_types: dict[str, set[float | int]] = {}
    credential_types: set[str] = set()
    packages = {}
    for package, prefix in PACKAGES.items():
        folder = modules / package
        packages[package] = json.loads((folder / "package.json").read_text())["version"]
        types = folder / "dist" / "types"
        # A versioned node is listed once per group of versions sharing a description.
        for node in json.loads((types / "nodes.json").read_text()):
            name = f"{prefix}.{node['name']}"
            node_types.setdefault(name, set()).update(_versions(node["version"]))
        credential_types.update(
            c["name"] for c in json.loads((types / "credentials.json").read_text())
        )
    return {
        "n8n": n8n_version,
        "packages": packages,
        "generated_by": "n8n/catalog.py",
        "node_types": {name: sorted(node_types[name]) for name in sorted(node_types)},
        "credential_types": sorted(credential_types),
    }


def catalog_dump(catalog: dict[str, Any]) -> str:
    """One node type per line: a new engine shows up as a readable diff."""
    lines = ["{"]
    for key in ("n8n", "packages", "generated_by"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(catalog[key])},")
    lines.append('  "node_types": {')
    types = list(catalog["node_types"].items())
    for index, (name, versions) in enumerate(types):
        comma = "," if index < len(types) - 1 else ""
        lines.append(f"    {json.dumps(name)}: {json.dumps(versions)}{comma}")
    lines.append("  },")
    lines.append('  "credential_types": [')
    creds = catalog["credential_types"]
    for index, name in enumerate(creds):
        comma = "," if index < len(creds) - 1 else ""
        lines.append(f"    {json.dumps(name)}{comma}")
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engine", type=Path, default=ROOT / "var" / "n8n-engine")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        catalog = catalog_build(args.engine)
    except FileNotFoundError as exc:
        print(f"no n8n engine at {args.engine}: {exc.filename} is missing", file=sys.stderr)
        print("install it with: scripts/n8n-engine install", file=sys.stderr)
        return 1
    out = args.out or ROOT / "n8n" / f"node_types_{catalog['n8n']}.json"
    out.write_text(catalog_dump(catalog))
    print(f"{out}: {len(catalog['node_types'])} node types of n8n {catalog['n8n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
