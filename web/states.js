// The states an outgoing message moves through, in order: a message's state only ever moves
// forward along this list. The daemon's order is flame/core/states.py's, and a test
// (tests/core/test_states.py) reads the line below: keep it one line of single-quoted names.
export const STATE_ORDER = ['sending', 'relayed', 'sent', 'delivered', 'read'];

// States outside the list rank with one in it: a failed send with 'sending' (a retry can still
// move it on), an incoming message with 'sent'. Any other state ranks with 'sent' too.
const RANKS_AS = new Map([
  ['failed', 'sending'],
  ['received', 'sent'],
]);
const OTHER = 'sent';

/** Rank used so a stale snapshot never moves a message's state backwards. */
export function stateRank(state) {
  const rank = STATE_ORDER.indexOf(RANKS_AS.get(state) ?? state);
  return rank === -1 ? STATE_ORDER.indexOf(OTHER) : rank;
}
