// Browser test of the ferrite web app in real headless Chromium (Debian's package), driven by
// playwright-core. Chromium's fake camera plays a video with faces (a .y4m file).
// Usage: node run.mjs URL CAMERA.y4m PHOTO SCREENSHOT_DIR
// Exits non-zero, with a message, when the page does not do what it should.
import { chromium } from "playwright-core";

const [url, y4m, photo, shots] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-video-capture=${y4m}`,
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1400 }, permissions: ["camera"] });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("model-info").textContent.startsWith("model:"), null, { timeout: 15000 });

  // Live camera: boxes and labels over the video, the chart fills.
  await page.click("#start-camera");
  await page.waitForFunction(() => /^[1-9]\d* face/.test(document.getElementById("faces-count").textContent), null, { timeout: 60000 })
    .catch(() => fail("no faces reported from the live camera: " + errors.join("; ")));
  const firstPoints = Number(await page.getAttribute("#chart", "data-points"));
  await page.waitForFunction((n) => Number(document.getElementById("chart").dataset.points) > n + 3, firstPoints, { timeout: 60000 })
    .catch(() => fail("the chart did not update"));
  const overlay = await page.evaluate(() => {
    const c = document.getElementById("overlay");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let drawn = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) drawn++;
    return { drawn, w: c.width, h: c.height };
  });
  if (overlay.drawn < 500) fail(`overlay has too few drawn pixels: ${JSON.stringify(overlay)}`);
  const labels = await page.$$eval("#live-labels li", (lis) => lis.map((l) => l.textContent));
  if (!labels.length || !labels.every((l) => /^#\d+ (angry|disgust|fear|happy|neutral|sad|surprise|uncertain)$/.test(l))) {
    fail("bad live labels: " + JSON.stringify(labels));
  }
  await page.screenshot({ path: `${shots}/live.png`, fullPage: true });

  // The timeline downloads as CSV.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-csv")]);
  const csvPath = await download.path();
  const { readFileSync } = await import("node:fs");
  const csv = readFileSync(csvPath, "utf8").trim().split("\n");
  if (!csv[0].startsWith("time_s,frame,track,label") || csv.length < 3) fail("bad CSV download: " + csv.slice(0, 3).join(" | "));
  await page.click("#stop-camera");

  // Photo upload: annotated result and probabilities.
  await page.setInputFiles("#photo-input", photo);
  await page.waitForFunction(() => document.querySelectorAll("#photo-results tbody tr").length > 0, null, { timeout: 30000 })
    .catch(() => fail("the upload showed no faces: " + errors.join("; ")));
  const rows = await page.$$eval("#photo-results tbody tr", (trs) => trs.length);
  await page.locator("#photo").screenshot({ path: `${shots}/upload.png` });
  if (errors.length) fail("page errors: " + errors.join("; "));
  // Without a camera (no fake device, permission denied): a clear message, no crash.
  const bare = await chromium.launch({
    executablePath, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--deny-permission-prompts"],
  });
  let cameraMessage = "";
  try {
    const p2 = await (await bare.newContext()).newPage();
    await p2.goto(url);
    await p2.click("#start-camera");
    await p2.waitForFunction(() => document.getElementById("camera-status").classList.contains("error"), null, { timeout: 15000 })
      .catch(() => fail("no error message when the camera is unavailable"));
    cameraMessage = await p2.textContent("#camera-status");
    if (!/refused|No camera|could not be started|cannot use a camera/.test(cameraMessage)) fail("unclear camera message: " + cameraMessage);
    await p2.locator("#live").screenshot({ path: `${shots}/no-camera.png` });
  } finally {
    await bare.close();
  }
  console.log(JSON.stringify({ ok: true, no_camera_message: cameraMessage, live_faces_labels: labels, chart_points: Number(await page.getAttribute("#chart", "data-points")), csv_rows: csv.length - 1, upload_faces: rows }));
} finally {
  await browser.close();
}
