// Prompts: the list, a prompt's versions with messages and placeholders, add a version, publish.

import { api } from "./api.js";
import { ago, errorBox, h, replace, time } from "./dom.js";
import { messagesEditor, settingsField, submitting } from "./prompt_editor.js";

export function promptListView(main) {
  const status = h("div");
  const body = h("tbody");
  const editor = messagesEditor([]);
  const settings = settingsField(null);
  const slug = h("input", {
    id: "new-slug",
    placeholder: "lowercase-with-dashes",
    pattern: "[a-z0-9\\-]{1,64}",
  });
  const create = h("button", { class: "button primary", type: "submit" }, "Create prompt");
  const form = h(
    "form",
    { class: "card form", id: "new-prompt", hidden: true },
    h("h2", {}, "New prompt"),
    h("label", {}, "Slug", slug),
    h("div", { class: "field" }, h("span", { class: "label" }, "Messages"), editor.element),
    h("label", { class: "field" }, "model_config (optional JSON)", settings.element),
    h("div", { class: "actions" }, create),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(create, status, async () => {
      const payload = { slug: slug.value.trim(), messages: editor.value() };
      const config = settings.value();
      if (config) payload.model_config = config;
      const prompt = await api.createPrompt(payload);
      location.hash = `#/prompts/${prompt.slug}`;
    });
  });
  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Prompts"),
      h(
        "button",
        {
          class: "button primary",
          onclick: () => {
            form.hidden = !form.hidden;
          },
        },
        "New prompt",
      ),
    ),
    status,
    form,
    h(
      "div",
      { class: "card flush" },
      h(
        "table",
        { class: "table prompts" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "Slug"),
            h("th", {}, "Published"),
            h("th", {}, "Latest"),
            h("th", {}, "Updated"),
          ),
        ),
        body,
      ),
    ),
  );
  api
    .listPrompts()
    .then((page) => {
      replace(
        body,
        page.data.length
          ? page.data.map((prompt) =>
              h(
                "tr",
                { dataset: { slug: prompt.slug } },
                h("td", {}, h("a", { href: `#/prompts/${prompt.slug}` }, prompt.slug)),
                h("td", {}, prompt.published_version ? `v${prompt.published_version}` : "none"),
                h("td", {}, `v${prompt.latest_version}`),
                h("td", { title: time(prompt.updated_at) }, ago(prompt.updated_at)),
              ),
            )
          : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No prompts yet.")),
      );
    })
    .catch((error) => replace(status, errorBox(error)));
  return () => {};
}

function versionCard(prompt, version, status, reload) {
  const published = prompt.published_version === version.version;
  const publish = h(
    "button",
    {
      class: "button small",
      onclick: () =>
        submitting(publish, status, async () => {
          await api.publish(prompt.slug, version.version);
          await reload();
        }),
    },
    "Publish",
  );
  return h(
    "section",
    {
      class: `card version ${published ? "published" : ""}`,
      dataset: { version: version.version },
    },
    h(
      "div",
      { class: "version-head" },
      h("h2", {}, `Version ${version.version}`),
      published ? h("span", { class: "badge status-completed" }, "published") : publish,
      h("span", { class: "muted" }, time(version.created_at)),
    ),
    h(
      "div",
      { class: "chips" },
      version.placeholders.length
        ? version.placeholders.map((name) => h("span", { class: "chip" }, `{{ ${name} }}`))
        : h("span", { class: "muted" }, "no placeholders"),
    ),
    version.messages.map((message) =>
      h(
        "div",
        { class: "message" },
        h("span", { class: "role" }, message.role),
        h("pre", {}, message.content),
      ),
    ),
    Object.keys(version.model_config).length
      ? h(
          "p",
          { class: "muted" },
          "model_config ",
          h("code", {}, JSON.stringify(version.model_config)),
        )
      : null,
  );
}

export function promptView(main, slug) {
  const status = h("div");
  const versions = h("div", { class: "versions" });
  const head = h("div");
  let prompt = null;
  const addButton = h("button", { class: "button primary", type: "submit" }, "Add version");
  const addForm = h("form", { class: "card form", id: "add-version" });

  const reload = async () => {
    prompt = await api.getPrompt(slug);
    replace(
      head,
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, prompt.slug),
        h(
          "a",
          { class: "button", href: `#/new?prompt=${encodeURIComponent(prompt.slug)}` },
          "New batch from this prompt",
        ),
      ),
      h(
        "p",
        { class: "muted" },
        `${prompt.versions.length} version(s) · published v${prompt.published_version ?? "—"}`,
      ),
    );
    replace(
      versions,
      prompt.versions
        .slice()
        .reverse()
        .map((version) => versionCard(prompt, version, status, reload)),
    );
  };

  reload()
    .then(() => {
      const latest = prompt.versions.at(-1);
      const editor = messagesEditor(latest.messages);
      const settings = settingsField(latest.model_config);
      const publishNow = h("input", { type: "checkbox", id: "publish-now" });
      replace(
        addForm,
        h("h2", {}, "Add a version"),
        h(
          "p",
          { class: "muted" },
          "Starts from the latest version; versions never change once stored.",
        ),
        editor.element,
        h("label", { class: "field" }, "model_config (optional JSON)", settings.element),
        h(
          "div",
          { class: "actions" },
          h("label", { class: "inline" }, publishNow, " Publish it"),
          addButton,
        ),
      );
      addForm.onsubmit = (event) => {
        event.preventDefault();
        submitting(addButton, status, async () => {
          const payload = { messages: editor.value() };
          const config = settings.value();
          if (config) payload.model_config = config;
          const added = await api.addVersion(slug, payload);
          if (publishNow.checked) await api.publish(slug, added.version);
          await reload();
        });
      };
    })
    .catch((error) => replace(status, errorBox(error)));

  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/prompts" }, "← Prompts")),
    head,
    status,
    h("div", { class: "two-columns" }, versions, addForm),
  );
  return () => {};
}
