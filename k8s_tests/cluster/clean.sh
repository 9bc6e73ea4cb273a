#!/usr/bin/env bash
# Drops everything the cluster scripts cached: built binaries, Go wrapper modules, the images
# they built (labelled dagster-dbt-k8s.cache=true), logs and the kubeconfig. Other caches under
# the same directory (the project image's) and the Go module cache are left alone.
set -o errexit -o nounset -o pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

remove_images() {
  docker info >/dev/null 2>&1 || return 0
  # By tag: a tag of an image with children is only untagged, and its layers go with the children.
  local tags=()
  mapfile -t tags < <(docker images --filter label=dagster-dbt-k8s.cache=true \
    --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>')
  ((${#tags[@]} == 0)) || docker rmi "${tags[@]}" >/dev/null
}

remove_files() {
  rm -rf "${GO_BUILD_DIR}" "${IMAGE_BUILD_DIR}" "${CACHE_DIR}/logs" "${KUBECONFIG_PATH}" \
    "${CACHE_DIR}/.node-image"
  rm -f "${CACHE_BIN}/kind" "${CACHE_BIN}/kubectl" "${CACHE_BIN}/helm"
}

main() {
  take_build_lock
  run_step "remove cluster images" remove_images
  run_step "remove cluster build caches" remove_files
}

main "$@"
