// Small DOM helpers: elements are built with text nodes only, so API data is never parsed as HTML.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

export function time(seconds) {
  if (!seconds) return "—";
  const date = new Date(seconds * 1000);
  const sameYear = date.getFullYear() === new Date().getFullYear();
  const day = date.toLocaleDateString(undefined, {
    month: "short",
    day: "numeric",
    year: sameYear ? undefined : "numeric",
  });
  return `${day}, ${date.toLocaleTimeString(undefined, { hour12: false })}`;
}

export function ago(seconds) {
  if (!seconds) return "—";
  const delta = Math.round(Date.now() / 1000 - seconds);
  if (delta < 60) return `${Math.max(delta, 0)} s ago`;
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return time(seconds);
}

export function bytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export function money(value) {
  if (value === null || value === undefined) return "—";
  return `$${value.toFixed(value < 0.01 && value > 0 ? 6 : 4)}`;
}

export function number(value) {
  return value === null || value === undefined ? "—" : value.toLocaleString();
}

/** The API's error as it gave it: message, code, param and line, and each faulty line. */
export function errorBox(error) {
  const detail = error.error ?? { message: String(error.message ?? error) };
  const facts = [
    detail.code && h("code", {}, detail.code),
    detail.param && h("span", {}, "param ", h("code", {}, detail.param)),
    detail.line && h("span", {}, `line ${detail.line}`),
  ].filter(Boolean);
  return h(
    "div",
    { class: "alert error", role: "alert" },
    h("strong", {}, detail.message),
    facts.length ? h("div", { class: "facts" }, facts) : null,
    detail.lines?.length ? faultTable(detail.lines, detail.more_lines) : null,
  );
}

export function faultTable(lines, more = 0) {
  return h(
    "div",
    {},
    h(
      "table",
      { class: "table compact faults" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Line"),
          h("th", {}, "custom_id"),
          h("th", {}, "Field"),
          h("th", {}, "Code"),
          h("th", {}, "Message"),
        ),
      ),
      h(
        "tbody",
        {},
        lines.map((fault) =>
          h(
            "tr",
            {},
            h("td", { class: "num" }, fault.line ?? "—"),
            h("td", {}, fault.custom_id ?? "—"),
            h("td", {}, fault.param ? h("code", {}, fault.param) : "—"),
            h("td", {}, h("code", {}, fault.code)),
            h("td", {}, fault.message),
          ),
        ),
      ),
    ),
    more ? h("p", { class: "muted" }, `and ${more} more`) : null,
  );
}

export const FINAL = new Set(["completed", "failed", "expired", "cancelled"]);

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status.replace("_", " "));
}
