/* The tenant list, a page at a time, filtered by state.
 *
 * `page({state, cursor, limit})` answers `{tenants, next, total}`: the tenants of one page,
 * the cursor of the next page (null on the last) and how many tenants match. Today
 * ListTenants answers every tenant, so the pages are cut here from one reply; when the
 * daemon pages ListTenants itself (state, cursor, limit), only this module changes.
 */

export const STATES = [
    "unlicensed", "active", "expiring", "expired", "invalid", "needs_reactivation", "needs_transfer",
];

export class TenantSource {
    constructor(varlink) {
        this.varlink = varlink;
        this.loading = null; /* the ListTenants reply being read or read, sorted by tenant */
    }

    /* Forget what was read: the next page reads the daemon again. */
    invalidate() {
        this.loading = null;
    }

    load() {
        if (this.loading === null) {
            const loading = this.varlink.call("ListTenants", {}).then(
                reply => (reply.tenants || []).slice()
                        .sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0)),
                error => {
                    if (this.loading === loading)
                        this.loading = null; /* the next look tries again */
                    throw error;
                });
            this.loading = loading;
        }
        return this.loading;
    }

    /* How many tenants are in each state, and in total. */
    async counts() {
        const counts = { total: 0 };
        for (const state of STATES)
            counts[state] = 0;
        for (const tenant of await this.load()) {
            counts[tenant.state] = (counts[tenant.state] || 0) + 1;
            counts.total += 1;
        }
        return counts;
    }

    async page({ state = null, cursor = null, limit = 20 } = {}) {
        const matching = (await this.load()).filter(t => !state || t.state === state);
        /* The cursor is the last tenant of the previous page: stable while tenants come and go. */
        const start = cursor === null ? 0 : matching.findIndex(t => t.tenant > cursor);
        const from = start < 0 ? matching.length : start;
        const tenants = matching.slice(from, from + limit);
        const more = from + limit < matching.length;
        return {
            tenants,
            next: more && tenants.length ? tenants[tenants.length - 1].tenant : null,
            total: matching.length,
            offset: from,
        };
    }
}
