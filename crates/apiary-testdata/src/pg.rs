//! PostgreSQL for tests: a scratch schema per test, so tests run in parallel on one
//! database and leave nothing behind.

/// A scratch schema in the test database, dropped on drop.
pub struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a schema with a fresh name in the database at `url`.
    pub async fn create(url: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "t_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("APIARY_TEST_DATABASE_URL is set but PostgreSQL is not reachable");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("cannot create a test schema");
        Self {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Its own thread and runtime: drop may run inside (or after) the test's runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// `url` with `search_path` set to `schema`, so a store opened on it lives in the schema.
pub fn scoped_url(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Terminates every session of the database at `url` whose `application_name` is `app`
/// (as a restarting or failing-over server would); returns how many were terminated.
pub async fn terminate_sessions(url: &str, app: &str) -> u64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .expect("pg_terminate_backend");
    rows.iter().filter(|r| r.get::<_, bool>(0)).count() as u64
}

/// What a [`FaultyLink`] does to the next `COMMIT` a client sends through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// The COMMIT never reaches PostgreSQL; the link closes (the transaction is rolled back).
    Lost,
    /// PostgreSQL gets the COMMIT and commits; its answer is dropped and the link closes,
    /// so the client cannot tell whether the transaction took effect.
    AnswerLost,
}

/// A TCP relay between clients and PostgreSQL that, once armed, breaks the connection at
/// the `COMMIT` of the next batch insert (a transaction that copied into `raw_messages`):
/// a real network fault at the one moment a client cannot recover from by itself. It
/// reads the frontend's messages (type byte, length) only to find that COPY and the
/// simple-query `COMMIT` that tokio-postgres sends to end a transaction.
pub struct FaultyLink {
    /// Where clients connect instead of PostgreSQL.
    pub addr: std::net::SocketAddr,
    armed: std::sync::Arc<std::sync::Mutex<Option<CommitFault>>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyLink {
    /// Relays to the PostgreSQL server of `url` (its first host and port).
    pub async fn start(url: &str) -> Self {
        let config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            other => panic!("FaultyLink relays TCP hosts only, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = format!("{host}:{port}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (a, f) = (armed.clone(), fired.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (a, f, up) = (a.clone(), f.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = relay(client, &up, a, f).await;
                });
            }
        });
        Self {
            addr,
            armed,
            fired,
            task,
        }
    }

    /// Breaks the next batch insert's COMMIT (on any connection) this way.
    pub fn arm(&self, fault: CommitFault) {
        *self.armed.lock().unwrap() = Some(fault);
    }

    /// Faults made so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `url` with its host and port replaced by the relay's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("scheme://");
        let (user, hostpath) = match rest.split_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
        format!("{scheme}://{user}{}{path}", self.addr)
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: tokio::net::TcpStream,
    upstream: &str,
    armed: std::sync::Arc<std::sync::Mutex<Option<CommitFault>>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = tokio::net::TcpStream::connect(upstream).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mute = std::sync::Arc::new(AtomicBool::new(false));
    let muted = mute.clone();
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if !muted.load(SeqCst) => {
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            }
        }
    });
    // Startup packets have no type byte; an SSLRequest (80877103) is followed by the real
    // startup message.
    loop {
        let len = cr.read_i32().await?;
        let mut body = vec![0u8; (len as usize).saturating_sub(4)];
        cr.read_exact(&mut body).await?;
        sw.write_i32(len).await?;
        sw.write_all(&body).await?;
        if !(len == 8 && body == 80877103i32.to_be_bytes()) {
            break;
        }
    }
    const COPY_RAW: &[u8] = b"COPY raw_messages";
    let mut in_batch = false;
    let result = loop {
        let kind = match cr.read_u8().await {
            Ok(k) => k,
            Err(_) => break Ok(()),
        };
        let len = cr.read_i32().await?;
        let mut msg = vec![kind];
        msg.extend_from_slice(&len.to_be_bytes());
        msg.resize(1 + (len as usize).max(4), 0);
        cr.read_exact(&mut msg[5..]).await?;
        // Only the COMMIT of a batch insert: other transactions (the store's background
        // tasks) pass.
        if msg.windows(COPY_RAW.len()).any(|w| w == COPY_RAW) {
            in_batch = true;
        }
        if kind == b'Q' && msg[5..].eq_ignore_ascii_case(b"COMMIT\0") && in_batch {
            in_batch = false;
            let fault = armed.lock().unwrap().take();
            match fault {
                Some(CommitFault::Lost) => {
                    fired.fetch_add(1, SeqCst);
                    break Ok(());
                }
                Some(CommitFault::AnswerLost) => {
                    mute.store(true, SeqCst);
                    sw.write_all(&msg).await?;
                    // Long enough for PostgreSQL to commit before the link goes.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    fired.fetch_add(1, SeqCst);
                    break Ok(());
                }
                None => {}
            }
        }
        sw.write_all(&msg).await?;
    };
    down.abort();
    result
}
