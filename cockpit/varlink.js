/* Varlink over a Cockpit channel: the daemon's control socket, reached through cockpit-bridge.
 *
 * Each call opens a stream channel of its own to the unix socket (a connection of its own
 * to the daemon), sends one message and reads the replies: a varlink message is a JSON
 * object followed by a NUL byte. A text channel refuses that NUL byte, so the channel is
 * binary and the framing is done here. Calls with "more" stream their replies; Watch never
 * ends and is closed by its caller.
 *
 * The bridge runs as the user logged in to Cockpit, so the daemon checks that user's
 * credentials, exactly as it does for `paragon-licensed ctl`.
 */

import { sentence } from "./errors.js";

export const INTERFACE = "io.paragon.License";
export const DEFAULT_SOCKET = "/run/paragon-licensed/io.paragon.License";

const NUL = 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");

/* An error reply of the daemon: its varlink name, its parameters, and the sentence for a person. */
export class VarlinkError extends Error {
    constructor(error, parameters) {
        super(sentence(error, parameters || {}));
        this.error = error;
        this.parameters = parameters || {};
    }

    get shortName() {
        return this.error.slice(this.error.lastIndexOf(".") + 1);
    }
}

/* No answer: the socket is absent or refused us, or the connection ended before the last reply. */
export class Unreachable extends Error {
    constructor(socket, reason, problem) {
        super(problem === "access-denied"
            ? `This user may not connect to the daemon's socket ${socket} (access denied): the site ` +
              "restricted it to a group (SocketMode= and SocketGroup= of paragon-licensed.socket)."
            : `The daemon does not answer on ${socket} (${reason}): is paragon-licensed running, ` +
              "and is this its socket? (systemctl status paragon-licensed)");
        this.socket = socket;
        this.reason = reason;
    }
}

/* Splits the bytes of a stream into the varlink messages they carry. */
export class Framer {
    constructor() {
        this.pending = new Uint8Array(0);
    }

    /* Every complete message in the bytes received so far, parsed; the rest is kept. */
    push(bytes) {
        const data = new Uint8Array(this.pending.length + bytes.length);
        data.set(this.pending);
        data.set(bytes, this.pending.length);
        const messages = [];
        let start = 0;
        for (let end = data.indexOf(NUL, start); end !== -1; end = data.indexOf(NUL, start)) {
            messages.push(JSON.parse(decoder.decode(data.subarray(start, end))));
            start = end + 1;
        }
        this.pending = data.slice(start);
        return messages;
    }
}

export function frame(message) {
    const json = encoder.encode(JSON.stringify(message));
    const bytes = new Uint8Array(json.length + 1);
    bytes.set(json);
    bytes[json.length] = NUL;
    return bytes;
}

function toBytes(data) {
    if (data instanceof Uint8Array)
        return data;
    if (data instanceof ArrayBuffer)
        return new Uint8Array(data);
    return encoder.encode(String(data)); /* not expected on a binary channel */
}

export class Varlink {
    constructor(socket) {
        this.socket = socket || DEFAULT_SOCKET;
    }

    /* Call METHOD (of io.paragon.License unless the name has a dot) and resolve with the last
     * reply's parameters. With `onReply`, the call is made with "more" and every reply before
     * the last one is passed to it as it arrives. `handle.close()` ends the call early. */
    call(method, parameters, { onReply, handle } = {}) {
        const name = method.includes(".") ? method : `${INTERFACE}.${method}`;
        const more = typeof onReply === "function";
        return new Promise((resolve, reject) => {
            const channel = cockpit.channel({ payload: "stream", unix: this.socket, binary: true });
            const framer = new Framer();
            let settled = false;

            const finish = (fn, value) => {
                if (settled)
                    return;
                settled = true;
                channel.close();
                fn(value);
            };
            if (handle)
                handle.close = () => finish(resolve, null);

            channel.addEventListener("message", (event, data) => {
                let replies;
                try {
                    replies = framer.push(toBytes(data));
                } catch (exc) {
                    finish(reject, new Unreachable(this.socket, `an answer that is not varlink: ${exc.message}`));
                    return;
                }
                for (const reply of replies) {
                    if (settled)
                        return;
                    if (reply.error) {
                        finish(reject, new VarlinkError(reply.error, reply.parameters));
                    } else if (reply.continues && more) {
                        onReply(reply.parameters || {});
                    } else {
                        finish(resolve, reply.parameters || {});
                    }
                }
            });
            channel.addEventListener("close", (event, options) => {
                if (settled)
                    return;
                const problem = options && options.problem;
                finish(reject, new Unreachable(this.socket, problem
                    ? problem.replace(/-/g, " ")
                    : "the connection closed before the answer; the daemon stopped or restarted", problem));
            });
            const message = { method: name, parameters: parameters || {} };
            if (more)
                message.more = true;
            channel.send(frame(message));
        });
    }

    /* Follow Watch: onEvent(event) for every event until close(); onEnd(error) when the stream
     * ends by itself (the daemon stopped), so the caller can reconnect. */
    watch(onEvent, onEnd) {
        const handle = {};
        let closed = false;
        this.call("Watch", {}, { onReply: reply => onEvent(reply.event), handle })
                .then(() => closed || onEnd(null), error => closed || onEnd(error));
        return {
            close() {
                closed = true;
                handle.close();
            },
        };
    }
}
