// Presentation tables and formatting helpers.

/** Outgoing/incoming message state -> indicator (the order of outgoing states: states.js). */
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

/** When a contact's key changed (PROTOCOL.md §18.6): "today", "yesterday", "5 days ago". */
export function keyChangedText(epochSeconds) {
  const days = Math.floor((Date.now() / 1000 - Number(epochSeconds)) / 86400);
  if (!Number.isFinite(days) || days <= 0) return 'key changed today';
  return days === 1 ? 'key changed yesterday' : `key changed ${days} days ago`;
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

// ---------- files: sizes, durations, progress, badges ----------

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

export function formatBytes(n) {
  let value = Math.max(0, Number(n) || 0);
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** "12.3 MB of 40 MB · 25 MB/s · 2 s left" */
export function progressText(progress, size) {
  const parts = [`${formatBytes(progress.bytes)} of ${formatBytes(size)}`];
  if (progress.rate_bps > 0) parts.push(`${formatBytes(progress.rate_bps)}/s`);
  if (progress.eta_s !== null && progress.eta_s !== undefined && progress.bytes < size) {
    parts.push(`${formatDuration(progress.eta_s)} left`);
  }
  return parts.join(' · ');
}

const MEDIA_BADGES = { image: 'IMG', audio: 'AUDIO', video: 'VIDEO' };

/** A short badge for the file's kind: its extension (PDF, XLSX…), else its media class. */
export function fileBadge(name, media) {
  const dot = String(name || '').lastIndexOf('.');
  const ext = dot > 0 ? String(name).slice(dot + 1) : '';
  if (/^[A-Za-z0-9]{1,5}$/.test(ext)) return ext.toUpperCase();
  return MEDIA_BADGES[media] || 'FILE';
}
