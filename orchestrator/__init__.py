"""Orchestrators: elect one active member through etcd, detect primary loss,
promote the best standby and repoint the others. Decides, never writes data."""
