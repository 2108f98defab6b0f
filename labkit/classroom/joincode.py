"""Join codes: one string an instructor shows the class, which a learner pastes to join.

Why a self-contained code instead of a short lookup code: the class shares nothing but the broker, so the
code must carry where the broker is (host, port, vhost) and the credentials of the class's join account.
That account can do one thing only (publish a join request to ``class.join``); the instructor's kernel
answers each request with the learner's own user. A code is ``LK1-`` + base64url(JSON), about 120
characters; a mistyped code fails with a clear error instead of a connection timeout.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from urllib.parse import quote

PREFIX = "LK1-"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


def check_name(name: object) -> str:
    """Learner names become parts of user and queue names: lower-case letters, digits and '-'."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(
            f"name must be 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit, got {name!r}"
        )
    return name


@dataclass(frozen=True)
class JoinCode:
    host: str
    port: int
    vhost: str
    class_id: str
    user: str
    password: str

    def __str__(self) -> str:
        raw = json.dumps(asdict(self), separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The AMQP URL of the class's vhost for these credentials (the join account's by default)."""
        user, password = user or self.user, password or self.password
        return (
            f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"
            f"{quote(self.vhost, safe='')}"
        )

    @classmethod
    def parse(cls, code: object) -> JoinCode:
        if isinstance(code, JoinCode):
            return code
        if not isinstance(code, str) or not code.strip().startswith(PREFIX):
            raise ValueError(
                f"code must be the join code your instructor shows, starting with {PREFIX!r}, got {code!r}"
            )
        text = code.strip()[len(PREFIX) :]
        try:
            fields = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            parsed = cls(**fields)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"code is not a complete join code (copy all of it): {exc}") from None
        if not isinstance(parsed.port, int) or not 0 < parsed.port < 65536:
            raise ValueError(f"code names an invalid port {parsed.port!r}")
        return parsed
