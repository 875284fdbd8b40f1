//! One client connection: a read loop that owns the protocol session and a writer task
//! that drains the connection's outgoing queue in batches.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hpfeeds::frame::{self, Frame};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::metrics::FrameRejection;
use crate::router::{Outgoing, Published, SubQueue};
use crate::server::Shared;
use crate::session::{Action, Refusal, Session};

/// Initial read buffer: small, because 10,000 idle sensors must fit in a few MiB.
const INITIAL_READ_BUF: usize = 256;
/// Largest read an authenticated publisher gets per syscall. The read size adapts: it
/// doubles while reads fill the buffer (a busy publisher) and halves when they do not,
/// so busy connections read 64 KiB at a time and idle ones keep ~256 bytes.
const MAX_READ_CHUNK: usize = 64 * 1024;
/// How long a connection whose AUTH failed is held before it is closed (the error is
/// sent at once). With the per-address limit on unauthenticated connections this caps
/// password guessing from one host at a few hundred attempts per second.
const AUTH_FAILURE_HOLD: std::time::Duration = std::time::Duration::from_millis(500);
/// Writer batch: how many queued frames are written per syscall at most.
const WRITE_BATCH: usize = 4096;
/// Largest frame accepted before authentication: an AUTH of a 255-byte ident and a
/// 20-byte hash (hpfeeds 3 uses the same bound). Without it every unauthenticated peer
/// could make the broker buffer up to `max_frame` bytes.
const PRE_AUTH_MAX_FRAME: usize = 5 + 1 + 255 + 20;

/// Serves one accepted connection until it closes, is kicked, or the broker shuts down.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    conn: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let kick = shutdown.child_token();
    let queue = Arc::new(SubQueue::new(shared.config.queue_limits(), kick.clone()));
    let writer_task = tokio::spawn(write_loop(writer, queue.clone()));

    let mut nonce = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let info = Frame::Info {
        name: Bytes::copy_from_slice(shared.config.name.as_bytes()),
        nonce: Bytes::copy_from_slice(&nonce),
    };
    if let Ok(b) = info.to_bytes() {
        queue.control(b);
    }

    let mut session = Session::new(nonce);
    let mut subscribed: Vec<Bytes> = Vec::new();
    let mut cache = shared.router.cache();
    let mut buf = BytesMut::with_capacity(INITIAL_READ_BUF);
    let mut actions = Vec::new();
    let auth_deadline = tokio::time::Instant::now() + shared.config.auth_timeout;
    let mut authed = false;

    let mut chunk = INITIAL_READ_BUF;
    'conn: loop {
        if buf.capacity() - buf.len() < chunk {
            buf.reserve(chunk);
        }
        let spare = buf.capacity() - buf.len();
        let read = tokio::select! {
            biased;
            _ = kick.cancelled() => break 'conn,
            _ = tokio::time::sleep_until(auth_deadline), if !authed => {
                shared.metrics.auth_timeouts.fetch_add(1, Relaxed);
                send_error(&queue, "Authentication timeout");
                break 'conn;
            }
            r = reader.read_buf(&mut buf) => r,
        };
        match read {
            Ok(0) | Err(_) => break 'conn,
            Ok(n) if authed && n >= spare => chunk = (chunk * 2).min(MAX_READ_CHUNK),
            Ok(n) if n < chunk / 4 => chunk = (chunk / 2).max(INITIAL_READ_BUF),
            Ok(_) => {}
        }
        let received_at = chrono::Utc::now();
        let mut congested = false;
        loop {
            let limit = if authed {
                shared.config.max_frame
            } else {
                PRE_AUTH_MAX_FRAME.min(shared.config.max_frame)
            };
            let len = match frame::check(&buf, limit) {
                Ok(len) => len,
                Err(frame::Error::Incomplete) => {
                    if let Some(&h) = buf.first_chunk::<4>() {
                        // The header was validated by `check`, so this is bounded.
                        let claimed = u32::from_be_bytes(h) as usize;
                        buf.reserve(claimed.saturating_sub(buf.len()));
                    }
                    break;
                }
                Err(e) => {
                    let (reason, text) = match e {
                        frame::Error::TooLarge { len, max } => (
                            FrameRejection::TooLarge,
                            format!("Frame too large: {len} bytes, limit {max}"),
                        ),
                        frame::Error::Invalid("unknown opcode") => {
                            (FrameRejection::UnknownOpcode, "Unknown opcode".to_string())
                        }
                        _ => (
                            FrameRejection::ShortLength,
                            format!(
                                "Invalid frame: {}",
                                e.to_string().trim_start_matches("invalid frame: ")
                            ),
                        ),
                    };
                    shared.metrics.rejected(reason);
                    debug!(%peer, conn, error = %text, "frame rejected; closing");
                    send_error(&queue, &text);
                    break 'conn;
                }
            };
            let raw = buf.split_to(len).freeze();
            let parsed = match frame::parse(raw.clone()) {
                Ok(f) => f,
                Err(e) => {
                    shared.metrics.rejected(FrameRejection::Malformed);
                    send_error(&queue, &format!("Invalid frame: {e}"));
                    break 'conn;
                }
            };
            actions.clear();
            let mut auth_failed = false;
            if let Some(refusal) = session.handle(parsed, &*shared.auth, &mut actions) {
                shared.metrics.refused(refusal);
                if refusal == Refusal::AuthFailed {
                    info!(%peer, conn, "hpfeeds authentication failed");
                    auth_failed = true;
                }
            }
            for action in actions.drain(..) {
                match action {
                    Action::Reply(f) => {
                        if let Ok(b) = f.to_bytes() {
                            queue.control(b);
                        }
                    }
                    Action::Close => {
                        if auth_failed {
                            tokio::select! {
                                _ = kick.cancelled() => {}
                                _ = tokio::time::sleep(AUTH_FAILURE_HOLD) => {}
                            }
                        }
                        break 'conn;
                    }
                    Action::Authenticated(ident) => {
                        authed = true;
                        shared.release_pending(peer.ip());
                        shared.metrics.authenticated_open.fetch_add(1, Relaxed);
                        shared.register(conn, ident.clone(), kick.clone());
                        debug!(%peer, conn, ident = %String::from_utf8_lossy(&ident), "authenticated");
                    }
                    Action::Publish { channel, payload } => {
                        let ident = session.acl().map(|a| a.ident.clone()).unwrap_or_default();
                        let msg = Published {
                            ident,
                            channel,
                            payload,
                            received_at,
                        };
                        // Waits only for an in-process consumer; stop reading meanwhile.
                        tokio::select! {
                            biased;
                            _ = kick.cancelled() => break 'conn,
                            c = shared.router.publish(&mut cache, conn, msg, &raw) => congested |= c,
                        }
                    }
                    Action::Subscribe(channel) => {
                        if let Some(acl) = session.acl() {
                            shared.router.subscribe(conn, &acl.ident, &channel, &queue);
                            if !subscribed.contains(&channel) {
                                subscribed.push(channel);
                            }
                        }
                    }
                    Action::Unsubscribe(channel) => {
                        shared.router.unsubscribe(conn, &channel);
                        subscribed.retain(|c| c != &channel);
                    }
                }
            }
        }
        // A subscriber is falling behind because this task (and others like it) keep the
        // cores busy reading: yield once so the writers get to run. This never waits on a
        // stalled subscriber; it only stops one publisher from monopolising a worker.
        if congested {
            tokio::task::yield_now().await;
        }
        // Give memory back after a large frame so idle connections stay small.
        if buf.is_empty() && buf.capacity() > 2 * chunk.max(MAX_READ_CHUNK) {
            buf = BytesMut::with_capacity(chunk);
        }
        // A quiet connection (smallest read size) keeps no action buffer between reads.
        if chunk == INITIAL_READ_BUF {
            actions = Vec::new();
        }
    }

    if !authed {
        shared.release_pending(peer.ip());
    }
    shared.router.remove_connection(conn, &subscribed);
    if authed {
        shared.metrics.authenticated_open.fetch_sub(1, Relaxed);
        shared.deregister(conn);
    }
    queue.close();
    // The writer flushes pending error frames; bound the wait so shutdown cannot hang.
    // A peer that never reads keeps `write_all` pending forever, so a writer still
    // running after the wait is aborted: that drops the socket. (Dropping the handle
    // alone would leave the task, and the connection, alive.)
    let mut writer_task = writer_task;
    if tokio::time::timeout(std::time::Duration::from_secs(2), &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    queue.writer_stopped();
}

fn send_error(queue: &SubQueue, text: &str) {
    if let Ok(b) = Frame::error(text).to_bytes() {
        queue.control(b);
    }
}

async fn write_loop<W: AsyncWrite>(writer: W, queue: Arc<SubQueue>) {
    tokio::pin!(writer);
    let mut batch = Vec::new();
    let mut out = BytesMut::new();
    'outer: loop {
        batch.clear();
        queue.next_batch(&mut batch, WRITE_BATCH).await;
        out.clear();
        let (mut frames, mut bytes, mut close) = (0, 0, false);
        for item in batch.drain(..) {
            match item {
                Outgoing::Frame(b) => {
                    frames += 1;
                    bytes += b.len();
                    out.extend_from_slice(&b);
                }
                Outgoing::Close => {
                    close = true;
                    break;
                }
            }
        }
        let res = writer.write_all(&out).await;
        queue.written(frames, bytes);
        if res.is_err() || close {
            break 'outer;
        }
        if out.capacity() > 256 * 1024 {
            out = BytesMut::new();
        }
        if batch.capacity() > 1024 {
            batch = Vec::new();
        }
    }
    queue.writer_stopped();
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod size_tests {
    /// Each idle connection holds one `serve` future and one writer future; keep them
    /// small (10,000 idle sensors must fit in a few tens of MiB).
    #[test]
    fn connection_futures_stay_small() {
        let b = crate::server::Broker::new(Default::default());
        let (a, _b) = tokio::io::duplex(64);
        let shared = b.shared_for_test();
        let fut = super::serve(
            a,
            ([127, 0, 0, 1], 1).into(),
            1,
            shared.clone(),
            Default::default(),
        );
        assert!(
            std::mem::size_of_val(&fut) < 2048,
            "serve future: {}",
            std::mem::size_of_val(&fut)
        );
        let (w, _r) = tokio::io::duplex(64);
        let limits = shared.config.queue_limits();
        let q = std::sync::Arc::new(crate::router::SubQueue::new(limits, Default::default()));
        let wfut = super::write_loop(w, q);
        assert!(
            std::mem::size_of_val(&wfut) < 512,
            "writer future: {}",
            std::mem::size_of_val(&wfut)
        );
    }
}
