"""Shared by the Python client checks: the records every check writes, the way a check reports.

Every check writes the same N records to partition 0 of a fresh topic, so the expected log is
known in advance: record i has key ``k00000i``, value ``value-00000i-xxx`` (a varying length) a
header ``idx=i`` and the timestamp ``base + i`` ms. A check prints one line, ``PASS ...`` or
``FAIL ...`` followed by the differences, and exits 0 or 1; a watchdog ends it with exit 2 after
``--deadline`` seconds so that it can never hang a test run.
"""

import argparse
import os
import signal
import sys
import time
import traceback


def record(i, base_ts):
    """The i-th record every check writes: (key, value, headers, timestamp_ms), all ASCII."""
    key = f"k{i:06d}"
    value = f"value-{i:06d}-" + "x" * (i % 37)
    headers = [("idx", str(i).encode())]
    return key.encode(), value.encode(), headers, base_ts + i


def parse_args(client):
    p = argparse.ArgumentParser(description=f"Seedlog real-client check: {client}")
    p.add_argument("--bootstrap", required=True, help="HOST:PORT of a broker")
    p.add_argument("--topic", required=True, help="a topic name not used before")
    p.add_argument("--records", type=int, default=500, help="how many records to write (default 500)")
    p.add_argument("--no-create", action="store_true",
                   help="the topic exists already (1 partition); do not create it")
    p.add_argument("--replication-factor", type=int, default=1)
    p.add_argument("--deadline", type=float, default=60.0,
                   help="seconds after which the check gives up and exits 2 (default 60)")
    return p.parse_args()


class Check:
    """Tracks the current step, the watchdog and the verdict of one client check."""

    def __init__(self, client, deadline):
        self.client = client
        self.step = "start"
        self.started = time.monotonic()
        self.deadline = self.started + deadline
        self.notes = []
        signal.signal(signal.SIGALRM, self._expired)
        signal.alarm(max(1, int(deadline)))

    def _expired(self, _signum, _frame):
        print(f"FAIL {self.client}: gave up after {self.deadline - self.started:.0f}s "
              f"during step '{self.step}'", flush=True)
        os._exit(2)

    def remaining(self, cap):
        """Seconds left before the deadline, at most cap, at least 0.1."""
        return max(0.1, min(cap, self.deadline - time.monotonic() - 1.0))

    def at(self, step):
        self.step = step
        print(f"  .. {step}", file=sys.stderr, flush=True)

    def note(self, text):
        self.notes.append(text)

    def fail(self, detail, diffs=()):
        print(f"FAIL {self.client}: step '{self.step}': {detail}", flush=True)
        diffs = list(diffs)
        for line in diffs[:20]:
            print(f"    {line}", flush=True)
        if len(diffs) > 20:
            print(f"    ... and {len(diffs) - 20} more differences", flush=True)
        sys.stdout.flush()
        os._exit(1)

    def expect(self, what, got, want):
        if got != want:
            self.fail(f"{what}: got {got!r}, want {want!r}")

    def passed(self):
        took = time.monotonic() - self.started
        print(f"PASS {self.client}: " + "; ".join(self.notes) + f" ({took:.1f}s)", flush=True)
        sys.stdout.flush()
        os._exit(0)


def diff_records(want, got):
    """Differences between the expected and the consumed records, each a tuple
    (offset, key, value, headers, timestamp); returns human-readable lines."""
    lines = []
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        if w != g:
            lines.append(f"position {i}: want {w!r}, got {g!r}")
    return lines


def ts_lookup_expect(timestamps, target):
    """Kafka's ListOffsets by timestamp: the first offset whose timestamp is >= target, or -1."""
    for offset, ts in enumerate(timestamps):
        if ts >= target:
            return offset
    return -1


def run(client, body):
    """Parses the arguments, starts the watchdog and runs body(args, check); an exception
    anywhere is a FAIL naming the step it happened in."""
    args = parse_args(client)
    check = Check(client, args.deadline)
    try:
        body(args, check)
    except Exception as e:  # noqa: BLE001 - any failure is the verdict
        traceback.print_exc(file=sys.stderr)
        check.fail(f"{type(e).__name__}: {e}")
    check.fail("the check ended without a verdict")
