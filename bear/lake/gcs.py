"""gcsfs with bear's retry policy in charge: one HTTP attempt per call, a bounded wait per request.

gcsfs wraps every request in its own retry loop (six attempts, up to ~30 s of sleeping,
fixed when the class is defined, so its `retries=` option does not reach it). Two retry
layers would multiply attempts and hide failures behind long silent waits; bear's
`Sink.retrying` is the one that decides (sink.max_attempts, backoff, jitter), so this
filesystem makes exactly one attempt and raises gcsfs's own exceptions, which keep the
HTTP status (`HttpError.code`) that `bear.sink.classify` reads.

It also derives from gcsfs's core class rather than the experimental zonal/HNS one that
`gcsfs.GCSFileSystem` may resolve to: bear writes whole objects to standard buckets through
the JSON API, and the experimental class probes a gRPC API on first use of each bucket
(about 60 s against an emulator, which lacks it).
"""

from __future__ import annotations

import logging

import aiohttp
from gcsfs.core import GCSFileSystem
from gcsfs.retry import retry_request

# gcsfs logs each failed attempt with a traceback; bear retries, logs one line per retry and reports the
# outcome, so gcsfs's own account would only bury that line (and an auth failure must stay one line).
logging.getLogger("gcsfs").setLevel(logging.CRITICAL)


class OneAttemptGCSFileSystem(GCSFileSystem):
    """GCSFileSystem whose requests are attempted once; the caller retries."""

    _request = retry_request(retries=1)(GCSFileSystem._request.__wrapped__)


def gcs_filesystem(token: str, endpoint: str | None, timeout_s: float) -> OneAttemptGCSFileSystem:
    """A fresh (uncached) filesystem; a request that stays silent for `timeout_s` fails as a timeout."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
    return OneAttemptGCSFileSystem(token=token, endpoint_url=endpoint, skip_instance_cache=True,
                                   requests_timeout=timeout)
