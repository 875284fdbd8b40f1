//! Measures how fast one [`hpfeeds::Client`] can publish into a local sink that reads and
//! discards bytes (after a fake `OP_INFO`). Not a broker benchmark: it shows the client's
//! own ceiling. Run with `cargo run --release -p hpfeeds --example publish_rate [N]`.

use std::time::Instant;

use hpfeeds::{Client, ClientOptions, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let sink = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let info = Frame::Info {
            name: "sink".into(),
            nonce: vec![1, 2, 3, 4].into(),
        };
        s.write_all(&info.to_bytes()?).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let r = s.read(&mut buf).await?;
            if r == 0 {
                return Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(total);
            }
            total += r as u64;
        }
    });

    let mut c = Client::connect(ClientOptions::new("127.0.0.1", port, "bench", "x")).await?;
    let payload = [b'x'; 100];
    let start = Instant::now();
    for _ in 0..n {
        c.publish("bench", payload).await?;
    }
    c.close().await?;
    let bytes = sink.await?.map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} publications ({bytes} bytes) in {secs:.2} s: {:.0} msg/s, {:.0} MB/s",
        n as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
