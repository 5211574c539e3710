// A question before an action that is hard to take back (blocking someone): a modal <dialog>, so
// Esc and the Cancel button both answer no, and focus stays in it while it is open. Never the
// browser's confirm(), whose look the page cannot control.

import { h } from '../dom.js';
import * as store from '../store.js';

/** Ask; resolves true when the user confirms. */
export function confirmDialog({ id, title, text, confirm, danger = false }) {
  const yes = h(
    'button',
    { type: 'submit', value: 'confirm', class: ['btn', danger ? 'btn-danger' : 'btn-primary'] },
    confirm,
  );
  const no = h('button', { type: 'submit', value: 'cancel', class: 'btn' }, 'Cancel');
  const dialog = h(
    'dialog',
    { id, class: 'dialog', 'aria-labelledby': `${id}-title` },
    h(
      'form',
      { method: 'dialog', class: 'dialog-form' },
      h('h2', { id: `${id}-title`, class: 'dialog-title' }, title),
      h('p', { class: 'dialog-text' }, text),
      h('div', { class: 'dialog-actions' }, no, yes),
    ),
  );
  document.body.appendChild(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'confirm');
    });
    dialog.showModal();
    no.focus(); // the safe answer is the one Enter gives
  });
}

/** Ask before blocking `peer` (unblocking needs no question). */
export function confirmBlock(peer) {
  const name = store.displayName(peer);
  return confirmDialog({
    id: 'block-confirm',
    title: `Block ${name}?`,
    text:
      `${name} will not be able to write to you or see your profile, and will not be told. ` +
      'Nothing they write while blocked is shown, even after you unblock them.',
    confirm: 'Block',
    danger: true,
  });
}
