// The quick switcher (Ctrl+K or /) and "New chat": a modal list of people, narrowed as the user
// types, most recent conversation first; ↑ and ↓ move, Enter opens, Esc closes. A username that
// matches nobody in the list can still be written to: the directory is asked when the first
// message goes.

import { h, setText } from '../dom.js';
import { conversationHash, navigate } from '../router.js';
import * as store from '../store.js';
import { avatarElement } from './contacts.js';

const USERNAME = /^[a-z][a-z0-9_.-]{1,31}$/; // the form of a username (PROTOCOL.md §1.3)
const SHOWN_MAX = 50;

let open = null; // the switcher on screen, if any

/** Open the switcher (or focus it, when open). `title` says what it is for. */
export function openSwitcher(title = 'Go to a conversation') {
  if (open) {
    open.input.focus();
    return;
  }
  open = new Switcher(title);
}

class Switcher {
  constructor(title) {
    this.selected = 0;
    this.options = [];
    this.input = h('input', {
      id: 'switcher-input',
      class: 'input',
      type: 'text',
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: 'Type a name',
      role: 'combobox',
      'aria-expanded': 'true',
      'aria-controls': 'switcher-list',
      'aria-label': title,
    });
    this.list = h('ul', { id: 'switcher-list', class: 'switcher-list', role: 'listbox' });
    this.empty = h('p', { class: 'muted switcher-empty', hidden: true }, 'Nobody by that name.');
    this.dialog = h(
      'dialog',
      { id: 'switcher', class: 'dialog switcher', 'aria-label': title },
      h('h2', { class: 'dialog-title' }, title),
      this.input,
      this.list,
      this.empty,
      h('p', { class: 'switcher-hint muted' }, '↑ ↓ to choose · Enter to open · Esc to close'),
    );
    this.input.addEventListener('input', () => {
      this.selected = 0;
      this.render();
    });
    this.input.addEventListener('keydown', (ev) => this._key(ev));
    this.dialog.addEventListener('close', () => {
      this.dialog.remove();
      open = null;
    });
    document.body.appendChild(this.dialog);
    this.render();
    this.dialog.showModal();
    this.input.focus();
  }

  /** The people matching what was typed, in the contact list's order. */
  _matches() {
    const query = this.input.value.trim().toLowerCase();
    const people = store.visibleContacts().filter((c) => {
      if (!query) return true;
      const shown = store.displayName(c.username).toLowerCase();
      return c.username.includes(query) || shown.includes(query);
    });
    const names = people.slice(0, SHOWN_MAX).map((c) => c.username);
    const me = store.state.me?.username;
    if (!names.length && USERNAME.test(query) && query !== me && !store.state.contacts.has(query)) {
      names.push(query); // nobody in the list by that name: write to that username
    }
    return names;
  }

  render() {
    this.options = this._matches();
    this.selected = Math.min(this.selected, Math.max(0, this.options.length - 1));
    this.list.replaceChildren(
      ...this.options.map((name, index) => {
        const known = store.state.contacts.has(name);
        const avatar = avatarElement(name, 'avatar-sm');
        avatar.update(store.state.contacts.get(name)?.avatar_url ?? null, store.displayName(name));
        const item = h(
          'li',
          {
            id: `switcher-option-${index}`,
            class: 'switcher-option',
            role: 'option',
            'data-contact': name,
            'aria-selected': index === this.selected ? 'true' : 'false',
            onclick: () => this._go(name),
          },
          avatar.el,
          h(
            'span',
            { class: 'switcher-name' },
            known ? store.displayLabel(name) : `Message ${name}`,
          ),
          known ? h('span', { class: 'muted switcher-username' }, name) : null,
        );
        return item;
      }),
    );
    this.empty.hidden = this.options.length > 0;
    if (this.options.length) {
      this.input.setAttribute('aria-activedescendant', `switcher-option-${this.selected}`);
      this.list.children[this.selected].scrollIntoView({ block: 'nearest' });
    } else {
      this.input.removeAttribute('aria-activedescendant');
    }
    setText(this.empty, this.input.value.trim() ? 'Nobody by that name.' : 'No contacts yet.');
  }

  _key(ev) {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      const n = this.options.length;
      if (!n) return;
      this.selected = (this.selected + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.render();
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      const name = this.options[this.selected];
      if (name) this._go(name);
    }
  }

  _go(name) {
    this.dialog.close();
    navigate(conversationHash(name));
  }
}
