// Groups beside contacts (docs/UI_API.md, "Groups"): the sidebar list, and the wiring of the
// group routes and live events into the page (app.js hands them over).

import { groupApi } from '../api.js';
import { h } from '../dom.js';
import { notifyOfGroup } from '../notices.js';
import { groupHash } from '../router.js';
import { GroupView } from './group.js';
import { NewGroupView } from './group-new.js';

class GroupList {
  constructor() {
    this.items = new Map();
    this.list = h('ul', { class: 'contact-list', id: 'group-list', 'aria-label': 'Groups' });
    this.el = h(
      'div',
      { class: 'groups' },
      h(
        'h2',
        { class: 'sidebar-title' },
        'Groups ',
        h('a', { id: 'new-group-link', class: 'btn btn-small', href: '#/groups/new' }, 'New group'),
      ),
      this.list,
    );
  }

  render(groups, activeId) {
    const sorted = [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
    this.list.replaceChildren(
      ...sorted.map((g) => {
        const badge = h('span', { class: 'unread-badge', hidden: g.unread <= 0 }, String(g.unread));
        const link = h(
          'a',
          { class: 'contact', href: groupHash(g.id), 'data-group': g.id },
          h(
            'span',
            { class: 'contact-main' },
            h(
              'span',
              { class: 'contact-line' },
              h('span', { class: 'contact-name' }, g.name),
              badge,
            ),
          ),
        );
        if (g.id === activeId) link.setAttribute('aria-current', 'page');
        if (!g.is_member) link.classList.add('is-blocked');
        return h('li', { class: 'contact-item' }, link);
      }),
    );
  }
}

export class Groups {
  constructor(socket) {
    this.groups = new Map();
    this.list = new GroupList();
    this.view = null; // the open group's view, or the new group form
    this.shell = null;
    socket.subscribe('group', (evt) => this._applyGroup(evt.group));
    socket.subscribe('group_message', (evt) => this._applyMessage(evt.message));
    socket.subscribe('message_state', (evt) => this.view?.applyState?.(evt));
    for (const type of ['file_state', 'file_progress']) {
      socket.subscribe(type, (evt) => this.view?.applyFileEvent?.(evt));
    }
    socket.subscribe('hello', () => this.load());
  }

  /** The shell (re)built: the group list goes below the contacts. */
  attach(shell) {
    if (this.shell === shell) return;
    this.shell = shell;
    shell.sidebar.appendChild(this.list.el);
    this.load();
  }

  async load() {
    try {
      const { groups } = await groupApi.list();
      this.groups = new Map(groups.map((g) => [g.id, g]));
      this._render();
    } catch (err) {
      console.warn('groups not loaded:', err.message);
    }
  }

  /** Route a hash that is a group's; true when it was. */
  route(r, shell) {
    this.close();
    if (r.name !== 'new-group' && r.name !== 'group') {
      this._render();
      return false;
    }
    this.view = r.name === 'group' ? new GroupView(r.id) : new NewGroupView();
    shell.showView(this.view, r.name);
    this.view.load();
    if (r.name === 'group') this.view.focusComposer();
    this._render();
    return true;
  }

  close() {
    if (this.view) this.view.destroy();
    this.view = null;
  }

  _render() {
    this.list.render(this.groups, this.view instanceof GroupView ? this.view.id : null);
  }

  _applyGroup(group) {
    if (!group || typeof group.id !== 'string') return;
    this.groups.set(group.id, group);
    if (this.view instanceof GroupView) this.view.applyGroup(group);
    this._render();
  }

  _applyMessage(m) {
    if (!m || typeof m.group !== 'string') return;
    const open = this.view instanceof GroupView && this.view.id === m.group;
    if (open) this.view.addLive(m);
    const group = this.groups.get(m.group);
    if (group && m.direction === 'in' && !open) {
      group.unread += 1;
      this._notify(group, m);
    }
    this._render();
  }

  /** A new message in a group that is not open: a notice, unless busy (notices.js). */
  _notify(group, m) {
    if (this.shell) notifyOfGroup(group, m, this.shell.toasts);
  }
}
