#!/usr/bin/env bash
# Builds the project image (PROJECT_IMAGE) and the embedded PostgreSQL image (POSTGRES_IMAGE) into
# the local Docker engine, with the legacy builder (DOCKER_BUILDKIT=0). `make image` runs it.
#
# Environment:
#   BUILD_MODE           offline (default): nothing is pulled and `docker build` needs no network.
#                        The bases are made here from Debian's packages (debootstrap + docker
#                        import) and the Python wheels come from a wheelhouse downloaded on the
#                        host. online: for a machine that can pull images and reach PyPI and Debian
#                        from inside a build; bases are PUBLIC_*_BASE_IMAGE from versions.env.
#   BASE_IMAGE           the project image's base (default by mode, see versions.env)
#   POSTGRES_BASE_IMAGE  the PostgreSQL image's base (default by mode)
#   DBT_PROJECT          the dbt project to package (default dbt_project, the example). A folder at
#                        the top of this repository is used in place; any other path is copied to
#                        .image-dbt-project/ here first, so that `local: ../dagster_code/dbt_blue_green`
#                        in its packages.yml resolves in the image as in the repository (a copy
#                        with a dbt_packages/ of vendored packages gets that package vendored).
#   IMAGE_BUILD_ARGS     extra `docker build` arguments for the project image
#   BUILD_CPU_SHARES     CPU weight of the build's containers (default 256 of 1024: the cores are shared)
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD_MODE="${BUILD_MODE:-offline}"
IMAGE_BUILD_ARGS="${IMAGE_BUILD_ARGS:-}"
DBT_PROJECT="${DBT_PROJECT:-dbt_project}"
# Where an outside project is copied: a top-level folder of the build context.
STAGED_DBT_PROJECT=".image-dbt-project"
BUILD_CPU_SHARES="${BUILD_CPU_SHARES:-256}"
# The blue/green dbt package this repository ships (dagster_code/dbt_blue_green) and its dbt name.
BLUE_GREEN_PACKAGE_DIR=dbt_blue_green
BLUE_GREEN_PACKAGE=dagster_blue_green
export DOCKER_BUILDKIT=0
# Our builds need no privileged container; skip the engine script's check of one.
export DOCKER_VERIFY="${DOCKER_VERIFY:-0}"

case "${BUILD_MODE}" in
  offline)
    BASE_IMAGE="${BASE_IMAGE:-${LOCAL_PYTHON_BASE_IMAGE}}"
    POSTGRES_BASE_IMAGE="${POSTGRES_BASE_IMAGE:-${LOCAL_POSTGRES_BASE_IMAGE}}"
    WHEELHOUSE=1
    # The local PostgreSQL base already holds the packages, shaped by prepare-rootfs.sh.
    POSTGRES_INSTALL_PACKAGES=0
    ;;
  online)
    BASE_IMAGE="${BASE_IMAGE:-${PUBLIC_PYTHON_BASE_IMAGE}}"
    POSTGRES_BASE_IMAGE="${POSTGRES_BASE_IMAGE:-${PUBLIC_POSTGRES_BASE_IMAGE}}"
    WHEELHOUSE=0
    POSTGRES_INSTALL_PACKAGES=1
    ;;
  *) die "BUILD_MODE must be offline or online, not '${BUILD_MODE}'" ;;
esac

build_local_bases() {
  run_step "base image ${LOCAL_PYTHON_BASE_IMAGE}" \
    "${REPO_ROOT}/images/base/build-base-image.sh" "${LOCAL_PYTHON_BASE_IMAGE}" python3 python3-venv
  run_step "base image ${LOCAL_POSTGRES_BASE_IMAGE}" \
    "${REPO_ROOT}/images/base/build-base-image.sh" --hook "${REPO_ROOT}/images/postgres/prepare-rootfs.sh" \
    "${LOCAL_POSTGRES_BASE_IMAGE}" "postgresql-${POSTGRES_MAJOR}" dumb-init
}

# Prints the dbt project's path relative to the build context (REPO_ROOT), staging it if needed.
dbt_project_in_context() {
  local project parent
  project="$(realpath "${DBT_PROJECT}")"
  [[ -f "${project}/dbt_project.yml" ]] || die "DBT_PROJECT=${DBT_PROJECT}: no dbt_project.yml there"
  parent="$(dirname "${project}")"
  if [[ "${parent}" == "${REPO_ROOT}" ]]; then
    basename "${project}"
    return
  fi
  local staged="${REPO_ROOT}/${STAGED_DBT_PROJECT}"
  rm -rf "${staged:?}"
  cp -a "${project}" "${staged}"
  rm -rf "${staged}/target" "${staged}/logs"
  # A project that vendors its packages (dbt_packages/ present: the image build then runs no
  # `dbt deps`) and lists this repository's blue/green package by a local path gets that package
  # vendored too, from this checkout: the path it names may not resolve from the copy.
  if [[ -d "${staged}/dbt_packages" && ! -e "${staged}/dbt_packages/${BLUE_GREEN_PACKAGE}" ]] &&
    grep -Eqs "^[[:space:]]*-?[[:space:]]*local:.*/${BLUE_GREEN_PACKAGE_DIR}/?[[:space:]]*$" "${staged}/packages.yml"; then
    log "vendoring ${BLUE_GREEN_PACKAGE_DIR} into ${STAGED_DBT_PROJECT}/dbt_packages/${BLUE_GREEN_PACKAGE}"
    cp -a "${REPO_ROOT}/dagster_code/${BLUE_GREEN_PACKAGE_DIR}" "${staged}/dbt_packages/${BLUE_GREEN_PACKAGE}"
  fi
  echo "${STAGED_DBT_PROJECT}"
}

build_project_image() {
  local extra_args dbt_project_dir
  read -r -a extra_args <<<"${IMAGE_BUILD_ARGS}"
  dbt_project_dir="$(dbt_project_in_context)"
  log "dbt project: ${DBT_PROJECT} (in the build context: ${dbt_project_dir})"
  docker build --cpu-shares "${BUILD_CPU_SHARES}" \
    --build-arg DBT_PROJECT_DIR="${dbt_project_dir}" \
    --build-arg BASE_IMAGE="${BASE_IMAGE}" \
    --build-arg WHEELHOUSE="${WHEELHOUSE}" \
    --build-arg UV_VERSION="${UV_VERSION}" \
    "${extra_args[@]}" \
    --tag "${PROJECT_IMAGE}" --file "${REPO_ROOT}/Dockerfile" "${REPO_ROOT}"
}

build_postgres_image() {
  docker build --cpu-shares "${BUILD_CPU_SHARES}" \
    --build-arg BASE_IMAGE="${POSTGRES_BASE_IMAGE}" \
    --build-arg INSTALL_PACKAGES="${POSTGRES_INSTALL_PACKAGES}" \
    --build-arg POSTGRES_MAJOR="${POSTGRES_MAJOR}" \
    --tag "${POSTGRES_IMAGE}" "${REPO_ROOT}/images/postgres"
}

# Fails the build when the image cannot do the basics; no network, nothing left running.
smoke_test() {
  # Read-only root and writable DAGSTER_HOME/tmp, as the chart runs it.
  docker run --rm --pull never --network none --read-only --tmpfs /tmp \
    --tmpfs /opt/dagster/dagster_home:uid=10001,gid=10001 "${PROJECT_IMAGE}" sh -c \
    'set -e; dagster --version; test "$(id -u)" = 10001; test -s "${DBT_PROJECT_DIR}/target/manifest.json";
     dagster definitions validate -m "${DAGSTER_MODULE}"' \
    || die "${PROJECT_IMAGE} failed its smoke test (dagster --version, UID 10001, manifest present, definitions load as UID 10001)"
  docker run --rm --pull never --network none --entrypoint postgres "${POSTGRES_IMAGE}" --version \
    || die "${POSTGRES_IMAGE} failed its smoke test (postgres --version)"
}

main() {
  log "build mode: ${BUILD_MODE}; project base: ${BASE_IMAGE}; postgres base: ${POSTGRES_BASE_IMAGE}"
  local start=${SECONDS}
  run_step "docker engine" "${REPO_ROOT}/hack/docker-engine.sh"
  if [[ "${BUILD_MODE}" == offline ]]; then
    build_local_bases
    run_step "wheelhouse" "${REPO_ROOT}/hack/wheelhouse.sh"
  fi
  run_step "image ${PROJECT_IMAGE}" build_project_image
  run_step "image ${POSTGRES_IMAGE}" build_postgres_image
  run_step "smoke test" smoke_test
  docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' \
    | grep -E "^(${PROJECT_IMAGE}|${POSTGRES_IMAGE}|${BASE_IMAGE}|${POSTGRES_BASE_IMAGE})\b" >&2 || true
  log "images built in $((SECONDS - start))s"
}

main "$@"
