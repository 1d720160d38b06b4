// The batches list, newest first; it refreshes about once a second while any batch runs.

import { api } from "./api.js";
import { FINAL, ago, errorBox, h, replace, statusBadge, time } from "./dom.js";
import { counts, poller, progressBar, rate } from "./progress.js";

function batchRow(batch) {
  return h(
    "tr",
    { dataset: { batchId: batch.id } },
    h("td", {}, h("a", { href: `#/batches/${batch.id}`, class: "mono" }, batch.id)),
    h("td", {}, statusBadge(batch.status)),
    h(
      "td",
      { class: "wide" },
      progressBar(batch),
      h("div", { class: "under" }, counts(batch), " ", rate(batch)),
    ),
    h(
      "td",
      {},
      batch.metadata
        ? Object.entries(batch.metadata).map(([k, v]) => h("span", { class: "tag" }, `${k}: ${v}`))
        : "—",
    ),
    h("td", { title: time(batch.created_at) }, ago(batch.created_at)),
  );
}

export function batchListView(main) {
  const body = h("tbody");
  const more = h("button", { class: "button ghost", hidden: true }, "Load more");
  const status = h("div");
  let loaded = [];
  let hasMore = false;
  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Batches"),
      h("a", { class: "button primary", href: "#/new" }, "New batch"),
    ),
    status,
    h(
      "div",
      { class: "card flush" },
      h(
        "table",
        { class: "table batches" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "Batch"),
            h("th", {}, "Status"),
            h("th", {}, "Progress"),
            h("th", {}, "Metadata"),
            h("th", {}, "Created"),
          ),
        ),
        body,
      ),
    ),
    more,
  );

  const render = () => {
    if (!loaded.length) {
      replace(
        body,
        h(
          "tr",
          {},
          h(
            "td",
            { colspan: 5, class: "empty" },
            "No batches yet. ",
            h("a", { href: "#/new" }, "Make one"),
            ".",
          ),
        ),
      );
    } else replace(body, loaded.map(batchRow));
    more.hidden = !hasMore;
  };
  more.addEventListener("click", async () => {
    const page = await api.listBatches(loaded.at(-1)?.id);
    loaded = loaded.concat(page.data);
    hasMore = page.has_more;
    render();
  });
  return poller(async () => {
    try {
      const page = await api.listBatches(undefined, Math.max(50, Math.min(loaded.length, 100)));
      loaded = page.data;
      hasMore = page.has_more;
      replace(status);
      render();
    } catch (error) {
      replace(status, errorBox(error));
      return error.status !== 401;
    }
    return loaded.some((batch) => !FINAL.has(batch.status));
  });
}
