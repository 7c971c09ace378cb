#!/usr/bin/env bash
# Checks deploy/docker without a Docker engine: the compose file is valid
# (docker-compose config), and every stage of the Dockerfile installs its
# packages through deploy/install-deps.sh, the script CI itself runs.
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile=deploy/docker/Dockerfile
stages=$(grep -c '^FROM ' "$dockerfile")
installs=$(grep -cE '^RUN .*install-deps\.sh' "$dockerfile")
if [[ "$stages" != "$installs" ]]; then
  echo "check_deploy: $stages stages but $installs install-deps.sh runs in $dockerfile" >&2
  exit 1
fi
if grep -nE 'apt-get install|pip install|curl |wget ' "$dockerfile"; then
  echo "check_deploy: $dockerfile installs packages outside install-deps.sh" >&2
  exit 1
fi
if ! command -v docker-compose >/dev/null; then
  apt-get install -y -q --no-install-recommends docker-compose >/dev/null
fi
docker-compose -f deploy/docker/docker-compose.yml config -q
echo "check_deploy: Dockerfile and docker-compose.yml OK"
