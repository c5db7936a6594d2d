"""The wall clock as the reference backends report it: a fixed offset from UTC (UTC+09:00
unless `UTC_OFFSET` says otherwise), formatted `YYYY/MM/DD` and `HH:MM:SS`."""

import sys
import time
from datetime import datetime, timedelta, timezone

from . import environment

DEFAULT_OFFSET_SECONDS = 9 * 3600


def parse_offset(value):
    """Seconds east of UTC for `+HH:MM`, `-HH:MM`, `+HHMM`, `+HH` or `Z`, or None."""
    value = value.strip()
    if value.lower() in ("z", "utc"):
        return 0
    if not value or value[0] not in "+-":
        return None
    sign, rest = (1 if value[0] == "+" else -1), value[1:]
    digits = rest.replace(":", "")
    if not digits.isdigit() or not (len(rest) == 2 or len(digits) == 4):
        return None
    hours, minutes = int(digits[0:2]), int(digits[2:4] or 0)
    if hours > 14 or minutes > 59:
        return None
    return sign * (hours * 3600 + minutes * 60)


def now():
    """The current local time at the configured offset."""
    configured = environment.get("UTC_OFFSET")
    offset = DEFAULT_OFFSET_SECONDS
    if configured is not None:
        parsed = parse_offset(configured)
        if parsed is None:
            print(
                f"UTC_OFFSET={configured!r} is not an offset like +09:00, -05:30 or Z; "
                "using +09:00",
                file=sys.stderr,
            )
        else:
            offset = parsed
    return datetime.fromtimestamp(time.time(), timezone(timedelta(seconds=offset)))
