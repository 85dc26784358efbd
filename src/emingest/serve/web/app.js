// emingest web page: catalog, volume viewer with click-to-search, jobs. Plain JS, no build step.
"use strict";

const main = document.getElementById("main");
let stopPage = () => {};

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function api(path, options = {}) {
  const resp = await fetch(path, options);
  const body = await resp.json().catch(() => ({ error: resp.statusText }));
  if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
  return body;
}

function fmtBytes(n) {
  if (n == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function statusClass(s) {
  if (!s) return "";
  if (s === "complete") return "status-complete";
  if (s.startsWith("error")) return "status-error";
  return "status-running";
}

// -- routing ---------------------------------------------------------------------------------

function route() {
  stopPage();
  stopPage = () => {};
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  if (path.startsWith("/volume/")) return volumePage(decodeURIComponent(path.slice(8)), params);
  if (path === "/jobs") return jobsPage();
  return catalogPage(params);
}
window.addEventListener("hashchange", route);

// -- catalog -------------------------------------------------------------------------------

async function catalogPage(params) {
  document.title = "emingest: catalog";
  main.innerHTML = `
    <h2>Catalog</h2>
    <form class="filters" id="filters">
      <label>source <input name="source" size="12" value="${esc(params.get("source"))}"></label>
      <label>status <select name="status">
        ${["", "complete", "in-progress", "error"].map((s) => `<option ${params.get("status") === s ? "selected" : ""}>${s}</option>`).join("")}
      </select></label>
      <label>dtype <input name="dtype" size="8" value="${esc(params.get("dtype"))}"></label>
      <label>voxel max (nm) <input name="voxel_max" size="6" value="${esc(params.get("voxel_max"))}"></label>
      <label>text <input name="text" size="16" value="${esc(params.get("text"))}"></label>
      <button type="submit">Filter</button>
    </form>
    <p id="count"></p>
    <table id="records"><thead><tr><th></th><th>id</th><th>status</th><th>shape (z y x)</th><th>dtype</th><th>voxel (nm)</th><th>size</th><th>description</th></tr></thead><tbody></tbody></table>`;
  document.getElementById("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(ev.target)) if (v) q.set(k, v);
    location.hash = `#/?${q}`;
  });
  const q = new URLSearchParams();
  for (const [k, v] of params) if (v) q.set(k, v);
  q.set("limit", "500");
  try {
    const page = await api(`/api/records?${q}`);
    document.getElementById("count").textContent = `${page.total} record${page.total === 1 ? "" : "s"}`;
    document.querySelector("#records tbody").innerHTML = page.items.map((r) => `
      <tr data-id="${esc(r.id)}">
        <td class="thumb">${r.thumbnail_url ? `<img loading="lazy" alt="thumbnail" src="${esc(r.thumbnail_url)}">` : ""}</td>
        <td><a href="#/volume/${encodeURIComponent(r.id)}">${esc(r.id)}</a></td>
        <td class="${statusClass(r.status)}">${esc(r.status)}</td>
        <td>${r.shape ? r.shape.join(" × ") : ""}</td>
        <td>${esc(r.dtype)}</td>
        <td>${r.voxel_size_nm ? r.voxel_size_nm.map((v) => +v.toFixed(2)).join(" × ") : ""}</td>
        <td>${fmtBytes(r.nbytes)}</td>
        <td>${esc((r.description || "").slice(0, 80))}</td>
      </tr>`).join("");
  } catch (err) {
    document.getElementById("count").innerHTML = `<span class="error">${esc(err.message)}</span>`;
  }
}

// -- volume page with slice viewer -------------------------------------------------------------

async function volumePage(id, params) {
  document.title = `emingest: ${id}`;
  main.innerHTML = `<p>Loading ${esc(id)}…</p>`;
  let rec;
  try {
    rec = await api(`/api/records/${encodeURIComponent(id)}`);
  } catch (err) {
    main.innerHTML = `<p class="error">${esc(err.message)}</p>`;
    return;
  }
  const levels = rec.levels;
  const ngSource = rec.neuroglancer_source;
  const ngState = ngSource ? { layers: [{ type: "image", source: ngSource, name: rec.name }] } : null;
  const ngUrl = ngState ? `https://neuroglancer-demo.appspot.com/#!${encodeURIComponent(JSON.stringify(ngState))}` : null;
  main.innerHTML = `
    <h2 id="volume-id">${esc(rec.id)}</h2>
    <div class="viewer">
      <div>
        <canvas id="view" width="640" height="480"></canvas>
        <div class="form">
          <label>z <input type="range" id="z" min="0" max="${levels.length ? levels[0].shape[0] - 1 : 0}" value="0"></label>
          <span id="zval"></span>
          <label>min <input id="vmin" size="6" value="${rec.contrast ? rec.contrast[0] : ""}"></label>
          <label>max <input id="vmax" size="6" value="${rec.contrast ? rec.contrast[1] : ""}"></label>
          <span id="levelinfo"></span>
        </div>
        <p>Drag to pan, wheel to zoom (the pyramid level follows the zoom); click a point to find similar patches.</p>
        <h3>Similar patches</h3>
        <div id="search-status">Click the image.</div>
        <div class="hits" id="hits"></div>
      </div>
      <div class="panel">
        <table class="meta" id="meta"><tbody>
          <tr><td>status</td><td class="${statusClass(rec.status)}">${esc(rec.status)}</td></tr>
          <tr><td>shape (z y x)</td><td>${rec.shape ? rec.shape.join(" × ") : ""}</td></tr>
          <tr><td>dtype</td><td>${esc(rec.dtype)}</td></tr>
          <tr><td>voxel size (nm)</td><td>${rec.voxel_size_nm ? rec.voxel_size_nm.join(" × ") : "unknown"}</td></tr>
          <tr><td>levels</td><td>${levels.map((l) => `${esc(l.path)}: ${l.shape.join("×")}`).join("<br>")}</td></tr>
          <tr><td>size</td><td>${fmtBytes(rec.nbytes)} (${fmtBytes(rec.file_size_bytes)} on disk)</td></tr>
          <tr><td>sha256</td><td><code>${esc(rec.sha256)}</code></td></tr>
          <tr><td>description</td><td>${esc(rec.description)}</td></tr>
          <tr><td>labels</td><td>${rec.labels.map((l) => `<a href="#/volume/${encodeURIComponent(l)}">${esc(l)}</a>`).join("<br>") || "none"}</td></tr>
          <tr><td>OME-Zarr</td><td>${rec.data_url ? `<a href="${esc(rec.data_url)}/zarr.json">${esc(rec.data_url)}</a>` : ""}</td></tr>
          <tr><td>neuroglancer</td><td>${ngSource ? `<code id="ng-source">${esc(ngSource)}</code><br><a id="ng-link" href="${esc(ngUrl)}" target="_blank" rel="noopener">open in neuroglancer</a>` : ""}</td></tr>
        </tbody></table>
        <h3>Record</h3>
        <pre>${esc(JSON.stringify(rec.record, null, 1))}</pre>
      </div>
    </div>`;
  if (!levels.length) return;
  new SliceViewer(rec, params);
}

class SliceViewer {
  constructor(rec, params) {
    this.rec = rec;
    this.levels = rec.levels;
    this.canvas = document.getElementById("view");
    this.ctx = this.canvas.getContext("2d");
    const [nz, ny, nx] = this.levels[0].shape;
    this.z = params.has("z") ? +params.get("z") : Math.floor(nz / 2);
    this.cy = params.has("y") ? +params.get("y") : ny / 2;
    this.cx = params.has("x") ? +params.get("x") : nx / 2;
    this.marker = params.has("y") ? [this.cy, this.cx] : null;
    // screen pixels per level-0 voxel: fit the whole plane at first
    this.zoom = Math.min(this.canvas.width / nx, this.canvas.height / ny);
    if (params.has("y")) this.zoom = Math.max(this.zoom, 2);
    this.pending = null;
    this.seq = 0;
    const zInput = document.getElementById("z");
    zInput.value = this.z;
    zInput.addEventListener("input", () => { this.z = +zInput.value; this.draw(); });
    for (const id of ["vmin", "vmax"]) document.getElementById(id).addEventListener("change", () => this.draw());
    this.canvas.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const [py, px] = this.toVoxel(ev.offsetX, ev.offsetY);
      const f = ev.deltaY < 0 ? 1.25 : 0.8;
      this.zoom = Math.min(Math.max(this.zoom * f, 1e-3), 32);
      this.cy = py - (ev.offsetY - this.canvas.height / 2) / this.zoom;
      this.cx = px - (ev.offsetX - this.canvas.width / 2) / this.zoom;
      this.draw();
    }, { passive: false });
    let drag = null;
    this.canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.offsetX, y: ev.offsetY, cx: this.cx, cy: this.cy, moved: false }; });
    this.canvas.addEventListener("mousemove", (ev) => {
      if (!drag) return;
      const dx = ev.offsetX - drag.x, dy = ev.offsetY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      this.cx = drag.cx - dx / this.zoom;
      this.cy = drag.cy - dy / this.zoom;
      if (drag.moved) this.draw();
    });
    this.canvas.addEventListener("mouseup", (ev) => {
      const click = drag && !drag.moved;
      drag = null;
      if (click) this.search(ev.offsetX, ev.offsetY);
    });
    this.draw();
  }

  toVoxel(sx, sy) {
    return [this.cy + (sy - this.canvas.height / 2) / this.zoom, this.cx + (sx - this.canvas.width / 2) / this.zoom];
  }

  chooseLevel() {
    // the coarsest level whose voxels are still no bigger than a screen pixel
    const [, ny0] = this.levels[0].shape;
    let best = 0;
    this.levels.forEach((l, i) => { if ((ny0 / l.shape[1]) * this.zoom <= 1.001) best = i; });
    return best;
  }

  draw() {
    const L = this.chooseLevel();
    const lv = this.levels[L];
    const [nz0, ny0, nx0] = this.levels[0].shape;
    const f = [nz0 / lv.shape[0], ny0 / lv.shape[1], nx0 / lv.shape[2]];
    const [y0v, x0v] = this.toVoxel(0, 0);
    const [y1v, x1v] = this.toVoxel(this.canvas.width, this.canvas.height);
    const ya = Math.max(0, Math.floor(y0v / f[1])), yb = Math.min(lv.shape[1], Math.ceil(y1v / f[1]));
    const xa = Math.max(0, Math.floor(x0v / f[2])), xb = Math.min(lv.shape[2], Math.ceil(x1v / f[2]));
    const zl = Math.min(lv.shape[0] - 1, Math.floor(this.z / f[0]));
    document.getElementById("zval").textContent = `z ${this.z} / ${nz0 - 1}`;
    document.getElementById("levelinfo").textContent = `level ${L} (${lv.path}), zoom ${this.zoom.toFixed(2)}`;
    const seq = ++this.seq;
    if (yb <= ya || xb <= xa) { this.paint(null); return; }
    const q = new URLSearchParams({ level: L, z: zl, y: `${ya}:${yb}`, x: `${xa}:${xb}`, format: "png" });
    const vmin = document.getElementById("vmin").value, vmax = document.getElementById("vmax").value;
    if (vmin !== "") q.set("vmin", vmin);
    if (vmax !== "") q.set("vmax", vmax);
    const img = new Image();
    img.onload = () => {
      if (seq !== this.seq) return; // a newer view was asked meanwhile
      this.paint({ img, sx: (ya * f[1]), sxx: (xa * f[2]), h: (yb - ya) * f[1], w: (xb - xa) * f[2] });
      this.canvas.dataset.loaded = String(seq);
      this.canvas.dataset.level = String(L);
    };
    img.onerror = () => { if (seq === this.seq) document.getElementById("levelinfo").textContent = "could not load the plane"; };
    img.src = `/api/records/${encodeURIComponent(this.rec.id)}/region?${q}`;
  }

  paint(tile) {
    const { ctx, canvas } = this;
    ctx.imageSmoothingEnabled = this.zoom < 1;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (tile) {
      const [sy, sx] = [(tile.sx - this.cy) * this.zoom + canvas.height / 2, (tile.sxx - this.cx) * this.zoom + canvas.width / 2];
      ctx.drawImage(tile.img, sx, sy, tile.w * this.zoom, tile.h * this.zoom);
    }
    if (this.marker) {
      const my = (this.marker[0] - this.cy) * this.zoom + canvas.height / 2;
      const mx = (this.marker[1] - this.cx) * this.zoom + canvas.width / 2;
      ctx.strokeStyle = "#ff3b3b";
      ctx.lineWidth = 2;
      ctx.strokeRect(mx - 8, my - 8, 16, 16);
    }
  }

  async search(sx, sy) {
    const [vy, vx] = this.toVoxel(sx, sy);
    const [, ny, nx] = this.levels[0].shape;
    if (vy < 0 || vx < 0 || vy >= ny || vx >= nx) return;
    const [y, x] = [Math.floor(vy), Math.floor(vx)];
    this.marker = [y, x];
    this.draw();
    const status = document.getElementById("search-status");
    const hits = document.getElementById("hits");
    status.textContent = `Searching around z ${this.z}, y ${y}, x ${x}…`;
    hits.innerHTML = "";
    try {
      const res = await api(`/api/search?${new URLSearchParams({ like: this.rec.id, z: this.z, y, x, k: 12 })}`);
      status.textContent = `${res.hits.length} similar patches to z ${this.z}, y ${y}, x ${x}`;
      hits.innerHTML = res.hits.map((h) => `
        <a class="hit" href="${esc(h.page_url)}">
          ${h.thumbnail_url ? `<img alt="hit" src="${esc(h.thumbnail_url)}">` : ""}
          <div>${esc(h.record_id)}</div>
          <div>z ${h.center_zyx.map((v) => Math.round(v)).join(", ")} · d ${(+h.distance).toFixed(3)}</div>
        </a>`).join("");
    } catch (err) {
      status.innerHTML = `<span class="error">${esc(err.message)}</span>`;
    }
  }
}

// -- jobs ------------------------------------------------------------------------------------

function jobsPage() {
  document.title = "emingest: jobs";
  main.innerHTML = `
    <h2>Jobs</h2>
    <form class="form" id="jobform">
      <label>source <input name="source" size="12" required placeholder="epfl"></label>
      <label>ids (space separated) <input name="ids" size="24"></label>
      <label>options (JSON) <input name="options" size="24" placeholder='{"levels": "1-2"}'></label>
      <label><span><input type="checkbox" name="force"> force</span></label>
      <label>token <input name="token" size="12" type="password"></label>
      <button type="submit">Start</button>
      <span id="job-error" class="error"></span>
    </form>
    <table id="jobs"><thead><tr><th>job</th><th>status</th><th>source / ids</th><th>progress</th><th>bytes</th><th>rate</th><th>ETA</th><th>volumes</th><th>errors</th><th></th></tr></thead><tbody></tbody></table>`;
  const form = document.getElementById("jobform");
  const headers = () => {
    const token = form.elements.token.value;
    return token ? { Authorization: `Bearer ${token}` } : {};
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("job-error");
    err.textContent = "";
    try {
      const options = form.elements.options.value ? JSON.parse(form.elements.options.value) : {};
      const body = { source: form.elements.source.value, ids: form.elements.ids.value.split(/\s+/).filter(Boolean), options, force: form.elements.force.checked };
      await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json", ...headers() }, body: JSON.stringify(body) });
      refresh();
    } catch (e) {
      err.textContent = e.message;
    }
  });
  async function refresh() {
    try {
      const { items } = await api("/api/jobs", { headers: headers() });
      document.querySelector("#jobs tbody").innerHTML = items.map((j) => {
        const pct = j.bytes_total ? Math.round((100 * j.bytes_done) / j.bytes_total) : (j.status === "complete" ? 100 : 0);
        return `<tr data-job="${esc(j.id)}">
          <td>${esc(j.id)}</td>
          <td class="${statusClass(j.status)} job-status">${esc(j.status)}</td>
          <td>${esc(j.source)} ${esc(j.ids.join(" "))}</td>
          <td><div class="bar"><div style="width:${pct}%"></div></div> ${pct}%</td>
          <td>${fmtBytes(j.bytes_done)} / ${fmtBytes(j.bytes_total)}</td>
          <td>${j.rate_bytes_per_s ? fmtBytes(j.rate_bytes_per_s) + "/s" : ""}</td>
          <td>${j.eta_s != null ? j.eta_s.toFixed(0) + " s" : ""}</td>
          <td>${j.volumes.map((v) => `${esc(v.id)}: <span class="${statusClass(v.status)}">${esc(v.status)}</span>`).join("<br>")}</td>
          <td class="error">${j.errors.map(esc).join("<br>")}</td>
          <td>${j.status === "running" || j.status === "queued" ? `<button data-cancel="${esc(j.id)}">Cancel</button>` : ""}</td>
        </tr>`;
      }).join("");
      document.getElementById("job-error").textContent = "";
    } catch (e) {
      document.getElementById("job-error").textContent = e.message;
    }
  }
  document.getElementById("jobs").addEventListener("click", async (ev) => {
    const id = ev.target.dataset.cancel;
    if (!id) return;
    try { await api(`/api/jobs/${encodeURIComponent(id)}`, { method: "DELETE", headers: headers() }); } catch (e) { document.getElementById("job-error").textContent = e.message; }
    refresh();
  });
  refresh();
  const timer = setInterval(refresh, 1000);
  stopPage = () => clearInterval(timer);
}

route();
