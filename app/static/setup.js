// The setup wizard's Finalize: follow the first Library Scan (GET /api/admin/job-status/<id> every 2 s) until it
// is completed or failed; a stuck job or the wait limit (5 minutes) ends the wait with a clear message.
// (data-scan-status-url, not data-job-status-url: app.js follows those badges its own way.)
"use strict";
(function () {
  const box = document.getElementById("library-scan");
  if (!box) { return; }
  const status = document.getElementById("scan-status");
  const outcome = document.getElementById("scan-outcome");
  const every = Number(box.dataset.pollEvery) || 2000;
  const deadline = Date.now() + (Number(box.dataset.waitLimit) || 300) * 1000;
  function show(state, message) {
    status.textContent = state;
    status.className = "status status-" + state;
    if (message) { outcome.textContent = message; box.dataset.done = state; }
  }
  function poll() {
    fetch(box.dataset.scanStatusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        const job = body.job || {};
        const state = job.status || "unknown";
        if (state === "completed") { show(state, "Library Scan completed: the library is indexed."); return; }
        if (state === "failed") { show(state, "Library Scan failed: " + (job.errorMessage || job.error || "see the job's log")); return; }
        if (state === "stuck") { show(state, "Library Scan is stuck (its worker stopped answering): see the Logs page; stopped waiting."); return; }
        if (Date.now() > deadline) { show(state, "Library Scan did not finish within 5 minutes: stopped waiting; see the Logs page."); return; }
        show(state, "");
        setTimeout(poll, every);
      })
      .catch(function () {
        if (Date.now() > deadline) { show("unknown", "The job status could not be read for 5 minutes: stopped waiting."); return; }
        setTimeout(poll, every);
      });
  }
  poll();
})();
