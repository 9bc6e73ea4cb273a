"""Code versions for dbt nodes that see macros, ephemeral models and snapshot configs.

dagster-dbt's default code version hashes only a node's own SQL, so
`AutomationCondition.code_version_changed()` misses a change to a macro the model calls
(dagster#22566), to an ephemeral model it selects from (ephemeral models are not assets),
or to a YAML snapshot's config (its SQL is generated). Here a node's version hashes:

- its own code and its config,
- the SQL of every macro it calls, recursively (a node's `depends_on.macros` lists only
  direct callees; each macro lists its own),
- the code version of every ephemeral node it depends on, recursively.

`adapter.dispatch` is resolved when dbt parses, so the same project gets different code
versions per adapter: correct, since the SQL that runs differs too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Config keys that do not change what a node computes: documentation and bookkeeping.
IGNORED_CONFIG_KEYS = frozenset({"meta", "tags", "docs", "group", "persist_docs", "contract"})


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


def _node_fingerprint(manifest: Mapping[str, Any], unique_id: str, hasher: hashlib._Hash) -> None:
    node = manifest["nodes"][unique_id]
    config = {k: v for k, v in node.get("config", {}).items() if k not in IGNORED_CONFIG_KEYS}
    hasher.update(unique_id.encode())
    hasher.update(node.get("raw_code", node.get("raw_sql", "")).encode())
    hasher.update(json.dumps(config, sort_keys=True, default=str).encode())
    depends_on = node.get("depends_on", {})
    for macro_id in _macro_closure(manifest, depends_on.get("macros", [])):
        macro = manifest["macros"].get(macro_id, {})
        hasher.update(macro_id.encode())
        hasher.update(macro.get("macro_sql", "").encode())
    for parent_id in sorted(depends_on.get("nodes", [])):
        parent = manifest["nodes"].get(parent_id)
        if parent is not None and parent.get("config", {}).get("materialized") == "ephemeral":
            _node_fingerprint(manifest, parent_id, hasher)


def macro_aware_code_version(manifest: Mapping[str, Any], unique_id: str) -> str:
    """A stable hash of everything that decides what `unique_id` computes."""
    hasher = hashlib.sha256()
    _node_fingerprint(manifest, unique_id, hasher)
    return hasher.hexdigest()[:16]
