// The Tenantry console: renders the model the console's server sends as
// server-sent events, one view at a time (chosen by the URL's hash). Every
// value is written with textContent, never as HTML.
"use strict";

const views = ["cluster", "regions", "tenants", "agents", "operations"];
let model = null;
let source = null;
let search = "";
let selected = null;
let shownHistoryRevision = null;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A table of `rows`, each cell [text, class] or text; `rowAttributes(row)` for each <tr>.
function fill(table, headers, rows, rowAttributes) {
  table.replaceChildren(
    el("thead", {}, el("tr", {}, headers.map((header) => el("th", {}, header)))),
    el("tbody", {}, rows.map((row) => el("tr", rowAttributes ? rowAttributes(row.source) : {},
      row.cells.map((cell) => Array.isArray(cell) ? el("td", { class: cell[1] }, cell[0]) : el("td", {}, cell))))),
  );
}

function ago(unixMs) {
  if (!unixMs) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - unixMs) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function expiry(unixS) {
  if (!unixS) return ["–", "muted"];
  const days = Math.floor((unixS * 1000 - Date.now()) / 86400000);
  const date = new Date(unixS * 1000).toISOString().slice(0, 10);
  return [`${date} (${days} d)`, days < 14 ? "bad expiry" : "expiry"];
}

function renderCluster(cluster) {
  const leader = cluster.members.find((member) => member.id === cluster.leader);
  document.getElementById("leader").textContent =
    cluster.leader === null ? "none" : `node ${cluster.leader}${leader ? ` (${leader.region})` : ""}`;
  document.getElementById("leader").className = cluster.leader === null ? "bad" : "";
  document.getElementById("term").textContent = cluster.term;
  document.getElementById("revision").textContent = cluster.revision;
  document.getElementById("cluster-id").textContent = cluster.cluster_id || "–";
  fill(document.getElementById("members"),
    ["Node", "Region", "Address", "Role", "State", "Term", "Last log", "Committed", "Applied", "Snapshot", "Purged", "Matched", "Behind", "Certificate expires"],
    cluster.members.map((member) => ({
      source: member,
      cells: [
        member.id, member.region, member.addr, member.voter ? "voter" : "learner",
        [member.state, member.state === "unreachable" ? "bad state" : "state"],
        [member.term, "num"], [member.last_log_index, "num"], [member.committed_index, "num"],
        [member.applied_index, "num applied"], [member.snapshot_index, "num"], [member.purged_index, "num"],
        [member.matched_index ?? "–", "num"], [member.behind ?? "–", member.behind > 100 ? "num warn" : "num"],
        expiry(member.cert_not_after_unix_s),
      ],
    })),
    (member) => ({ "data-member": member.id, title: member.error || "" }));
}

function renderRegions(regions, shards) {
  fill(document.getElementById("regions"), ["Region", "Status", "Registry nodes", "Home of", "Agents connected"],
    regions.map((region) => ({
      source: region,
      cells: [region.region, [region.status, region.status === "healthy" ? "good" : "warn"],
        region.nodes.join(", ") || "–", `${region.home_tenants} tenants`, `${region.agents_connected} of ${region.agents}`],
    })),
    (region) => ({ "data-region": region.region }));
  fill(document.getElementById("shards"), ["Shard", "Region", "State", "Endpoint", "Replica", "Tenants"],
    shards.map((shard) => ({
      source: shard,
      cells: [shard.id || "(default)", shard.region, shard.state, shard.endpoint || "–", shard.replica_endpoint || "–", [shard.tenants, "num"]],
    })),
    (shard) => ({ "data-shard": shard.id || `default-${shard.region}` }));
}

function servedCell(tenant) {
  const states = Object.entries(tenant.served);
  const behind = states.filter(([, state]) => state === "behind").map(([region]) => region);
  if (behind.length) return [`behind in ${behind.join(", ")}`, "warn served"];
  const served = states.filter(([, state]) => state === "current").map(([region]) => region);
  return [served.length ? served.join(", ") : "–", "served"];
}

function renderTenants() {
  const tenants = model.tenants;
  const count = model.tenants_matched === model.tenants_total
    ? `${model.tenants_total} tenants`
    : `${model.tenants_matched} of ${model.tenants_total} tenants`;
  document.getElementById("tenant-count").textContent =
    tenants.length < model.tenants_matched ? `${count} (showing ${tenants.length}; search to narrow)` : count;
  fill(document.getElementById("tenants"),
    ["Tenant", "Status", "configVersion", "Home", "Epoch", "Pins", "Served in", "Canary", "Move", "Failover", "Shard"],
    tenants.map((tenant) => ({
      source: tenant,
      cells: [
        tenant.id, [tenant.status, tenant.status === "active" ? "status" : "warn status"],
        [tenant.config_version, "num config-version"], [tenant.home, "home"], [tenant.epoch, "num epoch"],
        [tenant.pins.join(", ") || "any", "pins"], servedCell(tenant),
        [tenant.canary ?? "–", "canary"], [tenant.moving ? `${tenant.moving.step} → ${tenant.moving.to}` : "–", "move"],
        [tenant.failing_over_to ? `fenced → ${tenant.failing_over_to}` : "–", tenant.failing_over_to ? "warn failover" : "failover"],
        tenant.shard || "(default)",
      ],
    })),
    (tenant) => ({
      "data-tenant": tenant.id,
      class: tenant.id === selected ? "selectable selected" : "selectable",
      onclick: () => { location.hash = `#tenants/${tenant.id}`; },
    }));
  renderDetail();
}

function renderDetail() {
  const detail = document.getElementById("tenant-detail");
  const tenant = selected && model.tenants.find((candidate) => candidate.id === selected);
  if (!tenant) { detail.hidden = true; return; }
  detail.hidden = false;
  detail.dataset.tenant = tenant.id;
  document.getElementById("detail-title").textContent = tenant.id;
  const facts = [
    ["configVersion", tenant.config_version], ["Record revision", tenant.mod_revision], ["Home region", tenant.home],
    ["DR region", tenant.dr || "–"], ["Epoch", tenant.epoch], ["Pins", tenant.pins.join(", ") || "any region"],
    ["Canary", tenant.canary ?? "none"], ["Move", tenant.moving ? `${tenant.moving.step}: ${tenant.moving.from || "(default)"} → ${tenant.moving.to}` : "none"],
    ["Failover", tenant.failing_over_to ? `fenced for ${tenant.failing_over_to}` : "none"],
    ["Served", Object.entries(tenant.served).map(([region, state]) => `${region}: ${state}`).join(" · ") || "–"],
  ];
  document.getElementById("detail-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  if (shownHistoryRevision !== `${tenant.id}@${tenant.mod_revision}`) {
    shownHistoryRevision = `${tenant.id}@${tenant.mod_revision}`;
    loadHistory(tenant.id);
  }
}

// A value as JSON, cut at 200 characters (a data: URL logo is long).
function json(value) {
  if (value === undefined || value === null) return "∅";
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

async function loadHistory(tenant) {
  const list = document.getElementById("history");
  const response = await fetch(`/api/history/${encodeURIComponent(tenant)}`);
  const body = await response.json();
  if (selected !== tenant) return;
  if (!response.ok) { list.replaceChildren(el("li", { class: "bad" }, body.detail || response.statusText)); return; }
  list.replaceChildren(...body.entries.map((entry) => el("li", { class: "entry", "data-revision": entry.revision },
    el("div", {}, el("strong", {}, `r${entry.revision} ${entry.summary}`), " · ", entry.actor || "unknown",
      entry.reason ? ` · “${entry.reason}”` : "", " · ", el("span", { class: "muted" }, new Date(entry.at_unix_ms).toISOString())),
    entry.changes === null ? el("div", { class: "muted change" }, "no document changes shown") :
      entry.changes.map((change) => el("div", { class: "change", "data-pointer": `${change.document}${change.pointer}` },
        `${change.document}${change.pointer || ""}: `, el("span", { class: "before" }, json(change.before)), " → ",
        el("span", { class: "after" }, json(change.after)))),
    entry.changes && entry.changes_total > entry.changes.length ? el("div", { class: "muted" }, `… and ${entry.changes_total - entry.changes.length} more`) : null)));
  list.dataset.loaded = `${tenant}@${body.revision}`;
}

function renderAgents(agents, drift) {
  const regions = [...new Set(agents.map((agent) => agent.region))].sort();
  const driftText = drift.agents.length || drift.tenants.length
    ? `Drift: ${drift.agents.length} agents behind for over ${drift.bound_ms / 1000} s${drift.agents.length ? ` (${drift.agents.join(", ")})` : ""}; ${drift.tenants.length} tenants served at different versions across regions`
    : `No drift (bound ${drift.bound_ms / 1000} s)`;
  const driftLine = document.getElementById("drift");
  driftLine.textContent = driftText;
  driftLine.className = drift.agents.length || drift.tenants.length ? "drift bad" : "drift good";
  document.getElementById("agents").replaceChildren(...regions.map((region) => {
    const table = el("table");
    const members = agents.filter((agent) => agent.region === region);
    fill(table, ["Agent", "Kind", "Node", "Connected", "Acked revision", "Lag", "Last ack", "Last NACK", "Drift"],
      members.map((agent) => ({
        source: agent,
        cells: [
          agent.agent_id, agent.kind, agent.node_id, [agent.connected ? `since ${ago(agent.since_unix_ms)}` : `no (${ago(agent.since_unix_ms)})`, agent.connected ? "good" : "bad"],
          [agent.acked_revision, "num acked"], [agent.lag, agent.lag ? "num warn lag" : "num lag"], ago(agent.last_ack_unix_ms),
          [agent.last_nack ? `r${agent.last_nack.revision} ${agent.last_nack.tenant}: ${agent.last_nack.reason} (${ago(agent.last_nack.at_unix_ms)})` : "–", agent.last_nack ? "bad nack" : "nack"],
          [agent.drifting ? `behind since ${ago(agent.behind_since_unix_ms)}` : "–", agent.drifting ? "bad drift" : "drift"],
        ],
      })),
      (agent) => ({ "data-agent": agent.agent_id }));
    return el("div", { class: "region", "data-region": region },
      el("h2", {}, `${region}: ${members.filter((agent) => agent.connected).length} of ${members.length} connected`), table);
  }));
}

function listOrNone(container, items, render) {
  container.replaceChildren(items.length ? el("ul", {}, items.map(render)) : el("p", { class: "muted" }, "none"));
}

function renderOperations(operations, drift) {
  const rollout = document.getElementById("rollout");
  if (operations.rollout) {
    const r = operations.rollout;
    rollout.replaceChildren(
      el("p", { class: "warn" }, `revision ${r.revision}: acknowledged by ${r.acked} of ${r.connected} connected agents`),
      el("ul", {}, Object.entries(r.regions).map(([region, [acked, connected]]) => el("li", {}, `${region}: ${acked} of ${connected}`))),
      el("p", {}, `${r.pending_total} ${r.pending_total === 1 ? "tenant" : "tenants"} not yet applied everywhere: `,
        r.pending.map(([tenant, version]) => `${tenant} (v${version})`).join(", ")));
  } else {
    rollout.replaceChildren(el("p", { class: "good" }, "every connected agent has acknowledged the newest revision"));
  }
  listOrNone(document.getElementById("failovers"), operations.failovers,
    (f) => el("li", { "data-tenant": f.tenant }, `${f.tenant}: ${f.from} → ${f.to}, fenced (epoch ${f.epoch}), waiting for the commit`));
  listOrNone(document.getElementById("moves"), operations.moves,
    (m) => el("li", { "data-tenant": m.tenant }, `${m.tenant}: ${m.from || "(default)"} → ${m.to}, ${m.step}`));
  listOrNone(document.getElementById("canaries"), operations.canaries,
    ([tenant, version]) => el("li", { "data-tenant": tenant }, `${tenant}: configVersion ${version} staged`));
  listOrNone(document.getElementById("drift-tenants"), drift.tenants,
    (t) => el("li", { "data-tenant": t.tenant }, `${t.tenant}: configVersion ${t.config_version} not applied in ${t.behind_in.join(", ")} since ${ago(t.since_unix_ms)}`));
  const count = (operations.rollout ? 1 : 0) + operations.failovers.length + operations.moves.length + operations.canaries.length;
  document.getElementById("operations-count").textContent = count || "";
}

function render() {
  if (!model) return;
  renderCluster(model.cluster);
  renderRegions(model.regions, model.shards);
  renderTenants();
  renderAgents(model.agents, model.drift);
  renderOperations(model.operations, model.drift);
  document.getElementById("problems").replaceChildren(...model.problems.map((problem) => el("li", {}, problem)));
  const status = document.getElementById("status");
  status.textContent = `live · read ${new Date(model.at_unix_ms).toLocaleTimeString()}`;
  status.className = "status";
  document.body.dataset.at = model.at_unix_ms;
}

function connect() {
  if (source) source.close();
  source = new EventSource(`/events?q=${encodeURIComponent(search)}`);
  source.addEventListener("model", (event) => { model = JSON.parse(event.data); render(); });
  source.onerror = () => {
    const status = document.getElementById("status");
    status.textContent = "connection lost; reconnecting…";
    status.className = "status stale";
  };
}

function route() {
  const [view, tenant] = (location.hash.slice(1) || "cluster").split("/");
  const active = views.includes(view) ? view : "cluster";
  for (const name of views) {
    document.getElementById(`view-${name}`).classList.toggle("active", name === active);
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === active);
  }
  const wanted = active === "tenants" && tenant ? decodeURIComponent(tenant) : null;
  if (wanted !== selected) { selected = wanted; shownHistoryRevision = null; }
  render();
}

document.getElementById("search").addEventListener("input", (event) => {
  search = event.target.value.trim().toLowerCase();
  connect();
});
window.addEventListener("hashchange", route);
route();
connect();
