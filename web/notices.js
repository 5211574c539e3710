// Which new message deserves a notice, and where: in the page while the user looks at it (one
// per conversation, views/toasts.js), on the desktop otherwise (notify.js, if allowed), never
// while its conversation is on screen, never while busy (busy mutes), never from someone blocked.

import * as notify from './notify.js';
import { conversationHash, groupHash, navigate } from './router.js';
import * as store from './store.js';

const PREVIEW_MAX = 140;

/** What a notice says of a message: its text (or file and caption), or null when the user
 * hides previews. */
function noticePreview(m) {
  if (!notify.previewsShown()) return null;
  const text = m.kind === 'file_offer' ? `File: ${m.file?.name ?? 'file'}` : (m.text ?? '');
  const caption = m.kind === 'file_offer' && m.text ? ` — ${m.text}` : '';
  const line = `${text}${caption}`.replace(/\s+/g, ' ').trim();
  return line.length > PREVIEW_MAX ? `${line.slice(0, PREVIEW_MAX)}…` : line;
}

/** A live `message`: toasts is the page's Toasts, openPeer the conversation open (or null). */
export function notifyOf(m, { toasts, openPeer }) {
  if (m.direction !== 'in') return;
  if (store.state.myStatus.choice === 'busy' || !notify.notificationsOn()) return;
  if (store.state.contacts.get(m.peer)?.blocked) return;
  const looking = document.visibilityState === 'visible';
  if (looking && openPeer === m.peer) return; // seen where it lands
  const who = store.displayLabel(m.peer);
  const preview = noticePreview(m);
  const href = conversationHash(m.peer);
  if (looking && document.hasFocus()) {
    toasts.show({
      key: m.peer,
      title: (n) => (n === 1 ? `New message from ${who}` : `${n} new messages from ${who}`),
      preview,
      href,
    });
    return;
  }
  const desktop = notify.showDesktop({
    title: who,
    body: preview ?? 'New message',
    tag: `flame-${m.peer}`,
    onClick: () => navigate(href),
  });
  if (!desktop)
    toasts.show({ key: m.peer, title: () => `New messages from ${who}`, preview, href });
}

/** A live group message while its group is not open: as `notifyOf`, one notice per group. */
export function notifyOfGroup(group, m, toasts) {
  if (m.direction !== 'in') return;
  if (store.state.myStatus.choice === 'busy' || !notify.notificationsOn()) return;
  if (store.state.contacts.get(m.author)?.blocked) return;
  const who = store.displayLabel(m.author);
  const text = noticePreview(m.file ? { kind: 'file_offer', file: m.file, text: m.text } : m);
  const preview = text === null ? null : `${who}: ${text}`;
  const href = groupHash(group.id);
  const key = `group:${group.id}`;
  const title = (n) =>
    n === 1 ? `New message in ${group.name}` : `${n} new messages in ${group.name}`;
  if (document.visibilityState === 'visible' && document.hasFocus()) {
    toasts.show({ key, title, preview, href });
    return;
  }
  const desktop = notify.showDesktop({
    title: group.name,
    body: preview ?? 'New message',
    tag: `flame-${key}`,
    onClick: () => navigate(href),
  });
  if (!desktop) toasts.show({ key, title, preview, href });
}

/** An `action_failed` while its conversation is not on screen: a notice that leads there. */
export function noticeOfFailedAction(evt, toasts) {
  const who = store.displayLabel(evt.peer);
  toasts.show({
    key: `failed:${evt.peer}`,
    title: () => `A change to a message for ${who} failed`,
    preview: evt.error ?? null,
    href: conversationHash(evt.peer),
  });
}
