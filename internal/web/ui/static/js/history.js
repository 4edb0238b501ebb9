// History data: owns /api/history unpacked into per-window series (for each
// instance, current or gone, and for each service), the exact durations
// behind every share, and how windows and durations are put into words.
// It lives outside Alpine's reactive state: wrapping hundreds of thousands
// of numbers in proxies would cost more than drawing them.

export const KEYS = ['passing', 'warning', 'critical', 'nodata'];
export const LABELS = { passing: 'passing', warning: 'warning', critical: 'critical', nodata: 'no data' };

const state = {
  granularity: 15,
  startMs: 0,
  windows: 0,
  instances: new Map(), // instance id -> series
  groups: null,         // service name -> series, from the API; null when it sends none
  means: new Map(),     // service name -> series, the fallback mean, computed on demand
  members: new Map(),   // service name -> instance ids, current and gone
};

// A series holds each window's percentages per status and, when the server
// sends them, the exact milliseconds (ms is then {passing: [...], ...}).
function emptySeries(n) {
  return {
    passing: new Array(n).fill(0), warning: new Array(n).fill(0), critical: new Array(n).fill(0), nodata: new Array(n).fill(100),
    ms: null,
  };
}

// unpack expands runs of identical windows, [count, passing, warning,
// critical, nodata, passing_ms, warning_ms, critical_ms, nodata_ms], the
// durations being optional.
function unpack(runs, n) {
  const series = emptySeries(n);
  const exact = runs.length > 0 && runs.every(function (r) { return r.length >= 9; });
  if (exact) series.ms = { passing: new Array(n).fill(0), warning: new Array(n).fill(0), critical: new Array(n).fill(0), nodata: new Array(n).fill(0) };
  let i = 0;
  for (const run of runs) {
    for (let c = 0; c < run[0] && i < n; c++, i++) {
      KEYS.forEach(function (k, j) {
        series[k][i] = run[1 + j];
        if (exact) series.ms[k][i] = run[5 + j];
      });
    }
  }
  return series;
}

// applyHistory takes a getHistory answer; members maps each service name to
// the ids of its instances, current and gone.
export function applyHistory(h, members) {
  state.granularity = h.granularity;
  state.startMs = Date.parse(h.start);
  state.windows = h.windows;
  state.instances = new Map();
  for (const id of Object.keys(h.services)) state.instances.set(id, unpack(h.services[id], h.windows));
  state.groups = null;
  if (h.groups) {
    state.groups = new Map();
    for (const name of Object.keys(h.groups)) state.groups.set(name, unpack(h.groups[name], h.windows));
  }
  state.means = new Map();
  state.members = members;
}

// seriesFor returns what a canvas draws: "instance:<id>" or "group:<name>".
// A service's windows come from the server's instance-time shares; an older
// server sends none, and the page falls back to the mean of its instances.
// Without history it is all no data.
export function seriesFor(key) {
  if (key.startsWith('instance:')) {
    return state.instances.get(key.slice(9)) || emptySeries(state.windows);
  }
  const name = key.slice(6);
  if (state.groups) return state.groups.get(name) || emptySeries(state.windows);
  if (!state.means.has(name)) {
    const members = (state.members.get(name) || []).map(function (id) { return state.instances.get(id) || emptySeries(state.windows); });
    const mean = emptySeries(state.windows);
    for (const k of KEYS) {
      for (let i = 0; i < state.windows; i++) {
        let sum = 0;
        for (const m of members) sum += m[k][i];
        mean[k][i] = members.length ? Math.round(sum / members.length * 10) / 10 : (k === 'nodata' ? 100 : 0);
      }
    }
    state.means.set(name, mean);
  }
  return state.means.get(name);
}

// nonZero says whether a status took any time in window i: the exact
// milliseconds decide when the server sends them, so a share that rounds
// to 0 still counts.
export function nonZero(series, k, i) {
  return series.ms ? series.ms[k][i] > 0 : series[k][i] > 0;
}

function formatTime(ms, withDate) {
  const opts = { hour: '2-digit', minute: '2-digit' };
  if (withDate) { opts.month = 'short'; opts.day = 'numeric'; }
  return new Date(ms).toLocaleString(undefined, opts);
}

// windowRange is window i's span in local time.
export function windowRange(i) {
  const start = state.startMs + i * state.granularity * 60000;
  const end = Math.min(start + state.granularity * 60000, Date.now());
  return formatTime(start, true) + ' – ' + formatTime(end, false);
}

// formatDuration writes milliseconds exactly, largest unit first:
// 1500 -> "1.5 s", 200000 -> "3 min 20 s", 3600000 -> "1 h".
export function formatDuration(ms) {
  ms = Math.max(0, Math.round(ms));
  if (ms === 0) return '0 s';
  const h = Math.floor(ms / 3600000);
  const min = Math.floor(ms % 3600000 / 60000);
  const s = ms % 60000 / 1000;
  const parts = [];
  if (h) parts.push(h + ' h');
  if (min) parts.push(min + ' min');
  if (s) parts.push(String(s) + ' s');
  return parts.join(' ');
}

// describe is one status's part of window i, as a tooltip line:
// "critical 1.5 s (0.1%)"; without exact durations, "critical 0.1%".
export function describe(series, k, i) {
  const pct = series[k][i] + '%';
  return LABELS[k] + ' ' + (series.ms ? formatDuration(series.ms[k][i]) + ' (' + pct + ')' : pct);
}

// summary is the whole day in words, for screen readers: the share of the
// day per status, from exact durations when there are any.
export function summary(series) {
  const totals = {};
  let all = 0;
  for (const k of KEYS) {
    const values = series.ms ? series.ms[k] : series[k];
    totals[k] = values.reduce(function (a, b) { return a + b; }, 0);
    all += totals[k];
  }
  return KEYS.map(function (k) {
    const share = all > 0 ? totals[k] / all * 100 : (k === 'nodata' ? 100 : 0);
    return LABELS[k] + ' ' + (totals[k] > 0 && share < 0.1 ? '<0.1' : share.toFixed(1)) + '%';
  }).join(', ');
}
