// A batch's page: counts, timestamps, usage, errors, metadata, actions and its first results.

import { api, download, firstLines, followBatch } from "./api.js";
import {
  FINAL,
  errorBox,
  faultTable,
  h,
  money,
  number,
  replace,
  statusBadge,
  time,
} from "./dom.js";
import { counts, poller, progressBar, rate } from "./progress.js";
import { resultView } from "./results.js";

const PREVIEW_LINES = 10;

function facts(pairs) {
  return h(
    "dl",
    { class: "facts-list" },
    pairs
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
  );
}

const STAMPS = [
  "created_at",
  "in_progress_at",
  "finalizing_at",
  "completed_at",
  "failed_at",
  "cancelling_at",
  "cancelled_at",
  "expired_at",
  "expires_at",
];

function usageCard(usage) {
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Usage and cost"),
    facts([
      ["Input tokens", number(usage.input_tokens)],
      ["Output tokens", number(usage.output_tokens)],
      ["Total tokens", number(usage.total_tokens)],
      ["Input cost", money(usage.input_cost)],
      ["Output cost", money(usage.output_cost)],
      ["Total cost", h("strong", {}, money(usage.total_cost))],
      ...(usage.unpriced_models.length
        ? [["Unpriced models", usage.unpriced_models.join(", ")]]
        : []),
    ]),
  );
}

function actions(batch, refresh, report) {
  const running = !FINAL.has(batch.status) && batch.status !== "cancelling";
  const guarded = (work) => async (event) => {
    event.currentTarget.disabled = true;
    try {
      await work();
    } catch (error) {
      report(error);
    } finally {
      event.currentTarget && (event.currentTarget.disabled = false);
    }
  };
  return h(
    "div",
    { class: "actions" },
    running
      ? h(
          "button",
          {
            class: "button danger",
            onclick: guarded(async () => {
              await api.cancelBatch(batch.id);
              await refresh();
            }),
          },
          "Cancel batch",
        )
      : null,
    batch.output_file_id
      ? h(
          "button",
          {
            class: "button",
            onclick: guarded(() =>
              download(`/v1/files/${batch.output_file_id}/content`, `${batch.id}_output.jsonl`),
            ),
          },
          "Download output",
        )
      : null,
    batch.error_file_id
      ? h(
          "button",
          {
            class: "button",
            onclick: guarded(() =>
              download(`/v1/files/${batch.error_file_id}/content`, `${batch.id}_errors.jsonl`),
            ),
          },
          "Download errors",
        )
      : null,
    FINAL.has(batch.status) && batch.status !== "failed"
      ? h(
          "button",
          {
            class: "button ghost",
            onclick: guarded(() =>
              download(`/v1/batches/${batch.id}/output`, `${batch.id}_all.jsonl`),
            ),
          },
          "Download all lines",
        )
      : null,
  );
}

async function inputLines(batch) {
  // Only an uploaded file's batch has its input readable through the API.
  if (!batch.input_file_id) return new Map();
  try {
    const lines = await firstLines(await api.fileContent(batch.input_file_id), PREVIEW_LINES * 4);
    const byId = new Map();
    for (const raw of lines) {
      try {
        const parsed = JSON.parse(raw);
        byId.set(parsed.custom_id, parsed);
      } catch {
        // A line the batch refused; the preview shows only results.
      }
    }
    return byId;
  } catch {
    return new Map();
  }
}

async function preview(batch, target) {
  const [lines, inputs] = await Promise.all([
    api.output(batch.id).then((response) => firstLines(response, PREVIEW_LINES)),
    inputLines(batch),
  ]);
  const items = lines
    .map((raw) => JSON.parse(raw))
    .map((line) => {
      const raw = h("pre", { class: "raw", hidden: true }, JSON.stringify(line, null, 2));
      const toggle = h(
        "button",
        {
          class: "link",
          onclick: () => {
            raw.hidden = !raw.hidden;
            toggle.textContent = raw.hidden ? "Show JSON" : "Hide JSON";
          },
        },
        "Show JSON",
      );
      return h(
        "li",
        { class: "result-line", dataset: { customId: line.custom_id } },
        h(
          "div",
          { class: "result-head" },
          h("span", { class: "mono" }, line.custom_id),
          line.error
            ? h("span", { class: "badge status-failed" }, "failed")
            : h("span", { class: "badge status-completed" }, "ok"),
          toggle,
        ),
        resultView(line, inputs.get(line.custom_id)),
        raw,
      );
    });
  replace(
    target,
    h("h2", {}, `First results (${lines.length} of ${number(batch.request_counts.total)})`),
    items.length
      ? h("ol", { class: "results" }, items)
      : h("p", { class: "muted" }, "No result lines."),
  );
}

export function batchView(main, id) {
  const errors = h("div");
  const report = (error) => replace(errors, errorBox(error));
  const head = h("div");
  const body = h("div", { class: "grid" });
  const results = h("section", { class: "card results-card", hidden: true });
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/batches" }, "← Batches")),
    head,
    errors,
    body,
    results,
  );
  let previewed = false;

  const show = async (batch) => {
    replace(
      head,
      h(
        "div",
        { class: "page-head" },
        h(
          "div",
          {},
          h("h1", { class: "mono" }, batch.id),
          h("p", { class: "muted" }, `${batch.endpoint} · window ${batch.completion_window}`),
        ),
        statusBadge(batch.status),
      ),
      actions(batch, refresh, report),
    );
    const stamps = STAMPS.filter((name) => batch[name]).map((name) => [
      name.replace(/_at$/, "").replace("_", " "),
      time(batch[name]),
    ]);
    replace(
      body,
      h(
        "section",
        { class: "card span-2" },
        h("h2", {}, "Progress"),
        progressBar(batch),
        h("div", { class: "under" }, counts(batch), " ", rate(batch)),
      ),
      h("section", { class: "card" }, h("h2", {}, "Timestamps"), facts(stamps)),
      usageCard(batch.usage),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Metadata"),
        batch.metadata && Object.keys(batch.metadata).length
          ? facts(Object.entries(batch.metadata))
          : h("p", { class: "muted" }, "none"),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Files"),
        facts([
          ["Input", batch.input_file_id ? h("code", {}, batch.input_file_id) : "inline submission"],
          ["Output", batch.output_file_id ? h("code", {}, batch.output_file_id) : "—"],
          ["Errors", batch.error_file_id ? h("code", {}, batch.error_file_id) : "—"],
        ]),
      ),
      batch.errors?.data?.length
        ? h(
            "section",
            { class: "card span-2 batch-errors" },
            h("h2", {}, "Input errors"),
            faultTable(batch.errors.data),
          )
        : null,
    );
    if (FINAL.has(batch.status) && batch.status !== "failed" && !previewed) {
      previewed = true;
      results.hidden = false;
      replace(results, h("p", { class: "muted" }, "Loading results…"));
      preview(batch, results).catch(report);
    }
    return !FINAL.has(batch.status);
  };
  const refresh = async () => show(await api.getBatch(id));
  let pollFailed = false;
  const poll = () =>
    poller(() =>
      refresh().then(
        (again) => {
          if (pollFailed) replace(errors);
          pollFailed = false;
          return again;
        },
        (error) => {
          pollFailed = true;
          report(error);
          // A missing batch or a refused key stays so; anything else may pass: keep watching.
          return !(error.status === 404 || error.status === 401);
        },
      ),
    );
  // The batch's event stream while it runs; polling if the stream is not there or breaks.
  let stopped = false;
  let stopPolling = null;
  const stream = new AbortController();
  const fallBack = () => {
    if (!stopped) stopPolling = poll();
  };
  refresh()
    .then((running) => {
      if (!running) return;
      return followBatch(id, (batch) => show(batch).catch(report), stream.signal).then(
        (ended) => ended || fallBack(), fallBack);
    })
    .catch((error) => {
      report(error);
      if (!(error.status === 404 || error.status === 401)) fallBack();
    });
  return () => {
    stopped = true;
    stream.abort();
    if (stopPolling) stopPolling();
  };
}
