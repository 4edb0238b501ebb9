// consul-monitor dashboard. Alpine's CSP build renders the page (no eval, so
// the page runs under a strict Content-Security-Policy); Chart.js draws the
// history. Everything from Consul is shown with x-text, never as HTML.
'use strict';

(function () {
  const STATUS_ORDER = ['critical', 'warning', 'maintenance', 'unknown', 'passing'];
  // Higher is worse: a group shows its worst instance, and "problems first"
  // sorts by it.
  const SEVERITY = { passing: 0, unknown: 1, maintenance: 2, warning: 3, critical: 4 };
  const ICONS = { passing: '✔', warning: '▲', critical: '✖', maintenance: '⚙', unknown: '?' };
  const HISTORY_KEYS = ['passing', 'warning', 'critical', 'nodata'];
  const HISTORY_LABELS = { passing: 'Passing', warning: 'Warning', critical: 'Critical', nodata: 'No data' };
  const HISTORY_COLORS = { passing: '#2da44e', warning: '#d4a72c', critical: '#cf222e', nodata: '#8c959f' };

  // Test-only: browser tests shorten every refresh interval by this factor
  // so that cadence can be checked in seconds. It is read from localStorage
  // and has no control on the page (see DEVELOPERS.md).
  function intervalScale() {
    const v = parseFloat(window.localStorage.getItem('consul-monitor.test.interval-scale'));
    return v > 0 ? v : 1;
  }

  async function requestJSON(url, options) {
    let resp;
    try {
      resp = await fetch(url, Object.assign({ credentials: 'same-origin', headers: { Accept: 'application/json' } }, options));
    } catch (e) {
      throw new Error('the server did not answer (' + e.message + ')');
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      // an error page that is not JSON: the status says enough
    }
    if (!resp.ok) {
      throw new Error((body && body.error) || ('HTTP ' + resp.status));
    }
    return body;
  }

  function postJSON(url, value) {
    return requestJSON(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(value) });
  }

  // Only http and https URLs become links; the server already refuses
  // others, this keeps the page safe even if it did not.
  function safeURL(url) {
    return typeof url === 'string' && /^https?:\/\//i.test(url) ? url : null;
  }

  // An instance id is "<node>/<service id>" with '/' and '%' escaped in each part.
  function serviceIdOf(id) {
    return id.slice(id.indexOf('/') + 1).replace(/%2F|%25/g, function (m) { return m === '%2F' ? '/' : '%'; });
  }

  function worst(statuses) {
    let w = 'passing';
    for (const s of statuses) {
      if ((SEVERITY[s] || 0) > SEVERITY[w]) w = s;
    }
    return w;
  }

  function buildGroups(services) {
    const byName = new Map();
    for (const svc of services) {
      const inst = {
        id: svc.id,
        node: svc.node,
        serviceId: serviceIdOf(svc.id),
        address: svc.port ? svc.address + ':' + svc.port : svc.address,
        safe_url: safeURL(svc.url),
        tags: svc.tags || [],
        checks: svc.checks || [],
        current_status: svc.current_status,
      };
      if (!byName.has(svc.name)) byName.set(svc.name, []);
      byName.get(svc.name).push(inst);
    }
    const groups = [];
    for (const [name, instances] of byName) {
      const tags = Array.from(new Set(instances.flatMap(function (i) { return i.tags; }))).sort();
      groups.push({
        name: name,
        instances: instances,
        status: worst(instances.map(function (i) { return i.current_status; })),
        url: instances.length === 1 ? instances[0].safe_url : null,
        tags: tags,
        search: (name + ' ' + tags.join(' ') + ' ' + instances.map(function (i) { return i.node; }).join(' ')).toLowerCase(),
      });
    }
    groups.sort(function (a, b) { return a.name.localeCompare(b.name); });
    return groups;
  }

  // History is kept outside Alpine's reactive state: wrapping hundreds of
  // thousands of numbers in proxies would cost more than drawing them.
  const history = { granularity: 15, startMs: 0, windows: 0, series: new Map(), groups: new Map(), members: new Map() };

  // applyHistory unpacks /api/history's runs of identical windows.
  function applyHistory(body, groups) {
    history.granularity = body.granularity;
    history.startMs = Date.parse(body.start);
    history.windows = body.windows;
    history.series = new Map();
    for (const id of Object.keys(body.services)) {
      const series = emptySeries(body.windows);
      let i = 0;
      for (const run of body.services[id]) {
        for (let n = 0; n < run[0]; n++, i++) {
          series.passing[i] = run[1];
          series.warning[i] = run[2];
          series.critical[i] = run[3];
          series.nodata[i] = run[4];
        }
      }
      history.series.set(id, series);
    }
    history.groups = new Map();
    history.members = new Map(groups.map(function (g) { return [g.name, g.instances.map(function (i) { return i.id; })]; }));
  }

  function emptySeries(n) {
    return { passing: new Array(n).fill(0), warning: new Array(n).fill(0), critical: new Array(n).fill(0), nodata: new Array(n).fill(100) };
  }

  // seriesFor returns the windows a canvas draws: one instance's, or the
  // mean of a service's instances. Without history it is all no data.
  function seriesFor(key) {
    if (key.startsWith('instance:')) {
      return history.series.get(key.slice(9)) || emptySeries(history.windows);
    }
    const name = key.slice(6);
    if (!history.groups.has(name)) {
      const members = (history.members.get(name) || []).map(function (id) { return history.series.get(id) || emptySeries(history.windows); });
      const mean = emptySeries(history.windows);
      for (const k of HISTORY_KEYS) {
        for (let i = 0; i < history.windows; i++) {
          let sum = 0;
          for (const m of members) sum += m[k][i];
          mean[k][i] = members.length ? Math.round(sum / members.length * 10) / 10 : (k === 'nodata' ? 100 : 0);
        }
      }
      history.groups.set(name, mean);
    }
    return history.groups.get(name);
  }

  function formatTime(ms, withDate) {
    const opts = { hour: '2-digit', minute: '2-digit' };
    if (withDate) { opts.month = 'short'; opts.day = 'numeric'; }
    return new Date(ms).toLocaleString(undefined, opts);
  }

  function windowRange(index) {
    const start = history.startMs + index * history.granularity * 60000;
    const end = Math.min(start + history.granularity * 60000, Date.now());
    return formatTime(start, true) + ' – ' + formatTime(end, false);
  }

  function summary(series) {
    const totals = {};
    for (const k of HISTORY_KEYS) {
      totals[k] = series[k].length ? series[k].reduce(function (a, b) { return a + b; }, 0) / series[k].length : 0;
    }
    return HISTORY_KEYS.map(function (k) { return HISTORY_LABELS[k] + ' ' + totals[k].toFixed(1) + '%'; }).join(', ');
  }

  // Charts exist only for canvases that have been on screen, are updated in
  // place on every refresh, and are destroyed when their row goes away, so
  // memory stays flat however often the page refreshes.
  const charts = new Map();
  const observed = new Set();
  let labelCache = [];
  let visibility = null;

  function labels(n) {
    if (labelCache.length !== n) labelCache = Array.from({ length: n }, function (_, i) { return i; });
    return labelCache;
  }

  function createChart(canvas) {
    const series = seriesFor(canvas.dataset.chart);
    const chart = new window.Chart(canvas, {
      type: 'bar',
      data: {
        labels: labels(series.passing.length),
        datasets: HISTORY_KEYS.map(function (k) {
          return { label: HISTORY_LABELS[k], data: series[k], backgroundColor: HISTORY_COLORS[k], borderWidth: 0, barPercentage: 1, categoryPercentage: 1 };
        }),
      },
      options: {
        responsive: false,
        animation: false,
        events: ['mousemove', 'mouseout', 'touchstart', 'touchmove'],
        scales: { x: { display: false, stacked: true }, y: { display: false, stacked: true, min: 0, max: 100 } },
        plugins: {
          legend: { display: false },
          tooltip: {
            mode: 'index',
            intersect: false,
            filter: function (item) { return item.parsed.y > 0; },
            callbacks: {
              title: function (items) { return items.length ? windowRange(items[0].dataIndex) : ''; },
              label: function (item) { return item.dataset.label + ': ' + item.parsed.y + '%'; },
            },
          },
        },
      },
    });
    canvas.setAttribute('aria-label', canvas.dataset.chart.replace(/^\w+:/, '') + ', last 24 hours: ' + summary(series));
    charts.set(canvas, chart);
  }

  function updateChart(canvas, chart) {
    const series = seriesFor(canvas.dataset.chart);
    chart.data.labels = labels(series.passing.length);
    HISTORY_KEYS.forEach(function (k, i) { chart.data.datasets[i].data = series[k]; });
    chart.update('none');
    canvas.setAttribute('aria-label', canvas.dataset.chart.replace(/^\w+:/, '') + ', last 24 hours: ' + summary(series));
  }

  function syncCharts() {
    for (const [canvas, chart] of charts) {
      if (!canvas.isConnected) {
        chart.destroy();
        charts.delete(canvas);
      } else {
        updateChart(canvas, chart);
      }
    }
    for (const canvas of observed) {
      if (!canvas.isConnected) {
        visibility.unobserve(canvas);
        observed.delete(canvas);
      }
    }
    for (const canvas of document.querySelectorAll('canvas[data-chart]')) {
      if (!observed.has(canvas) && !charts.has(canvas)) {
        observed.add(canvas);
        visibility.observe(canvas);
      }
    }
    document.documentElement.dataset.charts = String(charts.size);
  }

  let syncQueued = false;
  function queueSync() {
    if (syncQueued) return;
    syncQueued = true;
    window.requestAnimationFrame(function () { syncQueued = false; syncCharts(); });
  }

  function setupCharts() {
    visibility = new IntersectionObserver(function (entries) {
      for (const e of entries) {
        if (e.isIntersecting && !charts.has(e.target)) {
          visibility.unobserve(e.target);
          observed.delete(e.target);
          createChart(e.target);
        }
      }
      document.documentElement.dataset.charts = String(charts.size);
    }, { rootMargin: '200px' });
    // Rows come and go with filtering, sorting and expanding: any change to
    // the table re-syncs the charts on the next frame.
    new MutationObserver(queueSync).observe(document.getElementById('services'), { childList: true, subtree: true });
  }

  // The service table. It is drawn here rather than with Alpine templates:
  // Alpine's CSP build parses each expression again on every evaluation,
  // which costs seconds at thousands of rows. Rows are keyed by service
  // name and rebuilt only when what they show changed; canvases move to
  // the new row so their charts survive. All text goes in as text nodes.
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const name in attrs || {}) {
      if (attrs[name] !== null && attrs[name] !== undefined) node.setAttribute(name, attrs[name]);
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function statusBadge(status) {
    return el('span', { class: 'status status-' + status, 'data-status': status }, [
      el('span', { class: 'icon', 'aria-hidden': 'true' }, [ICONS[status] || '?']),
      ' ',
      el('span', { class: 'status-text' }, [status]),
    ]);
  }

  function link(url) {
    const safe = safeURL(url);
    return safe ? el('a', { href: safe, target: '_blank', rel: 'noopener noreferrer' }, [safe]) : null;
  }

  function tagList(tags) {
    return tags.map(function (t) { return el('span', { class: 'tag' }, [t]); });
  }

  function historyCanvas(key, name, reuse) {
    return reuse.get(key) || el('canvas', { class: 'history', width: '300', height: '30', role: 'img', 'data-chart': key, 'aria-label': name + ': history of the last 24 hours' });
  }

  function groupRow(g, reuse) {
    return el('tr', { class: 'service-row' }, [
      el('td', { class: 'cell-name', 'data-label': 'Service' }, [
        el('button', { type: 'button', class: 'expander', 'data-name': g.name, 'aria-expanded': 'false', 'aria-label': 'Show the instances of ' + g.name }, [
          el('span', { 'aria-hidden': 'true' }, ['▸']),
        ]),
        ' ',
        el('span', { class: 'name' }, [g.name]),
        g.instances.length > 1 ? el('span', { class: 'muted instances' }, [' ' + g.instances.length + ' instances']) : null,
      ]),
      el('td', { 'data-label': 'Status' }, [statusBadge(g.status)]),
      el('td', { class: 'cell-url', 'data-label': 'URL' }, [link(g.url)]),
      el('td', { 'data-label': 'Tags' }, tagList(g.tags)),
      el('td', { class: 'cell-history', 'data-label': '24h history' }, [historyCanvas('group:' + g.name, g.name, reuse)]),
    ]);
  }

  function instanceRow(inst, reuse) {
    const checks = inst.checks.map(function (c) {
      return el('li', null, [
        statusBadge(c.status), ' ',
        el('span', { class: 'check-name' }, [c.name || c.id]),
        c.node_check ? el('span', { class: 'muted' }, [' (node check)']) : null,
        c.output ? el('pre', { class: 'output' }, [c.output]) : null,
      ]);
    });
    return el('tr', { class: 'instance-row', 'data-instance': inst.id }, [
      el('td', { class: 'cell-name', 'data-label': 'Instance' }, [
        el('span', { class: 'node' }, [inst.node]), ' ',
        el('span', { class: 'muted' }, [inst.serviceId]),
        el('details', { class: 'checks' }, [
          el('summary', null, [inst.checks.length === 1 ? '1 check' : inst.checks.length + ' checks']),
          el('ul', null, checks),
        ]),
      ]),
      el('td', { 'data-label': 'Status' }, [statusBadge(inst.current_status)]),
      el('td', { class: 'cell-url', 'data-label': 'URL' }, [link(inst.safe_url) || el('span', { class: 'muted' }, [inst.address])]),
      el('td', { 'data-label': 'Tags' }, tagList(inst.tags)),
      el('td', { class: 'cell-history', 'data-label': '24h history' }, [historyCanvas('instance:' + inst.id, inst.id, reuse)]),
    ]);
  }

  function canvasesIn(nodes) {
    const reuse = new Map();
    for (const n of nodes) {
      for (const c of n.querySelectorAll('canvas[data-chart]')) reuse.set(c.dataset.chart, c);
    }
    return reuse;
  }

  // A row is rebuilt when its signature, the data it shows, changes.
  function groupSignature(g) {
    return JSON.stringify([g.status, g.url, g.tags, g.instances.length]);
  }

  function instancesSignature(g) {
    return JSON.stringify(g.instances);
  }

  const tableRows = new Map(); // service name -> {tbody, row, rowSig, instSig, instanceRows}

  function renderTable(groups, expanded) {
    const table = document.getElementById('services');
    let previous = table.tHead;
    const shown = new Set();
    for (const g of groups) {
      shown.add(g.name);
      let entry = tableRows.get(g.name);
      if (!entry) {
        entry = { tbody: el('tbody', { class: 'group', 'data-service': g.name }), row: null, rowSig: null, instSig: null, instanceRows: [] };
        tableRows.set(g.name, entry);
      }
      const rowSig = groupSignature(g);
      if (entry.rowSig !== rowSig) {
        const hadFocus = entry.row && entry.row.contains(document.activeElement);
        const row = groupRow(g, canvasesIn(entry.row ? [entry.row] : []));
        if (entry.row) entry.row.replaceWith(row); else entry.tbody.prepend(row);
        entry.row = row;
        entry.rowSig = rowSig;
        if (hadFocus) row.querySelector('.expander').focus();
      }
      const open = !!expanded[g.name];
      const button = entry.row.querySelector('.expander');
      if (button.getAttribute('aria-expanded') !== String(open)) {
        button.setAttribute('aria-expanded', String(open));
        button.setAttribute('aria-label', (open ? 'Hide' : 'Show') + ' the instances of ' + g.name);
        button.firstChild.textContent = open ? '▾' : '▸';
      }
      const instSig = open ? instancesSignature(g) : '';
      if (entry.instSig !== instSig) {
        const reuse = canvasesIn(entry.instanceRows);
        for (const r of entry.instanceRows) r.remove();
        entry.instanceRows = open ? g.instances.map(function (inst) { return instanceRow(inst, reuse); }) : [];
        entry.tbody.append.apply(entry.tbody, entry.instanceRows);
        entry.instSig = instSig;
      }
      if (previous.nextSibling !== entry.tbody) table.insertBefore(entry.tbody, previous.nextSibling);
      previous = entry.tbody;
    }
    for (const [name, entry] of tableRows) {
      if (!shown.has(name)) {
        entry.tbody.remove();
        tableRows.delete(name);
      }
    }
  }

  function visibleGroups(groups, filter, problemsFirst) {
    const q = filter.trim().toLowerCase();
    const shown = q ? groups.filter(function (g) { return g.search.includes(q); }) : groups.slice();
    if (problemsFirst) {
      shown.sort(function (a, b) { return SEVERITY[b.status] - SEVERITY[a.status] || a.name.localeCompare(b.name); });
    }
    return shown;
  }

  // The data behind the table, outside Alpine's reactive state: proxies
  // around thousands of instances would cost more than the table itself.
  const data = { groups: [], expanded: {} };

  function dashboard() {
    return {
      loaded: false,
      loading: false,
      error: null,
      consulAvailable: true,
      consulError: null,
      lastPoll: null,
      instanceCount: 0,
      groupCount: 0,
      shownCount: 0,
      counts: { passing: 0, warning: 0, critical: 0, maintenance: 0, unknown: 0 },
      settings: {
        autoRefresh: { enabled: false, interval: 60, options: [30, 60, 120, 300, 600] },
        display: { historyGranularity: 15, granularityOptions: [5, 15, 30, 60] },
      },
      statusOrder: STATUS_ORDER,
      filter: '',
      problemsFirst: true,
      timer: null,
      refreshes: 0,

      async init() {
        setupCharts();
        const self = this;
        this.$watch('filter', function () { self.render(); });
        this.$watch('problemsFirst', function () { self.render(); });
        document.getElementById('services').addEventListener('click', function (e) {
          const button = e.target.closest('.expander');
          if (button) {
            data.expanded[button.dataset.name] = !data.expanded[button.dataset.name];
            self.render();
          }
        });
        try {
          this.settings = await requestJSON('/api/config');
        } catch (e) {
          this.error = 'settings: ' + e.message;
        }
        await this.refresh();
      },

      // refresh reloads instances and history together; a refresh asked for
      // while one runs is not started twice.
      async refresh() {
        if (this.loading) return;
        this.loading = true;
        try {
          const granularity = this.settings.display.historyGranularity;
          const answers = await Promise.all([requestJSON('/api/services'), requestJSON('/api/history?granularity=' + granularity)]);
          const svc = answers[0];
          const groups = buildGroups(svc.services);
          applyHistory(answers[1], groups);
          this.consulAvailable = svc.consul_available;
          this.consulError = svc.error;
          this.lastPoll = svc.last_poll;
          this.counts = countStatuses(svc.services);
          this.instanceCount = svc.services.length;
          data.groups = groups;
          this.render();
          this.error = null;
        } catch (e) {
          this.error = e.message;
        } finally {
          this.loading = false;
          this.loaded = true;
          this.refreshes++;
          document.documentElement.dataset.refreshes = String(this.refreshes);
          this.$nextTick(function () {
            syncCharts();
            document.documentElement.dataset.ready = 'true';
            // For the render benchmark: the first time the page has drawn
            // and its main thread is free again, i.e. it answers input.
            if (!document.documentElement.dataset.interactiveAt) {
              window.requestAnimationFrame(function () {
                window.setTimeout(function () {
                  document.documentElement.dataset.interactiveAt = String(Math.round(performance.now()));
                }, 0);
              });
            }
          });
          this.schedule();
        }
      },

      async loadHistory() {
        try {
          applyHistory(await requestJSON('/api/history?granularity=' + this.settings.display.historyGranularity), data.groups);
          this.error = null;
        } catch (e) {
          this.error = e.message;
        }
        syncCharts();
      },

      schedule() {
        window.clearTimeout(this.timer);
        this.timer = null;
        if (!this.settings.autoRefresh.enabled) return;
        const self = this;
        this.timer = window.setTimeout(function () { self.refresh(); }, this.settings.autoRefresh.interval * 1000 * intervalScale());
      },

      async saveSettings(patch) {
        try {
          this.settings = await postJSON('/api/config', patch);
          this.error = null;
        } catch (e) {
          this.error = 'settings not saved: ' + e.message;
        }
      },

      async toggleAutoRefresh() {
        await this.saveSettings({ autoRefresh: { enabled: !this.settings.autoRefresh.enabled } });
        this.schedule();
      },

      async chooseInterval(value) {
        await this.saveSettings({ autoRefresh: { interval: Number(value) } });
        this.schedule(); // the new interval counts from now
      },

      async chooseGranularity(value) {
        await this.saveSettings({ display: { historyGranularity: Number(value) } });
        await this.loadHistory();
      },

      render() {
        const shown = visibleGroups(data.groups, this.filter, this.problemsFirst);
        renderTable(shown, data.expanded);
        this.groupCount = data.groups.length;
        this.shownCount = shown.length;
      },

      shownLabel() {
        return this.shownCount === this.groupCount ? this.groupCount + ' services' : this.shownCount + ' of ' + this.groupCount + ' services';
      },

      connectionLabel() {
        if (!this.loaded) return 'Connecting…';
        return this.consulAvailable ? 'Consul connected' : 'Consul unreachable';
      },

      lastPollTime() {
        return this.lastPoll ? new Date(this.lastPoll).toLocaleString() : 'never';
      },

      lastUpdateLabel() {
        return 'last update ' + this.lastPollTime();
      },

      intervalLabel(seconds) {
        return seconds < 60 ? seconds + ' s' : seconds / 60 + ' min';
      },

      granularityLabel(minutes) {
        return minutes < 60 ? minutes + ' min' : minutes / 60 + ' h';
      },

      icon(status) {
        return ICONS[status] || '?';
      },
    };
  }

  function countStatuses(services) {
    const counts = { passing: 0, warning: 0, critical: 0, maintenance: 0, unknown: 0 };
    for (const s of services) {
      if (s.current_status in counts) counts[s.current_status]++;
    }
    return counts;
  }

  document.addEventListener('alpine:init', function () {
    window.Alpine.data('dashboard', dashboard);
  });
})();
