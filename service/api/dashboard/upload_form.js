// New batch → Upload JSONL: choose or drop a file; it is uploaded and a batch made from it.

import { api } from "./api.js";
import { errorBox, h, replace } from "./dom.js";

const ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

export function uploadForm(status) {
  const input = h("input", {
    type: "file",
    accept: ".jsonl,.ndjson,.json,application/jsonl",
    id: "jsonl-file",
  });
  const chosen = h("span", { class: "muted" }, "No file chosen");
  const endpoint = h(
    "select",
    { id: "upload-endpoint" },
    ENDPOINTS.map((url) => h("option", { value: url }, url)),
  );
  const windowField = h("input", { id: "upload-window", value: "24h", size: 6 });
  const submit = h(
    "button",
    { class: "button primary", type: "submit", disabled: true },
    "Upload and submit",
  );
  let file = null;
  const choose = (picked) => {
    file = picked;
    chosen.textContent = picked
      ? `${picked.name} (${picked.size.toLocaleString()} bytes)`
      : "No file chosen";
    submit.disabled = !picked;
  };
  input.addEventListener("change", () => choose(input.files[0] ?? null));
  const zone = h(
    "label",
    { class: "dropzone", for: "jsonl-file" },
    h("strong", {}, "Drop a JSONL file here"),
    h("span", { class: "muted" }, "or click to choose one"),
    chosen,
    input,
  );
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    choose(event.dataTransfer.files[0] ?? null);
  });
  const form = h(
    "form",
    { class: "card form", id: "upload-form" },
    h(
      "p",
      { class: "muted" },
      "One request per line: custom_id, method, url and body. The file is uploaded, then the batch is made from it; faulty lines are listed on the batch's page.",
    ),
    zone,
    h(
      "div",
      { class: "row" },
      h("label", {}, "Endpoint", endpoint),
      h("label", {}, "Completion window", windowField),
    ),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(status);
    try {
      const uploaded = await api.uploadFile(file);
      const batch = await api.createBatch({
        input_file_id: uploaded.id,
        endpoint: endpoint.value,
        completion_window: windowField.value.trim() || undefined,
      });
      location.hash = `#/batches/${batch.id}`;
    } catch (error) {
      replace(status, errorBox(error));
      submit.disabled = false;
    }
  });
  return form;
}
