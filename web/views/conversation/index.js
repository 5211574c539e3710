// One conversation, composed of its parts: header, key-change bar, banners, the message
// timeline (its pages loaded by History), files, and the composer.

import { actionApi } from '../../api.js';
import { h } from '../../dom.js';
import * as store from '../../store.js';
import { acceptDrops } from './attach.js';
import {
  anchorBanner,
  blockedBanner,
  keyHistoryBanner,
  resetBanner,
  versionBanner,
} from './banners.js';
import { Composer } from './composer.js';
import { ConversationFiles } from './files.js';
import { ConversationHeader } from './header.js';
import { History } from './history.js';
import { KeyChangeBar } from './keybar.js';
import { PendingNote } from './pending.js';
import { Timeline } from './timeline.js';

export class ConversationView {
  constructor(peer, { onBack, target = null } = {}) {
    this.peer = peer;
    this.target = target; // a message id to open the conversation at (a search hit)
    this.destroyed = false;
    const sendFiles = (files) => this.files.send(files, this.composer.takeCaption());
    this.typingTimer = null;
    this.composer = new Composer(peer, {
      onSent: (m) => this._sent(m),
      onFiles: sendFiles,
      onChanged: (m) => this.applyChange(m),
      lastEditable: () => this.timeline.lastEditable(),
    });
    this.files = new ConversationFiles(peer, {
      onUpload: (m) => this.addLive(m, { fromMe: true }),
      onSent: (m) => this._sent(m),
      showError: (text) => this.composer.showError(text),
      clearError: () => this.composer.clearError(),
      giveBack: (text) => this.composer.giveBack(text),
    });
    this.header = new ConversationHeader(peer, {
      onBack,
      onError: (text) => this.composer.showError(text),
    });
    this.keyBar = new KeyChangeBar(peer, {
      onAccepted: () => {
        this.composer.clearError();
        this.composer.focus();
      },
    });
    this.blocked = blockedBanner();
    this.versionBar = versionBanner(peer);
    this.resetBar = resetBanner(peer);
    this.keyHistoryBar = keyHistoryBanner(peer);
    this.anchorBar = anchorBanner(() => this.history.jumpToLatest());
    this.pendingNote = new PendingNote(peer);
    this.timeline = new Timeline(peer, {
      files: this.files,
      onOlder: () => this.history.loadOlder(),
      footer: this.pendingNote.el,
      onChange: () => this.renderPending(),
      actions: this._messageActions(),
    });
    this.history = new History(peer, this.timeline, {
      target,
      anchorBar: this.anchorBar,
      onError: (text) => this.composer.showError(text),
    });
    this.el = h(
      'section',
      {
        id: 'conversation',
        class: 'conversation',
        'data-peer': peer,
        'aria-labelledby': 'conv-title',
      },
      this.header.el,
      this.versionBar,
      this.resetBar,
      this.keyBar.el,
      this.keyHistoryBar.el,
      this.blocked.el,
      this.anchorBar,
      this.timeline.el,
      this.composer.el,
    );
    // Drop files anywhere on the conversation.
    acceptDrops(this.el, sendFiles);
    this.unsubscribes = [
      store.on('contacts', () => this.renderContact()),
      store.on('profile', () => this.renderContact()),
      store.on('unreachable', () => this.renderContact()),
    ];
    this.renderContact();
  }

  renderContact() {
    if (this.destroyed) return;
    const c = store.state.contacts.get(this.peer) ?? null;
    this.header.render(c);
    this.keyBar.render(c);
    this.keyHistoryBar.render(c);
    this.blocked.el.hidden = !c?.blocked;
    this.blocked.setName(store.displayLabel(this.peer));
    this.versionBar.hidden = c?.protocol_version !== 1;
    this.resetBar.hidden = !c?.session_reset_at;
    this.composer.setState(
      store.state.unreachable ? 'unreachable' : c?.blocked ? 'blocked' : 'ready',
    );
    this.renderPending();
  }

  renderPending() {
    if (this.destroyed || !this.pendingNote) return;
    this.pendingNote.render(this.timeline.pending(), store.state.contacts.get(this.peer) ?? null);
  }

  focusComposer() {
    this.composer.focus();
  }

  /** What the user can do to a message (docs/UI_API.md, "Replies, edits, deletes, …"). */
  _messageActions() {
    const peer = this.peer;
    return {
      reply: (m) => this.composer.startReply(m),
      edit: (m) => this.composer.startEdit(m),
      remove: async (m, scope) => {
        const res = await actionApi.remove(peer, m.id, scope);
        if (res?.message) this.applyChange(res.message);
        else this.applyRemoved({ id: m.id, peer });
      },
      react: async (m, emoji, on) => {
        const res = await actionApi.react(peer, m.id, emoji, on);
        if (res?.message) this.applyChange(res.message);
      },
      history: (m) => actionApi.history(peer, m.id),
      jump: (id) => this.history.jumpTo(id),
      error: (text) => this.composer.showError(text),
    };
  }

  /** A message edited, deleted or reacted to (a `message_changed` event or an answer). */
  applyChange(m) {
    if (this.destroyed || m.peer !== this.peer) return;
    store.applyMessageChange(m);
    this.timeline.change(m);
  }

  /** A `message_removed` event: deleted for this user. */
  applyRemoved(evt) {
    if (this.destroyed || evt.peer !== this.peer) return;
    this.timeline.removeMessage(evt.id);
  }

  /** A `typing` event: "typing…" in the header until it expires, stops, or a message comes. */
  applyTyping(evt) {
    if (this.destroyed || evt.username !== this.peer) return;
    clearTimeout(this.typingTimer);
    const on = Boolean(evt.typing) && Number(evt.expires_in_s) > 0;
    this.header.setTyping(on);
    if (on) {
      this.typingTimer = setTimeout(() => this.header.setTyping(false), evt.expires_in_s * 1000);
    }
  }

  /** An `action_failed` event: the peer refused an edit, delete or reaction of this user's. */
  actionFailed(evt) {
    const what = { edit: 'edit', delete: 'delete', reaction: 'reaction' }[evt.kind] ?? 'change';
    this.composer.showError(`Your ${what} did not reach ${this.peer}: ${evt.error}`);
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.typingTimer);
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    for (const part of [this.header, this.keyBar, this.timeline, this.history, this.files]) {
      part.destroy();
    }
    this.composer.destroy(); // keeps the unsent text as a draft
  }

  load() {
    return this.history.load();
  }

  /** After a reconnect: what was missed is fetched and merged. */
  resync() {
    return this.history.resync();
  }

  /** The daemon took a message of ours (text or file). */
  _sent(m) {
    store.applyMessage(m);
    this.addLive(m, { fromMe: true });
  }

  /** A message from the WebSocket or a send answer. */
  addLive(m, { fromMe = false } = {}) {
    if (this.destroyed || m.peer !== this.peer) return;
    if (m.direction === 'in') this.applyTyping({ username: this.peer, typing: false });
    if (this.history.hasNewer) {
      // An older page is shown: the newest messages load when the user jumps to the latest.
      if (fromMe) this.history.jumpToLatest();
      return;
    }
    this.timeline.addLive(m, fromMe);
  }

  /** A live `message_state` event. */
  applyState(evt) {
    if (this.destroyed || evt.peer !== this.peer) return;
    this.pendingNote.sawState(evt);
    this.timeline.applyState(evt);
  }

  /** A live `file_state` or `file_progress` event. */
  applyFileEvent(evt) {
    if (this.destroyed || !evt) return;
    this.files.applyEvent(evt);
  }
}
