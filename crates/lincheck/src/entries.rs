//! The event list the search walks: every operation's call and return as a
//! doubly linked list in time order, from which linearized operations are
//! lifted out and put back on backtracking (Lowe's "just-in-time
//! linearization" representation, as in Porcupine).
//!
//! Order: by time; at equal times calls come before returns, so operations
//! that merely touch are treated as concurrent (the permissive reading).
//! Returns of operations with unknown outcome sit after everything else
//! (time = infinity).

/// Index of the head sentinel.
pub(crate) const HEAD: usize = 0;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Index of the operation in the partition's operation list.
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
    /// For a call: the index of its return entry.
    ret: usize,
}

/// A linked list of call/return entries over a fixed arena. Index 0 is the
/// head sentinel and the last index the tail sentinel.
pub(crate) struct EntryList {
    entries: Vec<Entry>,
    tail: usize,
}

/// One endpoint of an operation's interval, before linking.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    /// `(false, t)` for a finite time `t`; `(true, _)` is infinity.
    time: (bool, u64),
    /// Calls (0) before returns (1) at the same time.
    kind: u8,
    op: usize,
}

impl EntryList {
    /// Builds the list from `(call, return)` intervals; `None` return means
    /// infinity.
    pub(crate) fn new(intervals: &[(u64, Option<u64>)]) -> Self {
        let mut events = Vec::with_capacity(intervals.len() * 2);
        for (op, &(call, ret)) in intervals.iter().enumerate() {
            events.push(Event {
                time: (false, call),
                kind: 0,
                op,
            });
            let ret_time = ret.map_or((true, u64::MAX), |t| (false, t));
            events.push(Event {
                time: ret_time,
                kind: 1,
                op,
            });
        }
        events.sort_unstable();
        Self::link(&events, intervals.len())
    }

    fn link(events: &[Event], ops: usize) -> Self {
        let tail = events.len() + 1;
        let blank = Entry {
            op: usize::MAX,
            is_call: false,
            prev: HEAD,
            next: tail,
            ret: usize::MAX,
        };
        let mut entries = vec![blank; events.len() + 2];
        let mut ret_of = vec![usize::MAX; ops];
        for (i, e) in events.iter().enumerate().rev() {
            let idx = i + 1;
            entries[idx] = Entry {
                op: e.op,
                is_call: e.kind == 0,
                prev: idx - 1,
                next: idx + 1,
                ret: usize::MAX,
            };
            if e.kind == 1 {
                ret_of[e.op] = idx;
            } else {
                entries[idx].ret = ret_of[e.op];
            }
        }
        entries[HEAD].next = 1;
        entries[tail].prev = tail - 1;
        Self { entries, tail }
    }

    pub(crate) fn first(&self) -> usize {
        self.entries[HEAD].next
    }

    pub(crate) fn next(&self, idx: usize) -> usize {
        self.entries[idx].next
    }

    pub(crate) fn is_tail(&self, idx: usize) -> bool {
        idx == self.tail
    }

    pub(crate) fn is_call(&self, idx: usize) -> bool {
        self.entries[idx].is_call
    }

    pub(crate) fn op(&self, idx: usize) -> usize {
        self.entries[idx].op
    }

    /// Unlinks call entry `call` and its return entry.
    pub(crate) fn lift(&mut self, call: usize) {
        debug_assert!(self.entries[call].is_call);
        self.unlink(call);
        self.unlink(self.entries[call].ret);
    }

    /// Relinks call entry `call` and its return; exact inverse of the last
    /// `lift` still in effect.
    pub(crate) fn unlift(&mut self, call: usize) {
        self.relink(self.entries[call].ret);
        self.relink(call);
    }

    fn unlink(&mut self, idx: usize) {
        let Entry { prev, next, .. } = self.entries[idx];
        self.entries[prev].next = next;
        self.entries[next].prev = prev;
    }

    fn relink(&mut self, idx: usize) {
        let Entry { prev, next, .. } = self.entries[idx];
        self.entries[prev].next = idx;
        self.entries[next].prev = idx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(list: &EntryList) -> Vec<(usize, bool)> {
        let mut out = vec![];
        let mut e = list.first();
        while !list.is_tail(e) {
            out.push((list.op(e), list.is_call(e)));
            e = list.next(e);
        }
        out
    }

    #[test]
    fn orders_by_time_calls_first_unknown_last() {
        let list = EntryList::new(&[(0, Some(5)), (5, None), (1, Some(2))]);
        let expect = vec![
            (0, true),
            (2, true),
            (2, false),
            (1, true),
            (0, false),
            (1, false),
        ];
        assert_eq!(walk(&list), expect);
    }

    #[test]
    fn lift_and_unlift_restore_the_list() {
        let mut list = EntryList::new(&[(0, Some(10)), (1, Some(3)), (2, Some(4))]);
        let before = walk(&list);
        let call1 = list.next(list.first());
        list.lift(call1);
        assert_eq!(
            walk(&list),
            vec![(0, true), (2, true), (2, false), (0, false)]
        );
        let first = list.first();
        list.lift(first);
        list.unlift(first);
        list.unlift(call1);
        assert_eq!(walk(&list), before);
    }
}
