// The conversation's banners: "you blocked them", "you are looking at older messages", "no
// forward secrecy" (their Flame speaks only protocol version 1) and "the session was reset"
// (PROTOCOL.md §14.2, §14.9), and "their key changed recently" (§18.6).

import { h, setText } from '../../dom.js';
import { formatFull, keyChangedText } from '../../format.js';
import { profileHash } from '../../router.js';

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

/** Shown while the key log says the contact's key changed recently (and it is accepted). */
export function keyHistoryBanner(peer) {
  const text = h('span', { class: 'banner-text' });
  const el = h(
    'div',
    { id: 'key-history-notice', class: 'banner banner-warning', role: 'status', hidden: true },
    text,
    h('a', { class: 'btn btn-small', href: profileHash(peer) }, 'Key history'),
  );
  return {
    el,
    render(c) {
      const at = c && !c.key_changed ? c.key_changed_at : null;
      el.hidden = at === null || at === undefined;
      if (!el.hidden) {
        setText(
          text,
          `${peer}'s ${keyChangedText(at)} (${formatFull(at)}): compare the safety number with ` +
            'them before you trust it.',
        );
      }
    },
  };
}
