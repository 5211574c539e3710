// The card in a file message's bubble: name, size and kind (in words, never a MIME type), the
// caption, progress, cancel or decline, the picture, audio or video inline once our daemon holds
// the file, else a download chip. Nothing here builds HTML from strings; names are always text.

import { fileApi } from '../../api.js';
import { busyButton, h, setText, spinner, whileBusy } from '../../dom.js';
import { fileBadge, fileKind, formatBytes, progressText } from '../../format.js';
import { linkify } from '../../links.js';
import { openLightbox } from './lightbox.js';

// A transfer's states (docs/UI_API.md, "Files"); in these, bytes may still move.
const OPEN_STATES = new Set(['uploading', 'waiting', 'sending', 'receiving']);
// Waiting and sending alternate while retrying; the final states never change.
const TRANSFER_RANK = {
  uploading: 0,
  waiting: 1,
  sending: 1,
  receiving: 1,
  complete: 2,
  cancelled: 2,
  declined: 2,
  failed: 2,
};

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
    this.caption = h('div', { class: 'message-text file-caption', hidden: true });
    this.captionText = null;
    this.status = h('p', { class: 'file-status' });
    this.action = busyButton({
      type: 'button',
      class: 'btn btn-small file-action',
      hidden: true,
      onclick: () => this._act(),
    });
    this.el = h(
      'div',
      { class: 'file-card', 'data-transfer': this.id },
      this.media,
      this.chip,
      this.caption,
      this.progressBox,
      h('div', { class: 'file-footer' }, this.status, this.action.el),
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
    if (current && next.state && TRANSFER_RANK[next.state] < TRANSFER_RANK[current]) {
      next = { ...next, state: current, error: this.file.error ?? null };
    }
    if (next.state === current && Number(next.bytes) < Number(this.file.bytes)) {
      next = { ...next, bytes: this.file.bytes };
    }
    this.file = { ...this.file, ...next };
    if (!OPEN_STATES.has(this.file.state)) this.progressEvent = null;
    this.render();
  }

  /** What the sender wrote with the file (the message's text). */
  setCaption(text) {
    const caption = typeof text === 'string' ? text : '';
    if (caption === this.captionText) return;
    this.captionText = caption;
    this.caption.replaceChildren(...linkify(caption));
    this.caption.hidden = !caption;
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
    this.name.title = f.name || 'file'; // the whole name, when the card cuts it short
    const kind = fileKind(f.name, f.type || f.media_type, f.media);
    setText(this.sub, `${formatBytes(f.size)} · ${kind}`);
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
      const show = () =>
        openLightbox(
          url,
          this.file.name || 'picture',
          fileApi.contentUrl(this.peer, this.id, true),
        );
      element.addEventListener('click', show);
      element.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          show();
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
    if (OPEN_STATES.has(state) && !this.status.querySelector('.spinner')) {
      this.status.prepend(spinner('spinner-sm'));
    }
    let label = null;
    if (out && OPEN_STATES.has(state)) label = 'Cancel';
    if (!out && state === 'receiving') label = 'Decline';
    this.action.el.hidden = label === null;
    if (label) setText(this.action.label, label);
    this.action.el.dataset.action = label ? label.toLowerCase() : '';
  }

  async _act() {
    if (this.action.el.disabled) return;
    const act = this.action.el.dataset.action;
    const handler = act === 'cancel' ? this.onCancel : act === 'decline' ? this.onDecline : null;
    if (!handler) return;
    await whileBusy(this.action, async () => {
      try {
        const res = await handler(this);
        if (res?.file) this.update(res.file);
      } catch (err) {
        setText(this.status, err.message);
        this.status.classList.add('is-error');
      }
    });
  }
}
