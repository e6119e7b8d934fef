#!/usr/bin/env bash
# Leave nothing of `make deploy-test` running, whatever state it stopped in (a failed or killed test
# included): the compose project b2cal with its containers, network and named volumes, the run
# containers of the DockerRunLauncher and the job containers of ContainerBackend (no compose services,
# so `down` leaves them), the tests' scratch volume and the test's slapd. The engine itself (podman's service, like the
# other services of .ci/services) stays up.
#
#   .ci/deploy-teardown.sh        # DOCKER_HOST, else Docker's socket, else podman.sh's socket
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}"
# the test's slapd (the lab's LDAP of the stack), by its pid file: a killed test leaves it
pid_file="$state/deploy-slapd/slapd.pid"
if [ -s "$pid_file" ] && pid="$(cat "$pid_file")" && grep -q slapd "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi
rm -f "$pid_file"

if [ -z "${DOCKER_HOST:-}" ] && [ ! -S /var/run/docker.sock ]; then
    [ -S "$state/podman.sock" ] || { echo "deploy-teardown: no container engine running: nothing else to do"; exit 0; }
    export DOCKER_HOST="unix://$state/podman.sock"
fi
# the docker CLI on DOCKER_HOST, or podman's own where there is no docker CLI
if command -v docker >/dev/null; then engine=docker; else engine=podman; fi
docker() { command "$engine" "$@"; }
compose="${B2CAL_COMPOSE:-$state/bin/docker-compose}"
[ -x "$compose" ] || compose="$(command -v docker-compose || echo "docker compose")"

for label in dagster/run_id b2cal/job; do  # first: a run container holds the data volume
    ids="$(docker ps -aq --filter "label=$label")"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
done
# `down` reads the compose file, whose secrets must be set: any value does to remove the stack
MARIADB_ROOT_PASSWORD=x B2CAL_DB_PASSWORD=x B2CAL_SECRET_KEY=x B2CAL_LDAP_URL=ldap://x B2CAL_TLS_DIR=/nonexistent \
    $compose -f "$here/../docker/compose.yaml" -f "$here/../docker/compose.container-jobs.yaml" \
    down -v --remove-orphans --timeout 20 >/dev/null 2>&1
ids="$(docker ps -aq --filter label=com.docker.compose.project=b2cal)"
[ -z "$ids" ] || docker rm -f $ids >/dev/null
for volume in b2cal_data b2cal_mariadb_data b2cal_test_empty; do
    docker volume rm -f "$volume" >/dev/null 2>&1
done
docker network rm b2cal >/dev/null 2>&1
if [ -n "$(docker ps -aq --filter label=com.docker.compose.project=b2cal)$(docker ps -aq --filter label=dagster/run_id)$(docker ps -aq --filter label=b2cal/job)" ]; then
    echo "deploy-teardown: containers are still there:" >&2
    docker ps -a >&2
    exit 1
fi
echo "deploy-teardown: nothing of the deploy test is left"
