/* Building the page's elements. Text from outside (node names, a portal's message) only
 * ever becomes text nodes, never markup; Cockpit's Content-Security-Policy forbids inline
 * scripts and style attributes anyway, so nothing here writes either. */

export const $ = id => document.getElementById(id);

/* h("td", {class: "x", data: {tenant: "a"}, onclick: fn}, "text", child, ...) */
export function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
        if (value === null || value === undefined || value === false)
            continue;
        if (key === "class")
            element.className = value;
        else if (key === "data")
            Object.assign(element.dataset, value);
        else if (key.startsWith("on"))
            element.addEventListener(key.slice(2), value);
        else if (value === true)
            element.setAttribute(key, "");
        else
            element.setAttribute(key, String(value));
    }
    append(element, children);
    return element;
}

function append(element, children) {
    for (const child of children) {
        if (child === null || child === undefined || child === false)
            continue;
        if (Array.isArray(child))
            append(element, child);
        else
            element.append(child instanceof Node ? child : String(child));
    }
}

/* Replace the children of an element (by id or itself). */
export function fill(target, ...children) {
    const element = typeof target === "string" ? $(target) : target;
    element.replaceChildren();
    append(element, children);
    return element;
}

export function show(target, visible) {
    const element = typeof target === "string" ? $(target) : target;
    element.hidden = !visible;
}

/* Save TEXT as a file called NAME through the browser's download. */
export function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const link = h("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
}
