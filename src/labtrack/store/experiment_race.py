"""Creates of one experiment name that race: which duplicate create is answered with the id.

The unmodified mlflow client's ``set_experiment(name)`` looks the name up, creates
the experiment when the lookup missed, and, when that create answers
RESOURCE_ALREADY_EXISTS, returns the experiment *without making it active*: the
task's run then lands in Default.  The 32 tasks of a job array that start together
all miss, all create, and all but one would lose (issue #22).  The client cannot
be changed, so the server decides.

THE RULE (README, "SLURM job arrays", says the same; this is its one place in the code).
A ``create_experiment`` of a name that exists is answered with the existing
experiment's id, as if it had created it, when all of these hold:

1. *It is the same request*: the experiment is active, the request's
   artifact_location is empty or equal to the experiment's, and every tag the
   request gives is already on the experiment with the same value.
2. *It is owed*: this server answered "does not exist" to a lookup of that name
   (``experiments/get-by-name``), and not every such lookup has had its create
   answered yet.  Each missed lookup excuses one create; the create that made the
   experiment uses one up.
3. *It is recent*: the experiment was created less than ``RACE_WINDOW_S`` ago, and
   the missed lookups it counts were made within that window.

Every other duplicate gets RESOURCE_ALREADY_EXISTS, as from MLflow: in particular
a deliberate second create of a name that its caller knows exists (no lookup
missed), even a millisecond after the first returned.

Why misses and not only a time window: a window alone cannot tell a job-array
task that is five seconds late on a loaded node from a user who creates the same
name twice in a row; the missed lookup is what shows that a caller saw no
experiment before it was made.  The window only bounds how long that evidence is
kept.

The counts live in this process.  With ``--workers`` on PostgreSQL each connection
is served by one process, and a client sends its lookup and its create on one
kept-alive connection, so both meet the same process's counts; two processes'
creates of one name meet in the unique index, and the one that loses there is
judged by this rule too (``TrackingStore.create_experiment``).  A create that
reaches another process than its lookup (its connection was closed in between)
gets MLflow's answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

RACE_WINDOW_S = 60.0
_MAX_NAMES = 10_000  # names with pending misses kept at most (a scan of random names cannot grow us)


@dataclass
class _Misses:
    count: int
    last: float  # time.time() of the newest missed lookup


class ExperimentRace:
    """Missed lookups per experiment name, and the rule that spends them (see the module)."""

    def __init__(self, window_s: float = RACE_WINDOW_S) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._misses: dict[str, _Misses] = {}

    def missed(self, name: str) -> None:
        """A lookup of ``name`` was answered "does not exist"."""
        now = time.time()
        with self._lock:
            m = self._misses.get(name)
            if m is None or now - m.last > self.window_s:
                m = self._misses[name] = _Misses(0, now)
            m.count += 1
            m.last = now
            if len(self._misses) > _MAX_NAMES:
                self._forget_old(now)

    def created(self, name: str) -> None:
        """``name`` was created by a create request: that request spends one miss."""
        with self._lock:
            m = self._misses.get(name)
            if m is not None:
                m.count -= 1
                if m.count <= 0:
                    del self._misses[name]

    def owed(self, name: str, created_ms: int, same_request: bool) -> bool:
        """Whether a duplicate create of ``name`` gets the existing id; spends a miss if so.

        ``created_ms`` is the existing experiment's creation time; ``same_request``
        says that rule 1 (active, same artifact location, no conflicting tag) holds.
        """
        now = time.time()
        if not same_request or now - created_ms / 1000 > self.window_s:
            return False
        with self._lock:
            m = self._misses.get(name)
            if m is None or m.count <= 0 or now - m.last > self.window_s:
                return False
            m.count -= 1
            if m.count <= 0:
                del self._misses[name]
            return True

    def _forget_old(self, now: float) -> None:
        for name in [n for n, m in self._misses.items() if now - m.last > self.window_s]:
            del self._misses[name]
        while len(self._misses) > _MAX_NAMES:  # still too many: drop the oldest
            del self._misses[min(self._misses, key=lambda n: self._misses[n].last)]
