// Files: the key's uploads and batch result files, each downloadable.

import { api, download } from "./api.js";
import { ago, bytes, errorBox, h, replace, time } from "./dom.js";

export function fileListView(main) {
  const status = h("div");
  const body = h("tbody");
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Files")),
    status,
    h(
      "div",
      { class: "card flush" },
      h(
        "table",
        { class: "table files" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "File"),
            h("th", {}, "Name"),
            h("th", {}, "Purpose"),
            h("th", { class: "num" }, "Size"),
            h("th", {}, "Created"),
            h("th", {}),
          ),
        ),
        body,
      ),
    ),
  );
  api
    .listFiles()
    .then((page) => {
      replace(
        body,
        page.data.length
          ? page.data.map((file) =>
              h(
                "tr",
                { dataset: { fileId: file.id } },
                h("td", { class: "mono" }, file.id),
                h("td", {}, file.filename),
                h("td", {}, file.purpose),
                h("td", { class: "num" }, bytes(file.bytes)),
                h("td", { title: time(file.created_at) }, ago(file.created_at)),
                h(
                  "td",
                  {},
                  h(
                    "button",
                    {
                      class: "button small ghost",
                      onclick: () =>
                        download(`/v1/files/${file.id}/content`, file.filename).catch((error) =>
                          replace(status, errorBox(error)),
                        ),
                    },
                    "Download",
                  ),
                ),
              ),
            )
          : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No files yet.")),
      );
    })
    .catch((error) => replace(status, errorBox(error)));
  return () => {};
}
