// The lightbox: a picture shown large over the page (one dialog per page, made on first use),
// with its name, a download button and Close; Esc closes it too (a modal dialog's own cancel).

import { h, setText } from '../../dom.js';

let lightbox = null;

/** Show the picture at src, named name, over the page; downloadUrl saves it. */
export function openLightbox(src, name, downloadUrl) {
  if (!lightbox) {
    const img = h('img', { class: 'lightbox-image', alt: '' });
    const caption = h('p', { class: 'lightbox-caption' });
    const download = h(
      'a',
      { id: 'lightbox-download', class: 'btn btn-small btn-primary', href: '#', download: '' },
      'Download',
    );
    const close = h('button', { type: 'button', class: 'btn btn-small lightbox-close' }, 'Close');
    lightbox = h(
      'dialog',
      { class: 'lightbox', id: 'lightbox', 'aria-label': 'Picture' },
      img,
      caption,
      h('div', { class: 'lightbox-actions' }, download, close),
    );
    close.addEventListener('click', () => lightbox.close());
    lightbox.addEventListener('click', (ev) => {
      if (ev.target === lightbox || ev.target === img) lightbox.close();
    });
    Object.assign(lightbox, { img, caption, download });
    document.body.appendChild(lightbox);
  }
  lightbox.img.setAttribute('src', src);
  lightbox.img.setAttribute('alt', name);
  lightbox.download.setAttribute('href', downloadUrl);
  lightbox.download.setAttribute('download', name);
  lightbox.download.setAttribute('aria-label', `Download ${name}`);
  setText(lightbox.caption, name);
  if (!lightbox.open) lightbox.showModal();
}
