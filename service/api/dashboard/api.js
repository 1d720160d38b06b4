// The /v1 client: the key lives in sessionStorage and travels only in the x-api-key header.

const KEY_NAME = "textbatch.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function rememberKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

/** An error answer of the API, with its body's `error` object as the API gave it. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "object") return new ApiError(response.status, body.error);
  } catch {
    // Not JSON: a proxy or a crash answered; say what we know.
  }
  return new ApiError(response.status, {
    code: `http_${response.status}`,
    message: response.statusText,
  });
}

/** Sends one request with the stored key; resolves to the Response, rejects with ApiError. */
export async function call(method, path, { json, body, headers = {}, key, signal } = {}) {
  const sent = { "x-api-key": key ?? storedKey() ?? "", ...headers };
  if (json !== undefined) {
    sent["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers: sent, body, cache: "no-store", signal });
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function json(method, path, options) {
  return (await call(method, path, options)).json();
}

const query = (params) => {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
};

export const api = {
  checkKey: (key) => json("GET", "/v1/batches?limit=1", { key }),
  listBatches: (after, limit = 50) => json("GET", `/v1/batches${query({ limit, after })}`),
  getBatch: (id) => json("GET", `/v1/batches/${encodeURIComponent(id)}`),
  cancelBatch: (id) => json("POST", `/v1/batches/${encodeURIComponent(id)}/cancel`),
  createBatch: (payload) => json("POST", "/v1/batches", { json: payload }),
  createFromPrompt: (payload) => json("POST", "/v1/batches/from_prompt", { json: payload }),
  output: (id) => call("GET", `/v1/batches/${encodeURIComponent(id)}/output`),
  listFiles: () => json("GET", "/v1/files?limit=200"),
  fileContent: (id) => call("GET", `/v1/files/${encodeURIComponent(id)}/content`),
  uploadFile: (file, purpose = "batch") => {
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    return json("POST", "/v1/files", { body: form });
  },
  listPrompts: () => json("GET", "/v1/prompts?limit=1000"),
  getPrompt: (slug) => json("GET", `/v1/prompts/${encodeURIComponent(slug)}`),
  createPrompt: (payload) => json("POST", "/v1/prompts", { json: payload }),
  addVersion: (slug, payload) =>
    json("POST", `/v1/prompts/${encodeURIComponent(slug)}/versions`, { json: payload }),
  publish: (slug, version) =>
    json("POST", `/v1/prompts/${encodeURIComponent(slug)}/publish`, { json: { version } }),
};

/**
 * Follows a batch through its Server-Sent Events (fetch, not EventSource: the key goes in
 * a header, never in a URL), calling `onBatch` with each batch object. Resolves true once
 * the stream said `done`; false if it ended without that (the caller polls instead).
 */
export async function followBatch(id, onBatch, signal) {
  const response = await call("GET", `/v1/batches/${encodeURIComponent(id)}/events`, {
    headers: { accept: "text/event-stream" },
    signal,
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffered += decoder.decode(value, { stream: true }).replaceAll("\r\n", "\n");
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let event = "message";
      const data = [];
      for (const field of block.split("\n")) {
        if (field.startsWith("event:")) event = field.slice(6).trim();
        else if (field.startsWith("data:")) data.push(field.slice(5).trimStart());
      }
      if (event === "error") return false;
      if ((event === "batch" || event === "done") && data.length) {
        await onBatch(JSON.parse(data.join("\n")));
        if (event === "done") return true;
      }
    }
  }
}

/** Fetches with the key header and saves the body through a Blob URL: no key in any URL. */
export async function download(path, filename) {
  const blob = await (await call("GET", path)).blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The first `count` lines of a JSONL response, read without downloading the rest. */
export async function firstLines(response, count) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  const lines = [];
  while (lines.length < count) {
    const { value, done } = await reader.read();
    buffered += decoder.decode(value ?? new Uint8Array(), { stream: !done });
    const parts = buffered.split("\n");
    buffered = parts.pop();
    lines.push(...parts.filter((part) => part.trim()));
    if (done) {
      if (buffered.trim()) lines.push(buffered);
      break;
    }
  }
  reader.cancel().catch(() => {});
  return lines.slice(0, count);
}
