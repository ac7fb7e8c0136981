/* The License page: every tenant's license, the product's "Change existing license" flow
 * (reactivate online or offline, activate with a key, transfer from a replaced node), the
 * tenant check, the cluster's nodes and the notification center. Everything comes from the
 * daemon's control socket (varlink.js); Watch keeps the page current without polling.
 *
 * Location options (the part after "#" in the page's address, e.g. "#/?socket=/run/x"):
 *   socket   the control socket, when it is not /run/paragon-licensed/io.paragon.License
 *   tenant   the tenant shown first
 */

import { $, h, fill, show, download } from "./dom.js";
import { sentence } from "./errors.js";
import { STATES, TenantSource } from "./tenants.js";
import { DEFAULT_SOCKET, Unreachable, Varlink, VarlinkError } from "./varlink.js";

const PAGE_SIZE = 20;
const NOTIFICATIONS_SHOWN = 50;
const MAX_FILE = 1024 * 1024; /* as ctl: a larger file is no license and no response */
/* Events arriving together cause one refresh, and a burst of them (a tenant check over many
 * tenants) at most one a second. */
const DEBOUNCE_MS = 150;
const REFRESH_INTERVAL_MS = 1000;

function option(name) {
    const value = cockpit.location.options[name];
    return Array.isArray(value) ? value[0] : value;
}

const socket = option("socket") || DEFAULT_SOCKET;
const varlink = new Varlink(socket);
const source = new TenantSource(varlink);

const state = {
    filter: "", /* a state, or "" for every tenant */
    cursors: [null], /* the cursor of each page seen, to go back */
    page: null,
    selected: option("tenant") || null,
    license: null,
    licenseError: null,
    licenseFor: null, /* the tenant whose license (or error) was read last */
    licenseSeq: 0,
    facts: null, /* the selected tenant's ListTenants entry: state, reason, grace */
    status: null,
    nodes: [],
    notifications: [],
    busy: false,
    licenseShown: false,
    watch: null,
    watchRetry: 1000,
    pending: new Set(),
    timer: null,
    flushed: 0,
};

/* -- formatting */

function when(timestamp) {
    return timestamp ? timestamp.replace("T", " ").replace("Z", " UTC") : "–";
}

function words(name) {
    return name ? name.replace(/_/g, " ") : "";
}

function daysUntil(timestamp) {
    return Math.floor((Date.parse(timestamp) - Date.now()) / 86400000);
}

function ago(seconds) {
    if (seconds < 90)
        return `${Math.round(seconds)} s ago`;
    if (seconds < 5400)
        return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
}

function badge(name) {
    return h("span", { class: `badge state-${name}`, data: { state: name } }, words(name));
}

function message(error) {
    return error instanceof Error ? error.message : String(error);
}

/* -- the cluster: this node, the coordinator, the nodes, what blocks a reactivation */

async function refreshCluster() {
    const [status, nodes] = await Promise.all([
        varlink.call("GetStatus", {}),
        varlink.call("ListNodes", {}),
    ]);
    state.status = status.status;
    state.nodes = nodes.nodes || [];
    renderCluster();
    renderLicense(); /* the node names of the computer IDs, the grace period */
}

function renderCluster() {
    const s = state.status;
    if (s) {
        fill("cluster-summary",
             h("span", {}, "Node ", h("strong", { id: "node-name" }, s.node)),
             h("span", {}, "Coordinator ", h("strong", { id: "coordinator" }, s.coordinator || "none")),
             h("span", {}, `Store ${s.store_backend} `,
               h("strong", { id: "store-state" }, s.store_available ? "available" : "unavailable")),
             h("span", { id: "activity" }, s.activity),
             h("span", {}, `paragon-licensed ${s.version}`));
    }
    fill("nodes-body", state.nodes.map(n =>
        h("tr", { data: { node: n.name, online: String(n.online) } },
          h("th", { scope: "row" }, n.name, n.this_node ? h("span", { class: "muted" }, " (this node)") : null),
          h("td", { class: "node-online" },
            h("span", { class: n.online ? "badge state-active" : "badge state-expired" },
              n.online ? "online" : "offline")),
          h("td", { class: "node-last-seen" }, when(n.last_seen),
            n.online ? null : h("span", { class: "muted" }, ` (${ago((Date.now() - Date.parse(n.last_seen)) / 1000)})`)),
          h("td", { class: "node-coordinator" }, n.coordinator ? "coordinator" : ""),
          h("td", {}, n.build || "–"),
          h("td", { class: "mono" }, n.computer_id),
          h("td", { class: "node-problem" }, n.problem || ""))));
    const items = blockers();
    fill("blockers", items.length
        ? items.map(text => h("li", {}, text))
        : h("li", { class: "ok" }, "Nothing blocks a reactivation: every node is online."));
    $("blockers").dataset.count = String(items.length);
}

/* What keeps a reactivation from working now, in the daemon's words. */
function blockers() {
    const items = [];
    const offline = state.nodes.filter(n => !n.online);
    if (offline.length) {
        items.push(sentence("io.paragon.License.NodesOffline", {
            nodes: offline.map(n => ({ name: n.name, computer_id: n.computer_id, last_seen: n.last_seen })),
        }));
    }
    for (const n of state.nodes) {
        if (n.problem)
            items.push(`${n.name}: ${n.problem}`);
    }
    const s = state.status;
    if (s) {
        for (const key of ["store_problem", "build_problem", "state_problem", "clock_problem"]) {
            if (s[key])
                items.push(s[key]);
        }
        for (const problem of s.problems || [])
            items.push(typeof problem === "string" ? problem : problem.message || JSON.stringify(problem));
        if (!s.coordinator)
            items.push("No node holds the coordinator lease: operations wait until one does.");
    }
    return items;
}

/* -- tenants: a page at a time, filtered by state */

async function refreshTenants() {
    const cursor = state.cursors[state.cursors.length - 1];
    const offset = (state.cursors.length - 1) * PAGE_SIZE;
    const [page, counts] = await Promise.all([
        source.page({ state: state.filter || null, cursor, limit: PAGE_SIZE, offset }),
        source.counts(),
    ]);
    if (!page.tenants.length && state.cursors.length > 1) { /* the page emptied: back to the first */
        state.cursors = [null];
        return refreshTenants();
    }
    state.page = page;
    if (!state.selected && page.tenants.length) {
        /* Nothing chosen yet (the list was empty when the page came, say): the first tenant. */
        state.selected = page.tenants[0].tenant;
        refreshLicense().catch(problem);
    }
    renderTenants(page, counts);
    return page;
}

function renderTenants(page, counts) {
    const select = $("tenant-filter");
    const chosen = state.filter;
    fill(select,
         h("option", { value: "" }, `every state (${counts.total})`),
         STATES.filter(s => counts[s] || s === chosen)
                 .map(s => h("option", { value: s }, `${words(s)} (${counts[s] || 0})`)));
    select.value = chosen;
    fill("tenants-body", page.tenants.map(t =>
        h("tr", {
            data: { tenant: t.tenant, state: t.state },
            class: t.tenant === state.selected ? "selected" : null,
            tabindex: "0",
            onclick: () => select_(t.tenant),
            onkeydown: event => { if (event.key === "Enter") select_(t.tenant); },
        },
          h("th", { scope: "row" }, t.tenant),
          h("td", {}, badge(t.state)),
          h("td", {}, when(t.valid_until)),
          h("td", { class: "mono" }, t.support_id || "–"))));
    const first = page.total ? page.offset + 1 : 0;
    fill("tenants-range", `${first}–${page.offset + page.tenants.length} of ${page.total}`);
    $("tenants-previous").disabled = state.cursors.length <= 1;
    $("tenants-next").disabled = page.next === null;
}

function select_(tenant) {
    state.selected = tenant;
    for (const row of $("tenants-body").children)
        row.classList.toggle("selected", row.dataset.tenant === tenant);
    refreshLicense().catch(problem);
}

/* -- the selected tenant's license */

async function refreshLicense() {
    const tenant = state.selected;
    const seq = ++state.licenseSeq;
    if (!tenant) {
        renderLicense();
        return;
    }
    let license = null;
    let error = null;
    let facts = null;
    try {
        [license, facts] = await Promise.all([
            varlink.call("GetLicense", { tenant }).then(reply => reply.license),
            source.one(tenant),
        ]);
    } catch (exc) {
        error = exc;
        facts = await source.one(tenant).catch(() => null);
    }
    if (seq !== state.licenseSeq)
        return; /* another tenant was chosen meanwhile */
    state.facts = facts;
    state.license = license;
    state.licenseError = error;
    state.licenseFor = tenant;
    renderLicense();
}

/* The tenant's state, reason, days left and grace (its ListTenants entry). */
function tenantFacts(tenant) {
    return state.facts && state.facts.tenant === tenant ? state.facts : null;
}

function renderLicense() {
    const tenant = state.selected;
    fill("license-tenant", tenant || "no tenant");
    const card = $("license");
    const current = state.licenseFor === tenant;
    const lic = current ? state.license : null;
    card.dataset.tenant = tenant || "";
    card.dataset.state = lic ? lic.state : "";
    card.dataset.licenseId = lic ? lic.license_id : "";
    card.dataset.validUntil = lic ? lic.valid_until : "";
    if (!tenant) {
        fill(card, h("p", {}, "There is no tenant yet: create one with `paragon-licensed ctl tenants set TENANT`."));
        return;
    }
    if (!lic) {
        const error = current ? state.licenseError : null;
        fill(card, error
            ? h("p", { class: error instanceof VarlinkError && error.shortName === "NotActivated" ? "" : "error",
                       id: "license-error" }, message(error))
            : h("p", { class: "muted" }, "Loading…"));
        return;
    }
    if (!state.licenseShown) { /* for bench/cockpit_page.py: from navigation to the license shown */
        state.licenseShown = true;
        performance.mark("license-shown");
    }
    const facts = tenantFacts(tenant);
    const days = facts && facts.days_left !== null && facts.days_left !== undefined
        ? facts.days_left : daysUntil(lic.valid_until);
    const names = new Map(state.nodes.map(n => [n.computer_id, n.name]));
    const rows = [
        ["State", h("span", { id: "license-state" }, badge(lic.state))],
        ["", h("span", { id: "license-reason", class: "muted" }, lic.reason)],
        ["Valid until", h("span", { id: "license-valid-until" }, when(lic.valid_until))],
        ["Days left", h("span", { id: "license-days-left" }, String(days))],
    ];
    if (facts && facts.grace_until) {
        rows.push(["Grace", h("span", { id: "license-grace" },
                               `until ${when(facts.grace_until)} (${facts.grace_days_left} days left)`)]);
    }
    rows.push(
        ["Support ID", h("span", { id: "license-support-id", class: "mono" }, lic.support_id)],
        ["License ID", h("span", { id: "license-id", class: "mono" }, lic.license_id)],
        ["Issued", when(lic.issued_at)],
        ["Build", lic.build],
        ["Integrity key", h("span", { class: "mono wrap" }, lic.integrity_key)],
        ["Computer IDs", h("ul", { id: "license-computer-ids", class: "plain" }, lic.computer_ids.map(id =>
            h("li", {}, h("span", { class: "mono" }, id), " ",
              h("span", { class: "muted" }, names.has(id) ? names.get(id) : "no current node"))))],
    );
    fill(card,
         h("dl", { class: "facts" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
         h("table", { class: "table", id: "license-orders" },
           h("caption", {}, "Orders"),
           h("thead", {}, h("tr", {}, ["Order", "Product", "Quantity", "Valid until", "Features"].map(
               title => h("th", { scope: "col" }, title)))),
           h("tbody", {}, lic.orders.map(o => h("tr", {},
                                               h("td", { class: "mono nowrap" }, o.order_id),
                                               h("td", {}, o.product),
                                               h("td", {}, String(o.quantity)),
                                               h("td", { class: "nowrap" }, when(o.valid_until)),
                                               h("td", {}, Object.entries(o.features).sort()
                                                       .map(([k, v]) => `${k}=${v}`).join(", ") || "–"))))));
    /* Computer IDs of the license that belong to no current node: what a transfer replaces. */
    fill("transfer-candidates", lic.computer_ids.filter(id => !names.has(id)).map(id => h("option", { value: id })));
}

/* -- the notification center */

async function refreshNotifications() {
    const reply = await varlink.call("ListNotifications", {});
    state.notifications = (reply.notifications || []).slice().sort((a, b) => b.id - a.id);
    renderNotifications();
}

function addNotification(notification) {
    if (!notification || state.notifications.some(n => n.id === notification.id))
        return;
    state.notifications.unshift(notification);
    state.notifications.sort((a, b) => b.id - a.id);
    renderNotifications();
    performance.mark("notification-shown", { detail: notification.id }); /* bench/cockpit_page.py */
}

function renderNotifications() {
    const unread = state.notifications.filter(n => !n.acked);
    fill("notifications-unread", unread.length ? `${unread.length} unread` : "all read");
    $("notifications-ack-all").disabled = !unread.length || state.busy;
    const shown = state.notifications.slice(0, NOTIFICATIONS_SHOWN);
    fill("notifications-list", shown.length
        ? shown.map(n => h("li", {
            class: `notification severity-${n.severity}${n.acked ? " acked" : ""}`,
            data: { id: String(n.id), kind: n.kind, acked: String(n.acked) },
        },
                           h("div", { class: "notification-head" },
                             h("span", { class: `badge severity-${n.severity}` }, n.severity),
                             h("strong", { class: "notification-title" }, n.title),
                             h("span", { class: "muted" }, ` ${when(n.at)}${n.tenant ? ` · tenant ${n.tenant}` : ""}`),
                             n.acked
                                 ? h("span", { class: "muted notification-read" }, " · read")
                                 : h("button", {
                                     class: "link ack",
                                     type: "button",
                                     onclick: () => acknowledge([n.id]),
                                 }, "Acknowledge")),
                           h("p", { class: "notification-text" }, n.text)))
        : h("li", { class: "muted" }, "No notifications."));
    const hidden = state.notifications.length - shown.length;
    fill("notifications-more", hidden > 0 ? `${hidden} older notification(s) not shown.` : "");
}

async function acknowledge(ids) {
    if (!ids.length)
        return;
    fill("notifications-error");
    try {
        await varlink.call("AckNotifications", { ids });
    } catch (error) {
        fill("notifications-error", message(error));
    }
    await refreshNotifications().catch(problem);
}

/* -- operations: one at a time, its steps streamed as they happen */

function setBusy(busy) {
    state.busy = busy;
    $("operation-close").hidden = busy;
    for (const button of document.querySelectorAll("button.change"))
        button.disabled = busy;
    $("offline-response").disabled = busy;
    renderNotifications();
}

const STEPS_SHOWN = 200; /* a tenant check over many tenants: its latest steps */

function addStep(step) {
    const steps = $("operation-steps");
    steps.append(h("li", {}, h("span", { class: "muted" }, `${when(step.at)} `), step.message));
    while (steps.children.length > STEPS_SHOWN)
        steps.firstElementChild.remove();
}

async function runOperation(title, fn) {
    if (state.busy)
        return;
    setBusy(true);
    const card = $("operation");
    card.dataset.seq = String(Number(card.dataset.seq || 0) + 1);
    card.dataset.state = "running";
    delete card.dataset.error;
    delete card.dataset.download;
    fill("operation-title", title);
    fill("operation-steps");
    fill("operation-result");
    fill("operation-error");
    fill("operation-details");
    show("operation-progress", false);
    show(card, true);
    try {
        const result = await fn();
        fill("operation-result", result || "Done.");
        card.dataset.state = "done";
    } catch (error) {
        fill("operation-error", message(error));
        card.dataset.error = error instanceof VarlinkError ? error.shortName
            : error instanceof Unreachable ? "Unreachable" : "Input";
        card.dataset.state = "failed";
    } finally {
        setBusy(false);
        refreshAll().catch(problem);
    }
}

function outcomeText(outcome, verb) {
    const lic = outcome.license;
    const lines = [];
    if (outcome.changed === false)
        lines.push(`Tenant ${outcome.tenant}: nothing changed.`);
    else if (lic)
        lines.push(`Tenant ${outcome.tenant}: ${verb}. License ${lic.license_id}, ` +
                   `${lic.orders.length} order(s), valid until ${when(lic.valid_until)}.`);
    for (const warning of outcome.warnings || [])
        lines.push(`Warning: ${warning}`);
    return lines.join(" ");
}

function streamed(reply) {
    if (reply.step)
        addStep(reply.step);
}

function requireTenant() {
    if (!state.selected)
        throw new Error("Choose a tenant first.");
    return state.selected;
}

function saveRequest(request) {
    const name = `paragon-license-request-${request.tenant}-${request.kind}-${request.request_id}.txt`;
    download(name, request.document);
    return name;
}

function offlineNext(names) {
    return `Offline request saved as ${names.join(", ")}. On a machine that reaches the License ` +
        "Portal, upload it on the portal's offline activation page (/offline), save the response it " +
        "gives you, then install that response here (\"Install a response or license file\").";
}

function reactivateOnline() {
    runOperation(`Reactivate tenant ${state.selected} online`, async () => {
        const tenant = requireTenant();
        const reply = await varlink.call("Reactivate", { tenant, mode: "online" }, { onReply: streamed });
        return outcomeText(reply.outcome, "reactivated");
    });
}

function reactivateOffline() {
    runOperation(`Reactivate tenant ${state.selected} offline`, async () => {
        const tenant = requireTenant();
        const reply = await varlink.call("Reactivate", { tenant, mode: "offline" });
        const name = saveRequest(reply.request);
        $("operation").dataset.download = name;
        return offlineNext([name]);
    });
}

function activate(event) {
    event.preventDefault();
    const key = $("activation-key").value.trim();
    runOperation(`Activate tenant ${state.selected} with a key`, async () => {
        const tenant = requireTenant();
        if (!key)
            throw new Error("Enter the activation key of the order.");
        const reply = await varlink.call("Activate", { tenant, activation_key: key }, { onReply: streamed });
        $("activation-key").value = "";
        return outcomeText(reply.outcome, "activated");
    });
}

function transfer(event) {
    event.preventDefault();
    const replace = $("transfer-from").value.trim();
    const mode = $("transfer-mode").value;
    runOperation(`Transfer tenant ${state.selected} from ${replace || "a replaced node"} (${mode})`, async () => {
        const tenant = requireTenant();
        if (!replace)
            throw new Error("Enter the computer ID of the replaced node (the license lists them).");
        const parameters = { replace_computer_id: replace, mode, tenant };
        if (mode === "offline") {
            const reply = await varlink.call("Transfer", parameters);
            return offlineNext(reply.requests.map(saveRequest));
        }
        const reply = await varlink.call("Transfer", parameters, { onReply: streamed });
        return reply.outcomes.map(o => outcomeText(o, "transferred")).join(" ");
    });
}

function installFile() {
    const input = $("offline-response");
    const file = input.files && input.files[0];
    if (!file)
        return;
    runOperation(`Install ${file.name}`, async () => {
        input.value = "";
        if (file.size > MAX_FILE)
            throw new Error(`${file.name} is larger than 1 MiB: it is not a license or response file`);
        const text = await file.text();
        const reply = await varlink.call("ImportLicense", { document: text }, { onReply: streamed });
        return outcomeText(reply.outcome, "license imported");
    });
}

function runCheck() {
    runOperation("Tenant check", async () => {
        const progress = $("operation-progress");
        const onReply = reply => {
            const p = reply.progress;
            if (!p)
                return;
            show(progress, true);
            progress.max = Math.max(p.total, 1);
            progress.value = p.done;
            progress.dataset.done = String(p.done);
            progress.dataset.total = String(p.total);
            if (p.tenant)
                addStep({ at: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
                          message: `${p.done}/${p.total} ${p.tenant}: ${words(p.outcome)}` });
        };
        const reply = await varlink.call("RunTenantCheck", {}, { onReply });
        const results = reply.results || [];
        const count = outcome => results.filter(r => r.outcome === outcome).length;
        const looked = reply.looked_at ?? null;
        const line = r => `${r.tenant}: ${r.outcome}` +
            (r.valid_until ? `, valid until ${when(r.valid_until)}` : "") + (r.reason ? ` (${r.reason})` : "");
        const capped = list => list.slice(0, 100).map(r => h("li", { class: r.outcome === "failed" ? "error" : "" },
                                                          line(r)))
                .concat(list.length > 100 ? [h("li", { class: "muted" }, `… and ${list.length - 100} more.`)] : []);
        const skipped = results.filter(r => r.outcome === "skipped");
        fill("operation-details",
             capped(results.filter(r => r.outcome !== "skipped")),
             skipped.length
                 ? h("li", {}, h("details", {}, h("summary", {}, `${skipped.length} skipped`),
                                 h("ul", { class: "plain" }, capped(skipped))))
                 : null);
        const parts = [];
        if (!results.length && !reply.note) {
            parts.push(looked === null
                ? "No tenant was due (expired, expiring or not properly licensed)."
                : `${looked === 1 ? "1 tenant was" : `${looked} tenants were`} looked at; none was due ` +
                  "(expired, expiring or not properly licensed).");
        } else {
            parts.push(`${count("reactivated")} reactivated, ${count("failed")} failed, ${count("skipped")} skipped.`);
            if (reply.note)
                parts.push(`The check stopped early: ${reply.note}`);
            if (looked !== null)
                parts.push(`${looked} tenant(s) looked at.`);
        }
        if (reply.next_run)
            parts.push(`The next scheduled run is at ${when(reply.next_run)}.`);
        return parts.join(" ");
    });
}

/* -- live updates */

function startWatch() {
    state.watch = varlink.watch(onEvent, error => {
        state.watch = null;
        fill("connection", `Live updates stopped (${error ? message(error) : "the daemon ended the stream"}); ` +
             "reconnecting…");
        show("connection", true);
        setTimeout(() => {
            startWatch();
            resync(1000);
        }, state.watchRetry);
        state.watchRetry = Math.min(state.watchRetry * 2, 10000);
    });
}

/* Read everything again after the stream came back, until every read answers: a daemon
 * that has just started may not have its store open yet. */
function resync(delay) {
    refreshAll().catch(error => {
        problem(error);
        if (state.watch !== null)
            setTimeout(() => resync(Math.min(delay * 2, 30000)), delay);
    });
}

function onEvent(event) {
    if (!event)
        return;
    state.watchRetry = 1000;
    switch (event.kind) {
    case "notification":
        /* A new license keeps its tenant's state (active stays active): its notification is
         * what says the license changed. */
        addNotification(event.notification);
        later("tenants");
        if (!event.tenant || event.tenant === state.selected)
            later("license");
        break;
    case "state_changed":
        later("tenants");
        if (event.tenant === state.selected)
            later("license");
        break;
    default: /* nodes_changed, coordinator_changed */
        later("cluster");
    }
}

function later(what) {
    state.pending.add(what);
    if (state.timer === null) {
        const wait = Math.max(DEBOUNCE_MS, state.flushed + REFRESH_INTERVAL_MS - Date.now());
        state.timer = setTimeout(flush, wait);
    }
}

function flush() {
    const pending = state.pending;
    state.pending = new Set();
    state.timer = null;
    state.flushed = Date.now();
    const work = [];
    if (pending.has("tenants"))
        work.push(refreshTenants());
    if (pending.has("license"))
        work.push(refreshLicense(), refreshCluster()); /* the grace period is in the status */
    else if (pending.has("cluster"))
        work.push(refreshCluster());
    Promise.all(work).catch(problem);
}

function problem(error) {
    fill("connection", message(error));
    show("connection", true);
}

async function refreshAll() {
    await Promise.all([
        showLicense(),
        refreshCluster(),
        refreshNotifications(),
    ]);
    if (state.watch !== null)
        show("connection", false); /* everything answered: whatever was reported is over */
}

/* -- start */

/* The tenant list, then the chosen tenant's license: the first tenant's until one is chosen. */
async function showLicense() {
    await refreshTenants();
    await refreshLicense();
}

function init() {
    fill("socket-path", socket);
    $("reactivate-online").addEventListener("click", reactivateOnline);
    $("reactivate-offline").addEventListener("click", reactivateOffline);
    $("activate-form").addEventListener("submit", activate);
    $("transfer-form").addEventListener("submit", transfer);
    $("offline-response").addEventListener("change", installFile);
    $("check-run").addEventListener("click", runCheck);
    $("operation-close").addEventListener("click", () => show("operation", false));
    $("notifications-ack-all").addEventListener("click", () =>
        acknowledge(state.notifications.filter(n => !n.acked).map(n => n.id)));
    $("tenant-filter").addEventListener("change", event => {
        state.filter = event.target.value;
        state.cursors = [null];
        refreshTenants().catch(problem);
    });
    $("tenants-next").addEventListener("click", () => {
        if (state.page && state.page.next !== null) {
            state.cursors.push(state.page.next);
            refreshTenants().catch(problem);
        }
    });
    $("tenants-previous").addEventListener("click", () => {
        if (state.cursors.length > 1) {
            state.cursors.pop();
            refreshTenants().catch(problem);
        }
    });

    /* In Cockpit's shell a link to this page with other options changes only the location. */
    cockpit.addEventListener("locationchanged", () => {
        if ((option("socket") || DEFAULT_SOCKET) !== socket)
            window.location.reload();
        else if (option("tenant") && option("tenant") !== state.selected)
            select_(option("tenant"));
    });

    /* How long ago an offline node was last seen grows by itself: no call needed for that. */
    setInterval(renderCluster, 30000);

    startWatch(); /* first, so that nothing happening during the first reads is missed */
    const loads = [showLicense(), refreshCluster(), refreshNotifications()];
    Promise.allSettled(loads).then(results => {
        const failed = results.find(r => r.status === "rejected");
        if (failed)
            problem(failed.reason);
        document.body.dataset.loaded = "true";
    });
}

init();
