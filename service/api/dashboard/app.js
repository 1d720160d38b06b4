// The dashboard's shell: sign-in with an API key, navigation and the hash router.

import { ApiError, api, forgetKey, rememberKey, storedKey } from "./api.js";
import { batchListView } from "./batch_list.js";
import { batchView } from "./batch_page.js";
import { errorBox, h, replace } from "./dom.js";
import { fileListView } from "./files.js";
import { newBatchView } from "./new_batch.js";
import { promptListView, promptView } from "./prompts.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let stopView = () => {};

const ROUTES = [
  [/^#\/batches\/([\w-]+)$/, (id) => batchView(main, id), "batches"],
  [/^#\/new/, () => newBatchView(main), "new"],
  [/^#\/prompts\/([\w-]+)$/, (slug) => promptView(main, slug), "prompts"],
  [/^#\/prompts$/, () => promptListView(main), "prompts"],
  [/^#\/files$/, () => fileListView(main), "files"],
  [/^/, () => batchListView(main), "batches"],
];

function signInView() {
  const key = h("input", {
    type: "password",
    id: "api-key",
    autocomplete: "off",
    placeholder: "tb-…",
    required: true,
  });
  const status = h("div");
  const button = h("button", { class: "button primary", type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "Paste an API key. It is kept in this tab only and sent as the x-api-key header.",
    ),
    h("label", { class: "field" }, "API key", key),
    status,
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await api.checkKey(key.value.trim());
      rememberKey(key.value.trim());
      route();
    } catch (error) {
      replace(status, errorBox(error));
      button.disabled = false;
    }
  });
  replace(main, form);
  key.focus();
}

function navigation(active) {
  const link = (name, href, label) =>
    h("a", { href, class: name === active ? "active" : "" }, label);
  replace(
    nav,
    link("batches", "#/batches", "Batches"),
    link("new", "#/new", "New batch"),
    link("prompts", "#/prompts", "Prompts"),
    link("files", "#/files", "Files"),
    h(
      "button",
      {
        class: "link signout",
        id: "sign-out",
        onclick: () => {
          forgetKey();
          route();
        },
      },
      "Sign out",
    ),
  );
}

function route() {
  stopView();
  stopView = () => {};
  if (!storedKey()) {
    replace(nav);
    signInView();
    return;
  }
  const hash = location.hash.split("?")[0] || "#/batches";
  for (const [pattern, view, section] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      navigation(section);
      stopView = view(...match.slice(1)) ?? (() => {});
      return;
    }
  }
}

// A key that stops working (revoked, service reconfigured) sends the person back to sign-in.
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof ApiError && event.reason.status === 401) {
    forgetKey();
    route();
  }
});
window.addEventListener("hashchange", route);
route();
