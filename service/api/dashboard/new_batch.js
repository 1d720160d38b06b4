// New batch: the two ways to make one, as tabs.

import { h, replace } from "./dom.js";
import { promptForm } from "./prompt_form.js";
import { uploadForm } from "./upload_form.js";

export function newBatchView(main) {
  const status = h("div", { id: "new-batch-status" });
  const panel = h("div");
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const show = (which) => {
    replace(status);
    replace(
      tabs,
      h(
        "button",
        {
          class: `tab ${which === "prompt" ? "active" : ""}`,
          role: "tab",
          onclick: () => show("prompt"),
        },
        "From prompt",
      ),
      h(
        "button",
        {
          class: `tab ${which === "upload" ? "active" : ""}`,
          role: "tab",
          onclick: () => show("upload"),
        },
        "Upload JSONL",
      ),
    );
    replace(panel, which === "prompt" ? promptForm(status) : uploadForm(status));
  };
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "New batch")), tabs, status, panel);
  show(location.hash.includes("upload") ? "upload" : "prompt");
  return () => {};
}
