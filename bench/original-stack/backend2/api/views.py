"""Backend #2's views: GET / writes {SubAppId: backend2, LastAccessed} to DynamoDB with boto3
and answers the time at UTC+09:00; GET /health answers {"status": "ok"}."""
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from math import floor

import boto3
from aws_xray_sdk.core import patch_all
from django.http import JsonResponse
from rest_framework.decorators import api_view

logger = logging.getLogger(__name__)

patch_all()


@api_view(["GET"])
def health_check(request):
    return JsonResponse({"status": "ok"})


@api_view(["GET"])
def main(request):
    if os.environ.get("RECORD_LAST_ACCESS", "").lower() != "off":
        try:
            table_name = os.environ.get("DYNAMO_DB_TABLE_NAME", "")
            region = os.environ.get("AWS_DEFAULT_REGION", "")
            table = boto3.resource("dynamodb", region_name=region).Table(table_name)
            table.put_item(
                Item={"SubAppId": "backend2", "LastAccessed": str(floor(time.time()))}
            )
        except Exception:
            logger.exception("could not record the last access")
    now = datetime.now(timezone(timedelta(hours=9)))
    return JsonResponse({"currentTime": now.strftime("%H:%M:%S")})
