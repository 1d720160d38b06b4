// A batch's progress, shown live: the bar, the counts, the rate, and a poller that refreshes them.

import { h, number } from "./dom.js";

const POLL_MS = 1000;

/** Calls `refresh` now and again every second while it returns true, until stopped. */
export function poller(refresh) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let again = false;
    try {
      again = await refresh();
    } catch (error) {
      again = false;
    }
    if (again && !stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export function counts(batch) {
  const { total, completed, failed, cancelled = 0, expired = 0 } = batch.request_counts;
  // Cancelled and expired lines are shown only when there are some.
  const stopped = [
    [cancelled, "cancelled"],
    [expired, "expired"],
  ].flatMap(([count, word]) => (count ? [" · ", h("span", { class: "muted" }, `${number(count)} ${word}`)] : []));
  return h(
    "span",
    { class: "counts" },
    h("span", { class: "ok" }, `${number(completed)} done`),
    " · ",
    h("span", { class: failed ? "bad" : "" }, `${number(failed)} failed`),
    ...stopped,
    " · ",
    `${number(total)} total`,
  );
}

export function rate(batch) {
  if (!batch.progress) return null;
  const eta = new Date(batch.progress.eta_at * 1000).toLocaleTimeString();
  return h(
    "span",
    { class: "muted rate" },
    `${batch.progress.lines_per_second.toFixed(1)} lines/s · ETA ${eta}`,
  );
}

export function progressBar(batch) {
  const { total, completed, failed, cancelled = 0, expired = 0 } = batch.request_counts;
  const share = (part) => (total ? (100 * part) / total : 0);
  const unfinished = failed + cancelled + expired;
  // Set through the CSSOM: the page's CSP refuses inline style attributes.
  const done = h("div", { class: "bar done" });
  done.style.width = `${share(completed)}%`;
  const bad = h("div", { class: "bar failed" });
  bad.style.width = `${share(unfinished)}%`;
  return h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": total,
      "aria-valuenow": completed + unfinished,
    },
    done,
    bad,
  );
}
