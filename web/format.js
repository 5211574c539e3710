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

// What a file is, in words: by its extension first (what people know a file by), then by its
// declared type's family, then its media class. The raw MIME type is never shown.
const KINDS_BY_EXTENSION = {
  pdf: 'PDF document',
  doc: 'Word document',
  docx: 'Word document',
  rtf: 'Rich text document',
  odt: 'OpenDocument text',
  pages: 'Pages document',
  xls: 'Excel spreadsheet',
  xlsx: 'Excel spreadsheet',
  ods: 'OpenDocument spreadsheet',
  numbers: 'Numbers spreadsheet',
  csv: 'CSV table',
  ppt: 'PowerPoint presentation',
  pptx: 'PowerPoint presentation',
  odp: 'OpenDocument presentation',
  key: 'Keynote presentation',
  txt: 'Text document',
  md: 'Markdown text',
  json: 'JSON file',
  xml: 'XML file',
  html: 'Web page',
  htm: 'Web page',
  eml: 'Email message',
  ics: 'Calendar event',
  vcf: 'Contact card',
  zip: 'ZIP archive',
  rar: 'RAR archive',
  '7z': '7-Zip archive',
  gz: 'Compressed file',
  tgz: 'Compressed archive',
  tar: 'Tar archive',
  svg: 'SVG drawing',
  psd: 'Photoshop image',
  heic: 'HEIC photo',
  dmg: 'Disk image',
  iso: 'Disk image',
  exe: 'Windows program',
  msi: 'Windows installer',
  apk: 'Android app',
};
const KINDS_BY_FAMILY = { image: 'Picture', audio: 'Audio', video: 'Video', text: 'Text file' };

/** "Word document", "Picture", "XYZ file": a file's kind for people, never a MIME type. */
export function fileKind(name, type, media) {
  const dot = String(name || '').lastIndexOf('.');
  const ext =
    dot > 0
      ? String(name)
          .slice(dot + 1)
          .toLowerCase()
      : '';
  if (Object.hasOwn(KINDS_BY_EXTENSION, ext)) return KINDS_BY_EXTENSION[ext];
  if (media && Object.hasOwn(KINDS_BY_FAMILY, media)) return KINDS_BY_FAMILY[media];
  const family = String(type || '').split('/')[0];
  if (Object.hasOwn(KINDS_BY_FAMILY, family)) return KINDS_BY_FAMILY[family];
  if (/^[a-z0-9]{1,5}$/.test(ext)) return `${ext.toUpperCase()} file`;
  return 'File';
}

/** The contact list's time of a last message: 14:05 today, "Yesterday", a weekday this week,
 * else the date. */
export function formatListTime(epochSeconds) {
  const d = toDate(epochSeconds);
  const now = new Date();
  const label = dayLabel(epochSeconds);
  if (label === 'Today') return formatTime(epochSeconds);
  if (label === 'Yesterday') return label;
  const days = (now.getTime() - d.getTime()) / 86400000;
  if (days >= 0 && days < 6) return d.toLocaleDateString(undefined, { weekday: 'short' });
  const opts = { day: 'numeric', month: 'short' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return d.toLocaleDateString(undefined, opts);
}

/** A safety number as its groups of five digits (PROTOCOL.md §3.4), whatever spacing it came in. */
export function digitGroups(number) {
  const digits = String(number || '').replace(/\D/g, '');
  const groups = [];
  for (let i = 0; i < digits.length; i += 5) groups.push(digits.slice(i, i + 5));
  return groups;
}
