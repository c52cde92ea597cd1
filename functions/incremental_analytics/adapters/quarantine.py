"""The quarantine: one S3 object per rejected record, written once whatever the redelivery.

A record's object is named by its shard and sequence number (intake.quarantine_key) and put with `If-None-Match:
*` ("How to prevent object overwrites with conditional writes", S3 User Guide): S3 answers 412 Precondition
Failed when the object is there already, so a batch delivered again, split differently or read back from the
stream writes nothing twice, and only the write that created the object counts in the `Rejected_*` metrics.
A 409 ConditionalRequestConflict (another write of the same key under way) is tried again, as the guide says.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from incremental_analytics.adapters import retrying
from incremental_analytics.domain.intake import Quarantined, quarantine_key

CONFLICT_ATTEMPTS = 5


def keep_once(s3: Any, bucket: str, reject: Quarantined) -> bool:
    """Quarantine the record unless it is already; True when this call wrote it."""
    body = json.dumps(reject.document(), separators=(",", ":")).encode()
    key = quarantine_key(reject)
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            retrying.call(
                lambda: s3.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
                ),
                "quarantine PutObject",
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "PreconditionFailed":
                return False
            if code != "ConditionalRequestConflict" or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            retrying.pause(attempt)
            continue
        return True
    raise AssertionError("unreachable")  # pragma: no cover
