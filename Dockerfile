# walrus node agent / orchestrator image (embedded engine by default).
# Build: podman build -t walrus .   (or docker build)
# Run an agent:        walrus node --config /etc/walrus/node.yaml
# Run an orchestrator: walrus orchestrator --config /etc/walrus/orch.yaml
FROM python:3.11-slim-bookworm

# PostgreSQL 15 for the postgres engine; the agent runs it as the postgres user.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH="/usr/lib/postgresql/15/bin:${PATH}"

WORKDIR /opt/walrus
# Locked runtime dependencies first (a layer that changes only with the lock).
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY walrus_ha ./walrus_ha
COPY protos ./protos
COPY common ./common
COPY node ./node
COPY orchestrator ./orchestrator
COPY tools ./tools
RUN pip install --no-cache-dir --no-deps . && pip check && mkdir -p /var/lib/walrus /etc/walrus

VOLUME ["/var/lib/walrus"]
# agent gRPC, engine data port (Store/WalStream or PostgreSQL), orchestrator gRPC
EXPOSE 7000 7100 7400
ENTRYPOINT ["walrus"]
CMD ["--help"]
