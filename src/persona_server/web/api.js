// Talking to the server: the API key and the browser's user id (both in localStorage), JSON requests, and the
// streamed chat completion (server-sent events read with fetch, so AbortController can stop them).

const KEY_ITEM = "persona-server.api-key";
const USER_ITEM = "persona-server.user";

export class ApiError extends Error {
  constructor(status, message, { code = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

export function setApiKey(key) {
  localStorage.setItem(KEY_ITEM, key);
}

function newUserId() {
  // getRandomValues, not randomUUID: the page may be opened over plain http from a LAN address (no secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "browser-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The id this browser sends as `user`, made once and kept, so personas with memory know it again. */
export function userId() {
  let id = localStorage.getItem(USER_ITEM);
  if (!id) {
    id = newUserId();
    localStorage.setItem(USER_ITEM, id);
  }
  return id;
}

export function renewUserId() {
  const id = newUserId();
  localStorage.setItem(USER_ITEM, id);
  return id;
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const key = apiKey();
  if (key) out.Authorization = "Bearer " + key;
  return out;
}

async function failure(response) {
  let message = response.statusText || "request failed";
  let code = null;
  try {
    const body = await response.json();
    const error = body && body.error;
    if (error && typeof error === "object") {
      message = String(error.message || message);
      code = error.code || null;
    } else if (typeof error === "string") {
      message = error;
    }
  } catch {
    // not JSON: keep the status text
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(response.status, message, { code, retryAfter: Number.isFinite(retry) ? retry : null });
}

// Relative URLs: the page works where it is served, under a proxy's path prefix too.
export async function getJSON(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/**
 * POST a streamed chat completion; `onDelta({content, solver})` for each piece of text, resolves with the
 * final chunk's `{solver, sources, finishReason}`. An error event in the stream rejects with an ApiError.
 */
export async function streamChat(body, { signal, onDelta }) {
  const response = await fetch("v1/chat/completions", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const result = { solver: null, sources: [], finishReason: null };
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (!line.startsWith("data:")) continue; // blank separators and ": ping" comments
      const data = line.slice(5).trim();
      if (data === "[DONE]") return result;
      const event = JSON.parse(data);
      if (event.error) {
        throw new ApiError(502, String(event.error.message || "the answer failed"), { code: event.error.code });
      }
      if (event.solver !== undefined) result.solver = event.solver;
      if (Array.isArray(event.sources)) result.sources = event.sources;
      const choice = event.choices && event.choices[0];
      if (!choice) continue;
      if (choice.finish_reason) result.finishReason = choice.finish_reason;
      const content = choice.delta && choice.delta.content;
      if (content) onDelta({ content, solver: result.solver });
    }
  }
  return result;
}
