// A test component for the JavaScript guest library (components/js/xray-host.js), built by
// scripts/build-js-components.sh into test_js_guest.wasm.
//
// GET / records, inside an `async` subsegment named "guest checks": annotations from each kind
// of plain scalar, metadata from an object, then an annotation with an invalid key, whose
// refusal it answers as JSON ({"message", "code", "name"}) so that the test can read the
// error a component author would see. It then puts an item built from a nested object.

import { annotate, putItem, subsegment } from "xray-host.js";

async function handle() {
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
  return new Response(JSON.stringify(refusal), {
    status: refusal ? 200 : 500,
    headers: { "content-type": "application/json" },
  });
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
