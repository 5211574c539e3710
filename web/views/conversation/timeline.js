// The message history of a conversation: messages in order (one per id), day separators, the
// "Load older" button, the loading and error lines, and staying pinned to the newest message.

import { busyButton, h, spinner } from '../../dom.js';
import { compareMessages, dayKey, dayLabel } from '../../format.js';
import { stateRank } from '../../states.js';
import { fillMessage } from './message.js';
import { isEditable } from './message-actions.js';

const NEAR_BOTTOM_PX = 120;
const USER_SCROLL_MS = 1000; // a scroll this soon after the user touched the list is theirs

export class Timeline {
  /**
   * files: the conversation's file cards (ConversationFiles); onOlder: "Load older" clicked;
   * footer: shown under the newest message (why messages wait); onChange: the messages changed;
   * actions: what the user can do to a message (reply, react, edit, delete: index.js).
   */
  constructor(peer, { files, onOlder, actions, footer = null, onChange = () => {} }) {
    this.peer = peer;
    this.files = files;
    this.onChange = onChange;
    this.actions = actions;
    this.byId = new Map(); // id -> {m, el}
    this.pendingStates = new Map(); // id -> {state, error} seen before the message
    this.loaded = false; // a page was shown: from now on an empty list means no messages
    this.destroyed = false;

    this.older = busyButton(
      { id: 'load-older', type: 'button', class: 'btn btn-small', hidden: true, onclick: onOlder },
      'Load older messages',
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
      h('div', { class: 'older-row' }, this.older.el),
      this.loading,
      this.loadError,
      this.empty,
      this.list,
      footer,
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
    // Stay pinned to the newest message when the pane resizes (key-change bar, error line,
    // window resize) or the messages grow (a picture that loads after the scroll, a card that
    // changes) if the user was at the bottom.
    // Only a scroll up (the user's) unsticks it: growth under a scroll already sent to the
    // bottom must not, though the scroll's event may come after the messages grew again.
    // Nor does a scroll up the page made itself: a card or picture that shrank for a moment
    // clamps the scroll, and its event may come once it has grown back, far from the bottom.
    // A scroll up counts when the user touched the list just before (wheel, touch, keys, pointer).
    this.stuck = true;
    this.lastTop = 0;
    this.userAt = -Infinity;
    const touched = () => {
      this.userAt = performance.now();
    };
    for (const type of ['wheel', 'touchstart', 'touchmove', 'keydown', 'pointerdown']) {
      this.scroller.addEventListener(type, touched, { passive: true });
    }
    this.scroller.addEventListener('scroll', () => {
      const top = this.scroller.scrollTop;
      const byUser = performance.now() - this.userAt < USER_SCROLL_MS;
      if (top < this.lastTop && byUser) this.stuck = this.nearBottom();
      else if (this.nearBottom()) this.stuck = true;
      this.lastTop = top;
      if (this.stuck) this.jumpBtn.hidden = true;
    });
    if (typeof ResizeObserver === 'function') {
      this.resizeObserver = new ResizeObserver(() => {
        if (this.stuck && !this.destroyed) this.scroller.scrollTop = this.scroller.scrollHeight;
      });
      this.resizeObserver.observe(this.scroller);
      this.resizeObserver.observe(this.list);
      if (footer) this.resizeObserver.observe(footer);
    }
    this.el = h('div', { class: 'message-area' }, this.scroller, this.jumpBtn);
  }

  destroy() {
    this.destroyed = true;
    if (this.resizeObserver) this.resizeObserver.disconnect();
  }

  // ---------- scrolling ----------

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(smooth = false) {
    this.jumpBtn.hidden = true;
    this.stuck = true;
    this.scroller.scrollTo({
      top: this.scroller.scrollHeight,
      behavior: smooth ? 'smooth' : 'auto',
    });
  }

  /** Open at one message (a search hit): marked, and scrolled to the middle. */
  showTarget(id) {
    const entry = this.byId.get(id);
    if (!entry) return;
    entry.el.classList.add('is-target');
    entry.el.scrollIntoView({ block: 'center' });
    this.stuck = this.nearBottom();
  }

  // ---------- the messages ----------

  has(id) {
    return this.byId.has(id);
  }

  /** The newest message shown, or null. */
  newest() {
    let newest = null;
    for (const e of this.byId.values()) {
      if (!newest || compareMessages(newest, e.m) < 0) newest = e.m;
    }
    return newest;
  }

  clear() {
    this.byId.clear();
    this.list.replaceChildren();
    this.onChange();
  }

  /** This user's messages not at the recipient's daemon yet (in the outbox, or with relays). */
  pending() {
    const waiting = [];
    for (const { m } of this.byId.values()) {
      if (m.direction === 'out' && (m.state === 'sending' || m.state === 'relayed')) {
        if (!m.id.startsWith('upload:') && !m.deleted) waiting.push(m); // a deleted one never goes
      }
    }
    return waiting;
  }

  remove(id) {
    const entry = this.byId.get(id);
    if (!entry) return;
    this.byId.delete(id);
    entry.el.remove();
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
   * Insert or replace a message (deduped by id), from a live event, a send answer or a fetched
   * page. A snapshot never moves a known message's state backwards. True when it was new.
   */
  upsert(raw) {
    if (!raw || typeof raw.id !== 'string' || raw.peer !== this.peer) return false;
    let m = raw;
    const card = this.files.cardFor(m);
    if (card && !m.id.startsWith('upload:')) this.remove(`upload:${card.id}`);
    const existing = this.byId.get(m.id);
    if (existing) {
      if (stateRank(m.state) < stateRank(existing.m.state)) {
        m = { ...m, state: existing.m.state, error: existing.m.error };
      }
      const moved = compareMessages(existing.m, m) !== 0;
      existing.m = m;
      fillMessage(existing.el, m, card, this.actions);
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
    fillMessage(el, m, card, this.actions);
    const entry = { m, el };
    this.byId.set(m.id, entry);
    this._insert(entry);
    return true;
  }

  refreshDays() {
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
    this.onChange();
  }

  /** A fetched page of messages. */
  merge(messages) {
    for (const m of Array.isArray(messages) ? messages : []) this.upsert(m);
    this.refreshDays();
  }

  /** An older page, above what is shown: the messages in view stay where they are. */
  prepend(messages) {
    const s = this.scroller;
    const prevHeight = s.scrollHeight;
    const prevTop = s.scrollTop;
    this.merge(messages);
    s.scrollTop = prevTop + (s.scrollHeight - prevHeight);
  }

  /** A message from the WebSocket or a send answer: followed when at the bottom (or ours). */
  addLive(m, fromMe) {
    const stick = fromMe || this.nearBottom();
    const added = this.upsert(m);
    this.refreshDays();
    if (stick) this.scrollToBottom();
    else if (added && m.direction === 'in') this.jumpBtn.hidden = false;
  }

  /** A live `message_state` event; one for a message not shown yet waits for it. */
  applyState(evt) {
    const entry = this.byId.get(evt.id);
    if (!entry) {
      this.pendingStates.set(evt.id, { state: evt.state, error: evt.error ?? null });
      return;
    }
    entry.m = { ...entry.m, state: evt.state, error: evt.error ?? null };
    fillMessage(entry.el, entry.m, this.files.card(entry.m.file?.transfer_id), this.actions);
    this.onChange();
  }

  /** A `message_changed` event or an action's answer: edited, deleted, reacted to. */
  change(m) {
    if (!this.byId.has(m.id)) return;
    this.upsert(m);
    this.refreshDays();
  }

  /** A message deleted for this user: no longer shown. */
  removeMessage(id) {
    this.remove(id);
    this.refreshDays();
  }

  /** The newest of this user's messages that can still be edited (↑ in the composer). */
  lastEditable() {
    let last = null;
    for (const { m } of this.byId.values()) {
      if (isEditable(m) && (!last || compareMessages(last, m) < 0)) last = m;
    }
    return last;
  }

  /** Mark and scroll to a message shown here (a quote's original); false when not shown. */
  reveal(id) {
    const entry = this.byId.get(id);
    if (!entry) return false;
    for (const li of this.list.querySelectorAll('.is-target')) li.classList.remove('is-target');
    this.showTarget(id);
    return true;
  }

  // ---------- loading ----------

  setLoading(on) {
    this.loading.hidden = !on;
  }

  setBusy(on) {
    if (on) this.list.setAttribute('aria-busy', 'true');
    else this.list.removeAttribute('aria-busy');
  }

  setHasOlder(on) {
    this.older.el.hidden = !on;
  }

  /** A page that did not load, with a button to try again; null clears it. */
  setLoadError(err, retry) {
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
}
