// One conversation, composed of its parts: header, key-change bar, banners, the message
// timeline (its pages loaded by History), files, and the composer.

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
import { Timeline } from './timeline.js';

export class ConversationView {
  constructor(peer, { onBack, target = null } = {}) {
    this.peer = peer;
    this.target = target; // a message id to open the conversation at (a search hit)
    this.destroyed = false;
    const sendFiles = (files) => this.files.send(files);
    this.composer = new Composer(peer, { onSent: (m) => this._sent(m), onFiles: sendFiles });
    this.files = new ConversationFiles(peer, {
      onUpload: (m) => this.addLive(m, { fromMe: true }),
      onSent: (m) => this._sent(m),
      showError: (text) => this.composer.showError(text),
      clearError: () => this.composer.clearError(),
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
    this.blockedBar = blockedBanner(peer);
    this.versionBar = versionBanner(peer);
    this.resetBar = resetBanner(peer);
    this.keyHistoryBar = keyHistoryBanner(peer);
    this.anchorBar = anchorBanner(() => this.history.jumpToLatest());
    this.timeline = new Timeline(peer, {
      files: this.files,
      onOlder: () => this.history.loadOlder(),
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
      this.blockedBar,
      this.anchorBar,
      this.timeline.el,
      this.composer.el,
    );
    // Drop files anywhere on the conversation.
    acceptDrops(this.el, sendFiles);
    this.unsubscribe = store.on('contacts', () => this.renderContact());
    this.renderContact();
  }

  renderContact() {
    if (this.destroyed) return;
    const c = store.state.contacts.get(this.peer) ?? null;
    this.header.render(c);
    this.keyBar.render(c);
    this.keyHistoryBar.render(c);
    this.blockedBar.hidden = !c?.blocked;
    this.versionBar.hidden = c?.protocol_version !== 1;
    this.resetBar.hidden = !c?.session_reset_at;
    this.composer.setDisabled(Boolean(c?.blocked));
  }

  focusComposer() {
    this.composer.focus();
  }

  destroy() {
    this.destroyed = true;
    this.unsubscribe();
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
    this.timeline.applyState(evt);
  }

  /** A live `file_state` or `file_progress` event. */
  applyFileEvent(evt) {
    if (this.destroyed || !evt) return;
    this.files.applyEvent(evt);
  }
}
