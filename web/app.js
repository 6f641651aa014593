// ferrite web app: live camera over a WebSocket, a per-person chart, CSV export, photo upload.
"use strict";

const CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"];
const COLORS = {
  angry: "rgb(220,40,40)", disgust: "rgb(120,160,30)", fear: "rgb(150,70,200)", happy: "rgb(250,190,20)",
  neutral: "rgb(140,140,140)", sad: "rgb(40,100,220)", surprise: "rgb(250,120,20)", uncertain: "rgb(255,255,255)",
};
const $ = (id) => document.getElementById(id);

// ---- state ----
let stream = null, ws = null, inFlight = 0, timer = null;
let timeline = [];            // every result row of this session, for the CSV
let frameTimes = [];          // arrival times of the last results, for fps
const WINDOW_S = 60;

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

// ---- health / model info ----
fetch("/api/v1/health").then((r) => r.json()).then((h) => {
  $("model-info").textContent = `model: ${h.model} · ferrite ${h.version}`;
  if (h.video_feed) {
    $("feed-section").hidden = false;
    $("feed").src = "/video_feed";
  }
}).catch(() => { $("model-info").textContent = "server not reachable"; });

// ---- drawing ----
function drawFaces(ctx, faces, sx, sy, withId) {
  ctx.lineWidth = 3;
  ctx.font = "bold 15px system-ui, sans-serif";
  for (const f of faces) {
    const color = COLORS[f.label] || "#fff";
    const b = f.box;
    ctx.strokeStyle = color;
    ctx.strokeRect(b.x * sx, b.y * sy, b.w * sx, b.h * sy);
    const p = f.probabilities[f.label] ?? Math.max(...Object.values(f.probabilities));
    const text = `${withId ? "#" + f.id + " " : ""}${f.label} ${Math.round(100 * p)}%`;
    const tw = ctx.measureText(text).width + 8;
    const ty = Math.max(0, b.y * sy - 20);
    ctx.fillStyle = color;
    ctx.fillRect(b.x * sx, ty, tw, 20);
    ctx.fillStyle = "#000";
    ctx.fillText(text, b.x * sx + 4, ty + 15);
  }
}

// ---- live camera ----
async function startCamera() {
  const status = $("camera-status");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus(status, "This browser cannot use a camera on this page (it needs HTTPS or localhost).", true);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    const msg = e.name === "NotAllowedError" || e.name === "SecurityError"
      ? "Camera access was refused. Allow the camera for this site in the browser settings, then press Start again."
      : e.name === "NotFoundError" || e.name === "OverconstrainedError"
        ? "No camera was found. Connect one and press Start again."
        : e.name === "NotReadableError"
          ? "The camera is in use by another program."
          : `The camera could not be started (${e.name}: ${e.message}).`;
    setStatus(status, msg, true);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play().catch(() => {});
  $("start-camera").disabled = true;
  $("stop-camera").disabled = false;
  setStatus(status, "Camera on. Connecting…");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/api/v1/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { setStatus(status, "Live: analysing frames."); pump(); };
  ws.onclose = () => {
    if (stream) setStatus(status, "The connection to the server closed (server busy or stopped). Press Stop, then Start to retry.", true);
  };
  ws.onerror = () => setStatus(status, "WebSocket error: is the server running?", true);
  ws.onmessage = (ev) => onResult(JSON.parse(ev.data));
}

function stopCamera() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  if (ws) ws.close();
  ws = null;
  inFlight = 0;
  clearTimeout(timer);
  $("start-camera").disabled = false;
  $("stop-camera").disabled = true;
  setStatus($("camera-status"), "Camera off.");
  const o = $("overlay");
  o.getContext("2d").clearRect(0, 0, o.width, o.height);
}

const grab = document.createElement("canvas");
function pump() {
  if (!ws || ws.readyState !== WebSocket.OPEN || !stream) return;
  const video = $("video");
  if (inFlight >= 1 || !video.videoWidth) { timer = setTimeout(pump, 30); return; }
  const scale = Math.min(1, 640 / video.videoWidth);
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  inFlight++;
  grab.toBlob((blob) => {
    if (blob && ws && ws.readyState === WebSocket.OPEN) ws.send(blob); else inFlight--;
  }, "image/jpeg", 0.85);
}

function onResult(msg) {
  if (msg.type === "error") { inFlight = Math.max(0, inFlight - 1); setStatus($("camera-status"), "Server: " + msg.message, true); pump(); return; }
  if (msg.type !== "result") return;
  inFlight = Math.max(0, inFlight - 1);
  const video = $("video"), o = $("overlay");
  o.width = video.videoWidth; o.height = video.videoHeight;
  const ctx = o.getContext("2d");
  ctx.clearRect(0, 0, o.width, o.height);
  drawFaces(ctx, msg.faces, o.width / msg.width, o.height / msg.height, true);
  const now = performance.now();
  frameTimes.push(now);
  frameTimes = frameTimes.filter((t) => now - t < 2000);
  $("faces-count").textContent = `${msg.faces.length} face${msg.faces.length === 1 ? "" : "s"}`;
  $("live-fps").textContent = `${(frameTimes.length / 2).toFixed(1)} fps`;
  $("live-latency").textContent = `${msg.ms} ms server`;
  $("live-dropped").textContent = `${msg.dropped} dropped`;
  const ul = $("live-labels");
  ul.replaceChildren(...msg.faces.map((f) => {
    const li = document.createElement("li");
    li.textContent = `#${f.id} ${f.label}`;
    li.style.background = COLORS[f.label];
    return li;
  }));
  for (const f of msg.faces) timeline.push({ t: msg.t, frame: msg.frame, id: f.id, label: f.label, box: f.box, p: f.probabilities });
  $("download-csv").disabled = timeline.length === 0;
  drawChart();
  pump();
}

// ---- chart: each person's probabilities over the last minute ----
function drawChart() {
  const c = $("chart");
  const rows = timeline.filter((r) => timeline.length && r.t >= timeline[timeline.length - 1].t - WINDOW_S);
  const ids = [...new Set(rows.map((r) => r.id))].slice(-4);
  const panelH = 120;
  c.height = Math.max(1, ids.length) * panelH;
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const tEnd = rows.length ? rows[rows.length - 1].t : 0;
  // The last minute; while the session is younger, the time it has run (at least 10 s).
  const span = Math.min(WINDOW_S, Math.max(10, tEnd - (rows.length ? rows[0].t : 0)));
  const x = (t) => 40 + (c.width - 50) * (1 - (tEnd - t) / span);
  ids.forEach((id, k) => {
    const top = k * panelH, y = (p) => top + 10 + (panelH - 30) * (1 - p);
    ctx.fillStyle = "#333"; ctx.font = "12px system-ui";
    ctx.fillText(`#${id}`, 4, top + 16);
    ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
    ctx.strokeRect(40, top + 10, c.width - 50, panelH - 30);
    const mine = rows.filter((r) => r.id === id);
    for (const cls of CLASSES) {
      ctx.strokeStyle = COLORS[cls]; ctx.lineWidth = 2; ctx.beginPath();
      mine.forEach((r, i) => { const px = x(r.t), py = y(r.p[cls]); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
      ctx.stroke();
    }
  });
  c.dataset.points = String(rows.length);
}

$("legend").innerHTML = CLASSES.map((c) => `<span><i style="background:${COLORS[c]}"></i>${c}</span>`).join("");

function downloadCsv() {
  const head = ["time_s", "frame", "track", "label", "x", "y", "w", "h", ...CLASSES].join(",");
  const lines = timeline.map((r) => [r.t, r.frame, r.id, r.label, r.box.x, r.box.y, r.box.w, r.box.h, ...CLASSES.map((c) => r.p[c])].join(","));
  const blob = new Blob([head + "\n" + lines.join("\n") + "\n"], { type: "text/csv" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "ferrite-timeline.csv";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// ---- photo upload ----
async function analyzePhoto(file) {
  const status = $("photo-status");
  setStatus(status, "Analysing…");
  let res, body;
  try {
    res = await fetch("/api/v1/analyze", { method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
    body = await res.json();
  } catch (e) {
    setStatus(status, "Upload failed: " + e.message, true);
    return;
  }
  if (!res.ok) { setStatus(status, body.error ? body.error.message : `error ${res.status}`, true); return; }
  const img = new Image();
  img.onload = () => {
    const c = $("photo-canvas");
    const scale = Math.min(1, 900 / img.width);
    c.width = Math.round(img.width * scale); c.height = Math.round(img.height * scale);
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0, c.width, c.height);
    drawFaces(ctx, body.faces, c.width / body.width, c.height / body.height, false);
    URL.revokeObjectURL(img.src);
  };
  img.src = URL.createObjectURL(file);
  const table = $("photo-results");
  table.tHead.innerHTML = `<tr><th>face</th><th>label</th>${CLASSES.map((c) => `<th>${c}</th>`).join("")}</tr>`;
  table.tBodies[0].innerHTML = body.faces.map((f, i) =>
    `<tr><td>${i + 1}</td><td style="background:${COLORS[f.label]}">${f.label}</td>${CLASSES.map((c) => `<td>${(100 * f.probabilities[c]).toFixed(1)}%</td>`).join("")}</tr>`).join("");
  setStatus(status, `${body.faces.length} face${body.faces.length === 1 ? "" : "s"} found in ${body.ms} ms.`);
}

$("start-camera").addEventListener("click", startCamera);
$("stop-camera").addEventListener("click", stopCamera);
$("download-csv").addEventListener("click", downloadCsv);
$("photo-input").addEventListener("change", (e) => { if (e.target.files[0]) analyzePhoto(e.target.files[0]); });
