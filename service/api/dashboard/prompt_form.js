// New batch → From prompt: one line per variable set, each line and its faults shown first.

import { api } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import { checkVariableSet, generatedLine, readVariableSets } from "./variables.js";

const MODELS = ["summarize", "extract", "classify"];
const SIMPLE_TEMPLATE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** A message as it will read, when its template only fills placeholders; else null. */
function rendered(content, set) {
  if (/\{%|\{#/.test(content) || /\{\{(?![\s]*[A-Za-z_][A-Za-z0-9_]*\s*\}\})/.test(content))
    return null;
  return content.replace(SIMPLE_TEMPLATE, (_, name) =>
    name in set ? String(set[name]) : `{{ ${name} }}`,
  );
}

export function promptForm(status) {
  const promptSelect = h(
    "select",
    { id: "prompt-slug" },
    h("option", { value: "" }, "Loading prompts…"),
  );
  const versionSelect = h("select", { id: "prompt-version", disabled: true });
  const model = h("input", {
    id: "model",
    list: "model-names",
    placeholder: "summarize, or an upstream model",
    value: "",
  });
  const modelNames = h(
    "datalist",
    { id: "model-names" },
    MODELS.map((name) => h("option", { value: name })),
  );
  const variables = h("textarea", {
    id: "variables",
    rows: 8,
    spellcheck: "false",
    placeholder:
      '[{"name": "Ada", "text": "…"}, {"name": "Bo", "text": "…"}]\n\nor CSV with a header row:\nname,text\nAda,…',
  });
  const placeholders = h("div", { class: "chips" });
  const previewArea = h("div", { class: "preview" });
  const submit = h(
    "button",
    { class: "button primary", type: "submit", disabled: true },
    "Submit batch",
  );
  let prompt = null;
  let apiFaults = new Map();

  const version = () => {
    if (!prompt) return null;
    const number = Number(versionSelect.value) || prompt.published_version || prompt.latest_version;
    return prompt.versions.find((item) => item.version === number) ?? null;
  };

  const refresh = () => {
    const chosen = version();
    replace(
      placeholders,
      chosen
        ? chosen.placeholders.length
          ? chosen.placeholders.map((name) => h("span", { class: "chip" }, `{{ ${name} }}`))
          : h("span", { class: "muted" }, "no placeholders")
        : null,
    );
    const read = readVariableSets(variables.value);
    if (read.error) {
      replace(previewArea, h("div", { class: "alert error" }, read.error));
      submit.disabled = true;
      return;
    }
    const modelName = model.value.trim();
    const checked = read.sets.map((set, index) => ({
      set,
      index,
      ...checkVariableSet(set, chosen?.placeholders ?? [], modelName),
    }));
    const faulty = checked.filter(
      (item) => item.faults.length || apiFaults.has(item.index + 1),
    ).length;
    const pinned = versionSelect.value ? Number(versionSelect.value) : null;
    replace(
      previewArea,
      read.sets.length
        ? h(
            "p",
            { class: faulty ? "bad" : "muted", id: "preview-summary" },
            `${read.sets.length} line(s) from ${read.format.toUpperCase()}`,
            faulty ? ` · ${faulty} with faults` : " · ready",
          )
        : null,
      checked.length
        ? h(
            "ol",
            { class: "lines" },
            checked.map((item) => {
              const line = generatedLine(
                item.index,
                prompt?.slug ?? "",
                pinned,
                modelName,
                item.set,
              );
              const faults = [...item.faults, ...(apiFaults.get(item.index + 1) ?? [])];
              const messages =
                chosen && faults.length === 0 && typeof item.set === "object"
                  ? chosen.messages
                      .map((message) => [message.role, rendered(message.content, item.set)])
                      .filter(([, text]) => text !== null)
                  : [];
              return h(
                "li",
                {
                  class: `line ${faults.length ? "has-fault" : ""}`,
                  dataset: { row: item.index + 1 },
                },
                h("code", { class: "jsonl" }, JSON.stringify(line)),
                messages.map(([role, text]) =>
                  h("div", { class: "rendered" }, h("span", { class: "role" }, role), text),
                ),
                faults.map((fault) =>
                  h("div", { class: "fault" }, `Row ${item.index + 1}: ${fault}`),
                ),
                item.notes.map((note) => h("div", { class: "note" }, note)),
              );
            }),
          )
        : null,
    );
    submit.disabled = !prompt || !modelName || !read.sets.length || faulty > 0;
  };

  const loadPrompt = async () => {
    apiFaults = new Map();
    prompt = promptSelect.value ? await api.getPrompt(promptSelect.value) : null;
    replace(
      versionSelect,
      prompt
        ? [
            h("option", { value: "" }, `published (v${prompt.published_version ?? "—"})`),
            ...prompt.versions
              .slice()
              .reverse()
              .map((item) => h("option", { value: item.version }, `v${item.version}`)),
          ]
        : [],
    );
    versionSelect.disabled = !prompt;
    refresh();
  };

  promptSelect.addEventListener("change", () =>
    loadPrompt().catch((error) => replace(status, errorBox(error))),
  );
  for (const field of [variables, model])
    field.addEventListener("input", () => {
      apiFaults = new Map();
      refresh();
    });
  versionSelect.addEventListener("change", refresh);

  api
    .listPrompts()
    .then((page) => {
      replace(
        promptSelect,
        page.data.length
          ? [
              h("option", { value: "" }, "Choose a prompt"),
              ...page.data.map((item) => h("option", { value: item.slug }, item.slug)),
            ]
          : h("option", { value: "" }, "No prompts yet: add one under Prompts"),
      );
      const wanted = new URLSearchParams(location.hash.split("?")[1] ?? "").get("prompt");
      if (wanted && page.data.some((item) => item.slug === wanted)) {
        promptSelect.value = wanted;
        loadPrompt();
      }
    })
    .catch((error) => replace(status, errorBox(error)));

  const form = h(
    "form",
    { class: "card form", id: "prompt-form" },
    h(
      "div",
      { class: "row" },
      h("label", {}, "Prompt", promptSelect),
      h("label", {}, "Version", versionSelect),
      h("label", {}, "Model", model, modelNames),
    ),
    h("div", { class: "field" }, h("span", { class: "label" }, "Placeholders"), placeholders),
    h(
      "label",
      { class: "field" },
      "Variable sets (a JSON array of objects, or CSV with a header row)",
      variables,
    ),
    previewArea,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const read = readVariableSets(variables.value);
    submit.disabled = true;
    replace(status);
    try {
      const payload = { prompt_slug: prompt.slug, model: model.value.trim(), variables: read.sets };
      if (versionSelect.value) payload.prompt_version = Number(versionSelect.value);
      const batch = await api.createFromPrompt(payload);
      location.hash = `#/batches/${batch.id}`;
    } catch (error) {
      // Line faults name their row (line n is the n-th variable set): show them there too.
      for (const fault of error.error?.lines ?? []) {
        const list = apiFaults.get(fault.line) ?? [];
        list.push(`${fault.param ? `${fault.param}: ` : ""}${fault.message}`);
        apiFaults.set(fault.line, list);
      }
      replace(status, errorBox(error));
      refresh();
    }
  });
  return form;
}
