// What the user can do to one message (PROTOCOL.md §17): reply, react, edit, delete, on hover or
// focus and, on a touch screen, behind the message's "⋯" button; the reaction picker (the quick
// six and any single emoji), the delete menu, the edit history, and the reaction chips under the
// bubble (a click toggles one's own). The handlers come from the conversation (index.js).

import { h, setText } from '../../dom.js';
import { formatFull } from '../../format.js';
import * as store from '../../store.js';

export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

let openPopover = null; // {el, close}: one at a time

function closePopover() {
  if (openPopover) openPopover.close();
}

/** Show `el` under `anchor` (in the message's item) until Esc, a click elsewhere, or done. */
function popover(li, el, anchor) {
  closePopover();
  const onKey = (ev) => {
    if (ev.key === 'Escape') {
      ev.stopPropagation();
      close();
      anchor.focus();
    }
  };
  const onOutside = (ev) => {
    if (!el.contains(ev.target) && ev.target !== anchor) close();
  };
  function close() {
    el.remove();
    document.removeEventListener('keydown', onKey, true);
    document.removeEventListener('pointerdown', onOutside, true);
    if (openPopover?.el === el) openPopover = null;
  }
  li.appendChild(el);
  document.addEventListener('keydown', onKey, true);
  document.addEventListener('pointerdown', onOutside, true);
  openPopover = { el, close };
  const first = el.querySelector('button, input');
  if (first) first.focus();
  return close;
}

function canChange(m) {
  return m.direction === 'out' && !m.deleted && Number(m.actions_until) * 1000 > Date.now();
}

/** Whether the user may still edit this message (↑ in the composer finds the last one). */
export function isEditable(m) {
  return canChange(m) && m.kind === 'text';
}

function actionButton(name, label, icon, onclick) {
  return h(
    'button',
    {
      type: 'button',
      class: 'message-action',
      'data-action': name,
      'aria-label': label,
      title: label,
      onclick: (ev) => {
        ev.stopPropagation();
        onclick(ev.currentTarget);
      },
    },
    icon,
  );
}

function reactionPicker(li, m, actions, anchor) {
  const input = h('input', {
    class: 'input reaction-input',
    id: 'reaction-input',
    type: 'text',
    maxlength: '32',
    placeholder: 'Any emoji',
    'aria-label': 'Any emoji',
    autocomplete: 'off',
  });
  const error = h('p', { class: 'reaction-error', role: 'alert', hidden: true });
  const pick = async (emoji) => {
    try {
      await actions.react(m, emoji, true);
      close();
    } catch (err) {
      setText(error, err.message);
      error.hidden = false;
    }
  };
  const form = h(
    'form',
    {
      class: 'reaction-other',
      onsubmit: (ev) => {
        ev.preventDefault();
        const value = input.value.trim();
        if (value) pick(value);
      },
    },
    input,
    h('button', { type: 'submit', class: 'btn btn-small' }, 'Add'),
  );
  const el = h(
    'div',
    { class: 'message-popover reaction-picker', role: 'dialog', 'aria-label': 'React' },
    h(
      'div',
      { class: 'reaction-quick' },
      QUICK_REACTIONS.map((emoji) =>
        h(
          'button',
          {
            type: 'button',
            class: 'reaction-choice',
            'data-emoji': emoji,
            'aria-label': `React with ${emoji}`,
            onclick: () => pick(emoji),
          },
          emoji,
        ),
      ),
    ),
    form,
    error,
  );
  const close = popover(li, el, anchor);
}

function deleteMenu(li, m, actions, anchor) {
  const choose = async (scope) => {
    try {
      await actions.remove(m, scope);
      close();
    } catch (err) {
      close();
      actions.error(err.message);
    }
  };
  const el = h(
    'div',
    { class: 'message-popover delete-menu', role: 'dialog', 'aria-label': 'Delete this message' },
    h('p', { class: 'delete-menu-title' }, 'Delete this message?'),
    canChange(m)
      ? h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-danger',
            id: 'delete-everyone',
            onclick: () => choose('everyone'),
          },
          'Delete for everyone',
        )
      : null,
    h(
      'button',
      { type: 'button', class: 'btn btn-small', id: 'delete-me', onclick: () => choose('me') },
      'Delete for me',
    ),
    h(
      'button',
      { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => close() },
      'Cancel',
    ),
  );
  const close = popover(li, el, anchor);
}

/** The "edited" mark: a click shows every version with its time. */
export function editedMark(li, m, actions) {
  const mark = h(
    'button',
    {
      type: 'button',
      class: 'message-edited',
      title: `Edited ${formatFull(m.edited_at)}: show the history`,
      onclick: async (ev) => {
        ev.stopPropagation();
        const list = h('ol', { class: 'edit-history', id: 'edit-history' });
        const el = h(
          'div',
          { class: 'message-popover', role: 'dialog', 'aria-label': 'Edit history' },
          h('p', { class: 'delete-menu-title' }, 'Edit history'),
          list,
        );
        popover(li, el, mark);
        try {
          const res = await actions.history(m);
          for (const v of res.versions || []) {
            list.appendChild(
              h(
                'li',
                null,
                h('time', { class: 'edit-history-time' }, formatFull(v.written_at)),
                h('span', { class: 'edit-history-text' }, v.text),
              ),
            );
          }
        } catch (err) {
          list.appendChild(h('li', { class: 'reaction-error' }, err.message));
        }
      },
    },
    'edited',
  );
  return mark;
}

/** The toolbar of one message, and (touch screens) the button that shows it. */
export function messageActions(li, m, actions) {
  const tools = [
    actionButton('reply', 'Reply', '↩', () => actions.reply(m)),
    actionButton('react', 'React', '☺', (btn) => reactionPicker(li, m, actions, btn)),
    isEditable(m) ? actionButton('edit', 'Edit', '✎', () => actions.edit(m)) : null,
    actionButton('delete', 'Delete', '⌫', (btn) => deleteMenu(li, m, actions, btn)),
  ];
  if (m.deleted) tools.splice(0, 3, null, null, null); // a tombstone: only "delete for me"
  const bar = h(
    'div',
    { class: 'message-actions', role: 'toolbar', 'aria-label': 'Message actions' },
    ...tools,
  );
  const more = h(
    'button',
    {
      type: 'button',
      class: 'message-more',
      'aria-label': 'Message actions',
      'aria-expanded': 'false',
      onclick: (ev) => {
        ev.stopPropagation();
        const on = !li.classList.contains('show-actions');
        li.classList.toggle('show-actions', on);
        more.setAttribute('aria-expanded', String(on));
      },
    },
    '⋯',
  );
  return [bar, more];
}

/** The reactions under a bubble: one chip per emoji; a click toggles this user's own. */
export function reactionChips(m, actions) {
  if (!Array.isArray(m.reactions) || m.reactions.length === 0) return null;
  const me = store.state.me?.username;
  return h(
    'div',
    { class: 'reactions', 'aria-label': 'Reactions' },
    m.reactions.map((r) => {
      const mine = Array.isArray(r.people) && r.people.includes(me);
      const who = (r.people || []).map((p) => store.displayName(p)).join(', ');
      return h(
        'button',
        {
          type: 'button',
          class: ['reaction-chip', mine ? 'is-mine' : null],
          'data-emoji': r.emoji,
          'aria-pressed': String(mine),
          'aria-label': `${r.emoji} ${r.count}: ${who}`,
          title: who,
          onclick: async (ev) => {
            ev.stopPropagation();
            try {
              await actions.react(m, r.emoji, !mine);
            } catch (err) {
              actions.error(err.message);
            }
          },
        },
        h('span', { class: 'reaction-emoji' }, r.emoji),
        h('span', { class: 'reaction-count' }, String(r.count)),
      );
    }),
  );
}
