"""Users, passwords, virtual hosts, configure/write/read permission regexes and user limits, as RabbitMQ.

Why: a class rehearses on the embedded broker what it will do on a shared RabbitMQ (a vhost per class, a
user per learner allowed only its own resources), so the broker must refuse what RabbitMQ refuses, with
the same codes and texts (checked against RabbitMQ 3.10.8 with rabbitmqctl/the management API):

- login: unknown user or wrong password → 403 "Login was refused using authentication mechanism M";
- connection.open: missing vhost → 530 "vhost V not found"; no permissions there → 530 "access to vhost
  'V' refused for user 'U'";
- a resource operation whose name does not match the user's regex → 403 on the channel, "access to
  queue|exchange 'N' in vhost 'V' refused for user 'U'" (the default exchange is 'amq.default');
- a user's max-channels limit → 530 on the connection.

Which permission each method needs, in RabbitMQ's order (rabbit_channel), is in ``method_checks``. The
module knows nothing about queues or courses: it answers "may user U do P on resource R in vhost V".
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from pamqp import commands as spec
from pamqp import decode as amqp_decode

from . import errors

CONFIGURE, WRITE, READ = "configure", "write", "read"
DEFAULT_EXCHANGE = "amq.default"  # the name RabbitMQ checks permissions against for exchange ''
REPLY_TO = "amq.rabbitmq.reply-to"  # direct reply-to needs no queue permission on RabbitMQ either
LIMITS = ("max-channels",)  # RabbitMQ also has max-connections; the embedded broker does not (yet)


@dataclass(frozen=True)
class Permission:
    """A user's three regexes in one vhost (RabbitMQ's syntax: Erlang re, matched anywhere unless anchored)."""

    configure: str = ""
    write: str = ""
    read: str = ""
    _compiled: dict[str, Any] = field(default_factory=dict[str, Any], compare=False, repr=False)

    def __post_init__(self) -> None:
        for kind in (CONFIGURE, WRITE, READ):
            pattern = getattr(self, kind)
            if not isinstance(pattern, str):
                raise ValueError(f"{kind} must be a regular expression string, got {pattern!r}")
            try:
                # '' (and '^$') allow nothing: RabbitMQ treats an empty regex as "no resource".
                self._compiled[kind] = re.compile(pattern) if pattern else None
            except re.error as exc:
                raise ValueError(f"{kind} is not a valid regular expression: {pattern!r} ({exc})") from None

    def allows(self, kind: str, name: str) -> bool:
        regex = self._compiled[kind]
        return regex is not None and regex.search(name) is not None

    def as_dict(self) -> dict[str, str]:
        return {CONFIGURE: self.configure, WRITE: self.write, READ: self.read}


@dataclass
class User:
    name: str
    password: str
    tags: str = ""
    limits: dict[str, int] = field(default_factory=dict)


class Auth:
    """The broker's user database and vhost registry. ``make_vhost(name)`` builds a vhost's state;
    ``on_delete(name)`` lets the broker close the connections of a deleted vhost."""

    def __init__(self, user: str, password: str, make_vhost: Any, on_delete: Any = None) -> None:
        self._make_vhost, self._on_delete = make_vhost, on_delete
        self.users: dict[str, User] = {}
        self.vhosts: dict[str, Any] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.add_vhost("/")
        self.add_user(user, password, tags="administrator")
        self.set_permissions("/", user, ".*", ".*", ".*")

    # -- management (the API admin.py serves over HTTP) -------------------------------------------
    def add_vhost(self, name: str) -> Any:
        _name("vhost", name)
        if name not in self.vhosts:
            self.vhosts[name] = self._make_vhost(name)
        return self.vhosts[name]

    def delete_vhost(self, name: str) -> None:
        if name == "/":
            raise ValueError("the default vhost '/' cannot be deleted here")
        vhost = self.vhosts.pop(_known(self.vhosts, "vhost", name), None)
        for key in [key for key in self.permissions if key[0] == name]:
            del self.permissions[key]
        if self._on_delete is not None:
            self._on_delete(name)
        vhost.clear()

    def add_user(self, name: str, password: str, tags: str = "") -> None:
        _name("user", name)
        if not isinstance(password, str) or not password or "\x00" in password:
            raise ValueError("password must be a non-empty string without NUL bytes")
        old = self.users.get(name)
        self.users[name] = User(name, password, tags, old.limits if old else {})

    def delete_user(self, name: str) -> None:
        del self.users[_known(self.users, "user", name)]
        for key in [key for key in self.permissions if key[1] == name]:
            del self.permissions[key]

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        _known(self.vhosts, "vhost", vhost)
        _known(self.users, "user", user)
        self.permissions[(vhost, user)] = Permission(configure, write, read)

    def clear_permissions(self, vhost: str, user: str) -> None:
        self.permissions.pop((vhost, user), None)

    def set_user_limit(self, user: str, limit: str, value: int) -> None:
        if limit not in LIMITS:
            raise ValueError(f"limit must be one of {', '.join(LIMITS)}, got {limit!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < -1:
            raise ValueError(f"{limit} must be an integer >= -1 (-1: no limit), got {value!r}")
        limits = self.users[_known(self.users, "user", user)].limits
        if value < 0:
            limits.pop(limit, None)
        else:
            limits[limit] = value

    # -- checks (called by connection.py and channel.py) ------------------------------------------
    def authenticate(self, mechanism: str, response: Any) -> str | None:
        """The user name if the credentials match, else None (SASL PLAIN and AMQPLAIN)."""
        name, password = _credentials(mechanism, response)
        user = self.users.get(name)
        if user is None or user.password != password:
            return None
        return name

    def open_vhost(self, user: str, name: str) -> Any:
        vhost = self.vhosts.get(name)
        if vhost is None:
            raise errors.NotAllowed(f"vhost {name} not found", method=(10, 40))
        if (name, user) not in self.permissions:
            raise errors.NotAllowed(f"access to vhost '{name}' refused for user '{user}'", method=(10, 40))
        return vhost

    def check(self, user: str, vhost: str, kind: str, resource: str, name: str) -> None:
        permission = self.permissions.get((vhost, user))
        shown = DEFAULT_EXCHANGE if resource == "exchange" and name == "" else name
        if permission is None or not permission.allows(kind, shown):
            raise errors.AccessRefused(f"access to {resource} '{shown}' in vhost '{vhost}' refused for user '{user}'")

    def full_access(self, user: str, vhost: str) -> bool:
        """True when every check would pass (".*" for all three): channels then skip the checks."""
        permission = self.permissions.get((vhost, user))
        return permission is not None and all(getattr(permission, kind) == ".*" for kind in (CONFIGURE, WRITE, READ))

    def channel_limit(self, user: str) -> int | None:
        """The user's max-channels limit (None: unlimited), for connection.py's check on channel.open."""
        found = self.users.get(user)
        return None if found is None else found.limits.get("max-channels")

    @staticmethod
    def refuse_channel(user: str, limit: int) -> errors.NotAllowed:
        return errors.NotAllowed(
            f"number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})",
            method=(20, 10),
        )


def method_checks(method: Any) -> list[tuple[str, str, str]]:
    """(permission, resource kind, name) a method needs, in the order RabbitMQ 3.10 checks them."""
    if isinstance(method, spec.Queue.Declare):
        if method.passive:
            return []
        # A server-named queue is checked under a generated name, as RabbitMQ does ('amq.gen-...').
        name = method.queue or "amq.gen-" + secrets.token_urlsafe(16)[:22]
        checks = [(CONFIGURE, "queue", name)]
        dlx = (method.arguments or {}).get("x-dead-letter-exchange")
        if isinstance(dlx, str):
            checks += [(READ, "queue", name), (WRITE, "exchange", dlx)]
        return checks
    if isinstance(method, spec.Queue.Delete):
        return [(CONFIGURE, "queue", method.queue)]
    if isinstance(method, (spec.Queue.Purge, spec.Basic.Get)):
        return [(READ, "queue", method.queue)]
    if isinstance(method, spec.Basic.Consume):
        return [] if method.queue == REPLY_TO else [(READ, "queue", method.queue)]
    if isinstance(method, (spec.Queue.Bind, spec.Queue.Unbind)):
        return [(WRITE, "queue", method.queue), (READ, "exchange", method.exchange)]
    if isinstance(method, (spec.Exchange.Bind, spec.Exchange.Unbind)):
        return [(WRITE, "exchange", method.destination), (READ, "exchange", method.source)]
    if isinstance(method, spec.Exchange.Declare):
        return [] if method.passive else [(CONFIGURE, "exchange", method.exchange)]
    if isinstance(method, spec.Exchange.Delete):
        return [(CONFIGURE, "exchange", method.exchange)]
    return []


def _credentials(mechanism: str, response: Any) -> tuple[str, str]:
    """Decode a PLAIN (``\\0user\\0password``) or AMQPLAIN (LOGIN/PASSWORD table) response."""
    raw = response.encode() if isinstance(response, str) else bytes(response or b"")
    if mechanism == "PLAIN":
        parts = raw.split(b"\x00")
        if len(parts) == 3:
            return parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
    elif mechanism == "AMQPLAIN":
        try:
            # AMQPLAIN's response is a field table without its 4-byte length prefix.
            _, table = amqp_decode.field_table(len(raw).to_bytes(4, "big") + raw)
        except Exception:  # a malformed response is a failed login, not a broker error
            return "", "\x00invalid"
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if isinstance(login, (str, bytes)) and isinstance(password, (str, bytes)):
            as_text = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in (login, password)]
            return as_text[0], as_text[1]
    return "", "\x00invalid"


def _name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 255 or "\x00" in name:
        raise ValueError(f"{what} name must be a non-empty string of at most 255 characters, got {name!r}")
    return name


def _known(registry: dict[str, Any], what: str, name: str) -> str:
    if name not in registry:
        raise KeyError(f"no {what} {name!r}")
    return name
