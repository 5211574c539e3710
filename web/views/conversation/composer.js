// The composer: the text box (Enter sends), the send button, the error line, and the attach
// controls (text in the box when files are attached goes with the first one as its caption).
// Unsent text is kept per conversation while the user is elsewhere. It waits, disabled, while the
// contact is blocked or the own daemon cannot be reached.

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
    this.state = 'ready';
    this.placeholder = `Message ${peer}`;
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
    this.attach = attachControls(onFiles); // [the hidden file input, the button]
    this.el = h(
      'form',
      { class: 'composer', 'aria-label': `Send a message to ${peer}`, novalidate: true },
      this.error,
      h(
        'div',
        { class: 'composer-row' },
        h('label', { for: 'composer', class: 'visually-hidden' }, `Message to ${peer}`),
        ...this.attach,
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

  /**
   * 'ready'; 'blocked' (writing to someone blocked is not possible); 'unreachable' (the own
   * daemon does not answer: nothing can be sent until it is back; the text typed stays).
   */
  setState(state) {
    if (this.state === state) return;
    if (document.activeElement === this.textarea) this.refocus = true; // a disabled box loses it
    this.state = state;
    this.textarea.disabled = state !== 'ready';
    this.attach[1].disabled = state !== 'ready';
    this.textarea.placeholder =
      state === 'unreachable' ? 'Waiting for your Flame daemon…' : this.placeholder;
    this._updateSendEnabled();
    if (state === 'ready' && this.refocus) {
      this.refocus = false;
      this.textarea.focus();
    }
  }

  /** Text that could not go (a caption whose files were all refused) comes back to the box. */
  giveBack(text) {
    const now = this.textarea.value;
    this.textarea.value = now ? `${text}\n${now}` : text;
    this._updateSendEnabled();
  }

  /** Files are being attached: the text in the box goes with them as a caption (and leaves it). */
  takeCaption() {
    const caption = this.textarea.value.trim();
    if (caption) {
      this.textarea.value = '';
      this._updateSendEnabled();
    }
    return caption;
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
    this.sendBtn.disabled = this.state !== 'ready' || this.textarea.value.trim() === '';
  }

  async _send() {
    const text = this.textarea.value;
    if (!text.trim() || this.state !== 'ready') return;
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
      this.giveBack(text); // before anything typed since
      this.showError(err.message);
      this.textarea.focus();
    } finally {
      this.sendsInFlight -= 1;
      if (this.sendsInFlight === 0) this.sendBtn.removeAttribute('aria-busy');
    }
  }
}
