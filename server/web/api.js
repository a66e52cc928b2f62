// The HTTP API as both pages use it (docs/API.md): JSON in and out, every problem+json
// answer turned into an ApiProblem carrying its stable `code`, and conditional polling
// with ETags so a page left open costs the server a 304 while nothing changes.

export class ApiProblem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "internal_error";
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

// A token arrives in the address's fragment (`#token=...`, which is never sent to a
// server) or is pasted in; it is kept for this tab only and taken out of the address bar.
export function takeToken(scope) {
  const key = `slotrush.${scope}.token`;
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(key, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return {
    get: () => sessionStorage.getItem(key),
    set: (token) => sessionStorage.setItem(key, token.trim()),
    clear: () => sessionStorage.removeItem(key),
  };
}

// What a token says of its bearer (sub, role, hospital_id). Only for showing and choosing
// a hospital: the server checks the signature on every call.
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// One call. `body` is sent as JSON unless `contentType` says otherwise; `etag` makes it
// conditional: the answer is then {notModified: true} while the resource is unchanged.
export async function call(method, path, options = {}) {
  const { token, body, contentType, etag, idempotencyKey } = options;
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (etag) headers["If-None-Match"] = etag;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = contentType ? body : JSON.stringify(body);
  }
  // no-store: the page does its own revalidation (If-None-Match) and must see each 304.
  const answer = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  if (answer.status === 304) return { notModified: true, etag };
  if (answer.status === 204) return { body: null };
  const data = await parsed(answer);
  return { body: data, etag: answer.headers.get("ETag") };
}

// The JSON of an answer, or the ApiProblem it carries.
async function parsed(answer) {
  const type = answer.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await answer.json() : { detail: await answer.text() };
  if (!answer.ok) {
    const retryAfter = Number(answer.headers.get("Retry-After")) || undefined;
    throw new ApiProblem(answer.status, data, retryAfter);
  }
  return data;
}

// Every row of a paginated list (API.md: `limit`, `cursor`, `next_cursor`).
export async function everyRow(path, key, token) {
  const rows = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = `${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const { body } = await call("GET", page, { token });
    rows.push(...body[key]);
    cursor = body.next_cursor;
  } while (cursor);
  return rows;
}

// Calls `path` every `seconds` with the last ETag and hands each new body to `onChange`.
// It rests while the tab is hidden and waits out a Retry-After, so a thousand open pages
// during a rush cost the server conditional GETs, mostly answered 304.
export class Poller {
  constructor(path, token, seconds, onChange, onError) {
    Object.assign(this, { path, token, seconds, onChange, onError });
    this.etag = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.tick();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  async tick() {
    if (this.stopped) return;
    let wait = this.seconds;
    if (!document.hidden) {
      try {
        const answer = await call("GET", this.path, { token: this.token, etag: this.etag });
        // Stopped meanwhile (the page asks for something else now): a late answer to the
        // old question must not overwrite the new one's.
        if (this.stopped) return;
        if (!answer.notModified) {
          this.etag = answer.etag;
          this.onChange(answer.body);
        }
      } catch (error) {
        if (this.stopped) return;
        wait = Math.max(wait, error.retryAfter || wait * 2);
        if (this.onError) this.onError(error);
      }
    }
    if (!this.stopped) this.timer = setTimeout(() => this.tick(), wait * 1000);
  }
}

// A Server-Sent Events stream read with fetch (an EventSource cannot send the token in
// an Authorization header): each event's JSON goes to `onEvent(name, data)`. The server
// ends a stream now and then; it is opened again at once, and after a pause growing to
// half a minute while it keeps failing.
export class LiveStream {
  constructor(path, token, onEvent, onError) {
    Object.assign(this, { path, token, onEvent, onError });
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.aborter = new AbortController();
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    this.aborter.abort();
  }

  async run() {
    let pause = 0;
    while (!this.stopped) {
      if (pause) await new Promise((wake) => setTimeout(wake, pause * 1000));
      try {
        const answer = await fetch(this.path, {
          headers: { Accept: "text/event-stream", Authorization: `Bearer ${this.token}` },
          cache: "no-store", signal: this.aborter.signal,
        });
        if (!answer.ok) await parsed(answer);
        this.troubled = false;
        await this.read(answer.body);
        // A stream that ended on a problem (a store failing) is not opened again at once.
        pause = this.troubled ? Math.min(30, Math.max(1, pause * 2)) : 0;
      } catch (error) {
        if (this.stopped) return;
        pause = Math.min(30, Math.max(1, pause * 2, error.retryAfter || 0));
        if (this.onError) this.onError(error);
      }
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let name = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (name === "problem") this.troubled = true;
    if (data) this.onEvent(name, JSON.parse(data));
  }
}
