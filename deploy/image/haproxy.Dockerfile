# HAProxy from Debian on the same local base as walrus's image; the config
# (deploy/haproxy/haproxy.cfg) is mounted at /etc/haproxy/haproxy.cfg.
ARG BASE=walrus-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER haproxy
EXPOSE 5000 5001 8404
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
