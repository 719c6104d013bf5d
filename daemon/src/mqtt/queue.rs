//! The messages waiting for the broker: bounded, oldest dropped first. A
//! box whose broker is away for a day keeps the last `capacity` windows
//! rather than its memory filling up; the drops are counted.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Appends `item`; returns how many old items went to make room.
    pub fn push(&mut self, item: T) -> usize {
        self.items.push_back(item);
        self.trim()
    }

    /// Puts `items` (older than anything queued, e.g. unacknowledged when
    /// the connection dropped) back at the front, in order; returns how
    /// many of the oldest went to stay within the bound.
    pub fn requeue(&mut self, items: impl DoubleEndedIterator<Item = T>) -> usize {
        for item in items.rev() {
            self.items.push_front(item);
        }
        self.trim()
    }

    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn trim(&mut self) -> usize {
        let over = self.items.len().saturating_sub(self.capacity);
        self.items.drain(..over);
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_oldest_past_the_bound_and_requeues_in_front() {
        let mut q = BoundedQueue::new(3);
        assert_eq!(q.push(1) + q.push(2) + q.push(3), 0);
        assert_eq!(q.push(4), 1);
        assert_eq!(q.pop(), Some(2));
        // 0 and 1 were in flight when the connection dropped: older than 3.
        assert_eq!(q.requeue([0, 1].into_iter()), 1);
        let rest: Vec<i32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, vec![1, 3, 4]);
        assert_eq!(q.len(), 0);
    }
}
