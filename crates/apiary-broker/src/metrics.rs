//! Broker counters, rendered in the Prometheus text format.
//!
//! Plain atomics: the publish path touches them per message, so no locks there. Per-channel
//! counters are looked up once per connection and channel and then cached by the caller.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::session::Refusal;

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Messages published to the channel.
    pub messages_in: AtomicU64,
    /// Payload bytes published to the channel.
    pub bytes_in: AtomicU64,
    /// Copies queued to TCP subscribers.
    pub messages_out: AtomicU64,
    /// Copies dropped because a subscriber's queue was full.
    pub drops: AtomicU64,
}

/// Reasons a frame was rejected at the framing layer.
#[derive(Debug, Clone, Copy)]
pub enum FrameRejection {
    /// Length field below 5.
    ShortLength,
    /// Length above the configured limit.
    TooLarge,
    /// Unknown opcode.
    UnknownOpcode,
    /// Body does not match its opcode's layout.
    Malformed,
}

const REFUSALS: [Refusal; 7] = [
    Refusal::AuthFailed,
    Refusal::NotAuthFirst,
    Refusal::IdentMismatch,
    Refusal::PublishDenied,
    Refusal::SubscribeDenied,
    Refusal::Reauth,
    Refusal::Unexpected,
];

/// All broker counters.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicI64,
    /// Authenticated connections open now.
    pub authenticated_open: AtomicI64,
    /// Connections refused because a connection limit was reached.
    pub connections_refused: AtomicU64,
    /// Connections closed because no AUTH arrived in time.
    pub auth_timeouts: AtomicU64,
    /// Subscribers disconnected for staying full.
    pub slow_disconnects: AtomicU64,
    /// Connections closed because their ident was removed or changed.
    pub ident_kicks: AtomicU64,
    /// Messages handed to in-process consumers.
    pub internal_delivered: AtomicU64,
    /// Times a publisher had to wait for an in-process consumer (backpressure).
    pub internal_waits: AtomicU64,
    refusals: [AtomicU64; 7],
    rejections: [AtomicU64; 4],
    channels: RwLock<HashMap<Bytes, Arc<ChannelStats>>>,
}

impl BrokerMetrics {
    /// Counts a protocol refusal.
    pub fn refused(&self, r: Refusal) {
        if let Some(i) = REFUSALS.iter().position(|x| *x == r) {
            if let Some(c) = self.refusals.get(i) {
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Count of one refusal kind.
    pub fn refusal_count(&self, r: Refusal) -> u64 {
        REFUSALS
            .iter()
            .position(|x| *x == r)
            .and_then(|i| self.refusals.get(i))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Counts a rejected frame.
    pub fn rejected(&self, r: FrameRejection) {
        if let Some(c) = self.rejections.get(r as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Total frames rejected at the framing layer.
    pub fn rejected_total(&self) -> u64 {
        self.rejections.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The counters of `channel`, created on first use.
    pub fn channel(&self, channel: &Bytes) -> Arc<ChannelStats> {
        if let Some(s) = self.channels.read().get(channel) {
            return s.clone();
        }
        self.channels
            .write()
            .entry(channel.clone())
            .or_default()
            .clone()
    }

    /// Appends the Prometheus text exposition of every counter to `out`.
    pub fn render(&self, out: &mut String) {
        let g = |out: &mut String, name: &str, kind: &str, help: &str, v: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let c = |a: &AtomicU64| a.load(Relaxed) as i64;
        g(
            out,
            "apiary_broker_connections_total",
            "counter",
            "Connections accepted.",
            c(&self.connections_total),
        );
        g(
            out,
            "apiary_broker_connections_open",
            "gauge",
            "Connections open.",
            self.connections_open.load(Relaxed),
        );
        g(
            out,
            "apiary_broker_authenticated_connections",
            "gauge",
            "Authenticated connections open.",
            self.authenticated_open.load(Relaxed),
        );
        g(
            out,
            "apiary_broker_connections_refused_total",
            "counter",
            "Connections refused at a connection limit.",
            c(&self.connections_refused),
        );
        g(
            out,
            "apiary_broker_auth_timeouts_total",
            "counter",
            "Connections closed for not authenticating in time.",
            c(&self.auth_timeouts),
        );
        g(
            out,
            "apiary_broker_slow_subscriber_disconnects_total",
            "counter",
            "Subscribers disconnected for staying full.",
            c(&self.slow_disconnects),
        );
        g(
            out,
            "apiary_broker_ident_kicks_total",
            "counter",
            "Connections closed because their ident was removed or changed.",
            c(&self.ident_kicks),
        );
        g(
            out,
            "apiary_broker_internal_delivered_total",
            "counter",
            "Messages handed to in-process consumers.",
            c(&self.internal_delivered),
        );
        g(
            out,
            "apiary_broker_internal_backpressure_waits_total",
            "counter",
            "Times a publisher waited for an in-process consumer.",
            c(&self.internal_waits),
        );

        out.push_str("# HELP apiary_broker_refusals_total Protocol refusals (errors sent to clients).\n# TYPE apiary_broker_refusals_total counter\n");
        for (r, n) in REFUSALS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "apiary_broker_refusals_total{{reason=\"{}\"}} {}",
                r.label(),
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP apiary_broker_frames_rejected_total Frames rejected at the framing layer.\n# TYPE apiary_broker_frames_rejected_total counter\n");
        for (label, n) in ["short_length", "too_large", "unknown_opcode", "malformed"]
            .iter()
            .zip(&self.rejections)
        {
            let _ = writeln!(
                out,
                "apiary_broker_frames_rejected_total{{reason=\"{label}\"}} {}",
                n.load(Relaxed)
            );
        }
        let channels = self.channels.read();
        let mut names: Vec<&Bytes> = channels.keys().collect();
        names.sort();
        for (metric, help, pick) in [
            (
                "apiary_broker_messages_in_total",
                "Messages published per channel.",
                0,
            ),
            (
                "apiary_broker_bytes_in_total",
                "Payload bytes published per channel.",
                1,
            ),
            (
                "apiary_broker_messages_out_total",
                "Copies queued to TCP subscribers per channel.",
                2,
            ),
            (
                "apiary_broker_drops_total",
                "Copies dropped for full subscriber queues per channel.",
                3,
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for name in &names {
                if let Some(s) = channels.get(*name) {
                    let v = match pick {
                        0 => &s.messages_in,
                        1 => &s.bytes_in,
                        2 => &s.messages_out,
                        _ => &s.drops,
                    };
                    let _ = writeln!(
                        out,
                        "{metric}{{channel=\"{}\"}} {}",
                        label_value(name),
                        v.load(Relaxed)
                    );
                }
            }
        }
    }
}

/// Escapes a label value per the exposition format (backslash, quote, newline).
pub fn label_value(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_channels() {
        let m = BrokerMetrics::default();
        m.channel(&Bytes::from_static(b"a\"b\n"))
            .messages_in
            .fetch_add(3, Relaxed);
        m.refused(Refusal::AuthFailed);
        m.rejected(FrameRejection::TooLarge);
        let mut s = String::new();
        m.render(&mut s);
        assert!(
            s.contains("apiary_broker_messages_in_total{channel=\"a\\\"b\\n\"} 3"),
            "{s}"
        );
        assert!(s.contains("apiary_broker_refusals_total{reason=\"auth_failed\"} 1"));
        assert!(s.contains("apiary_broker_frames_rejected_total{reason=\"too_large\"} 1"));
    }
}
