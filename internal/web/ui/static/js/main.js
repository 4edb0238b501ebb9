// The dashboard's entry point: owns the Alpine component that holds the
// page's small reactive state (header, banners, counts) and the refresh
// cycle that ties the other modules together. Alpine's CSP build renders
// the page without eval, so it runs under a strict Content-Security-Policy;
// everything from Consul is shown as text, never as HTML.
//
// index.html loads this module before Alpine's script, and module and
// deferred scripts run in document order, so the component below is
// registered on alpine:init before Alpine starts.

import { getServices, getHistory, getSettings, saveSettings } from './api.js';
import { applyHistory } from './history.js';
import { setupCharts, syncCharts } from './charts.js';
import { DEFAULT_SETTINGS, refreshDelay, intervalLabel, granularityLabel } from './settings.js';
import { when, connectionLabel, consulHeadline, recordingHeadline, catalogHeadline } from './status.js';
import { STATUS_ORDER, ICONS, buildGroups, members, visibleGroups, countStatuses, renderTable } from './table.js';

// The settings changes waiting for the server, in order (see saveSettings);
// kept outside Alpine's reactive state, which would wrap the promise.
let settingsQueue = Promise.resolve();

// The data behind the table, outside Alpine's reactive state: proxies
// around thousands of instances would cost more than the table itself.
// expanded is a Map, not an object: a service named "__proto__" or
// "constructor" would otherwise open expanded and never close.
const data = { services: [], groups: [], expanded: new Map() };

const OK = { ok: true, error: null, since: null, lastOk: null };

function table() {
  return document.getElementById('services');
}

function dashboard() {
  return {
    loaded: false,
    loading: false,
    error: null,
    consul: OK,
    catalog: OK,
    recording: OK,
    lastPoll: null,
    instanceCount: 0,
    groupCount: 0,
    shownCount: 0,
    counts: { passing: 0, warning: 0, critical: 0, maintenance: 0, unknown: 0 },
    settings: JSON.parse(JSON.stringify(DEFAULT_SETTINGS)),
    statusOrder: STATUS_ORDER,
    filter: '',
    problemsFirst: true,
    timer: null,
    refreshes: 0,

    async init() {
      setupCharts(table());
      const self = this;
      this.$watch('filter', function () { self.render(); });
      this.$watch('problemsFirst', function () { self.render(); });
      table().addEventListener('click', function (e) {
        const button = e.target.closest('.expander');
        if (button) {
          const name = button.dataset.name;
          data.expanded.set(name, data.expanded.get(name) !== true);
          self.render();
        }
      });
      try {
        this.settings = await getSettings();
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
        const answers = await Promise.all([getServices(), getHistory(this.settings.display.historyGranularity)]);
        const svc = answers[0];
        data.services = svc.services;
        this.applyHistory(answers[1]);
        this.consul = svc.consul;
        this.catalog = svc.catalog;
        this.recording = svc.recording;
        this.lastPoll = svc.lastPoll;
        this.counts = countStatuses(svc.services);
        this.instanceCount = svc.services.length;
        this.render();
        this.error = null;
      } catch (e) {
        this.error = e.message;
      } finally {
        this.loading = false;
        this.loaded = true;
        this.refreshes++;
        const done = this.refreshes;
        // Published once Alpine has drawn this answer, so that a test that
        // waits for the count sees the page as the answer left it.
        this.$nextTick(function () {
          document.documentElement.dataset.refreshes = String(done);
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

    // applyHistory regroups the instances, since the instances that left
    // during the day come with the history.
    applyHistory(h) {
      data.groups = buildGroups(data.services, h.gone);
      applyHistory(h, members(data.groups));
    },

    async loadHistory() {
      try {
        this.applyHistory(await getHistory(this.settings.display.historyGranularity));
        this.render();
        this.error = null;
      } catch (e) {
        this.error = e.message;
      }
      syncCharts();
    },

    schedule() {
      window.clearTimeout(this.timer);
      this.timer = null;
      const delay = refreshDelay(this.settings);
      if (delay === null) return;
      const self = this;
      this.timer = window.setTimeout(function () { self.refresh(); }, delay);
    },

    // Settings changes go to the server one at a time: each answer carries
    // the whole of the settings cookie, so two requests in flight at once
    // would each start from the old cookie and the later answer would undo
    // the earlier change. patch may be a function of the settings as they
    // are when the change's turn comes.
    saveSettings(patch) {
      const self = this;
      const job = settingsQueue.then(async function () {
        try {
          self.settings = await saveSettings(typeof patch === 'function' ? patch(self.settings) : patch);
          self.error = null;
        } catch (e) {
          self.error = 'settings not saved: ' + e.message;
        }
      });
      settingsQueue = job;
      return job;
    },

    async toggleAutoRefresh() {
      await this.saveSettings(function (current) { return { autoRefresh: { enabled: !current.autoRefresh.enabled } }; });
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
      renderTable(table(), shown, data.expanded);
      this.groupCount = data.groups.length;
      this.shownCount = shown.length;
    },

    // What the template reads. Alpine's CSP build evaluates only property
    // paths and calls, so every derived value is a method.
    // "No services yet" is not true when Consul answers but the instance
    // list cannot be read: the catalog banner says why instead. With Consul
    // unreachable, the empty state's advice on pointing at Consul helps.
    emptyState() { return this.loaded && this.instanceCount === 0 && !this.error && (this.catalog.ok || !this.consul.ok); },
    consulDown() { return this.loaded && !this.consul.ok; },
    catalogFailing() { return this.loaded && !this.catalog.ok; },
    recordingFailing() { return this.loaded && !this.recording.ok; },
    consulHeadline() { return consulHeadline(this.consul); },
    catalogHeadline() { return catalogHeadline(this.catalog); },
    recordingHeadline() { return recordingHeadline(this.recording); },
    connectionLabel() { return connectionLabel(this.loaded, this.consul); },
    lastPollTime() { return when(this.lastPoll) || 'never'; },
    lastUpdateLabel() { return 'last update ' + this.lastPollTime(); },
    shownLabel() {
      return this.shownCount === this.groupCount ? this.groupCount + ' services' : this.shownCount + ' of ' + this.groupCount + ' services';
    },
    intervalLabel: intervalLabel,
    granularityLabel: granularityLabel,
    icon(status) { return ICONS[status] || '?'; }, // ICONS has no prototype
  };
}

document.addEventListener('alpine:init', function () {
  window.Alpine.data('dashboard', dashboard);
});
