"""What a request's message may say (pure): never a database's own error text.

A job that failed on a write (a NUL PostgreSQL cannot store, an integer out of range, a lost
connection) has that text as its error: it stays on the job, for the admin's log, but the request,
which users see, says that storing failed and where the details are."""
from __future__ import annotations

import re

# The names of the database exceptions (Peewee's and psycopg2's share them) and PostgreSQL's own phrasings
# of the errors that outside data causes, for text whose exception name was dropped (`f"...: {exc}"`).
_DATABASE_ERROR = re.compile(
    r"\b(?:peewee|psycopg2?|sqlite3|DataError|IntegrityError|OperationalError|ProgrammingError|InternalError"
    r"|InterfaceError|DatabaseError|NotSupportedError|UnicodeEncodeError)\b"
    r"|null character not permitted|invalid byte sequence for encoding|out of range for type|integer out of range"
    r"|value too long for type|violates \w+(?:[ -]\w+)? constraint|current transaction is aborted"
    r"|surrogates not allowed|server closed the connection", re.IGNORECASE)
STORING_FAILED = "storing its data failed (a database error; the job's log has the details)"


def request_message(text: str) -> str:
    """`text`, or when it holds a database error, its beginning up to the error followed by STORING_FAILED."""
    found = _DATABASE_ERROR.search(text)
    if found is None:
        return text
    prefix = text[:found.start()].rstrip()
    return f"{prefix} {STORING_FAILED}" if prefix else STORING_FAILED[:1].upper() + STORING_FAILED[1:]
