// API client: owns every request the page makes to consul-monitor and the
// shape in which the other modules read the answers. Fields an older server
// does not send (consul, catalog, recording, gone, groups, the *_ms
// durations) are filled in here from the seed fields, so no other module
// needs to guard against their absence.

export async function requestJSON(url, options) {
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

export function postJSON(url, value) {
  return requestJSON(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(value) });
}

// source is one of the three facts /api/services reports (consul, catalog,
// recording): whether it works, its error, since when, and its last success.
function source(raw, fallback) {
  const s = raw && typeof raw === 'object' ? raw : fallback;
  return {
    ok: s.ok !== false,
    error: typeof s.error === 'string' && s.error ? s.error : null,
    since: s.since || null,
    lastOk: s.last_ok || null,
  };
}

// withNodeChecks gives each instance its own checks followed by its node's:
// the server sends a node's checks once, in nodes[node].checks, rather than
// in every instance on the node. The instances share the node's check
// objects. A Map, so that a node named like an Object property
// (__proto__, constructor) finds only its own entry.
function withNodeChecks(services, nodes) {
  const byNode = new Map(Object.entries(nodes && typeof nodes === 'object' ? nodes : {}));
  return services.map(function (s) {
    const n = byNode.get(s.node);
    if (!n || !Array.isArray(n.checks) || n.checks.length === 0) return s;
    return Object.assign({}, s, { checks: (Array.isArray(s.checks) ? s.checks : []).concat(n.checks) });
  });
}

// getServices reads /api/services: the instances and the state of Consul,
// the catalog watch and the recording.
export async function getServices() {
  const body = await requestJSON('/api/services');
  return {
    services: withNodeChecks(Array.isArray(body.services) ? body.services : [], body.nodes),
    lastPoll: body.last_poll || null,
    consul: source(body.consul, { ok: body.consul_available, error: body.error, last_ok: body.last_poll }),
    catalog: source(body.catalog, { ok: true }),
    recording: source(body.recording, { ok: true }),
  };
}

// getHistory reads /api/history: every instance's windows (current and
// gone), the gone instances, and each service's instance-time shares.
export async function getHistory(granularity) {
  const body = await requestJSON('/api/history?granularity=' + encodeURIComponent(granularity));
  return {
    granularity: body.granularity,
    start: body.start,
    windows: body.windows,
    services: body.services || {},
    gone: body.gone || {},
    groups: body.groups || null, // null: the server does not compute them
  };
}

export function getSettings() {
  return requestJSON('/api/config');
}

export function saveSettings(patch) {
  return postJSON('/api/config', patch);
}
