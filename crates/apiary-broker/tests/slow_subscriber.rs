//! Backpressure: a TCP subscriber that stops reading must cost only itself (drops, then
//! disconnection), while in-process consumers lose nothing and slow the publisher down.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use apiary_broker::router::ChannelFilter;
use apiary_broker::BrokerConfig;
use bytes::Bytes;
use common::*;
use hpfeeds::frame::Frame;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

const PAYLOAD: usize = 8 * 1024;

fn payload(seq: u64) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.resize(PAYLOAD, b'x');
    p
}

fn seq_of(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[..8].try_into().expect("8-byte sequence number"))
}

/// TCP state of the broker's end of the connection from `client_port`, from
/// `/proc/net/tcp` (e.g. `01` established, `04` FIN-WAIT-1), or `None` once it is gone.
fn broker_side_state(broker_port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let local = format!("0100007F:{broker_port:04X}");
    let remote = format!("0100007F:{client_port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
            .then(|| f.get(3).map(|s| s.to_string()))
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_does_not_stall_publisher_or_other_subscribers() {
    let b = start(
        BrokerConfig {
            subscriber_queue_frames: 100_000,
            subscriber_queue_bytes: 1024 * 1024,
            slow_subscriber_grace: Duration::from_millis(300),
            ..config()
        },
        &default_idents(),
    )
    .await;
    let m = b.broker.metrics().clone();

    // The stalled subscriber: tiny receive buffer, subscribes, then never reads again.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(b.addr).await.expect("connect");
    let stalled_port = stream.local_addr().expect("local addr").port();
    let mut stalled = RawClient::from_stream(stream).await;
    stalled.auth("watch", "watchsecret").await;
    stalled.subscribe("test").await;
    stalled.sync().await;

    // The reading subscriber checks order and completeness as it goes.
    let mut reader = b.login("sub1", "subsecret").await;
    reader.subscribe("test").await;
    reader.sync().await;
    let received = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(u64::MAX));
    let reading = {
        let (received, total) = (received.clone(), total.clone());
        tokio::spawn(async move {
            let mut next = 0u64;
            let mut last_progress = tokio::time::Instant::now();
            // `total` is only known at the end, so poll for it between short reads.
            while next < total.load(Relaxed) {
                match reader.read(Duration::from_millis(100)).await {
                    Read::Frame(_, Frame::Publish { ident, payload, .. }) => {
                        assert_eq!(&ident[..], b"pub1");
                        assert_eq!(
                            seq_of(&payload),
                            next,
                            "reading subscriber lost or reordered"
                        );
                        next += 1;
                        received.store(next, Relaxed);
                        last_progress = tokio::time::Instant::now();
                    }
                    Read::Timeout => assert!(
                        last_progress.elapsed() < WAIT,
                        "reading subscriber starved at message {next}"
                    ),
                    other => panic!("reading subscriber got {other:?}"),
                }
            }
        })
    };

    // Publish until the broker gave up on the stalled subscriber. The publisher keeps
    // the reading subscriber at most 32 messages behind (well inside its queue), so
    // every drop must belong to the stalled one.
    let mut publ = b.login("pub1", "pubsecret").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut sent = 0u64;
    while m.slow_disconnects.load(Relaxed) == 0 || sent < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stalled subscriber never disconnected after {sent} messages"
        );
        assert!(sent < 200_000, "stalled subscriber never disconnected");
        while sent - received.load(Relaxed) > 32 {
            assert!(!reading.is_finished(), "reader task ended early");
            assert!(tokio::time::Instant::now() < deadline, "reader stuck");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        publ.publish("test", payload(sent)).await;
        sent += 1;
    }
    total.store(sent, Relaxed);
    tokio::time::timeout(WAIT, reading)
        .await
        .expect("reading subscriber received everything")
        .expect("reader task");
    assert_eq!(received.load(Relaxed), sent);
    // The stalled one could hold only ~1 MiB queued plus socket buffers.
    assert!(sent as usize * PAYLOAD > 4 * 1024 * 1024, "sent {sent}");

    assert_eq!(m.slow_disconnects.load(Relaxed), 1);
    let stats = m.channel(&Bytes::from_static(b"test"));
    assert_eq!(stats.messages_in.load(Relaxed), sent);
    assert!(stats.drops.load(Relaxed) > 0);
    let mut text = String::new();
    m.render(&mut text);
    assert!(text.contains("apiary_broker_slow_subscriber_disconnects_total 1"));

    // The broker really lets go of the stalled connection (its end leaves ESTABLISHED)
    // even though the client still has not read anything.
    let broker_port = b.addr.port();
    eventually("broker closes its end of the stalled connection", || {
        broker_side_state(broker_port, stalled_port).as_deref() != Some("01")
    })
    .await;
    // Only the publisher is left (the reading subscriber ended with its task).
    eventually("stalled connection no longer counted", || {
        m.connections_open.load(Relaxed) == 1
    })
    .await;

    // Reading now yields at most what was buffered, then EOF (possibly mid-frame, as the
    // broker abandons a write that cannot progress).
    let mut drained = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(WAIT, stalled.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => drained += n,
            Err(_) => panic!("stalled connection not closed after {drained} bytes"),
        }
    }
    assert!(drained < sent as usize * PAYLOAD / 2, "drained {drained}");

    // Publisher still fine.
    publ.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_internal_consumer_loses_nothing_and_slows_the_publisher() {
    const N: u64 = 1000;
    let b = start(config(), &default_idents()).await;
    let mut rx = b.broker.subscribe_internal(ChannelFilter::All, 8);
    let mut other = b.broker.subscribe_internal(
        ChannelFilter::Only(HashSet::from([Bytes::from("other")])),
        1,
    );
    let m = b.broker.metrics().clone();

    let mut publ = b.login("pub1", "pubsecret").await;
    let publishing = tokio::spawn(async move {
        for i in 0..N {
            publ.publish("test", i.to_be_bytes().to_vec()).await;
        }
        // Answered only once every message was handed to the consumer.
        publ.sync().await;
    });

    for i in 0..N {
        let msg = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("message in time")
            .expect("channel open");
        assert_eq!(&msg.ident[..], b"pub1");
        assert_eq!(&msg.channel[..], b"test");
        assert_eq!(&msg.payload[..], &i.to_be_bytes(), "lost or reordered");
        if i % 10 == 0 {
            // A slow consumer: the publisher has to wait for it.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::timeout(WAIT, publishing)
        .await
        .expect("publisher finished")
        .expect("publisher task");
    assert!(rx.try_recv().is_err(), "no extra messages");
    assert!(other.try_recv().is_err(), "filtered consumer got nothing");
    assert!(
        m.internal_waits.load(Relaxed) > 0,
        "publisher was backpressured"
    );
    assert_eq!(m.internal_delivered.load(Relaxed), N);
}
