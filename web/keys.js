// The page's keyboard shortcuts: Ctrl+K (⌘K) or / opens the quick switcher, Alt+↑ and Alt+↓ go
// to the conversation above or below in the contact list. Esc closes dialogs and the lightbox by
// itself (they are modal <dialog>s). While a dialog is open, its keys are its own.

function isTyping(target) {
  if (!(target instanceof Element)) return false;
  return target.matches('input, textarea, select, [contenteditable=""], [contenteditable="true"]');
}

/** enabled(): signed in; openSwitcher(); move(delta): the next (+1) or previous (-1) one. */
export function installShortcuts({ enabled, openSwitcher, move }) {
  document.addEventListener('keydown', (ev) => {
    if (!enabled() || ev.defaultPrevented || document.querySelector('dialog[open]')) return;
    const key = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && key.toLowerCase() === 'k') {
      ev.preventDefault();
      openSwitcher();
    } else if (key === '/' && !ev.ctrlKey && !ev.metaKey && !ev.altKey && !isTyping(ev.target)) {
      ev.preventDefault();
      openSwitcher();
    } else if (ev.altKey && !ev.ctrlKey && (key === 'ArrowUp' || key === 'ArrowDown')) {
      ev.preventDefault();
      move(key === 'ArrowDown' ? 1 : -1);
    }
  });
}
