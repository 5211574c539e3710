// Files in a conversation (docs/UI_API.md, "Files"): announce and stream uploads to our own
// daemon, and the file card shown in a message bubble (progress, cancel/decline, inline media,
// download chip). Nothing here builds HTML from strings; names are always text.

import { ApiError, NETWORK_MESSAGE, request } from './api.js';
import { h, setText, spinner } from './dom.js';

const enc = encodeURIComponent;
const base = (peer) => `/ui/api/conversations/${enc(peer)}/files`;

export const fileApi = {
  announce: (peer, file) =>
    request('POST', base(peer), {
      name: file.name || 'file',
      size: file.size,
      type: file.type || '',
    }),
  cancel: (peer, id) => request('POST', `${base(peer)}/${enc(id)}/cancel`, {}),
  decline: (peer, id) => request('POST', `${base(peer)}/${enc(id)}/decline`, {}),
  view: (peer, id) => request('GET', `${base(peer)}/${enc(id)}`),
  contentUrl: (peer, id, download = false) =>
    `${base(peer)}/${enc(id)}/content${download ? '?download=1' : ''}`,

  /** Stream a File/Blob to our daemon: the browser reads it from disk as it sends. */
  async upload(peer, id, file, signal) {
    let res;
    try {
      res = await fetch(`${base(peer)}/${enc(id)}/content`, {
        method: 'PUT',
        body: file,
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'Content-Type': 'application/octet-stream', Accept: 'application/json' },
        signal,
      });
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError(NETWORK_MESSAGE, { status: 0, code: 'network' });
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (res.ok && data) return data;
    const message =
      data && typeof data.message === 'string'
        ? data.message
        : `The upload failed (HTTP ${res.status}).`;
    throw new ApiError(message, {
      status: res.status,
      code: data?.error ? data.error : `http_${res.status}`,
    });
  },
};

// ---------- formatting ----------

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
const OPEN_STATES = new Set(['uploading', 'waiting', 'sending', 'receiving']);
// Waiting and sending alternate while retrying; the final states never change.
const STATE_RANK = {
  uploading: 0,
  waiting: 1,
  sending: 1,
  receiving: 1,
  complete: 2,
  cancelled: 2,
  declined: 2,
  failed: 2,
};

// ---------- the lightbox (one per page) ----------

let lightbox = null;

function openLightbox(src, name) {
  if (!lightbox) {
    const img = h('img', { class: 'lightbox-image', alt: '' });
    const caption = h('p', { class: 'lightbox-caption' });
    const close = h('button', { type: 'button', class: 'btn btn-small lightbox-close' }, 'Close');
    lightbox = h(
      'dialog',
      { class: 'lightbox', id: 'lightbox', 'aria-label': 'Picture' },
      img,
      caption,
      close,
    );
    close.addEventListener('click', () => lightbox.close());
    lightbox.addEventListener('click', (ev) => {
      if (ev.target === lightbox || ev.target === img) lightbox.close();
    });
    lightbox.img = img;
    lightbox.caption = caption;
    document.body.appendChild(lightbox);
  }
  lightbox.img.setAttribute('src', src);
  lightbox.img.setAttribute('alt', name);
  setText(lightbox.caption, name);
  if (!lightbox.open) lightbox.showModal();
}

// ---------- the card ----------

/**
 * The body of one file message. It lives as long as the conversation shows the message, so a
 * playing video survives state changes; `update` takes a transfer view, `progress` a live event.
 */
export class FileCard {
  constructor(peer, file, { onCancel, onDecline } = {}) {
    this.peer = peer;
    this.id = file.transfer_id;
    this.file = { ...file };
    this.progressEvent = null;
    this.onCancel = onCancel;
    this.onDecline = onDecline;
    this.mediaShown = null; // the state the media area was built for

    this.media = h('div', { class: 'file-media', hidden: true });
    this.icon = h('span', { class: 'file-icon', 'aria-hidden': 'true' });
    this.name = h('span', { class: 'file-name' });
    this.sub = h('span', { class: 'file-sub' });
    this.chip = h(
      'div',
      { class: 'file-chip' },
      this.icon,
      h('span', { class: 'file-meta' }, this.name, this.sub),
    );
    this.bar = h('progress', { class: 'file-progress-bar', max: '1', value: '0' });
    this.barText = h('span', { class: 'file-progress-text' });
    this.progressBox = h(
      'div',
      { class: 'file-progress', role: 'status', hidden: true },
      this.bar,
      this.barText,
    );
    this.status = h('p', { class: 'file-status' });
    this.actionLabel = h('span', { class: 'btn-label' });
    this.action = h(
      'button',
      {
        type: 'button',
        class: 'btn btn-small file-action',
        hidden: true,
        onclick: () => this._act(),
      },
      spinner('btn-spinner'),
      this.actionLabel,
    );
    this.el = h(
      'div',
      { class: 'file-card', 'data-transfer': this.id },
      this.media,
      this.chip,
      this.progressBox,
      h('div', { class: 'file-footer' }, this.status, this.action),
    );
    this.render();
  }

  /**
   * A transfer view (from the daemon) or the public fields of an offer. Views come from events
   * and from answers that may have been overtaken by events, so a view never moves the card
   * back: not out of a final state, not back to uploading, and never to fewer bytes.
   */
  update(file) {
    if (!file || file.transfer_id !== this.id) return;
    const current = this.file.state;
    let next = { ...file };
    if (current && next.state && STATE_RANK[next.state] < STATE_RANK[current]) {
      next = { ...next, state: current, error: this.file.error ?? null };
    }
    if (next.state === current && Number(next.bytes) < Number(this.file.bytes)) {
      next = { ...next, bytes: this.file.bytes };
    }
    this.file = { ...this.file, ...next };
    if (!OPEN_STATES.has(this.file.state)) this.progressEvent = null;
    this.render();
  }

  progress(evt) {
    if (!OPEN_STATES.has(this.file.state ?? 'receiving')) return;
    const first = this.progressEvent === null;
    this.progressEvent = evt;
    if (evt.phase === 'send' && this.file.state === 'waiting') {
      this.file = { ...this.file, state: 'sending', error: null }; // bytes flow again
      this.render();
      return;
    }
    this._renderProgress();
    if (first) this._renderStatus();
  }

  get direction() {
    return this.file.direction ?? 'in';
  }

  get state() {
    return this.file.state ?? (this.direction === 'in' ? 'receiving' : 'waiting');
  }

  /** Our daemon holds the whole file: the sender's copy once uploaded, a received one once verified. */
  get available() {
    const state = this.state;
    return (
      state === 'complete' ||
      (this.direction === 'out' && (state === 'waiting' || state === 'sending'))
    );
  }

  render() {
    const f = this.file;
    const state = this.state;
    this.el.dataset.state = state;
    this.el.dataset.direction = this.direction;
    setText(this.name, f.name || 'file');
    const type = f.type || f.media_type || '';
    setText(this.sub, [formatBytes(f.size), type].filter(Boolean).join(' · '));
    setText(this.icon, fileBadge(f.name, f.media));
    this._renderMedia();
    this._renderProgress();
    this._renderStatus();
  }

  _renderMedia() {
    const key = `${this.available}:${this.file.media}`;
    if (this.mediaShown === key) return;
    this.mediaShown = key;
    const url = fileApi.contentUrl(this.peer, this.id);
    const chipLink = this.available && !this.file.media;
    this.chip.classList.toggle('is-link', chipLink);
    if (chipLink) {
      // A download chip: the daemon sends it as an attachment, never rendered.
      const link = h(
        'a',
        {
          class: 'file-download',
          href: fileApi.contentUrl(this.peer, this.id, true),
          download: this.file.name || 'file',
          'aria-label': `Download ${this.file.name || 'file'}`,
        },
        'Download',
      );
      this.downloadLink = link;
      this.chip.appendChild(link);
    } else if (this.downloadLink) {
      this.downloadLink.remove();
      this.downloadLink = null;
    }
    if (!this.available || !this.file.media) {
      this.media.hidden = true;
      this.media.replaceChildren();
      return;
    }
    const loading = h(
      'div',
      { class: 'file-media-loading', role: 'status' },
      spinner(),
      h('span', null, 'Loading…'),
    );
    let element;
    if (this.file.media === 'image') {
      element = h('img', {
        class: 'file-thumb',
        src: url,
        alt: this.file.name || 'picture',
        tabindex: '0',
      });
      element.addEventListener('click', () => openLightbox(url, this.file.name || 'picture'));
      element.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          openLightbox(url, this.file.name || 'picture');
        }
      });
      element.addEventListener('load', () => loading.remove());
    } else {
      element = h(this.file.media, {
        class: `file-${this.file.media}`,
        src: url,
        controls: true,
        preload: 'metadata',
      });
      element.addEventListener('loadedmetadata', () => loading.remove());
    }
    element.addEventListener('error', () => {
      loading.remove();
      this.media.hidden = true;
    });
    this.media.replaceChildren(loading, element);
    this.media.hidden = false;
  }

  _renderProgress() {
    const state = this.state;
    const show = state === 'uploading' || state === 'sending' || state === 'receiving';
    const evt = this.progressEvent;
    const size = Number(this.file.size) || 0;
    const bytes = evt ? evt.bytes : Number(this.file.bytes) || 0;
    this.progressBox.hidden = !show;
    if (!show) return;
    this.bar.max = Math.max(1, size);
    this.bar.value = Math.min(bytes, size);
    setText(this.barText, progressText(evt || { bytes, rate_bps: 0, eta_s: null }, size));
  }

  _renderStatus() {
    const f = this.file;
    const state = this.state;
    const out = this.direction === 'out';
    const labels = {
      uploading: 'Uploading to your daemon…',
      waiting: f.error ? `Waiting to send — ${f.error}` : `Waiting for ${this.peer}…`,
      sending: `Sending to ${this.peer}…`,
      receiving:
        this.progressEvent || f.bytes > 0
          ? `Receiving from ${this.peer}…`
          : `Waiting for ${this.peer} to send it…`,
      complete: out ? `Sent to ${this.peer}` : 'Received and verified',
      cancelled: out ? 'You cancelled it' : `${this.peer} cancelled it`,
      declined: out ? `${this.peer} declined it` : 'You declined it',
      failed: `Not sent${f.error ? ` — ${f.error}` : ''}`,
    };
    setText(this.status, labels[state] ?? state);
    this.status.classList.toggle('is-error', state === 'failed');
    const busyStates = new Set(['uploading', 'waiting', 'sending', 'receiving']);
    if (busyStates.has(state) && !this.status.querySelector('.spinner')) {
      this.status.prepend(spinner('spinner-sm'));
    }
    let label = null;
    if (out && busyStates.has(state)) label = 'Cancel';
    if (!out && state === 'receiving') label = 'Decline';
    this.action.hidden = label === null;
    if (label) setText(this.actionLabel, label);
    this.action.dataset.action = label ? label.toLowerCase() : '';
  }

  async _act() {
    if (this.action.disabled) return;
    const act = this.action.dataset.action;
    const handler = act === 'cancel' ? this.onCancel : act === 'decline' ? this.onDecline : null;
    if (!handler) return;
    this.action.disabled = true;
    this.action.classList.add('is-busy');
    try {
      const res = await handler(this);
      if (res?.file) this.update(res.file);
    } catch (err) {
      setText(this.status, err.message);
      this.status.classList.add('is-error');
    } finally {
      this.action.disabled = false;
      this.action.classList.remove('is-busy');
    }
  }
}
