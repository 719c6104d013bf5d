//! Outbox counters: atomics updated by the storage thread and the forwarder,
//! read as one plain snapshot the daemon renders at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub refused: AtomicU64,
    pub uploads: AtomicU64,
    pub pending: AtomicU64,
    pub dead_letters: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(c: &AtomicU64, n: u64) {
        c.store(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> OutboxMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OutboxMetrics {
            accepted: get(&self.accepted),
            delivered: get(&self.delivered),
            retried: get(&self.retried),
            dropped: get(&self.dropped),
            dead_lettered: get(&self.dead_lettered),
            refused: get(&self.refused),
            uploads: get(&self.uploads),
            pending: get(&self.pending),
            dead_letters: get(&self.dead_letters),
            bytes: get(&self.bytes),
        }
    }
}

/// A snapshot of the outbox. Counters count since this process opened the
/// outbox (Prometheus handles the reset on restart); gauges are read from
/// the database, so they survive restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxMetrics {
    /// Records stored by `enqueue` (an id already queued is not counted again).
    pub accepted: u64,
    /// Records the data API acknowledged (2xx), then removed from the outbox.
    pub delivered: u64,
    /// Failed attempts that will be retried (5xx, 408, 429, timeouts, refused).
    pub retried: u64,
    /// Pending records removed unsent to keep within the bound.
    pub dropped: u64,
    /// Records the data API refused for good (4xx), kept aside.
    pub dead_lettered: u64,
    /// Records `enqueue` could not store (disk full, I/O error): never
    /// accepted, so never sent.
    pub refused: u64,
    /// Images uploaded to `/media`.
    pub uploads: u64,
    /// Gauge: records waiting to be delivered.
    pub pending: u64,
    /// Gauge: dead letters kept (they count towards the bound).
    pub dead_letters: u64,
    /// Gauge: bytes held (JSON bodies and images).
    pub bytes: u64,
}

impl OutboxMetrics {
    /// Appends the Prometheus text form (`wayside_outbox_*`).
    pub fn write_prometheus(&self, out: &mut String) {
        let rows: [(&str, &str, &str, u64); 10] = [
            (
                "accepted_total",
                "counter",
                "Records accepted into the outbox.",
                self.accepted,
            ),
            (
                "delivered_total",
                "counter",
                "Records acknowledged by the data API.",
                self.delivered,
            ),
            (
                "retried_total",
                "counter",
                "Delivery attempts that failed transiently and will be retried.",
                self.retried,
            ),
            (
                "dropped_total",
                "counter",
                "Pending records dropped (oldest first) to stay within the bound.",
                self.dropped,
            ),
            (
                "dead_lettered_total",
                "counter",
                "Records refused permanently by the data API.",
                self.dead_lettered,
            ),
            (
                "refused_total",
                "counter",
                "Records that could not be stored (disk full, I/O error) and were never accepted.",
                self.refused,
            ),
            (
                "uploads_total",
                "counter",
                "Images uploaded to the data API.",
                self.uploads,
            ),
            (
                "pending",
                "gauge",
                "Records waiting for delivery.",
                self.pending,
            ),
            (
                "dead_letters",
                "gauge",
                "Dead letters kept in the outbox.",
                self.dead_letters,
            ),
            (
                "bytes",
                "gauge",
                "Bytes held by the outbox (bodies and images).",
                self.bytes,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP wayside_outbox_{name} {help}\n# TYPE wayside_outbox_{name} {kind}\nwayside_outbox_{name} {value}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let m = OutboxMetrics {
            accepted: 3,
            pending: 2,
            ..Default::default()
        };
        let mut s = String::new();
        m.write_prometheus(&mut s);
        assert!(s.contains(
            "# TYPE wayside_outbox_accepted_total counter\nwayside_outbox_accepted_total 3\n"
        ));
        assert!(s.contains("# TYPE wayside_outbox_pending gauge\nwayside_outbox_pending 2\n"));
    }
}
