// The conversation's banners: "you blocked them", "you are looking at older messages", "no
// forward secrecy" (their Flame speaks only protocol version 1) and "the session was reset"
// (PROTOCOL.md §14.2, §14.9).

import { h } from '../../dom.js';

/** "You blocked …": `setName` shows the person as the rest of the page does (display name). */
export function blockedBanner() {
  const text = h('span', { class: 'banner-text' });
  const el = h(
    'div',
    { id: 'blocked-banner', class: 'banner banner-warning', role: 'status', hidden: true },
    text,
  );
  const setName = (name) => {
    text.textContent = `You blocked ${name}. They cannot write to you; unblock them to talk again.`;
  };
  return { el, setName };
}

/** Shown while an older page is shown (a search hit); onJump goes to the newest messages. */
export function anchorBanner(onJump) {
  return h(
    'div',
    { id: 'anchor-bar', class: 'banner', role: 'status', hidden: true },
    h('span', { class: 'banner-text' }, 'You are looking at older messages. '),
    h(
      'button',
      { id: 'jump-to-latest', type: 'button', class: 'btn btn-small', onclick: onJump },
      'Jump to the latest',
    ),
  );
}

/** Shown while the contact gets protocol version 1 (an older Flame): no forward secrecy. */
export function versionBanner(peer) {
  return h(
    'div',
    { id: 'version-notice', class: 'banner banner-warning', role: 'status', hidden: true },
    h('span', { class: 'banner-text' }, `no forward secrecy with ${peer}: their Flame is older`),
  );
}

/** Shown once the session with the contact was reset (its `session_reset_at`, kept). */
export function resetBanner(peer) {
  return h(
    'div',
    { id: 'session-notice', class: 'banner', role: 'status', hidden: true },
    h(
      'span',
      { class: 'banner-text' },
      `The secure session with ${peer} was reset; messages that did not open are sent again.`,
    ),
  );
}
