"""The "known device" cookie: proof that this browser logged in as a user before.

Set (renewed) at each successful login. Its holder skips the per-username wait of the login throttle
(app/auth/throttle.py), so an attacker guessing one username from many addresses cannot lock the real admin out
of the browsers they already use; the per-address limit and the device's own limit still apply.

The value is signed with SECRET_KEY and bound to the username and to the current admin password hash:
a forged or edited cookie, one made for another username, one issued before the password changed, or
one older than KNOWN_DEVICE_DAYS reads as no device at all. It carries no secret of its own: a random
device id (the key of the device's own counter) and the time it was issued.
"""
from __future__ import annotations

import hashlib
import secrets

from itsdangerous import BadData, URLSafeSerializer

COOKIE_NAME = "rmab_device"
COOKIE_PATH = "/login"  # only the login form needs it
KNOWN_DEVICE_DAYS = 90
MAX_AGE_SECONDS = KNOWN_DEVICE_DAYS * 86400


def _serializer(secret_key: str, password_hash: str) -> URLSafeSerializer:
    # the password hash in the salt: a new password (a new hash) makes every earlier cookie unreadable
    salt = "rmab-known-device:" + hashlib.sha256(password_hash.encode()).hexdigest()[:32]
    return URLSafeSerializer(secret_key, salt=salt)


def new_device_id() -> str:
    return secrets.token_urlsafe(16)


def issue(secret_key: str, password_hash: str, username_key: str, device_id: str, now: float) -> str:
    """The cookie value for `device_id` of the user whose throttle key is `username_key`, issued at `now`."""
    return str(_serializer(secret_key, password_hash).dumps([username_key, device_id, int(now)]))


def read(value: str | None, secret_key: str, password_hash: str, username_key: str, now: float) -> str | None:
    """The device id `value` proves for this user at `now`, or None (missing, forged, another user's,
    from before a password change, issued in the future or more than KNOWN_DEVICE_DAYS ago)."""
    if not value:
        return None
    try:
        payload = _serializer(secret_key, password_hash).loads(value)
    except BadData:
        return None
    if not (isinstance(payload, list) and len(payload) == 3 and isinstance(payload[1], str)
            and isinstance(payload[2], int) and not isinstance(payload[2], bool)):
        return None
    owner, device_id, issued = payload
    if owner != username_key or not device_id or not 0 <= now - issued <= MAX_AGE_SECONDS:
        return None
    return device_id
