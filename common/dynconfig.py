"""A member following the cluster-wide config document (``config`` key).

The one rule: a member runs with ``cluster_config.resolve(its file, the
document)``, re-resolved whenever the document's revision (its etcd mod
revision) or the member's file config changes; a document that does not
validate, or does not fit this member, is logged (naming the key) and the
last good config stays in force. A member that finds cluster keys missing
adds its file's values by compare-and-swap on the revision it read, never
changing a key already there (the first writer seeds; after that etcd wins).
When the whole document is gone (etcd lost its data), a member puts back
the last document it ran with, so an etcd wipe does not silently undo the
edits made since the files were written (e.g. ``synchronous_mode``).

The node agent and the orchestrator each own one ``ConfigFollower`` and call
``update(view)`` with every view they read; nothing here sleeps or retries
(``Dcs`` bounds the one write by ``deadline_s``).
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from walrus_ha.common import cluster_config as cc
from walrus_ha.common.errors import ConfigError, DcsUnavailable
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)


class ConfigFollower:
    """``update(view) -> effective config``; ``revision`` is the document
    revision in force (0: none yet), ``error`` the last refusal ("" if none).

    ``env``/``env_prefix`` only name, in the log, a ``WALRUS_*`` variable
    whose value etcd overrides (environment variables set per-node values;
    for a cluster key they only seed)."""

    def __init__(self, kind: cc.MemberKind, file_config: Any, dcs: Any, *, seed: bool = True,
                 env: Mapping[str, str] | None = None, env_prefix: str = ""):
        self.kind = kind
        self.dcs = dcs
        self.seed_enabled = seed
        self._file = file_config
        self._env = env or {}
        self._env_prefix = env_prefix
        self.effective = file_config
        self.revision = 0
        self.error = ""
        self._seen: tuple | None = None                # (revision, file generation, document) last resolved
        self._file_generation = 0
        self._seeded_at: tuple | None = None           # the ``_seen`` we last tried to seed on
        self._lock = threading.Lock()                  # the loop and RPC threads both call update
        self._last_doc: dict = {}                      # the last document resolved (for a wiped etcd)

    @property
    def file_config(self) -> Any:
        return self._file

    @property
    def document(self) -> dict:
        """The last document resolved (normalised; {} before the first)."""
        return self._last_doc

    def set_file_config(self, file_config: Any) -> None:
        """A re-read file (``walrus ctl reload``): resolved again at the next ``update``."""
        with self._lock:
            self._file = file_config
            self._file_generation += 1

    def update(self, view: Any) -> Any:
        """The effective config for ``view`` (``ClusterView``: ``config``,
        ``config_mod_revision``); seeds missing keys once per revision."""
        with self._lock:
            return self._update(view)

    def _update(self, view: Any) -> Any:
        doc, rev = view.config, view.config_mod_revision
        # The document too: an etcd restarted empty counts revisions from 1 again.
        seen = (rev, self._file_generation, json.dumps(doc, sort_keys=True))
        if self._seen == seen:
            return self.effective
        self._seen = seen
        try:
            # No document at all (never seeded, or etcd lost it): run with the last one we had.
            normal = cc.normalize(doc, source=f"cluster config (revision {rev})") if rev else self._last_doc
            resolved = cc.resolve(self.kind, self._file, normal)
        except ConfigError as exc:
            self.error = str(exc)
            log_event(log, "config.refused", logging.ERROR, revision=rev, error=exc,
                      keeping=self.revision or "file config")
            return self.effective
        self.error = ""
        before, self.effective, self.revision = self.effective, resolved.config, rev
        if rev:
            self._last_doc = normal
        self._log(resolved, rev, changed=before != resolved.config)
        self._seed(normal, rev, seen)
        return self.effective

    def _log(self, r: cc.Resolved, rev: int, changed: bool) -> None:
        log_event(log, "config.applied", revision=rev, changed=changed,
                  from_cluster=",".join(r.from_cluster) or "-", from_file=",".join(r.from_file) or "-")
        for o in r.overrides:
            fields = {"key": o.key, "winner": "cluster", "cluster_value": o.cluster_value, "file_value": o.file_value}
            var = self._variable(o.key)
            if var:
                fields["ignored_env"] = var
            log_event(log, "config.source", logging.WARNING, **fields)

    def _variable(self, key: str) -> str:
        """The ``WALRUS_*`` variable that set ``key`` in the file config, if any."""
        attr = cc.KEYS[self.kind].get(key)
        if attr is None:       # one PostgreSQL parameter
            attr = key
            key_path = key.split(".")
        else:
            key_path = attr.split(".")
        name = self._env_prefix + "__".join(p.upper() for p in key_path)
        return name if self._env_prefix and name in self._env else ""

    def _seed(self, doc: Mapping[str, Any], rev: int, seen: tuple) -> None:
        """Add the keys the document lacks, with this member's file values (CAS)."""
        add = cc.missing(self.kind, self._file, doc)
        restore = not rev and bool(self._last_doc)     # no document at all: etcd lost it
        if not (add or restore) or not self.seed_enabled or self._seeded_at == seen:
            return
        self._seeded_at = seen
        new = cc.unflatten({**cc.flatten(doc), **cc.flatten(add), **(cc.flatten(self._last_doc) if restore else {})})
        try:
            done = self.dcs.cas_put(self.dcs.keys.config, new, rev, deadline_s=self.dcs.timeout_s)
        except DcsUnavailable as exc:
            self._seeded_at = None
            log_event(log, "config.seed_failed", logging.WARNING, error=exc)
            return
        source = "the last document this member ran with" if restore else "this member's file"
        log_event(log, "config.seeded" if done else "config.seed_lost", revision=rev,
                  keys=",".join(sorted(cc.top_keys(new if restore else add))),
                  note=f"from {source}" if done else "another member wrote first: its values win")
