"""The item both backends write on every request, as the original wrote it to DynamoDB:
`{SubAppId: "<service>", LastAccessed: "<epoch seconds>"}`."""

import sys
import time

import xray_host

from . import environment


async def record_last_access(sub_app_id):
    """Records that `sub_app_id` was accessed now; a failure is logged and otherwise ignored,
    as the original did. `RECORD_LAST_ACCESS=off` skips the write."""
    if (environment.get("RECORD_LAST_ACCESS") or "").lower() == "off":
        return
    item = {"SubAppId": sub_app_id, "LastAccessed": str(int(time.time()))}
    try:
        await xray_host.put_item(item)
    except xray_host.TableError as error:
        print(f"{sub_app_id}: could not record the last access: {error}", file=sys.stderr)
