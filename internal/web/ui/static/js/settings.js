// Settings: owns this browser's settings as the page holds them (the server
// keeps them in a signed cookie), how they are labelled, and how long the
// auto-refresh timer waits.

export const DEFAULT_SETTINGS = {
  autoRefresh: { enabled: false, interval: 60, options: [30, 60, 120, 300, 600] },
  display: { historyGranularity: 15, granularityOptions: [5, 15, 30, 60] },
};

// Test-only: browser tests shorten every refresh interval by this factor
// so that cadence can be checked in seconds. It is read from localStorage
// and has no control on the page (see DEVELOPERS.md).
function intervalScale() {
  const v = parseFloat(window.localStorage.getItem('consul-monitor.test.interval-scale'));
  return v > 0 ? v : 1;
}

// refreshDelay is the time until the next automatic refresh, or null when
// auto-refresh is off.
export function refreshDelay(settings) {
  if (!settings.autoRefresh.enabled) return null;
  return settings.autoRefresh.interval * 1000 * intervalScale();
}

export function intervalLabel(seconds) {
  return seconds < 60 ? seconds + ' s' : seconds / 60 + ' min';
}

export function granularityLabel(minutes) {
  return minutes < 60 ? minutes + ' min' : minutes / 60 + ' h';
}
