// qdrant dashboard: plain JavaScript, no build step, no outside resources. It polls the REST
// API it is served next to and redraws. Cells carry the raw figures in data-* attributes
// (data-field, data-value) so automated tests can compare them with the API.
(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const INTERVAL_MS = Math.max(500, Number(params.get("interval")) || 3000);
  const HISTORY_LEN = 120;
  const state = {
    selected: params.get("collection") || null,
    names: [],
    infos: {},
    history: [],
    refreshing: false,
    consoleFor: null,
    snapshotBusy: false,
    refreshes: 0,
  };
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---- helpers -------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const fmtInt = (n) => Number(n || 0).toLocaleString("en-US");

  function fmtBytes(b) {
    b = Number(b || 0);
    if (b < 1024) return b + " B";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = b / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return v.toFixed(v < 10 ? 2 : 1) + " " + units[i];
  }

  const sum = (xs, f) => xs.reduce((a, x) => a + (Number(f(x)) || 0), 0);
  const shardsOf = (info) => (info && info.shards) || [];
  const ramParts = (info) => ({
    vectors: sum(shardsOf(info), (s) => s.ram_vectors_bytes),
    payload: sum(shardsOf(info), (s) => s.ram_payload_bytes),
    index: sum(shardsOf(info), (s) => s.ram_index_bytes),
  });
  const ramOf = (info) => {
    const r = ramParts(info);
    return r.vectors + r.payload + r.index;
  };
  const diskOf = (info) => sum(shardsOf(info), (s) => s.disk_bytes);
  const enc = encodeURIComponent;

  function apiKey() {
    try {
      return localStorage.getItem("qdrant-api-key") || "";
    } catch (e) {
      return "";
    }
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const k = apiKey();
    if (k) h["api-key"] = k;
    return h;
  }

  async function api(method, path, body) {
    const opts = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
    if (body !== undefined) opts.body = JSON.stringify(body);
    const r = await fetch(path, opts);
    const text = await r.text();
    let data = text;
    try {
      data = JSON.parse(text);
    } catch (e) {
      /* plain text */
    }
    if (!r.ok) {
      const msg = (data && data.status && data.status.error) || text || r.statusText;
      const err = new Error(method + " " + path + ": " + r.status + " " + msg);
      err.status = r.status;
      err.detail = String(msg);
      throw err;
    }
    return data && typeof data === "object" && "result" in data ? data.result : data;
  }

  function showError(e) {
    const box = $("error");
    box.textContent = String(e && e.message ? e.message : e);
    box.hidden = false;
  }

  // ---- overview, table, charts ----------------------------------------------------------

  function renderOverview(tele, issues) {
    const infos = state.names.map((n) => state.infos[n]);
    $("total-collections").textContent = fmtInt(state.names.length);
    $("total-collections").dataset.value = state.names.length;
    const points = sum(infos, (i) => i.points_count);
    $("total-points").textContent = fmtInt(points);
    $("total-points").dataset.value = points;
    const ram = sum(infos, ramOf);
    $("total-ram").textContent = fmtBytes(ram);
    $("total-ram").dataset.value = ram;
    const disk = sum(infos, diskOf);
    $("total-disk").textContent = fmtBytes(disk);
    $("total-disk").dataset.value = disk;
    const rss = tele && tele.memory ? tele.memory.resident_bytes : null;
    $("process-rss").textContent = rss === null ? "–" : fmtBytes(rss);
    if (rss !== null) $("process-rss").dataset.value = rss;
    $("issues-count").textContent = issues === null ? "–" : fmtInt(issues.length);
    const list = $("issues");
    list.replaceChildren(...(issues || []).map((i) => el("li", { "data-issue": i.id }, i.description)));
    return { ram, disk, rss };
  }

  function cell(field, value, text, cls) {
    return el("td", { "data-field": field, "data-value": value, class: cls }, text);
  }

  function renderTable() {
    const rows = state.names.map((name) => {
      const info = state.infos[name];
      const tr = el(
        "tr",
        { "data-collection": name, class: name === state.selected ? "selected" : "", onclick: () => select(name) },
        cell("name", name, name),
        el(
          "td",
          { "data-field": "status", "data-value": info.status },
          el("span", { class: "status " + info.status }, info.status)
        ),
        cell("points_count", info.points_count, fmtInt(info.points_count), "num"),
        cell("indexed_vectors_count", info.indexed_vectors_count, fmtInt(info.indexed_vectors_count), "num"),
        cell("segments_count", info.segments_count, fmtInt(info.segments_count), "num"),
        cell("shards", shardsOf(info).length, fmtInt(shardsOf(info).length), "num"),
        cell("ram_bytes", ramOf(info), fmtBytes(ramOf(info)), "num"),
        cell("disk_bytes", diskOf(info), fmtBytes(diskOf(info)), "num")
      );
      if (info.error) tr.title = info.error;
      return tr;
    });
    if (rows.length === 0) {
      rows.push(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No collections yet.")));
    }
    $("collections").tBodies[0].replaceChildren(...rows);
  }

  function renderBars() {
    const names = state.names;
    const width = 560;
    const labelW = 130;
    const rowH = 34;
    const height = Math.max(40, names.length * rowH + 10);
    const root = svg("svg", { width: "100%", viewBox: "0 0 " + width + " " + height, role: "img" });
    const max = Math.max(1, ...names.map((n) => Math.max(ramOf(state.infos[n]), diskOf(state.infos[n]))));
    const scale = (v) => ((width - labelW - 80) * v) / max;
    names.forEach((name, i) => {
      const info = state.infos[name];
      const parts = ramParts(info);
      const y = 6 + i * rowH;
      const g = svg("g", { "data-collection": name, "data-ram": ramOf(info), "data-disk": diskOf(info) });
      g.append(svg("text", { x: 0, y: y + 14 }, name.length > 18 ? name.slice(0, 17) + "…" : name));
      let x = labelW;
      for (const [kind, color] of [
        ["vectors", "var(--vectors)"],
        ["payload", "var(--payload)"],
        ["index", "var(--index)"],
      ]) {
        const w = scale(parts[kind]);
        g.append(svg("rect", { x, y: y + 2, width: Math.max(0, w), height: 12, fill: color, "data-kind": kind }));
        x += w;
      }
      g.append(svg("text", { x: x + 4, y: y + 13 }, fmtBytes(ramOf(info))));
      const dw = scale(diskOf(info));
      g.append(svg("rect", { x: labelW, y: y + 16, width: Math.max(0, dw), height: 10, fill: "var(--disk)" }));
      g.append(svg("text", { x: labelW + dw + 4, y: y + 25 }, fmtBytes(diskOf(info))));
      root.append(g);
    });
    $("usage-bars").replaceChildren(root);
  }

  function renderHistory() {
    const canvas = $("usage-history");
    const ctx = canvas.getContext && canvas.getContext("2d");
    if (!ctx) return;
    const w = canvas.width;
    const h = canvas.height;
    const pad = { l: 70, r: 10, t: 10, b: 20 };
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const hist = state.history;
    const max = Math.max(1, ...hist.map((p) => Math.max(p.ram, p.disk, p.rss || 0)));
    ctx.strokeStyle = "#e3e6ec";
    ctx.fillStyle = "#6b7385";
    ctx.font = "11px sans-serif";
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.l, y);
      ctx.lineTo(w - pad.r, y);
      ctx.stroke();
      ctx.fillText(fmtBytes((max * (4 - i)) / 4), 4, y + 4);
    }
    ctx.fillText("last " + Math.round((hist.length * INTERVAL_MS) / 1000) + " s, every " + INTERVAL_MS / 1000 + " s", pad.l, h - 5);
    // The x axis spans the samples so far (at least 20 slots), up to HISTORY_LEN.
    const slots = Math.min(HISTORY_LEN, Math.max(20, hist.length));
    const xs = (i) => pad.l + ((w - pad.l - pad.r) * i) / Math.max(1, slots - 1);
    const ys = (v) => h - pad.b - ((h - pad.t - pad.b) * v) / max;
    const offset = 0;
    for (const [key, color] of [
      ["ram", "#3b6fd8"],
      ["disk", "#8a93a6"],
      ["rss", "#b04fc0"],
    ]) {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      let started = false;
      hist.forEach((p, i) => {
        if (p[key] === null || p[key] === undefined) return;
        const x = xs(offset + i);
        const y = ys(p[key]);
        if (!started) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
        started = true;
      });
      if (hist.length === 1 && started) ctx.arc(xs(offset), ys(hist[0][key]), 2, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  // ---- selected collection ----------------------------------------------------------------

  function select(name) {
    state.selected = name;
    const url = new URL(location.href);
    url.searchParams.set("collection", name);
    history.replaceState(null, "", url);
    renderTable();
    renderDetail();
  }

  function renderShards(info) {
    const shards = shardsOf(info);
    const width = 560;
    const height = 120;
    const root = svg("svg", { width: "100%", viewBox: "0 0 " + width + " " + height, role: "img" });
    const max = Math.max(1, ...shards.map((s) => s.points_count));
    const bw = Math.min(60, (width - 20) / Math.max(1, shards.length) - 8);
    shards.forEach((s, i) => {
      const bh = ((height - 36) * s.points_count) / max;
      const x = 10 + i * (bw + 8);
      const g = svg("g", { "data-shard": s.shard_id, "data-points": s.points_count });
      g.append(svg("rect", { x, y: height - 18 - bh, width: bw, height: bh, fill: "var(--vectors)", rx: 2 }));
      g.append(svg("text", { x, y: height - 22 - bh }, fmtInt(s.points_count)));
      g.append(svg("text", { x, y: height - 4 }, "shard " + s.shard_id));
      root.append(g);
    });
    $("shard-distribution").replaceChildren(root);
    $("shards").tBodies[0].replaceChildren(
      ...shards.map((s) =>
        el(
          "tr",
          { "data-shard": s.shard_id },
          cell("shard_id", s.shard_id, s.shard_id, "num"),
          cell("points_count", s.points_count, fmtInt(s.points_count), "num"),
          cell("segments_count", s.segments_count, fmtInt(s.segments_count), "num"),
          cell("ram_vectors_bytes", s.ram_vectors_bytes, fmtBytes(s.ram_vectors_bytes), "num"),
          cell("ram_payload_bytes", s.ram_payload_bytes, fmtBytes(s.ram_payload_bytes), "num"),
          cell("ram_index_bytes", s.ram_index_bytes, fmtBytes(s.ram_index_bytes), "num"),
          cell("disk_bytes", s.disk_bytes, fmtBytes(s.disk_bytes), "num"),
          cell(
            "optimizer",
            s.optimizer_error ? "error" : s.optimizing ? "optimizing" : "ok",
            s.optimizer_error ? "error: " + s.optimizer_error : s.optimizing ? "optimizing" : "ok"
          )
        )
      )
    );
  }

  async function renderOptimizations(name) {
    let o;
    try {
      o = await api("GET", "/collections/" + enc(name) + "/optimizations");
    } catch (e) {
      $("optimizations").replaceChildren(el("p", { class: "muted" }, "not available: " + e.message));
      return;
    }
    const items = [];
    for (const r of o.running || []) {
      const pct = r.points ? Math.min(100, Math.round((100 * r.done) / r.points)) : 0;
      items.push(
        el(
          "div",
          { class: "opt", "data-optimization": "running", "data-done": r.done, "data-points": r.points },
          el("div", {}, r.name + " — " + fmtInt(r.done) + " / " + fmtInt(r.points) + " points (" + pct + "%)"),
          el("progress", { max: Math.max(1, r.points), value: r.done })
        )
      );
    }
    const completed = (o.completed || []).slice(-5).reverse();
    for (const c of completed) {
      const what = c.error ? "failed: " + c.error : "done";
      const secs = c.duration_sec !== undefined ? " in " + Number(c.duration_sec).toFixed(2) + " s" : "";
      items.push(
        el(
          "div",
          { class: "opt muted", "data-optimization": "completed" },
          c.name + " — " + fmtInt(c.points) + " points, " + what + secs
        )
      );
    }
    if (items.length === 0) items.push(el("p", { class: "muted" }, "No optimizations yet."));
    $("optimizations").replaceChildren(...items);
  }

  async function download(name, snap) {
    const path = "/collections/" + enc(name) + "/snapshots/" + enc(snap);
    try {
      const r = await fetch(path, { headers: headers() });
      if (!r.ok) throw new Error("GET " + path + ": " + r.status);
      const url = URL.createObjectURL(await r.blob());
      const a = el("a", { href: url, download: snap });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      showError(e);
    }
  }

  async function renderSnapshots(name) {
    const note = $("snapshot-note");
    let list;
    try {
      list = await api("GET", "/collections/" + enc(name) + "/snapshots");
    } catch (e) {
      const absent = e.status === 404 && /no endpoint/i.test(e.detail || "");
      note.textContent = absent ? "Snapshots are not available on this server." : e.message;
      note.dataset.state = absent ? "unavailable" : "error";
      $("snapshot-create").disabled = absent;
      $("snapshots").tBodies[0].replaceChildren();
      return;
    }
    note.dataset.state = "ok";
    if (!state.snapshotBusy) note.textContent = list.length ? "" : "No snapshots yet.";
    $("snapshot-create").disabled = state.snapshotBusy;
    const rows = list
      .slice()
      .sort((a, b) => String(b.creation_time || "").localeCompare(String(a.creation_time || "")))
      .map((s) => {
        const path = "/collections/" + enc(name) + "/snapshots/" + enc(s.name);
        const link = apiKey()
          ? el("button", { type: "button", onclick: () => download(name, s.name) }, "Download")
          : el("a", { href: path, download: s.name, class: "download" }, "Download");
        return el(
          "tr",
          { "data-snapshot": s.name },
          cell("name", s.name, s.name),
          cell("size", s.size, fmtBytes(s.size), "num"),
          cell("creation_time", s.creation_time || "", s.creation_time || ""),
          el("td", {}, link)
        );
      });
    $("snapshots").tBodies[0].replaceChildren(...rows);
  }

  async function createSnapshot() {
    const name = state.selected;
    if (!name || state.snapshotBusy) return;
    state.snapshotBusy = true;
    $("snapshot-create").disabled = true;
    $("snapshot-note").textContent = "Creating a snapshot of " + name + "…";
    try {
      const s = await api("POST", "/collections/" + enc(name) + "/snapshots?wait=true");
      $("snapshot-note").textContent = "Created " + (s && s.name ? s.name : "a snapshot") + ".";
    } catch (e) {
      $("snapshot-note").textContent = e.message;
    } finally {
      state.snapshotBusy = false;
      await renderSnapshots(name);
    }
  }

  function vectorSpec(info) {
    const v = info && info.config && info.config.params && info.config.params.vectors;
    if (!v) return { name: null, size: 4 };
    if (typeof v.size === "number") return { name: null, size: v.size };
    const names = Object.keys(v);
    return names.length ? { name: names[0], size: v[names[0]].size } : { name: null, size: 4 };
  }

  function defaultBody(endpoint, info) {
    if (endpoint === "query") {
      const spec = vectorSpec(info);
      const body = { query: Array.from({ length: spec.size }, (_, i) => Number((((i * 7) % 10) / 10).toFixed(1))) };
      if (spec.name) body.using = spec.name;
      body.limit = 10;
      body.with_payload = true;
      return body;
    }
    return { limit: 10, with_payload: true };
  }

  function resetConsole() {
    const info = state.infos[state.selected];
    $("search-body").value = JSON.stringify(defaultBody($("search-endpoint").value, info), null, 1);
  }

  async function runSearch() {
    const name = state.selected;
    if (!name) return;
    const endpoint = $("search-endpoint").value;
    const status = $("search-status");
    let body;
    try {
      body = JSON.parse($("search-body").value || "{}");
    } catch (e) {
      status.textContent = "Invalid JSON: " + e.message;
      return;
    }
    status.textContent = "running…";
    const started = performance.now();
    let result;
    try {
      result = await api("POST", "/collections/" + enc(name) + "/points/" + endpoint, body);
    } catch (e) {
      status.textContent = e.message;
      $("search-results").tBodies[0].replaceChildren();
      return;
    }
    const points = (result && result.points) || (Array.isArray(result) ? result : []);
    const ms = (performance.now() - started).toFixed(1);
    status.textContent = points.length + " point(s) in " + ms + " ms";
    status.dataset.count = points.length;
    $("search-results").tBodies[0].replaceChildren(
      ...points.map((p) =>
        el(
          "tr",
          { "data-id": JSON.stringify(p.id) },
          cell("id", JSON.stringify(p.id), String(p.id)),
          cell("score", p.score === undefined ? "" : p.score, p.score === undefined ? "" : Number(p.score).toFixed(4), "num"),
          el("td", { "data-field": "payload" }, el("pre", { class: "payload" }, JSON.stringify(p.payload)))
        )
      )
    );
  }

  // ---- cluster ----------------------------------------------------------------------------

  function renderCluster(cluster) {
    const on = !!(cluster && cluster.status === "enabled");
    $("cluster").hidden = !on;
    state.clustered = on;
    if (!on) return;
    const raft = cluster.raft_info || {};
    $("cluster-term").textContent = "term " + raft.term + ", commit " + raft.commit;
    const ids = Object.keys(cluster.peers).sort();
    $("peers").tBodies[0].replaceChildren(
      ...ids.map((id) => {
        const role = String(raft.leader) === id ? "leader" : "follower";
        const me = String(cluster.peer_id) === id;
        return el(
          "tr",
          { "data-peer": id },
          cell("peer_id", id, id + (me ? " (this peer)" : ""), "num"),
          cell("uri", cluster.peers[id].uri, cluster.peers[id].uri),
          cell("role", role, role)
        );
      })
    );
  }

  async function renderPlacement(name) {
    $("placement-box").hidden = !state.clustered;
    if (!state.clustered) return;
    let info;
    try {
      info = await api("GET", "/collections/" + enc(name) + "/cluster");
    } catch (e) {
      return;
    }
    const byShard = {};
    for (const s of info.local_shards) (byShard[s.shard_id] = byShard[s.shard_id] || []).push([info.peer_id, s.state]);
    for (const s of info.remote_shards) (byShard[s.shard_id] = byShard[s.shard_id] || []).push([s.peer_id, s.state]);
    const shards = Object.keys(byShard).map(Number).sort((a, b) => a - b);
    $("placement").tBodies[0].replaceChildren(
      ...shards.map((sid) => {
        const replicas = byShard[sid].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
        const text = replicas.map(([p, st]) => p + ": " + st).join(", ");
        return el(
          "tr",
          { "data-shard": sid },
          cell("shard_id", sid, sid, "num"),
          cell("replicas", replicas.map(([p, st]) => p + "=" + st).join(";"), text)
        );
      })
    );
  }

  async function renderDetail() {
    const name = state.selected;
    const info = name ? state.infos[name] : null;
    $("detail").hidden = !info;
    if (!info) return;
    $("detail").dataset.collection = name;
    $("detail-name").textContent = name;
    const st = $("detail-status");
    st.className = "status " + info.status;
    st.textContent = info.status;
    renderShards(info);
    const work = [renderOptimizations(name), renderSnapshots(name), renderPlacement(name)];
    if (state.consoleFor !== name) {
      state.consoleFor = name;
      resetConsole();
      work.push(runSearch());
    }
    await Promise.all(work);
  }

  // ---- polling ----------------------------------------------------------------------------

  async function refresh() {
    if (state.refreshing) return;
    state.refreshing = true;
    try {
      const [root, list] = await Promise.all([api("GET", "/"), api("GET", "/collections")]);
      $("version").textContent = root && root.version ? "v" + root.version : "";
      fetch("/readyz").then(
        (r) => {
          $("ready").textContent = r.ok ? "ready" : "loading";
          $("ready").className = "pill " + (r.ok ? "ok" : "bad");
        },
        () => {}
      );
      const names = list.collections.map((c) => c.name).sort();
      const infos = {};
      await Promise.all(
        names.map(async (n) => {
          try {
            infos[n] = await api("GET", "/collections/" + enc(n));
          } catch (e) {
            infos[n] = { status: "red", error: e.message, points_count: 0, indexed_vectors_count: 0, segments_count: 0, shards: [] };
          }
        })
      );
      state.names = names;
      state.infos = infos;
      if (!state.selected || !infos[state.selected]) state.selected = names[0] || null;
      renderCluster(await api("GET", "/cluster").catch(() => null));
      const [tele, issues] = await Promise.all([
        api("GET", "/telemetry").catch(() => null),
        api("GET", "/issues").then(
          (r) => r.issues || [],
          () => null
        ),
      ]);
      const totals = renderOverview(tele, issues);
      state.history.push({ t: Date.now(), ram: totals.ram, disk: totals.disk, rss: totals.rss });
      if (state.history.length > HISTORY_LEN) state.history.shift();
      renderTable();
      renderBars();
      renderHistory();
      await renderDetail();
      $("error").hidden = true;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      state.refreshes += 1;
      document.body.dataset.refreshes = state.refreshes;
      document.body.dataset.loaded = "1";
    } catch (e) {
      showError(e);
    } finally {
      state.refreshing = false;
    }
  }

  function start() {
    $("api-key").value = apiKey();
    $("api-key").addEventListener("change", (ev) => {
      try {
        localStorage.setItem("qdrant-api-key", ev.target.value);
      } catch (e) {
        /* storage unavailable */
      }
      refresh();
    });
    $("search-endpoint").addEventListener("change", resetConsole);
    $("search-run").addEventListener("click", runSearch);
    $("snapshot-create").addEventListener("click", createSnapshot);
    refresh();
    setInterval(() => {
      if (!document.hidden) refresh();
    }, INTERVAL_MS);
  }

  start();
})();
