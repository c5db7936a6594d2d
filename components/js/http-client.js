// An HTTP client for JavaScript components of xray-host that says why a call failed.
//
//   import { send, HttpClientError } from "http-client.js";
//   try {
//     const response = await send("http://backend-1:8080/");
//     const body = response.json();
//   } catch (error) {
//     if (error instanceof HttpClientError && error.timedOut) { /* answer 504 */ }
//   }
//
// Why not `fetch`: StarlingMonkey rejects a failed `fetch` with one TypeError ("NetworkError
// when attempting to fetch resource") whatever went wrong, so a component cannot tell a
// backend that did not answer in time (a 504 for its caller) from one that refused the
// connection or a call the host's allow-list denied (a 502). `send` calls
// `wasi:http/outgoing-handler` itself and throws the WASI `error-code` it gets.
//
// The host traces a call made with `send` exactly as one made with `fetch`: a remote
// subsegment under the subsegment open at the time, with the trace header passed on.
//
// `send` waits for the answer without running other JavaScript meanwhile (it blocks on the
// call's pollable): the engine serves one request per instance, so nothing else is waiting.

// Renamed: the library is inlined into the component's module, whose names it shares.
import { handle as handleOutgoing } from "wasi:http/outgoing-handler@0.2.10";
import {
  Fields,
  IncomingBody,
  OutgoingBody,
  OutgoingRequest,
  httpErrorCode,
} from "wasi:http/types@0.2.10";

/** The most bytes one read or write of a WASI stream moves. */
const CHUNK = 65536n;
/** The largest response body `send` reads unless told otherwise (`maxBodyBytes`). */
const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** `blocking-write-and-flush` takes at most 4096 bytes a call. */
const WRITE_CHUNK = 4096;

/** The WASI `error-code` cases that mean the other side did not answer in time. */
const TIMEOUTS = new Set([
  "connection-timeout",
  "connection-read-timeout",
  "connection-write-timeout",
  "http-response-timeout",
  "dns-timeout",
]);

/** The symbol the bindings give resources for dropping them (as they define it). */
const DISPOSE = Symbol.dispose ?? Symbol.for("dispose");

/** A call that failed before a whole response arrived; `code` says why. */
export class HttpClientError extends Error {
  constructor(url, code, detail) {
    super(`calling ${url} failed: ${code}${detail === undefined ? "" : ` (${detail})`}`);
    this.name = "HttpClientError";
    /**
     * The WASI `error-code` case in kebab case, for example `connection-refused`,
     * `http-response-timeout` or `http-request-denied` (the host's allow-list refused it).
     */
    this.code = code;
    /** The case's payload, if any. */
    this.detail = detail;
  }
  /** Whether the other side did not answer in time (a gateway answers 504 for this). */
  get timedOut() {
    return TIMEOUTS.has(this.code);
  }
}

/** A whole response: its status, headers and body, read before `send` settled. */
export class ClientResponse {
  constructor(status, headers, body) {
    /** The status code. */
    this.status = status;
    /** The headers as `[name, value]` pairs, values decoded as UTF-8. */
    this.headers = headers;
    /** The body's bytes. */
    this.body = body;
  }
  /** The first value of header `name` (any case), or `undefined`. */
  header(name) {
    const wanted = name.toLowerCase();
    return this.headers.find(([key]) => key.toLowerCase() === wanted)?.[1];
  }
  /** The body as UTF-8 text. */
  text() {
    return new TextDecoder().decode(this.body);
  }
  /** The body parsed as JSON (throws a `SyntaxError` if it is not JSON). */
  json() {
    return JSON.parse(this.text());
  }
}

/**
 * Sends a request to `url` (`http:` or `https:`) and reads the whole response. `method`
 * defaults to GET; `headers` is an object or `[name, value]` pairs; `body` is a string or a
 * `Uint8Array`; a response body longer than `maxBodyBytes` (16 MiB by default) is not read
 * into memory but refused with code `http-response-body-size`. Resolves to a
 * `ClientResponse` whatever its status; rejects with an `HttpClientError` when no whole
 * response arrived.
 */
export async function send(
  url,
  { method = "GET", headers = {}, body, maxBodyBytes = DEFAULT_MAX_BODY_BYTES } = {},
) {
  const target = new URL(url);
  const request = new OutgoingRequest(fieldsOf(headers));
  request.setMethod(methodOf(method));
  request.setScheme({ tag: target.protocol === "https:" ? "HTTPS" : "HTTP" });
  request.setAuthority(target.host);
  request.setPathWithQuery(`${target.pathname}${target.search}`);
  // The body is taken only when there is one: an untaken body is sent as no body at all,
  // where a finished empty one could go out as an empty chunked body.
  const outgoingBody = body === undefined ? undefined : request.body();
  const pending = wasiCall(url, () => handleOutgoing(request, undefined));
  if (outgoingBody) writeBody(url, outgoingBody, body);
  pending.subscribe().block();
  const response = unwrapResult(url, pending.get());
  return new ClientResponse(
    response.status(),
    response.headers().entries().map(([name, value]) => [name, new TextDecoder().decode(value)]),
    readBody(url, response.consume(), maxBodyBytes),
  );
}

/** Header pairs as WASI `fields`. */
function fieldsOf(headers) {
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  const encoder = new TextEncoder();
  const list = pairs.map(([name, value]) => [name.toLowerCase(), encoder.encode(String(value))]);
  try {
    return Fields.fromList(list);
  } catch (error) {
    // `header-error`: a name or value HTTP does not allow, or one the host forbids.
    throw new TypeError(`invalid request headers (${error?.payload?.tag ?? error}): ${JSON.stringify(pairs)}`);
  }
}

/** A method name as the WASI `method` variant. */
function methodOf(method) {
  const known = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
  const upper = method.toUpperCase();
  return known.includes(upper) ? { tag: upper.toLowerCase() } : { tag: "other", val: method };
}

/** Writes `body` to the request's body and finishes it. */
function writeBody(url, outgoingBody, body) {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const stream = outgoingBody.write();
  for (let at = 0; at < bytes.length; at += WRITE_CHUNK) {
    streamCall(url, () => stream.blockingWriteAndFlush(bytes.subarray(at, at + WRITE_CHUNK)));
  }
  // A body cannot be finished while its stream is alive.
  stream[DISPOSE]();
  wasiCall(url, () => OutgoingBody.finish(outgoingBody, undefined));
}

/** Reads an incoming body to its end, refusing one longer than `maxBytes`. */
function readBody(url, incomingBody, maxBytes) {
  const stream = incomingBody.stream();
  const chunks = [];
  let length = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(CHUNK);
    } catch (error) {
      if (error?.payload?.tag === "closed") break;
      throw streamError(url, error);
    }
    chunks.push(chunk);
    length += chunk.length;
    if (length > maxBytes) {
      throw new HttpClientError(url, "http-response-body-size", `more than ${maxBytes} bytes`);
    }
  }
  stream[DISPOSE]();
  IncomingBody.finish(incomingBody);
  const body = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}

/** `future-incoming-response.get`'s nested result: the response, or the error it names. */
function unwrapResult(url, outcome) {
  if (outcome === undefined) throw new HttpClientError(url, "internal-error", "no response yet");
  if (outcome.tag === "err") throw new HttpClientError(url, "internal-error", "response taken twice");
  const inner = outcome.val;
  if (inner.tag === "err") throw errorOf(url, inner.val);
  return inner.val;
}

/** Runs a WASI call that may throw an `error-code`, as an `HttpClientError`. */
function wasiCall(url, call) {
  try {
    return call();
  } catch (error) {
    if (error?.payload?.tag) throw errorOf(url, error.payload);
    throw error;
  }
}

/** Runs a stream call; a stream error carries the HTTP error behind it, when there is one. */
function streamCall(url, call) {
  try {
    return call();
  } catch (error) {
    throw streamError(url, error);
  }
}

function streamError(url, error) {
  const payload = error?.payload;
  if (payload?.tag === "last-operation-failed") {
    const code = httpErrorCode(payload.val);
    if (code) return errorOf(url, code);
    return new HttpClientError(url, "internal-error", payload.val.toDebugString());
  }
  if (payload?.tag === "closed") return new HttpClientError(url, "internal-error", "the stream closed early");
  return error;
}

/**
 * An `error-code` variant as an `HttpClientError`. The bindings spell some case names with
 * capitals (`HTTP-response-timeout`, `DNS-timeout`), so the code is lower-cased to the WIT
 * name.
 */
function errorOf(url, variant) {
  const detail =
    typeof variant.val === "object"
      ? JSON.stringify(variant.val, (_, value) => (typeof value === "bigint" ? String(value) : value))
      : variant.val;
  return new HttpClientError(url, variant.tag.toLowerCase(), detail);
}
