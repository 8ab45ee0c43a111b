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

import json
import logging
from urllib.parse import quote

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


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


def read_versioned(fs: GCSFileSystem, path: str) -> tuple[bytes, str] | None:
    """An object's bytes and the generation they belong to (None: no such object). The bytes are fetched by
    generation, so a replacement between the two requests shows as a missing object, never as a mix."""
    bucket, key = _split(path)
    try:
        meta = fs.call("GET", "b/{}/o/{}", bucket, key, json_out=True)
        _, data = fs.call("GET", "b/{}/o/{}", bucket, key, alt="media", generation=meta["generation"])
    except FileNotFoundError:
        return None
    return data, str(meta["generation"])


def upload_if(fs: GCSFileSystem, path: str, data: bytes, generation: str) -> str:
    """Upload `data` only if the object is at `generation` ("0": does not exist); returns the new generation.

    gcsfs's own uploads know only "overwrite" and "create", so this is its single-request multipart upload with
    `ifGenerationMatch` set; a lost race is HTTP 412, which gcsfs raises as FileExistsError.
    """
    bucket, key = _split(path)
    head = ("--==0==\nContent-Type: application/json; charset=UTF-8\n\n" + json.dumps({"name": key})
            + "\n--==0==\nContent-Type: application/octet-stream\n\n").encode()
    out = fs.call("POST", f"{fs._location}/upload/storage/v1/b/{quote(bucket)}/o", uploadType="multipart",
                  headers={"Content-Type": 'multipart/related; boundary="==0=="'}, json_out=True,
                  data=head + data + b"\n--==0==--", ifGenerationMatch=generation)
    return str(out["generation"])


def delete_if(fs: GCSFileSystem, path: str, generation: str) -> None:
    bucket, key = _split(path)
    fs.call("DELETE", "b/{}/o/{}", bucket, key, ifGenerationMatch=generation)
