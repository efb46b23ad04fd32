#!/usr/bin/env bash
# Make the local base image the Dockerfile builds FROM (ARG BASE, default
# walrus-base:bookworm) where no registry can be pulled from: a minimal
# Debian bookworm made by debootstrap and imported into the runtime.
#   sudo deploy/image/make-base.sh [docker|podman] [TAG]
set -euo pipefail
runtime=${1:-docker}
tag=${2:-walrus-base:bookworm}
dir=$(mktemp -d /tmp/walrus-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian
# Same suites as a stock image: updates and security fixes.
cat >"$dir/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
# Slim, as Debian's own -slim images: no docs, man pages or translations,
# now or from later installs, and no apt caches left in image layers.
cat >"$dir/etc/dpkg/dpkg.cfg.d/01-walrus-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
SLIM
cat >"$dir/etc/apt/apt.conf.d/01-walrus-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Install-Recommends "false";
CLEAN
find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/cache/apt/*.bin \
  "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
tar -C "$dir" -c . | "$runtime" import - "$tag"
echo "imported $tag"
