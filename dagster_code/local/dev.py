"""`make dev DBT_PROJECT=path`: the Dagster UI and daemon on this machine, on an embedded PostgreSQL,
for the dbt project at DBT_PROJECT_DIR (the example by default).

The PostgreSQL data lives in the project's cache directory and survives restarts. It holds
two databases, as in the chart: `dagster` (Dagster's storage) and `warehouse` (what dbt
builds). The instance config is rendered from the chart's values (pools, retries, run
monitoring), so local runs behave like the deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dagster_code.local.cache import cache_dir
from dagster_code.local.instance import apply_pool_limits, instance_config, pool_limits, write_dagster_home
from dagster_code.local.postgres_server import start_postgres_server
from dagster_code.project import dbt_project_dir

DEV_ROOT = cache_dir() / "dev"
# PostgreSQL runs as the 'postgres' user when we are root (it refuses root), and that user
# cannot enter root's home: the data then lives under /var/tmp, which also survives reboots.
POSTGRES_ROOT = Path(
    os.environ.get("DEV_POSTGRES_ROOT")
    or ("/var/tmp/dagster-dbt-k8s/dev-postgres" if os.geteuid() == 0 else DEV_ROOT / "postgres")
)
POSTGRES_PORT = int(os.environ.get("DEV_POSTGRES_PORT", "55433"))
WEBSERVER_PORT = int(os.environ.get("DEV_WEBSERVER_PORT", "3000"))


def _install_dbt_packages(env: dict[str, str]) -> None:
    """`dbt deps` once, when packages.yml lists packages that dbt_packages/ does not hold yet."""
    project_dir = dbt_project_dir()
    if (project_dir / "packages.yml").exists() and not (project_dir / "dbt_packages").exists():
        print(f"Installing the dbt packages of {project_dir}", flush=True)
        subprocess.run(
            ["dbt", "deps", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)],
            env=env,
            check=True,
        )


def main() -> int:
    print(f"Starting PostgreSQL on 127.0.0.1:{POSTGRES_PORT} (data in {POSTGRES_ROOT})", flush=True)
    server = start_postgres_server(root=POSTGRES_ROOT, port=POSTGRES_PORT)
    try:
        server.ensure_database("dagster")
        server.ensure_database("warehouse")
        env = {
            **os.environ,
            "DBT_TARGET": "postgres",
            "DBT_PG_HOST": server.host,
            "DBT_PG_PORT": str(server.port),
            "DBT_PG_USER": server.user,
            "DBT_PG_PASSWORD": server.password,
            "DBT_PG_DATABASE": "warehouse",
            "DAGSTER_HOME": str(DEV_ROOT / "dagster_home"),
            "DO_NOT_TRACK": "1",
        }
        storage = {
            "hostname": server.host,
            "port": server.port,
            "username": server.user,
            "password": server.password,
            "db_name": "dagster",
        }
        write_dagster_home(DEV_ROOT / "dagster_home", instance_config(storage))
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        with dg.DagsterInstance.get() as instance:
            apply_pool_limits(instance, pool_limits())
        _install_dbt_packages(env)
        print(f"Dagster UI: http://127.0.0.1:{WEBSERVER_PORT}", flush=True)
        return subprocess.call(
            [
                "dagster",
                "dev",
                "-m",
                "dagster_code.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(WEBSERVER_PORT),
            ],
            env=env,
            cwd=dbt_project_dir().parent,
        )
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop(remove_data=False)


if __name__ == "__main__":
    sys.exit(main())
