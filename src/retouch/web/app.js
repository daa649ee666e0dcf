// Retouch playground: calls the public API from this origin, exactly as any client would.
"use strict";

(() => {
  const KEY_STORAGE = "retouch.playground.apiKey";
  const LABELS = {
    "remove-background": ["Remove background", "Removing the background…"],
    upscale: ["Upscale", "Upscaling…"],
    outpaint: ["Outpaint", "Extending the canvas…"],
    "generate-background": ["Generate background", "Generating a background…"],
    "try-on": ["Try on", "Submitting the try-on job…"],
  };
  // How a try-on job's status reads, and how often it is asked for.
  const JOB_STEPS = ["pending", "running", "completed"];
  const JOB_LABELS = { pending: "Queued", running: "Running", completed: "Done" };
  const JOB_POLL_MS = 1000;
  // Failed polls in a row (a node restarting, say) before the page stops asking.
  const JOB_POLL_FAILURES = 5;
  const ACCEPTED = ["image/png", "image/jpeg", "image/webp"];

  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const keyInput = $("api-key");
  const remember = $("remember");
  const fileInput = $("image");
  const drop = $("drop");
  const dropText = $("drop-text");
  const runButton = $("run");
  const statusLine = $("status");
  const errorBox = $("error");
  const creditsBox = $("credits-box");
  const creditsLeft = $("credits-left");
  const frame = $("frame");
  const placeholder = $("placeholder");
  const before = $("before");
  const after = $("after");
  const slider = $("slider");
  const divider = $("divider");
  const download = $("download");
  const meta = $("meta");
  const charge = $("charge");
  const imageLabel = $("image-label");
  const garmentInput = $("garment");
  const garmentDrop = $("garment-drop");
  const garmentText = $("garment-text");
  const garmentPreview = $("garment-preview");
  const jobBox = $("job");
  const jobIdText = $("job-id");
  const cancelButton = $("cancel");

  let file = null;
  let garment = null;
  let garmentUrl = null;
  let currentJob = null;
  let beforeUrl = null;
  let afterUrl = null;
  let busy = false;

  // --- API key -------------------------------------------------------------------------------
  // Kept in sessionStorage only when asked (it dies with the tab), never in localStorage.

  const stored = sessionStorage.getItem(KEY_STORAGE);
  if (stored) {
    keyInput.value = stored;
    remember.checked = true;
  }

  function rememberKey() {
    if (remember.checked && keyInput.value.trim()) {
      sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim());
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
    }
  }

  remember.addEventListener("change", rememberKey);

  let creditsRequest = 0;
  async function loadCredits() {
    const key = keyInput.value.trim();
    rememberKey();
    if (!key) {
      creditsBox.hidden = true;
      return;
    }
    // Only the answer to the latest key counts when several requests overlap.
    const ticket = ++creditsRequest;
    try {
      const response = await fetch("/v1/credits", { headers: { "X-API-KEY": key } });
      if (ticket !== creditsRequest) return;
      if (!response.ok) {
        showError(await readError(response));
        creditsBox.hidden = true;
        return;
      }
      const body = await response.json();
      hideError();
      showCredits(body.credits_remaining);
    } catch {
      if (ticket === creditsRequest) showError({ message: "The server could not be reached." });
    }
  }

  // The balance once a job has ended (charged or refunded), leaving any message shown alone.
  async function refreshCredits() {
    try {
      const response = await fetch("/v1/credits", {
        headers: { "X-API-KEY": keyInput.value.trim() },
      });
      if (response.ok) showCredits((await response.json()).credits_remaining);
    } catch {
      // The balance shown stays as it was; the next lookup corrects it.
    }
  }

  function showCredits(value) {
    if (value == null) return;
    creditsLeft.value = String(value);
    creditsBox.hidden = false;
  }

  // Typing settles before the balance is asked for, so a key isn't sent once per keystroke.
  let typingTimer = 0;
  keyInput.addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(loadCredits, 400);
  });
  keyInput.addEventListener("change", () => {
    clearTimeout(typingTimer);
    loadCredits();
  });
  if (keyInput.value) loadCredits();

  // --- Image ---------------------------------------------------------------------------------

  function chooseFile(chosen) {
    if (!chosen || !acceptable(chosen)) return;
    hideError();
    file = chosen;
    dropText.textContent = `${chosen.name || "Pasted image"} · ${formatBytes(chosen.size)}`;
    drop.classList.add("has-file");
    if (beforeUrl) URL.revokeObjectURL(beforeUrl);
    beforeUrl = URL.createObjectURL(chosen);
    clearResult();
    before.onload = () => {
      setAspect(before.naturalWidth, before.naturalHeight);
      meta.textContent = `Original · ${before.naturalWidth} × ${before.naturalHeight} px`;
    };
    before.src = beforeUrl;
    placeBefore(null);
    placeholder.hidden = true;
    frame.hidden = false;
  }

  fileInput.addEventListener("change", () => chooseFile(fileInput.files[0]));

  function acceptable(chosen) {
    if (ACCEPTED.includes(chosen.type)) return true;
    showError({ message: `${chosen.name || "That file"} is not a JPEG, PNG or WebP image.` });
    return false;
  }

  function chooseGarment(chosen) {
    if (!chosen || !acceptable(chosen)) return;
    hideError();
    garment = chosen;
    garmentText.textContent = `${chosen.name || "Garment"} · ${formatBytes(chosen.size)}`;
    garmentDrop.classList.add("has-file");
    if (garmentUrl) URL.revokeObjectURL(garmentUrl);
    garmentUrl = URL.createObjectURL(chosen);
    garmentPreview.src = garmentUrl;
    garmentPreview.hidden = false;
  }

  garmentInput.addEventListener("change", () => chooseGarment(garmentInput.files[0]));

  function dropZone(zone, choose) {
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "drop"]) {
      zone.addEventListener(type, () => zone.classList.remove("dragging"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      choose(event.dataTransfer.files[0]);
    });
  }
  dropZone(drop, chooseFile);
  dropZone(garmentDrop, chooseGarment);
  // A file dropped beside the zone would otherwise replace the page with the image.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.kind === "file");
    if (item) chooseFile(item.getAsFile());
  });

  // --- Operation and parameters --------------------------------------------------------------

  function operation() {
    return form.elements.operation.value;
  }

  function showParameters() {
    const chosen = operation();
    for (const fieldset of form.querySelectorAll(".params")) {
      const active = fieldset.dataset.operation === chosen;
      fieldset.hidden = !active;
      // A disabled fieldset keeps its fields out of the form's data.
      fieldset.disabled = !active;
    }
    runButton.textContent = LABELS[chosen][0];
    // Try-on's first image is the person; the label says so (its last node is the text).
    imageLabel.lastChild.nodeValue = chosen === "try-on" ? " Person" : " Image";
  }

  for (const radio of form.elements.operation) radio.addEventListener("change", showParameters);
  showParameters();

  form.elements.crop.addEventListener("change", () => {
    form.elements.margin.disabled = !form.elements.crop.checked;
  });
  $("creativity").addEventListener("input", (event) => {
    $("creativity-value").value = event.target.value;
  });

  function buildBody(chosen) {
    const body = new FormData();
    const fields = form.elements;
    if (chosen === "try-on") {
      body.append("person_image", file, file.name || "person");
      body.append("garment_image", garment, garment.name || "garment");
      body.append("garment_mode", fields.garment_mode.value);
      body.append("preprocess_garment", String(fields.preprocess_garment.checked));
      body.append("remove_background", String(fields.remove_background.checked));
      // Answered at once with the job to poll, so the page can show how it goes.
      body.append("wait_for_result", "false");
      return body;
    }
    body.append("image", file, file.name || "image");
    if (chosen === "remove-background") {
      body.append("crop", String(fields.crop.checked));
      const margin = fields.margin.value.trim();
      if (fields.crop.checked && margin) body.append("margin", margin);
      if (fields.shadow.checked) body.append("shadow", "true");
    } else if (chosen === "upscale") {
      body.append("scale", fields.scale.value);
    } else if (chosen === "outpaint") {
      for (const side of ["left", "top", "right", "bottom"]) {
        body.append(side, String(Number(fields[side].value) || 0));
      }
      body.append("creativity", fields.creativity.value);
      body.append("output_format", fields.output_format.value);
    } else if (chosen === "generate-background") {
      if (fields.scene.value) body.append("scene", fields.scene.value);
      const prompt = fields.prompt.value.trim();
      if (prompt) body.append("prompt", prompt);
    }
    return body;
  }

  function checkInputs(chosen) {
    if (!keyInput.value.trim()) return ["Enter your API key first.", keyInput];
    if (!file) {
      const what = chosen === "try-on" ? "a photo of the person" : "an image";
      return [`Choose ${what} first.`, fileInput];
    }
    if (chosen === "try-on" && !garment) return ["Choose a garment image too.", garmentInput];
    if (chosen === "remove-background" && !form.elements.margin.checkValidity()) {
      return ["Write the margin as a percentage or in pixels, e.g. 5% or 20px.",
        form.elements.margin];
    }
    if (chosen === "outpaint") {
      const sides = ["left", "top", "right", "bottom"].map((name) => form.elements[name]);
      const bad = sides.find((input) => !input.checkValidity());
      if (bad) return ["Each side takes 0 to 2000 pixels.", bad];
      if (sides.every((input) => !Number(input.value))) {
        return ["Add pixels to at least one side.", sides[2]];
      }
    }
    return null;
  }

  // --- Running -------------------------------------------------------------------------------

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const chosen = operation();
    const problem = checkInputs(chosen);
    if (problem) {
      showError({ message: problem[0] });
      problem[1].focus();
      return;
    }
    hideError();
    jobBox.hidden = true;
    setBusy(true, LABELS[chosen][1]);
    const started = performance.now();
    try {
      const done = chosen === "try-on" ? await runTryOn() : await runImage(chosen);
      if (done) setStatus(`Done in ${secondsSince(started)} s.`, true);
    } finally {
      setBusy(false);
    }
  });

  // The image endpoints answer with the image itself. True once it is shown.
  async function runImage(chosen) {
    let response;
    try {
      response = await fetch(`/v1/${chosen}`, {
        method: "POST",
        headers: { "X-API-KEY": keyInput.value.trim(), Accept: "image/*" },
        body: buildBody(chosen),
      });
    } catch {
      return fail({ message: "The server could not be reached." });
    }
    if (!response.ok) return fail(await readError(response));
    try {
      await showResult(await response.blob(), chosen, response.headers);
    } catch {
      return fail({ message: "The result arrived but could not be shown as an image." });
    }
    return true;
  }

  // Try-on is a job: submitted without waiting, then polled until it ends, its progress shown
  // on the way. True once the result is shown.
  async function runTryOn() {
    const key = keyInput.value.trim();
    const json = { "X-API-KEY": key, Accept: "application/json" };
    let submitted;
    try {
      submitted = await fetch("/v1/try-on", {
        method: "POST",
        headers: json,
        body: buildBody("try-on"),
      });
    } catch {
      return fail({ message: "The server could not be reached." });
    }
    if (!submitted.ok) return fail(await readError(submitted));
    let job = await readJob(submitted);
    if (!job) return fail({ message: "The server did not answer with a job." });
    const started = performance.now();
    currentJob = job.job_id;
    showJob(job, started);
    let failures = 0;
    while (job.status === "pending" || job.status === "running") {
      await sleep(JOB_POLL_MS);
      let polled;
      try {
        polled = await fetch(`/v1/try-on/job/${encodeURIComponent(currentJob)}`, { headers: json });
      } catch {
        if (++failures < JOB_POLL_FAILURES) continue;
        return endJob(fail({ message: "The server stopped answering; the job may still finish." }));
      }
      if (!polled.ok) return endJob(fail(await readError(polled)));
      failures = 0;
      const next = await readJob(polled);
      if (!next) return endJob(fail({ message: "The server did not answer with a job." }));
      job = next;
      showJob(job, started);
    }
    refreshCredits();
    if (job.status !== "completed") {
      const error = job.error || {};
      if (error.error_code === "job_cancelled") {
        setStatus("Cancelled: nothing was charged.");
        return endJob(false);
      }
      return endJob(fail({ message: error.message || "The job failed.", code: error.error_code }));
    }
    endJob(true);
    const target = new URL(job.result_url, location.href);
    if (target.origin !== location.origin) {
      // A presigned storage URL, say: this page's policy loads only from this origin.
      setStatus("Done. The result is on another host, which this page does not load: ");
      const link = document.createElement("a");
      link.href = target.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = "Open the result";
      statusLine.append(link);
      return false;
    }
    try {
      const result = await fetch(target.href);
      if (!result.ok) return fail(await readError(result));
      await showResult(await result.blob(), "try-on", submitted.headers);
    } catch {
      return fail({ message: "The result could not be loaded as an image." });
    }
    return true;
  }

  // A job document, or null when the body is not one (a proxy's page, say).
  async function readJob(response) {
    try {
      const body = await response.json();
      return body && typeof body.job_id === "string" ? body : null;
    } catch {
      return null;
    }
  }

  function showJob(job, started) {
    jobBox.hidden = false;
    jobIdText.textContent = job.job_id;
    const at = JOB_STEPS.indexOf(job.status);
    for (const step of jobBox.querySelectorAll("li")) {
      const index = JOB_STEPS.indexOf(step.dataset.status);
      step.classList.toggle("done", index < at || job.status === "completed");
      if (index === at && job.status !== "completed") step.setAttribute("aria-current", "step");
      else step.removeAttribute("aria-current");
    }
    const label = JOB_LABELS[job.status];
    if (label && job.status !== "completed") setStatus(`${label}… ${secondsSince(started)} s`);
    cancelButton.hidden = !(job.status === "pending" || job.status === "running");
  }

  // The job is over either way: nothing left to cancel.
  function endJob(result) {
    currentJob = null;
    cancelButton.hidden = true;
    cancelButton.disabled = false;
    return result;
  }

  cancelButton.addEventListener("click", async () => {
    if (!currentJob) return;
    cancelButton.disabled = true;
    setStatus("Cancelling…");
    try {
      const response = await fetch(`/v1/try-on/job/${encodeURIComponent(currentJob)}/cancel`, {
        method: "POST",
        headers: { "X-API-KEY": keyInput.value.trim(), Accept: "application/json" },
      });
      // 409: it finished meanwhile, and the next poll shows how.
      if (!response.ok && response.status !== 409) showError(await readError(response));
    } catch {
      showError({ message: "The server could not be reached." });
    }
  });

  function fail(error) {
    showError(error);
    setStatus("");
    return false;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function secondsSince(started) {
    return ((performance.now() - started) / 1000).toFixed(1);
  }

  async function readError(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") {
        return { message: body.error, code: body.error_code, status: response.status };
      }
    } catch {
      // Not the API's JSON envelope (a proxy's page, say): fall through to the status line.
    }
    return { message: `${response.status} ${response.statusText}`.trim(), status: response.status };
  }

  async function showResult(blob, chosen, headers) {
    if (afterUrl) URL.revokeObjectURL(afterUrl);
    afterUrl = URL.createObjectURL(blob);
    after.src = afterUrl;
    await after.decode();
    const width = after.naturalWidth;
    const height = after.naturalHeight;
    setAspect(width, height);
    placeBefore(chosen === "outpaint" ? outpaintOffsets(width, height) : null);
    after.hidden = false;
    frame.classList.add("compare");
    for (const element of [slider, divider, $("tag-before"), $("tag-after")]) {
      element.hidden = false;
    }
    setPosition(50);

    const type = (blob.type || "image/png").split(";")[0];
    const extension = { "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp" }[type];
    const stem = (file.name || "image").replace(/\.[^.]+$/, "") || "image";
    download.href = afterUrl;
    download.download = `${stem}-${chosen}.${extension || "img"}`;
    download.hidden = false;
    meta.textContent =
      `${(extension || type).toUpperCase()} · ${width} × ${height} px · ${formatBytes(blob.size)}`;

    const charged = headers.get("X-Credits-Charged");
    const remaining = headers.get("X-Credits-Remaining");
    charge.replaceChildren();
    if (charged != null) {
      const strong = document.createElement("strong");
      strong.textContent = `${charged} credit${charged === "1" ? "" : "s"}`;
      charge.append("Charged ", strong);
      if (remaining != null) charge.append(` · ${remaining} left`);
    }
    showCredits(remaining);
  }

  // Outpaint keeps the original pixels where they were, so the "before" is drawn at its place
  // in the larger canvas, which makes the slider compare like with like.
  function outpaintOffsets(width, height) {
    const left = Number(form.elements.left.value) || 0;
    const top = Number(form.elements.top.value) || 0;
    return {
      left: (left / width) * 100,
      top: (top / height) * 100,
      width: (before.naturalWidth / width) * 100,
      height: (before.naturalHeight / height) * 100,
    };
  }

  function placeBefore(box) {
    before.classList.toggle("placed", box !== null);
    for (const side of ["left", "top", "width", "height"]) {
      if (box) before.style.setProperty(side, `${box[side]}%`);
      else before.style.removeProperty(side);
    }
  }

  function clearResult() {
    if (afterUrl) URL.revokeObjectURL(afterUrl);
    afterUrl = null;
    after.removeAttribute("src");
    after.hidden = true;
    frame.classList.remove("compare");
    for (const element of [slider, divider, $("tag-before"), $("tag-after"), download]) {
      element.hidden = true;
    }
    download.removeAttribute("href");
    charge.replaceChildren();
  }

  function setAspect(width, height) {
    if (width && height) frame.style.setProperty("--ar", `${width} / ${height}`);
  }

  function setPosition(value) {
    slider.value = String(value);
    frame.style.setProperty("--pos", `${value}%`);
    slider.setAttribute("aria-valuetext", `${value}% original, ${100 - value}% result`);
  }

  slider.addEventListener("input", () => setPosition(Number(slider.value)));

  // --- Feedback ------------------------------------------------------------------------------

  function setBusy(on, message) {
    busy = on;
    runButton.disabled = on;
    runButton.classList.toggle("busy", on);
    form.setAttribute("aria-busy", String(on));
    if (on) setStatus(message);
  }

  function setStatus(message, ok = false) {
    statusLine.textContent = message;
    statusLine.classList.toggle("ok", ok);
  }

  function showError({ message, code, status }) {
    const text = document.createElement("p");
    text.textContent = message;
    errorBox.replaceChildren(text);
    if (code) {
      const detail = document.createElement("p");
      detail.className = "code";
      detail.append(status ? `HTTP ${status} · ` : "");
      const codeElement = document.createElement("code");
      codeElement.textContent = code;
      detail.append(codeElement);
      errorBox.append(detail);
    }
  }

  function hideError() {
    errorBox.replaceChildren();
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }
})();
