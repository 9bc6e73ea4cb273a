"""dbt's `fqn` node selection from an index, for runs that select thousands of nodes by name.

A subset run (a retry from asset failure, a run of a few assets) names its dbt nodes one
criterion each, by fully qualified name (dagster-dbt puts them in a selector of the run's own
above 200). dbt evaluates each criterion by matching it against every node of the project
(`QualifiedNameSelectorMethod.search`), so the selection costs criteria x nodes: on the
benchmark's 5,000-model project, a retry that selected 3,507 models spent 14 minutes in it
before dbt started the first model (py-spy). Here a criterion without a wildcard reads its
matches from an index of the nodes' names and name prefixes, built once per set of nodes, with
the rules of dbt's `is_selected_node`; a criterion with a wildcard goes to dbt's own search.
tests/test_dbt_selection.py checks both select the same nodes for every name and prefix of
a project's nodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dbt.graph.selector_methods import QualifiedNameSelectorMethod

DBT_SEARCH = QualifiedNameSelectorMethod.search
# What makes a part of a selector a pattern in is_selected_node.
WILDCARDS = ("*", "?", "[", "]")


@dataclass
class FqnIndex:
    """Node ids by what a selector without wildcards can equal: the node's name (the model's
    name for a versioned model), a versioned model's `name_vN`, or a prefix of its fqn's parts."""

    by_name: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_version: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_prefix: dict[tuple[str, ...], set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def of(cls, nodes: Iterable[tuple[str, Any]]) -> FqnIndex:
        index = cls()
        for unique_id, node in nodes:
            # dbt tries the fqn, then the fqn without its package (a match in any package).
            for fqn in (node.fqn, node.fqn[1:]):
                if not fqn:
                    continue
                if node.is_versioned:
                    index.by_name[fqn[-2]].add(unique_id)
                    index.by_version["_".join(fqn[-2:])].add(unique_id)
                else:
                    index.by_name[fqn[-1]].add(unique_id)
                # Dots in a part of the fqn separate parts too.
                parts = tuple(part for segment in fqn for part in segment.split("."))
                for end in range(1, len(parts) + 1):
                    index.by_prefix[parts[:end]].add(unique_id)
        return index

    def matches(self, selector: str) -> set[str]:
        parts = selector.split(".")
        return (
            self.by_name.get(selector, set())
            | self.by_version.get("_".join(parts[-2:]), set())
            | self.by_prefix.get(tuple(parts), set())
        )


@dataclass
class _LastIndex:
    """The index of the last (manifest, nodes) searched: one dbt invocation searches one graph."""

    manifest: Any = None
    included_nodes: frozenset[str] = frozenset()
    index: FqnIndex | None = None

    def of(self, method: QualifiedNameSelectorMethod, included_nodes: set[str]) -> FqnIndex:
        if self.index is None or method.manifest is not self.manifest or included_nodes != self.included_nodes:
            self.index = FqnIndex.of(method.non_source_nodes(included_nodes))
            self.manifest, self.included_nodes = method.manifest, frozenset(included_nodes)
        return self.index


_last_index = _LastIndex()


def indexed_search(self: QualifiedNameSelectorMethod, included_nodes: set[str], selector: str) -> Iterator[str]:
    if any(wildcard in selector for wildcard in WILDCARDS):
        yield from DBT_SEARCH(self, included_nodes, selector)
    else:
        yield from _last_index.of(self, included_nodes).matches(selector)


def install() -> None:
    """Makes this process's dbt select by fqn through the index."""
    QualifiedNameSelectorMethod.search = indexed_search
