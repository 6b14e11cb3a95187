"""The suite's "today" is production's: Beijing's date (``server.core.calendar.local_today``), never
the machine's ``date.today()``, which is a day behind from 16:00 to 24:00 UTC. ``.ci/run`` runs the
suite once more with the clock faked to 17:00 UTC to prove it."""
from __future__ import annotations

import datetime as dt

from server.core.calendar import local_today


def today() -> dt.date:
    return local_today()
