// The composer: the text box (Enter sends), the send button, the error line, and the attach
// controls (text in the box when files are attached goes with the first one as its caption).
// Unsent text is kept per conversation while the user is elsewhere. It waits, disabled, while the
// contact is blocked or the own daemon cannot be reached. It also replies (a "Replying to" line
// above it), edits (↑ in an empty box edits the last message that can still be edited; Esc
// stops), and tells the contact that the user is typing (PROTOCOL.md §17.5: at most every 3 s,
// and "stopped" when the box is emptied).

import { actionApi, api } from '../../api.js';
import { h, setText, showText } from '../../dom.js';
import * as store from '../../store.js';
import { attachControls } from './attach.js';
import { composerContext, quoteOf } from './quote.js';

const TYPING_EVERY_MS = 3000;

/** A key pressed with a modifier (Alt+↑ moves between conversations, not into an edit). */
function modified(ev) {
  return ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey;
}
const TYPING_SHOWN_MS = 6000;

// Unsent text per conversation, kept while switching conversations.
const drafts = new Map();

export class Composer {
  /**
   * onSent(m): the daemon took a message; onFiles(files): files attached, dropped or pasted;
   * onChanged(m): an edit was taken; lastEditable(): the message ↑ edits, or null.
   */
  constructor(peer, { onSent, onFiles, onChanged, lastEditable }) {
    this.peer = peer;
    this.onSent = onSent;
    this.onChanged = onChanged;
    this.lastEditable = lastEditable;
    this.destroyed = false;
    this.sendsInFlight = 0;
    this.mode = null; // {kind: 'reply', m} or {kind: 'edit', m, stash}
    this.typingSentAt = 0;
    this.contextSlot = h('div', { class: 'composer-context-slot' });
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
    this.textarea.addEventListener('input', () => {
      this._updateSendEnabled();
      this._typing();
    });
    this.textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        this._send();
      } else if (ev.key === 'Escape' && this.mode) {
        ev.preventDefault();
        this.cancelMode();
      } else if (
        ev.key === 'ArrowUp' &&
        !this.mode &&
        this.textarea.value === '' &&
        !modified(ev)
      ) {
        const m = this.lastEditable();
        if (m) {
          ev.preventDefault();
          this.startEdit(m);
        }
      }
    });
    this.attach = attachControls(onFiles); // [the hidden file input, the button]
    this.el = h(
      'form',
      { class: 'composer', 'aria-label': `Send a message to ${peer}`, novalidate: true },
      this.error,
      this.contextSlot,
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
        'Enter to send · Shift+Enter for a new line · ↑ edits your last message',
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

  /** Reply to m: the next message sent quotes it. */
  startReply(m) {
    if (this.mode?.kind === 'edit') this.cancelMode();
    this.mode = { kind: 'reply', m };
    this._renderMode();
    this.focus();
  }

  /** Edit m (one's own text): the box holds its text until saved or Esc. */
  startEdit(m) {
    const stash = this.mode?.kind === 'edit' ? this.mode.stash : this.textarea.value;
    this.mode = { kind: 'edit', m, stash };
    this.textarea.value = m.text ?? '';
    this._renderMode();
    this._updateSendEnabled();
    this.focus();
    this.textarea.setSelectionRange(this.textarea.value.length, this.textarea.value.length);
  }

  cancelMode() {
    if (this.mode?.kind === 'edit') this.textarea.value = this.mode.stash;
    this.mode = null;
    this._renderMode();
    this._updateSendEnabled();
  }

  _renderMode() {
    const mode = this.mode;
    this.el.classList.toggle('is-editing', mode?.kind === 'edit');
    setText(this.sendBtn, mode?.kind === 'edit' ? 'Save' : 'Send');
    if (!mode) {
      this.contextSlot.replaceChildren();
      return;
    }
    const who = store.displayName(mode.m.author);
    const label = mode.kind === 'edit' ? 'Editing your message' : `Replying to ${who}`;
    this.contextSlot.replaceChildren(
      composerContext({ label, quote: quoteOf(mode.m), onCancel: () => this.cancelMode() }),
    );
  }

  /** Tell the contact the user is typing (or stopped), at the protocol's pace. */
  _typing() {
    if (this.mode?.kind === 'edit' || this.textarea.disabled) return;
    const now = Date.now();
    if (this.textarea.value.trim()) {
      if (now - this.typingSentAt < TYPING_EVERY_MS) return;
      this.typingSentAt = now;
      actionApi.typing(this.peer, true).catch(() => {});
    } else if (now - this.typingSentAt < TYPING_SHOWN_MS) {
      this.typingSentAt = 0;
      actionApi.typing(this.peer, false).catch(() => {});
    }
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
    if (this.mode?.kind === 'edit') return ''; // the box holds the message being edited
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

  async _saveEdit() {
    const { m, stash } = this.mode;
    const text = this.textarea.value;
    if (!text.trim()) {
      this.showError('An edited message cannot be empty: delete it instead.');
      return;
    }
    this.clearError();
    try {
      const res = await actionApi.edit(this.peer, m.id, text);
      if (this.destroyed) return;
      if (res?.message) this.onChanged(res.message);
      this.mode = null;
      this.textarea.value = stash;
      this._renderMode();
      this._updateSendEnabled();
    } catch (err) {
      if (err.status === 401 || this.destroyed) return;
      this.showError(err.message);
    }
  }

  async _send() {
    if (this.state !== 'ready') return;
    if (this.mode?.kind === 'edit') {
      await this._saveEdit();
      return;
    }
    const text = this.textarea.value;
    if (!text.trim()) return;
    const reply = this.mode?.kind === 'reply' ? this.mode : null;
    this.typingSentAt = 0; // the message itself clears the contact's indicator
    this.textarea.value = '';
    this._updateSendEnabled();
    this.clearError();
    this.sendsInFlight += 1;
    this.sendBtn.setAttribute('aria-busy', 'true');
    try {
      const res = await api.send(this.peer, text, reply ? reply.m.id : null);
      if (reply && this.mode === reply) {
        this.mode = null;
        this._renderMode();
      }
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
