// The files of one conversation: a FileCard per transfer (kept while the conversation is open),
// live transfer events, and sending files: each is announced, shown at once, then streamed.

import { fileApi } from '../../api.js';
import * as store from '../../store.js';
import { FileCard } from './file-card.js';

export class ConversationFiles {
  /**
   * onUpload(m): a file is on its way (a placeholder message until the daemon has it);
   * onSent(m): the daemon took it; showError(text) / clearError(): the composer's error line;
   * giveBack(text): a caption no file could take goes back to the composer.
   */
  constructor(peer, { onUpload, onSent, showError, clearError, giveBack }) {
    Object.assign(this, { peer, onUpload, onSent, showError, clearError, giveBack });
    this.destroyed = false;
    this.cards = new Map(); // transfer id -> FileCard
    this.fileViews = new Map(); // transfer id -> latest view seen before its message
    this.uploads = new Map(); // transfer id -> AbortController of a running upload
  }

  destroy() {
    this.destroyed = true;
  }

  /** The card of a transfer, or null. */
  card(transferId) {
    return this.cards.get(transferId) ?? null;
  }

  /** The card for a file message (made on first sight, updated after), or null for text. */
  cardFor(m) {
    if (m.kind !== 'file_offer' || !m.file || typeof m.file.transfer_id !== 'string') return null;
    const id = m.file.transfer_id;
    let card = this.cards.get(id);
    if (!card) {
      // A view without its direction (the public fields of one's own offer, from another tab)
      // takes the message's: one's own file is never "waiting for bob to send it".
      card = new FileCard(
        this.peer,
        { direction: m.direction, ...m.file },
        {
          onCancel: (c) => this._cancel(c),
          onDecline: (c) => fileApi.decline(this.peer, c.id),
        },
      );
      this.cards.set(id, card);
    } else {
      card.update(m.file);
    }
    card.setCaption(m.text);
    const later = this.fileViews.get(id);
    if (later) {
      this.fileViews.delete(id);
      card.update(later);
    }
    return card;
  }

  /** A live `file_state` or `file_progress` event. */
  applyEvent(evt) {
    if (evt.type === 'file_state' && evt.file && evt.file.peer === this.peer) {
      const card = this.cards.get(evt.file.transfer_id);
      if (card) card.update(evt.file);
      else this.fileViews.set(evt.file.transfer_id, evt.file);
    } else if (evt.type === 'file_progress' && evt.peer === this.peer) {
      const card = this.cards.get(evt.transfer_id);
      if (card) card.progress(evt);
    }
  }

  async _cancel(card) {
    const upload = this.uploads.get(card.id);
    if (upload) upload.abort();
    return fileApi.cancel(this.peer, card.id);
  }

  /** Attach: each file is announced (refused at once if too large), then streamed. The caption
   * goes with the first. */
  async send(files, caption = '') {
    this.clearError();
    let text = caption;
    for (const file of files) {
      let announced;
      try {
        announced = (await fileApi.announce(this.peer, file, text)).file;
      } catch (err) {
        if (err.status === 401) return;
        this.showError(`${file.name || 'The file'}: ${err.message}`);
        continue;
      }
      if (this.destroyed) return;
      const id = announced.transfer_id;
      this.onUpload({
        id: `upload:${id}`,
        peer: this.peer,
        direction: 'out',
        author: store.state.me ? store.state.me.username : '',
        kind: 'file_offer',
        text,
        sent_at: Date.now() / 1000,
        received_at: null,
        seq: Number.MAX_SAFE_INTEGER,
        state: 'sending',
        error: null,
        file: announced,
      });
      text = '';
      const controller = new AbortController();
      this.uploads.set(id, controller);
      fileApi
        .upload(this.peer, id, file, controller.signal)
        .then((res) => {
          if (res.message) this.onSent(res.message);
        })
        .catch((err) => {
          if (err && err.name === 'AbortError') return;
          const card = this.cards.get(id);
          if (card && card.state === 'uploading')
            card.update({ transfer_id: id, state: 'failed', error: err.message });
        })
        .finally(() => this.uploads.delete(id));
    }
    if (text && !this.destroyed) this.giveBack(text);
  }
}
