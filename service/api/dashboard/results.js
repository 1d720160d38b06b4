// A result line shown readably: extract spans highlighted in their text, label chips, the summary.

import { h } from "./dom.js";

/** The task result in a line's ChatCompletion content, or null when it is not JSON. */
export function resultOf(line) {
  const content = line.response?.body?.choices?.[0]?.message?.content;
  if (typeof content !== "string") return { content: null, parsed: null };
  try {
    return { content, parsed: JSON.parse(content) };
  } catch {
    return { content, parsed: null };
  }
}

/** UTF-16 index of each offset, for offsets counted in code points or UTF-8 bytes. */
function indexer(text, unit) {
  if (unit === "utf16") return (offset) => offset;
  const starts = [];
  let utf8 = 0;
  for (let index = 0; index < text.length;) {
    const point = text.codePointAt(index);
    starts.push([unit === "utf8" ? utf8 : starts.length, index]);
    utf8 += point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
    index += point > 0xffff ? 2 : 1;
  }
  const end = unit === "utf8" ? utf8 : starts.length;
  const table = new Map(starts);
  table.set(end, text.length);
  return (offset) => table.get(offset);
}

/** The text cut into plain and entity pieces; overlapping spans keep the first one. */
export function highlighted(text, entities, unit = "codepoint") {
  const at = indexer(text, unit);
  const spans = entities
    .map((entity) => ({ entity, start: at(entity.start), end: at(entity.end) }))
    .filter((span) => span.start !== undefined && span.end !== undefined && span.end > span.start)
    .sort((a, b) => a.start - b.start || b.end - a.end);
  const pieces = [];
  let cursor = 0;
  for (const span of spans) {
    if (span.start < cursor) continue;
    if (span.start > cursor) pieces.push(text.slice(cursor, span.start));
    pieces.push(
      h(
        "mark",
        {
          class: `entity ${typeClass(span.entity.type)}`,
          title: `${span.entity.type} (${span.entity.alignment})`,
        },
        text.slice(span.start, span.end),
        h("span", { class: "entity-type" }, span.entity.type),
      ),
    );
    cursor = span.end;
  }
  pieces.push(text.slice(cursor));
  return pieces;
}

const PALETTE = 6;
function typeClass(type) {
  let hash = 0;
  for (const char of type) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `hue-${hash % PALETTE}`;
}

function extractView(result, input) {
  const entities = result.entities;
  const body = input?.body;
  const text = typeof body?.text === "string" ? body.text : null;
  return h(
    "div",
    { class: "result extract" },
    text !== null
      ? h("p", { class: "highlighted" }, highlighted(text, entities, body.offset_unit))
      : null,
    h(
      "div",
      { class: "chips" },
      entities.length
        ? entities.map((entity) =>
            h(
              "span",
              { class: `chip ${typeClass(entity.type)}` },
              h("b", {}, entity.type),
              " ",
              entity.text,
              h("small", {}, ` ${entity.start}–${entity.end}`),
            ),
          )
        : h("span", { class: "muted" }, "no entities found"),
    ),
    result.ungrounded
      ? h("p", { class: "muted" }, `${result.ungrounded} mention(s) not found in the text`)
      : null,
  );
}

function classifyView(result) {
  return h(
    "div",
    { class: "result classify chips" },
    result.labels.map((label) =>
      h(
        "span",
        { class: `chip label ${label.match ? "yes" : "no"}` },
        label.match ? "✓ " : "✗ ",
        label.name,
      ),
    ),
  );
}

/** The readable view of one output line; `input` is its input line when the page has it. */
export function resultView(line, input) {
  if (line.error) {
    return h(
      "div",
      { class: "result failed" },
      h("code", {}, line.error.code),
      " ",
      line.error.message,
    );
  }
  if (line.response && line.response.status_code !== 200) {
    const message = line.response.body?.error?.message ?? JSON.stringify(line.response.body);
    return h("div", { class: "result failed" }, `HTTP ${line.response.status_code}: `, message);
  }
  const { content, parsed } = resultOf(line);
  if (parsed && Array.isArray(parsed.entities)) return extractView(parsed, input);
  if (parsed && Array.isArray(parsed.labels)) return classifyView(parsed);
  if (parsed && typeof parsed.summary === "string") {
    return h("blockquote", { class: "result summary" }, parsed.summary);
  }
  if (content !== null) return h("p", { class: "result text" }, content);
  return h("pre", { class: "result raw" }, JSON.stringify(line.response?.body, null, 2));
}
