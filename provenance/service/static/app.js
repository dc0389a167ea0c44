// provenance: the analysts' page. Plain JavaScript, no build step, nothing fetched from elsewhere.
// Everything a file or an answer says is put on the page as text (textContent), never as HTML, and
// with the characters that reorder or hide text shown as \uXXXX escapes (visible()).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "provenance-token";
  const MAX_TRIES = 8; // a busy service (503) is asked again after its Retry-After, this many times

  const state = {
    files: [],
    answers: [],
    group: null, // the set's answer when "these files come from one source" was on
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    running: false,
  };

  // ------------------------------------------------------------------ small helpers
  // Controls, bidirectional marks, overrides and isolates: a name "x\u202egnp.exe" must not read
  // "xexe.png". Tabs and newlines stay (a text's preview keeps its lines). As provenance.core.visible.
  const HIDING = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

  function visible(text) {
    return String(text).replace(HIDING, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = visible(text);
    return node;
  }

  function testid(node, id) {
    node.dataset.testid = id;
    return node;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return headers;
  }

  function percent(p) {
    return (100 * p).toFixed(p >= 0.995 || p < 0.005 ? 0 : 1) + "%";
  }

  function number(x) {
    if (x === null || x === undefined) return "—";
    const a = Math.abs(x);
    return a !== 0 && (a < 0.001 || a >= 10000) ? x.toExponential(2) : String(Math.round(x * 1000) / 1000);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // ------------------------------------------------------------------ what the service has loaded
  function showToken(message) {
    const form = $("token-form");
    form.hidden = false;
    if (message) $("model-info").textContent = message;
    $("token-input").focus();
  }

  async function loadModels() {
    let response;
    try {
      response = await fetch("/v1/models", { headers: authHeaders() });
    } catch (err) {
      $("model-info").textContent = "The service cannot be reached (" + err + ").";
      return;
    }
    if (response.status === 401) {
      showToken("This service asks for an access token before it answers.");
      return;
    }
    if (!response.ok) {
      $("model-info").textContent = "The service answered " + response.status + " when asked what it has loaded.";
      return;
    }
    $("token-form").hidden = true;
    const info = await response.json();
    const members = (info.model && info.model.members) || {};
    const parts = Object.keys(members).map((m) => m + " (" + members[m].labels.join(", ") + ")");
    $("model-info").textContent = parts.length
      ? "Model: " + parts.join(" · ") + ". Evidence readers: " + info.evidence_readers.join(", ") + "."
      : "No model is loaded: answers come from what each file says about itself (its evidence) alone.";
    $("model-info").dataset.modalities = Object.keys(members).join(",");
  }

  // ------------------------------------------------------------------ choosing samples
  function addFiles(list) {
    for (const file of list) state.files.push(file);
    renderFileList();
  }

  function renderFileList() {
    const n = state.files.length;
    $("file-list").textContent = n
      ? n + (n === 1 ? " file ready: " : " files ready: ") + state.files.map((f) => visible(f.name)).join(", ")
      : "";
  }

  function textKind() {
    const checked = document.querySelector('input[name="text-kind"]:checked');
    return checked ? checked.value : "text";
  }

  // ------------------------------------------------------------------ asking the service
  function errorRecord(name, message) {
    return {
      sample: name, label: null, score: null, unknown: false, enrolled: false, candidates: [], modality: null,
      extractor: null, model: null, open_set_score: null, threshold: null, explanation: null, notes: [],
      evidence: [], decided_by: null, error: message,
    };
  }

  async function detailOf(response) {
    try {
      const body = await response.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (err) {
      return response.statusText || "no detail";
    }
  }

  // POST to url (a fresh body from makeInit on each try): {body} when answered, {error} otherwise; a busy
  // service (503) is asked again after its Retry-After, a refused token stops the batch
  async function send(url, makeInit, onBusy) {
    for (let attempt = 1; attempt <= MAX_TRIES; attempt++) {
      let response;
      try {
        response = await fetch(url, makeInit());
      } catch (err) {
        return { error: "the service could not be reached (" + err + ")" };
      }
      if (response.status === 503) {
        const wait = Math.min(30, Math.max(1, parseInt(response.headers.get("Retry-After") || "2", 10)));
        onBusy(wait, attempt);
        await sleep(wait * 1000);
        continue;
      }
      if (response.status === 401) {
        showToken("The access token was refused: enter it again, then press Analyse.");
        throw new Error("unauthorised");
      }
      if (!response.ok) return { error: (await detailOf(response)) + " (HTTP " + response.status + ")" };
      return { body: await response.json() };
    }
    return { error: "the service stayed busy; try again later" };
  }

  async function ask(job, onBusy) {
    const answer = await send("/v1/attribute", () => {
      if (job.kind === "file") {
        const form = new FormData();
        form.append("files", job.file, job.file.name);
        return { method: "POST", headers: authHeaders(), body: form };
      }
      const body = {};
      body[job.kind] = job.text;
      return { method: "POST", headers: authHeaders({ "Content-Type": "application/json" }), body: JSON.stringify(body) };
    }, onBusy);
    return answer.error ? errorRecord(job.name, job.name + ": " + answer.error) : answer.body[0];
  }

  // every sample of a set in one request
  function setRequest(jobs) {
    const form = new FormData();
    for (const job of jobs) {
      if (job.kind === "file") form.append("files", job.file, job.file.name);
      else form.append(job.kind, job.text);
    }
    return { method: "POST", headers: authHeaders(), body: form };
  }

  // the service answers the set as one source (and each member in per_sample)
  async function askGroup(jobs, onBusy) {
    const answer = await send("/v1/attribute?one_source=true", () => setRequest(jobs), onBusy);
    if (!answer.error) return answer.body;
    return {
      label: null, score: null, unknown: false, candidates: [], n_samples: 0, modality: null, rule: null,
      open_set_score: null, threshold: null, decided_by: null, evidence: [], notes: [], per_sample: [],
      error: "The set could not be answered as one source: " + answer.error,
    };
  }

  // the service groups the files by likely common source
  async function askClusters(jobs, onBusy) {
    const answer = await send("/v1/cluster", () => setRequest(jobs), onBusy);
    return answer.error ? { error: "The files could not be grouped: " + answer.error } : answer.body;
  }

  // ------------------------------------------------------------------ reading an answer
  function decidingEvidence(rec) {
    const order = ["signed", "watermark", "declared"];
    const found = (rec.evidence || []).filter((e) => e.source && order.includes(e.strength));
    found.sort((a, b) => order.indexOf(a.strength) - order.indexOf(b.strength));
    return found.find((e) => e.source === rec.label) || found[0] || null;
  }

  function strengthWords(e) {
    if (!e) return "the file's evidence";
    if (e.strength === "signed") {
      const what = e.kind === "c2pa" ? "a signed C2PA manifest" : "a valid signature (" + e.kind + ")";
      return what + (e.detail && e.detail.trusted ? " from a trusted signer" : " (the signer is not on a trust list)");
    }
    if (e.strength === "watermark") return "an invisible watermark, matched at a stated false-positive rate";
    return "declared metadata (" + e.kind + "), which anyone can write or strip";
  }

  function verdict(rec) {
    const sources = rec.modality === "image" ? "generators" : "authors";
    if (rec.error) return { cls: "error", text: "Could not be read", sub: "" };
    if (rec.decided_by === "evidence") {
      return { cls: "known", text: rec.label, sub: "Decided by the file's own evidence: " + strengthWords(decidingEvidence(rec)) + "." };
    }
    if (rec.decided_by === "model") {
      if (rec.unknown) {
        return {
          cls: "unknown",
          text: "unknown — none of the known " + sources,
          sub: "The model knows " + rec.candidates.map((c) => c[0]).join(", ") + "; this sample is like none of them.",
        };
      }
      if (rec.enrolled) return { cls: "known", text: rec.label, sub: "A source enrolled from a few of its samples." };
      return { cls: "known", text: rec.label, sub: "The model's answer (" + (rec.extractor || "model") + ")." };
    }
    const modality = rec.modality || "this kind of sample";
    return {
      cls: "none",
      text: "no answer",
      sub: (rec.evidence || []).length
        ? "The file's evidence names no source, and no model reads " + modality + "."
        : "No evidence in the file, and no model for " + modality + ": telling its source from its style or pixels needs a model.",
    };
  }

  function scoreLine(rec) {
    const p = testid(el("p", "score"), "score");
    if (rec.error) return null;
    if (rec.decided_by === "model" && rec.score !== null) {
      if (rec.unknown) {
        const best = rec.candidates[0];
        p.append("Closest known source: ", el("strong", null, best[0] + " " + percent(best[1])));
        p.append(" — rejected as unknown (open-set score " + number(rec.open_set_score) + " below the threshold " + number(rec.threshold) + ")");
      } else {
        p.append(rec.enrolled ? "One-class score: " : "Calibrated score: ", el("strong", null, percent(rec.score)));
      }
      return p;
    }
    if (rec.decided_by === "evidence") {
      p.textContent = "No probability: the evidence decides, not a model's estimate.";
      return p;
    }
    return null;
  }

  function candidatesChart(rec) {
    const chart = testid(el("div", "candidates"), "candidates");
    chart.setAttribute("role", "list");
    rec.candidates.forEach((c, i) => {
      const row = el("div", "candidate" + (i === 0 ? " top" : ""));
      row.setAttribute("role", "listitem");
      row.dataset.label = c[0];
      const bar = el("div", "cand-bar");
      const fill = el("div", "cand-fill");
      fill.style.width = Math.max(0.5, 100 * c[1]).toFixed(1) + "%"; // CSSOM: allowed by the page's policy
      bar.append(fill);
      row.append(el("span", "cand-label", c[0]), bar, el("span", "cand-value", percent(c[1])));
      chart.append(row);
    });
    return chart;
  }

  function fact(list, term, value) {
    if (value === null || value === undefined || value === "") return;
    list.append(el("dt", null, term), el("dd", null, typeof value === "object" ? JSON.stringify(value) : value));
  }

  function evidenceItem(e) {
    const li = testid(el("li", "evidence-item"), "evidence-item");
    li.dataset.strength = e.strength;
    li.dataset.kind = e.kind;
    const head = el("div", "ev-head");
    head.append(el("span", "badge " + e.strength, e.strength), e.kind + (e.source ? " — " + e.source : " — names no source"));
    if (e.says) head.append(el("span", "ev-says", " (says " + e.says + ")"));
    li.append(head);
    const facts = el("dl", "ev-facts");
    const d = e.detail || {};
    if (e.kind === "c2pa") {
      const signer = d.signer || {};
      fact(facts, "Signer", [signer.common_name, signer.issuer].filter(Boolean).join(", issued by "));
      fact(facts, "Trust", d.trust || (d.trusted ? "trusted signer" : "signer not on a trust list"));
      fact(facts, "Made with", d.claim_generator);
      fact(facts, "Actions", (d.actions || []).map((a) =>
        [a.action, a.digitalSourceType, a.softwareAgent && (a.softwareAgent.name || a.softwareAgent)].filter(Boolean).join(" · ")
      ).join("; "));
      fact(facts, "Signed at", d.signing_time);
      fact(facts, "Validation", [d.validation_state, (d.status_codes || []).join(", ")].filter(Boolean).join(": "));
      if ((d.ingredients || []).length) fact(facts, "Ingredients", d.ingredients.length);
    } else if (e.kind === "watermark") {
      fact(facts, "Mark", d.mark);
      fact(facts, "Match", d.matched_bits + " of " + d.total_bits + " bits (" + d.bits_needed + " needed)");
      fact(facts, "p-value", number(d.p_value));
      fact(facts, "False-positive rate", number(d.fpr));
    } else {
      for (const [key, value] of Object.entries(d)) {
        const text = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
        fact(facts, key.replace(/_/g, " "), text.length > 400 ? text.slice(0, 400) + "…" : text);
      }
    }
    if (facts.childElementCount) li.append(facts);
    return li;
  }

  function explanationTable(rec) {
    const top = rec.candidates[0] ? rec.candidates[0][0] : "";
    const second = rec.candidates[1] ? rec.candidates[1][0] : "";
    const table = testid(el("table", "explanation"), "explanation");
    const head = el("tr");
    head.append(el("th", null, "feature"), el("th", null, "this sample"), el("th", null, "typical of " + top), el("th", null, "typical of " + second));
    table.append(head);
    for (const item of rec.explanation) {
      const row = el("tr");
      const typical = item.typical || {};
      row.append(el("td", null, item.feature), el("td", "num", number(item.value)),
        el("td", "num", number(typical[top])), el("td", "num", number(typical[second])));
      table.append(row);
    }
    return table;
  }

  // ------------------------------------------------------------------ image explanations: the crops' heatmap
  function regionsOf(rec) {
    const e = rec.explanation;
    return e && !Array.isArray(e) && e.kind === "regions" && Array.isArray(e.grid) && e.width > 0 && e.height > 0 ? e : null;
  }

  function regionsScale(e) {
    let scale = 0;
    e.grid.forEach((row) => row.forEach((v) => { if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v)); }));
    return scale;
  }

  // each crop a box over the thumbnail, placed in percent of the image: red favours the label, blue the runner-up
  function heatmapOverlay(e) {
    const layer = testid(el("div", "heatmap"), "heatmap");
    const scale = regionsScale(e);
    e.grid.forEach((row, r) => row.forEach((v, c) => {
      if (!Number.isFinite(v) || e.rows[r] === undefined || e.cols[c] === undefined) return;
      const cell = testid(el("div", "heat-cell"), "heat-cell");
      const alpha = scale > 0 ? 0.62 * Math.abs(v) / scale : 0;
      cell.style.left = (100 * e.cols[c] / e.width) + "%";
      cell.style.top = (100 * e.rows[r] / e.height) + "%";
      cell.style.width = (100 * e.crop / e.width) + "%";
      cell.style.height = (100 * e.crop / e.height) + "%";
      cell.style.background = v > 0 ? "rgba(215, 48, 39, " + alpha + ")" : "rgba(49, 104, 175, " + alpha + ")";
      cell.dataset.value = String(v);
      cell.title = (v > 0 ? "favours " + e.label : "favours " + e.runner_up) + " (log-odds " + number(v) + ")";
      layer.append(cell);
    }));
    return layer;
  }

  function regionsPanel(card, e) {
    const panel = testid(el("div", "regions"), "regions");
    const cells = e.grid.flat().filter(Number.isFinite);
    const favour = cells.filter((v) => v > 0).length;
    panel.append(testid(el("p", "regions-summary", favour + " of " + cells.length + " crops (" + e.crop + " px) favour " +
      e.label + " over " + e.runner_up + ". Red: a crop that favours " + e.label + "; blue: one that favours " +
      e.runner_up + "; the stronger the colour, the stronger its say (up to log-odds " + number(regionsScale(e)) + ")."),
    "regions-summary"));
    panel.append(el("p", "regions-caveat", "The model reads the generator's high-frequency traces in the pixels " +
      "(noise, up-sampling and compression patterns), not the objects shown: the map says where those traces were read."));
    const label = el("label", "switch");
    const toggle = testid(el("input"), "heatmap-toggle");
    toggle.type = "checkbox";
    toggle.checked = true;
    toggle.addEventListener("change", () => {
      card.querySelectorAll(".heatmap").forEach((layer) => { layer.hidden = !toggle.checked; });
    });
    label.append(toggle, el("span", "switch-label", "Show the heatmap over the image"));
    panel.append(label);
    return panel;
  }

  function preview(job, rec) {
    const box = el("div", "preview");
    if (job.kind === "file" && rec.error) {
      box.append(el("p", "no-preview", "(no preview: the file could not be read)"));
    } else if (job.kind === "file" && (rec.modality === "image" || (job.file.type || "").startsWith("image/"))) {
      const img = testid(el("img", "thumb"), "thumbnail");
      img.alt = "the image " + job.name;
      img.src = URL.createObjectURL(job.file);
      const regions = regionsOf(rec);
      if (regions) {
        const wrap = el("div", "thumb-wrap");
        wrap.append(img, heatmapOverlay(regions));
        box.append(wrap);
      } else {
        box.append(img);
      }
    } else if (job.kind !== "file") {
      box.append(el("pre", "snippet", job.text.slice(0, 800)));
    } else {
      const pre = el("pre", "snippet", "");
      job.file.slice(0, 800).text().then((t) => { pre.textContent = visible(t); }, () => { pre.textContent = "(no preview)"; });
      box.append(pre);
    }
    return box;
  }

  function renderAnswer(card, job, rec) {
    card.replaceChildren();
    card.classList.remove("pending");
    card.dataset.modality = rec.modality || "";
    card.dataset.decidedBy = rec.decided_by || "";
    card.append(preview(job, rec));
    const body = el("div", "answer");
    body.append(testid(el("h3", "sample-name", job.title), "sample-name"));
    const v = verdict(rec);
    const verdictNode = testid(el("p", "verdict " + v.cls, v.text), "verdict");
    verdictNode.dataset.label = rec.label === null ? "" : rec.label;
    body.append(verdictNode);
    if (v.sub) body.append(el("p", "verdict-sub", v.sub));
    if (rec.error) body.append(testid(el("p", "error", rec.error), "error"));
    const score = scoreLine(rec);
    if (score) body.append(score);
    if ((rec.candidates || []).length) {
      const title = rec.decided_by === "evidence" ? "The model's candidates (shown beside: the evidence decides)" : "Candidates";
      body.append(el("h4", null, title), candidatesChart(rec));
    }
    if (!rec.error) {
      body.append(el("h4", null, "Evidence"));
      if ((rec.evidence || []).length) {
        const list = testid(el("ul", "evidence"), "evidence");
        rec.evidence.forEach((e) => list.append(evidenceItem(e)));
        body.append(list);
      } else {
        body.append(testid(el("p", "no-evidence",
          "no evidence — the file says nothing about where it came from (a missing manifest proves nothing either way)."), "no-evidence"));
      }
    }
    const regions = regionsOf(rec);
    if (regions) {
      body.append(el("h4", null, "Where in the image: " + regions.label + " rather than " + regions.runner_up), regionsPanel(card, regions));
    } else if (Array.isArray(rec.explanation) && rec.explanation.length && rec.candidates.length >= 2) {
      body.append(el("h4", null, "Why " + rec.candidates[0][0] + " rather than " + rec.candidates[1][0]), explanationTable(rec));
    }
    if ((rec.notes || []).length) {
      const notes = testid(el("ul", "notes"), "notes");
      rec.notes.forEach((n) => notes.append(el("li", null, n)));
      body.append(el("h4", null, "Notes"), notes);
    }
    card.append(body);
  }

  // ------------------------------------------------------------------ one source: the set's answer
  function groupVerdict(rec) {
    if (rec.error) return { cls: "error", text: "No answer for the set", sub: "" };
    const sources = rec.modality === "image" ? "generators" : "authors";
    if (rec.decided_by === "evidence") {
      return { cls: "known", text: rec.label, sub: "Decided by a member's own evidence (below, with the file it came from)." };
    }
    if (rec.decided_by === "model") {
      if (rec.unknown) {
        return {
          cls: "unknown",
          text: "unknown — none of the known " + sources,
          sub: "Taken together, these samples are like none of the sources the model knows.",
        };
      }
      return { cls: "known", text: rec.label, sub: "The model's answer for the whole set, its members' answers combined." };
    }
    return { cls: "none", text: "no answer", sub: "Neither the members' evidence nor a model names a source for this set." };
  }

  function groupScoreLine(rec) {
    if (rec.error || rec.decided_by !== "model" || rec.score === null) return null;
    const p = testid(el("p", "score"), "group-score");
    const size = "a set of " + rec.n_samples;
    if (rec.unknown && rec.candidates.length) {
      const best = rec.candidates[0];
      p.append("Closest known source: ", el("strong", null, best[0] + " " + percent(best[1])));
      p.append(" — rejected as unknown for " + size + " (open-set score " + number(rec.open_set_score) +
        " below the threshold " + number(rec.threshold) + ")");
    } else {
      p.append("Calibrated score for " + size + ": ", el("strong", null, percent(rec.score)));
    }
    return p;
  }

  function renderGroup(card, rec, sent) {
    card.replaceChildren();
    card.classList.remove("pending");
    card.dataset.decidedBy = rec.decided_by || "";
    card.dataset.modality = rec.modality || "";
    const body = el("div", "answer");
    const failed = (rec.per_sample || []).filter((r) => r.error).length;
    const n = sent; // the samples sent, read or not
    body.append(testid(el("h3", "sample-name", (n === 1 ? "This sample, " : "These " + n + " samples, ") +
      "taken to come from one source" + (failed ? " (" + failed + " could not be read)" : "")), "group-title"));
    const v = groupVerdict(rec);
    const verdictNode = testid(el("p", "verdict " + v.cls, v.text), "group-verdict");
    verdictNode.dataset.label = rec.label === null || rec.label === undefined ? "" : rec.label;
    body.append(verdictNode);
    if (v.sub) body.append(el("p", "verdict-sub", v.sub));
    if (rec.error) body.append(testid(el("p", "error", rec.error), "group-error"));
    const score = groupScoreLine(rec);
    if (score) body.append(score);
    const facts = testid(el("dl", "group-facts"), "group-facts");
    if ((rec.per_sample || []).length) fact(facts, "Samples read", rec.n_samples + (n !== rec.n_samples ? " of " + n : ""));
    fact(facts, "Modality", rec.modality);
    fact(facts, "Combined by", rec.rule);
    if (facts.childElementCount) body.append(facts);
    if ((rec.candidates || []).length) {
      const title = rec.decided_by === "evidence" ? "The model's candidates (shown beside: the evidence decides)" : "Candidates";
      body.append(el("h4", null, title), candidatesChart(rec));
    }
    if (!rec.error) {
      body.append(el("h4", null, "Evidence from the members"));
      if ((rec.evidence || []).length) {
        const list = testid(el("ul", "evidence"), "group-evidence");
        rec.evidence.forEach((e) => {
          const li = evidenceItem(e);
          li.dataset.member = e.sample || "";
          const from = testid(el("p", "ev-member", "from "), "evidence-member");
          from.append(el("strong", null, e.sample || "a member"));
          li.append(from);
          list.append(li);
        });
        body.append(list);
      } else {
        body.append(testid(el("p", "no-evidence",
          "no evidence — none of the files says anything about where it came from."), "no-evidence"));
      }
    }
    if ((rec.notes || []).length) {
      const notes = testid(el("ul", "notes"), "group-notes");
      rec.notes.forEach((note) => notes.append(el("li", null, note)));
      body.append(el("h4", null, "Notes"), notes);
    }
    card.append(body);
  }

  // ------------------------------------------------------------------ a batch
  function pendingCard(job) {
    const card = testid(el("article", "result pending"), "result");
    card.dataset.sample = job.name;
    card.append(el("div", "preview"), el("p", "verdict-sub", "Waiting: " + job.title));
    return card;
  }

  async function analyseAsOneSource(jobs) {
    const results = $("results");
    const groupCard = testid(el("article", "result group-result pending"), "group-result");
    groupCard.append(el("p", "verdict-sub", "Waiting: " + jobs.length + " samples, taken to come from one source"));
    const title = testid(el("h2", "members-title", "Each file's own answer"), "members-title");
    const cards = jobs.map(pendingCard);
    results.append(groupCard, title, ...cards);
    const progress = $("progress");
    progress.hidden = false;
    progress.max = 1;
    progress.removeAttribute("value"); // one request: the bar runs until the answer comes
    $("progress-text").textContent = "Analysing " + jobs.length + " samples as one source…";
    const rec = await askGroup(jobs, (wait, attempt) => {
      $("progress-text").textContent = "The service is busy: asking again in " + wait + " s (try " + attempt + ")…";
    });
    state.group = rec;
    renderGroup(groupCard, rec, jobs.length);
    const members = rec.per_sample || [];
    if (members.length !== jobs.length) { // no member was answered: only the set's error stands
      title.remove();
      cards.forEach((card) => card.remove());
    } else {
      jobs.forEach((job, i) => {
        state.answers.push(members[i]);
        renderAnswer(cards[i], job, members[i]);
      });
    }
    progress.value = 1;
    const failed = members.filter((r) => r.error).length;
    $("progress-text").textContent = rec.error && !members.length
      ? "Stopped: the set could not be answered as one source."
      : "Done: one answer for " + jobs.length + " samples" + (failed ? " (" + failed + " could not be read)" : "") + ".";
    results.dataset.state = "done";
  }

  // ------------------------------------------------------------------ group these files: which go together
  function memberItem(job, sample) {
    const li = testid(el("li", "member"), "member");
    li.dataset.sample = sample.sample;
    if (job && job.kind === "file" && !sample.error && sample.modality === "image") {
      const img = el("img", "member-thumb");
      img.alt = "the image " + job.name;
      img.src = URL.createObjectURL(job.file);
      li.append(img);
    }
    li.append(el("span", "member-name", job ? job.title : sample.sample));
    if (sample.label) li.append(el("span", "member-label", "alone: " + sample.label));
    return li;
  }

  function renderClusters(results, jobs, rec) {
    if (rec.error) {
      results.append(testid(el("p", "error", rec.error), "cluster-error"));
      return;
    }
    const summary = testid(el("p", "cluster-summary", rec.n_groups + (rec.n_groups === 1 ? " group" : " groups") +
      " of at least " + rec.min_size + " among " + rec.n_samples + " files. A group's members look alike to the model, " +
      "as files from one known source do: a lead to follow, not proof of a common origin."), "cluster-summary");
    results.append(summary);
    const byGroup = new Map();
    rec.samples.forEach((sample, i) => {
      if (sample.group === null) return;
      if (!byGroup.has(sample.group)) byGroup.set(sample.group, []);
      byGroup.get(sample.group).push([jobs[i], sample]);
    });
    for (const group of rec.groups) {
      const card = testid(el("article", "result cluster-group"), "cluster-group");
      card.dataset.group = String(group.group);
      card.dataset.known = String(group.known);
      const title = group.known
        ? "Group " + group.group + ": " + group.size + " files from " + group.label
        : "Group " + group.group + ": " + group.size + " files from an unknown source";
      card.append(testid(el("h3", "cluster-title", title), "cluster-title"));
      const sub = group.known
        ? "The model accepts the group as " + group.label + " (score " + percent(group.score) + ")."
        : "Nearest known source: " + group.nearest_known + " (score " + percent(group.score) + "), not close enough to be it.";
      card.append(testid(el("p", "verdict-sub", sub), "cluster-verdict"));
      const list = testid(el("ul", "members"), "members");
      (byGroup.get(group.group) || []).forEach(([job, sample]) => list.append(memberItem(job, sample)));
      card.append(list);
      (group.notes || []).forEach((n) => card.append(el("p", "note", n)));
      results.append(card);
    }
    const alone = rec.samples.map((sample, i) => [jobs[i], sample]).filter(([, sample]) => sample.group === null);
    if (alone.length) {
      const card = testid(el("article", "result cluster-ungrouped"), "cluster-ungrouped");
      card.append(el("h3", "cluster-title", "In no group"));
      const list = el("ul", "members");
      const why = new Map(rec.ungrouped.map((u) => [u.sample, u.note]));
      alone.forEach(([job, sample]) => {
        const li = memberItem(job, sample);
        li.append(el("span", "member-note", sample.error ? sample.error : (why.get(sample.sample) || "")));
        list.append(li);
      });
      card.append(list);
      results.append(card);
    }
    (rec.notes || []).forEach((n) => results.append(el("p", "note", n)));
  }

  async function groupFiles() {
    if (state.running) return;
    const jobs = state.files.map((file) => ({ kind: "file", file, name: file.name, title: file.name }));
    if (jobs.length < 2) {
      $("progress-text").textContent = "Add at least two files to group.";
      return;
    }
    const results = startRun();
    const progress = $("progress");
    progress.hidden = false;
    progress.removeAttribute("value");
    $("progress-text").textContent = "Grouping " + jobs.length + " files by likely source…";
    try {
      const rec = await askClusters(jobs, (wait, attempt) => {
        $("progress-text").textContent = "The service is busy: asking again in " + wait + " s (try " + attempt + ")…";
      });
      state.group = rec.error ? null : rec;
      renderClusters(results, jobs, rec);
      progress.max = 1;
      progress.value = 1;
      $("progress-text").textContent = rec.error ? "Stopped." : "Done: " + rec.n_groups + (rec.n_groups === 1 ? " group" : " groups") + ".";
      results.dataset.state = "done";
    } catch (err) {
      $("progress-text").textContent = "Stopped: " + err.message + ".";
    } finally {
      endRun(state.group !== null);
    }
  }

  // a run ends: the buttons are back, and Download when there is something to save
  function endRun(saved) {
    state.running = false;
    $("analyse").disabled = false;
    $("group-files").disabled = false;
    $("download").disabled = !saved;
  }

  // a run begins: the files are taken, the buttons wait, the results are cleared
  function startRun() {
    state.running = true;
    state.answers = [];
    state.group = null;
    state.files = [];
    renderFileList();
    $("analyse").disabled = true;
    $("group-files").disabled = true;
    $("download").disabled = true;
    const results = $("results");
    results.replaceChildren();
    delete results.dataset.state;
    return results;
  }

  async function analyse() {
    if (state.running) return;
    const jobs = state.files.map((file) => ({ kind: "file", file, name: file.name, title: file.name }));
    const text = $("text-input").value;
    if (text.trim()) {
      const kind = textKind();
      jobs.push({ kind, text, name: kind === "code" ? "pasted code" : "pasted text", title: kind === "code" ? "Pasted code" : "Pasted text" });
    }
    if (!jobs.length) {
      $("progress-text").textContent = "Add files or paste a text first.";
      return;
    }
    const results = startRun();
    if ($("one-source").checked) {
      try {
        await analyseAsOneSource(jobs);
      } catch (err) {
        $("progress-text").textContent = "Stopped: " + err.message + ".";
      } finally {
        endRun(state.group !== null);
      }
      return;
    }
    const cards = jobs.map((job) => {
      const card = pendingCard(job);
      results.append(card);
      return card;
    });
    const progress = $("progress");
    progress.hidden = false;
    progress.max = jobs.length;
    progress.value = 0;
    let failed = 0;
    try {
      for (let i = 0; i < jobs.length; i++) {
        $("progress-text").textContent = "Analysing " + (i + 1) + " of " + jobs.length + "…";
        const rec = await ask(jobs[i], (wait, attempt) => {
          $("progress-text").textContent = "The service is busy: asking again in " + wait + " s (try " + attempt + ")…";
        });
        if (rec.error) failed++;
        state.answers.push(rec);
        renderAnswer(cards[i], jobs[i], rec);
        progress.value = i + 1;
      }
      $("progress-text").textContent = "Done: " + jobs.length + (jobs.length === 1 ? " sample" : " samples") + " answered" +
        (failed ? " (" + failed + " could not be read)" : "") + ".";
      results.dataset.state = "done";
    } catch (err) {
      $("progress-text").textContent = "Stopped: " + err.message + ".";
    } finally {
      endRun(state.answers.length > 0);
    }
  }

  function download() {
    // the set's answer holds each member's own in per_sample
    const answers = state.group !== null ? state.group : state.answers;
    const blob = new Blob([JSON.stringify(answers, null, 2)], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "provenance-answers.json";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  function clear() {
    state.files = [];
    state.answers = [];
    state.group = null;
    renderFileList();
    $("text-input").value = "";
    $("file-input").value = "";
    $("results").replaceChildren();
    delete $("results").dataset.state;
    $("progress").hidden = true;
    $("progress-text").textContent = "";
    $("download").disabled = true;
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    const zone = $("drop-zone");
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files) addFiles(e.dataTransfer.files);
    });
    $("file-input").addEventListener("change", (e) => {
      addFiles(e.target.files);
      e.target.value = ""; // the same file may be chosen again
    });
    $("analyse").addEventListener("click", analyse);
    $("group-files").addEventListener("click", groupFiles);
    $("download").addEventListener("click", download);
    $("clear").addEventListener("click", clear);
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.token = $("token-input").value.trim();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      loadModels();
    });
    loadModels();
  });
})();
