// A new group (docs/UI_API.md, "Groups"): a name and members chosen from contacts. The daemon's
// refusals (a name over 64 characters, more than 100 members, nobody chosen) show as they come.

import { groupApi } from '../api.js';
import { h, showText } from '../dom.js';
import { groupHash, navigate } from '../router.js';
import * as store from '../store.js';
import { pageHeader } from './page.js';

export class NewGroupView {
  constructor() {
    this.destroyed = false;
    this.name = h('input', {
      id: 'group-name',
      class: 'input',
      type: 'text',
      placeholder: 'Board, leadership team, a deal team…',
      'aria-label': 'Group name',
    });
    this.error = h('p', {
      id: 'new-group-error',
      class: 'composer-error',
      role: 'alert',
      hidden: true,
    });
    this.choices = h('ul', { class: 'group-choices', 'aria-label': 'Members' });
    const create = h(
      'button',
      { id: 'group-create', type: 'submit', class: 'btn btn-primary' },
      'Create group',
    );
    const form = h(
      'form',
      { id: 'new-group', class: 'profile-form', novalidate: true },
      h('label', { class: 'field' }, h('span', null, 'Name'), this.name),
      h('p', { class: 'muted' }, 'Members (2 to 100 with you):'),
      this.choices,
      this.error,
      create,
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this._create(create);
    });
    this.el = h('section', { class: 'profile' }, pageHeader(h('h2', null, 'New group')), form);
  }

  load() {
    const people = store.visibleContacts().filter((c) => !c.blocked);
    this.choices.replaceChildren(
      ...people.map((c) =>
        h(
          'li',
          null,
          h(
            'label',
            null,
            h('input', { type: 'checkbox', value: c.username, 'data-member': c.username }),
            ` ${store.displayLabel(c.username)}`,
          ),
        ),
      ),
    );
    this.name.focus();
  }

  async _create(button) {
    const members = [...this.choices.querySelectorAll('input:checked')].map((i) => i.value);
    button.disabled = true;
    this.error.hidden = true;
    try {
      const { group } = await groupApi.create(this.name.value.trim(), members);
      if (!this.destroyed) navigate(groupHash(group.id));
    } catch (err) {
      if (!this.destroyed) showText(this.error, err.message);
    } finally {
      button.disabled = false;
    }
  }

  destroy() {
    this.destroyed = true;
  }
}
