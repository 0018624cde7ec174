// The explorer: a page over this peer's public API only (no other origin, no inline code; the
// peer serves it with a Content-Security-Policy allowing nothing else). Views are chosen by the
// URL fragment: #/ (newest blocks and transactions, live from /v1/events), #/block/CID,
// #/tx/ID, #/canonical/CID (an entity's or artefact's history) and #/search?q=WORDS.
// Everything shown is set as text (never parsed as HTML).
"use strict";

const KEEP_BLOCKS = 20;
const KEEP_TXS = 30;
const blocks = new Map(); // height -> BlockSummary, the newest KEEP_BLOCKS
let height = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const link = (href, text, cls) => el("a", { href, class: cls }, text);
const cidLink = (kind, cid) => link(`#/${kind}/${encodeURIComponent(cid)}`, cid, "cid");
const when = (seconds) => new Date(seconds * 1000).toISOString().replace(".000Z", "Z");

async function api(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

// ---- health ----------------------------------------------------------------------------

async function refreshHealth() {
  try {
    const head = await api("/v1/journal/head");
    height = Math.max(height ?? 0, head.height);
    setText("h-height", String(head.height));
    setText("h-final", head.finalized ? String(head.finalized.height) : "no finality");
    setText("h-pending", String(head.pending));
  } catch (e) {
    setText("h-height", `unavailable (${e.message})`);
  }
  try {
    const ready = await fetch("/readyz");
    setText("h-ready", ready.ok ? "ready" : "not ready");
  } catch (e) {
    setText("h-ready", "unreachable");
  }
  try {
    const text = await (await fetch("/metrics")).text();
    const line = text.split("\n").find((l) => l.startsWith("mediachain_peers_connected "));
    setText("h-peers", line ? line.split(" ")[1] : "unknown");
  } catch (e) {
    setText("h-peers", "unknown");
  }
}

// ---- newest blocks and transactions, live ----------------------------------------------

function renderHome() {
  const newest = [...blocks.values()].sort((a, b) => b.height - a.height);
  document.getElementById("blocks").replaceChildren(
    ...newest.map((b) =>
      el("li", { "data-height": b.height },
        link(`#/block/${encodeURIComponent(b.cid)}`, `Block ${b.height}`), " ",
        el("span", { class: "meta" },
          `${b.transactions.length} transaction(s), ${b.entries.length} entr${b.entries.length === 1 ? "y" : "ies"}, ${when(b.timestamp)}`)))
  );
  const txs = newest.flatMap((b) => b.transactions.map((id) => ({ id, block: b }))).slice(0, KEEP_TXS);
  document.getElementById("txs").replaceChildren(
    ...txs.map(({ id, block }) =>
      el("li", { "data-tx": id }, cidLink("tx", id), " ",
        el("span", { class: "meta" }, `in block ${block.height}`)))
  );
}

function onBlock(summary) {
  // A reorganisation re-sends the heights it replaced: the newest summary of a height wins.
  blocks.set(summary.height, summary);
  for (const h of [...blocks.keys()].sort((a, b) => a - b).slice(0, Math.max(0, blocks.size - KEEP_BLOCKS))) {
    blocks.delete(h);
  }
  height = Math.max(height ?? 0, summary.height);
  setText("h-height", String(height));
  renderHome();
  refreshTxView();
}

function follow(from) {
  const events = new EventSource(`/v1/events?from=${from}`);
  events.addEventListener("open", () => setText("h-live", "following"));
  events.addEventListener("error", () => setText("h-live", "reconnecting"));
  events.addEventListener("block", (e) => onBlock(JSON.parse(e.data)));
  events.addEventListener("final", (e) => {
    setText("h-final", String(JSON.parse(e.data).height));
    refreshTxView();
  });
}

// ---- views -----------------------------------------------------------------------------

function table(rows) {
  return el("table", {}, el("tbody", {}, rows.filter(Boolean).map(([name, value]) =>
    el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, value)))));
}

async function blockView(cid) {
  const b = await api(`/v1/journal/blocks/${encodeURIComponent(cid)}`);
  return [
    el("h1", {}, `Block ${b.height}`),
    table([
      ["CID", el("span", { class: "cid" }, b.cid)],
      ["Parent", b.height > 0 ? cidLink("block", b.parent) : el("span", { class: "cid" }, b.parent)],
      ["Time", when(b.timestamp)],
      b.committer ? ["Committer", el("span", { class: "cid" }, b.committer)] : null,
    ]),
    el("h2", {}, "Transactions"),
    el("ul", { class: "list" }, b.transactions.map((id) => el("li", {}, cidLink("tx", id)))),
    el("h2", {}, "Entries"),
    el("ul", { class: "list" }, b.entries.map((e) =>
      el("li", {}, el("span", { class: "chip" }, e.type), " ", cidLink("canonical", e.ref)))),
  ];
}

async function txView(id) {
  const t = await api(`/v1/transactions/${encodeURIComponent(id)}`);
  return [
    el("h1", {}, "Transaction"),
    table([
      ["Id", el("span", { class: "cid" }, t.id)],
      ["State", el("span", { class: `chip state-${t.state}`, id: "tx-state" }, t.merged ? `${t.state} (merged)` : t.state)],
      t.block ? ["Block", cidLink("block", t.block)] : null,
      t.height !== undefined ? ["Height", String(t.height)] : null,
      t.reason ? ["Reason", t.reason] : null,
    ]),
  ];
}

const CANONICAL_LINKS = ["ref", "entity", "entityLink", "artefactLink"];

function objectTable(object) {
  const rows = [];
  for (const [key, value] of Object.entries(object)) {
    if (key === "signatures") continue;
    if (key === "meta" && value && typeof value === "object") {
      for (const [name, text] of Object.entries(value)) rows.push([name, typeof text === "string" ? text : JSON.stringify(text)]);
    } else if (value && typeof value === "object" && typeof value["/"] === "string") {
      const cid = value["/"];
      rows.push([key, CANONICAL_LINKS.includes(key) ? cidLink("canonical", cid)
        : link(`/v1/objects/${encodeURIComponent(cid)}?format=json`, cid, "cid")]);
    } else {
      rows.push([key, typeof value === "string" ? value : JSON.stringify(value)]);
    }
  }
  return table(rows);
}

async function canonicalView(cid) {
  const h = await api(`/v1/journal/history/${encodeURIComponent(cid)}`);
  const name = (h.object.meta && (h.object.meta.name || h.object.meta.title)) || h.object.type || "Canonical";
  const parts = [
    el("h1", {}, String(name)),
    table([["Canonical", el("span", { class: "cid" }, h.canonical)], ["Head", el("span", { class: "cid" }, h.head)]]),
    el("h2", {}, "Object"),
    objectTable(h.object),
    el("h2", {}, `History (${h.cells.length} cell${h.cells.length === 1 ? "" : "s"}, newest first)`),
    el("ol", { class: "list", id: "history" }, h.cells.map((c) =>
      el("li", { class: "cell" }, el("span", { class: "chip" }, c.object.type || "cell"), " ",
        el("span", { class: "cid" }, c.cid), objectTable(c.object)))),
  ];
  if (h.object.type === "entity") {
    const created = await api(`/v1/search?creator=${encodeURIComponent(cid)}&limit=50`).catch(() => null);
    if (created) {
      parts.push(el("h2", {}, "Artefacts it created"), hitList(created.hits));
    }
  }
  return parts;
}

function hitList(hits) {
  return el("ol", { class: "list", id: "hits" }, hits.map((hit) =>
    el("li", {},
      link(`#/canonical/${encodeURIComponent(hit.canonical)}`, hit.meta.name || hit.meta.title || hit.canonical),
      " ", el("span", { class: "chip" }, hit.subject), " ",
      el("span", { class: "meta" }, `committed ${hit.committed} in block ${hit.height}`),
      hit.meta.description ? el("p", { class: "meta" }, hit.meta.description) : null)));
}

async function searchView(params) {
  const q = params.get("q") || "";
  document.getElementById("q").value = q;
  const query = new URLSearchParams({ q, limit: "20" });
  if (params.get("cursor")) query.set("cursor", params.get("cursor"));
  const page = await api(`/v1/search?${query}`);
  const parts = [
    el("h1", {}, `Search: ${q}`),
    el("p", { class: "meta" }, `${page.total} hit${page.total === 1 ? "" : "s"} (index at height ${page.height})`),
    hitList(page.hits),
  ];
  if (page.next) {
    parts.push(el("p", {}, link(`#/search?${new URLSearchParams({ q, cursor: page.next })}`, "Next page")));
  }
  return parts;
}

// The view of a transaction follows its state (pending, committed, final) as blocks arrive.
function refreshTxView() {
  if (location.hash.startsWith("#/tx/")) route(false);
}

async function route(focus = true) {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const [, kind, arg] = path.split("/");
  const home = document.getElementById("home");
  const view = document.getElementById("view");
  if (!kind) {
    home.hidden = false;
    view.hidden = true;
    document.title = "Mediachain explorer";
    return;
  }
  home.hidden = true;
  view.hidden = false;
  if (focus) view.replaceChildren(el("p", { class: "meta" }, "Loading…"));
  const views = {
    block: () => blockView(decodeURIComponent(arg)),
    tx: () => txView(decodeURIComponent(arg)),
    canonical: () => canonicalView(decodeURIComponent(arg)),
    search: () => searchView(new URLSearchParams(query || "")),
  };
  try {
    const render = views[kind];
    const parts = render ? await render() : [el("p", {}, "No such view.")];
    view.replaceChildren(el("p", {}, link("#/", "← Newest blocks")), ...parts);
    const title = view.querySelector("h1");
    document.title = `${title ? title.textContent : kind} · Mediachain explorer`;
  } catch (e) {
    view.replaceChildren(el("p", {}, link("#/", "← Newest blocks")), el("p", { class: "error", role: "alert" }, e.message));
  }
  if (focus) document.getElementById("main").focus();
}

document.getElementById("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (q) location.hash = `#/search?${new URLSearchParams({ q })}`;
});
window.addEventListener("hashchange", () => route());

(async () => {
  route();
  try {
    const info = await api("/v1/info");
    setText("h-network", info.network);
  } catch (e) {
    setText("h-network", "unknown");
  }
  await refreshHealth();
  setInterval(refreshHealth, 5000);
  follow(Math.max(0, (height ?? 0) - KEEP_BLOCKS + 1));
})();
