// The guest library for JavaScript components of xray-host: idiomatic helpers over the
// bindings componentize-js generates for the `xray-host:platform` interfaces.
//
//   import { subsegment, annotate } from "xray-host.js";
//   annotate("tier", "gold");
//   const answer = await subsegment("call backend", async (work) => {
//     work.annotate("attempt", 1);
//     return await fetch(url);
//   });
//
// Unlike the Rust helpers, which log a refused call and go on, these throw: a JavaScript
// author expects bad input to throw, and the thrown `TracingError`/`TableError` names the
// problem the host found (its `code` is the WIT error case, its `detail` the payload).

import { currentSegment } from "xray-host:platform/tracing@0.2.0";
import { putItem as rawPutItem } from "xray-host:platform/table@0.2.0";

/** What the host says about each refusal, for a person. */
const TRACING_PROBLEMS = {
  "invalid-annotation-key": (key) =>
    `invalid annotation key ${JSON.stringify(key)}: use 1 to 500 of a-z, A-Z, 0-9 and _`,
  "annotation-value-too-long": (length) =>
    `annotation value too long (${length} characters, at most 1000)`,
  "invalid-annotation-value": (value) =>
    `invalid annotation value ${value}: NaN and infinities are not JSON`,
  "too-many-annotations": (limit) => `too many annotations (X-Ray keeps at most ${limit})`,
  "invalid-metadata-namespace": (namespace) =>
    `invalid metadata namespace ${JSON.stringify(namespace)}: not empty, not starting with "AWS."`,
  "invalid-metadata-json": (message) => `metadata is not valid JSON: ${message}`,
  "invalid-name": (name) =>
    `invalid subsegment name ${JSON.stringify(name)}: 1 to 200 letters, digits, spaces or _ . : / % & # = + \\ - @`,
  "limit-exceeded": (which) => `limit exceeded: ${which}`,
  "already-ended": () => "the subsegment has already been ended",
};

/** A tracing call the host refused; nothing was recorded. */
export class TracingError extends Error {
  constructor(what, code, detail) {
    const describe = TRACING_PROBLEMS[code] ?? (() => `${code} ${detail ?? ""}`);
    super(`tracing: the host refused ${what}: ${describe(detail)}`);
    this.name = "TracingError";
    /** The WIT `tracing-error` case, for example `invalid-annotation-key`. */
    this.code = code;
    /** The case's payload, if any. */
    this.detail = detail;
  }
}

/** A table call the host refused or that failed. */
export class TableError extends Error {
  constructor(what, code, detail) {
    const text =
      code === "too-large"
        ? `item too large (${detail} bytes; DynamoDB takes at most 400 KB)`
        : `${code}: ${detail}`;
    super(`table: ${what} failed: ${text}`);
    this.name = "TableError";
    /** The WIT `table-error` case, for example `too-large`. */
    this.code = code;
    /** The case's payload. */
    this.detail = detail;
  }
}

/** Runs a raw binding call, turning the WIT error it throws into a `TracingError`. */
function tracingCall(what, call) {
  try {
    return call();
  } catch (error) {
    throw asWitError(error, (code, detail) => new TracingError(what, code, detail));
  }
}

/** The error variant componentize-js throws for `result::err` is in `payload`. */
function asWitError(error, make) {
  const payload = error?.payload;
  if (payload && typeof payload.tag === "string") {
    return make(payload.tag, payload.val);
  }
  return error;
}

/** A plain scalar as the WIT `annotation-value` variant. */
export function annotationValue(value) {
  switch (typeof value) {
    case "string":
      return { tag: "text", val: value };
    case "boolean":
      return { tag: "boolean", val: value };
    case "bigint":
      return { tag: "integer", val: value };
    case "number":
      return Number.isSafeInteger(value)
        ? { tag: "integer", val: BigInt(value) }
        : { tag: "number", val: value };
    default:
      throw new TypeError(
        `an annotation value must be a string, number, bigint or boolean, not ${typeof value}`,
      );
  }
}

/** Any JSON-serializable value as the JSON text `add-metadata` takes. */
function metadataJson(namespace, key, value) {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new TypeError(`metadata ${namespace}/${key} is not serializable to JSON`);
  }
  return json;
}

/** An error as the WIT `exception` record. */
function exceptionOf(error, remote) {
  return {
    message: String(error?.message ?? error),
    kind: error?.name,
    remote,
    stack: [],
  };
}

/** A subsegment: the unit of work `subsegment()` brackets. */
export class Subsegment {
  #raw;
  constructor(raw) {
    this.#raw = raw;
  }
  /** Its id as it appears in the trace. */
  get id() {
    return this.#raw.id();
  }
  /** Adds or replaces an annotation; `value` is a string, number, bigint or boolean. */
  annotate(key, value) {
    const wit = annotationValue(value);
    tracingCall(`annotation ${JSON.stringify(key)}`, () => this.#raw.addAnnotation(key, wit));
  }
  /** Adds or replaces `metadata[namespace][key]` with any JSON-serializable value. */
  metadata(namespace, key, value) {
    const json = metadataJson(namespace, key, value);
    tracingCall(`metadata ${namespace}/${key}`, () => this.#raw.addMetadata(namespace, key, json));
  }
  /** Flags it as failed (`kind`: "error", "throttle" or "fault"), with the error as its cause. */
  fail(kind, error, { remote = false } = {}) {
    const exception = error === undefined ? undefined : exceptionOf(error, remote);
    tracingCall("failure", () => this.#raw.recordFailure(kind, exception));
  }
  /** Opens a child subsegment; end it with `end()` (or use `this.subsegment`). */
  begin(name) {
    return new Subsegment(tracingCall(`subsegment ${JSON.stringify(name)}`, () => this.#raw.beginChild(name)));
  }
  /** Runs `work` in a child subsegment, like the module's `subsegment`. */
  subsegment(name, work) {
    return bracket(this.begin(name), work);
  }
  /** Ends it now. */
  end() {
    tracingCall("end", () => this.#raw.end());
  }
}

/** Opens a subsegment under the request's segment; end it with `end()`. */
export function beginSubsegment(name) {
  const raw = tracingCall(`subsegment ${JSON.stringify(name)}`, () =>
    currentSegment().beginSubsegment(name),
  );
  return new Subsegment(raw);
}

/**
 * Runs `work(subsegment)` (sync or `async`) inside a new subsegment under the request's
 * segment, and ends the subsegment when it returns or settles. A thrown error or rejection
 * marks the subsegment as a fault with the error as its cause, and is rethrown.
 */
export function subsegment(name, work) {
  return bracket(beginSubsegment(name), work);
}

function bracket(opened, work) {
  let result;
  try {
    result = work(opened);
  } catch (error) {
    failAndEnd(opened, error);
    throw error;
  }
  if (result && typeof result.then === "function") {
    return result.then(
      (value) => {
        opened.end();
        return value;
      },
      (error) => {
        failAndEnd(opened, error);
        throw error;
      },
    );
  }
  opened.end();
  return result;
}

function failAndEnd(opened, error) {
  opened.fail("fault", error);
  opened.end();
}

/** Adds or replaces an annotation on the request's segment. */
export function annotate(key, value) {
  const wit = annotationValue(value);
  tracingCall(`annotation ${JSON.stringify(key)}`, () => currentSegment().addAnnotation(key, wit));
}

/** Adds or replaces `metadata[namespace][key]` on the request's segment. */
export function metadata(namespace, key, value) {
  const json = metadataJson(namespace, key, value);
  tracingCall(`metadata ${namespace}/${key}`, () =>
    currentSegment().addMetadata(namespace, key, json),
  );
}

/** The `X-Amzn-Trace-Id` value of the request's segment, to pass on other than by HTTP. */
export function traceHeader() {
  return currentSegment().traceHeader();
}

/** Whether the request's trace will be sent. */
export function isSampled() {
  return currentSegment().isSampled();
}

/**
 * Puts an item built from a plain object: strings, finite numbers, bigints, booleans, null,
 * arrays, `Uint8Array`s, `Set`s of strings or numbers, and nested objects.
 */
export function putItem(object) {
  const item = itemOf(object);
  try {
    rawPutItem(item);
  } catch (error) {
    throw asWitError(error, (code, detail) => new TableError("put-item", code, detail));
  }
}

/** A plain object as the flat WIT `item` (parents before their children). */
export function itemOf(object) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    throw new TypeError("an item must be a plain object of attributes");
  }
  const values = [];
  const attributes = Object.entries(object).map(([name, value]) => [
    name,
    pushValue(values, value, name),
  ]);
  return { attributes, values };
}

function pushValue(values, value, path) {
  const index = values.length;
  values.push(null);
  values[index] = valueOf(values, value, path);
  return index;
}

function valueOf(values, value, path) {
  if (value === null) return { tag: "null" };
  if (typeof value === "string") return { tag: "text", val: value };
  if (typeof value === "boolean") return { tag: "boolean", val: value };
  if (typeof value === "bigint") return { tag: "number", val: value.toString() };
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new TypeError(`attribute ${path} is ${value}: DynamoDB numbers are finite`);
    }
    return { tag: "number", val: String(value) };
  }
  if (value instanceof Uint8Array) return { tag: "binary", val: value };
  if (value instanceof Set) return setOf(value, path);
  if (Array.isArray(value)) {
    return {
      tag: "list",
      val: value.map((element, i) => pushValue(values, element, `${path}[${i}]`)),
    };
  }
  if (typeof value === "object") {
    return {
      tag: "map",
      val: Object.entries(value).map(([key, inner]) => [
        key,
        pushValue(values, inner, `${path}.${key}`),
      ]),
    };
  }
  throw new TypeError(`attribute ${path} is a ${typeof value}, which DynamoDB cannot store`);
}

function setOf(set, path) {
  const members = [...set];
  if (members.length > 0 && members.every((member) => typeof member === "string")) {
    return { tag: "text-set", val: members };
  }
  if (members.length > 0 && members.every((member) => typeof member === "number")) {
    return { tag: "number-set", val: members.map(String) };
  }
  throw new TypeError(`attribute ${path} must be a non-empty set of only strings or only numbers`);
}
