// Table and groups: owns how instances are grouped by service name (with
// the instances that left during the day), filtered and ordered, and the
// service table's rows. The rows are drawn here rather than with Alpine
// templates: Alpine's CSP build parses each expression again on every
// evaluation, which costs seconds at thousands of rows. Rows are keyed by
// service name and rebuilt only when what they show changed; canvases move
// to the new row so their charts survive. All text goes in as text nodes.

import { when } from './status.js';

export const STATUS_ORDER = ['critical', 'warning', 'maintenance', 'unknown', 'passing'];
// Higher is worse: a group shows its worst instance, and "problems first"
// sorts by it. A service whose every instance has left comes last.
const SEVERITY = { gone: -1, passing: 0, unknown: 1, maintenance: 2, warning: 3, critical: 4 };
export const ICONS = { passing: '✔', warning: '▲', critical: '✖', maintenance: '⚙', unknown: '?', gone: '⏏' };

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
    if (s.current_status in counts) counts[s.current_status]++;
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
  const count = g.instances.length > 1 ? g.instances.length + ' instances' : '';
  const left = g.gone.length ? g.gone.length + ' gone' : '';
  return el('tr', { class: 'service-row' }, [
    el('td', { class: 'cell-name', 'data-label': 'Service' }, [
      el('button', { type: 'button', class: 'expander', 'data-name': g.name, 'aria-expanded': 'false', 'aria-label': 'Show the instances of ' + g.name }, [
        el('span', { 'aria-hidden': 'true' }, ['▸']),
      ]),
      ' ',
      el('span', { class: 'name' }, [g.name]),
      count || left ? el('span', { class: 'muted instances' }, [' ' + [count, left].filter(Boolean).join(', ')]) : null,
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
      c.output_truncated ? el('span', { class: 'muted' }, ['(output truncated)']) : null,
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

// goneRow is an instance that left during the day: no status now, but its
// own bar, since its failures still count in its service's row.
function goneRow(inst, reuse) {
  const left = when(inst.deregisteredAt);
  return el('tr', { class: 'instance-row gone-row', 'data-instance': inst.id, 'data-gone': 'true' }, [
    el('td', { class: 'cell-name', 'data-label': 'Instance' }, [
      el('span', { class: 'node' }, [inst.node]), ' ',
      el('span', { class: 'muted' }, [inst.serviceId]),
    ]),
    el('td', { 'data-label': 'Status' }, [
      statusBadge('gone'),
      left ? el('span', { class: 'muted gone-at' }, [' left ' + left]) : null,
    ]),
    el('td', { class: 'cell-url', 'data-label': 'URL' }),
    el('td', { 'data-label': 'Tags' }),
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
