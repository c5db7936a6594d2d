// A caller written like the original's BFF: Express with the official AWS X-Ray SDK
// (captureHTTPsGlobal before any request is made). GET /call?url=U calls U over HTTP and
// answers what it got. The interop tests use it to check that our host continues a trace the
// Node SDK started.
//
// Usage: node express_client.js PORT   (AWS_XRAY_DAEMON_ADDRESS names the daemon)
"use strict";

const AWSXRay = require("aws-xray-sdk");
AWSXRay.captureHTTPsGlobal(require("http"), true);
const http = require("http");
const express = require("express");

AWSXRay.middleware.setSamplingRules({
  version: 2,
  default: { fixed_target: 0, rate: 1.0 },
  rules: [],
});

const app = express();
app.use(AWSXRay.express.openSegment("Express Caller"));

app.get("/call", (req, res) => {
  http
    .get(req.query.url, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => res.json({ status: response.statusCode, body }));
    })
    .on("error", (error) => res.status(502).json({ error: String(error) }));
});

app.use(AWSXRay.express.closeSegment());

app.listen(Number(process.argv[2]), "127.0.0.1", () => {
  console.log("listening");
});
