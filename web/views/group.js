// A group's conversation (docs/UI_API.md, "Groups"): its members (admins manage them), its
// messages with "delivered to X of N, read by Y" for one's own (details list who), and the
// composer, gone once this user left or was removed.

import { groupApi, withToken } from '../api.js';
import { h, setText, showText, spinner } from '../dom.js';
import { compareMessages, formatTime, messageStateInfo } from '../format.js';
import * as store from '../store.js';
import { attachControl, GroupFileCard, sendGroupFile } from './group-files.js';
import { backLink } from './page.js';
import { readFile } from './settings.js';

/** "Delivered to 2 of 3 · read by 1", from a GroupMessage's counts. */
export function deliveryText(m) {
  if (m.direction !== 'out') return '';
  if (m.recipients === 0) return 'Sent to nobody';
  const read = m.read > 0 ? ` · read by ${m.read}` : '';
  return `Delivered to ${m.delivered} of ${m.recipients}${read}`;
}

function countCopies(m) {
  const ranks = { delivered: 3, read: 4 };
  m.delivered = m.copies.filter((c) => (ranks[c.state] || 0) >= 3).length;
  m.read = m.copies.filter((c) => c.state === 'read').length;
  m.recipients = m.copies.length;
}

export class GroupView {
  constructor(id) {
    this.id = id;
    this.group = null;
    this.messages = new Map(); // id -> GroupMessage
    this.items = new Map(); // id -> {li, state, details}
    this.cards = new Map(); // transfer id -> GroupFileCard (files in messages, and uploads)
    this.uploads = h('div', { id: 'group-uploads', class: 'group-uploads' });
    this.destroyed = false;
    this.title = h('h2', { id: 'group-title', class: 'conv-title' }, '');
    this.picture = h('span', { id: 'group-picture', class: 'avatar', 'aria-hidden': 'true' });
    this.memberLine = h('p', { id: 'group-members', class: 'muted' });
    this.notice = h('p', { id: 'group-notice', class: 'banner banner-warning', hidden: true });
    this.manage = h('div', { id: 'group-manage', class: 'group-manage' });
    this.error = h('p', {
      id: 'group-error',
      class: 'composer-error',
      role: 'alert',
      hidden: true,
    });
    this.list = h('ul', { id: 'group-messages', class: 'message-list' });
    this.status = h('div', { class: 'messages-loading', role: 'status' }, spinner(), 'Loading…');
    this.textarea = h('textarea', {
      id: 'group-composer',
      class: 'composer-input',
      rows: '1',
      placeholder: 'Message the group',
      'aria-label': 'Message to the group',
    });
    this.textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this._send();
      }
    });
    const sendBtn = h(
      'button',
      { id: 'group-send', type: 'submit', class: 'btn btn-primary' },
      'Send',
    );
    this.composer = h(
      'form',
      { class: 'composer', id: 'group-form', novalidate: true },
      h(
        'div',
        { class: 'composer-row' },
        attachControl((file) => this._sendFile(file)),
        this.textarea,
        sendBtn,
      ),
    );
    this.composer.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this._send();
    });
    this.el = h(
      'section',
      { class: 'conversation group', id: 'group', 'data-group': id },
      h(
        'header',
        { class: 'conv-header' },
        backLink(),
        this.picture,
        h('div', { class: 'conv-title-block' }, this.title, this.memberLine),
      ),
      this.notice,
      this.manage,
      h(
        'div',
        { class: 'message-area' },
        h('div', { class: 'message-scroll', tabindex: '0' }, this.status, this.list),
      ),
      this.error,
      this.uploads,
      this.composer,
    );
  }

  async load() {
    try {
      const [{ group }, page] = await Promise.all([
        groupApi.get(this.id),
        groupApi.messages(this.id),
      ]);
      if (this.destroyed) return;
      this.applyGroup(group);
      for (const m of page.messages) this.addLive(m);
      this.status.hidden = true;
      this.markRead();
    } catch (err) {
      if (!this.destroyed)
        this.status.replaceChildren(h('span', { class: 'error-text' }, err.message));
    }
  }

  focusComposer() {
    this.textarea.focus();
  }

  markRead() {
    if (document.visibilityState === 'visible' && this.group?.is_member) {
      groupApi.markRead(this.id).catch(() => {});
    }
  }

  applyGroup(group) {
    if (group.id !== this.id) return;
    this.group = group;
    setText(this.title, group.name);
    this.picture.replaceChildren(
      group.picture_url
        ? h('img', { class: 'avatar-img', src: withToken(group.picture_url), alt: '' })
        : document.createTextNode(group.name.slice(0, 1).toUpperCase()),
    );
    setText(this.memberLine, `${group.members.length} members: ${group.members.join(', ')}`);
    const me = store.state.me?.username;
    this.composer.hidden = !group.is_member;
    this.notice.hidden = group.is_member;
    if (!group.is_member) {
      setText(this.notice, 'You are no longer a member of this group: you were removed, or left.');
    }
    this._renderManage(group, me);
  }

  _renderManage(group, me) {
    const rows = group.members.map((name) =>
      h(
        'li',
        { class: 'group-member', 'data-member': name },
        h('span', null, store.displayLabel(name)),
        group.admins.includes(name) ? h('span', { class: 'muted' }, ' (admin)') : null,
        store.state.contacts.get(name)?.key_changed
          ? h('span', { class: 'group-key-changed' }, ' (key changed: accept it to write to them)')
          : null,
        group.is_admin && name !== me
          ? h(
              'button',
              {
                type: 'button',
                class: 'btn btn-small',
                'data-remove': name,
                onclick: () => this._change('remove', { members: [name] }),
              },
              'Remove',
            )
          : null,
      ),
    );
    const controls = [];
    if (group.is_admin) {
      const candidates = [...store.state.contacts.keys()].filter((n) => !group.members.includes(n));
      const select = h(
        'select',
        { id: 'group-add-select', class: 'input', 'aria-label': 'Contact to add' },
        ...candidates.map((n) => h('option', { value: n }, store.displayLabel(n))),
      );
      controls.push(
        select,
        h(
          'button',
          {
            id: 'group-add',
            type: 'button',
            class: 'btn btn-small',
            disabled: candidates.length === 0,
            onclick: () => select.value && this._change('add', { members: [select.value] }),
          },
          'Add member',
        ),
      );
    }
    if (group.is_admin) {
      const name = h('input', {
        id: 'group-rename-input',
        class: 'input',
        type: 'text',
        value: group.name,
        'aria-label': 'Group name',
      });
      const picture = h('input', {
        id: 'group-picture-input',
        type: 'file',
        accept: 'image/*',
        class: 'visually-hidden',
      });
      picture.addEventListener('change', async () => {
        const file = picture.files?.[0];
        if (file) this._change('picture', { picture: await readFile(file) });
      });
      controls.push(
        name,
        h(
          'button',
          {
            id: 'group-rename',
            type: 'button',
            class: 'btn btn-small',
            onclick: () => this._change('rename', { name: name.value.trim() }),
          },
          'Rename',
        ),
        h('label', { class: 'btn btn-small', for: 'group-picture-input' }, 'Picture…', picture),
      );
    }
    if (group.is_member) {
      controls.push(
        h(
          'button',
          {
            id: 'group-leave',
            type: 'button',
            class: 'btn btn-small btn-ghost',
            onclick: () => this._change('leave'),
          },
          'Leave group',
        ),
      );
    }
    this.manage.replaceChildren(
      h('ul', { class: 'group-member-list', 'aria-label': 'Members' }, ...rows),
      h('div', { class: 'group-controls' }, ...controls),
    );
  }

  async _change(op, args = {}) {
    this.error.hidden = true;
    try {
      const { group } = await groupApi.change(this.id, op, args);
      if (!this.destroyed) this.applyGroup(group);
    } catch (err) {
      if (!this.destroyed) showText(this.error, err.message);
    }
  }

  async _send() {
    const text = this.textarea.value;
    if (!text.trim()) return;
    this.textarea.value = '';
    this.error.hidden = true;
    try {
      const { message } = await groupApi.send(this.id, text);
      if (!this.destroyed) this.addLive(message);
    } catch (err) {
      if (this.destroyed) return;
      this.textarea.value = text;
      showText(this.error, err.message);
    }
  }

  async _sendFile(file) {
    this.error.hidden = true;
    let pending = null;
    try {
      const message = await sendGroupFile(this.id, file, (announced) => {
        pending = new GroupFileCard(this.id, announced);
        this.cards.set(announced.transfer_id, pending);
        this.uploads.appendChild(pending.el);
      });
      if (!this.destroyed) this.addLive(message);
    } catch (err) {
      if (!this.destroyed) showText(this.error, err.message);
    } finally {
      pending?.el.remove();
    }
  }

  /** A `file_state` or `file_progress` event: perhaps a file of this group. */
  applyFileEvent(evt) {
    const tid = evt.type === 'file_state' ? evt.file?.transfer_id : evt.transfer_id;
    const card = this.cards.get(tid);
    if (!card) return;
    if (evt.type === 'file_state') card.update(evt.file);
    else card.progress(evt);
  }

  /** A message of this group, new or known (a live event, or one's own send's answer). */
  addLive(m) {
    if (m.group !== this.id) return;
    const known = this.messages.get(m.id);
    if (known && known.copies.length >= m.copies.length) return;
    this.messages.set(m.id, m);
    let item = this.items.get(m.id);
    if (!item) {
      item = this._item(m);
      this.items.set(m.id, item);
      const later = [...this.items.values()].find(
        (other) => other !== item && compareMessages(other.m, m) > 0,
      );
      this.list.insertBefore(item.li, later ? later.li : null);
    }
    item.m = m;
    this._renderState(item);
    if (m.direction === 'in') this.markRead();
  }

  _item(m) {
    const state = h('span', { class: 'group-delivery', 'data-delivery': m.id });
    const details = h('ul', { class: 'group-copies', hidden: true });
    const toggle = h(
      'button',
      {
        type: 'button',
        class: 'btn-link group-details',
        onclick: () => (details.hidden = !details.hidden),
      },
      'Details',
    );
    const bubble = h(
      'div',
      { class: 'bubble' },
      m.direction === 'in'
        ? h('strong', { class: 'group-author' }, `${store.displayLabel(m.author)}: `)
        : null,
      m.file ? this._card(m.file) : null,
      m.text ? h('span', { class: 'message-text' }, m.text) : null,
      h('span', { class: 'message-meta' }, formatTime(m.sent_at)),
    );
    const extra = m.direction === 'out' ? h('div', { class: 'message-meta' }, state, toggle) : null;
    const li = h(
      'li',
      { class: ['message', m.direction], 'data-id': m.id },
      bubble,
      extra,
      details,
    );
    return { li, state, details, m };
  }

  _card(file) {
    const card = new GroupFileCard(this.id, file);
    this.cards.set(file.transfer_id, card);
    return card.el;
  }

  _renderState(item) {
    const m = item.m;
    if (m.direction !== 'out') return;
    setText(item.state, deliveryText(m));
    item.details.replaceChildren(
      ...m.copies.map((c) =>
        h(
          'li',
          { 'data-copy': c.member },
          `${store.displayLabel(c.member)}: ${messageStateInfo(c.state).label}${c.error ? ` (${c.error})` : ''}`,
        ),
      ),
    );
  }

  /** A `message_state` event: perhaps one member's copy of one of this user's messages. */
  applyState(evt) {
    for (const item of this.items.values()) {
      const copy = item.m.copies.find((c) => c.id === evt.id);
      if (!copy) continue;
      copy.state = evt.state;
      copy.error = evt.error;
      countCopies(item.m);
      this._renderState(item);
      return;
    }
  }

  destroy() {
    this.destroyed = true;
  }
}
