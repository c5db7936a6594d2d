"""The original sample's Backend #1: Flask with the AWS X-Ray SDK for Python.

GET / writes {SubAppId: backend1, LastAccessed} to DynamoDB with boto3 and answers the date at
UTC+09:00; GET /health answers {"status": "ok"}.
"""
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from math import floor

import boto3
from aws_xray_sdk.core import patch_all, xray_recorder
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware
from flask import Flask, jsonify
from flask_cors import CORS

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)

patch_all()

app = Flask(__name__)
CORS(app)

if os.environ.get("BENCH_SAMPLING_RULES"):
    # Benchmark switch: local rules only, as the daemon sink serves no sampling API.
    xray_recorder.configure(
        sampler=LocalSampler(), sampling_rules=os.environ["BENCH_SAMPLING_RULES"]
    )
xray_recorder.configure(service="Backend #1")
XRayMiddleware(app, xray_recorder)


@app.route("/health")
def health():
    return jsonify({"status": "ok"})


@app.route("/")
def main():
    if os.environ.get("RECORD_LAST_ACCESS", "").lower() != "off":
        try:
            table_name = os.environ.get("DYNAMO_DB_TABLE_NAME", "")
            region = os.environ.get("AWS_DEFAULT_REGION", "")
            table = boto3.resource("dynamodb", region_name=region).Table(table_name)
            table.put_item(
                Item={"SubAppId": "backend1", "LastAccessed": str(floor(time.time()))}
            )
        except Exception:
            logger.exception("could not record the last access")
    now = datetime.now(timezone(timedelta(hours=9)))
    return jsonify({"currentDate": now.strftime("%Y/%m/%d")})


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "80")))
