// The BFF of the reference application as a JavaScript component, with the same contract as
// the Rust one (components/bff): `GET /api` and `GET /api/` call backend 1, then backend 2,
// and answer `{"currentDate":…,"currentTime":…}`; every failure answers at once with a JSON
// error naming the backend, 504 when the backend did not answer in time and 502 for anything
// else; `/health`, 404 and 405 follow the conventions of every reference service.
//
// Requests arrive through StarlingMonkey's `fetch` event (the engine implements the exported
// `wasi:http/incoming-handler`). The backends are called with the library's `send` rather
// than `fetch`, because a failed `fetch` does not say why it failed (see http-client.js); the
// host traces each call as a remote subsegment under the manual subsegment open at the time.

import { getEnvironment } from "wasi:cli/environment@0.2.10";
import { HttpClientError, send } from "http-client.js";
import { subsegment } from "xray-host.js";

const API_PATHS = ["/api", "/api/"];
const ALLOWED_METHODS = "GET, HEAD";

const BACKENDS = [
  { name: "Backend #1", urlEnv: "BACKEND_1_URL", field: "currentDate" },
  { name: "Backend #2", urlEnv: "BACKEND_2_URL", field: "currentTime" },
];

/** A failed backend call: the status to answer and the message for the JSON error. */
class BackendFailure extends Error {
  constructor(status, message, kind) {
    super(message);
    this.name = kind;
    this.status = status;
  }
}

/** The component's environment variables, read once (the host sets them per instance). */
let cachedEnvironment;
function environment() {
  cachedEnvironment ??= new Map(getEnvironment());
  return cachedEnvironment;
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

async function handle(request) {
  const method = request.method.toUpperCase();
  const path = new URL(request.url).pathname;
  const known = path === "/health" || API_PATHS.includes(path);
  if (!known) return json(404, { error: "not found", path });
  if (method !== "GET" && method !== "HEAD") {
    return json(
      405,
      { error: "method not allowed", method: request.method, allow: ALLOWED_METHODS },
      { allow: ALLOWED_METHODS },
    );
  }
  if (path === "/health") return json(200, { status: "ok" });
  return api();
}

async function api() {
  const answer = {};
  for (const backend of BACKENDS) {
    try {
      answer[backend.field] = await fetchField(backend);
    } catch (failure) {
      if (!(failure instanceof BackendFailure)) throw failure;
      return json(failure.status, { error: failure.message, backend: backend.name });
    }
  }
  return json(200, answer);
}

/** Calls `backend` inside a manual subsegment and returns its field. */
function fetchField(backend) {
  return subsegment(`call ${backend.name}`, async (work) => {
    work.annotate("backend", backend.name);
    try {
      return await call(backend);
    } catch (failure) {
      // Remote: the failure is the backend's, as the Rust BFF records it.
      if (failure instanceof BackendFailure) {
        work.fail("fault", failure, { remote: true });
      }
      throw failure;
    }
  }).catch((failure) => {
    throw failure instanceof BackendFailure ? failure : unexpected(backend, failure);
  });
}

async function call(backend) {
  const url = environment().get(backend.urlEnv);
  if (!url) {
    throw new BackendFailure(
      502,
      `${backend.name} is not configured (${backend.urlEnv} is unset)`,
      "BadGateway",
    );
  }
  try {
    new URL(url);
  } catch {
    throw new BackendFailure(502, `${backend.name} has an invalid URL (${url})`, "BadGateway");
  }
  let response;
  let body;
  try {
    response = await send(url);
    body = response.status === 200 ? response.json() : undefined;
  } catch (error) {
    if (error instanceof HttpClientError) throw describeSendError(backend, url, error);
    if (!(error instanceof SyntaxError)) throw error;
    throw new BackendFailure(
      502,
      `${backend.name} answered something that is not JSON`,
      "BadGateway",
    );
  }
  if (response.status !== 200) {
    throw new BackendFailure(502, `${backend.name} answered HTTP ${response.status}`, "BadGateway");
  }
  const value = body?.[backend.field];
  if (typeof value !== "string") {
    throw new BackendFailure(
      502,
      `${backend.name} answered JSON without a string "${backend.field}"`,
      "BadGateway",
    );
  }
  return value;
}

/** A call that got no whole answer, described as the Rust BFF describes it. */
function describeSendError(backend, url, error) {
  const name = backend.name;
  if (error.timedOut) {
    return new BackendFailure(504, `${name} did not answer in time (${url})`, "Timeout");
  }
  switch (error.code) {
    case "connection-refused":
      return new BackendFailure(502, `${name} refused the connection (${url})`, "BadGateway");
    case "http-request-denied":
      return new BackendFailure(
        502,
        `the host does not allow calls to ${name} (${url}): check its allow-list`,
        "BadGateway",
      );
    default:
      return new BackendFailure(502, `calling ${name} (${url}) failed: ${error.code}`, "BadGateway");
  }
}

function unexpected(backend, error) {
  return new BackendFailure(502, `calling ${backend.name} failed: ${error?.message ?? error}`, "BadGateway");
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
