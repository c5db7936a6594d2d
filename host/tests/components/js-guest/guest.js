// A test component for the JavaScript guest library (components/js/xray-host.js), built by
// scripts/build-js-components.sh into test_js_guest.wasm.
//
// GET / records, inside an `async` subsegment named "guest checks": annotations from each kind
// of plain scalar, metadata from an object, then an annotation with an invalid key, whose
// refusal it answers as JSON ({"message", "code", "name"}) so that the test can read the
// error a component author would see. It then puts an item built from a nested object.
//
// GET /put-large puts an item larger than DynamoDB's 400 KB and answers the thrown error as
// JSON, the same way.
//
// GET /send?to=URL[&max=N] POSTs a small body with a header to URL with the library's `send`
// (reading at most N bytes of the answer, if given) and answers what came back ({"status", "allow", "body"}), or the thrown `HttpClientError`
// ({"name", "code", "timedOut", "message"}).

import { HttpClientError, send } from "http-client.js";
import { annotate, putItem, subsegment } from "xray-host.js";

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === "/put-large") return putLarge();
  if (url.pathname === "/send") {
    const max = url.searchParams.get("max");
    return sendTo(url.searchParams.get("to"), max === null ? undefined : Number(max));
  }
  return checks();
}

function putLarge() {
  try {
    putItem({ SubAppId: "js-guest-large", payload: "x".repeat(500 * 1024) });
    return json(500, { error: "the host took an item over 400 KB" });
  } catch (error) {
    return json(400, { message: error.message, code: error.code, name: error.name });
  }
}

async function sendTo(target, maxBodyBytes) {
  try {
    const response = await send(target, {
      method: "POST",
      headers: { "content-type": "application/json", "x-guest": "js" },
      body: JSON.stringify({ from: "js-guest" }),
      maxBodyBytes,
    });
    return json(200, { status: response.status, allow: response.header("Allow"), body: response.json() });
  } catch (error) {
    if (!(error instanceof HttpClientError)) throw error;
    return json(502, { name: error.name, code: error.code, timedOut: error.timedOut, message: error.message });
  }
}

async function checks() {
  annotate("guest", "js");
  const refusal = await subsegment("guest checks", async (work) => {
    work.annotate("count", 3);
    work.annotate("ratio", 0.5);
    work.annotate("ok", true);
    work.annotate("tier", "gold");
    work.metadata("details", "request", { path: "/", tags: ["a", "b"], depth: { level: 2 } });
    await Promise.resolve();
    try {
      work.annotate("not a valid key!", 1);
      return null;
    } catch (error) {
      return { message: error.message, code: error.code, name: error.name };
    }
  });
  putItem({
    SubAppId: "js-guest",
    visits: 1,
    tags: new Set(["a", "b"]),
    nested: { ok: true, list: [1, "x"] },
  });
  return json(refusal ? 200 : 500, refusal);
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
