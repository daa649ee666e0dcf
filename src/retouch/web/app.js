// Retouch playground: calls the public API from this origin, exactly as any client would.
"use strict";

(() => {
  const KEY_STORAGE = "retouch.playground.apiKey";
  const LABELS = {
    "remove-background": ["Remove background", "Removing the background…"],
    upscale: ["Upscale", "Upscaling…"],
    outpaint: ["Outpaint", "Extending the canvas…"],
    "generate-background": ["Generate background", "Generating a background…"],
  };
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

  let file = null;
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
    if (!chosen) return;
    if (!ACCEPTED.includes(chosen.type)) {
      showError({ message: `${chosen.name || "That file"} is not a JPEG, PNG or WebP image.` });
      return;
    }
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

  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("dragging"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    chooseFile(event.dataTransfer.files[0]);
  });
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
    body.append("image", file, file.name || "image");
    const fields = form.elements;
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
    if (!file) return ["Choose an image first.", fileInput];
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
    setBusy(true, LABELS[chosen][1]);
    const started = performance.now();
    try {
      let response;
      try {
        response = await fetch(`/v1/${chosen}`, {
          method: "POST",
          headers: { "X-API-KEY": keyInput.value.trim(), Accept: "image/*" },
          body: buildBody(chosen),
        });
      } catch {
        showError({ message: "The server could not be reached." });
        setStatus("");
        return;
      }
      if (!response.ok) {
        showError(await readError(response));
        setStatus("");
        return;
      }
      try {
        await showResult(await response.blob(), chosen, response.headers);
      } catch {
        showError({ message: "The result arrived but could not be shown as an image." });
        setStatus("");
        return;
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      setStatus(`Done in ${seconds} s.`, true);
    } finally {
      setBusy(false);
    }
  });

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
