# etcd from Debian's etcd-server on the same local base as walrus's image
# (no registry needed). Non-root; data in /var/lib/etcd-data (mount a volume).
ARG BASE=walrus-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10002 walrus-etcd \
 && useradd --system --uid 10002 --gid walrus-etcd --home-dir /var/lib/etcd-data --shell /usr/sbin/nologin walrus-etcd \
 && install -d -o walrus-etcd -g walrus-etcd -m 0700 /var/lib/etcd-data
USER walrus-etcd
EXPOSE 2379 2380
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "etcd"]
