//! A client that reconnects with exponential backoff.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::time::Instant;

use super::{Client, ClientError, ClientOptions, Message};

/// Exponential backoff between connection attempts.
///
/// The delay before retry `n` (counting consecutive failures from 0) is
/// `min(initial · 2ⁿ, max)`, shortened by a random fraction of up to `jitter` so that
/// many sensors cut off by one broker restart do not return in lockstep. A connection
/// that stays up for `healthy_after` resets the count.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Upper bound for any delay.
    pub max: Duration,
    /// Fraction (0.0..=1.0) by which a delay may be randomly shortened.
    pub jitter: f64,
    /// A connection that lived this long resets the backoff.
    pub healthy_after: Duration,
}

impl Default for Backoff {
    /// 500 ms doubling to 60 s, 20 % jitter, reset after 30 s of health.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            jitter: 0.2,
            healthy_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry `failures` without jitter.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `failures`, with jitter applied.
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self.base_delay(failures);
        // Sanitise: `mul_f64` panics on NaN or negative factors.
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 {
            return base;
        }
        let r: f64 = rand::thread_rng().gen();
        base.mul_f64(1.0 - jitter * r)
    }
}

/// Called with the new connection generation after every successful reconnect.
type ReconnectHook = Box<dyn FnMut(u64) + Send>;

/// A [`Client`] that connects lazily, reconnects with [`Backoff`] after any fatal error,
/// and restores its subscriptions on every new connection.
///
/// # What is lost on a disconnect
/// hpfeeds has no acknowledgements. When a call returns an error (other than
/// [`ClientError::Invalid`]), the connection is dropped and:
/// - publications still in the write buffer are lost;
/// - publications already written may or may not have reached the broker, even those
///   covered by a successful [`flush`](Self::flush), since a broker can fail right after
///   the bytes leave our socket;
/// - messages in flight to us are lost; the broker does not replay them.
///
/// A caller with a spool should therefore treat everything since its last checkpoint as
/// unconfirmed and redeliver it after an error; [`generation`](Self::generation) and
/// [`set_on_reconnect`](Self::set_on_reconnect) tell it when a new connection exists.
///
/// Each call that needs a connection waits (sleeping, cancel-safe) until one is
/// established, however long that takes; wrap calls in a timeout or `select!` against a
/// shutdown signal to bound them. Failed attempts are logged at `warn`.
pub struct ReconnectingClient {
    opts: ClientOptions,
    backoff: Backoff,
    client: Option<Client>,
    subscriptions: Vec<Bytes>,
    /// Consecutive failed or short-lived connections.
    failures: u32,
    /// Earliest time of the next connection attempt.
    retry_at: Option<Instant>,
    connected_at: Option<Instant>,
    generation: u64,
    on_reconnect: Option<ReconnectHook>,
}

impl fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("opts", &self.opts)
            .field("backoff", &self.backoff)
            .field("connected", &self.client.is_some())
            .field("subscriptions", &self.subscriptions)
            .field("failures", &self.failures)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl ReconnectingClient {
    /// A client that will connect with `opts` on first use.
    pub fn new(opts: ClientOptions, backoff: Backoff) -> Self {
        Self {
            opts,
            backoff,
            client: None,
            subscriptions: Vec::new(),
            failures: 0,
            retry_at: None,
            connected_at: None,
            generation: 0,
            on_reconnect: None,
        }
    }

    /// Registers a hook called with the new [`generation`](Self::generation) after every
    /// successful reconnect (not the first connect), once subscriptions are restored.
    pub fn set_on_reconnect(&mut self, hook: impl FnMut(u64) + Send + 'static) {
        self.on_reconnect = Some(Box::new(hook));
    }

    /// How many connections have been established so far (0 before the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a connection is currently held.
    pub fn is_connected(&self) -> bool {
        self.client.is_some()
    }

    /// Consecutive failed (or short-lived) connection attempts.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The current connection, if any, for direct use (e.g. [`Client::check_auth`]).
    /// Errors from it are not seen by the reconnect logic; call
    /// [`disconnect`](Self::disconnect) after a fatal one.
    pub fn current(&mut self) -> Option<&mut Client> {
        self.client.as_mut()
    }

    /// Makes one connection attempt, first sleeping until the backoff allows it. On
    /// success the recorded subscriptions are re-sent. Does nothing if connected.
    pub async fn try_connect(&mut self) -> Result<(), ClientError> {
        if self.client.is_some() {
            return Ok(());
        }
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
        }
        match Self::open(&self.opts, &self.subscriptions).await {
            Ok(c) => {
                self.client = Some(c);
                self.connected_at = Some(Instant::now());
                self.retry_at = None;
                self.generation += 1;
                tracing::debug!(generation = self.generation, "hpfeeds connected");
                if self.generation > 1 {
                    if let Some(hook) = self.on_reconnect.as_mut() {
                        hook(self.generation);
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.schedule_retry();
                Err(e)
            }
        }
    }

    /// Takes fields rather than `&self` so futures holding it need only `Send` fields,
    /// not a `Sync` hook.
    async fn open(opts: &ClientOptions, subscriptions: &[Bytes]) -> Result<Client, ClientError> {
        let mut c = Client::connect(opts.clone()).await?;
        for ch in subscriptions {
            c.subscribe(ch).await?;
        }
        Ok(c)
    }

    /// Connects, retrying with backoff until it works. `None` is not returned in
    /// practice; it stands in for a panic the borrow checker would otherwise force.
    async fn connected(&mut self) -> Option<&mut Client> {
        while self.client.is_none() {
            if let Err(e) = self.try_connect().await {
                tracing::warn!(
                    host = %self.opts.host,
                    port = self.opts.port,
                    error = %e,
                    failures = self.failures,
                    "hpfeeds connection attempt failed; backing off"
                );
            }
        }
        self.client.as_mut()
    }

    fn schedule_retry(&mut self) {
        let d = self.backoff.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + d);
    }

    /// Drops the current connection (without a graceful close) and schedules the next
    /// attempt. Whatever was buffered is lost.
    pub fn disconnect(&mut self) {
        if self.client.take().is_some() {
            self.note_disconnect();
        }
    }

    /// Resets the backoff if the lost connection had been healthy, then schedules the
    /// next attempt.
    fn note_disconnect(&mut self) {
        if self
            .connected_at
            .is_some_and(|t| t.elapsed() >= self.backoff.healthy_after)
        {
            self.failures = 0;
        }
        self.schedule_retry();
    }

    /// Passes `r` through, dropping the connection if it holds a fatal error.
    fn check<T>(&mut self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(e) = &r {
            if e.is_fatal() {
                tracing::warn!(error = %e, generation = self.generation, "hpfeeds connection lost");
                self.disconnect();
            }
        }
        r
    }

    /// Buffers a publication (connecting first if needed); see [`Client::publish`].
    pub async fn publish(
        &mut self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let Some(c) = self.connected().await else {
            return Err(ClientError::Closed);
        };
        let r = c.publish(channel, payload).await;
        self.check(r)
    }

    /// Publishes a batch on one channel; see [`Client::publish_batch`].
    pub async fn publish_batch<P: AsRef<[u8]>>(
        &mut self,
        channel: impl AsRef<[u8]>,
        payloads: impl IntoIterator<Item = P>,
    ) -> Result<usize, ClientError> {
        let Some(c) = self.connected().await else {
            return Err(ClientError::Closed);
        };
        let r = c.publish_batch(channel, payloads).await;
        self.check(r)
    }

    /// Flushes the current connection. Without one there is nothing buffered: `Ok`.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        let Some(c) = self.client.as_mut() else {
            return Ok(());
        };
        let r = c.flush().await;
        self.check(r)
    }

    /// Records `channel` for every future connection and subscribes now (connecting if
    /// needed). After an error the channel stays recorded.
    pub async fn subscribe(&mut self, channel: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let channel = Bytes::copy_from_slice(channel.as_ref());
        if self.subscriptions.contains(&channel) {
            return Ok(());
        }
        self.subscriptions.push(channel.clone());
        match self.client.as_mut() {
            Some(c) => {
                let r = c.subscribe(&channel).await;
                self.check(r)
            }
            // Connecting sends every recorded subscription.
            None => self
                .connected()
                .await
                .map(|_| ())
                .ok_or(ClientError::Closed),
        }
    }

    /// Forgets `channel` and unsubscribes on the current connection, if any.
    pub async fn unsubscribe(&mut self, channel: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let channel = channel.as_ref();
        self.subscriptions.retain(|c| c.as_ref() != channel);
        let Some(c) = self.client.as_mut() else {
            return Ok(());
        };
        let r = c.unsubscribe(channel).await;
        self.check(r)
    }

    /// The next publication on a subscribed channel (connecting if needed). After an
    /// error the next call reconnects and re-subscribes.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        let Some(c) = self.connected().await else {
            return Err(ClientError::Closed);
        };
        let r = c.recv().await;
        self.check(r)
    }

    /// Flushes and closes the current connection, if any. The next call reconnects
    /// without waiting for backoff.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.retry_at = None;
        match self.client.take() {
            Some(c) => c.close().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: f64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter,
            healthy_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = backoff(0.0);
        let ms: Vec<u128> = (0..8).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.delay(40), Duration::from_secs(5));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn jitter_only_shortens() {
        let b = backoff(0.5);
        for n in 0..10 {
            for _ in 0..50 {
                let d = b.delay(n);
                assert!(d <= b.base_delay(n) && d >= b.base_delay(n) / 2, "{d:?}");
            }
        }
    }

    #[test]
    fn silly_jitter_never_panics() {
        for j in [f64::NAN, f64::INFINITY, -1.0, 7.0] {
            let d = backoff(j).delay(3);
            assert!(d <= Duration::from_millis(800));
        }
    }

    /// Time left until the next attempt, in whole 100 ms steps (tests run in well under 100 ms).
    fn wait_steps(rc: &ReconnectingClient) -> u128 {
        let left = rc
            .retry_at
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        left.as_millis().div_ceil(100)
    }

    #[tokio::test]
    async fn a_healthy_connection_resets_the_backoff() {
        let mut rc =
            ReconnectingClient::new(ClientOptions::new("127.0.0.1", 1, "i", "s"), backoff(0.0));
        let ago = |s| Instant::now().checked_sub(Duration::from_secs(s));
        rc.failures = 5;
        rc.connected_at = ago(29);
        rc.note_disconnect();
        assert_eq!(rc.failures, 6, "29 s is not healthy yet");
        assert_eq!(wait_steps(&rc), 32);

        rc.connected_at = ago(31);
        rc.note_disconnect();
        assert_eq!(rc.failures, 1);
        assert_eq!(wait_steps(&rc), 1);
    }
}
