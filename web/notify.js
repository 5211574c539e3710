// Desktop notifications: the browser's permission (asked for only when the user presses a button,
// never on load), the user's two settings (notify at all; show the message's text), and showing
// one. Which message deserves a notice, and where, is notices.js's.

const ENABLED_KEY = 'flame.notify';
const PREVIEW_KEY = 'flame.notifyPreview';
const DISMISSED_KEY = 'flame.notifyAskDismissed';

function read(key, fallback) {
  try {
    const value = localStorage.getItem(key);
    return value === null ? fallback : value === '1';
  } catch {
    return fallback;
  }
}

function write(key, on) {
  try {
    localStorage.setItem(key, on ? '1' : '0');
  } catch {
    /* storage refused: the setting lasts for this page only */
  }
}

const listeners = new Set();

/** fn() whenever the permission or a setting changes (the banner and the settings page). */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed() {
  for (const fn of [...listeners]) fn();
}

/** Notices of new messages at all (in the page and on the desktop); on unless turned off. */
export function notificationsOn() {
  return read(ENABLED_KEY, true);
}

export function setNotificationsOn(on) {
  write(ENABLED_KEY, on);
  changed();
}

/** Whether a notice shows the message's text, or only who wrote. */
export function previewsShown() {
  return read(PREVIEW_KEY, true);
}

export function setPreviewsShown(on) {
  write(PREVIEW_KEY, on);
  changed();
}

export function desktopSupported() {
  return typeof window.Notification === 'function';
}

/** 'granted', 'denied', 'default' (not asked yet) or 'unsupported'. */
export function permission() {
  return desktopSupported() ? Notification.permission : 'unsupported';
}

/** The banner asks until the user answers it or says "not now". */
export function shouldOffer() {
  return notificationsOn() && permission() === 'default' && !read(DISMISSED_KEY, false);
}

export function dismissOffer() {
  write(DISMISSED_KEY, true);
  changed();
}

/** Ask the browser (only ever from a button the user pressed). Resolves to the permission. */
export async function askPermission() {
  if (!desktopSupported()) return 'unsupported';
  try {
    await Notification.requestPermission();
  } catch {
    /* an old browser's callback form, or refused outright: the permission says which */
  }
  changed();
  return permission();
}

/** A notice on the desktop; a click brings the page forward and runs onClick. One per tag: a
 * newer message of the same conversation replaces the older notice. */
export function showDesktop({ title, body, tag, onClick }) {
  if (permission() !== 'granted') return null;
  let notice;
  try {
    notice = new Notification(title, { body, tag, renotify: true });
  } catch {
    return null; // some browsers allow notices only from a service worker
  }
  notice.onclick = () => {
    window.focus();
    notice.close();
    onClick();
  };
  return notice;
}
