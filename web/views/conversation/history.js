// Which messages the timeline shows: the newest page, older pages on demand, the page around one
// message (a search hit), and what a reconnect missed.

import { api } from '../../api.js';
import { whileBusy } from '../../dom.js';
import { compareMessages } from '../../format.js';

const PAGE_SIZE = 50;

export class History {
  /**
   * target: a message id to open at (or null); anchorBar: shown while an older page is shown;
   * onError(text): a page that could not load, said in the composer's error line.
   */
  constructor(peer, timeline, { target = null, anchorBar, onError }) {
    this.peer = peer;
    this.timeline = timeline;
    this.target = target;
    this.anchorBar = anchorBar;
    this.onError = onError;
    this.hasNewer = false; // showing an older page: newer messages are not loaded
    this.nextBefore = null;
    this.loadingOlder = false;
    this.destroyed = false;
  }

  destroy() {
    this.destroyed = true;
  }

  _setNextBefore(nextBefore) {
    this.nextBefore = nextBefore ?? null;
    this.timeline.setHasOlder(this.nextBefore !== null);
  }

  async load() {
    const t = this.timeline;
    if (this.target && !t.loaded) {
      await this.loadAround(this.target);
      return;
    }
    t.setLoading(true);
    t.setBusy(true);
    t.setLoadError(null);
    try {
      const res = await api.messages(this.peer, { limit: PAGE_SIZE });
      if (this.destroyed) return;
      t.loaded = true;
      t.merge(res.messages);
      this._setNextBefore(res.next_before);
      t.scrollToBottom();
      this._markShown(res.messages);
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      t.setLoadError(err, () => this.load());
    } finally {
      if (!this.destroyed) {
        t.setLoading(false);
        t.setBusy(false);
      }
    }
  }

  /** The newest page is on screen: the user has seen it (read receipts, if on). Reading the
   * history changes nothing by itself; this says how far the page showed: up to the incoming
   * message stored last (the daemon counts in the order it stored them, and one written earlier
   * may have arrived after one written later). */
  _markShown(messages) {
    const shown = Array.isArray(messages) ? messages : [];
    let last = null;
    for (const m of shown) {
      if (m.direction === 'in' && (!last || Number(m.received_at) >= Number(last.received_at))) {
        last = m;
      }
    }
    if (last) api.markRead(this.peer, last.id).catch(() => {});
  }

  /** Open at one message (a search hit): the page around it, the message marked. */
  async loadAround(target) {
    const t = this.timeline;
    t.setLoading(true);
    t.setLoadError(null);
    try {
      const res = await api.context(this.peer, target);
      if (this.destroyed) return;
      t.loaded = true;
      t.merge(res.messages);
      this._setNextBefore(res.next_before);
      this.hasNewer = Boolean(res.has_newer);
      this.anchorBar.hidden = !this.hasNewer;
      t.showTarget(target);
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      t.setLoadError(err, () => this.loadAround(target));
    } finally {
      if (!this.destroyed) t.setLoading(false);
    }
  }

  /** Show one message (a reply's quote): marked where it is shown, else the page around it is
   * loaded in place of what is shown, as a search hit opens (PROTOCOL.md §17.1). */
  async jumpTo(id) {
    if (this.timeline.reveal(id)) return;
    this.timeline.clear();
    this._setNextBefore(null);
    await this.loadAround(id);
  }

  /** Leave an older page for the newest messages. */
  async jumpToLatest() {
    this.hasNewer = false;
    this.anchorBar.hidden = true;
    this.timeline.clear();
    await this.load();
  }

  async loadOlder() {
    if (this.loadingOlder || this.nextBefore === null) return;
    const t = this.timeline;
    this.loadingOlder = true;
    t.setBusy(true);
    try {
      await whileBusy(
        t.older,
        async () => {
          const res = await api.messages(this.peer, { before: this.nextBefore, limit: PAGE_SIZE });
          if (this.destroyed) return;
          t.prepend(res.messages);
          this._setNextBefore(res.next_before);
        },
        'Loading…',
      );
    } catch (err) {
      if (this.destroyed || err.status === 401) return;
      this.onError(`Could not load older messages: ${err.message}`);
    } finally {
      this.loadingOlder = false;
      t.setBusy(false);
    }
  }

  /** After a reconnect: fetch the newest page and merge it (no duplicates). */
  async resync() {
    if (this.hasNewer) return; // an older page: nothing newer is shown to stitch to
    const t = this.timeline;
    if (!t.loaded) {
      await this.load();
      return;
    }
    let res;
    try {
      res = await api.messages(this.peer, { limit: PAGE_SIZE });
    } catch {
      return;
    }
    if (this.destroyed) return;
    const page = Array.isArray(res.messages) ? res.messages : [];
    const newest = t.newest();
    const gap =
      res.next_before !== null &&
      res.next_before !== undefined &&
      page.length > 0 &&
      newest !== null &&
      !page.some((m) => t.has(m.id)) &&
      compareMessages(page[0], newest) > 0;
    const stick = t.nearBottom();
    if (gap) {
      // Too much was missed to stitch the pages together: start over from this page.
      t.clear();
      this.nextBefore = res.next_before;
      t.setHasOlder(true);
    }
    t.merge(page);
    if (stick || gap) t.scrollToBottom();
  }
}
