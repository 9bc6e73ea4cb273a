"""Generated dbt projects for the scale case (issue 14, case 6): the example plus N generated
models laid out as a team's project is (sources, staging views, layers of intermediate tables,
marts), with snapshots in both snapshot domains and dbt tests, so that every feature the platform
derives from a manifest (release and promotion, asset checks, snapshot jobs and pools, the
example's microbatch and incremental models) is derived at that size.

Every generated source is another name for one of the example's raw tables (dbt's `identifier`),
so a release builds on the rows `raw_data_job` loads. Each generated node carries the same three
columns (id, updated_at, fingerprint), so any node can read any other. A model of a layer joins
two models of the layer before it: dbt's threads meet a graph as wide as a layer and as deep as
the layers, not N independent nodes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from k8s_tests.bench.synthetic_project import SYNTHETIC_PROJECTS_DIR, copy_example

# The example's raw tables the generated sources name, and their keys.
RAW_TABLES = {"orders": "order_id", "customers": "customer_id", "products": "product_id"}
# The snapshot domains of the example's dbt_project.yml (a folder each, a pool each).
SNAPSHOT_DOMAINS = ("sales", "inventory")
INTERMEDIATE_LAYERS = 8
GENERATED = "generated"
SOURCE_NAME = "generated_raw"


@dataclass(frozen=True)
class Shape:
    """How many nodes of each kind a project of `models` generated models has."""

    models: int

    @property
    def sources(self) -> int:
        return max(1, self.models // 50)

    @property
    def staging(self) -> int:
        return max(1, self.models // 10)

    @property
    def marts(self) -> int:
        return max(1, self.models // 5)

    @property
    def intermediate(self) -> int:
        return self.models - self.staging - self.marts

    @property
    def snapshots(self) -> int:
        return max(len(SNAPSHOT_DOMAINS), self.models // 100)

    def describe(self) -> str:
        return (
            f"{self.models} models ({self.staging} staging, {self.intermediate} intermediate in "
            f"{INTERMEDIATE_LAYERS} layers, {self.marts} marts), {self.sources} sources, "
            f"{self.snapshots} snapshots"
        )


def project_dir(models: int) -> Path:
    return SYNTHETIC_PROJECTS_DIR / f"scale_{models}"


def source_table(index: int) -> tuple[str, str]:
    """The generated source's name, and the raw table it names."""
    raw = list(RAW_TABLES)[index % len(RAW_TABLES)]
    return f"raw_{index:04d}", raw


def sources_yaml(shape: Shape) -> str:
    tables = []
    for index in range(shape.sources):
        name, raw = source_table(index)
        tables.append(
            f"      - name: {name}\n"
            f"        identifier: {raw}\n"
            f"        columns:\n"
            f"          - name: {RAW_TABLES[raw]}\n"
            f"            data_tests: [not_null]\n"
        )
    return f"version: 2\n\nsources:\n  - name: {SOURCE_NAME}\n    schema: raw\n    tables:\n" + "".join(tables)


def staging_sql(index: int, shape: Shape) -> str:
    name, raw = source_table(index % shape.sources)
    key = RAW_TABLES[raw]
    return (
        f"select {key} as id, updated_at, md5(cast({key} as varchar)) as fingerprint\n"
        f"from {{{{ source('{SOURCE_NAME}', '{name}') }}}}\n"
    )


def joined_sql(left: str, right: str, salt: str) -> str:
    """Two nodes joined on id: a real join, cheap on the example's rows."""
    return (
        "select l.id, l.updated_at, md5(l.fingerprint || coalesce(r.fingerprint, '') || "
        f"'{salt}') as fingerprint\n"
        f"from {{{{ ref('{left}') }}}} as l\n"
        f"left join {{{{ ref('{right}') }}}} as r on r.id = l.id\n"
    )


def layers(names: list[str]) -> list[list[str]]:
    width = math.ceil(len(names) / min(INTERMEDIATE_LAYERS, len(names)))
    return [names[start : start + width] for start in range(0, len(names), width)]


def models_sql(shape: Shape) -> dict[Path, str]:
    """SQL per model file, relative to models/."""
    staging = [f"gen_stg_{i:04d}" for i in range(shape.staging)]
    intermediate = [f"gen_int_{i:04d}" for i in range(shape.intermediate)]
    marts = [f"gen_mart_{i:04d}" for i in range(shape.marts)]
    files = {Path("staging", GENERATED, f"{name}.sql"): staging_sql(i, shape) for i, name in enumerate(staging)}
    intermediate_layers = layers(intermediate)
    for previous, layer in itertools.pairwise([staging, *intermediate_layers]):
        for position, name in enumerate(layer):
            left = previous[position % len(previous)]
            right = previous[(position + 1) % len(previous)]
            files[Path("intermediate", GENERATED, f"{name}.sql")] = joined_sql(left, right, name)
    # Marts read the last two layers, so the whole graph is upstream of some mart.
    last_two = [name for layer in reversed(intermediate_layers[-2:]) for name in layer]
    for position, name in enumerate(marts):
        left = last_two[position % len(last_two)]
        right = last_two[(position + 1) % len(last_two)]
        files[Path("marts", GENERATED, f"{name}.sql")] = joined_sql(left, right, name)
    return files


def marts_yaml(shape: Shape) -> str:
    models = "".join(
        f"  - name: gen_mart_{i:04d}\n    columns:\n      - name: id\n        data_tests: [not_null]\n"
        for i in range(shape.marts)
    )
    return f"version: 2\n\nmodels:\n{models}"


def snapshots_yaml(indexes: list[int], shape: Shape) -> str:
    snapshots = []
    for index in indexes:
        name, raw = source_table(index % shape.sources)
        snapshots.append(
            f"  - name: gen_snap_{index:04d}\n"
            f"    relation: source('{SOURCE_NAME}', '{name}')\n"
            f"    config:\n"
            f"      unique_key: {RAW_TABLES[raw]}\n"
            f"      strategy: timestamp\n"
            f"      updated_at: updated_at\n"
        )
    return "version: 2\n\nsnapshots:\n" + "".join(snapshots)


def write_project(models: int) -> Path:
    """The example plus `models` generated models, in project_dir(models) (replaced)."""
    return add_models(copy_example(project_dir(models)), models)


def add_models(target: Path, models: int) -> Path:
    """`models` generated models, their sources and snapshots, written into the project at `target`."""
    shape = Shape(models)
    files = models_sql(shape)
    files[Path("staging", GENERATED, "_generated__sources.yml")] = sources_yaml(shape)
    files[Path("marts", GENERATED, "_generated__marts.yml")] = marts_yaml(shape)
    for path, text in files.items():
        (target / "models" / path).parent.mkdir(parents=True, exist_ok=True)
        (target / "models" / path).write_text(text)
    for offset, domain in enumerate(SNAPSHOT_DOMAINS):
        indexes = list(range(offset, shape.snapshots, len(SNAPSHOT_DOMAINS)))
        (target / "snapshots" / domain / f"_{GENERATED}.yml").write_text(snapshots_yaml(indexes, shape))
    return target
