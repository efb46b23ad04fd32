"""Hook files: the shell command that causes each fault on a remote target.
Pure: parsing, checking and templating; ``hook_target.py`` runs them.

A hook file (``deploy/drill-hooks/*.yaml``)::

    timeout_s: 60            # per command (default 60)
    vars: {ns: walrus}       # defaults for user variables (--hook-var k=v wins)
    hooks:
      kill-node: "docker kill walrus-{node}-1"
      start-node: "docker start walrus-{node}-1"

Keys of ``hooks`` are ``target.Action`` values. Placeholders are Python
``str.format`` fields: the action's own (``PLACEHOLDERS``), the user
variables and ``{python}`` (this interpreter); a literal brace is ``{{``.
Unknown keys, unknown actions and unknown placeholders are errors that name
the file and the key.
"""
from __future__ import annotations

import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from walrus_ha.common.errors import ConfigError
from walrus_ha.tools.drill.target import Action

_NODE = ("node", "address", "agent_address")
# action -> the placeholders a command for it may use (besides user variables).
PLACEHOLDERS: dict[Action, tuple[str, ...]] = {
    Action.KILL_NODE: _NODE, Action.START_NODE: _NODE, Action.FREEZE_AGENT: _NODE,
    Action.THAW_AGENT: _NODE, Action.FREEZE_NODE: _NODE, Action.THAW_NODE: _NODE,
    Action.KILL_ENGINE: _NODE, Action.ISOLATE_NODE: _NODE + ("etcd_endpoints", "peers"),
    Action.HEAL_NODE: _NODE + ("etcd_endpoints", "peers"),
    Action.KILL_ORCHESTRATOR: ("orchestrator", "address"),
    Action.START_ORCHESTRATOR: ("orchestrator", "address"),
    Action.KILL_ETCD: ("etcd_member", "address"), Action.START_ETCD: ("etcd_member", "address"),
    Action.WIPE_ETCD: ("etcd_members", "etcd_endpoints"),
}
BUILTIN = ("python",)
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class HookFile:
    """A checked hook file: action -> command template."""
    path: str
    hooks: Mapping[Action, str]
    variables: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def actions(self) -> set[Action]:
        return set(self.hooks)

    def render(self, action: Action, values: Mapping[str, str]) -> str:
        """The command for ``action`` with ``values`` (the action's
        placeholders) and the variables filled in. ConfigError if the
        action has no hook or a placeholder has no value."""
        template = self.hooks.get(action)
        if template is None:
            raise ConfigError(f"{self.path}: no hook for {action.value}")
        known = {"python": sys.executable, **self.variables, **values}
        try:
            return template.format_map(known)
        except KeyError as exc:
            raise ConfigError(f"{self.path}: hooks.{action.value}: no value for placeholder {{{exc.args[0]}}} "
                              f"(pass --hook-var {exc.args[0]}=...)") from None


def fields_of(template: str) -> list[str]:
    """The placeholder names of a ``str.format`` template (ValueError if malformed)."""
    return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def parse(path: str, data: object, hook_vars: Mapping[str, str]) -> HookFile:
    """Check ``data`` (the YAML document of ``path``) into a ``HookFile``;
    ``hook_vars`` (from --hook-var) override the file's ``vars``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a hook file is a mapping with a 'hooks' key")
    unknown = set(data) - {"hooks", "vars", "timeout_s"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: hooks, vars, timeout_s)")
    raw_vars = data.get("vars") or {}
    if not isinstance(raw_vars, dict):
        raise ConfigError(f"{path}: vars must be a mapping of name: value")
    variables = {str(k): str(v) for k, v in raw_vars.items()}
    variables.update(hook_vars)
    timeout = data.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f"{path}: timeout_s must be a positive number of seconds, got {timeout!r}")
    raw = data.get("hooks")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: 'hooks' must map actions to commands")
    hooks: dict[Action, str] = {}
    for key, command in raw.items():
        try:
            action = Action(key)
        except ValueError:
            raise ConfigError(f"{path}: hooks.{key}: unknown action (known: "
                              f"{', '.join(a.value for a in Action)})") from None
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"{path}: hooks.{key}: a command must be a non-empty string")
        _check_fields(path, action, command, set(variables))
        hooks[action] = command
    return HookFile(path, hooks, variables, float(timeout))


def _check_fields(path: str, action: Action, command: str, variables: set[str]) -> None:
    try:
        names = fields_of(command)
    except ValueError as exc:
        raise ConfigError(f"{path}: hooks.{action.value}: malformed template ({exc}; a literal brace is {{{{)") \
            from None
    allowed = set(PLACEHOLDERS[action]) | set(BUILTIN) | variables
    bad = sorted({n for n in names if n not in allowed})
    if bad:
        raise ConfigError(f"{path}: hooks.{action.value}: unknown placeholder(s) "
                          f"{', '.join('{' + b + '}' for b in bad)}; this action has "
                          f"{', '.join('{' + p + '}' for p in PLACEHOLDERS[action])}, plus {{python}} and "
                          f"variables (vars: or --hook-var NAME=VALUE)")


def parse_hook_vars(items: list[str]) -> dict[str, str]:
    """``["dir=/tmp/c", ...]`` -> ``{"dir": "/tmp/c"}``; ConfigError on a malformed one."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"--hook-var {item!r}: expected NAME=VALUE")
        out[key.strip()] = value
    return out


def load(path: str, hook_vars: Mapping[str, str]) -> HookFile:
    """Read and check a hook file (ConfigError naming the file on any problem)."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the hook file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(path, data, hook_vars)
