"""Password authentication between members (node/engine/postgres/auth.py):
pg_hba rows, the passfile, SCRAM verifiers, reading the password files, and
the conninfos that name the passfile. Pure: no server (the real scram
replication test is test_pg_auth_replication.py)."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from walrus_ha.common.errors import ConfigError
from walrus_ha.node.engine.base import Upstream
from walrus_ha.node.engine.postgres import auth, conf, replication, sql

CREDS = auth.Credentials("postgres", "replicator", superuser_password="su:pw\\1", replication_password="r3pl")


def test_passwords_stay_out_of_repr():
    assert "su:pw" not in repr(CREDS) and "r3pl" not in repr(CREDS)


def test_passfile_has_one_line_per_role_with_escapes():
    assert auth.render_passfile(CREDS).splitlines() == ["*:*:*:replicator:r3pl", "*:*:*:postgres:su\\:pw\\\\1"]


def test_hba_with_password_rows_keeps_loopback_trust_first_and_configured_rows_before_scram():
    rows = [r for r in conf.render_hba("replicator", ("host all app 10.0.0.0/8 md5",),
                                       auth.hba_rows("replicator")).splitlines() if not r.startswith("#")]
    assert rows[-3:] == ["host all app 10.0.0.0/8 md5", "host replication replicator all scram-sha-256",
                         "host all all all scram-sha-256"]
    trust = [r for r in rows if r.endswith("trust")]
    assert trust == rows[:len(trust)] and all(r.startswith("local") or "/32" in r or "/128" in r for r in trust)


def test_hba_without_passwords_has_no_remote_row():
    assert " all scram" not in conf.render_hba("replicator")


# RFC 7677 section 3: user "user", password "pencil".
_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
_AUTH_MESSAGE = (b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
                 b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
                 b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
_SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def _keys(verifier: str) -> tuple[bytes, bytes]:
    head, _, keys = verifier.rpartition("$")
    stored, server = keys.split(":")
    return base64.b64decode(stored), base64.b64decode(server)


@pytest.mark.parametrize("password, accepted", [("pencil", True), ("pencil2", False)], ids=["right", "wrong"])
def test_scram_verifier_checks_the_rfc7677_exchange(password, accepted):
    """A server holding our verifier accepts the RFC's client proof and
    answers the RFC's server signature exactly when the password is right."""
    verifier = auth.scram_verifier(password, salt=_SALT)
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    stored, server = _keys(verifier)
    client_signature = hmac.new(stored, _AUTH_MESSAGE, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(_PROOF, client_signature))
    assert (hashlib.sha256(client_key).digest() == stored) is accepted
    assert (hmac.new(server, _AUTH_MESSAGE, hashlib.sha256).digest() == _SERVER_SIGNATURE) is accepted


def test_scram_verifier_salts_differ():
    assert auth.scram_verifier("x") != auth.scram_verifier("x")


def test_set_password_sql_carries_the_verifier_not_the_password():
    v = auth.scram_verifier("secret")
    create = auth.set_password_sql('re"pl', v, create_replication_role=True)
    assert create == f"CREATE ROLE \"re\"\"pl\" WITH REPLICATION LOGIN PASSWORD '{v}'" and "secret" not in create
    assert auth.set_password_sql("postgres", v) == f"ALTER ROLE \"postgres\" WITH PASSWORD '{v}'"


def test_load_credentials(tmp_path):
    su, repl = tmp_path / "su", tmp_path / "repl"
    su.write_text("s3cret\n")
    repl.write_text("r3pl\r\nignored\n")
    assert auth.load_credentials("postgres", "", "replicator", "") is None
    creds = auth.load_credentials("postgres", str(su), "replicator", str(repl))
    assert (creds.superuser_password, creds.replication_password) == ("s3cret", "r3pl")


@pytest.mark.parametrize("case, match", [
    ("one-only", "postgres.replication_password_file: set both"),
    ("missing", "postgres.superuser_password_file: cannot read .*nope"),
    ("empty", "postgres.replication_password_file: .* holds no password"),
], ids=["one-only", "missing", "empty"])
def test_load_credentials_errors_name_key_and_file_never_content(tmp_path, case, match):
    good, empty = tmp_path / "good", tmp_path / "empty"
    good.write_text("topsecret\n")
    empty.write_text("\n")
    args = {"one-only": (str(good), ""), "missing": (str(tmp_path / "nope"), str(good)),
            "empty": (str(good), str(empty))}[case]
    with pytest.raises(ConfigError, match=match) as exc:
        auth.load_credentials("postgres", args[0], "replicator", args[1])
    assert "topsecret" not in str(exc.value)


def test_conninfos_name_the_passfile_only_when_given():
    up = Upstream("a", "10.0.0.5:5432")
    assert "passfile" not in replication.primary_conninfo(up, "replicator", "b")
    assert replication.primary_conninfo(up, "replicator", "b", "/d/pg pass").endswith(" passfile='/d/pg pass'")
    assert "passfile" not in replication.upstream_dsn(up, "postgres", "postgres")
    assert replication.upstream_dsn(up, "postgres", "postgres", passfile="/d/pgpass").endswith(
        " passfile='/d/pgpass'")
    assert sql.dsn("h", 1, "u", "d", passfile="/x").startswith("host=h port=1 user=u dbname=d")
