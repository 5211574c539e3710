// One conversation: header, key-change bar, message list, composer.

import { api } from '../api.js';
import { h, setText, spinner } from '../dom.js';
import { FileCard, fileApi } from '../files.js';
import {
  compareMessages,
  dayKey,
  dayLabel,
  formatFull,
  formatTime,
  messageStateInfo,
  stateRank,
  statusLabel,
  toDate,
} from '../format.js';
import { profileHash } from '../router.js';
import * as store from '../store.js';
import { avatarElement, setStatusDot } from './contacts.js';

const PAGE_SIZE = 50;
const NEAR_BOTTOM_PX = 120;

// Unsent text per conversation, kept while switching conversations.
const drafts = new Map();

// A file message's bubble holds its FileCard (kept across re-renders, so media keeps playing).
function fillMessage(li, m, card = null) {
  const out = m.direction === 'out';
  li.className = ['message', out ? 'out' : 'in', m.state === 'failed' ? 'failed' : '']
    .filter(Boolean)
    .join(' ');
  li.dataset.id = m.id;

  const info = messageStateInfo(m.state);
  const stateEl = h(
    'span',
    {
      class: ['message-state', info.className],
      'data-state': m.state ?? '',
      role: info.icon ? 'img' : null,
      'aria-label': info.icon ? (m.state === 'failed' && m.error ? `${info.label}: ${m.error}` : info.label) : null,
      'aria-hidden': info.icon ? null : 'true',
      title: m.state === 'failed' ? m.error || info.label : info.label,
    },
    info.icon,
  );
  const time = h(
    'time',
    {
      class: 'message-time',
      datetime: toDate(m.sent_at).toISOString(),
      title: formatFull(m.sent_at),
    },
    formatTime(m.sent_at),
  );
  const bubble = h(
    'div',
    { class: ['bubble', card ? 'bubble-file' : null] },
    card ? card.el : h('div', { class: 'message-text' }, m.text ?? ''),
    h('span', { class: 'message-meta' }, time, stateEl),
  );
  const children = [bubble];
  if (out && m.state === 'failed') {
    children.push(
      h('div', { class: 'message-error' }, m.error ? `Not sent — ${m.error}` : 'Not sent'),
    );
  }
  li.replaceChildren(...children);
}

export class ConversationView {
  constructor(peer, { onBack, target = null } = {}) {
    this.peer = peer;
    this.target = target; // a message id to open the conversation at (a search hit)
    this.hasNewer = false; // showing an older page: newer messages are not loaded
    this.destroyed = false;
    this.byId = new Map(); // id -> {m, el}
    this.pendingStates = new Map(); // id -> {state, error} seen before the message
    this.nextBefore = null;
    this.loaded = false;
    this.loadingOlder = false;
    this.sendsInFlight = 0;
    this.cards = new Map(); // transfer id -> FileCard
    this.fileViews = new Map(); // transfer id -> latest view seen before its message
    this.uploads = new Map(); // transfer id -> AbortController of a running upload
    this._build(onBack);
    this.unsubscribe = store.on('contacts', () => this.renderContact());
    this.renderContact();
  }

  // ---------- DOM ----------

  _build(onBack) {
    const peer = this.peer;
    this.dot = h('span', { class: 'status-dot status-offline', 'aria-hidden': 'true' });
    this.statusText = h('span', { class: 'status-text' }, '…');
    this.avatar = avatarElement(peer, 'avatar-lg');
    this.titleName = h('span', { class: 'conv-title-name' }, peer);
    this.blockLabel = h('span', { class: 'btn-label' }, 'Block');
    this.blockBtn = h(
      'button',
      { id: 'block-toggle', type: 'button', class: 'btn btn-small btn-ghost', onclick: () => this._toggleBlock() },
      spinner('btn-spinner'),
      this.blockLabel,
    );
    this.safety = h('span', { class: 'safety-number', id: 'safety-number' }, '');
    this.safetyBox = h(
      'div',
      {
        class: 'safety',
        title: 'Compare this number with your contact over another channel to verify their identity.',
      },
      h('span', { class: 'safety-label' }, 'Safety number'),
      this.safety,
    );
    // Version 1 peers get no forward secrecy (PROTOCOL.md §14.2); a broken session resets (§14.9).
    this.versionNote = h('div', { class: 'conv-notice', id: 'version-notice', hidden: true }, '');
    this.resetNote = h('div', { class: 'conv-notice', id: 'session-notice', hidden: true }, '');
    const header = h(
      'header',
      { class: 'conv-header' },
      h(
        'a',
        { class: 'back-link', href: '#/', 'aria-label': 'Back to contacts', onclick: onBack },
        '‹',
      ),
      this.avatar.el,
      h(
        'div',
        { class: 'conv-title-block' },
        h(
          'h2',
          { class: 'conv-title', id: 'conv-title' },
          h('a', { id: 'conv-profile-link', href: profileHash(peer), title: `${peer}'s profile` }, this.titleName),
        ),
        h('div', { class: 'conv-status' }, this.dot, this.statusText),
      ),
      this.safetyBox,
      this.blockBtn,
    );
    this.blockedBar = h(
      'div',
      { id: 'blocked-banner', class: 'banner banner-warning', role: 'status', hidden: true },
      h('span', { class: 'banner-text' }, `You blocked ${peer}. They cannot write to you; unblock them to talk again.`),
    );
    this.anchorBar = h(
      'div',
      { id: 'anchor-bar', class: 'banner', role: 'status', hidden: true },
      h('span', { class: 'banner-text' }, 'You are looking at older messages. '),
      h('button', { id: 'jump-to-latest', type: 'button', class: 'btn btn-small', onclick: () => this.jumpToLatest() }, 'Jump to the latest'),
    );

    this.acceptBtnLabel = h('span', { class: 'btn-label' }, 'Accept new key');
    this.acceptBtn = h(
      'button',
      { id: 'accept-key', type: 'button', class: 'btn btn-warning', onclick: () => this._acceptKey() },
      spinner('btn-spinner'),
      this.acceptBtnLabel,
    );
    this.keyError = h('p', { class: 'key-change-error', hidden: true });
    this.keyBar = h(
      'div',
      { id: 'key-change', class: 'key-change', role: 'alert', hidden: true },
      h('span', { class: 'key-change-icon', 'aria-hidden': 'true' }, '⚠'),
      h(
        'div',
        { class: 'key-change-body' },
        h(
          'p',
          { class: 'key-change-text' },
          h('strong', null, `${peer}'s identity key has changed.`),
          ' Sending is paused. Compare the new safety number with them over another channel (in person or by phone) before you accept it.',
        ),
        this.keyError,
      ),
      this.acceptBtn,
    );

    this.olderLabel = h('span', { class: 'btn-label' }, 'Load older messages');
    this.olderBtn = h(
      'button',
      { id: 'load-older', type: 'button', class: 'btn btn-small', hidden: true, onclick: () => this.loadOlder() },
      spinner('btn-spinner'),
      this.olderLabel,
    );
    this.loading = h(
      'div',
      { class: 'messages-loading', role: 'status', hidden: true },
      spinner(),
      h('span', null, 'Loading messages…'),
    );
    this.loadError = h('div', { class: 'messages-error', role: 'alert', hidden: true });
    this.empty = h(
      'p',
      { class: 'messages-empty', hidden: true },
      `No messages yet. Say hello to ${peer}.`,
    );
    this.list = h('ol', {
      id: 'messages',
      class: 'message-list',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-label': `Messages with ${peer}`,
    });
    this.scroller = h(
      'div',
      { class: 'message-scroll', tabindex: '0', 'aria-label': 'Message history' },
      h('div', { class: 'older-row' }, this.olderBtn),
      this.loading,
      this.loadError,
      this.empty,
      this.list,
    );
    this.jumpBtn = h(
      'button',
      {
        type: 'button',
        class: 'btn btn-small jump-latest',
        hidden: true,
        onclick: () => this.scrollToBottom(true),
      },
      'New messages ↓',
    );
    // Stay pinned to the newest message when the pane resizes (key-change bar,
    // error line, window resize) if the user was at the bottom.
    this.stuck = true;
    this.scroller.addEventListener('scroll', () => {
      this.stuck = this._nearBottom();
      if (this.stuck) this.jumpBtn.hidden = true;
    });
    if (typeof ResizeObserver === 'function') {
      this.resizeObserver = new ResizeObserver(() => {
        if (this.stuck && !this.destroyed) this.scroller.scrollTop = this.scroller.scrollHeight;
      });
      this.resizeObserver.observe(this.scroller);
    }

    this.composerError = h('p', { id: 'composer-error', class: 'composer-error', role: 'alert', hidden: true });
    this.textarea = h('textarea', {
      id: 'composer',
      class: 'composer-input',
      rows: '1',
      placeholder: `Message ${peer}`,
      'aria-describedby': 'composer-hint composer-error',
      autocomplete: 'off',
    });
    this.sendBtn = h(
      'button',
      { id: 'send', type: 'submit', class: 'btn btn-primary send-button', disabled: true },
      'Send',
    );
    this.fileInput = h('input', {
      type: 'file',
      id: 'file-input',
      class: 'visually-hidden',
      multiple: true,
      tabindex: '-1',
      'aria-hidden': 'true',
    });
    this.fileInput.addEventListener('change', () => {
      const files = [...(this.fileInput.files || [])];
      this.fileInput.value = '';
      this.sendFiles(files);
    });
    this.attachBtn = h(
      'button',
      {
        id: 'attach',
        type: 'button',
        class: 'btn attach-button',
        title: 'Attach files (or drop them here, or paste a picture)',
        'aria-label': 'Attach files',
        onclick: () => this.fileInput.click(),
      },
      h('img', { src: '/static/attach.svg', alt: '', class: 'attach-icon', 'aria-hidden': 'true' }),
    );
    this.textarea.addEventListener('paste', (ev) => {
      const files = [...((ev.clipboardData && ev.clipboardData.files) || [])];
      if (files.length === 0) return;
      ev.preventDefault();
      this.sendFiles(files);
    });
    this.textarea.value = drafts.get(peer) ?? '';
    this.textarea.addEventListener('input', () => this._updateSendEnabled());
    this.textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        this._send();
      }
    });
    const form = h(
      'form',
      { class: 'composer', 'aria-label': `Send a message to ${peer}`, novalidate: true },
      this.composerError,
      h(
        'div',
        { class: 'composer-row' },
        h('label', { for: 'composer', class: 'visually-hidden' }, `Message to ${peer}`),
        this.fileInput,
        this.attachBtn,
        this.textarea,
        this.sendBtn,
      ),
      h('p', { id: 'composer-hint', class: 'composer-hint' }, 'Enter to send · Shift+Enter for a new line'),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this._send();
    });

    this.el = h(
      'section',
      { id: 'conversation', class: 'conversation', 'data-peer': peer, 'aria-labelledby': 'conv-title' },
      header,
      this.versionNote,
      this.resetNote,
      this.keyBar,
      this.blockedBar,
      this.anchorBar,
      h('div', { class: 'message-area' }, this.scroller, this.jumpBtn),
      form,
    );
    this._updateSendEnabled();
    // Drop files anywhere on the conversation.
    this.dropDepth = 0;
    const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');
    this.el.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      this.dropDepth += 1;
      this.el.classList.add('is-drop-target');
    });
    this.el.addEventListener('dragover', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
    });
    this.el.addEventListener('dragleave', () => {
      this.dropDepth = Math.max(0, this.dropDepth - 1);
      if (this.dropDepth === 0) this.el.classList.remove('is-drop-target');
    });
    this.el.addEventListener('drop', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      this.dropDepth = 0;
      this.el.classList.remove('is-drop-target');
      this.sendFiles([...ev.dataTransfer.files]);
    });
  }

  renderContact() {
    if (this.destroyed) return;
    const c = store.state.contacts.get(this.peer);
    setText(this.titleName, store.displayName(this.peer));
    this.avatar.update(c ? c.avatar_url : null, store.displayName(this.peer));
    const blocked = Boolean(c && c.blocked);
    this.blockedBar.hidden = !blocked;
    this.blockBtn.hidden = !c;
    setText(this.blockLabel, blocked ? 'Unblock' : 'Block');
    this.textarea.disabled = blocked;
    if (c) {
      setStatusDot(this.dot, c.status);
      setText(this.statusText, statusLabel(c.status));
      setText(this.safety, c.safety_number || '—');
      this.safetyBox.hidden = !c.safety_number;
      setText(this.versionNote, `no forward secrecy with ${this.peer}: their Flame is older`);
      this.versionNote.hidden = c.protocol_version !== 1;
      const wasHidden = this.keyBar.hidden;
      this.keyBar.hidden = !c.key_changed;
      if (!wasHidden && this.keyBar.hidden) this.keyError.hidden = true;
    } else {
      setStatusDot(this.dot, 'offline');
      setText(
        this.statusText,
        store.state.contactsStatus === 'ready' ? 'Not in your contacts' : '…',
      );
      this.safetyBox.hidden = true;
      this.keyBar.hidden = true;
      this.versionNote.hidden = true;
    }
  }

  sessionReset() {
    setText(this.resetNote, `The secure session with ${this.peer} was reset; messages that did not open are sent again.`);
    this.resetNote.hidden = false;
  }

  focusComposer() {
    this.textarea.focus();
  }

  destroy() {
    this.destroyed = true;
    this.unsubscribe();
    if (this.resizeObserver) this.resizeObserver.disconnect();
    const draft = this.textarea.value;
    if (draft) drafts.set(this.peer, draft);
    else drafts.delete(this.peer);
  }

  // ---------- messages ----------

  _nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(smooth = false) {
    this.jumpBtn.hidden = true;
    this.stuck = true;
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
  }

  _insert(entry) {
    // Walk back from the end: live messages almost always belong there.
    let node = this.list.lastElementChild;
    while (node) {
      const other = this.byId.get(node.dataset.id);
      if (!other || compareMessages(other.m, entry.m) <= 0) break;
      node = node.previousElementSibling;
    }
    this.list.insertBefore(entry.el, node ? node.nextElementSibling : this.list.firstElementChild);
  }

  /**
   * Insert or replace a message (deduped by id). source:
   *  'live' (WS message), 'post' (send answer), 'page' (a fetched page).
   * A snapshot never moves a known message's state backwards.
   */
  _upsert(raw) {
    if (!raw || typeof raw.id !== 'string' || raw.peer !== this.peer) return false;
    let m = raw;
    const card = this._cardFor(m);
    if (card && !m.id.startsWith('upload:')) this._dropPending(card.id);
    const existing = this.byId.get(m.id);
    if (existing) {
      if (stateRank(m.state) < stateRank(existing.m.state)) {
        m = { ...m, state: existing.m.state, error: existing.m.error };
      }
      const moved = compareMessages(existing.m, m) !== 0;
      existing.m = m;
      fillMessage(existing.el, m, card);
      if (moved) {
        existing.el.remove();
        this._insert(existing);
      }
      return false;
    }
    const pending = this.pendingStates.get(m.id);
    if (pending) {
      this.pendingStates.delete(m.id);
      if (stateRank(pending.state) >= stateRank(m.state)) {
        m = { ...m, state: pending.state, error: pending.error ?? null };
      }
    }
    const el = h('li');
    fillMessage(el, m, card);
    const entry = { m, el };
    this.byId.set(m.id, entry);
    this._insert(entry);
    return true;
  }

  _refreshDays() {
    let prevDay = null;
    for (const li of this.list.children) {
      const entry = this.byId.get(li.dataset.id);
      if (!entry) continue;
      const key = dayKey(entry.m.sent_at);
      if (key !== prevDay) li.dataset.day = dayLabel(entry.m.sent_at);
      else delete li.dataset.day;
      prevDay = key;
    }
    this.empty.hidden = !(this.loaded && this.byId.size === 0);
  }

  /** A message from the WebSocket or the send answer. */
  addLive(m, { fromMe = false } = {}) {
    if (this.destroyed || m.peer !== this.peer) return;
    if (this.hasNewer) {
      // An older page is shown: the newest messages load when the user jumps to the latest.
      if (fromMe) this.jumpToLatest();
      return;
    }
    const stick = fromMe || this._nearBottom();
    const added = this._upsert(m);
    this._refreshDays();
    if (stick) this.scrollToBottom();
    else if (added && m.direction === 'in') this.jumpBtn.hidden = false;
  }

  applyState(evt) {
    if (this.destroyed || evt.peer !== this.peer) return;
    const entry = this.byId.get(evt.id);
    if (!entry) {
      this.pendingStates.set(evt.id, { state: evt.state, error: evt.error ?? null });
      return;
    }
    entry.m = { ...entry.m, state: evt.state, error: evt.error ?? null };
    fillMessage(entry.el, entry.m, this.cards.get(entry.m.file && entry.m.file.transfer_id) ?? null);
  }

  // ---------- files ----------

  _cardFor(m) {
    if (m.kind !== 'file_offer' || !m.file || typeof m.file.transfer_id !== 'string') return null;
    const id = m.file.transfer_id;
    let card = this.cards.get(id);
    if (!card) {
      card = new FileCard(this.peer, m.file, {
        onCancel: (c) => this._cancelFile(c),
        onDecline: (c) => fileApi.decline(this.peer, c.id),
      });
      this.cards.set(id, card);
    } else {
      card.update(m.file);
    }
    const later = this.fileViews.get(id);
    if (later) {
      this.fileViews.delete(id);
      card.update(later);
    }
    return card;
  }

  _dropPending(transferId) {
    const entry = this.byId.get(`upload:${transferId}`);
    if (!entry) return;
    this.byId.delete(`upload:${transferId}`);
    entry.el.remove();
  }

  /** A live `file_state` or `file_progress` event. */
  applyFileEvent(evt) {
    if (this.destroyed || !evt) return;
    if (evt.type === 'file_state' && evt.file && evt.file.peer === this.peer) {
      const card = this.cards.get(evt.file.transfer_id);
      if (card) card.update(evt.file);
      else this.fileViews.set(evt.file.transfer_id, evt.file);
    } else if (evt.type === 'file_progress' && evt.peer === this.peer) {
      const card = this.cards.get(evt.transfer_id);
      if (card) card.progress(evt);
    }
  }

  async _cancelFile(card) {
    const upload = this.uploads.get(card.id);
    if (upload) upload.abort();
    return fileApi.cancel(this.peer, card.id);
  }

  /** Attach: each file is announced (refused at once if too large), then streamed. */
  async sendFiles(files) {
    this._clearComposerError();
    for (const file of files) {
      let announced;
      try {
        announced = (await fileApi.announce(this.peer, file)).file;
      } catch (err) {
        if (err.status === 401) return;
        this._showComposerError(`${file.name || 'The file'}: ${err.message}`);
        continue;
      }
      if (this.destroyed) return;
      const id = announced.transfer_id;
      this.addLive(
        {
          id: `upload:${id}`,
          peer: this.peer,
          direction: 'out',
          author: store.state.me ? store.state.me.username : '',
          kind: 'file_offer',
          text: '',
          sent_at: Date.now() / 1000,
          received_at: null,
          seq: Number.MAX_SAFE_INTEGER,
          state: 'sending',
          error: null,
          file: announced,
        },
        { fromMe: true },
      );
      const controller = new AbortController();
      this.uploads.set(id, controller);
      fileApi
        .upload(this.peer, id, file, controller.signal)
        .then((res) => {
          if (res.message) {
            store.applyMessage(res.message);
            this.addLive(res.message, { fromMe: true });
          }
        })
        .catch((err) => {
          if (err && err.name === 'AbortError') return;
          const card = this.cards.get(id);
          if (card && card.state === 'uploading') card.update({ transfer_id: id, state: 'failed', error: err.message });
        })
        .finally(() => this.uploads.delete(id));
    }
  }

  _mergePage(messages) {
    for (const m of Array.isArray(messages) ? messages : []) this._upsert(m);
    this._refreshDays();
  }

  _setLoadError(err, retry) {
    if (!err) {
      this.loadError.hidden = true;
      this.loadError.replaceChildren();
      return;
    }
    this.loadError.replaceChildren(
      h('span', null, err.message),
      h('button', { type: 'button', class: 'btn btn-small', onclick: retry }, 'Retry'),
    );
    this.loadError.hidden = false;
  }

  /** Open at one message (a search hit): the page around it, the message marked. */
  async loadAround(target) {
    this.loading.hidden = false;
    this._setLoadError(null);
    try {
      const res = await api.context(this.peer, target);
      if (this.destroyed) return;
      this.loaded = true;
      this._mergePage(res.messages);
      this.nextBefore = res.next_before ?? null;
      this.olderBtn.hidden = this.nextBefore === null;
      this.hasNewer = Boolean(res.has_newer);
      this.anchorBar.hidden = !this.hasNewer;
      const entry = this.byId.get(target);
      if (entry) {
        entry.el.classList.add('is-target');
        entry.el.scrollIntoView({ block: 'center' });
        this.stuck = this._nearBottom();
      }
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      this._setLoadError(err, () => this.loadAround(target));
    } finally {
      if (!this.destroyed) this.loading.hidden = true;
    }
  }

  /** Leave an older page for the newest messages. */
  async jumpToLatest() {
    this.hasNewer = false;
    this.anchorBar.hidden = true;
    this.byId.clear();
    this.list.replaceChildren();
    await this.load();
  }

  async _toggleBlock() {
    const c = store.state.contacts.get(this.peer);
    if (!c || this.blockBtn.disabled) return;
    this.blockBtn.disabled = true;
    this.blockBtn.classList.add('is-busy');
    try {
      const view = c.blocked ? await api.unblock(this.peer) : await api.block(this.peer);
      store.applyBlocked(this.peer, view.blocked);
    } catch (err) {
      if (!this.destroyed && err.status !== 401) this._showComposerError(err.message);
    } finally {
      this.blockBtn.disabled = false;
      this.blockBtn.classList.remove('is-busy');
    }
  }

  async load() {
    if (this.target && !this.loaded) {
      await this.loadAround(this.target);
      return;
    }
    this.loading.hidden = false;
    this.list.setAttribute('aria-busy', 'true');
    this._setLoadError(null);
    try {
      const res = await api.messages(this.peer, { limit: PAGE_SIZE });
      if (this.destroyed) return;
      this.loaded = true;
      this._mergePage(res.messages);
      this.nextBefore = res.next_before ?? null;
      this.olderBtn.hidden = this.nextBefore === null;
      this.scrollToBottom();
      this._markShown(res.messages);
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      this._setLoadError(err, () => this.load());
    } finally {
      if (!this.destroyed) {
        this.loading.hidden = true;
        this.list.removeAttribute('aria-busy');
      }
    }
  }

  /** The newest page is on screen: the user has seen it (read receipts, if on). Reading the
   * history changes nothing by itself; this says how far the page showed. */
  _markShown(messages) {
    const last = Array.isArray(messages) && messages.length ? messages[messages.length - 1] : null;
    if (last) api.markRead(this.peer, last.id).catch(() => {});
  }

  async loadOlder() {
    if (this.loadingOlder || this.nextBefore === null) return;
    this.loadingOlder = true;
    this.olderBtn.disabled = true;
    this.olderBtn.classList.add('is-busy');
    this.list.setAttribute('aria-busy', 'true');
    setText(this.olderLabel, 'Loading…');
    try {
      const res = await api.messages(this.peer, { before: this.nextBefore, limit: PAGE_SIZE });
      if (this.destroyed) return;
      const s = this.scroller;
      const prevHeight = s.scrollHeight;
      const prevTop = s.scrollTop;
      this._mergePage(res.messages);
      s.scrollTop = prevTop + (s.scrollHeight - prevHeight);
      this.nextBefore = res.next_before ?? null;
      this.olderBtn.hidden = this.nextBefore === null;
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      this._showComposerError(`Could not load older messages: ${err.message}`);
    } finally {
      this.loadingOlder = false;
      this.list.removeAttribute('aria-busy');
      this.olderBtn.disabled = false;
      this.olderBtn.classList.remove('is-busy');
      setText(this.olderLabel, 'Load older messages');
    }
  }

  /** After a reconnect: fetch the newest page and merge it (no duplicates). */
  async resync() {
    if (this.hasNewer) return; // an older page: nothing newer is shown to stitch to
    if (!this.loaded) {
      await this.load();
      return;
    }
    let res;
    try {
      res = await api.messages(this.peer, { limit: PAGE_SIZE });
    } catch {
      return;
    }
    if (this.destroyed) return;
    const page = Array.isArray(res.messages) ? res.messages : [];
    let newest = null;
    for (const e of this.byId.values()) if (!newest || compareMessages(newest, e.m) < 0) newest = e.m;
    const gap =
      res.next_before !== null &&
      res.next_before !== undefined &&
      page.length > 0 &&
      newest !== null &&
      !page.some((m) => this.byId.has(m.id)) &&
      compareMessages(page[0], newest) > 0;
    const stick = this._nearBottom();
    if (gap) {
      // Too much was missed to stitch the pages together: start over from this page.
      this.byId.clear();
      this.list.replaceChildren();
      this.nextBefore = res.next_before;
      this.olderBtn.hidden = false;
    }
    this._mergePage(page);
    if (stick || gap) this.scrollToBottom();
  }

  // ---------- composer ----------

  _updateSendEnabled() {
    this.sendBtn.disabled = this.textarea.value.trim() === '';
  }

  _showComposerError(text) {
    setText(this.composerError, text);
    this.composerError.hidden = false;
  }

  _clearComposerError() {
    setText(this.composerError, '');
    this.composerError.hidden = true;
  }

  async _send() {
    const text = this.textarea.value;
    if (!text.trim()) return;
    this.textarea.value = '';
    this._updateSendEnabled();
    this._clearComposerError();
    this.sendsInFlight += 1;
    this.sendBtn.setAttribute('aria-busy', 'true');
    try {
      const res = await api.send(this.peer, text);
      const m = res && res.message;
      if (m) {
        store.applyMessage(m);
        this.addLive(m, { fromMe: true });
      }
    } catch (err) {
      if (err.status === 401) return;
      if (err.code === 'key_changed') store.applyKeyChange(this.peer);
      if (this.destroyed) {
        // The user moved on: keep the text as this conversation's draft.
        const d = drafts.get(this.peer);
        drafts.set(this.peer, d ? `${text}\n${d}` : text);
        return;
      }
      // Give the text back (before anything typed since).
      const now = this.textarea.value;
      this.textarea.value = now ? `${text}\n${now}` : text;
      this._updateSendEnabled();
      this._showComposerError(err.message);
      this.textarea.focus();
    } finally {
      this.sendsInFlight -= 1;
      if (this.sendsInFlight === 0) this.sendBtn.removeAttribute('aria-busy');
    }
  }

  async _acceptKey() {
    if (this.acceptBtn.disabled) return;
    this.acceptBtn.disabled = true;
    this.acceptBtn.classList.add('is-busy');
    setText(this.acceptBtnLabel, 'Accepting…');
    this.keyError.hidden = true;
    try {
      const contact = await api.acceptKey(this.peer);
      if (contact && typeof contact.username === 'string') store.upsertContact(contact);
      else {
        const c = store.state.contacts.get(this.peer);
        if (c) store.upsertContact({ ...c, key_changed: false });
      }
      if (!this.destroyed) {
        this._clearComposerError();
        this.textarea.focus();
      }
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      setText(this.keyError, err.message);
      this.keyError.hidden = false;
    } finally {
      this.acceptBtn.disabled = false;
      this.acceptBtn.classList.remove('is-busy');
      setText(this.acceptBtnLabel, 'Accept new key');
    }
  }
}
