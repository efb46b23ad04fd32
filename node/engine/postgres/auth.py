"""Password authentication between members (scram-sha-256).

Without password files a cluster trusts loopback only (one host, the
default). With ``postgres.replication_password_file`` and
``postgres.superuser_password_file`` (Docker or Kubernetes secrets) the
members of different hosts authenticate with scram-sha-256:

* ``pg_hba.conf`` ends with ``host replication <replication_user> all
  scram-sha-256`` and ``host all all all scram-sha-256``, after the loopback
  trust rows and the configured ``postgres.hba`` rows (``conf.render_hba``);
* the roles' passwords are set at bootstrap as SCRAM verifiers computed
  here (``scram_verifier``), so the clear password never reaches the
  server, its log or ours;
* every connection to another member (pg_basebackup, primary_conninfo,
  the superuser's slot/CHECKPOINT/pg_rewind connections) names a passfile
  (``render_passfile``), written by the engine as ``pgpass`` in the node
  directory, mode 0600, owned by the PostgreSQL OS user.

Pure, except ``load_credentials`` (reads the two files). Passwords never
appear in a repr, a log line or an error message.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata
from dataclasses import dataclass, field

from walrus_ha.common.errors import ConfigError

SCRAM_ITERATIONS = 4096      # PostgreSQL's default (scram_iterations)


@dataclass(frozen=True)
class Credentials:
    """The two roles' passwords (hidden from repr)."""
    superuser: str
    replication_user: str
    superuser_password: str = field(repr=False)
    replication_password: str = field(repr=False)


def read_password(path: str, key: str) -> str:
    """The password in ``path``: its first line without the line end.
    ConfigError naming ``key`` and the file (never the content) when it
    cannot be read or is empty."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"postgres.{key}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"postgres.{key}: {path} is not UTF-8 text") from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ConfigError(f"postgres.{key}: {path} holds no password (its first line is empty)")
    return password


def load_credentials(superuser: str, superuser_password_file: str, replication_user: str,
                     replication_password_file: str) -> Credentials | None:
    """Both passwords, or None when neither file is configured (loopback
    trust only). ConfigError when only one is, or a file is unusable."""
    if not superuser_password_file and not replication_password_file:
        return None
    if not superuser_password_file or not replication_password_file:
        missing = "superuser_password_file" if not superuser_password_file else "replication_password_file"
        raise ConfigError(f"postgres.{missing}: set both password files or neither (members of other hosts "
                          f"connect as the superuser and as the replication user)")
    return Credentials(superuser, replication_user,
                       read_password(superuser_password_file, "superuser_password_file"),
                       read_password(replication_password_file, "replication_password_file"))


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``
    verifier PostgreSQL stores for ``password`` (RFC 5802/7677, as libpq's
    ``PQencryptPasswordConn``); ``ALTER ROLE ... PASSWORD '<verifier>'``
    sets it without sending the password. NFKC stands in for SASLprep."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", unicodedata.normalize("NFKC", password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()     # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def render_passfile(creds: Credentials) -> str:
    """A libpq password file (``passfile``): any host, port and database,
    one line per role."""
    return "".join(f"*:*:*:{_pgpass_field(user)}:{_pgpass_field(password)}\n"
                   for user, password in ((creds.replication_user, creds.replication_password),
                                          (creds.superuser, creds.superuser_password)))


def set_password_sql(role: str, verifier: str, *, create_replication_role: bool = False) -> str:
    """``CREATE ROLE``/``ALTER ROLE`` setting ``role``'s SCRAM verifier (no
    clear password in the statement)."""
    ident = '"' + role.replace('"', '""') + '"'
    literal = "'" + verifier.replace("'", "''") + "'"
    if create_replication_role:
        return f"CREATE ROLE {ident} WITH REPLICATION LOGIN PASSWORD {literal}"
    return f"ALTER ROLE {ident} WITH PASSWORD {literal}"


PASSWORD_HBA = ("host replication {replication_user} all scram-sha-256",
                "host all all all scram-sha-256")


def hba_rows(replication_user: str) -> tuple[str, ...]:
    """The pg_hba.conf rows for members and clients of other hosts."""
    return tuple(row.format(replication_user=replication_user) for row in PASSWORD_HBA)
