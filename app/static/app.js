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

  // A table wider than its container scrolls inside itself (app.css); keyboard users reach that scroll
  // only when the table can take focus, so a table that overflows gets tabindex=0 (and loses it again).
  function focusableWhenScrolling() {
    document.querySelectorAll('main table').forEach(function (table) {
      if (table.scrollWidth > table.clientWidth + 1) {
        table.tabIndex = 0;
      } else if (table.hasAttribute('tabindex')) {
        table.removeAttribute('tabindex');
      }
    });
  }

  // A <details data-details-url> fetches its body when opened.
  async function fill(details) {
    const body = details.querySelector('.details-body');
    const response = await fetch(details.dataset.detailsUrl, {credentials: 'same-origin'});
    if (sessionEnded(response)) { return; }
    if (response.ok) { body.innerHTML = await response.text(); focusableWhenScrolling(); }
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
      focusableWhenScrolling();
      open.forEach(function (key) {
        const details = region.querySelector('details[data-key="' + CSS.escape(key) + '"]');
        if (details) { details.open = true; fill(details); }
      });
    }, parseInt(region.dataset.refreshEvery || '10000', 10));
  }

  // A badge with data-job-status-url (Trigger Now's started job) follows the job's status every second
  // until the job ends (in one of the statuses listed in its data-job-terminal).
  function followJobStatus(badge) {
    const done = (badge.dataset.jobTerminal || '').split(' ');
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

  // A form with data-confirm (Delete) asks first.
  document.addEventListener('submit', function (event) {
    const form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  }, true);

  // Interactive search (/admin/requests): a row's Search button fetches GET /api/requests/<id>/releases and
  // lists every result in #release-panel (outside the rows that refresh every few seconds); Download POSTs
  // the release's guid with the page's CSRF token. Text from outside is set with textContent only.
  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (className) { node.className = className; }
    return node;
  }

  function formatSize(bytes) {
    if (!bytes) { return '–'; }
    const mib = bytes / 1048576;
    return mib >= 1024 ? (mib / 1024).toFixed(2) + ' GiB' : mib.toFixed(1) + ' MiB';
  }

  async function errorText(response) {
    try { return (await response.json()).error || response.statusText; } catch (e) { return response.statusText; }
  }

  function releaseRow(panel, url, release) {
    const row = element('tr', null, 'release' + (release.rejected ? ' rejected' : ''));
    row.dataset.guid = release.guid;
    const b = release.breakdown || {};
    [release.title, release.indexer, formatSize(release.size), release.seeders === null ? '–' : release.seeders,
     release.score, 'format ' + b.format + ', seeders ' + b.seeders + ', size ' + b.size + ', match ' + b.match,
     release.rejected || ''].forEach(function (value) { row.appendChild(element('td', value)); });
    const cell = element('td');
    const button = element('button', 'Download', 'download-release');
    button.type = 'button';
    button.addEventListener('click', function () { pickRelease(panel, url, release, button); });
    cell.appendChild(button);
    row.appendChild(cell);
    return row;
  }

  function setStatus(panel, text, className) {
    const status = panel.querySelector('.release-status');
    status.replaceChildren(element('span', text));
    status.className = 'release-status' + (className ? ' ' + className : '');
    return status;
  }

  async function searchReleases(button) {
    const panel = document.getElementById('release-panel');
    if (!panel) { return; }
    const url = button.dataset.releasesUrl;
    panel.hidden = false;
    panel.querySelector('.release-book').textContent = button.dataset.book || '';
    const body = panel.querySelector('tbody');
    body.replaceChildren();
    setStatus(panel, 'Searching Prowlarr…', 'busy');
    const response = await fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/json'}});
    if (sessionEnded(response)) { return; }
    if (!response.ok) { setStatus(panel, 'Search failed: ' + await errorText(response), 'level-error'); return; }
    const releases = (await response.json()).releases;
    releases.forEach(function (release) { body.appendChild(releaseRow(panel, url, release)); });
    focusableWhenScrolling();
    setStatus(panel, releases.length + (releases.length === 1 ? ' release' : ' releases') + ', best first.');
  }

  async function pickRelease(panel, url, release, button) {
    button.disabled = true;
    const response = await fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-CSRFToken': panel.dataset.csrfToken},
      body: JSON.stringify({guid: release.guid}),
    });
    if (sessionEnded(response)) { return; }
    if (response.status !== 202) {
      button.disabled = false;
      setStatus(panel, 'Not downloaded: ' + await errorText(response), 'level-error');
      return;
    }
    const jobId = (await response.json()).jobId;
    const status = setStatus(panel, 'Download queued: ', 'download-queued');
    const link = element('a', 'job ' + jobId);
    link.href = '/admin/jobs/' + encodeURIComponent(jobId);
    status.appendChild(link);
  }

  document.addEventListener('click', function (event) {
    const target = event.target;
    if (!target.closest) { return; }
    const search = target.closest('button.search-releases');
    if (search) { searchReleases(search); return; }
    const close = target.closest('button.close-releases');
    if (close) { document.getElementById('release-panel').hidden = true; }
  });

  function start() {
    focusableWhenScrolling();
    window.addEventListener('resize', focusableWhenScrolling);
    document.querySelectorAll('[data-refresh-url]').forEach(refreshEvery);
    document.querySelectorAll('[data-job-status-url]').forEach(followJobStatus);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
