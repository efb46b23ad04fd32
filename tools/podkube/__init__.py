"""deploy/kubernetes/ under podman kube play: render.py (pure), play.py, failover.py."""
