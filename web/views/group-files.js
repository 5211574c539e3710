// Files in a group's conversation (docs/UI_API.md, "Group files"): the composer's attach
// button (announce, then stream the bytes: the daemon offers the file to every member) and the
// card each member sees in the message, with its state and progress, and the file once whole.

import { groupFileApi } from '../api.js';
import { h, setText } from '../dom.js';
import { formatBytes, progressText } from '../format.js';
import * as store from '../store.js';

/** The attach control: a file input behind a button; `send(file)` does the rest. */
export function attachControl(send) {
  const input = h('input', {
    id: 'group-attach-input',
    type: 'file',
    class: 'visually-hidden',
    'aria-label': 'File to send to the group',
  });
  input.addEventListener('change', () => {
    const file = input.files?.[0];
    input.value = '';
    if (file) send(file);
  });
  const label = h(
    'label',
    {
      class: 'btn btn-small',
      for: 'group-attach-input',
      id: 'group-attach',
      title: 'Attach a file',
    },
    'Attach',
    input,
  );
  return label;
}

/** Announce and upload `file` to the group; returns the GroupMessage. */
export async function sendGroupFile(groupId, file, onStarted) {
  const { file: announced } = await groupFileApi.announce(groupId, file);
  onStarted?.(announced);
  const { message } = await groupFileApi.upload(groupId, announced.transfer_id, file);
  return message;
}

const STATE_TEXT = {
  uploading: 'Uploading…',
  waiting: 'Waiting…',
  sending: 'Sending…',
  receiving: 'Receiving…',
  complete: '',
  cancelled: 'Cancelled',
  declined: 'Declined',
  failed: 'Failed',
};

/** The card of a group message's file; `update(file)` and `progress(evt)` follow it live. */
export class GroupFileCard {
  constructor(groupId, file) {
    this.groupId = groupId;
    this.file = file;
    this.name = h('span', { class: 'file-name' }, file.name);
    this.size = h('span', { class: 'muted' }, ` ${formatBytes(file.size)}`);
    this.state = h('span', { class: 'group-file-state', 'data-file-state': file.state });
    this.bar = h('progress', { class: 'group-file-progress', max: String(file.size), value: '0' });
    this.actions = h('span', { class: 'group-file-actions' });
    this.el = h(
      'div',
      { class: 'group-file', 'data-transfer': file.transfer_id },
      h('div', null, this.name, this.size),
      this.bar,
      h('div', { class: 'message-meta' }, this.state, this.actions),
    );
    this.update(file);
  }

  update(file) {
    if (file.transfer_id !== this.file.transfer_id) return;
    this.file = file;
    this.state.dataset.fileState = file.state;
    setText(
      this.state,
      file.error && file.state !== 'complete'
        ? `${STATE_TEXT[file.state] || file.state}: ${file.error}`
        : STATE_TEXT[file.state] || file.state,
    );
    const whole = file.state === 'complete';
    this.bar.hidden =
      whole || !['uploading', 'receiving', 'waiting', 'sending'].includes(file.state);
    this.bar.value = String(whole ? file.size : file.bytes);
    const me = store.state.me?.username;
    const author = file.peer;
    const links = [];
    if (whole) {
      links.push(
        h(
          'a',
          {
            class: 'btn-link group-file-download',
            href: groupFileApi.contentUrl(this.groupId, author, file.transfer_id, true),
            download: file.name,
          },
          'Download',
        ),
      );
    }
    if (author === me && (whole || file.state === 'waiting')) {
      links.push(this._button('Cancel', () => groupFileApi.cancel(this.groupId, file.transfer_id)));
    } else if (author !== me && file.state === 'receiving') {
      links.push(
        this._button('Decline', () => groupFileApi.decline(this.groupId, author, file.transfer_id)),
      );
    }
    this.actions.replaceChildren(...links);
  }

  _button(label, act) {
    return h(
      'button',
      {
        type: 'button',
        class: 'btn-link',
        onclick: async () => {
          try {
            const { file } = await act();
            this.update(file);
          } catch (err) {
            setText(this.state, err.message);
          }
        },
      },
      label,
    );
  }

  /** A `file_progress` event of this file. */
  progress(evt) {
    this.bar.hidden = false;
    this.bar.value = String(evt.bytes);
    setText(this.state, progressText(evt, this.file.size));
  }
}
