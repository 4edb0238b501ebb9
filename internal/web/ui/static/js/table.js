// Table and groups: owns how instances are grouped by service name (with
// the instances that left during the day), filtered and ordered, and the
// service table's rows. The rows are drawn here rather than with Alpine
// templates: Alpine's CSP build parses each expression again on every
// evaluation, which costs seconds at thousands of rows. Rows are keyed by
// service name and rebuilt only when what they show changed; canvases move
// to the new row so their charts survive. All text goes in as text nodes.
//
// Consul's data is written by many hands, so no value from it may break a
// row for the others: every keyed lookup is a Map or a prototype-free object
// (a service may be named "__proto__"), text from Consul is bidi-isolated
// (a right-to-left override in a node name must not reverse what follows),
// and long values are ellipsised or broken inside their fixed-width column,
// with the full value in a title or the instance's details.

import { when } from './status.js';

// dict is a lookup table without a prototype: a key read from the API
// never finds Object.prototype's properties.
export function dict(entries) {
  return Object.freeze(Object.assign(Object.create(null), entries));
}

export const STATUS_ORDER = ['critical', 'warning', 'maintenance', 'unknown', 'passing'];
// Higher is worse: a group shows its worst instance, and "problems first"
// sorts by it. A service whose every instance has left comes last.
const SEVERITY = dict({ gone: -1, passing: 0, unknown: 1, maintenance: 2, warning: 3, critical: 4 });
export const ICONS = dict({ passing: '✔', warning: '▲', critical: '✖', maintenance: '⚙', unknown: '?', gone: '⏏' });

// At most this many tags are drawn in a row; the rest are counted, and
// listed in the count's title.
export const MAX_TAGS = 12;

// Bidi and control characters, which make a host read as another.
const BIDI_OR_CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

// Only http and https URLs to a plain host become links: none with
// credentials ("https://good.example@evil.example/" leads to evil.example),
// a port outside 1-65535, an IPv6 zone, or a bidi or control character in
// the host. The server already refuses them; this keeps the page safe even
// if it did not.
export function safeURL(url) {
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return null;
  // A browser reads a backslash as a slash, a server as part of the host:
  // the authority is taken up to the first slash, '?' or '#' alone, so
  // that "http://a.example\@b.example/" is refused for its '@'.
  const authority = url.slice(url.indexOf('//') + 2).split(/[/?#]/)[0];
  if (BIDI_OR_CONTROL.test(authority) || /[@%\\]/.test(authority)) return null;
  let u;
  try {
    u = new URL(url); // throws on a port above 65535 and on a bad host
  } catch (e) {
    return null;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || !u.hostname || u.port === '0') return null;
  return url;
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

// buildGroups groups /api/services' instances by service name. gone is
// /api/history's instances that were registered during the day and are not
// now; they join their service's group, marked as gone. A service whose
// every instance has left keeps its row for the day, with the status
// "gone", so that its failures do not vanish with it.
export function buildGroups(services, gone) {
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
    if (!byName.has(svc.name)) byName.set(svc.name, { instances: [], gone: [] });
    byName.get(svc.name).instances.push(inst);
  }
  for (const id of Object.keys(gone || {})) {
    const g = gone[id];
    if (!byName.has(g.name)) byName.set(g.name, { instances: [], gone: [] });
    const entry = byName.get(g.name);
    if (entry.instances.some(function (i) { return i.id === id; })) continue;
    entry.gone.push({ id: id, node: g.node, serviceId: g.service_id || serviceIdOf(id), deregisteredAt: g.deregistered_at || null });
  }
  const groups = [];
  for (const [name, entry] of byName) {
    const instances = entry.instances;
    entry.gone.sort(function (a, b) { return a.id.localeCompare(b.id); });
    const tags = Array.from(new Set(instances.flatMap(function (i) { return i.tags; }))).sort();
    groups.push({
      name: name,
      instances: instances,
      gone: entry.gone,
      status: instances.length ? worst(instances.map(function (i) { return i.current_status; })) : 'gone',
      url: instances.length === 1 ? instances[0].safe_url : null,
      tags: tags,
      search: (name + ' ' + tags.join(' ') + ' ' + instances.concat(entry.gone).map(function (i) { return i.node; }).join(' ')).toLowerCase(),
    });
  }
  groups.sort(function (a, b) { return a.name.localeCompare(b.name); });
  return groups;
}

// members maps each service name to its instance ids, current and gone,
// for the history module's fallback mean.
export function members(groups) {
  return new Map(groups.map(function (g) { return [g.name, g.instances.concat(g.gone).map(function (i) { return i.id; })]; }));
}

export function visibleGroups(groups, filter, problemsFirst) {
  const q = filter.trim().toLowerCase();
  const shown = q ? groups.filter(function (g) { return g.search.includes(q); }) : groups.slice();
  if (problemsFirst) {
    shown.sort(function (a, b) { return SEVERITY[b.status] - SEVERITY[a.status] || a.name.localeCompare(b.name); });
  }
  return shown;
}

export function countStatuses(services) {
  const counts = { passing: 0, warning: 0, critical: 0, maintenance: 0, unknown: 0 };
  for (const s of services) {
    if (Object.hasOwn(counts, s.current_status)) counts[s.current_status]++;
  }
  return counts;
}

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

// text is a value from Consul: isolated from the text around it, and cut
// with an ellipsis at its column's edge, the full value in its title.
function text(cls, value) {
  return el('span', { class: cls + ' clip', dir: 'auto', title: value }, [value]);
}

function link(url) {
  const safe = safeURL(url);
  return safe ? el('a', { class: 'clip', dir: 'auto', href: safe, title: safe, target: '_blank', rel: 'noopener noreferrer' }, [safe]) : null;
}

function tagList(tags) {
  const shown = tags.slice(0, MAX_TAGS).map(function (t) { return text('tag', t); });
  if (tags.length > MAX_TAGS) {
    const rest = tags.slice(MAX_TAGS);
    shown.push(el('span', { class: 'muted more-tags', title: rest.join(', ') }, ['+' + rest.length + ' more']));
  }
  return shown;
}

// ids are an instance's node and service id in full, broken anywhere, in
// its details: the row itself may show them cut.
function ids(inst) {
  return el('dl', { class: 'ids' }, [
    el('dt', null, ['node']), el('dd', { dir: 'auto' }, [inst.node]),
    el('dt', null, ['service id']), el('dd', { dir: 'auto' }, [inst.serviceId]),
  ]);
}

function historyCanvas(key, name, reuse) {
  return reuse.get(key) || el('canvas', { class: 'history', width: '300', height: '30', role: 'img', 'data-chart': key, 'aria-label': name + ': history of the last 24 hours' });
}

function groupRow(g, reuse) {
  const count = g.instances.length > 1 ? g.instances.length + ' instances' : '';
  const left = g.gone.length ? g.gone.length + ' gone' : '';
  return el('tr', { class: 'service-row' }, [
    el('td', { class: 'cell-name', 'data-label': 'Service' }, [
      el('button', { type: 'button', class: 'expander', 'data-name': g.name, 'aria-expanded': 'false', 'aria-label': 'Show the instances of ' + g.name }, [
        el('span', { 'aria-hidden': 'true' }, ['▸']),
      ]),
      ' ',
      text('name', g.name),
      count || left ? el('span', { class: 'muted instances' }, [' ' + [count, left].filter(Boolean).join(', ')]) : null,
    ]),
    el('td', { class: 'cell-status', 'data-label': 'Status' }, [statusBadge(g.status)]),
    el('td', { class: 'cell-url', 'data-label': 'URL' }, [link(g.url)]),
    el('td', { class: 'cell-tags', 'data-label': 'Tags' }, tagList(g.tags)),
    el('td', { class: 'cell-history', 'data-label': '24h history' }, [historyCanvas('group:' + g.name, g.name, reuse)]),
  ]);
}

function instanceRow(inst, reuse) {
  const checks = inst.checks.map(function (c) {
    return el('li', null, [
      statusBadge(c.status), ' ',
      el('span', { class: 'check-name', dir: 'auto' }, [c.name || c.id]),
      c.node_check ? el('span', { class: 'muted' }, [' (node check)']) : null,
      c.output ? el('pre', { class: 'output', dir: 'auto' }, [c.output]) : null,
      c.output_truncated ? el('span', { class: 'muted truncated' }, ['(output truncated)']) : null,
    ]);
  });
  return el('tr', { class: 'instance-row', 'data-instance': inst.id }, [
    el('td', { class: 'cell-name', 'data-label': 'Instance' }, [
      text('node', inst.node), ' ',
      text('sid muted', inst.serviceId),
      el('details', { class: 'checks' }, [
        el('summary', null, [inst.checks.length === 1 ? '1 check' : inst.checks.length + ' checks']),
        ids(inst),
        el('ul', null, checks),
      ]),
    ]),
    el('td', { class: 'cell-status', 'data-label': 'Status' }, [statusBadge(inst.current_status)]),
    el('td', { class: 'cell-url', 'data-label': 'URL' }, [link(inst.safe_url) || text('address muted', inst.address)]),
    el('td', { class: 'cell-tags', 'data-label': 'Tags' }, tagList(inst.tags)),
    el('td', { class: 'cell-history', 'data-label': '24h history' }, [historyCanvas('instance:' + inst.id, inst.id, reuse)]),
  ]);
}

// goneRow is an instance that left during the day: no status now, but its
// own bar, since its failures still count in its service's row.
function goneRow(inst, reuse) {
  const left = when(inst.deregisteredAt);
  return el('tr', { class: 'instance-row gone-row', 'data-instance': inst.id, 'data-gone': 'true' }, [
    el('td', { class: 'cell-name', 'data-label': 'Instance' }, [
      text('node', inst.node), ' ',
      text('sid muted', inst.serviceId),
    ]),
    el('td', { class: 'cell-status', 'data-label': 'Status' }, [
      statusBadge('gone'),
      left ? el('span', { class: 'muted gone-at' }, [' left ' + left]) : null,
    ]),
    el('td', { class: 'cell-url', 'data-label': 'URL' }),
    el('td', { class: 'cell-tags', 'data-label': 'Tags' }),
    el('td', { class: 'cell-history', 'data-label': '24h history' }, [historyCanvas('instance:' + inst.id, inst.id + ' (gone)', reuse)]),
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
  return JSON.stringify([g.status, g.url, g.tags, g.instances.length, g.gone.length]);
}

function instancesSignature(g) {
  return JSON.stringify([g.instances, g.gone]);
}

const tableRows = new Map(); // service name -> {tbody, row, rowSig, instSig, instanceRows}

// expanded is a Map from service name to true for the open groups.
export function renderTable(table, groups, expanded) {
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
    const open = expanded.get(g.name) === true;
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
      entry.instanceRows = open
        ? g.instances.map(function (inst) { return instanceRow(inst, reuse); }).concat(g.gone.map(function (inst) { return goneRow(inst, reuse); }))
        : [];
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
