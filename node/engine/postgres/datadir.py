"""The node directory of a PostgreSQL member and walrus's files in it.

Layout of ``<node data_dir>`` (mode 0711, so the ``postgres`` user can reach
its sub-directories; walrus refuses to start if an ancestor is not
traversable by that user):

* ``pgdata/``: the PostgreSQL data directory (0700, owned by ``postgres``).
  Replaced wholesale by a re-clone.
* ``run/``: the private unix-socket directory (0700, owned by ``postgres``).
* ``postgres.log``: the postmaster's stderr.
* ``walrus-state.json``: the highest term seen, the fence, the upstream,
  the synchronous standby set, and whether a bootstrap, clone or rewind is
  unfinished (then pgdata is not a usable database: it may be half written,
  half copied or half rewound; it is never started and may be wiped). It lives outside ``pgdata`` so base backups
  and pg_rewind (which copy the source's files) never overwrite it.
* ``walrus-fencer.json``: written by the lease fencer process when it stops
  the postmaster at a passed deadline (see ``fencer.py``); the engine turns it
  into the fence reason and removes it.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
from dataclasses import asdict, dataclass, replace

from walrus_ha.common.errors import EngineError
from walrus_ha.node.engine.postgres import conf
from walrus_ha.node.engine.postgres.process import OsUser, check_traversable, prepare_dir

STATE_FILE = "walrus-state.json"


@dataclass(frozen=True)
class State:
    """What walrus remembers about this member across restarts."""
    term: int = 0
    fence_reason: str = ""
    upstream_name: str = ""
    upstream_address: str = ""
    sync_standbys: str = ""
    incomplete: bool = False    # a bootstrap/clone/rewind began and did not finish

    def with_(self, **changes) -> State:
        return replace(self, **changes)


class NodeDir:
    """Paths and file writes for one member; files end up owned by ``user``."""

    def __init__(self, root: str | os.PathLike, user: OsUser):
        self.root = pathlib.Path(root).absolute()
        self.user = user
        self.pgdata = self.root / "pgdata"
        self.run_dir = self.root / "run"
        self.log_path = self.root / "postgres.log"
        self.state_path = self.root / STATE_FILE
        self.passfile = self.root / "pgpass"      # libpq passfile (auth.py), 0600, the OS user's

    def prepare(self) -> None:
        """Create the node dir (0711) and run dir; check reachability. EngineError if not."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        check_traversable(self.root, self.user)
        prepare_dir(self.run_dir, self.user)

    def prepare_pgdata(self) -> None:
        """An empty ``pgdata`` (0700, owned by the OS user). Leftovers of an
        unfinished bootstrap/clone/rewind are wiped; anything else is refused
        with EngineError."""
        self.prepare()
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            if not self.load_state().incomplete:
                raise EngineError(f"{self.pgdata} is not empty; refusing to overwrite a database")
            self.wipe_pgdata()
        prepare_dir(self.pgdata, self.user)

    def wipe_pgdata(self) -> None:
        """Delete the data directory (only for a re-clone)."""
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)

    def is_initialized(self) -> bool:
        """A complete database: PostgreSQL's files, and no unfinished operation."""
        return ((self.pgdata / "PG_VERSION").is_file() and (self.pgdata / "global" / "pg_control").is_file()
                and not self.load_state().incomplete)

    def is_standby(self) -> bool:
        return (self.pgdata / "standby.signal").exists()

    def socket_dir(self) -> str:
        # sun_path holds 107 bytes; past that, go TCP-only rather than fail.
        return str(self.run_dir) if len(str(self.run_dir)) < 90 else ""

    def write(self, path: pathlib.Path, text: str) -> None:
        """Atomically write ``text`` (mode 0600, owned by the OS user)."""
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if self.user.switch:
            os.chown(tmp, self.user.uid, self.user.gid)
        os.replace(tmp, path)

    def write_passfile(self, text: str) -> str:
        """Write the libpq password file (0600, owned by the OS user); its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.write(self.passfile, text)
        return str(self.passfile)

    def set_standby_signal(self, on: bool) -> None:
        path = self.pgdata / "standby.signal"
        if on:
            self.write(path, "")
        elif path.exists():
            path.unlink()

    def write_static(self, static: conf.StaticConf, replication_user: str, hba: tuple[str, ...] = (),
                     password_rows: tuple[str, ...] = ()) -> None:
        """postgresql.conf, pg_hba.conf, and an empty postgresql.auto.conf."""
        self.write(self.pgdata / "postgresql.conf", conf.render_postgresql_conf(static))
        self.write(self.pgdata / "pg_hba.conf", conf.render_hba(replication_user, hba, password_rows))
        self.write(self.pgdata / "postgresql.auto.conf", "# walrus keeps settings in postgresql.conf\n")

    def write_dynamic(self, dyn: conf.DynamicConf) -> None:
        self.write(self.pgdata / conf.DYNAMIC_CONF, conf.render_dynamic_conf(dyn))

    def load_state(self) -> State:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return State()
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot read {self.state_path}: {exc}") from None
        known = {k: v for k, v in data.items() if k in State.__dataclass_fields__}
        return State(**known)

    def save_state(self, state: State) -> None:
        self.write(self.state_path, json.dumps(asdict(state), sort_keys=True) + "\n")
