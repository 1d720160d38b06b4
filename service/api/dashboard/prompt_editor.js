// Editing a prompt version: its messages, its model_config, and a submit that shows API errors.

import { errorBox, h, replace } from "./dom.js";

const ROLES = ["system", "developer", "user", "assistant"];

/** An editor of messages (role and template content), with a button to add another. */
export function messagesEditor(initial) {
  const rows = h("div", { class: "messages-editor" });
  const addRow = (role = "user", content = "") => {
    const row = h(
      "div",
      { class: "message-row" },
      h(
        "select",
        { class: "role" },
        ROLES.map((name) => h("option", { value: name, selected: name === role }, name)),
      ),
      h(
        "textarea",
        {
          class: "content",
          rows: 3,
          spellcheck: "false",
          placeholder: "Template, e.g. Summarize for {{ audience }}: {{ text }}",
        },
        content,
      ),
      h(
        "button",
        { type: "button", class: "button ghost small", onclick: () => row.remove() },
        "Remove",
      ),
    );
    rows.append(row);
  };
  for (const message of initial) addRow(message.role, message.content);
  if (!initial.length) addRow();
  const element = h(
    "div",
    {},
    rows,
    h(
      "button",
      { type: "button", class: "button ghost small", onclick: () => addRow() },
      "Add message",
    ),
  );
  const value = () =>
    [...rows.querySelectorAll(".message-row")].map((row) => ({
      role: row.querySelector(".role").value,
      content: row.querySelector(".content").value,
    }));
  return { element, value };
}

export function settingsField(initial) {
  const field = h(
    "textarea",
    {
      class: "settings",
      rows: 2,
      spellcheck: "false",
      placeholder: '{"temperature": 0.2, "max_tokens": 200}',
    },
    initial && Object.keys(initial).length ? JSON.stringify(initial) : "",
  );
  const value = () => {
    const text = field.value.trim();
    return text ? JSON.parse(text) : undefined;
  };
  return { element: field, value };
}

export async function submitting(button, status, work) {
  button.disabled = true;
  replace(status);
  try {
    await work();
  } catch (error) {
    replace(
      status,
      errorBox(
        error instanceof SyntaxError
          ? { message: `model_config is not valid JSON: ${error.message}` }
          : error,
      ),
    );
  } finally {
    button.disabled = false;
  }
}
