"""The writer lease: one run writes a lake at a time, and a killed run's lake is not stranded.

A run creates `_bear/lease.json` only if it does not exist (local: a hard link of a
finished file; GCS: `ifGenerationMatch=0`), then renews it every sixth of `run.lease_s`
with a generation precondition (GCS) or a compare-and-swap under a lock file (local), so a
renewal never overwrites a lease someone else took. A second run finds the lease and exits
2 naming its holder; once a lease has gone unrenewed past its expiry (its run was killed),
the next run takes it over with the same precondition, so of two runs racing for it one
wins. Before each commit the holder makes sure the lease is still its own for at least
half a term; a holder that lost it stops before publishing anything. Expiry is judged
against the clock of the run that finds the lease: hosts must agree on the time to well
within `run.lease_s` (NTP does).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from bear.lake.errors import SinkError, brief
from bear.lake.layout import LEASE, STATE_DIR, is_lease
from bear.lake.sink import Sink

log = logging.getLogger(__name__)
FIELDS = ("holder", "run_id", "started_at", "renewed_at", "expires_at", "lease_s")


class LeaseHeld(SinkError):
    """Another run holds a live lease on the lake: nothing was written (exit 2)."""

    exit_code = 2


class LeaseLost(SinkError):
    """This run's lease was taken over (it went unrenewed past its expiry): stop before publishing more."""


def _clock() -> float:
    """Seconds that keep counting while the machine sleeps (CLOCK_BOOTTIME), so a run woken from a suspend knows
    its lease may have lapsed; monotonic time elsewhere."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def parse(data: bytes) -> dict[str, Any] | None:
    """A lease document, or None when it is not one (damaged by hand or by the disk: treated as expired)."""
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and all(k in doc for k in FIELDS):
            _epoch(doc["expires_at"])
            return doc
    except (ValueError, TypeError):
        pass
    return None


def read_lease(sink: Sink) -> dict[str, Any] | None:
    """The lake's lease for `bear status` (no lease needed to read it): None, or its document with `live` set;
    a damaged one is `{"damaged": True, "live": False}`."""
    found = sink.read_versioned(LEASE)
    if found is None:
        return None
    doc = parse(found[0])
    if doc is None:
        return {"damaged": True, "live": False}
    return doc | {"live": _epoch(doc["expires_at"]) > time.time()}


def describe(doc: dict[str, Any]) -> str:
    """One line about a lease, for `bear status` and the refusal."""
    if doc.get("damaged"):
        return "a damaged lease file (the next run replaces it)"
    left = _epoch(doc["expires_at"]) - time.time()
    state = f"expires {doc['expires_at']} (in {left:.0f} s)" if left > 0 else \
        f"expired {doc['expires_at']} (its run stopped; the next run takes it over)"
    return f"held by {doc['holder']} (run {doc['run_id']}) since {doc['started_at']}; {state}"


class Lease:
    """This run's lease on `sink`: `with Lease(sink, lease_s):` holds it, heartbeats it and releases it."""

    def __init__(self, sink: Sink, lease_s: float):
        self.sink = sink
        self.lease_s = float(lease_s)
        self.run_id = uuid.uuid4().hex[:12]
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = _iso(time.time())
        self.generation: str | None = None
        self.renewed = 0.0  # _clock() when the current term began
        self.lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _document(self) -> bytes:
        now = time.time()  # every version differs (renewed_at moves on, or at worst the nonce): no two coincide
        return json.dumps({"holder": self.holder, "run_id": self.run_id, "started_at": self.started_at,
                           "renewed_at": _iso(now), "expires_at": _iso(now + self.lease_s), "lease_s": self.lease_s,
                           "nonce": uuid.uuid4().hex[:8]}, indent=2).encode()

    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeld naming its live holder."""
        for _ in range(5):  # each pass ends in a win, a live holder, or a race that changed what is there
            began = _clock()
            generation = self.sink.write_if(LEASE, self._document(), None)
            if generation is None:
                found = self.sink.read_versioned(LEASE)
                if found is None:
                    continue  # released between our two calls
                doc = parse(found[0])
                if doc is not None and _epoch(doc["expires_at"]) > time.time():
                    raise LeaseHeld(f"{self.sink.display} is being written by another run: lease {describe(doc)}; "
                                    f"wait for it to finish (bear status shows it), or if that run was killed, "
                                    f"rerun after its lease expires")
                log.warning("taking over the writer lease of %s: %s", self.sink.display,
                            describe(doc) if doc else "its lease file is damaged")
                generation = self.sink.write_if(LEASE, self._document(), found[1])
                if generation is None:
                    continue  # another run took it over first: look again
            self.generation, self.renewed = generation, began
            # a renewal's temporary lives for milliseconds: one older than a lease is a killed holder's leftover
            self.sink.delete([r for r in self.sink.temporaries([STATE_DIR], older_than_s=self.lease_s) if is_lease(r)])
            self._thread = threading.Thread(target=self._heartbeat, name="bear-lease", daemon=True)
            self._thread.start()
            return
        raise LeaseHeld(f"{self.sink.display}: could not take the writer lease, other runs keep changing it")

    def _renew(self) -> None:
        began = _clock()
        generation = self.sink.write_if(LEASE, self._document(), self.generation)
        if generation is None:  # not the version we last wrote: ours all the same if a renewal of ours that
            found = self.sink.read_versioned(LEASE)  # seemed to fail landed after all
            doc = parse(found[0]) if found else None
            if doc is not None and doc["run_id"] == self.run_id:
                generation = self.sink.write_if(LEASE, self._document(), found[1])
        if generation is None:
            self._lose()
        self.generation, self.renewed = generation, began

    def _lose(self) -> None:
        self.lost = (f"another run took over the writer lease of {self.sink.display} after this run failed to "
                     f"renew it for {self.lease_s:.0f} s; stopped before committing more (the lake stays "
                     f"consistent: that run redoes what this one did not commit)")
        raise LeaseLost(self.lost)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 6):
            try:
                with self._lock:
                    if self.lost:
                        return
                    self._renew()
            except LeaseLost:
                return
            except Exception as exc:  # a sink outage: keep trying; ensure() stops commits once the term runs out
                log.warning("could not renew the writer lease (%s); retrying", brief(exc))

    def ensure(self) -> None:
        """Before a commit: the lease is this run's for at least half a term more, or LeaseLost is raised."""
        with self._lock:
            if self.lost:
                raise LeaseLost(self.lost)
            if _clock() - self.renewed > self.lease_s / 2:
                self._renew()

    def explain(self, exc: BaseException) -> None:
        """After a commit's write failed: raise LeaseLost if the lease is no longer this run's (another run took it
        over, and perhaps finished and released it; its start sweeps the temporaries a killed run left, which can
        be the one a frozen holder was about to rename); else return, and the caller's error stands."""
        with self._lock:
            if self.lost:
                raise LeaseLost(self.lost) from exc
            try:
                found = self.sink.read_versioned(LEASE)
            except Exception:
                return
            doc = parse(found[0]) if found else None
            if doc is None or doc["run_id"] != self.run_id:  # another run's, or gone with the run that took it
                self._lose()

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this run's (a failure only delays the next run
        until the lease expires)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.generation is None or self.lost:
            return
        try:
            self.sink.delete_if(LEASE, self.generation)
        except Exception as exc:
            log.warning("could not release the writer lease of %s (%s); the next run can take it over after "
                        "%.0f s", self.sink.display, brief(exc), self.lease_s)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
