# walrus node agent / orchestrator image. Two targets:
#   embedded  the embedded WAL engine only, no PostgreSQL
#   postgres  embedded + PostgreSQL 15 (engine: postgres)
# Build from a local base where no registry is reachable (deploy/image/make-base.sh
# makes walrus-base:bookworm with debootstrap):
#   docker build --target embedded -t walrus:embedded .
#   docker build --target postgres -t walrus:postgres .
#   docker build --build-arg BASE=debian:bookworm-slim ...   (any Debian bookworm)
# Run an agent:        walrus node --config /etc/walrus/node.yaml
# Run an orchestrator: walrus orchestrator --config /etc/walrus/orch.yaml
# The HEALTHCHECK asks the agent's HTTP API (/liveness on WALRUS_HEALTH_URL);
# orchestrators have no HTTP API: disable it for them (compose: healthcheck: disable).
ARG BASE=walrus-base:bookworm

# Builder: a venv with the locked runtime dependencies and walrus; build tools
# and pip stay here. Debian's python3 is marked externally managed (PEP 668),
# hence the venv.
FROM ${BASE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# Extra CAs (e.g. a TLS-inspecting proxy in front of the package index), builder only.
COPY deploy/image/ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/walrus
COPY requirements-runtime.lock /tmp/
RUN /opt/walrus/bin/pip install -q -r /tmp/requirements-runtime.lock
COPY pyproject.toml README.md /src/
COPY walrus_ha /src/walrus_ha
COPY protos /src/protos
COPY common /src/common
COPY node /src/node
COPY orchestrator /src/orchestrator
COPY tools /src/tools
RUN /opt/walrus/bin/pip install -q --no-deps /src \
 && /opt/walrus/bin/pip check \
 && /opt/walrus/bin/pip uninstall -q -y pip setuptools

# What both targets share: python3 (the venv's interpreter) and tini, no
# compiler, no pip. No VOLUME: a container that mounts nothing (an
# orchestrator) leaves no anonymous volume behind; mount /var/lib/walrus.
FROM ${BASE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10001 walrus \
 && useradd --system --uid 10001 --gid walrus --home-dir /var/lib/walrus --shell /usr/sbin/nologin walrus \
 && mkdir -p /var/lib/walrus /etc/walrus && chown walrus:walrus /var/lib/walrus
COPY --from=builder /opt/walrus /opt/walrus
ENV PATH=/opt/walrus/bin:$PATH PYTHONUNBUFFERED=1 WALRUS_HEALTH_URL=http://127.0.0.1:8008/liveness
WORKDIR /var/lib/walrus
USER walrus
# agent gRPC, engine data port (Store/WalStream or PostgreSQL), HTTP API, orchestrator gRPC
EXPOSE 7000 7100 8008 7400
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os,sys,urllib.request as u; sys.exit(u.urlopen(os.environ['WALRUS_HEALTH_URL'], timeout=2).status != 200)"]
# The agent and orchestrator shut down cleanly on SIGTERM; tini (PID 1)
# forwards it and reaps PostgreSQL's and other orphaned children.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "walrus"]
CMD ["--help"]

# Embedded engine only, no PostgreSQL. Always name the target (--target):
# the classic builder builds every stage before it, so postgres comes last.
FROM runtime AS embedded

# PostgreSQL 15 as well. The agent runs as the postgres user (PostgreSQL
# refuses root; a non-root agent runs it as itself).
FROM runtime AS postgres
USER root
# No default cluster from the package: walrus runs initdb in its data dir.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && chown postgres:postgres /var/lib/walrus
ENV PATH=/opt/walrus/bin:/usr/lib/postgresql/15/bin:$PATH
USER postgres
EXPOSE 5432
