// The dashboard's live parts. A file, not inline script: the Content-Security-Policy allows scripts from
// this site only ('self'), none written into the page.
(function () {
  'use strict';

  // The session ended (logged out elsewhere, or idle too long): the server answered a live fetch with a
  // redirect to the login page. Reload, so that the login page shows instead of being pasted into a table.
  function sessionEnded(response) {
    if (!response.redirected) { return false; }
    window.location.reload();
    return true;
  }

  // A <details data-details-url> fetches its body when opened.
  async function fill(details) {
    const body = details.querySelector('.details-body');
    const response = await fetch(details.dataset.detailsUrl, {credentials: 'same-origin'});
    if (sessionEnded(response)) { return; }
    if (response.ok) { body.innerHTML = await response.text(); }
  }

  document.addEventListener('toggle', function (event) {
    const details = event.target;
    if (details.matches && details.matches('details[data-details-url]') && details.open) { fill(details); }
  }, true);

  // An element with data-refresh-url is re-rendered from that URL every data-refresh-every ms (10 s by
  // default). Rows that hold an opened <details data-key> stay open: their keys are remembered and their
  // details fetched again.
  function refreshEvery(region) {
    setInterval(async function () {
      const open = Array.from(region.querySelectorAll('details[open][data-key]')).map(d => d.dataset.key);
      const response = await fetch(region.dataset.refreshUrl, {credentials: 'same-origin'});
      if (sessionEnded(response) || !response.ok) { return; }
      region.innerHTML = await response.text();
      open.forEach(function (key) {
        const details = region.querySelector('details[data-key="' + CSS.escape(key) + '"]');
        if (details) { details.open = true; fill(details); }
      });
    }, parseInt(region.dataset.refreshEvery || '10000', 10));
  }

  // A badge with data-job-status-url (Trigger Now's started job) follows the job's status every second
  // until the job ends.
  function followJobStatus(badge) {
    const done = ['completed', 'failed', 'cancelled'];
    async function poll() {
      const response = await fetch(badge.dataset.jobStatusUrl, {credentials: 'same-origin'});
      if (response.ok) {
        const status = (await response.json()).job.status;
        badge.textContent = status;
        badge.className = 'status status-' + status;
        if (done.includes(status)) { return; }
      }
      setTimeout(poll, 1000);
    }
    poll();
  }

  function start() {
    document.querySelectorAll('[data-refresh-url]').forEach(refreshEvery);
    document.querySelectorAll('[data-job-status-url]').forEach(followJobStatus);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
