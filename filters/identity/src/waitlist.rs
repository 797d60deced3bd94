//! Requests paused until the provider is loaded (or its keys refreshed), bounded in number
//! and in time: past either bound a request is answered 503 rather than held forever.

/// One waiting request.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiter<T> {
    /// The request's context id.
    pub id: u32,
    /// When it must be answered anyway (milliseconds).
    pub deadline_ms: u64,
    /// What to do with it when resumed.
    pub resume: T,
}

/// The waiting requests of one plugin instance.
#[derive(Debug, Clone)]
pub struct WaitList<T> {
    waiters: Vec<Waiter<T>>,
    capacity: usize,
    max_wait_ms: u64,
}

/// The list is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests waiting for the identity provider")]
pub struct Full;

impl<T> WaitList<T> {
    /// A list of at most `capacity` requests, each waiting at most `max_wait_ms`.
    pub fn new(capacity: usize, max_wait_ms: u64) -> WaitList<T> {
        WaitList {
            waiters: Vec::new(),
            capacity,
            max_wait_ms,
        }
    }

    /// Adds a request (replacing an earlier entry of the same context).
    pub fn push(&mut self, id: u32, now_ms: u64, resume: T) -> Result<(), Full> {
        self.remove(id);
        if self.waiters.len() >= self.capacity {
            return Err(Full);
        }
        self.waiters.push(Waiter {
            id,
            deadline_ms: now_ms.saturating_add(self.max_wait_ms),
            resume,
        });
        Ok(())
    }

    /// Forgets a request (it ended while waiting).
    pub fn remove(&mut self, id: u32) -> Option<Waiter<T>> {
        let at = self.waiters.iter().position(|w| w.id == id)?;
        Some(self.waiters.remove(at))
    }

    /// Takes every request whose deadline has passed.
    pub fn expired(&mut self, now_ms: u64) -> Vec<Waiter<T>> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| now_ms >= w.deadline_ms);
        self.waiters = kept;
        gone
    }

    /// Takes the requests `ready` says can go on, keeping the others (and their deadlines).
    pub fn take_ready(&mut self, ready: impl Fn(&T) -> bool) -> Vec<Waiter<T>> {
        let (go, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| ready(&w.resume));
        self.waiters = kept;
        go
    }

    /// Takes every request.
    pub fn drain(&mut self) -> Vec<Waiter<T>> {
        std::mem::take(&mut self.waiters)
    }

    /// Number waiting.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_bounded_in_number() {
        let mut w = WaitList::new(2, 1000);
        assert_eq!(w.push(1, 0, ()), Ok(()));
        assert_eq!(w.push(2, 0, ()), Ok(()));
        assert_eq!(w.push(3, 0, ()), Err(Full));
        assert_eq!(w.push(2, 5, ()), Ok(()), "same context replaces");
    }

    #[test]
    fn the_list_is_bounded_in_time() {
        let mut w = WaitList::new(10, 1000);
        w.push(1, 0, "a").expect("room");
        w.push(2, 500, "b").expect("room");
        let gone: Vec<u32> = w.expired(1000).into_iter().map(|x| x.id).collect();
        assert_eq!(gone, vec![1]);
        assert_eq!(w.len(), 1);
        assert!(w.remove(2).is_some());
        assert!(w.is_empty());
    }

    #[test]
    fn ready_requests_leave_and_the_others_keep_their_deadline() {
        let mut w = WaitList::new(10, 1000);
        w.push(1, 0, "keys").expect("room");
        w.push(2, 0, "provider").expect("room");
        let go: Vec<u32> = w
            .take_ready(|r| *r == "provider")
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(go, vec![2]);
        assert_eq!(w.expired(1000).len(), 1, "deadline unchanged");
        assert!(w.drain().is_empty());
    }
}
