// Settings: your profile (the daemon signs it and sends it to your contacts), your picture, the
// people you blocked, and what the contact list and notifications show.

import { api } from '../api.js';
import { busyButton, h, setText, showText, whileBusy } from '../dom.js';
import * as notify from '../notify.js';
import { profileHash } from '../router.js';
import * as store from '../store.js';
import { avatarElement } from './contacts.js';
import { pageHeader } from './page.js';

const FIELDS = [
  { key: 'display_name', label: 'Display name', max: 64 },
  { key: 'position', label: 'Position', max: 100 },
  { key: 'location', label: 'Location', max: 100 },
];

/** A file's bytes as standard base64 (the avatar and group picture uploads). */
export function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(',') + 1)); // the base64 after "data:...;base64,"
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export class SettingsView {
  constructor() {
    this.destroyed = false;
    const me = store.state.me ? store.state.me.username : '';
    this.inputs = {};
    const rows = FIELDS.map(({ key, label, max }) => {
      const id = `profile-${key.replace('_', '-')}`;
      this.inputs[key] = h('input', { id, class: 'input', type: 'text', maxlength: String(max) });
      return h(
        'div',
        { class: 'field' },
        h('label', { class: 'field-label', for: id }, label),
        this.inputs[key],
      );
    });
    this.inputs.bio = h('textarea', {
      id: 'profile-bio-input',
      class: 'input',
      rows: '4',
      maxlength: '1000',
    });
    rows.push(
      h(
        'div',
        { class: 'field' },
        h('label', { class: 'field-label', for: 'profile-bio-input' }, 'About you'),
        this.inputs.bio,
      ),
    );
    this.saved = h(
      'p',
      { id: 'profile-saved', class: 'muted', role: 'status', hidden: true },
      'Saved and sent to your contacts.',
    );
    this.error = h('p', { id: 'profile-error', class: 'form-error', role: 'alert', hidden: true });
    this.save = busyButton(
      { id: 'profile-save', type: 'submit', class: 'btn btn-primary' },
      'Save profile',
    );
    const form = h(
      'form',
      { id: 'profile-form', class: 'settings-form', novalidate: true },
      ...rows,
      this.error,
      h('div', { class: 'settings-actions' }, this.save.el, this.saved),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this._save();
    });

    this.avatar = avatarElement(me, 'avatar-xl');
    this.avatarInput = h('input', {
      id: 'avatar-input',
      type: 'file',
      accept: 'image/png,image/jpeg,image/webp,image/gif',
      class: 'visually-hidden',
      onchange: () => this._upload(),
    });
    this.avatarError = h('p', {
      id: 'avatar-error',
      class: 'form-error',
      role: 'alert',
      hidden: true,
    });
    this.removeBtn = h(
      'button',
      {
        id: 'avatar-remove',
        type: 'button',
        class: 'btn btn-small',
        onclick: () => this._removeAvatar(),
      },
      'Remove picture',
    );

    this.showBlocked = h('input', {
      id: 'show-blocked',
      type: 'checkbox',
      checked: store.state.showBlocked,
      onchange: () => store.setShowBlocked(this.showBlocked.checked),
    });
    this.notify = h('input', {
      id: 'notify',
      type: 'checkbox',
      checked: notify.notificationsOn(),
      onchange: () => notify.setNotificationsOn(this.notify.checked),
    });
    this.notifyPreview = h('input', {
      id: 'notify-preview',
      type: 'checkbox',
      checked: notify.previewsShown(),
      onchange: () => notify.setPreviewsShown(this.notifyPreview.checked),
    });
    this.desktopText = h('span', { id: 'notify-desktop-state', class: 'muted' });
    this.desktopButton = h(
      'button',
      {
        id: 'notify-desktop',
        type: 'button',
        class: 'btn btn-small',
        onclick: () => notify.askPermission(),
      },
      'Allow desktop notifications',
    );
    this.readReceipts = h('input', {
      id: 'read-receipts',
      type: 'checkbox',
      checked: true,
      disabled: true,
      onchange: async () => {
        const wanted = this.readReceipts.checked;
        this.readReceipts.disabled = true;
        try {
          const saved = await api.saveSettings({ read_receipts: wanted });
          this.readReceipts.checked = saved.read_receipts;
        } catch (err) {
          this.readReceipts.checked = !wanted;
          showText(this.error, err.message);
        } finally {
          this.readReceipts.disabled = false;
        }
      },
    });
    this.blockedList = h('ul', { id: 'blocked-list', class: 'blocked-list' });
    this.blockedEmpty = h('p', { class: 'muted', hidden: true }, 'You have not blocked anyone.');

    this.el = h(
      'section',
      { id: 'settings', class: 'settings-page', 'aria-labelledby': 'settings-title' },
      pageHeader(
        h('h2', { id: 'settings-title', class: 'profile-name' }, 'Settings'),
        h('a', { class: 'btn btn-small', href: profileHash(me) }, 'See your profile'),
      ),
      h('h3', { class: 'settings-heading' }, 'Your profile'),
      h(
        'div',
        { class: 'avatar-row' },
        this.avatar.el,
        h('label', { class: 'btn btn-small', for: 'avatar-input' }, 'Choose a picture…'),
        this.avatarInput,
        this.removeBtn,
      ),
      this.avatarError,
      form,
      h('h3', { class: 'settings-heading' }, 'Blocked people'),
      h(
        'p',
        { class: 'muted' },
        'Blocked people cannot write to you or fetch your profile, and are not told why.',
      ),
      this.blockedEmpty,
      this.blockedList,
      h(
        'label',
        { class: 'check-row' },
        this.showBlocked,
        ' Show blocked people in the contact list',
      ),
      h('h3', { class: 'settings-heading' }, 'Notifications'),
      h(
        'label',
        { class: 'check-row' },
        this.notify,
        ' Notify me of new messages (never while I am busy)',
      ),
      h(
        'label',
        { class: 'check-row' },
        this.notifyPreview,
        ' Show what the message says (off: only who wrote)',
      ),
      h('p', { class: 'check-row' }, this.desktopText, this.desktopButton),
      h('h3', { class: 'settings-heading' }, 'Privacy'),
      h(
        'label',
        { class: 'check-row' },
        this.readReceipts,
        ' Send read receipts (others see when you have read their messages)',
      ),
    );
    this._unsubs = [
      store.on('profile', (view) => view?.is_me && this._fill(view)),
      notify.onChange(() => this._renderDesktop()),
    ];
    this._renderDesktop();
  }

  _renderDesktop() {
    const state = notify.permission();
    const texts = {
      granted: 'Desktop notifications are on while Flame is in the background.',
      denied: "This browser blocks Flame's desktop notifications (see its site settings).",
      default: 'Desktop notifications are off.',
      unsupported: 'This browser cannot show desktop notifications.',
    };
    setText(this.desktopText, texts[state]);
    this.desktopButton.hidden = state !== 'default';
    this.notify.checked = notify.notificationsOn();
    this.notifyPreview.checked = notify.previewsShown();
  }

  async load() {
    try {
      const [profile, blocked, settings] = await Promise.all([
        api.myProfile(),
        api.blocks(),
        api.settings(),
      ]);
      if (this.destroyed) return;
      this.readReceipts.checked = settings.read_receipts;
      this.readReceipts.disabled = false;
      store.applyProfile(profile);
      this._fill(profile);
      this._renderBlocked(blocked.blocked || []);
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      showText(this.error, err.message);
    }
  }

  _fill(view) {
    for (const { key } of FIELDS) this.inputs[key].value = view[key] || '';
    this.inputs.bio.value = view.bio || '';
    this.avatar.update(view.avatar_url, view.display_name || view.username);
    this.removeBtn.hidden = !view.avatar_url;
  }

  _renderBlocked(list) {
    this.blockedList.replaceChildren(
      ...list.map(({ username }) => {
        const btn = h('button', { type: 'button', class: 'btn btn-small' }, 'Unblock');
        const li = h(
          'li',
          { class: 'blocked-item', 'data-blocked-user': username },
          h('a', { href: profileHash(username) }, store.displayLabel(username)),
          btn,
        );
        btn.addEventListener('click', async () => {
          btn.disabled = true;
          try {
            await api.unblock(username);
            store.applyBlocked(username, false);
            li.remove();
            this.blockedEmpty.hidden = this.blockedList.children.length > 0;
          } catch (err) {
            btn.disabled = false;
            showText(this.error, err.message);
          }
        });
        return li;
      }),
    );
    this.blockedEmpty.hidden = list.length > 0;
  }

  async _save() {
    if (this.save.el.disabled) return;
    await whileBusy(this.save, async () => {
      this.error.hidden = true;
      this.saved.hidden = true;
      const fields = { bio: this.inputs.bio.value };
      for (const { key } of FIELDS) fields[key] = this.inputs[key].value.trim();
      try {
        const view = await api.saveProfile(fields);
        store.applyProfile(view);
        if (!this.destroyed) this.saved.hidden = false;
      } catch (err) {
        if (this.destroyed || err.status === 401) return;
        showText(this.error, err.message);
      }
    });
  }

  async _upload() {
    const file = this.avatarInput.files?.[0];
    if (!file) return;
    this.avatarError.hidden = true;
    try {
      const view = await api.saveAvatar(await readFile(file));
      store.applyProfile(view);
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      showText(this.avatarError, err.message);
    } finally {
      this.avatarInput.value = '';
    }
  }

  async _removeAvatar() {
    try {
      store.applyProfile(await api.saveAvatar(null));
    } catch (err) {
      showText(this.avatarError, err.message);
    }
  }

  destroy() {
    this.destroyed = true;
    for (const u of this._unsubs) u();
  }
}
