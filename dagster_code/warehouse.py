"""The warehouse connection, read from the same environment variables as dbt's profiles.yml."""

from __future__ import annotations

import os

POSTGRES_REQUIRED_ENV = ("DBT_PG_HOST", "DBT_PG_USER", "DBT_PG_PASSWORD", "DBT_PG_DATABASE")


class MissingWarehouseSetting(RuntimeError):
    pass


def postgres_conninfo() -> str:
    """The conninfo of the `postgres` dbt target; names every missing variable."""
    target = os.environ.get("DBT_TARGET", "postgres")
    if target != "postgres":
        raise MissingWarehouseSetting(
            f"DBT_TARGET is '{target}': this PostgreSQL connection is only for the 'postgres' target."
        )
    missing = [name for name in POSTGRES_REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        raise MissingWarehouseSetting(
            f"The postgres warehouse target needs {', '.join(missing)} "
            "(set them in the environment, or in the chart's warehouse values)."
        )
    return (
        f"host={os.environ['DBT_PG_HOST']} port={os.environ.get('DBT_PG_PORT', '5432')} "
        f"user={os.environ['DBT_PG_USER']} password={os.environ['DBT_PG_PASSWORD']} "
        f"dbname={os.environ['DBT_PG_DATABASE']}"
    )
