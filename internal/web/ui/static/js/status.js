// Banners and the connection line: owns how the state of Consul, of the
// catalog watch and of the recording is put into words. The words go on the
// page with x-text only, so an error message from Consul stays text.

// when is an API time in the browser's local time, or null.
export function when(iso) {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : new Date(ms).toLocaleString();
}

export function connectionLabel(loaded, consul) {
  if (!loaded) return 'Connecting…';
  return consul.ok ? 'Consul connected' : 'Consul unreachable';
}

export function consulHeadline(consul) {
  const since = when(consul.since);
  return 'Consul is unreachable' + (since ? ' since ' + since : '') + '.';
}

// recordingHeadline: the live state stays on screen while the database
// cannot be written, so the banner must say that history is not kept.
export function recordingHeadline(recording) {
  const since = when(recording.since);
  return 'History is not being recorded' + (since ? ' since ' + since : '') + (recording.error ? ':' : '.');
}

// catalogHeadline: a failing catalog read freezes the instance list, which
// would otherwise look current.
export function catalogHeadline(catalog) {
  const lastOk = when(catalog.lastOk);
  return (lastOk ? 'Instance list not refreshed since ' + lastOk : 'The instance list has not been read from Consul yet') + (catalog.error ? ':' : '.');
}
