"""Code versions for dbt nodes that see macros, ephemeral models, snapshot configs and what a
node reads from outside the project's SQL.

dagster-dbt's default code version hashes only a node's own SQL, so
`AutomationCondition.code_version_changed()` misses a change to a macro the model calls
(dagster#22566), to an ephemeral model it selects from (ephemeral models are not assets),
or to a YAML snapshot's config (its SQL is generated). A release refuses to promote models built
by two code versions (dagster_code/release.py), so a version must also change with everything
else deployed that changes what the node builds. Here a node's version hashes:

- its own code and its config,
- the SQL of every macro it calls, recursively (a node's `depends_on.macros` lists only
  direct callees; each macro lists its own),
- the code version of every ephemeral node it depends on, recursively,
- its inputs (`node_inputs`): the materialization macro that builds it and every macro that one
  calls (dbt picks it by name at run time, so no `depends_on` lists it), the relation of each
  source it reads (not its descriptions or tests), and the contents of each seed it reads or is.

What is not tied to one node (vars, dbt's and the packages' versions) is the release's
(dagster_code/release_fingerprint.py). `adapter.dispatch` is resolved when dbt parses, so the
same project gets different code versions per adapter: correct, since the SQL that runs differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Config keys that do not change what a node computes: documentation and bookkeeping.
IGNORED_CONFIG_KEYS = frozenset({"meta", "tags", "docs", "group", "persist_docs", "contract"})
# What decides which relation a source names; its descriptions, tests and freshness do not.
SOURCE_RELATION_FIELDS = ("database", "schema", "identifier", "quoting")
# The package of dbt's own macros; an adapter's is `dbt_<adapter>`.
DBT_CORE_PACKAGE = "dbt"
# Where a materialization macro comes from, most preferred first, as dbt ranks them.
ROOT, IMPORTED, BUILT_IN = 0, 1, 2


def _macro_closure(manifest: Mapping[str, Any], macro_ids: list[str]) -> list[str]:
    """Every macro reachable from `macro_ids`, sorted, each once (cycles are harmless)."""
    seen: set[str] = set()
    pending = list(macro_ids)
    while pending:
        macro_id = pending.pop()
        if macro_id in seen:
            continue
        seen.add(macro_id)
        macro = manifest["macros"].get(macro_id)
        if macro is not None:
            pending.extend(macro.get("depends_on", {}).get("macros", []))
    return sorted(seen)


def _hash_macros(manifest: Mapping[str, Any], macro_ids: list[str], hasher: hashlib._Hash) -> None:
    for macro_id in _macro_closure(manifest, macro_ids):
        macro = manifest["macros"].get(macro_id, {})
        hasher.update(macro_id.encode())
        hasher.update(macro.get("macro_sql", "").encode())


def materialization_macro_id(manifest: Mapping[str, Any], materialized: str) -> str | None:
    """The macro dbt runs for `materialized`, chosen as dbt's `find_materialization_macro_by_name`
    does: `materialization_<name>_<adapter>` before `materialization_<name>_default`, and for each
    the root project's own before another package's before dbt's built-in one; another package's
    never replaces a built-in one (dbt's default since 1.8). None for `ephemeral`, which no macro
    builds. Adapters that inherit another's (dbt's parent adapter chain) are not followed."""
    adapter = manifest["metadata"].get("adapter_type", "")
    root = manifest["metadata"].get("project_name", "")
    built_in = (DBT_CORE_PACKAGE, f"dbt_{adapter}")
    candidates = []  # (specificity, locality, macro id): the smallest wins
    for specificity, suffix in enumerate((adapter, "default")):
        name = f"materialization_{materialized}_{suffix}"
        for macro in manifest["macros"].values():
            if macro["name"] == name:
                package = macro["package_name"]
                locality = ROOT if package == root else BUILT_IN if package in built_in else IMPORTED
                candidates.append((specificity, locality, macro["unique_id"]))
    if not candidates:
        return None
    chosen = min(candidates)
    if chosen[1] == IMPORTED and any(locality == BUILT_IN for _, locality, _ in candidates):
        chosen = min(candidate for candidate in candidates if candidate[1] != IMPORTED)
    return chosen[2]


class CodeVersions:
    """The code versions of one manifest's nodes. A materialization's macros (dozens, the same for
    most nodes) are hashed once per manifest, not once per node."""

    def __init__(self, manifest: Mapping[str, Any]):
        self.manifest = manifest
        self._materializations: dict[str, str | None] = {}

    def _materialization_digest(self, materialized: str) -> str | None:
        if materialized not in self._materializations:
            macro_id = materialization_macro_id(self.manifest, materialized)
            digest = None
            if macro_id is not None:
                hasher = hashlib.sha256()
                _hash_macros(self.manifest, [macro_id], hasher)
                digest = hasher.hexdigest()[:16]
            self._materializations[materialized] = digest
        return self._materializations[materialized]

    def node_inputs(self, unique_id: str) -> dict[str, str]:
        """{what: its digest} for what `unique_id` reads outside its own SQL (through ephemeral
        models too), named as a refused release names it: "materialization 'table'",
        "source 'crm.accounts'", "seed 'country_codes' contents"."""
        inputs: dict[str, str] = {}
        pending, seen = [unique_id], set()
        while pending:
            node_id = pending.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            node = self.manifest["nodes"][node_id]
            materialized = node.get("config", {}).get("materialized")
            digest = self._materialization_digest(materialized) if materialized else None
            if digest is not None:
                inputs[f"materialization '{materialized}'"] = digest
            if node["resource_type"] == "seed":
                checksum = node.get("checksum", {})
                inputs[f"seed '{node['name']}' contents"] = f"{checksum.get('name')}:{checksum.get('checksum')}"
            for parent_id in node.get("depends_on", {}).get("nodes", []):
                if parent_id in self.manifest.get("sources", {}):
                    source = self.manifest["sources"][parent_id]
                    relation = {field: source.get(field) for field in SOURCE_RELATION_FIELDS}
                    inputs[f"source '{source['source_name']}.{source['name']}'"] = hashlib.sha256(
                        json.dumps(relation, sort_keys=True, default=str).encode()
                    ).hexdigest()[:16]
                    continue
                parent = self.manifest["nodes"].get(parent_id)
                if parent is None:
                    continue
                if parent["resource_type"] == "seed" or parent.get("config", {}).get("materialized") == "ephemeral":
                    pending.append(parent_id)
        return inputs

    def _hash_node_code(self, unique_id: str, hasher: hashlib._Hash) -> None:
        node = self.manifest["nodes"][unique_id]
        config = {k: v for k, v in node.get("config", {}).items() if k not in IGNORED_CONFIG_KEYS}
        hasher.update(unique_id.encode())
        hasher.update(node.get("raw_code", node.get("raw_sql", "")).encode())
        hasher.update(json.dumps(config, sort_keys=True, default=str).encode())
        depends_on = node.get("depends_on", {})
        _hash_macros(self.manifest, depends_on.get("macros", []), hasher)
        for parent_id in sorted(depends_on.get("nodes", [])):
            parent = self.manifest["nodes"].get(parent_id)
            if parent is not None and parent.get("config", {}).get("materialized") == "ephemeral":
                self._hash_node_code(parent_id, hasher)

    def of(self, unique_id: str) -> str:
        """A stable hash of everything that decides what `unique_id` computes."""
        hasher = hashlib.sha256()
        self._hash_node_code(unique_id, hasher)
        hasher.update(json.dumps(self.node_inputs(unique_id), sort_keys=True).encode())
        return hasher.hexdigest()[:16]


def macro_aware_code_version(manifest: Mapping[str, Any], unique_id: str) -> str:
    """`CodeVersions(manifest).of(unique_id)`, for one node."""
    return CodeVersions(manifest).of(unique_id)
