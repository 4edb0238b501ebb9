// Charts: owns the Chart.js bar charts of the history column. A chart exists
// only for a canvas that has been on screen, is updated in place on every
// refresh, and is destroyed when its row goes away, so memory stays flat
// however often the page refreshes. It also owns how a share is drawn: a
// failure that took any time is never drawn as nothing.

import { KEYS, LABELS, seriesFor, nonZero, windowRange, describe, summary } from './history.js';

const COLORS = { passing: '#2da44e', warning: '#d4a72c', critical: '#cf222e', nodata: '#8c959f' };

// The least height, in pixels of a 30 px canvas, of a warning, critical or
// no-data share that is not zero: 1.5 s of a 60 min window is 0.04 %, far
// below one pixel, and must still be seen.
const CANVAS_HEIGHT = 30;
export const SLIVER_PX = 2;
const SLIVER = 100 * SLIVER_PX / CANVAS_HEIGHT;

const charts = new Map();
const observed = new Set();
let labelCache = [];
let visibility = null;

function labels(n) {
  if (labelCache.length !== n) labelCache = Array.from({ length: n }, function (_, i) { return i; });
  return labelCache;
}

// drawn is what the bars show: the shares, with every non-zero warning,
// critical or no-data share raised to a sliver, taken from the largest
// share so that each bar still fills the chart exactly.
function drawn(series) {
  const n = series.passing.length;
  const out = { passing: series.passing.slice(), warning: series.warning.slice(), critical: series.critical.slice(), nodata: series.nodata.slice() };
  for (let i = 0; i < n; i++) {
    let raised = 0;
    for (const k of ['warning', 'critical', 'nodata']) {
      if (nonZero(series, k, i) && out[k][i] < SLIVER) {
        raised += SLIVER - out[k][i];
        out[k][i] = SLIVER;
      }
    }
    if (raised > 0) {
      let largest = 'passing';
      for (const k of KEYS) if (series[k][i] > series[largest][i]) largest = k;
      out[largest][i] = Math.max(0, out[largest][i] - raised);
    }
  }
  return out;
}

function chartLabel(canvas, series) {
  return canvas.dataset.chart.replace(/^\w+:/, '') + ', last 24 hours: ' + summary(series);
}

function createChart(canvas) {
  const series = seriesFor(canvas.dataset.chart);
  const bars = drawn(series);
  const chart = new window.Chart(canvas, {
    type: 'bar',
    data: {
      labels: labels(series.passing.length),
      datasets: KEYS.map(function (k) {
        return { label: LABELS[k], data: bars[k], backgroundColor: COLORS[k], borderWidth: 0, barPercentage: 1, categoryPercentage: 1 };
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
          // The tooltip reads the exact series, not the drawn bars.
          filter: function (item) { return nonZero(chart.$series, KEYS[item.datasetIndex], item.dataIndex); },
          callbacks: {
            title: function (items) { return items.length ? windowRange(items[0].dataIndex) : ''; },
            label: function (item) { return describe(chart.$series, KEYS[item.datasetIndex], item.dataIndex); },
          },
        },
      },
    },
  });
  chart.$series = series;
  canvas.setAttribute('aria-label', chartLabel(canvas, series));
  charts.set(canvas, chart);
}

function updateChart(canvas, chart) {
  const series = seriesFor(canvas.dataset.chart);
  const bars = drawn(series);
  chart.$series = series;
  chart.data.labels = labels(series.passing.length);
  KEYS.forEach(function (k, i) { chart.data.datasets[i].data = bars[k]; });
  chart.update('none');
  canvas.setAttribute('aria-label', chartLabel(canvas, series));
}

// syncCharts brings the charts in line with the canvases in the table:
// drawn ones updated, detached ones destroyed, new ones watched until they
// come on screen.
export function syncCharts() {
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

export function setupCharts(table) {
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
  new MutationObserver(queueSync).observe(table, { childList: true, subtree: true });
}
