# The project image: one image for every Dagster process (code server by default; the chart sets the
# commands of the webserver, the daemon and the run workers). Builds with the legacy builder too
# (DOCKER_BUILDKIT=0), hence no RUN --mount. `make image` (hack/build-images.sh) is the usual way in.
#
# Build arguments:
#   BASE_IMAGE        Debian bookworm with CPython 3.11 (python3 and its venv module). Default: the
#                     public python:3.11-slim-bookworm; `make image` passes a base built locally.
#   WHEELHOUSE        1: install only from the wheels in .wheelhouse/ of the build context
#                     (hack/wheelhouse.sh downloads them on the host); 0 (default): from PyPI.
#   UV_VERSION        uv, used to export uv.lock and install it (keep equal to versions.env).
#   DBT_PROJECT_DIR   the dbt project to package, relative to the build context (default dbt_project).
#   DAGSTER_CODE_DIR  the Python package holding the definitions (default dagster_code).
#   DAGSTER_MODULE    the module the code server loads (default dagster_code.definitions).
#   DBT_PARSE_TARGET  the dbt target the manifest is parsed for (default: the profile's default).
#                     adapter.dispatch resolves at parse time, so parse for the target you run.
#   DBT_PARSE_ENV     NAME=placeholder pairs (space-separated) that profiles.yml needs to render at
#                     `dbt parse`; the default covers this project's profiles.yml. Placeholders only:
#                     build arguments are visible in `docker history`.
#
# Bring your own dbt project: put it at the top of the build context (`make image DBT_PROJECT=path`
# does), then
#   docker build --build-arg DBT_PROJECT_DIR=my_project -t my-dagster-dbt:1.0 .
# The definitions are derived from its manifest and configuration (README, "Bring your own dbt
# project"); no Python is needed. It keeps its place beside dagster_code/ under /opt/project, so
# `local: ../dagster_code/dbt_blue_green` in its packages.yml resolves here as in the repository.
# `dbt parse` runs at build time without any secret: profiles.yml must render with DBT_PARSE_ENV
# (e.g. --build-arg DBT_PARSE_ENV="MY_HOST=x MY_PASSWORD=x") or with env_var() defaults.
# Packages: a dbt_packages/ in the context is used as is (vendored, for packages of a hub that
# cannot be reached offline); without one, or when it holds links `dbt deps` made on the host
# (local packages), `dbt deps` runs here, which needs a hub only for hub packages.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- deps: the locked virtualenv. Its wheels and uv stay in this stage only. ----
FROM ${BASE_IMAGE} AS deps
ARG WHEELHOUSE=0
ARG UV_VERSION=0.13.8
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The bracket makes .wheelhouse optional: a clone without it still builds with WHEELHOUSE=0.
COPY uv.lock .wheelhous[e] /wheelhouse/
COPY pyproject.toml uv.lock /src/
WORKDIR /src
# Runtime dependencies only (no dev group, not the project itself), every wheel checked against the
# hash in uv.lock. Bytecode is compiled here: the non-root user cannot write __pycache__ later, and
# compiling at each start would slow every pod.
RUN set -eu; \
    sources=""; \
    if [ "${WHEELHOUSE}" = 1 ]; then sources="--no-index --find-links /wheelhouse"; fi; \
    python3 -m venv /opt/uv; \
    /opt/uv/bin/pip install --quiet ${sources} "uv==${UV_VERSION}"; \
    /opt/uv/bin/uv export --frozen --no-dev --no-emit-project --format requirements.txt \
      --quiet -o requirements.txt; \
    /opt/uv/bin/uv venv --quiet --python "$(command -v python3)" /opt/venv; \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
      ${sources} -r requirements.txt

# ---- the image ----
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="dagster-dbt-k8s" \
      org.opencontainers.image.description="Dagster code location, run worker, webserver and daemon for a dbt project"

# A fixed UID/GID, so the chart's securityContext (runAsUser/fsGroup) can name it.
RUN groupadd --gid 10001 dagster \
    && useradd --uid 10001 --gid 10001 --home-dir /home/dagster --create-home \
       --shell /usr/sbin/nologin dagster

COPY --from=deps /opt/venv /opt/venv

# Nothing phones home: dbt's usage events and version check, Dagster's telemetry (also off in the
# instance's dagster.yaml, which the chart renders).
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/project \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    DAGSTER_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    DBT_VERSION_CHECK=false

# Declared only here: a change of these rebuilds the layers below, not the user or the venv.
ARG DBT_PROJECT_DIR=dbt_project
ARG DAGSTER_CODE_DIR=dagster_code
ARG DAGSTER_MODULE=dagster_code.definitions
ARG DBT_PARSE_TARGET=""
# Placeholders for the variables our profiles.yml reads (both targets); never real credentials.
ARG DBT_PARSE_ENV="DBT_PG_HOST=parse-placeholder DBT_PG_USER=parse-placeholder \
DBT_PG_PASSWORD=parse-placeholder DBT_PG_DATABASE=parse-placeholder \
SNOWFLAKE_ACCOUNT=parse-placeholder SNOWFLAKE_USER=parse-placeholder \
SNOWFLAKE_ROLE=parse-placeholder SNOWFLAKE_WAREHOUSE=parse-placeholder \
SNOWFLAKE_DATABASE=parse-placeholder SNOWFLAKE_PASSWORD=parse-placeholder"
WORKDIR /opt/project
COPY pyproject.toml /opt/project/
COPY ${DAGSTER_CODE_DIR} /opt/project/${DAGSTER_CODE_DIR}
COPY ${DBT_PROJECT_DIR} /opt/project/${DBT_PROJECT_DIR}
ENV DBT_PROJECT_DIR=/opt/project/${DBT_PROJECT_DIR} \
    DBT_PROFILES_DIR=/opt/project/${DBT_PROJECT_DIR} \
    DAGSTER_MODULE=${DAGSTER_MODULE}

# The manifest is built here so no pod parses at start. DBT_PARSE_ENV is set for the parse command
# only, for profiles.yml to render; `dbt parse` opens no connection, and none stays in the image.
# dbt writes target/ and logs/ at run time, so those belong to the runtime user.
RUN set -eu; \
    cd "${DBT_PROJECT_DIR}"; \
    if [ -f packages.yml ] || [ -f dependencies.yml ]; then \
      if [ ! -d dbt_packages ] || [ -n "$(find dbt_packages -maxdepth 1 -type l)" ]; then \
        dbt deps --project-dir . --profiles-dir .; \
      fi; \
    fi; \
    env ${DBT_PARSE_ENV} \
      dbt parse --project-dir . --profiles-dir . ${DBT_PARSE_TARGET:+--target "${DBT_PARSE_TARGET}"} --quiet; \
    test -s target/manifest.json; \
    rm -rf logs; \
    install -d -o 10001 -g 10001 logs; \
    chown -R 10001:10001 target; \
    python -m compileall -q /opt/project; \
    install -d -o 10001 -g 10001 /opt/dagster "${DAGSTER_HOME}"; \
    printf 'telemetry:\n  enabled: false\n' >"${DAGSTER_HOME}/dagster.yaml"; \
    # Loading the definitions once creates the folders components keep their state in (beside
    # the defs; the build context never carries them, see .dockerignore): pods with a read-only
    # root filesystem then find them in place.
    dagster definitions validate -m "${DAGSTER_MODULE}"; \
    find /opt/project -name .local_defs_state -type d -exec chown -R 10001:10001 {} +; \
    chown -R 10001:10001 "${DAGSTER_HOME}"

USER 10001:10001
EXPOSE 3030
# A shell only to expand DAGSTER_MODULE; exec leaves dagster as PID 1 to receive SIGTERM.
CMD ["sh", "-c", "exec dagster code-server start --host 0.0.0.0 --port 3030 --module-name \"${DAGSTER_MODULE}\""]
