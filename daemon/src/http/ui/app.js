// Wayside's page: the four endpoints of API.md from a browser, no build
// step and no network beyond this box. Each view posts to its endpoint and
// renders the NDJSON lines as they arrive.
"use strict";

const $ = (id) => document.getElementById(id);

// Tabs.
for (const tab of document.querySelectorAll("nav [data-view]")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll("nav [data-view]")) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      $("view-" + t.dataset.view).hidden = !on;
    }
    if (tab.dataset.view === "cameras") watchCameras();
  });
}

function showError(el, message) {
  el.textContent = message;
  el.hidden = false;
}

function clearError(el) {
  el.textContent = "";
  el.hidden = true;
}

// Posts `body` and calls `onLine` with each JSON line of the answer as it
// arrives. Throws an Error whose message a person can read: the API's own
// {"error"} text with its status, a failure mid-stream, or no answer.
async function streamLines(url, init, onLine) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new Error("The box did not answer (" + e.message + "). Is it running?");
  }
  if (res.status === 401) {
    $("auth").hidden = false;
    throw new Error("this box needs an access token: enter it above, then try again.");
  }
  if (!res.ok) {
    let message = res.statusText;
    try {
      message = (await res.json()).error || message;
    } catch (_) { /* not JSON: keep the status text */ }
    throw new Error(message + " (HTTP " + res.status + ")");
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const text = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!text) continue;
      const line = JSON.parse(text);
      if (line.error) throw new Error(line.error);
      onLine(line);
    }
    if (done) break;
  }
}

// The token goes into a cookie, not a header: the annotated frames, videos
// and pictures the page shows are loaded by the browser itself.
$("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("auth-token").value.trim();
  document.cookie = "wayside_token=" + token + "; path=/; SameSite=Strict";
  $("auth").hidden = true;
});

function clock(ms) {
  const s = Math.floor(ms / 1000);
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return mm + ":" + ss + "." + String(ms % 1000).padStart(3, "0").slice(0, 1);
}

// --- Video ---------------------------------------------------------------

const samples = [];

function drawChart() {
  const canvas = $("video-chart");
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  if (!samples.length) return;
  const pad = 28;
  const max = Math.max(1, ...samples.map((s) => Math.max(s.people_count, s.vehicle_count,
    s.pedestrians_per_interval, s.vehicles_per_interval)));
  const step = (w - pad) / Math.max(samples.length, 1);
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  const style = getComputedStyle(document.documentElement);
  const colours = [style.getPropertyValue("--ped"), style.getPropertyValue("--veh")];
  ctx.fillStyle = "#666";
  ctx.font = "12px sans-serif";
  ctx.fillText(String(max), 2, pad);
  ctx.fillText("0", 2, h - pad);
  ctx.fillText(clock(samples[samples.length - 1].timestamp), w - 60, h - 8);
  // Bars: passed in the window, side by side.
  samples.forEach((s, i) => {
    const x = pad + i * step;
    [s.pedestrians_per_interval, s.vehicles_per_interval].forEach((v, k) => {
      if (!v) return;
      ctx.fillStyle = colours[k];
      ctx.globalAlpha = 0.35;
      ctx.fillRect(x + (k * step) / 2, y(v), Math.max(step / 2 - 1, 1), h - pad - y(v));
    });
  });
  ctx.globalAlpha = 1;
  // Lines: objects in the frame.
  ["people_count", "vehicle_count"].forEach((key, k) => {
    ctx.strokeStyle = colours[k];
    ctx.lineWidth = 2;
    ctx.beginPath();
    samples.forEach((s, i) => {
      const x = pad + i * step + step / 2;
      if (i) ctx.lineTo(x, y(s[key])); else ctx.moveTo(x, y(s[key]));
    });
    ctx.stroke();
  });
}

function csv(summary) {
  const rows = ["index,timestamp_ms,pedestrian_count,vehicle_count,pedestrians_per_interval,vehicles_per_interval"];
  const interval = Number($("video-interval").value);
  summary.pedestrian_counts.forEach((_, i) => {
    rows.push([i, i * interval, summary.pedestrian_counts[i], summary.vehicle_counts[i],
      summary.pedestrians_per_interval[i], summary.vehicles_per_interval[i]].join(","));
  });
  return rows.join("\n") + "\n";
}

function blobUrl(text, type) {
  return URL.createObjectURL(new Blob([text], { type }));
}

$("video-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = $("video-error");
  clearError(error);
  samples.length = 0;
  drawChart();
  $("video-done").hidden = true;
  $("video-run").disabled = true;
  const form = new FormData();
  form.append("video", $("video-file").files[0]);
  form.append("interval", $("video-interval").value);
  $("video-status").textContent = "Uploading…";
  try {
    await streamLines("/video-streaming?summary=true", { method: "POST", body: form }, (line) => {
      if (line.summary) {
        const s = line.summary;
        $("video-result").src = s.processed_video_url;
        $("video-csv").href = blobUrl(csv(s), "text/csv");
        $("video-json").href = blobUrl(JSON.stringify(s, null, 1), "application/json");
        $("video-done").hidden = false;
        const passed = (a) => a.reduce((x, y) => x + y, 0);
        $("video-status").textContent = "Done: " + s.pedestrian_counts.length + " samples, " +
          passed(s.pedestrians_per_interval) + " pedestrians and " +
          passed(s.vehicles_per_interval) + " vehicles passed, in " +
          (s.processing_ms / 1000).toFixed(1) + " s.";
        return;
      }
      samples.push(line);
      if (line.frame_base64) $("video-frame").src = line.frame_base64;
      $("video-now").textContent = clock(line.timestamp) + ": " + line.people_count +
        " pedestrians, " + line.vehicle_count + " vehicles in the frame";
      $("video-status").textContent = "Processing… " + samples.length + " samples";
      drawChart();
    });
  } catch (e) {
    showError(error, "Video not processed: " + e.message);
    $("video-status").textContent = "";
  } finally {
    $("video-run").disabled = false;
  }
});

// --- Cameras -------------------------------------------------------------

// While the tab is open, /cameras is read every CAMERA_POLL_MS and each
// tile's picture reloaded when the camera has drawn a newer one.
const CAMERA_POLL_MS = 2000;
let camerasTimer = null;

function cameraTile(c) {
  let tile = document.querySelector('.tile[data-camera="' + CSS.escape(c.name) + '"]');
  if (!tile) {
    tile = document.createElement("figure");
    tile.className = "tile";
    tile.dataset.camera = c.name;
    const img = document.createElement("img");
    img.alt = "Camera " + c.name + ", latest annotated frame";
    const cap = document.createElement("figcaption");
    tile.append(img, cap);
    $("cameras-tiles").append(tile);
  }
  const img = tile.querySelector("img");
  img.hidden = !c.preview;
  if (c.preview && img.dataset.at !== String(c.preview.unix_ms)) {
    img.dataset.at = String(c.preview.unix_ms);
    img.src = c.preview.url + "?at=" + c.preview.unix_ms;
  }
  tile.classList.toggle("down", !c.up);
  const lines = [c.name + (c.up ? " · " + c.fps.toFixed(1) + " fps" : " · DOWN")];
  if (!c.up && c.error) lines.push(c.error);
  if (c.preview) {
    lines.push("now: " + c.preview.people_count + " pedestrians, " +
      c.preview.vehicle_count + " vehicles");
  }
  const w = c.last_window;
  if (w && w.ts !== undefined) {
    lines.push("last " + Math.round(w.window_ms / 1000) + " s window (" +
      new Date(w.ts).toLocaleTimeString() + "): " + w.pedestrians_per_interval +
      " pedestrians, " + w.vehicles_per_interval + " vehicles passed");
  }
  tile.querySelector("figcaption").innerText = lines.join("\n");
}

async function pollCameras() {
  const error = $("cameras-error");
  try {
    const res = await fetch("/cameras");
    if (res.status === 401) {
      $("auth").hidden = false;
      throw new Error("this box needs an access token: enter it above.");
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    const { cameras } = await res.json();
    clearError(error);
    $("cameras-status").textContent = cameras.length
      ? cameras.filter((c) => c.up).length + " of " + cameras.length + " cameras up."
      : "No cameras on this box: add a [[camera]] to its config.";
    cameras.forEach(cameraTile);
  } catch (e) {
    showError(error, "Cannot read the cameras: " + e.message);
  }
}

function watchCameras() {
  if (camerasTimer !== null) return;
  pollCameras();
  camerasTimer = setInterval(() => {
    if ($("view-cameras").hidden) {
      clearInterval(camerasTimer);
      camerasTimer = null;
    } else {
      pollCameras();
    }
  }, CAMERA_POLL_MS);
}

// --- Galleries -----------------------------------------------------------

function card(src, lines) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = lines[0];
  img.loading = "lazy";
  const cap = document.createElement("figcaption");
  cap.innerText = lines.join("\n");
  fig.append(img, cap);
  return fig;
}

async function search(view, url, init, toCard) {
  const error = $(view + "-error");
  const results = $(view + "-results");
  clearError(error);
  results.replaceChildren();
  $(view + "-run").disabled = true;
  $(view + "-status").textContent = "Searching…";
  let n = 0;
  try {
    await streamLines(url, init, (line) => {
      results.append(toCard(line));
      n += 1;
      $(view + "-status").textContent = n + " found so far…";
    });
    $(view + "-status").textContent = n ? n + " found." : "Nothing found.";
  } catch (e) {
    showError(error, "Search failed: " + e.message);
    $(view + "-status").textContent = "";
  } finally {
    $(view + "-run").disabled = false;
  }
}

function where(line) {
  return [line.source, line.captured_at].filter(Boolean).join(" · ");
}

// --- Faces ---------------------------------------------------------------

const drop = $("face-drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  $("face-file").files = ev.dataTransfer.files;
});

$("face-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = new FormData();
  form.append("image", $("face-file").files[0]);
  const min = $("face-min-score").value;
  if (min !== "") form.append("min_score", min);
  search("face", "/face-detect", { method: "POST", body: form }, (line) =>
    card(line.similar_face, [clock(line.time) + " · score " + line.score.toFixed(2), where(line)]));
});

// --- Plates --------------------------------------------------------------

$("plate-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = JSON.stringify({ licence_plate: $("plate-text").value });
  search("plate", "/licence-plate",
    { method: "POST", headers: { "content-type": "application/json" }, body },
    (line) => card(line.car_image, [(line.licence_plate || "") + " · " + clock(line.time), where(line)]));
});
