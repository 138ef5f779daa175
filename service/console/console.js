// The Lamina console: one page over the HTTP/JSON API (POST /v1/{Service}/{Method}), no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "lamina-api-key";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

async function call(method, body = {}) {
  const headers = { "content-type": "application/json" };
  const key = localStorage.getItem(KEY);
  if (key) headers.authorization = `Bearer ${key}`;
  const reply = await fetch(`/v1/${method}`, { method: "POST", headers, body: JSON.stringify(body) });
  const data = await reply.json();
  if (!reply.ok) throw new Error(`${data.error.code}: ${data.error.message}`);
  return data;
}

function showError(error) {
  const box = $("error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

const short = (name, prefix) => (name || "").replace(prefix, "").toLowerCase();

// ---------------------------------------------------------------- collections
async function loadCollections() {
  const body = $("collections").tBodies[0];
  const select = $("collection");
  const chosen = select.value;
  body.replaceChildren();
  select.replaceChildren();
  try {
    const { collections } = await call("Collections/List");
    for (const config of collections) {
      const { count } = await call("Collections/Get", { name: config.name });
      const payload = Object.entries(config.payload || {}).map(([f, k]) => `${f}:${short(k, "PAYLOAD_KIND_")}`);
      body.append(el("tr", { "data-collection": config.name },
        el("td", {}, config.name), el("td", { class: "count" }, count),
        el("td", {}, short(config.index && config.index.kind, "INDEX_KIND_")), el("td", {}, config.dim),
        el("td", {}, config.encoder || "(vectors only)"), el("td", {}, config.sparse ? config.sparse.encoder : "-"),
        el("td", {}, config.multivector ? config.multivector.encoder : "-"), el("td", {}, payload.join(", ") || "-")));
      select.append(el("option", { value: config.name }, config.name));
    }
    if (chosen) select.value = chosen;
    showError(null);
  } catch (error) {
    showError(error);
  }
}

// ---------------------------------------------------------------- filters: the Python/CLI form -> protobuf JSON
function scalar(value) {
  if (typeof value === "boolean") return { flag: value };
  if (typeof value === "number") return Number.isInteger(value) ? { integer: String(value) } : { number: value };
  if (typeof value === "string") return { text: value };
  throw new Error(`filter value ${JSON.stringify(value)} is not a string, number or bool`);
}

function condition(item) {
  if (item.must || item.should || item.must_not) return { filter: toProtoFilter(item) };
  const field = { key: item.key };
  if (item.match && "value" in item.match) field.match = scalar(item.match.value);
  else if (item.match && "any" in item.match) field.any = { values: item.match.any.map(scalar) };
  else if (item.range) field.range = Object.fromEntries(Object.entries(item.range).map(([b, v]) => [b, scalar(v)]));
  else if (item.exists) field.exists = true;
  return { field };
}

function toProtoFilter(filter) {
  const out = {};
  for (const clause of ["must", "should", "must_not"]) {
    if (filter[clause]) out[clause] = filter[clause].map(condition);
  }
  return out;
}

// ---------------------------------------------------------------- search
const STAGES = { dense: ["STAGE_KIND_DENSE"], sparse: ["STAGE_KIND_SPARSE"], hybrid: ["STAGE_KIND_DENSE", "STAGE_KIND_SPARSE"] };

function searchRequest() {
  const request = {
    collection: $("collection").value, text: $("query").value, k: Number($("k").value) || 10,
    prefetch: STAGES[$("mode").value].map((kind) => ({ kind })), explain: $("explain").checked,
  };
  const kappa = Number($("rerank").value);
  if (kappa) request.rerank = { kappa };
  if ($("tenant").value.trim()) request.tenant = $("tenant").value.trim();
  const filter = $("filter").value.trim();
  if (filter) {
    let parsed;
    try { parsed = JSON.parse(filter); } catch (error) { throw new Error(`the filter is not JSON: ${error.message}`); }
    request.filter = toProtoFilter(parsed);
  }
  return request;
}

async function search(event) {
  event.preventDefault();
  const list = $("hits");
  list.replaceChildren();
  $("plan").tBodies[0].replaceChildren();
  $("plan-extra").textContent = "";
  try {
    const request = searchRequest();
    const reply = await call("Search/Search", request);
    $("took").textContent = `${reply.hits.length} in ${(1e3 * reply.time).toFixed(1)} ms`;
    for (const hit of reply.hits) {
      const item = el("li", { class: "hit", "data-id": hit.id },
        el("span", { class: "hit-id" }, hit.id), el("span", { class: "score" }, Number(hit.score).toFixed(4)),
        el("div", {}, (hit.text || "").slice(0, 240)),
        el("div", { class: "meta" }, [hit.tenant ? `tenant ${hit.tenant}` : "", hit.metadata ? JSON.stringify(hit.metadata) : ""].join(" ")));
      item.addEventListener("click", () => showDocument(request.collection, hit.id));
      list.append(item);
    }
    if (reply.explain) showPlan(reply.explain);
    showError(null);
  } catch (error) {
    $("took").textContent = "";
    showError(error);
  }
}

function showPlan(explain) {
  const body = $("plan").tBodies[0];
  for (const stage of explain.stages || []) {
    body.append(el("tr", { class: "stage" }, el("td", {}, stage.kind), el("td", {}, stage.plan || ""),
      el("td", {}, stage.limit ?? ""), el("td", {}, stage.candidates ?? ""), el("td", {}, stage.ms ?? "")));
  }
  body.append(el("tr", { class: "total" }, el("td", {}, "total"), el("td", {}, explain.fusion || ""),
    el("td", {}, ""), el("td", {}, explain.cardinality ?? ""), el("td", {}, explain.ms ?? "")));
  const rest = Object.fromEntries(Object.entries(explain).filter(([k]) => !["stages", "ms", "fusion"].includes(k)));
  $("plan-extra").textContent = Object.keys(rest).length ? JSON.stringify(rest, null, 2) : "";
}

async function showDocument(collection, id) {
  const box = $("document");
  try {
    const { points } = await call("Points/Get", { collection, ids: [id] });
    const point = points[0];
    box.replaceChildren(point
      ? el("div", {}, el("h4", {}, point.id), el("p", {}, point.text || ""),
           el("pre", {}, JSON.stringify({ tenant: point.tenant, metadata: point.metadata }, null, 2)))
      : el("p", { class: "muted" }, `${id} is gone`));
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

// ---------------------------------------------------------------- health and bench plots
async function loadHealth() {
  const badge = $("health");
  try {
    const reply = await fetch("/healthz");
    badge.textContent = await reply.text();
    badge.className = reply.ok ? "badge ok" : "badge bad";
  } catch (error) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

async function loadPlots() {
  const { plots } = await (await fetch("/bench/")).json();
  if (!plots.length) return;
  $("plots").replaceChildren(...plots.map((name) =>
    el("figure", {}, el("img", { src: `/bench/${encodeURIComponent(name)}`, alt: name, loading: "lazy" }),
       el("figcaption", {}, name))));
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem(KEY) || "";
  $("save-key").addEventListener("click", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
    loadCollections();
  });
  $("refresh").addEventListener("click", loadCollections);
  $("search-form").addEventListener("submit", search);
  loadHealth();
  loadPlots();
  const params = new URLSearchParams(location.search);  // ?collection=demo&q=sort+a+list runs a search on load
  loadCollections().then(() => {
    if (params.get("collection")) $("collection").value = params.get("collection");
    for (const name of ["mode", "k", "rerank", "tenant", "filter"]) if (params.get(name)) $(name).value = params.get(name);
    if (params.get("q")) { $("query").value = params.get("q"); $("search-form").requestSubmit(); }
  });
});
