"""A backend written like the original's Backend #1: Flask with the official AWS X-Ray SDK
(XRayMiddleware and patch_all). The interop tests call it from our BFF to check that the SDK
continues the trace our host started.

Usage: python flask_backend.py PORT   (AWS_XRAY_DAEMON_ADDRESS names the daemon)
"""

import sys
from datetime import datetime, timedelta, timezone

from aws_xray_sdk.core import patch_all, xray_recorder
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware
from flask import Flask, jsonify

patch_all()

app = Flask(__name__)
xray_recorder.configure(
    service="Flask Backend",
    context_missing="LOG_ERROR",
    # Sample every request, so the test does not depend on a reservoir.
    sampling_rules={"version": 2, "default": {"fixed_target": 0, "rate": 1.0}, "rules": []},
)
XRayMiddleware(app, xray_recorder)


@app.route("/health")
def health():
    return jsonify(status="ok")


@app.route("/")
def main():
    now = datetime.now(timezone(timedelta(hours=9)))
    return jsonify(currentDate=now.strftime("%Y/%m/%d"))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]))
