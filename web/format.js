// Presentation tables and formatting helpers.

/** Outgoing/incoming message state -> indicator. Add new states here only. */
export const MESSAGE_STATES = {
  sending: { icon: '◷', label: 'Sending…' },
  relayed: { icon: '⇢', label: 'Held by relays until the recipient comes online' },
  sent: { icon: '✓', label: 'Sent' },
  delivered: { icon: '✓✓', label: 'Delivered' },
  read: { icon: '✓✓', label: 'Read', className: 'state-read' },
  failed: { icon: '⚠', label: 'Not sent', className: 'state-failed' },
  received: { icon: '', label: 'Received' },
};

export function messageStateInfo(state) {
  return MESSAGE_STATES[state] || { icon: '', label: String(state || '') };
}

/** Rank used so a stale snapshot never moves a message's state backwards. */
const STATE_RANK = {
  sending: 0,
  failed: 0,
  relayed: 1,
  sent: 2,
  received: 2,
  delivered: 3,
  read: 4,
};
export function stateRank(state) {
  return STATE_RANK[state] ?? 2;
}

export const STATUSES = {
  online: 'Online',
  away: 'Away',
  busy: 'Busy',
  offline: 'Offline',
};

export function normalizeStatus(status) {
  return Object.hasOwn(STATUSES, status) ? status : 'offline';
}

export function statusLabel(status) {
  return STATUSES[normalizeStatus(status)];
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

export function toDate(epochSeconds) {
  const n = Number(epochSeconds);
  return new Date(Number.isFinite(n) ? n * 1000 : 0);
}

/** HH:MM, local time, 24 h. */
export function formatTime(epochSeconds) {
  const d = toDate(epochSeconds);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

export function formatFull(epochSeconds) {
  const d = toDate(epochSeconds);
  return `${d.toLocaleDateString(undefined, {
    weekday: 'short',
    year: 'numeric',
    month: 'short',
    day: 'numeric',
  })} ${formatTime(epochSeconds)}`;
}

export function dayKey(epochSeconds) {
  const d = toDate(epochSeconds);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(epochSeconds) {
  const d = toDate(epochSeconds);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(epochSeconds) === dayKey(today.getTime() / 1000)) return 'Today';
  if (dayKey(epochSeconds) === dayKey(yesterday.getTime() / 1000)) return 'Yesterday';
  const opts = { weekday: 'long', month: 'long', day: 'numeric' };
  if (d.getFullYear() !== today.getFullYear()) opts.year = 'numeric';
  return d.toLocaleDateString(undefined, opts);
}

/** Sort key comparison: (sent_at, seq, id). */
export function compareMessages(a, b) {
  const ta = Number(a.sent_at) || 0;
  const tb = Number(b.sent_at) || 0;
  if (ta !== tb) return ta - tb;
  const sa = Number(a.seq) || 0;
  const sb = Number(b.seq) || 0;
  if (sa !== sb) return sa - sb;
  return String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;
}

/** Stable small integer from a string, for avatar colours. */
export function hashHue(name, buckets = 8) {
  let x = 0;
  for (const ch of String(name)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % buckets;
}

export function initial(name) {
  const first = [...String(name).trim()][0];
  return first ? first.toUpperCase() : '?';
}
