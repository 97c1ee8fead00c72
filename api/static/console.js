// The console: live tail, publish, subscriptions, deliveries, topics and figures, all
// through the public HTTP API with the signed-in token (admin sees everything).
import { Notify } from "/notify.js";
import { $, api, attempt, claims, fill, h, session, signedIn, toast, when } from "/static/ui.js";

const root = $("#app");
const token = await signedIn(root, (t) => api("/v1/subscriptions", { token: t }));
const who = claims(token) || {};
$("#who").textContent = `Signed in as ${who.sub || "?"}${who.admin ? " (admin)" : ""}`;
$("#signout").classList.remove("hidden");
$("#signout").addEventListener("click", () => {
  session.token = null;
  location.reload();
});

const client = new Notify({ url: location.origin, getToken: async () => session.token });
client.addEventListener("state", (e) => ($("#dot").className = "dot " + e.detail));
client.addEventListener("error", (e) => toast("Live updates stopped: " + e.detail.message, true));
const panels = {};
const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id, text: label }), input);
const enc = encodeURIComponent;

// ---- live tail ----
const tail = { off: null, events: [] };
panels.tail = () => {
  const pattern = h("input", { id: "tail-pattern", value: tail.pattern || ">", placeholder: "orders.*" });
  const list = h("div", { class: "events", id: "tail-events" });
  const status = h("span", { class: "badge", id: "tail-status", text: tail.off ? "following " + tail.pattern : "stopped" });
  const draw = () => fill(list, tail.events.length ? tail.events.map(eventView) : h("p", { class: "muted", text: "No events yet." }));
  tail.draw = draw;
  draw();
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Live tail ", status),
    h(
      "form",
      {
        class: "row",
        onsubmit: (e) => {
          e.preventDefault();
          if (tail.off) tail.off();
          tail.pattern = pattern.value.trim() || ">";
          tail.events = [];
          tail.off = client.subscribe(tail.pattern, (event) => {
            tail.events.unshift(event);
            tail.events.splice(200);
            if (tail.draw) tail.draw();
          });
          status.textContent = "following " + tail.pattern;
          draw();
        },
      },
      field("tail-pattern", "Channel pattern", pattern),
      h("button", { class: "btn", type: "submit", id: "tail-start", text: "Follow" }),
      h("button", {
        class: "btn ghost",
        type: "button",
        text: "Stop",
        onclick: () => {
          if (tail.off) tail.off();
          tail.off = null;
          status.textContent = "stopped";
        },
      }),
    ),
    list,
  );
};

function eventView(event) {
  return h(
    "div",
    { class: "event" },
    h(
      "div",
      { class: "meta" },
      h("span", { class: "channel", text: event.channel }),
      h("span", { class: "badge", text: event.type }),
      h("span", { class: "mono", text: event.id }),
      h("span", { text: when(event.time) }),
    ),
    h("pre", { text: JSON.stringify(event.data, null, 2) }),
  );
}

// ---- publish ----
panels.publish = () => {
  const channel = h("input", { id: "pub-channel", placeholder: "orders.eu" });
  const type = h("input", { id: "pub-type", placeholder: "order.created" });
  const data = h("textarea", { id: "pub-data", placeholder: '{"order": 17}' });
  const result = h("p", { class: "muted", id: "pub-result" });
  return h(
    "section",
    { class: "card" },
    h("h2", { text: "Publish an event" }),
    h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          let value = null;
          try {
            value = data.value.trim() ? JSON.parse(data.value) : null;
          } catch {
            toast("data must be JSON", true);
            return;
          }
          // through the API without an origin: the console's own tail shows it too
          const body = { channel: channel.value.trim(), type: type.value.trim(), data: value };
          const answer = await attempt(() => api("/v1/events", { method: "POST", body }));
          if (answer) result.textContent = "Published " + answer.id;
        },
      },
      h("div", { class: "row" }, field("pub-channel", "Channel", channel), field("pub-type", "Type", type)),
      field("pub-data", "Data (JSON)", data),
      h("button", { class: "btn", type: "submit", id: "pub-send", text: "Publish" }),
      result,
    ),
  );
};

// ---- subscriptions ----
let subsUser = "";
const sinkText = (s) => [s.kind, s.to, s.url, s.digest_seconds ? `digest ${s.digest_seconds}s` : ""].filter(Boolean).join(" · ");
const subsPath = () => "/v1/subscriptions" + (subsUser ? "?user=" + enc(subsUser) : "");

function sinkForm() {
  const kind = h("select", { id: "sub-kind" }, ["web", "email", "webhook", "monitoring"].map((k) => h("option", { value: k, text: k })));
  const to = h("input", { id: "sub-to", type: "email", placeholder: "a@example.com" });
  const digest = h("input", { id: "sub-digest", type: "number", min: "0", value: "0" });
  const url = h("input", { id: "sub-url", type: "url", placeholder: "https://hooks.example.com/in" });
  const extra = h("div", { class: "row" });
  const show = () =>
    fill(
      extra,
      kind.value === "email" ? [field("sub-to", "Email address", to), field("sub-digest", "Digest seconds", digest)] : null,
      kind.value === "webhook" || kind.value === "monitoring" ? field("sub-url", "URL", url) : null,
    );
  kind.addEventListener("change", show);
  show();
  const value = () =>
    kind.value === "email"
      ? { kind: "email", to: to.value.trim(), digest_seconds: Number(digest.value) || 0 }
      : kind.value === "web"
        ? { kind: "web" }
        : { kind: kind.value, url: url.value.trim() };
  return { node: h("div", {}, field("sub-kind", "Sink", kind), extra), value };
}

const typesOf = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);

panels.subscriptions = () => {
  const list = h("ul", { class: "list", id: "sub-list" });
  const channel = h("input", { id: "sub-channel", placeholder: "orders.*" });
  const types = h("input", { id: "sub-types", placeholder: "order.*, invoice.paid" });
  const user = h("input", { id: "sub-user", placeholder: "leave empty for yourself", value: subsUser });
  const sink = sinkForm();
  const secret = h("p", { class: "mono", id: "sub-secret" });
  const reload = async () => {
    const subs = (await attempt(() => api(subsPath()))) || { subscriptions: [] };
    fill(list, subs.subscriptions.length ? subs.subscriptions.map((s) => subRow(s, reload, secret)) : h("li", { class: "muted", text: "No subscriptions." }));
  };
  reload();
  return h(
    "div",
    {},
    h(
      "section",
      { class: "card" },
      h("h2", { text: "New subscription" }),
      h(
        "form",
        {
          onsubmit: async (e) => {
            e.preventDefault();
            const body = { channel: channel.value.trim(), sink: sink.value() };
            if (types.value.trim()) body.types = typesOf(types.value);
            if (user.value.trim()) body.user = user.value.trim();
            const made = await attempt(() => api("/v1/subscriptions", { method: "POST", body }));
            if (!made) return;
            secret.textContent = made.secret ? `Signing secret (shown once): ${made.secret}` : "";
            toast("Subscription created");
            reload();
          },
        },
        h("div", { class: "row" }, field("sub-channel", "Channel pattern", channel), field("sub-types", "Types (optional, comma-separated)", types)),
        sink.node,
        who.admin ? field("sub-user", "For user (admin)", user) : null,
        h("button", { class: "btn", type: "submit", id: "sub-create", text: "Create" }),
        secret,
      ),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "bar" },
        h("h2", { text: "Subscriptions" }),
        who.admin
          ? h(
              "form",
              {
                onsubmit: (e) => {
                  e.preventDefault();
                  subsUser = e.target.elements[0].value.trim();
                  reload();
                },
              },
              h("input", { placeholder: "user to show", value: subsUser, "aria-label": "user to show" }),
              h("button", { class: "btn ghost small", type: "submit", text: "Show" }),
            )
          : null,
      ),
      list,
    ),
  );
};

function subRow(s, reload, secretNode) {
  const act = (label, work, cls = "btn ghost small") =>
    h("button", {
      class: cls,
      type: "button",
      text: label,
      onclick: async () => {
        if ((await attempt(work)) !== undefined) reload();
      },
    });
  const id = enc(s.id);
  const progress = h("div", { class: "progress hidden" }, h("div", {}));
  const row = h(
    "li",
    { "data-sub": s.id, "data-channel": s.channel, "data-kind": s.sink.kind },
    h(
      "div",
      { class: "grow" },
      h("div", { class: "mono", text: s.channel + (s.types.length ? "  [" + s.types.join(", ") + "]" : "") }),
      h(
        "div",
        { class: "muted" },
        sinkText(s.sink) + " · " + s.user + " · ",
        h("span", { class: "badge " + (s.enabled ? "ok" : "warn"), text: s.enabled ? "active" : "paused" }),
        s.disabled_reason ? " " + s.disabled_reason : "",
      ),
      progress,
    ),
    h(
      "div",
      { class: "row" },
      act(s.enabled ? "Pause" : "Resume", () => api(`/v1/subscriptions/${id}`, { method: "PATCH", body: { enabled: !s.enabled } })),
      h("button", { class: "btn ghost small", type: "button", text: "Edit", onclick: () => row.replaceWith(editRow(s, reload)) }),
      s.sink.kind === "webhook"
        ? act("Rotate secret", async () => {
            const r = await api(`/v1/subscriptions/${id}/rotate-secret`, { method: "POST" });
            secretNode.textContent = `New signing secret for ${s.id} (shown once): ${r.secret}`;
            return r;
          })
        : null,
      s.sink.kind !== "web"
        ? h("button", { class: "btn ghost small", type: "button", text: "Replay", "data-action": "replay", onclick: () => replay(s, progress) })
        : null,
      act("Delete", () => api(`/v1/subscriptions/${id}`, { method: "DELETE" }).then(() => true), "btn danger small"),
    ),
  );
  return row;
}

function editRow(s, reload) {
  const channel = h("input", { value: s.channel, "aria-label": "channel" });
  const types = h("input", { value: s.types.join(", "), "aria-label": "types" });
  return h(
    "li",
    {},
    h(
      "form",
      {
        class: "row grow",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = { channel: channel.value.trim(), types: typesOf(types.value) };
          await attempt(() => api(`/v1/subscriptions/${enc(s.id)}`, { method: "PATCH", body }));
          reload();
        },
      },
      h("div", { class: "field grow" }, channel),
      h("div", { class: "field grow" }, types),
      h("button", { class: "btn small", type: "submit", text: "Save" }),
      h("button", { class: "btn ghost small", type: "button", text: "Cancel", onclick: reload }),
    ),
  );
}

async function replay(s, progress) {
  const after = prompt("Replay events after which event id? (0-0 for everything retained)", "0-0");
  if (!after) return;
  const started = await attempt(() => api(`/v1/subscriptions/${enc(s.id)}/replay`, { method: "POST", body: { after } }));
  if (!started) return;
  toast(`Replay ${started.replay} started`);
  progress.classList.remove("hidden");
  const bar = progress.firstChild;
  for (let i = 0; i < 60; i++) {
    const page = await attempt(() => api(`/v1/deliveries?subscription=${enc(s.id)}&limit=500`));
    if (!page) return;
    const all = page.deliveries.length;
    const done = page.deliveries.filter((d) => d.status !== "pending").length;
    bar.style.width = all ? `${Math.round((100 * done) / all)}%` : "100%";
    progress.title = `${done} of ${all} deliveries finished`;
    if (all && done === all) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---- deliveries ----
panels.deliveries = () => {
  const list = h("ul", { class: "list", id: "delivery-list" });
  const reload = async () => {
    const subs = ((await attempt(() => api(subsPath()))) || { subscriptions: [] }).subscriptions.filter((s) => s.sink.kind !== "web");
    // every failure across subscriptions (an admin's: everyone's), newest first, in one call
    const f = await attempt(() => api("/v1/deliveries?status=failed&limit=100"));
    const failed = (f && f.deliveries) || [];
    const rest = [];
    for (const s of subs) {
      const all = await attempt(() => api(`/v1/deliveries?subscription=${enc(s.id)}&limit=50`));
      rest.push(...((all && all.deliveries) || []).filter((d) => d.status !== "failed"));
    }
    const rows = [...failed, ...rest.sort((a, b) => (a.created_at < b.created_at ? 1 : -1))];
    fill(list, rows.length ? rows.map((d) => deliveryRow(d, reload)) : h("li", { class: "muted", text: "No deliveries." }));
  };
  reload();
  return h(
    "section",
    { class: "card" },
    h("div", { class: "bar" }, h("h2", { text: "Delivery log" }), h("button", { class: "btn ghost small", type: "button", text: "Refresh", id: "deliveries-refresh", onclick: reload })),
    h("p", { class: "hint", text: "Failed deliveries first, then the latest of every subscription." }),
    list,
  );
};

function deliveryRow(d, reload) {
  const badge = { failed: "bad", delivered: "ok", pending: "warn" }[d.status] || "";
  const last = d.attempts.at(-1);
  return h(
    "li",
    { "data-delivery": d.id, "data-status": d.status },
    h(
      "div",
      { class: "grow" },
      h("div", {}, h("span", { class: "badge " + badge, text: d.status }), " ", h("span", { class: "mono", text: `${d.channel} · ${d.type}` })),
      h("div", { class: "muted mono", text: `${d.kind} · event ${d.event_id} · delivery ${d.id}` }),
      h(
        "details",
        { class: "muted" },
        h(
          "summary",
          {},
          `${d.attempts.length} attempt${d.attempts.length === 1 ? "" : "s"}`,
          last ? ` · last: ${last.outcome || ""} ${last.status_code || ""} ${last.error || ""}` : "",
          d.next_attempt_at ? ` · next ${when(d.next_attempt_at)}` : "",
        ),
        h(
          "table",
          {},
          h("tr", {}, ["When", "Outcome", "Status or error", "Duration"].map((t) => h("th", { text: t }))),
          d.attempts.map((a) =>
            h(
              "tr",
              {},
              h("td", { text: when(a.at) }),
              h("td", { text: a.outcome || "" }),
              h("td", { class: "mono", text: [a.status_code, a.error].filter((x) => x !== undefined && x !== null).join(" ") }),
              h("td", { text: a.duration_ms !== undefined ? `${a.duration_ms} ms` : "" }),
            ),
          ),
        ),
      ),
    ),
    d.status === "failed"
      ? h("button", {
          class: "btn small",
          type: "button",
          text: "Retry",
          onclick: async () => {
            if (await attempt(() => api(`/v1/deliveries/${enc(d.id)}/retry`, { method: "POST" }))) toast("Retrying");
            reload();
          },
        })
      : null,
  );
}

// ---- topics ----
panels.topics = () => {
  const list = h("ul", { class: "list", id: "topic-list" });
  const id = h("input", { id: "topic-id", placeholder: "orders" });
  const title = h("input", { id: "topic-title", placeholder: "Order updates" });
  const channel = h("input", { id: "topic-channel", placeholder: "user.{user}.orders" });
  const description = h("input", { id: "topic-description" });
  const sinks = h("input", { id: "topic-sinks", value: "web, email" });
  const reload = async () => {
    const r = (await attempt(() => api("/v1/topics"))) || { topics: [] };
    fill(
      list,
      r.topics.length
        ? r.topics.map((t) =>
            h(
              "li",
              {},
              h("div", { class: "grow" }, h("h3", { text: t.title }), h("div", { class: "mono muted", text: `${t.id} · ${t.template} · ${t.sinks.join(", ")}` }), t.description ? h("div", { class: "muted", text: t.description }) : null),
              who.admin ? h("button", { class: "btn danger small", type: "button", text: "Delete", onclick: async () => (await attempt(() => api(`/v1/topics/${enc(t.id)}`, { method: "DELETE" }).then(() => true)), reload()) }) : null,
            ),
          )
        : h("li", { class: "muted", text: "No topics." }),
    );
  };
  reload();
  return h(
    "div",
    {},
    who.admin
      ? h(
          "section",
          { class: "card" },
          h("h2", { text: "Define a topic" }),
          h(
            "form",
            {
              onsubmit: async (e) => {
                e.preventDefault();
                const body = { title: title.value.trim(), description: description.value.trim(), channel: channel.value.trim(), sinks: typesOf(sinks.value) };
                if (await attempt(() => api(`/v1/topics/${enc(id.value.trim())}`, { method: "PUT", body }))) toast("Topic saved");
                reload();
              },
            },
            h("div", { class: "row" }, field("topic-id", "Id", id), field("topic-title", "Title", title)),
            h("div", { class: "row" }, field("topic-channel", "Channel ({user} = the subscriber)", channel), field("topic-sinks", "Sinks", sinks)),
            field("topic-description", "Description", description),
            h("button", { class: "btn", type: "submit", text: "Save topic" }),
          ),
        )
      : null,
    h("section", { class: "card" }, h("h2", { text: "Topics" }), list),
  );
};

// ---- figures, from /metrics ----
let previous = null;
panels.figures = () => {
  const grid = h("div", { class: "figures", id: "figures" });
  const poll = async () => {
    if (!grid.isConnected) return;
    try {
      const text = await (await fetch("/metrics", { credentials: "omit" })).text();
      const now = Date.now();
      const sum = (name, filter = () => true) =>
        text
          .split("\n")
          .filter((l) => l.startsWith(name) && !l.startsWith("#") && filter(l))
          .reduce((acc, l) => acc + Number(l.split(" ").at(-1)), 0);
      const figures = {
        published: sum("notify_events_published_total") || sum("notify_events_published "),
        sent: sum("notify_events_sent"),
        streams: sum("notify_streams_open{"),
      };
      const rate = (key) => (previous ? Math.max(0, (figures[key] - previous[key]) / ((now - previous.at) / 1000)) : 0);
      const outcomes = {};
      for (const line of text.split("\n")) {
        const m = line.match(/^notify_deliveries_total\{sink="([^"]*)",outcome="([^"]*)"\} (\S+)/);
        if (m) outcomes[m[2]] = (outcomes[m[2]] || 0) + Number(m[3]);
      }
      const card = (name, value, note = "") =>
        h("div", { class: "figure" }, h("div", { class: "value", text: value }), h("div", { class: "name", text: name }), note ? h("div", { class: "name", text: note }) : null);
      fill(
        grid,
        card("open connections", figures.streams, "this gateway"),
        card("events published / s", rate("published").toFixed(1), `${figures.published} in all`),
        card("events sent / s", rate("sent").toFixed(1), `${figures.sent} in all`),
        card("slow consumers cut", sum("notify_slow_consumer_disconnects_total")),
        ["delivered", "retry", "failed"].map((k) => card("deliveries " + k, outcomes[k] || 0, "all workers")),
      );
      previous = { ...figures, at: now };
    } catch (error) {
      fill(grid, h("p", { class: "muted", text: "metrics unavailable: " + error }));
    }
    setTimeout(poll, 2000);
  };
  setTimeout(poll);
  return h("section", { class: "card" }, h("h2", { text: "Live figures" }), grid);
};

// ---- tabs ----
const built = {};
function show(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  // the tail keeps its node (and its events) across tab switches; others are fresh
  const node = name === "tail" ? (built.tail = built.tail || panels.tail()) : panels[name]();
  fill(root, node);
}
$("#tabs").classList.remove("hidden");
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
show("tail");
