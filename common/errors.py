"""The project's own exceptions. Vendor errors (etcd, gRPC, OS) are mapped
to these at the boundary, so the rest of the code never catches a vendor type.
Those that cross the wire travel as a gRPC code plus a reason code
(``common.rpcerrors``), never as words to search the message for.
"""


class WalrusError(Exception):
    """Base of every walrus error."""


class InvalidArgument(WalrusError, ValueError):
    """A request argument is malformed or out of range; the message names it."""


class Refused(WalrusError):
    """A valid request that cannot be carried out in the current state."""


class ConfigError(WalrusError):
    """Bad configuration; the message names the file and the key."""


class DcsUnavailable(WalrusError):
    """etcd could not be reached within the deadline."""


class LeaseLost(WalrusError):
    """Our lease expired or was revoked; whatever it protected is gone."""


class StaleTerm(WalrusError):
    """A request carried a term older than one already seen."""


class EngineError(WalrusError):
    """The replication engine failed an operation."""


class WrongRole(EngineError):
    """The engine is not in the role the operation needs (e.g. write on a standby)."""


class Fenced(EngineError):
    """The engine refuses writes because it cannot prove it is the leader."""


class CorruptWal(EngineError):
    """A WAL record failed its checksum or framing check."""


class WalRemoved(EngineError):
    """The WAL asked for was recycled (a standby there needs a re-clone)."""


class NeedsReclone(EngineError):
    """The standby cannot catch up from WAL (slot lost, or rewind impossible)."""


class MustRewind(EngineError):
    """The standby holds WAL its upstream shipped ahead and then lost in a
    crash; it must drop that tail (from an LSN the upstream names) and ask again."""
