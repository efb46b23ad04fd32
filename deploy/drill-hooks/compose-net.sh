#!/bin/sh
# Partition one container of a compose cluster from some peers, for the
# drill's isolate-node / heal-node hooks (deploy/drill-hooks/compose.yaml):
#   compose-net.sh cut  CONTAINER PEER...     PEER: a container name or an IP[:PORT]
#   compose-net.sh heal CONTAINER
# `cut` adds, in CONTAINER's network namespace (nsenter, as root on the
# docker host), a chain `walrus-drill` dropping packets from and to each
# peer's address, jumped to first from INPUT and OUTPUT, all in one
# iptables-restore (the cut lands at once; established connections stop
# too). Everything else (the drill client on the host through the bridge
# gateway, the orchestrators, HAProxy) still reaches the container, as in
# the local partition-primary. `heal` removes the chain and its jumps and
# fails if they are still there. A restarted container has a fresh
# namespace (nothing to heal); `down` removes it anyway.
set -eu
docker=${DOCKER:-docker}
chain=walrus-drill
op=$1 container=$2
shift 2
names="" ips=""
for peer in "$@"; do
  case $peer in
    *[!0-9.:]*) names="$names $peer" ;;
    *) ips="$ips ${peer%:*}" ;;
  esac
done
# One docker call: the container's PID, then each named peer's addresses.
info=$($docker inspect -f '{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' \
  "$container" $names)
pid=$(echo "$info" | head -n 1 | cut -d' ' -f1)
[ "$pid" -gt 0 ] || { echo "$container is not running" >&2; exit 1; }
ips="$ips $(echo "$info" | tail -n +2 | cut -d' ' -f2-)"
ipt() { nsenter -t "$pid" -n iptables -w "$@"; }
case $op in
cut)
  {
    echo '*filter'
    echo ":$chain - [0:0]"
    for a in $ips; do
      echo "-A $chain -s $a -j DROP"
      echo "-A $chain -d $a -j DROP"
    done
    echo "-I INPUT 1 -j $chain"
    echo "-I OUTPUT 1 -j $chain"
    echo COMMIT
  } | nsenter -t "$pid" -n iptables-restore --noflush
  ;;
heal)
  while ipt -D INPUT -j $chain 2>/dev/null; do :; done
  while ipt -D OUTPUT -j $chain 2>/dev/null; do :; done
  if ipt -L $chain -n >/dev/null 2>&1; then ipt -F $chain && ipt -X $chain; fi
  if ipt -L $chain -n >/dev/null 2>&1; then echo "chain $chain still in $container" >&2; exit 1; fi
  ;;
*) echo "usage: $0 cut CONTAINER PEER... | heal CONTAINER" >&2; exit 2 ;;
esac
