/* The sentence a person reads for each error of the control socket: the same words as
 * `paragon-licensed ctl` prints (common/interface/errors.py; a test compares the two). */

const CTL = "paragon-licensed ctl";

function p(parameters, key, fallback = "") {
    const value = parameters[key];
    return value === undefined || value === null ? fallback : value;
}

function list(value, each) {
    return Array.isArray(value) ? value.map(each).join(", ") : "";
}

function unreachable(q) {
    return `The License Portal at ${p(q, "url")} could not be reached (${p(q, "reason")}). ` +
        "Check the network and portal.url, or use offline activation: " +
        `\`${CTL} license reactivate --offline --out request.txt\`.`;
}

export const SENTENCES = {
    "io.paragon.License.NodesOffline": q => {
        const nodes = p(q, "nodes", []);
        const listed = list(Array.isArray(nodes) ? nodes.filter(n => n && typeof n === "object") : [],
                            n => `${n.name} (last seen ${n.last_seen || "never"})`);
        return `Cluster (re)activation needs every management node online; offline: ${listed}. ` +
            "Bring the node back, or if it is gone for good run " +
            `\`${CTL} nodes forget NAME\` and then \`${CTL} license transfer --replace COMPUTER_ID\`.`;
    },
    "io.paragon.License.PortalUnreachable": unreachable,
    "io.paragon.License.PortalRejected": q =>
        `The License Portal refused the request (${p(q, "code")}): ${p(q, "message")}`,
    "io.paragon.License.PortalBadAnswer": q =>
        `The License Portal at ${p(q, "url")} sent an answer the daemon cannot use ` +
        `(${p(q, "reason")}). Check that portal.url points at the License Portal API ` +
        "(for example behind a proxy that answers with its own page), then try again.",
    "io.paragon.License.PortalRedirected": q =>
        `The License Portal at ${p(q, "url")} answered with a redirect to ` +
        `${p(q, "location")}; the daemon never follows one, so that no activation key ` +
        "goes where it was not configured to go. If the portal has moved, set portal.url to " +
        "its new address and reload the daemon (systemctl reload paragon-licensed).",
    "io.paragon.License.PortalNotConfigured": () =>
        "No License Portal is configured: set portal.url in the configuration, " +
        "or use offline activation (--offline --out FILE).",
    "io.paragon.License.InvalidLicense": q =>
        `The license was rejected (${p(q, "reason")}): ${p(q, "detail")}`,
    "io.paragon.License.IntegrityMismatch": q =>
        `The license is bound to integrity key ${p(q, "actual")}, but this installation's ` +
        `is ${p(q, "expected")}: it belongs to another installation or node set. ` +
        `Reactivate (\`${CTL} license reactivate\`) or transfer the license.`,
    "io.paragon.License.NeedsTransfer": q =>
        `Tenant ${p(q, "tenant")}: the license belongs to another computer ID ` +
        `(${p(q, "changed")}); it must be transferred: \`${p(q, "command")}\`.`,
    "io.paragon.License.PermissionDenied": q => {
        const group = p(q, "required_group");
        return `Permission denied: ${p(q, "method")} changes the license state and needs root ` +
            `or membership in the group '${group}' (as root: usermod -aG ${group} USER, ` +
            "then log in again).";
    },
    "io.paragon.License.NoSuchTenant": q =>
        `There is no tenant '${p(q, "tenant")}'; \`${CTL} tenants\` lists them.`,
    "io.paragon.License.TenantRequired": q => {
        const names = list(p(q, "tenants", []), String);
        if (!names)
            return `No tenant exists yet: create one with \`${CTL} tenants set TENANT\`.`;
        return `Several tenants exist (${names}); name one with --tenant.`;
    },
    "io.paragon.License.NotActivated": q => {
        const tenant = p(q, "tenant");
        return `Tenant ${tenant} has no license yet: activate it with ` +
            `\`${CTL} license activate --key ACTIVATION_KEY --tenant ${tenant}\`.`;
    },
    "io.paragon.License.NoSuchNode": q =>
        `There is no node '${p(q, "name")}'; \`${CTL} nodes\` lists them.`,
    "io.paragon.License.NodeOnline": q =>
        `Node ${p(q, "name")} is online (last seen ${p(q, "last_seen")}); only a node that is ` +
        "gone for good may be forgotten: stop it first.",
    "io.paragon.License.BuildUnknown": q =>
        `The product build is unknown (${p(q, "reason")}): set ${p(q, "key")} ` +
        'in the configuration (product.build = "X.Y.Z" or product.build_file = PATH).',
    "io.paragon.License.StoreUnavailable": q =>
        `The license store is unavailable (${p(q, "reason")}); the daemon keeps ` +
        "reconnecting. Check the database, then try again.",
    "io.paragon.License.DuplicateComputerId": q => {
        const names = list(p(q, "nodes", []), String);
        return `Nodes ${names} report the same computer ID ${p(q, "computer_id")} (a cloned ` +
            "machine?). Give each node its own machine-id (systemd-machine-id-setup), restart it, " +
            "then reactivate.";
    },
    "io.paragon.License.OperationTimeout": q =>
        `${p(q, "operation")} did not finish within ${p(q, "seconds")} s and was ` +
        "stopped (a slow or unreachable portal, or no coordinator). Check " +
        `\`${CTL} status\` and \`${CTL} license info --history\`, then try again.`,
    "io.paragon.License.ConnectionLimit": q => {
        const reached = `The daemon is busy: its connection limit is reached (scope ${p(q, "scope")}, ` +
            `${p(q, "limit")} connections).`;
        if (p(q, "scope") === "user")
            return `${reached} Close some of this user's clients (\`watch\` commands, scripts), then try again.`;
        return `${reached} Try again shortly; root and the admin group always have slots kept for them.`;
    },
    "io.paragon.License.MessageTooLarge": q =>
        `The message was larger than the daemon accepts (${p(q, "limit")} bytes, ` +
        "control.max_message); the connection was closed. Send a smaller document.",
    "io.paragon.License.InternalError": q =>
        "The daemon hit an internal error; its log (journalctl -u paragon-licensed) has the " +
        `details under reference ${p(q, "reference")}.`,
    "org.varlink.service.InvalidParameter": q => `Invalid parameter: ${p(q, "parameter")}.`,
    "org.varlink.service.MethodNotFound": q =>
        `The daemon does not know the method ${p(q, "method")}: is it an older version ` +
        "than this client?",
    "org.varlink.service.InterfaceNotFound": q =>
        `The daemon does not serve the interface ${p(q, "interface")}.`,
    "org.varlink.service.ExpectedMore": () =>
        'This method streams its replies: call it with "more": true.',
};

export function sentence(name, parameters) {
    const make = SENTENCES[name];
    return make ? make(parameters || {}) : `${name}: ${JSON.stringify(parameters || {})}`;
}
