// genapi.js: the CeleryGenApi client for browsers, one ES module with no dependencies.
//
//   import { GenApiClient, GenApiError } from "/static/genapi.js";
//   const client = new GenApiClient("/ws", { token });
//   await client.connect();
//   const sum = await client.call("demo", "add", { a: 1, b: 2 });
//   for await (const chunk of client.stream("feeds", "count", { n: 5 })) { ... }  // break cancels
//
// The wire protocol is docs/protocol.md; this module is documented in docs/clients.md.

const MSGPACK_SUBPROTOCOL = "genapi.msgpack";
const RELAY_KEYS = ["from_user_id", "group_id", "message", "timestamp"];
const MAX_BACKOFF_MS = 10000;
const FIRST_BACKOFF_MS = 250;

// ------------------------------------------------------------------ errors

/** An error frame (or a call that could not finish): `error` is the frame's error string. */
export class GenApiError extends Error {
  constructor(frame) {
    super(frame.error);
    this.name = "GenApiError";
    this.error = frame.error;
    this.canRetry = Boolean(frame.can_retry);
    this.requestId = frame.request_id;
    this.frame = frame;
  }
}

/** The socket dropped (or never opened) while the call was in flight; it may be retried. */
export class ConnectionLost extends GenApiError {
  constructor(requestId = null, error = "Connection lost") {
    super(errorFrame(requestId, error, true));
    this.name = "ConnectionLost";
  }
}

function errorFrame(requestId, error, canRetry) {
  return { request_id: requestId, result: null, success: false, error, async: false, has_more: false,
           can_retry: canRetry };
}

// ------------------------------------------------------------------ MessagePack

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

class Writer {
  constructor() {
    this.bytes = new Uint8Array(256);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  reserve(n) {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer);
  }

  u8(n) { this.reserve(1); this.view.setUint8(this.length, n); this.length += 1; }
  u16(n) { this.reserve(2); this.view.setUint16(this.length, n); this.length += 2; }
  u32(n) { this.reserve(4); this.view.setUint32(this.length, n); this.length += 4; }
  raw(bytes) { this.reserve(bytes.length); this.bytes.set(bytes, this.length); this.length += bytes.length; }

  head(n, fix, fixLimit, codes) {  // a length header: fix form, then 8/16/32-bit forms (codes[0] may be null)
    if (n < fixLimit) this.u8(fix | n);
    else if (codes[0] !== null && n <= 0xff) { this.u8(codes[0]); this.u8(n); }
    else if (n <= 0xffff) { this.u8(codes[1]); this.u16(n); }
    else { this.u8(codes[2]); this.u32(n); }
  }

  integer(n) {
    if (n >= 0) {
      if (n < 0x80) this.u8(n);
      else if (n <= 0xff) { this.u8(0xcc); this.u8(n); }
      else if (n <= 0xffff) { this.u8(0xcd); this.u16(n); }
      else if (n <= 0xffffffff) { this.u8(0xce); this.u32(n); }
      else { this.u8(0xcf); this.reserve(8); this.view.setBigUint64(this.length, BigInt(n)); this.length += 8; }
    } else if (n >= -32) this.u8(n & 0xff);
    else if (n >= -0x80) { this.u8(0xd0); this.reserve(1); this.view.setInt8(this.length, n); this.length += 1; }
    else if (n >= -0x8000) { this.u8(0xd1); this.reserve(2); this.view.setInt16(this.length, n); this.length += 2; }
    else if (n >= -0x80000000) { this.u8(0xd2); this.reserve(4); this.view.setInt32(this.length, n); this.length += 4; }
    else { this.u8(0xd3); this.reserve(8); this.view.setBigInt64(this.length, BigInt(n)); this.length += 8; }
  }

  value(v, depth = 0) {
    if (depth > 512) throw new RangeError("MessagePack: value nested too deeply");
    if (v !== null && typeof v === "object" && typeof v.toJSON === "function") v = v.toJSON();  // Date, as JSON does
    if (v === null || v === undefined) this.u8(0xc0);
    else if (v === false) this.u8(0xc2);
    else if (v === true) this.u8(0xc3);
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) this.u8(0xc0);  // JSON.stringify writes null for NaN and Infinity
      else if (Number.isSafeInteger(v)) this.integer(v);
      else { this.u8(0xcb); this.reserve(8); this.view.setFloat64(this.length, v); this.length += 8; }
    } else if (typeof v === "bigint") {
      this.u8(v < 0n ? 0xd3 : 0xcf);
      this.reserve(8);
      if (v < 0n) this.view.setBigInt64(this.length, v); else this.view.setBigUint64(this.length, v);
      this.length += 8;
    } else if (typeof v === "string") {
      const bytes = utf8Encoder.encode(v);
      this.head(bytes.length, 0xa0, 32, [0xd9, 0xda, 0xdb]);
      this.raw(bytes);
    } else if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
      const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
      this.head(bytes.length, 0, 0, [0xc4, 0xc5, 0xc6]);
      this.raw(bytes);
    } else if (Array.isArray(v)) {
      this.head(v.length, 0x90, 16, [null, 0xdc, 0xdd]);
      for (const item of v) this.value(typeof item === "function" ? null : item, depth + 1);
    } else if (typeof v === "object") {
      const entries = Object.entries(v).filter(([, item]) => item !== undefined && typeof item !== "function");
      this.head(entries.length, 0x80, 16, [null, 0xde, 0xdf]);
      for (const [key, item] of entries) { this.value(key, depth + 1); this.value(item, depth + 1); }
    } else {
      throw new TypeError(`MessagePack: cannot encode a ${typeof v}`);
    }
  }
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
  }

  take(n) {
    if (this.at + n > this.bytes.length) throw new RangeError("MessagePack: data ends too early");
    const start = this.at;
    this.at += n;
    return start;
  }

  u8() { return this.view.getUint8(this.take(1)); }
  u16() { return this.view.getUint16(this.take(2)); }
  u32() { return this.view.getUint32(this.take(4)); }
  slice(n) { const start = this.take(n); return this.bytes.subarray(start, start + n); }
  str(n) { return utf8Decoder.decode(this.slice(n)); }
  big(signed) {  // 64-bit integers become Numbers, exact up to 2^53, as JSON.parse gives them
    const start = this.take(8);
    return Number(signed ? this.view.getBigInt64(start) : this.view.getBigUint64(start));
  }

  array(n, depth) { const out = new Array(n); for (let i = 0; i < n; i++) out[i] = this.value(depth + 1); return out; }

  map(n, depth) {
    const out = {};
    for (let i = 0; i < n; i++) {
      const key = this.value(depth + 1);
      const item = this.value(depth + 1);
      // an own "__proto__" key, as JSON.parse makes, never the prototype
      Object.defineProperty(out, typeof key === "string" ? key : String(key),
        { value: item, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  ext(n) {
    const type = this.view.getInt8(this.take(1));
    const data = this.slice(n);
    if (type === -1 && (n === 4 || n === 8 || n === 12)) return timestamp(data);
    return { type, data: data.slice() };
  }

  value(depth = 0) {
    if (depth > 512) throw new RangeError("MessagePack: value nested too deeply");
    const b = this.u8();
    if (b < 0x80) return b;
    if (b < 0x90) return this.map(b & 0x0f, depth);
    if (b < 0xa0) return this.array(b & 0x0f, depth);
    if (b < 0xc0) return this.str(b & 0x1f);
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.slice(this.u8()).slice();
      case 0xc5: return this.slice(this.u16()).slice();
      case 0xc6: return this.slice(this.u32()).slice();
      case 0xc7: return this.ext(this.u8());
      case 0xc8: return this.ext(this.u16());
      case 0xc9: return this.ext(this.u32());
      case 0xca: return this.view.getFloat32(this.take(4));
      case 0xcb: return this.view.getFloat64(this.take(8));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.big(false);
      case 0xd0: return this.view.getInt8(this.take(1));
      case 0xd1: return this.view.getInt16(this.take(2));
      case 0xd2: return this.view.getInt32(this.take(4));
      case 0xd3: return this.big(true);
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      default: throw new RangeError(`MessagePack: unknown type byte 0x${b.toString(16)}`);
    }
  }
}

function timestamp(data) {  // the MessagePack timestamp extension (type -1) as a Date
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let seconds, nanos = 0;
  if (data.length === 4) seconds = view.getUint32(0);
  else if (data.length === 8) {
    const both = view.getBigUint64(0);
    nanos = Number(both >> 34n);
    seconds = Number(both & 0x3ffffffffn);
  } else {
    nanos = view.getUint32(0);
    seconds = Number(view.getBigInt64(4));
  }
  return new Date(seconds * 1000 + nanos / 1e6);
}

/** MessagePack encoding and decoding of JSON-like values (what a genapi.msgpack frame holds). */
export const msgpack = {
  /** @returns {Uint8Array} */
  encode(value) {
    const writer = new Writer();
    writer.value(value);
    return writer.bytes.slice(0, writer.length);
  },
  /** @param {Uint8Array|ArrayBuffer} data */
  decode(data) {
    const reader = new Reader(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    const value = reader.value();
    if (reader.at !== reader.bytes.length) throw new RangeError("MessagePack: extra bytes after the value");
    return value;
  },
};

// ------------------------------------------------------------------ frames

/** A relay frame: somebody's message to a group we are in (docs/relay.md#relay-frames). */
export function isRelayFrame(frame) {
  const result = frame.result;
  if (!frame.success || result === null || typeof result !== "object" || Array.isArray(result)) return false;
  const keys = Object.keys(result).sort();
  return keys.length === RELAY_KEYS.length && keys.every((key, i) => key === RELAY_KEYS[i]);
}

function resolveUrl(url, token) {
  const base = globalThis.location ? globalThis.location.href : undefined;
  const resolved = new URL(url, base);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  if (resolved.protocol === "https:") resolved.protocol = "wss:";
  if (token) resolved.searchParams.set("token", token);
  return resolved.toString();
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** One request in flight, until its terminal frame. Sync, async and stream answers are told
 *  apart by their frames, so the caller need not know the function's response_type. */
class Pending {
  constructor(client, request, { onChunk = null, onAck = null } = {}) {
    this.client = client;
    this.request = request;
    this.onChunk = onChunk;
    this.onAck = onAck;
    this.opened = false;     // a stream's "init" frame has arrived
    this.acked = false;      // an async ack (or a stream's init) has arrived
    this.chunks = [];        // a stream read with call(): every chunk
    this.done = deferred();
    this.timer = null;
  }

  get id() { return this.request.request_id; }

  receive(frame) {
    if (!frame.success) return this.finish(new GenApiError(frame));
    if (frame.has_more) {
      if (this.opened) this.chunk(frame.result);
      else { this.opened = true; this.ack(); }
      return;
    }
    if (this.opened) {                        // the stream's terminal frame: its last chunk, or an end frame
      if (frame.result !== null) this.chunk(frame.result);
      return this.finish(null, this.chunks);
    }
    if (frame.async) { this.ack(); return; }  // an async ack: the result follows
    this.finish(null, frame.result);
  }

  ack() {
    this.acked = true;
    if (this.onAck) this.onAck();
  }

  chunk(value) {
    if (this.onChunk) this.onChunk(value);
    else this.chunks.push(value);
  }

  finish(error, result) {
    if (this.client._calls.get(this.id) !== this) return;
    this.client._calls.delete(this.id);
    const waiting = this.client._outbox.indexOf(this.request);
    if (waiting >= 0) this.client._outbox.splice(waiting, 1);  // timed out before it could be sent
    clearTimeout(this.timer);
    if (error) this.done.reject(error);
    else this.done.resolve(result);
  }
}

/** An async iterator over a stream's chunks. Leaving a `for await` loop early (break,
 *  return, throw) cancels the stream with gateway/cancel. */
class StreamCall {
  constructor(client, request) {
    this.client = client;
    this.requestId = request.request_id;
    this.items = [];          // chunks not read yet
    this.waiting = null;      // a deferred next()
    this.ended = false;       // the terminal frame has arrived
    this.failure = null;
    this.stopped = false;     // return() was called
    this.pending = new Pending(client, request, { onChunk: (value) => this.push(value) });
    this.pending.done.promise.then(() => this.end(null), (error) => this.end(error));
  }

  push(value) {
    if (this.stopped) return;
    if (this.waiting) { this.waiting.resolve({ value, done: false }); this.waiting = null; }
    else this.items.push(value);
  }

  end(error) {
    this.ended = true;
    this.failure = this.stopped ? null : error;
    if (this.waiting) {
      if (this.failure) this.waiting.reject(this.failure); else this.waiting.resolve({ value: undefined, done: true });
      this.waiting = null;
    }
  }

  [Symbol.asyncIterator]() { return this; }

  next() {
    if (this.items.length) return Promise.resolve({ value: this.items.shift(), done: false });
    if (this.ended || this.stopped) {
      const failure = this.failure;
      this.failure = null;  // reported once
      return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
    }
    this.waiting = deferred();
    return this.waiting.promise;
  }

  /** Stop early: sends gateway/cancel (unless the stream has ended) and waits for its answer. */
  async return(value) {
    if (!this.stopped) {
      this.stopped = true;
      this.items = [];
      if (this.waiting) { this.waiting.resolve({ value: undefined, done: true }); this.waiting = null; }
      if (!this.ended) {
        try { await this.client.cancel(this.requestId); } catch { /* it ended meanwhile, or the socket went */ }
      }
    }
    return { value, done: true };
  }

  async throw(error) {
    await this.return();
    throw error;
  }

  /** Same as leaving the loop: cancel the stream. */
  cancel() { return this.return(); }
}

// ------------------------------------------------------------------ the client

/**
 * One WebSocket to a CeleryGenApi gateway, shared by any number of calls in flight.
 *
 * @param {string} url  the gateway's WebSocket URL ("ws://host:8000/ws"); a path such as "/ws"
 *   or an http(s) URL is turned into the ws(s) URL of the same host.
 * @param {object} options
 *   token      the signed token (added as ?token=); a browser cannot send headers on a WebSocket
 *   encoding   "json" (text frames, the default) or "msgpack" (binary frames, subprotocol genapi.msgpack)
 *   reconnect  after a drop, open a new socket with exponential backoff (default true)
 *   rejoin     on reconnecting, join again the relay groups joined or created before (default true)
 *   timeout    ms a call() waits for its answer before rejecting with "Request timed out" (0: no limit)
 *   deviceId   sent as device_id in every request (used when the token carries none)
 *   onFrame    (frame, "in" | "out") sees every frame, decoded
 *   onState    (state) sees "connecting", "open", "reconnecting", "closed"
 */
export class GenApiClient {
  constructor(url, { token = null, encoding = "json", reconnect = true, rejoin = true, timeout = 0,
                     deviceId = null, onFrame = null, onState = null, WebSocket: Socket = globalThis.WebSocket } = {}) {
    if (encoding !== "json" && encoding !== "msgpack") {
      throw new TypeError(`encoding must be "json" or "msgpack", got ${JSON.stringify(encoding)}`);
    }
    this.url = resolveUrl(url, token);
    this.encoding = encoding;
    this.reconnect = reconnect;
    this.rejoin = rejoin;
    this.timeout = timeout;
    this.deviceId = deviceId;
    this.onFrame = onFrame;
    this.onState = onState;
    this.state = "idle";
    this.groups = new Set();     // relay groups to join again after a reconnect
    this._Socket = Socket;
    this._ws = null;
    this._calls = new Map();     // request_id -> Pending
    this._outbox = [];           // requests waiting for the socket to open
    this._relayHandlers = new Set();
    this._prefix = `js-${Math.random().toString(36).slice(2, 10)}-`;  // unlike other clients' ids
    this._nextId = 1;
    this._attempt = 0;
    this._wanted = false;        // connect() was called and close() was not
    this._opening = null;        // the deferred of the socket being opened
    this._retryTimer = null;
  }

  /** The WebSocket subprotocol the gateway accepted ("genapi.msgpack", or "" for JSON). */
  get protocol() { return this._ws ? this._ws.protocol : ""; }

  /** Open the socket. Resolves once it is open; rejects if the first attempt fails. */
  connect() {
    this._wanted = true;
    if (this.state === "open") return Promise.resolve(this);
    if (!this._opening) {
      this._opening = deferred();
      if (this.state !== "reconnecting") this._open(false);  // else: resolves when the retry opens
    }
    return this._opening.promise;
  }

  /** Close the socket for good: calls in flight reject with ConnectionLost, no reconnect. */
  close() {
    this._wanted = false;
    clearTimeout(this._retryTimer);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "client closed");
    this._failAll("Connection closed by the client");
    if (this._opening) { this._opening.reject(new ConnectionLost(null, "Connection closed by the client")); this._opening = null; }
    this._setState("closed");
  }

  /** Call a function; resolves with its result (a stream's: the list of its chunks). */
  call(service, requestType, args = {}, { version = null, timeout = null } = {}) {
    const pending = new Pending(this, this._request(service, requestType, args, version));
    const promise = this._start(pending, timeout);
    promise.requestId = pending.id;
    return promise;
  }

  /** Start a stream; iterate with `for await`. `.requestId` names it, `.cancel()` stops it. */
  stream(service, requestType, args = {}, { version = null } = {}) {
    const call = new StreamCall(this, this._request(service, requestType, args, version));
    this._start(call.pending, 0).catch(() => {});  // errors reach the iterator
    return call;
  }

  /** Send a request and wait for nothing (a response_type "none" function). Returns its id.
   *  An error found before dispatch still arrives, to onFrame only. */
  notify(service, requestType, args = {}, { version = null } = {}) {
    const request = this._request(service, requestType, args, version);
    if (this.state === "closed") throw new ConnectionLost(request.request_id, "The client is closed");
    this._send(request);
    return request.request_id;
  }

  /** Stop a running async call or stream of this connection (gateway/cancel). */
  cancel(requestId) {
    return this.call("gateway", "cancel", { request_id: requestId });
  }

  /** The functions this caller may call, with their argument schemas (gateway/functions). */
  functions() {
    return this.call("gateway", "functions", {});
  }

  /** A request of the built-in relay service: create_group, join_group, send, group_info, ... */
  async relay(requestType, args = {}) {
    const result = await this.call("relay", requestType, args);
    const group = args.group_id;
    if (requestType === "create_group" || requestType === "join_group") this.groups.add(group);
    if (requestType === "leave_group" || requestType === "delete_group") this.groups.delete(group);
    return result;
  }

  /** handler(message, frame) gets every relay frame ({group_id, from_user_id, message,
   *  timestamp}). Returns the function that unsubscribes it. */
  onRelay(handler) {
    this._relayHandlers.add(handler);
    return () => this._relayHandlers.delete(handler);
  }

  // -------------------------------------------------------------- internals

  _request(service, requestType, args, version) {
    const request = { service, request_type: requestType, request_id: this._prefix + this._nextId++,
                      args: args ?? {} };
    if (version) request.version = version;
    if (this.deviceId) request.device_id = this.deviceId;
    return request;
  }

  _start(pending, timeout) {
    this._calls.set(pending.id, pending);
    const limit = timeout ?? this.timeout;
    if (limit > 0) {
      pending.timer = setTimeout(() => {
        if (pending.acked) this.cancel(pending.id).catch(() => {});  // stop the worker too
        pending.finish(new GenApiError(errorFrame(pending.id, "Request timed out", true)));
      }, limit);
    }
    this._send(pending.request);
    return pending.done.promise;
  }

  _send(request) {
    if (this.state === "closed") {  // close() was called, or the socket dropped with reconnect off
      this._calls.get(request.request_id)?.finish(new ConnectionLost(request.request_id, "The client is closed"));
      return;
    }
    if (this.state === "idle") this.connect().catch(() => {});
    if (this.state === "open" && this._ws) this._write(request);
    else this._outbox.push(request);
  }

  _write(request) {
    if (this.onFrame) this.onFrame(request, "out");
    this._ws.send(this.encoding === "msgpack" ? msgpack.encode(request) : JSON.stringify(request));
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    if (this.onState) this.onState(state);
  }

  _open(again) {
    this._setState(again ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = this.encoding === "msgpack" ? new this._Socket(this.url, [MSGPACK_SUBPROTOCOL]) : new this._Socket(this.url);
    } catch (error) {  // a malformed URL
      this._opening?.reject(error);
      this._opening = null;
      this._setState("closed");
      return;
    }
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this._ws = ws;
      this._attempt = 0;
      this._setState("open");
      this._opening?.resolve(this);
      this._opening = null;
      if (again && this.rejoin) {
        for (const group of this.groups) this.call("relay", "join_group", { group_id: group }).catch(() => {});
      }
      const waiting = this._outbox.splice(0);
      for (const request of waiting) this._write(request);
    };
    ws.onmessage = (event) => this._receive(event.data);
    ws.onclose = () => this._dropped(ws, opened, again);
    ws.onerror = () => {};  // a close event follows
  }

  _dropped(ws, opened, again) {
    if (this._ws === ws) this._ws = null;
    if (!this._wanted) return;  // close() was called
    this._failAll();
    if (!opened && !again) {     // the first attempt failed: tell connect()'s caller
      this._opening?.reject(new ConnectionLost(null, `Could not connect to ${this.url.split("?")[0]}`));
      this._opening = null;
      for (const request of this._outbox.splice(0)) {
        this._calls.get(request.request_id)?.finish(new ConnectionLost(request.request_id));
      }
      this._setState("closed");
      this.state = "idle";      // a later call() tries again
      return;
    }
    if (!this.reconnect) { this._setState("closed"); return; }
    this._setState("reconnecting");
    const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this._attempt++) * (0.5 + Math.random() / 2);
    this._retryTimer = setTimeout(() => { if (this._wanted) this._open(true); }, delay);
  }

  _failAll(error = "Connection lost") {
    const outboxIds = new Set(this._outbox.map((request) => request.request_id));
    for (const pending of [...this._calls.values()]) {
      if (outboxIds.has(pending.id) && this._wanted) continue;  // not sent yet: it goes out after the reconnect
      pending.finish(new ConnectionLost(pending.id, error));
    }
    if (!this._wanted) this._outbox = [];
  }

  _receive(data) {
    let frame;
    try {
      frame = typeof data === "string" ? JSON.parse(data) : msgpack.decode(new Uint8Array(data));
    } catch (error) {
      console.warn("genapi.js: a frame that does not decode", error);
      return;
    }
    if (this.onFrame) this.onFrame(frame, "in");
    const pending = this._calls.get(frame.request_id);
    // a relay frame carries its sender's request id: tell it by its shape first
    if (isRelayFrame(frame) && (!pending || pending.request.service === "relay")) {
      for (const handler of [...this._relayHandlers]) {
        try { handler(frame.result, frame); } catch (error) { console.error("genapi.js: relay handler failed", error); }
      }
      return;
    }
    if (pending) pending.receive(frame);
  }
}
