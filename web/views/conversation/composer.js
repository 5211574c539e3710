// The composer: the text box (Enter sends), the send button, the error line, and the attach
// controls. Unsent text is kept per conversation while the user is elsewhere.

import { api } from '../../api.js';
import { h, setText, showText } from '../../dom.js';
import * as store from '../../store.js';
import { attachControls } from './attach.js';

// Unsent text per conversation, kept while switching conversations.
const drafts = new Map();

export class Composer {
  /** onSent(m): the daemon took a message; onFiles(files): files attached, dropped or pasted. */
  constructor(peer, { onSent, onFiles }) {
    this.peer = peer;
    this.onSent = onSent;
    this.destroyed = false;
    this.sendsInFlight = 0;
    this.error = h('p', {
      id: 'composer-error',
      class: 'composer-error',
      role: 'alert',
      hidden: true,
    });
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
    this.textarea.addEventListener('paste', (ev) => {
      const files = [...(ev.clipboardData?.files || [])];
      if (files.length === 0) return;
      ev.preventDefault();
      onFiles(files);
    });
    this.textarea.value = drafts.get(peer) ?? '';
    this.textarea.addEventListener('input', () => this._updateSendEnabled());
    this.textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        this._send();
      }
    });
    this.el = h(
      'form',
      { class: 'composer', 'aria-label': `Send a message to ${peer}`, novalidate: true },
      this.error,
      h(
        'div',
        { class: 'composer-row' },
        h('label', { for: 'composer', class: 'visually-hidden' }, `Message to ${peer}`),
        ...attachControls(onFiles),
        this.textarea,
        this.sendBtn,
      ),
      h(
        'p',
        { id: 'composer-hint', class: 'composer-hint' },
        'Enter to send · Shift+Enter for a new line',
      ),
    );
    this.el.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this._send();
    });
    this._updateSendEnabled();
  }

  focus() {
    this.textarea.focus();
  }

  /** Writing to someone blocked is not possible. */
  setDisabled(on) {
    this.textarea.disabled = on;
  }

  showError(text) {
    showText(this.error, text);
  }

  clearError() {
    setText(this.error, '');
    this.error.hidden = true;
  }

  destroy() {
    this.destroyed = true;
    const draft = this.textarea.value;
    if (draft) drafts.set(this.peer, draft);
    else drafts.delete(this.peer);
  }

  _updateSendEnabled() {
    this.sendBtn.disabled = this.textarea.value.trim() === '';
  }

  async _send() {
    const text = this.textarea.value;
    if (!text.trim()) return;
    this.textarea.value = '';
    this._updateSendEnabled();
    this.clearError();
    this.sendsInFlight += 1;
    this.sendBtn.setAttribute('aria-busy', 'true');
    try {
      const res = await api.send(this.peer, text);
      const m = res?.message;
      if (m) this.onSent(m);
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
      this.showError(err.message);
      this.textarea.focus();
    } finally {
      this.sendsInFlight -= 1;
      if (this.sendsInFlight === 0) this.sendBtn.removeAttribute('aria-busy');
    }
  }
}
