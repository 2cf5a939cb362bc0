// The dashboard of shoal up: polls the snapshot API every second and
// redraws the tables and charts from it. No dependencies, no build step.
"use strict";

(() => {
  const API = "/api/v1/snapshot";
  const PERIOD_MS = 1000;
  // A snapshot that takes longer than this counts as no answer.
  const TIMEOUT_MS = 5000;
  const MAX_EVENTS = 50;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // el builds an element: attrs may hold text, class, title, href and
  // data (an object of data-* attributes); children are nodes or strings.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    applyAttrs(e, attrs);
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    applyAttrs(e, attrs);
    return e;
  }

  function applyAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
      else e.setAttribute(k, String(v));
    }
  }

  function td(text, cls) {
    return el("td", { text: text, class: cls });
  }

  // fill replaces the rows of a section's table; an empty list shows a
  // single "none" row.
  function fill(sectionID, rows) {
    const tbody = document.querySelector("#" + sectionID + " tbody");
    const cols = document.querySelectorAll("#" + sectionID + " thead th").length;
    if (rows.length === 0) {
      rows = [el("tr", { class: "empty" }, el("td", { colspan: cols, text: "none" }))];
    }
    tbody.replaceChildren(...rows);
  }

  function byNsName(a, b) {
    return (a.namespace || "").localeCompare(b.namespace || "") || (a.name || "").localeCompare(b.name || "");
  }

  function list(v) {
    return Array.isArray(v) ? v : [];
  }

  function millicores(cores) {
    return Math.round((cores || 0) * 1000) + "m";
  }

  function ms(seconds) {
    if (!seconds || seconds <= 0) return "–";
    const m = seconds * 1000;
    return (m < 10 ? m.toFixed(1) : Math.round(m).toString()) + " ms";
  }

  // age formats a duration in seconds as kubectl does: 45s, 3m12s, 2h5m, 4d.
  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 120) return s + "s";
    if (s < 600) return Math.floor(s / 60) + "m" + (s % 60 ? (s % 60) + "s" : "");
    if (s < 3 * 3600) return Math.floor(s / 60) + "m";
    if (s < 48 * 3600) return Math.floor(s / 3600) + "h" + (Math.floor(s / 60) % 60 ? (Math.floor(s / 60) % 60) + "m" : "");
    return Math.floor(s / 86400) + "d";
  }

  function renderDeployments(snap) {
    const rows = list(snap.deployments).slice().sort(byNsName).map((d) => {
      const ok = d.ready >= d.replicas && d.updated >= d.replicas;
      return el("tr", {
          class: ok ? "ok" : "progressing",
          data: { deployment: d.name, namespace: d.namespace, replicas: d.replicas, ready: d.ready,
                  updated: d.updated, available: d.available, current: d.current },
        },
        td(d.namespace), td(d.name, "name"), td(d.ready + "/" + d.replicas, "ready"),
        td(d.updated, "updated"), td(d.available), td(d.revision || "–", "mono"));
    });
    fill("deployments", rows);
  }

  function renderPods(snap) {
    const rows = list(snap.pods).slice().sort(byNsName).map((p) => {
      const cpu = el("td", { class: "cpu" });
      if (p.cpuRequest > 0) {
        const pct = (100 * (p.cpu || 0)) / p.cpuRequest;
        const used = el("span", { class: pct > 100 ? "fill over" : "fill" });
        used.style.width = Math.min(pct, 100).toFixed(1) + "%";
        cpu.append(el("span", { class: "bar", title: pct.toFixed(0) + "% of request" }, used));
      }
      cpu.append(millicores(p.cpu) + " / " + (p.cpuRequest > 0 ? millicores(p.cpuRequest) : "–"));
      return el("tr", {
          class: p.terminating ? "terminating" : p.ready ? "ok" : "unready",
          data: { pod: p.name, namespace: p.namespace, deploymentName: p.deployment || "", status: p.status,
                  ready: !!p.ready, ip: p.ip || "", restarts: p.restarts || 0 },
        },
        td(p.namespace), td(p.name, "name mono"), td(p.ip || "–", "mono"),
        el("td", {}, el("span", { class: "badge status-" + String(p.status).toLowerCase(), text: p.status })),
        td(p.ready ? "yes" : "no", "ready"), td(p.restarts || 0), cpu,
        td((p.rps || 0).toFixed(1), "rps"), td(ms(p.latencyP50)), td(ms(p.latencyP99)));
    });
    fill("pods", rows);
  }

  function renderServices(snap) {
    const rows = list(snap.services).slice().sort(byNsName).map((s) => {
      const eps = list(s.endpoints);
      return el("tr", { data: { service: s.name, namespace: s.namespace, endpoints: eps.length } },
        td(s.namespace), td(s.name, "name"), td(s.type), td(s.clusterIP || "None", "mono"),
        td(list(s.ports).join(", ") || "–", "mono"),
        el("td", { class: "endpoints" },
          ...(eps.length ? eps.map((e) => el("span", { class: "chip mono", text: e })) : ["none ready"])));
    });
    fill("services", rows);
  }

  function renderIngresses(snap) {
    const rows = list(snap.ingresses).slice().sort(byNsName).map((i) => {
      const url = i.url || "";
      // Only web URLs become links.
      const link = /^https?:\/\//.test(url) ? el("a", { href: url, target: "_blank", rel: "noopener", text: url }) : url || "–";
      return el("tr", { data: { ingress: i.name, namespace: i.namespace, url: url } },
        td(i.namespace), td(i.name, "name"), td(i.host || "*"), td(i.path || "/", "mono"), td(i.backend, "mono"),
        el("td", {}, link));
    });
    fill("ingresses", rows);
  }

  function renderRoutes(snap) {
    const rows = list(snap.httpRoutes).slice().sort(byNsName).map((r) => {
      const url = r.url || "";
      const link = /^https?:\/\//.test(url) ? el("a", { href: url, target: "_blank", rel: "noopener", text: url }) : url || "–";
      return el("tr", { data: { route: r.name, namespace: r.namespace, rule: r.rule, url: url } },
        td(r.namespace), td(r.name, "name"), td(r.hostname || "*"), td(r.match, "mono"),
        td(list(r.backends).join(", ") || "none (500)", "mono"), el("td", {}, link));
    });
    fill("routes", rows);
  }

  function renderAutoscalers(snap) {
    const rows = list(snap.autoscalers).slice().sort(byNsName).map((a) => {
      const reason = el("td", { class: "reason", text: a.reason || "" });
      if (a.metricError) reason.append(el("span", { class: "warning", text: " metrics: " + a.metricError }));
      return el("tr", {
          class: a.desired !== a.current ? "progressing" : "ok",
          data: { autoscaler: a.name, namespace: a.namespace, kind: a.kind, current: a.current, desired: a.desired },
        },
        td(a.kind === "ScaledObject" ? "ScaledObject" : "HPA"), td(a.namespace), td(a.name, "name"), td(a.target),
        td(a.min + "–" + a.max), td(a.current, "current"), td(a.desired, "desired"),
        td(a.metrics || "<unknown>", "mono"), reason);
    });
    fill("autoscalers", rows);
  }

  function renderEvents(snap) {
    const now = Date.parse(snap.time);
    const events = list(snap.events).slice(-MAX_EVENTS).reverse();
    const rows = events.map((e) =>
      el("tr", { class: e.type === "Warning" ? "warning" : "", data: { reason: e.reason, type: e.type, object: e.object } },
        td(age((now - Date.parse(e.time)) / 1000)), td(e.type), td(e.reason, "name"), td(e.object, "mono"),
        td(e.message), td(e.count > 1 ? "×" + e.count : "")));
    fill("events", rows);
  }

  // chart draws one deployment's replicas, ready and desired counts over
  // the history as step lines; t0 and t1 bound the time axis, shared by
  // all charts.
  function chart(d, points, t0, t1) {
    const W = 480, H = 150, L = 34, R = 8, T = 10, B = 22;
    const series = [
      { key: "replicas", label: "replicas" },
      { key: "ready", label: "ready" },
      { key: "desired", label: "desired" },
    ];
    // Desired is 0 without an autoscaler: no line then.
    const drawn = series.filter((s) => s.key !== "desired" || points.some((p) => p.desired > 0));
    let ymax = 1;
    for (const p of points) for (const s of drawn) ymax = Math.max(ymax, p[s.key] || 0);
    ymax = Math.ceil(ymax * 1.1);
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / ymax) * (H - T - B);

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
                              "aria-label": `${d.name}: replicas over time` });
    for (const v of [0, Math.round(ymax / 2), ymax]) {
      root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
      const lab = svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" });
      lab.textContent = String(v);
      root.append(lab);
    }
    const span = svg("text", { x: L, y: H - 6, class: "axis" });
    span.textContent = "−" + age((t1 - t0) / 1000);
    const now = svg("text", { x: W - R, y: H - 6, class: "axis", "text-anchor": "end" });
    now.textContent = "now";
    root.append(span, now);

    for (const s of drawn) {
      const xy = [];
      points.forEach((p, i) => {
        const px = x(Date.parse(p.time)), py = y(p[s.key] || 0);
        if (i > 0) xy.push(`${px.toFixed(1)},${y(points[i - 1][s.key] || 0).toFixed(1)}`);
        xy.push(`${px.toFixed(1)},${py.toFixed(1)}`);
      });
      const last = points.length ? points[points.length - 1][s.key] || 0 : 0;
      const line = svg("polyline", { points: xy.join(" "), class: "series " + s.key,
                                     "data-series": s.key, "data-points": points.length, "data-last": last });
      const title = svg("title", {});
      title.textContent = `${s.label}: ${last}`;
      line.append(title);
      root.append(line);
    }
    const legend = el("p", { class: "legend" },
      ...drawn.map((s) => el("span", { class: "key " + s.key, text: s.label })));
    return el("figure", { class: "chart-box", data: { chart: d.namespace + "/" + d.name, points: points.length } },
      el("figcaption", { text: d.name + (d.namespace !== "default" ? " (" + d.namespace + ")" : "") }), root, legend);
  }

  function renderCharts(snap) {
    const history = list(snap.history);
    const times = history.map((p) => Date.parse(p.time)).filter((t) => !Number.isNaN(t));
    let t1 = times.length ? Math.max(...times) : Date.parse(snap.time);
    let t0 = times.length ? Math.min(...times) : t1;
    if (!(t1 > t0)) t0 = t1 - 1000;
    const figs = list(snap.deployments).slice().sort(byNsName).map((d) =>
      chart(d, history.filter((p) => p.namespace === d.namespace && p.deployment === d.name), t0, t1));
    document.getElementById("charts").replaceChildren(...figs);
  }

  function render(snap) {
    renderDeployments(snap);
    renderCharts(snap);
    renderAutoscalers(snap);
    renderPods(snap);
    renderServices(snap);
    renderIngresses(snap);
    renderRoutes(snap);
    renderEvents(snap);
    const pods = list(snap.pods);
    const ready = pods.filter((p) => p.ready).length;
    const t = new Date(snap.time);
    document.getElementById("status").textContent =
      `${list(snap.deployments).length} deployments · ${ready}/${pods.length} pods ready · snapshot ${t.toLocaleTimeString()}`;
    document.body.dataset.snapshotTime = snap.time;
  }

  function showError(message) {
    const banner = document.getElementById("error");
    banner.textContent = message;
    banner.hidden = false;
    document.body.dataset.state = "error";
  }

  function clearError() {
    document.getElementById("error").hidden = true;
    document.body.dataset.state = "ok";
  }

  // answerError reads the {"error": "..."} body of a failed response.
  async function answerError(resp) {
    let msg = `HTTP ${resp.status}`;
    try {
      const body = await resp.json();
      if (body && body.error) msg = `${body.error} (HTTP ${resp.status})`;
    } catch (_) {
      // Not JSON: the status is all there is.
    }
    return msg;
  }

  async function poll() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let snap = null;
    try {
      const resp = await fetch(API, { signal: ctl.signal, cache: "no-store", headers: { Accept: "application/json" } });
      if (!resp.ok) {
        showError(`shoal up answered with an error: ${await answerError(resp)}`);
      } else {
        snap = await resp.json();
      }
    } catch (err) {
      const why = err && err.name === "AbortError" ? `no answer in ${TIMEOUT_MS / 1000}s` : String(err && err.message || err);
      showError(`shoal up is not answering at ${location.host} (${why}); showing the last state seen, retrying every second`);
    } finally {
      clearTimeout(timer);
    }
    if (snap) {
      try {
        render(snap);
        clearError();
      } catch (err) {
        showError(`dashboard: cannot show the snapshot: ${err && err.message || err}`);
      }
    }
    setTimeout(poll, PERIOD_MS);
  }

  poll();
})();
