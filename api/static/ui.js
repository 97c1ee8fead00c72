// What the console and the preference page share: building DOM nodes safely (text is
// always textContent, never parsed as HTML), the signed-in session, and API calls.

/** An element with `props` (class, text, attributes, on<event> handlers) and children
 * (nodes or strings, added as text). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "checked" || key === "disabled" || key === "value") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

// The token lives in this tab's sessionStorage only: never a cookie, never a URL.
const KEY = "notify.token";
export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** A call to the gateway's public API with the session's token. */
export async function api(path, { method = "GET", body, token = session.token } = {}) {
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401 && token && token === session.token) {
    // the stored token expired or was revoked: back to the sign-in form
    session.token = null;
    setTimeout(() => location.reload(), 1500);
  }
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : null);
  return data;
}

let toastTimer = null;
export function toast(message, bad = false) {
  let node = $("#toast");
  if (!node) {
    node = h("div", { id: "toast", role: "status", class: "toast hidden" });
    document.body.append(node);
  }
  node.textContent = message;
  node.className = "toast" + (bad ? " bad" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.classList.add("hidden"), 4000);
}

/** Runs `work`, showing its error (a problem's detail) as a toast. */
export async function attempt(work) {
  try {
    return await work();
  } catch (error) {
    toast(error.message || String(error), true);
    return undefined;
  }
}

/** Shows the sign-in form until a token that the gateway accepts is given; resolves
 * to the token. `probe(token)` checks it against the API. */
export function signIn(root, probe) {
  return new Promise((resolve) => {
    const input = h("input", { type: "password", id: "token", autocomplete: "off", placeholder: "eyJhbGciOi…" });
    const error = h("p", { class: "muted", role: "alert" });
    const form = h(
      "form",
      {
        class: "card signin",
        id: "signin",
        onsubmit: async (e) => {
          e.preventDefault();
          const token = input.value.trim();
          try {
            await probe(token);
          } catch (err) {
            error.textContent = "Not signed in: " + (err.message || err);
            return;
          }
          session.token = token;
          form.remove();
          resolve(token);
        },
      },
      h("h1", { text: "Sign in to notify" }),
      h("p", { class: "hint", text: "Paste a token (notify dev prints some; notify token makes more). It stays in this tab only." }),
      h("div", { class: "field" }, h("label", { for: "token", text: "Token" }), input),
      error,
      h("button", { class: "btn", type: "submit", text: "Sign in" }),
    );
    root.append(form);
    input.focus();
  });
}

/** The current token, asking for one when none (or a refused one) is stored. */
export async function signedIn(root, probe) {
  const stored = session.token;
  if (stored) {
    try {
      await probe(stored);
      return stored;
    } catch {
      session.token = null;
    }
  }
  return signIn(root, probe);
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}
