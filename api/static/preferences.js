// The preference page: an end user switches topics on and off per sink, sees their other
// subscriptions, and gets browser notifications for their web ones. Only the public API.
import { Notify, matches } from "/notify.js";
import { $, api, attempt, claims, fill, h, session, signedIn, toast, when } from "/static/ui.js";

const root = $("#app");
const token = await signedIn(root, (t) => api("/v1/topics", { token: t }));
const me = (claims(token) || {}).sub || "?";
$("#who").textContent = "Signed in as " + me;
$("#signout").classList.remove("hidden");
$("#signout").addEventListener("click", () => {
  session.token = null;
  location.reload();
});

const SINK_NAMES = { web: "Browser", email: "Email", webhook: "Webhook", monitoring: "Alertmanager" };
const ADDRESS = { email: "to", webhook: "url", monitoring: "url" };
let topics = [];
let subs = [];
const recent = [];
const notified = new Set(); // ids of events the system showed a notification for
const addresses = JSON.parse(sessionStorage.getItem("notify.addresses") || "{}");

const sameTypes = (a, b) => JSON.stringify([...(a || [])].sort()) === JSON.stringify([...(b || [])].sort());
const matching = (topic, kind) =>
  subs.find((s) => s.channel === topic.channel && s.sink.kind === kind && sameTypes(s.types, topic.types));

async function load() {
  [topics, subs] = await Promise.all([
    api("/v1/topics").then((r) => r.topics),
    api("/v1/subscriptions").then((r) => r.subscriptions),
  ]);
  for (const s of subs) {
    const field = ADDRESS[s.sink.kind];
    if (field && !addresses[s.sink.kind]) addresses[s.sink.kind] = s.sink[field];
  }
  render();
  follow();
}

function sinkFor(kind) {
  if (kind === "web") return { kind };
  const value = addresses[kind];
  if (!value) throw new Error(`Give your ${SINK_NAMES[kind].toLowerCase()} address first`);
  return kind === "email" ? { kind, to: value, digest_seconds: 0 } : { kind, url: value };
}

async function toggle(topic, kind, on, input) {
  input.disabled = true;
  await attempt(async () => {
    const current = matching(topic, kind);
    if (on && !current) {
      const body = { channel: topic.channel, sink: sinkFor(kind) };
      if (topic.types) body.types = topic.types;
      await api("/v1/subscriptions", { method: "POST", body });
      toast(`${topic.title}: ${SINK_NAMES[kind]} on`);
    } else if (!on && current) {
      await api(`/v1/subscriptions/${encodeURIComponent(current.id)}`, { method: "DELETE" });
      toast(`${topic.title}: ${SINK_NAMES[kind]} off`);
    }
  });
  await attempt(load);
}

function topicCard() {
  const items = topics.map((topic) =>
    h(
      "li",
      { "data-topic": topic.id },
      h(
        "div",
        { class: "grow" },
        h("h3", { text: topic.title }),
        topic.description ? h("p", { class: "muted", text: topic.description }) : null,
        h("div", { class: "mono muted", text: topic.channel + (topic.types ? "  ·  " + topic.types.join(", ") : "") }),
      ),
      h(
        "div",
        {},
        topic.sinks.map((kind) => {
          const input = h("input", {
            type: "checkbox",
            role: "switch",
            "data-sink": kind,
            checked: Boolean(matching(topic, kind)),
            onchange: (e) => toggle(topic, kind, e.target.checked, e.target),
          });
          return h("label", { class: "switch" }, input, SINK_NAMES[kind] || kind);
        }),
      ),
    ),
  );
  return h(
    "section",
    { class: "card", id: "topics" },
    h("h2", { text: "Topics" }),
    topics.length
      ? h("ul", { class: "list" }, items)
      : h("p", { class: "muted", text: "No topics are offered to you yet." }),
  );
}

function addressCard() {
  const kinds = [...new Set(topics.flatMap((t) => t.sinks))].filter((k) => ADDRESS[k]);
  if (!kinds.length) return null;
  return h(
    "section",
    { class: "card" },
    h("h2", { text: "Where to deliver" }),
    h(
      "div",
      { class: "row" },
      kinds.map((kind) =>
        h(
          "div",
          { class: "field" },
          h("label", { for: "addr-" + kind, text: kind === "email" ? "Email address" : SINK_NAMES[kind] + " URL" }),
          h("input", {
            id: "addr-" + kind,
            type: kind === "email" ? "email" : "url",
            value: addresses[kind] || "",
            onchange: (e) => {
              addresses[kind] = e.target.value.trim();
              sessionStorage.setItem("notify.addresses", JSON.stringify(addresses));
            },
          }),
        ),
      ),
    ),
  );
}

function notificationCard() {
  const supported = "Notification" in globalThis;
  const permission = supported ? Notification.permission : "unsupported";
  const label = { granted: "on", denied: "blocked in this browser", default: "off", unsupported: "not supported here" };
  return h(
    "section",
    { class: "card", id: "browser-notifications" },
    h("h2", { text: "Browser notifications" }),
    h("p", { class: "hint" }, "Events of your Browser subscriptions show as system notifications while this page is open. Now: ", h("span", { class: "badge" + (permission === "granted" ? " ok" : ""), id: "permission", text: label[permission] })),
    permission === "default"
      ? h("button", {
          class: "btn",
          type: "button",
          text: "Turn on",
          onclick: async () => {
            await Notification.requestPermission();
            render();
          },
        })
      : null,
    h("h3", { text: "Recent" }),
    recent.length
      ? h(
          "div",
          { class: "events", id: "recent" },
          recent.map((e) =>
            h("div", { class: "event" }, h("div", { class: "meta" }, h("span", { class: "channel", text: e.channel }), h("span", { class: "badge", text: e.type }), h("span", { text: when(e.time) }), notified.has(e.id) ? h("span", { class: "badge ok", "data-notified": "", text: "notified" }) : null), h("pre", { text: JSON.stringify(e.data) })),
          ),
        )
      : h("p", { class: "muted", id: "recent", text: "Nothing yet." }),
  );
}

// only this card: a redraw of the whole page would take the focus from a field being typed in
function redrawNotifications() {
  const card = $("#browser-notifications");
  if (card) card.replaceWith(notificationCard());
}

function othersCard() {
  const fromTopics = new Set(topics.flatMap((t) => t.sinks.map((k) => matching(t, k)).filter(Boolean).map((s) => s.id)));
  const others = subs.filter((s) => !fromTopics.has(s.id));
  return h(
    "section",
    { class: "card", id: "others" },
    h("h2", { text: "Your other subscriptions" }),
    others.length
      ? h(
          "ul",
          { class: "list" },
          others.map((s) =>
            h(
              "li",
              {},
              h("div", { class: "grow" }, h("div", { class: "mono", text: s.channel }), h("div", { class: "muted", text: `${SINK_NAMES[s.sink.kind] || s.sink.kind}${s.sink.to ? " · " + s.sink.to : ""}${s.sink.url ? " · " + s.sink.url : ""}${s.enabled ? "" : " · paused"}` })),
              h("button", {
                class: "btn danger small",
                type: "button",
                text: "Remove",
                onclick: async () => {
                  await attempt(() => api(`/v1/subscriptions/${encodeURIComponent(s.id)}`, { method: "DELETE" }));
                  await attempt(load);
                },
              }),
            ),
          ),
        )
      : h("p", { class: "muted", text: "None." }),
  );
}

function render() {
  fill(
    root,
    h("h1", { text: "Notification preferences" }),
    h("p", { class: "hint", text: "Choose what reaches you, and where." }),
    topicCard(),
    addressCard(),
    notificationCard(),
    othersCard(),
  );
}

// ---- browser notifications for web subscriptions, through notify.js ----
const client = new Notify({ url: location.origin, getToken: async () => session.token });
client.addEventListener("state", (e) => ($("#dot").className = "dot " + e.detail));
client.addEventListener("error", (e) => toast("Live updates stopped: " + e.detail.message, true));
let following = new Map(); // pattern -> unsubscribe

function follow() {
  const web = subs.filter((s) => s.sink.kind === "web" && s.enabled);
  const wanted = new Map(web.map((s) => [s.channel, s]));
  for (const [pattern, off] of following) if (!wanted.has(pattern)) (off(), following.delete(pattern));
  for (const [pattern] of wanted) {
    if (following.has(pattern)) continue;
    following.set(pattern, client.subscribe(pattern, (event) => arrived(event)));
  }
}

function arrived(event) {
  const wants = subs.some(
    (s) => s.sink.kind === "web" && s.enabled && matches(s.channel, event.channel) && (!s.types.length || s.types.some((t) => matches(t, event.type))),
  );
  if (!wants) return;
  recent.unshift(event);
  recent.splice(20);
  if ("Notification" in globalThis && Notification.permission === "granted") {
    const body = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
    const note = new Notification(event.type, { body: `${event.channel}: ${body}`.slice(0, 240), tag: event.id });
    note.addEventListener("show", () => {
      notified.add(event.id);
      redrawNotifications();
    });
  }
  redrawNotifications();
}

await attempt(load);
