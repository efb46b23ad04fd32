#!/usr/bin/env bash
# Chaos drill campaign against the compose deployment (issue 12): build and
# bring up deploy/compose/ with its drill override (compose.drill.yaml:
# fixed addresses the host reaches, 3 etcd members, synchronous mode), run
# `walrus drill campaign` against it with deploy/drill-hooks/compose.yaml,
# and tear everything down (`down -v`: containers, network, volumes) on exit,
# also on failure or Ctrl-C. Run as root on the docker host (the partition
# hooks nsenter into a container), from a checkout with walrus installed:
#   deploy/drill-compose.sh [--no-build] [--async] [--engine postgres] [campaign options...]
#   deploy/drill-compose.sh --rounds 3 --json c.json --html c.html
#   deploy/drill-compose.sh --engine postgres --rounds 3 --json pg.json --html pg.html
# --engine postgres adds compose.postgres.yaml (PostgreSQL members, scram
# between them) with fresh password files in a private temporary directory;
# the drill logs in as postgres through a libpq passfile there (PGPASSFILE).
#   deploy/drill-compose.sh --rounds 1 --faults kill-primary,partition-primary
# Environment: WALRUS_DRILL_PROJECT (walrus-drill), WALRUS_DRILL_NET (the
# /24 prefix, 172.29.7), COMPOSE (docker-compose), WALRUS_BASE (base image).
set -euo pipefail
cd "$(dirname "$0")/.."
project=${WALRUS_DRILL_PROJECT:-walrus-drill}
export WALRUS_DRILL_NET=${WALRUS_DRILL_NET:-172.29.7}
net=$WALRUS_DRILL_NET
build=--build sync=--sync engine=embedded
export WALRUS_DRILL_SYNC=on
args=()
prev=
for a in "$@"; do
  case $prev:$a in
    --engine:*) engine=$a ;;
    *:--engine) ;;
    *:--engine=*) engine=${a#--engine=} ;;
    *:--no-build) build= ;;
    *:--async) sync= WALRUS_DRILL_SYNC=off ;;
    *) args+=("$a") ;;
  esac
  prev=$a
done
files=(-f deploy/compose/compose.yaml -f deploy/compose/compose.drill.yaml)
secrets=
cleanup() { "${dc[@]}" down -v --remove-orphans --timeout 10; [ -z "$secrets" ] || rm -rf "$secrets"; }
if [ "$engine" = postgres ]; then
  files=(-f deploy/compose/compose.yaml -f deploy/compose/compose.postgres.yaml -f deploy/compose/compose.drill.yaml)
  secrets=$(python3 -c 'from walrus_ha.tools.compose_failover import make_secrets; print(make_secrets()[0])')
  export WALRUS_PG_SECRETS=$secrets PGPASSFILE=$secrets/pgpass
  (umask 077; echo "*:*:*:postgres:$(head -n 1 "$secrets/superuser_password")" >"$PGPASSFILE")
fi
# Host ports compose.yaml publishes (HAProxy, orchestrators): free ones, so
# the drill cluster runs beside another compose cluster.
for v in WALRUS_RW_PORT WALRUS_RO_PORT WALRUS_STATS_PORT WALRUS_O1_PORT WALRUS_O2_PORT; do
  export "$v=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
done
read -r -a compose <<<"${COMPOSE:-docker-compose}"
dc=("${compose[@]}" -p "$project" "${files[@]}")
trap cleanup EXIT
"${dc[@]}" up -d $build
orchs=o1=$net.21:7400,o2=$net.22:7400
etcd=$net.2:2379,$net.3:2379,$net.4:2379
# Until the active orchestrator lists all three members (the campaign then
# waits for a healthy cluster itself before every round).
deadline=$((SECONDS + 180))
until python3 -m walrus_ha ctl list --orchestrators "$net.21:7400,$net.22:7400" --json 2>/dev/null \
    | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin).get("members", [])) != 3)'; do
  (( SECONDS < deadline )) || { echo "the compose cluster did not come up within 180 s" >&2; exit 1; }
  sleep 1
done
python3 -m walrus_ha drill campaign $sync --engine "$engine" --ttl 5 --orchestrators "$orchs" --etcd "$etcd" \
  --hooks deploy/drill-hooks/compose.yaml --hook-var "project=$project" \
  --hook-var "compose=${COMPOSE:-docker-compose}" --hook-var "files=${files[*]}" "${args[@]}"
