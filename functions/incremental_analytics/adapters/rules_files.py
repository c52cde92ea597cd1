"""Rules files in the data bucket, and what SyncRules keeps beside them while it applies one.

A rules file can hold 10,000 rules (the contract's limit): far more than Step Functions' 256 KiB state. So the
workflow passes keys and counts, and its functions read and write these objects:
  rules/<file>                               the uploaded file (read at most one byte over the file-size limit)
  rules/<file>.errors.json                   the report of a rejected upload: {"file", "problems", "problems_total"}
  rules-sync/<execution>/rules.json          the validated rules, in the rules-file form (Rule.to_dict)
  rules-sync/<execution>/writes-<n>.json     one page of the table writes: a BatchWriteItem's RequestItems
Objects under rules-sync/ expire after a day (the bucket's lifecycle rules); they are not under rules/, so
writing them starts nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from incremental_analytics.adapters.rules_store import rule_item
from incremental_analytics.domain.rules import Rule

SYNC_PREFIX = "rules-sync/"
WRITES_PER_PAGE = 25  # BatchWriteItem's limit
_TOTAL_SIZE = re.compile(r"/(\d+)$")


def report_key(key: str) -> str:
    return f"{key}.errors.json"


def staged_rules_key(execution: str) -> str:
    return f"{SYNC_PREFIX}{execution}/rules.json"


def writes_key(execution: str, page: int) -> str:
    return f"{SYNC_PREFIX}{execution}/writes-{page:04d}.json"


def read_limited(client: Any, bucket: str, key: str, limit: int) -> tuple[bytes, int]:
    """At most `limit` + 1 bytes of an object, and the object's whole size (a larger one is refused by size)."""
    try:
        answer = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidRange":  # S3's answer for an empty object
            return b"", 0
        raise
    body: bytes = answer["Body"].read()
    total = _TOTAL_SIZE.search(answer.get("ContentRange") or "")
    return body, int(total.group(1)) if total else len(body)


def write_json(client: Any, bucket: str, key: str, value: Any) -> None:
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def read_json(client: Any, bucket: str, key: str) -> Any:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read(), parse_float=Decimal)


def write_pages(
    table: str,
    puts: Sequence[Rule],
    deletes: Sequence[str],
    updated_at: str,
) -> list[dict[str, Any]]:
    """The table writes of a sync as BatchWriteItem RequestItems, WRITES_PER_PAGE requests a page."""
    requests: list[dict[str, Any]] = [{"PutRequest": {"Item": rule_item(rule, updated_at)}} for rule in puts]
    requests += [{"DeleteRequest": {"Key": {"rule_id": {"S": rule_id}}}} for rule_id in deletes]
    return [{table: requests[start : start + WRITES_PER_PAGE]} for start in range(0, len(requests), WRITES_PER_PAGE)]
