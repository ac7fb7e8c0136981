/* The tenant list, a page at a time, filtered by state, paged by the daemon.
 *
 * `page({state, cursor, limit, offset})` answers `{tenants, next, total, offset}`: one
 * ListTenants page (each tenant with its state, dates and grace), the cursor of the next
 * page (null on the last), how many tenants match, and the position of the page's first
 * tenant (the caller counts the pages it walked). `counts()` reads GetStatus's counts per
 * state, so that a hundred thousand tenants are never read at once.
 */

export const STATES = [
    "unlicensed", "active", "expiring", "expired", "invalid", "needs_reactivation", "needs_transfer",
];

export class TenantSource {
    constructor(varlink) {
        this.varlink = varlink;
    }

    /* How many tenants are in each state, and in total. */
    async counts() {
        const status = (await this.varlink.call("GetStatus", {})).status;
        const counts = { total: status.tenant_total };
        for (const state of STATES)
            counts[state] = (status.tenant_states || {})[state] || 0;
        return counts;
    }

    async page({ state = null, cursor = null, limit = 20, offset = 0 } = {}) {
        const parameters = { limit };
        if (state)
            parameters.state = state;
        if (cursor !== null)
            parameters.cursor = cursor;
        const reply = await this.varlink.call("ListTenants", parameters);
        return {
            tenants: reply.tenants || [],
            next: reply.next_cursor || null,
            total: reply.total,
            offset,
        };
    }

    /* One tenant's entry (state, reason, dates, grace), or null. */
    async one(tenant) {
        const reply = await this.varlink.call("ListTenants", { tenant });
        return (reply.tenants || [])[0] || null;
    }
}
