// The try-it page (index.html): sign in, list the functions the caller may call, build a form
// per function from its JSON Schema ("args_schema"), call it, and show every frame.
// Everything goes through the browser client, genapi.js. The DOM is built with textContent
// only: names and descriptions come from workers.

import { GenApiClient, GenApiError, isRelayFrame } from "./genapi.js";

const $ = (id) => document.getElementById(id);
const MAX_FRAMES = 500;
const LONG_FRAME = 300;

// ------------------------------------------------------------------ schema → form

/** What kind of input an argument's schema asks for: select (enum), checkbox (boolean),
 *  number, text (string) or json (lists, maps, several types, any). */
export function argSpec(schema = {}) {
  let s = schema ?? {};
  let nullable = false;
  if (Array.isArray(s.anyOf)) {
    const rest = s.anyOf.filter((option) => option && option.type !== "null");
    nullable = rest.length < s.anyOf.length;
    const { anyOf, ...outer } = s;
    s = rest.length === 1 ? { ...rest[0], ...outer } : outer;
  }
  let types = s.type === undefined ? [] : [].concat(s.type);
  if (types.includes("null")) {
    nullable = true;
    types = types.filter((t) => t !== "null");
  }
  let choices = Array.isArray(s.enum) ? s.enum : null;
  if (choices && choices.includes(null)) {
    nullable = true;
    choices = choices.filter((value) => value !== null);
  }
  const type = types.length === 1 ? types[0] : null;
  let kind = "json";
  if (choices && choices.length) kind = "select";
  else if (type === "boolean") kind = "checkbox";
  else if (type === "number" || type === "integer") kind = "number";
  else if (type === "string") kind = "text";
  return { kind, nullable, choices, type, schema: s, hasDefault: "default" in s, default: s.default };
}

const FORMAT_EXAMPLES = {
  uuid: "e.g. 0b0e6c8e-4a4f-4c4b-9c1e-5d2f8a3b7c11",
  "date-time": "e.g. 2024-05-01T12:00:00Z",
  date: "e.g. 2024-05-01",
};

function typeHint(spec) {
  const s = spec.schema;
  const parts = [];
  if (spec.kind === "select") parts.push(`one of ${spec.choices.map((c) => JSON.stringify(c)).join(", ")}`);
  else if (spec.type === "string") parts.push(s.format ? `string (${s.format})` : "string");
  else if (spec.type === "array") parts.push("list, as JSON");
  else if (spec.type === "object") parts.push("map, as JSON");
  else if (spec.type) parts.push(spec.type);
  else parts.push(Array.isArray(s.type) ? `${s.type.join(" | ")}, as JSON` : "any JSON value");
  if (s["x-max-bytes"] !== undefined) parts.push(`at most ${s["x-max-bytes"]} bytes`);
  if (s.maxItems !== undefined) parts.push(`at most ${s.maxItems} items`);
  if (s.maxProperties !== undefined) parts.push(`at most ${s.maxProperties} keys`);
  if (Array.isArray(s.required) && s.required.length) parts.push(`keys ${s.required.join(", ")} required`);
  if (s.propertyNames && Array.isArray(s.propertyNames.enum)) parts.push(`keys from ${s.propertyNames.enum.join(", ")}`);
  if (spec.nullable) parts.push("may be null");
  if (spec.hasDefault) parts.push(`default ${JSON.stringify(spec.default)}`);
  return parts.join(" · ");
}

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

function inputFor(spec, id) {
  if (spec.kind === "select") {
    const select = element("select", { id });
    spec.choices.forEach((choice, index) => select.append(element("option", { value: String(index),
      text: typeof choice === "string" ? choice : JSON.stringify(choice) })));
    return select;
  }
  if (spec.kind === "checkbox") return element("input", { id, type: "checkbox" });
  if (spec.kind === "number") return element("input", { id, type: "number", step: "any" });
  if (spec.kind === "text") {
    return element("input", { id, type: "text", spellcheck: false,
                              placeholder: FORMAT_EXAMPLES[spec.schema.format] ?? "" });
  }
  return element("textarea", { id, rows: 2, spellcheck: false, placeholder: "JSON" });
}

function setValue(input, spec, value) {
  if (spec.kind === "select") {
    const index = spec.choices.findIndex((choice) => choice === value);
    if (index >= 0) input.value = String(index);
  } else if (spec.kind === "checkbox") input.checked = Boolean(value);
  else if (spec.kind === "number" || spec.kind === "text") input.value = value === undefined ? "" : String(value);
  else input.value = value === undefined ? "" : JSON.stringify(value);
}

/** One argument's row: its input, an optional "null" box, and a read() of its value. */
function field(name, schema, required) {
  const spec = argSpec(schema);
  const id = `arg-${name}`;
  const input = inputFor(spec, id);
  input.dataset.arg = name;
  const label = element("label", { class: "arg-name", htmlFor: id, text: name });
  if (required) label.append(element("span", { class: "required", title: "required", text: " *" }));
  const controls = element("div", { class: "arg-input" }, input);
  let nullBox = null;
  if (spec.nullable) {
    nullBox = element("input", { type: "checkbox", "data-null": name });
    controls.append(element("label", { class: "null-toggle" }, nullBox, " null"));
    input.addEventListener("input", () => { nullBox.checked = false; });
  }
  if (spec.hasDefault && spec.default === null && nullBox) nullBox.checked = true;
  else if (spec.hasDefault) setValue(input, spec, spec.default);
  else if (nullBox && !required) nullBox.checked = true;
  const row = element("div", { class: "field", "data-field": name, "data-kind": spec.kind }, label, controls,
                      element("div", { class: "arg-type", text: typeHint(spec) }));

  function read() {
    if (nullBox && nullBox.checked) return { value: null };
    if (spec.kind === "select") return { value: spec.choices[Number(input.value)] };
    if (spec.kind === "checkbox") return { value: input.checked };
    if (spec.kind === "text") return { value: input.value };
    const raw = input.value.trim();
    if (raw === "") return { omit: true };  // the gateway says what is missing
    if (spec.kind === "number") {
      const number = Number(raw);
      return Number.isFinite(number) ? { value: number } : { error: `${name}: not a number` };
    }
    try {
      return { value: JSON.parse(raw) };
    } catch (error) {
      return { error: `${name}: not valid JSON (${error.message})` };
    }
  }
  return { name, spec, row, input, read };
}

/** Rows for every property of an args schema; `{}` or a schema without properties: none. */
export function buildFields(argsSchema) {
  const properties = (argsSchema && argsSchema.properties) || {};
  const required = new Set((argsSchema && argsSchema.required) || []);
  return Object.entries(properties).map(([name, schema]) => field(name, schema, required.has(name)));
}

/** The args object the fields hold, and the problems that keep it from being sent. */
export function readArgs(fields) {
  const args = {};
  const errors = [];
  for (const f of fields) {
    const got = f.read();
    if (got.error) errors.push(got.error);
    else if (!got.omit) args[f.name] = got.value;
  }
  return { args, errors };
}

// ------------------------------------------------------------------ page state

const page = {
  client: null,
  wsPath: "/ws",
  catalogue: new Map(),   // "service.request_type" -> entries, one per version
  selected: null,         // the key of the function shown
  entry: null,            // its chosen version's entry
  fields: [],
  run: 0,                 // the call the outcome panel shows
  current: null,          // {requestId, stream?, cancelled}
  rawArgs: null,          // a textarea when the catalogue has no args_schema (an older gateway)
  wasReconnecting: false, // the socket dropped: list the functions again once it is back
};

// ------------------------------------------------------------------ frames log

function clock() {
  const now = new Date();
  return now.toTimeString().slice(0, 8) + "." + String(now.getMilliseconds()).padStart(3, "0");
}

function logFrame(frame, direction) {
  const list = $("frames");
  const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const classes = [direction];
  if (direction === "in" && !frame.success) classes.push("error");
  if (direction === "in" && isRelayFrame(frame)) classes.push("relay");
  const text = JSON.stringify(frame);
  // a long frame (a catalogue, a big result) folds: its beginning shows, a click opens it
  const body = text.length <= LONG_FRAME ? element("pre", { text })
    : element("details", {}, element("summary", { text: `${text.slice(0, LONG_FRAME)}… (${text.length} characters)` }),
      element("pre", { text }));
  list.append(element("li", { class: classes.join(" "), "data-request-id": String(frame.request_id) },
    element("span", { class: "time", text: clock() }),
    element("span", { class: "dir", text: direction === "out" ? ">" : "<" }), body));
  while (list.childElementCount > MAX_FRAMES) list.firstElementChild.remove();
  if (stick) list.scrollTop = list.scrollHeight;
  watchFrame(frame, direction);
}

// ------------------------------------------------------------------ signing in

function tokenClaims(token) {  // best effort, for the label only: the gateway decides who we are
  try {
    if (token.startsWith(".")) return null;  // a compressed payload
    const part = token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part + "===".slice((part.length + 3) % 4)), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims.sub === "string" ? claims : null;
  } catch {
    return null;
  }
}

function showState(state, text) {
  const label = $("state");
  label.dataset.state = state;
  label.textContent = text;
}

function notice(text) {
  const box = $("notice");
  box.hidden = !text;
  box.textContent = text || "";
}

function onState(state) {
  if (state === "open") {
    const claims = tokenClaims($("token").value.trim());
    const who = claims ? `${claims.sub}${claims.roles && claims.roles.length ? ` (${claims.roles.join(", ")})` : ""}` : "";
    showState("open", who ? `signed in as ${who}` : "connected");
    if (page.wasReconnecting) loadFunctions();
    page.wasReconnecting = false;
  } else if (state === "reconnecting") {
    page.wasReconnecting = true;
    showState("reconnecting", "connection lost; reconnecting…");
  } else if (state === "connecting") showState("connecting", "connecting…");
  else if (state === "closed") showState("signed-out", "signed out");
  setConnected(state === "open");
}

function setConnected(connected) {
  $("disconnect").disabled = !page.client;
  $("refresh").disabled = !connected;
  for (const button of document.querySelectorAll("[data-relay]")) button.disabled = !connected;
  const inGroup = connected && page.client && page.client.groups.size > 0;
  $("relay-text").disabled = !inGroup;
  $("relay-send-button").disabled = !inGroup;
}

async function signIn(event) {
  if (event) event.preventDefault();
  signOut();
  notice("");
  const token = $("token").value.trim();
  const client = page.client = new GenApiClient(page.wsPath, {
    token, encoding: $("encoding").value, onFrame: logFrame, onState,
  });
  client.onRelay(showRelayMessage);
  try {
    await client.connect();
  } catch (error) {
    if (page.client === client) {
      showState("error", error.message);
      page.client = null;
      setConnected(false);
    }
    return;
  }
  await loadFunctions();
}

function signOut() {
  const client = page.client;
  page.client = null;
  if (client) client.close();
  page.catalogue = new Map();
  renderFunctionList();
  showState("signed-out", "signed out");
  setConnected(false);
}

// ------------------------------------------------------------------ the function list

async function loadFunctions() {
  const client = page.client;
  if (!client) return;
  let listing;
  try {
    listing = await client.functions();
  } catch (error) {
    if (error instanceof GenApiError && error.error === "Authentication required") {
      notice("The gateway did not accept this token (Authentication required). Mint one with `genapi token USER` "
             + "using the gateway's GENAPI_SECRET_KEY.");
    } else notice(`Could not list the functions: ${error.message}`);
    return;
  }
  if (client !== page.client) return;
  const catalogue = new Map();
  for (const entry of listing) {
    const key = `${entry.service}.${entry.request_type}`;
    if (!catalogue.has(key)) catalogue.set(key, []);
    catalogue.get(key).push(entry);
  }
  page.catalogue = catalogue;
  renderFunctionList();
  if (page.selected && catalogue.has(page.selected)) selectFunction(page.selected, page.entry && page.entry.version);
}

function renderFunctionList() {
  const list = $("functions");
  const filter = $("filter").value.trim().toLowerCase();
  list.replaceChildren();
  for (const [key, entries] of page.catalogue) {
    if (filter && !key.toLowerCase().includes(filter)) continue;
    const latest = entries.find((e) => e.latest) || entries[entries.length - 1];
    const available = entries.some((e) => e.available !== false);
    const item = element("li", {
      "data-function": key, "aria-selected": String(key === page.selected),
      class: available ? "" : "unavailable", title: available ? key : `${key}: no live worker serves it`,
    },
    element("span", { class: "fn-name" }, element("span", { class: "service-name", text: `${latest.service}.` }),
      latest.request_type),
    element("span", { class: "badge", text: latest.response_type }));
    item.addEventListener("click", () => selectFunction(key));
    list.append(item);
  }
  $("functions-empty").hidden = page.catalogue.size > 0;
  $("functions-empty").textContent = page.client ? "No functions you may call are registered." :
    "Sign in to see the functions you may call.";
  if (!page.catalogue.size) clearFunction();
}

function clearFunction() {
  page.selected = null;
  page.entry = null;
  $("fn-title").textContent = "Pick a function";
  $("fn-meta").textContent = "";
  $("fn-description").textContent = "";
  $("call-form").hidden = true;
}

// ------------------------------------------------------------------ the form

function selectFunction(key, version = null) {
  const entries = page.catalogue.get(key);
  if (!entries) return;
  const entry = entries.find((e) => e.version === version) || entries.find((e) => e.latest) || entries[entries.length - 1];
  page.selected = key;
  page.entry = entry;
  for (const item of $("functions").children) item.setAttribute("aria-selected", String(item.dataset.function === key));

  $("fn-title").textContent = key;
  const meta = [entry.response_type, `timeout ${entry.timeout === "infinity" ? "none" : `${entry.timeout} ms`}`];
  if (entry.version) meta.push(`version ${entry.version}${entry.latest ? " (latest)" : ""}`);
  if (entry.available === false) meta.push("no live worker serves it now");
  $("fn-meta").textContent = meta.join(" · ");
  $("fn-description").textContent = entry.description || "";

  const versions = $("version");
  versions.replaceChildren(...entries.map((e) => element("option", {
    value: e.version ?? "", text: `${e.version ?? "(none)"}${e.latest ? " (latest)" : ""}`, selected: e === entry })));
  $("version-row").hidden = entries.length < 2;

  const container = $("fields");
  container.replaceChildren();
  page.rawArgs = null;
  if (entry.args_schema === undefined) {  // a gateway without JSON Schemas in its catalogue
    page.fields = [];
    page.rawArgs = element("textarea", { id: "raw-args", rows: 4, spellcheck: false, value: "{}" });
    container.append(element("div", { class: "field", "data-field": "(args)", "data-kind": "json" },
      element("label", { class: "arg-name", htmlFor: "raw-args", text: "args" }), page.rawArgs,
      element("div", { class: "arg-type", text: "the arguments, as a JSON object" })));
  } else {
    page.fields = buildFields(entry.args_schema);
    if (page.fields.length) container.append(...page.fields.map((f) => f.row));
    else container.append(element("p", { class: "no-args", text: "This function takes no arguments." }));
  }
  $("call-form").hidden = false;
  updatePreview();
}

function collectArgs() {
  if (page.rawArgs) {
    try {
      const args = JSON.parse(page.rawArgs.value || "{}");
      return { args, errors: [] };
    } catch (error) {
      return { args: {}, errors: [`args: not valid JSON (${error.message})`] };
    }
  }
  return readArgs(page.fields);
}

function updatePreview() {
  const { args, errors } = collectArgs();
  $("args-preview").textContent = errors.length ? errors.join("\n") : JSON.stringify(args, null, 2);
}

// ------------------------------------------------------------------ calling

function outcome(status, line) {
  const box = $("outcome");
  box.hidden = false;
  box.dataset.status = status;
  $("status-line").textContent = line;
}

function resetOutcome() {
  outcome("running", "calling…");
  $("error-line").hidden = true;
  $("result").hidden = true;
  $("result").textContent = "";
  $("chunks").hidden = true;
  $("chunks").replaceChildren();
}

function showError(error, line = "error") {
  outcome("error", line);
  const frame = error instanceof GenApiError ? error.frame : null;
  $("error").textContent = frame ? frame.error : error.message;
  const badge = $("can-retry");
  badge.textContent = frame ? `can_retry: ${frame.can_retry}` : "not sent";
  badge.dataset.canRetry = frame ? String(Boolean(frame.can_retry)) : "";
  $("error-line").hidden = false;
}

function watchFrame(frame, direction) {  // the ack, and error frames of a "none" call
  const current = page.current;
  if (direction !== "in" || !current || frame.request_id !== current.requestId || current.run !== page.run) return;
  if (current.kind === "async" && frame.success && frame.async && !frame.has_more) {
    outcome("acknowledged", "acknowledged; waiting for the result…");
  }
  if (current.kind === "none" && !frame.success) showError(new GenApiError(frame));
}

async function submitCall(event) {
  event.preventDefault();
  const client = page.client;
  const entry = page.entry;
  if (!client || !entry) return;
  const { args, errors } = collectArgs();
  const run = ++page.run;
  resetOutcome();
  if (errors.length) {
    showError(new Error(errors.join("; ")), "not sent");
    return;
  }
  const options = { version: entry.latest ? null : entry.version };
  const current = page.current = { run, kind: entry.response_type, cancelled: false, requestId: null };
  if (entry.response_type === "stream") return runStream(client, entry, args, options, current);
  if (entry.response_type === "none") {
    current.requestId = client.notify(entry.service, entry.request_type, args, options);
    outcome("ok", "sent: a response_type \"none\" function answers nothing when it succeeds");
    return;
  }
  const promise = client.call(entry.service, entry.request_type, args, options);
  current.requestId = promise.requestId;
  $("cancel").disabled = entry.response_type !== "async";
  outcome("running", `waiting for ${entry.request_type}…`);
  try {
    const result = await promise;
    if (run !== page.run) return;
    outcome("ok", "result");
    $("result").textContent = JSON.stringify(result, null, 2);
    $("result").hidden = false;
  } catch (error) {
    if (run === page.run) showError(error);
  } finally {
    if (run === page.run) $("cancel").disabled = true;
  }
}

async function runStream(client, entry, args, options, current) {
  const stream = client.stream(entry.service, entry.request_type, args, options);
  current.requestId = stream.requestId;
  current.stream = stream;
  $("cancel").disabled = false;
  $("chunks").hidden = false;
  outcome("streaming", "stream started");
  let count = 0;
  try {
    for await (const chunk of stream) {
      if (current.run !== page.run) continue;
      count += 1;
      $("chunks").append(element("li", { text: JSON.stringify(chunk) }));
      outcome("streaming", `streaming: ${count} chunk${count === 1 ? "" : "s"} so far`);
    }
    if (current.run !== page.run) return;
    if (current.cancelled) outcome("cancelled", `cancelled after ${count} chunk${count === 1 ? "" : "s"}`);
    else outcome("ok", `stream ended after ${count} chunk${count === 1 ? "" : "s"}`);
  } catch (error) {
    if (current.run === page.run) showError(error, `error after ${count} chunk${count === 1 ? "" : "s"}`);
  } finally {
    if (current.run === page.run) $("cancel").disabled = true;
  }
}

async function cancelCall() {
  const current = page.current;
  if (!current || !page.client) return;
  current.cancelled = true;
  $("cancel").disabled = true;
  if (current.stream) await current.stream.cancel();
  else page.client.cancel(current.requestId).catch(() => {});  // the call itself ends with "Request cancelled"
}

// ------------------------------------------------------------------ relay

function relayNote(text, error = false) {
  const status = $("relay-status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

function showRelayMessage(message) {
  const list = $("relay-messages");
  const text = typeof message.message === "string" ? message.message : JSON.stringify(message.message);
  list.append(element("li", { "data-from": String(message.from_user_id), "data-group": message.group_id },
    element("span", { class: "group", text: `[${message.group_id}]` }),
    element("span", { class: "from", text: `${message.from_user_id ?? "(worker)"}:` }),
    element("span", { class: "text", text })));
  list.scrollTop = list.scrollHeight;
}

async function relayAction(requestType) {
  const client = page.client;
  if (!client) return;
  const groupId = $("group-id").value.trim();
  const args = { group_id: groupId };
  if (requestType === "create_group") args.group_type = $("group-type").value;
  try {
    const result = await client.relay(requestType, args);
    if (requestType === "group_info") {
      const members = Object.entries(result.members || {}).map(([user, m]) =>
        `${user} (${m.status}, ${m.roles.join("/")}${m.connected ? "" : ", offline"})`);
      relayNote(`${groupId} (${result.group_type}): ${members.join(", ") || "no members"}`);
    } else {
      relayNote(`${requestType}: ${result.status}`);
      $("relay-messages").append(element("li", { class: "info", text: `${requestType} ${groupId}: ${result.status}` }));
    }
  } catch (error) {
    relayNote(`${requestType}: ${error.message}`, true);
  }
  setConnected(client.state === "open");
}

async function relaySend(event) {
  event.preventDefault();
  const client = page.client;
  const input = $("relay-text");
  if (!client || !input.value) return;
  try {
    await client.relay("send", { group_id: $("group-id").value.trim(), message: input.value });
    input.value = "";
  } catch (error) {
    relayNote(`send: ${error.message}`, true);
  }
}

// ------------------------------------------------------------------ start

async function start() {
  $("signin").addEventListener("submit", signIn);
  $("disconnect").addEventListener("click", signOut);
  $("refresh").addEventListener("click", loadFunctions);
  $("filter").addEventListener("input", renderFunctionList);
  $("version").addEventListener("change", (event) => selectFunction(page.selected, event.target.value));
  $("call-form").addEventListener("submit", submitCall);
  $("call-form").addEventListener("input", updatePreview);
  $("call-form").addEventListener("change", updatePreview);
  $("cancel").addEventListener("click", cancelCall);
  $("clear-frames").addEventListener("click", () => $("frames").replaceChildren());
  for (const button of document.querySelectorAll("[data-relay]")) {
    button.addEventListener("click", () => relayAction(button.dataset.relay));
  }
  $("relay-send").addEventListener("submit", relaySend);

  // #token=...&encoding=msgpack signs in at once; the fragment never reaches the server
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  let config = {};
  try {
    config = await (await fetch("/try/config", { cache: "no-store" })).json();
  } catch { /* an older gateway: sign in by hand */ }
  page.wsPath = config.ws_path || "/ws";
  if (fragment.get("encoding")) $("encoding").value = fragment.get("encoding");
  $("token").value = fragment.get("token") || config.token || "";
  document.body.dataset.ready = "true";
  if ($("token").value) await signIn();
}

start();
