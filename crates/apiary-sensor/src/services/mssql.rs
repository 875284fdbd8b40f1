//! MSSQL (TDS, MS-TDS): PRELOGIN answered with ENCRYPTION = NOT_SUP so the client sends
//! its LOGIN7 in the clear; the LOGIN7 gives host name, user, password (the TDS
//! obfuscation undone), application, server and client library names; the answer is
//! error 18456 "Login failed for user '…'." and DONE.
//!
//! Parsers and packet builders are pure functions over bytes; [`run`] does the framing.

use std::io;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::Conn;
use crate::event::Capture;

/// Largest TDS message (all packets up to EOM) accepted.
const MAX_MESSAGE: usize = 64 * 1024;
/// Most messages handled per connection.
const MAX_MESSAGES: usize = 16;

const TYPE_SQL_BATCH: u8 = 0x01;
const TYPE_RESPONSE: u8 = 0x04;
const TYPE_LOGIN7: u8 = 0x10;
const TYPE_PRELOGIN: u8 = 0x12;
const STATUS_EOM: u8 = 0x01;

/// ENCRYPT_NOT_SUP.
const ENCRYPT_NOT_SUP: u8 = 2;

/// What a PRELOGIN carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PreLogin {
    /// Client version (`major.minor.build.sub`).
    pub version: Option<String>,
    /// Requested encryption (0 off, 1 on, 2 not supported, 3 required).
    pub encryption: Option<u8>,
}

/// Parses a PRELOGIN message body (the option table and its data).
pub fn parse_prelogin(b: &[u8]) -> Option<PreLogin> {
    let mut p = PreLogin::default();
    let mut at = 0;
    for _ in 0..32 {
        let tok = *b.get(at)?;
        if tok == 0xff {
            return Some(p);
        }
        let e = b.get(at + 1..at + 5)?;
        let off = u16::from_be_bytes([e[0], e[1]]) as usize;
        let len = u16::from_be_bytes([e[2], e[3]]) as usize;
        let data = b.get(off..off.checked_add(len)?);
        match (tok, data) {
            (0, Some(v)) if v.len() >= 6 => {
                p.version = Some(format!(
                    "{}.{}.{}.{}",
                    v[0],
                    v[1],
                    u16::from_be_bytes([v[2], v[3]]),
                    u16::from_be_bytes([v[4], v[5]])
                ));
            }
            (1, Some([enc, ..])) => p.encryption = Some(*enc),
            _ => {}
        }
        at += 5;
    }
    None
}

/// One TDS packet (single, EOM) of `ty` around `body`.
fn packet(ty: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() + 8) as u16;
    let mut p = vec![ty, STATUS_EOM];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 0, 1, 0]);
    p.extend_from_slice(body);
    p
}

/// The PRELOGIN response: SQL Server 2019 (15.0.2000), encryption not supported.
pub fn prelogin_response() -> Vec<u8> {
    // (token, data): VERSION, ENCRYPTION, INSTOPT, THREADID (empty), MARS.
    let opts: [(u8, &[u8]); 5] = [
        (0, &[15, 0, 0x07, 0xd0, 0, 0]),
        (1, &[ENCRYPT_NOT_SUP]),
        (2, &[0]),
        (3, &[]),
        (4, &[0]),
    ];
    let mut table = Vec::new();
    let mut data = Vec::new();
    let base = opts.len() * 5 + 1;
    for (tok, v) in opts {
        table.push(tok);
        table.extend_from_slice(&((base + data.len()) as u16).to_be_bytes());
        table.extend_from_slice(&(v.len() as u16).to_be_bytes());
        data.extend_from_slice(v);
    }
    table.push(0xff);
    table.extend_from_slice(&data);
    packet(TYPE_RESPONSE, &table)
}

/// What a LOGIN7 carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Login7 {
    /// TDS version the client asked for.
    pub tds_version: u32,
    /// Client host name.
    pub hostname: String,
    /// User name (empty with integrated authentication).
    pub username: String,
    /// Password, de-obfuscated.
    pub password: String,
    /// Application name.
    pub app: String,
    /// Server name the client thinks it talks to.
    pub server: String,
    /// Client interface library name.
    pub library: String,
    /// Initial database.
    pub database: String,
    /// Integrated (SSPI) authentication data length.
    pub sspi_len: usize,
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Undoes the TDS password obfuscation (per byte: XOR 0xA5, then swap the nibbles).
pub fn decode_password(b: &[u8]) -> String {
    let plain: Vec<u8> = b.iter().map(|x| (x ^ 0xa5).rotate_left(4)).collect();
    utf16(&plain)
}

/// Parses a LOGIN7 message body.
pub fn parse_login7(b: &[u8]) -> Option<Login7> {
    if b.len() < 58 {
        return None;
    }
    let tds_version = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    // (offset u16, count of UTF-16 units u16) at `at`; the data must lie in the message.
    let field = |at: usize| -> Option<&[u8]> {
        let off = u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]) as usize;
        let n = u16::from_le_bytes([*b.get(at + 2)?, *b.get(at + 3)?]) as usize;
        b.get(off..off + 2 * n)
    };
    let s = |at: usize| field(at).map(utf16).unwrap_or_default();
    let sspi_len = match (b.get(78), b.get(79), b.get(80), b.get(81)) {
        (Some(_), Some(_), Some(&l0), Some(&l1)) => u16::from_le_bytes([l0, l1]) as usize,
        _ => 0,
    };
    Some(Login7 {
        tds_version,
        hostname: s(36),
        username: s(40),
        password: field(44).map(decode_password).unwrap_or_default(),
        app: s(48),
        server: s(52),
        library: s(60),
        database: b.get(68..72).map(|_| s(68)).unwrap_or_default(),
        sspi_len,
    })
}

fn us_varchar(out: &mut Vec<u8>, s: &str) {
    let u: Vec<u16> = s.encode_utf16().take(0xff_ff).collect();
    out.extend_from_slice(&(u.len() as u16).to_le_bytes());
    out.extend(u.iter().flat_map(|c| c.to_le_bytes()));
}

fn b_varchar(out: &mut Vec<u8>, s: &str) {
    let u: Vec<u16> = s.encode_utf16().take(0xff).collect();
    out.push(u.len() as u8);
    out.extend(u.iter().flat_map(|c| c.to_le_bytes()));
}

/// The answer to a LOGIN7: ERROR 18456 (state 1, class 14) and DONE with DONE_ERROR.
pub fn login_failed(user: &str, server: &str, tds_version: u32) -> Vec<u8> {
    let user: String = user.chars().take(128).collect();
    let mut e = Vec::new();
    e.extend_from_slice(&18456u32.to_le_bytes());
    e.extend_from_slice(&[1, 14]);
    us_varchar(&mut e, &format!("Login failed for user '{user}'."));
    b_varchar(&mut e, server);
    b_varchar(&mut e, "");
    e.extend_from_slice(&1u32.to_le_bytes());
    let mut body = vec![0xaa];
    body.extend_from_slice(&(e.len() as u16).to_le_bytes());
    body.extend_from_slice(&e);
    body.push(0xfd);
    body.extend_from_slice(&2u16.to_le_bytes()); // DONE_ERROR
    body.extend_from_slice(&0u16.to_le_bytes());
    // TDS 7.2 and later: 64-bit row count (the version is sent as 0x7X.. little-endian).
    let rows = if tds_version >= 0x7200_0000 { 8 } else { 4 };
    body.extend_from_slice(&vec![0; rows]);
    packet(TYPE_RESPONSE, &body)
}

/// Reads one TDS message (packets up to EOM); `None` at EOF or on garbage (then the
/// connection is dropped). Returns the type of the first packet and the joined bodies.
async fn message<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut ty = None;
    let mut body = Vec::new();
    loop {
        let Some(h) = c.exact(8).await? else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        if len < 8 || body.len() + len > MAX_MESSAGE {
            return Ok(None);
        }
        let Some(p) = c.exact(len - 8).await? else {
            return Ok(None);
        };
        body.extend_from_slice(&p);
        let ty = *ty.get_or_insert(h[0]);
        if h[1] & STATUS_EOM != 0 {
            return Ok(Some((ty, body)));
        }
    }
}

/// Serves one MSSQL connection.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    server_name: Option<&str>,
) -> io::Result<()> {
    let server = server_name.unwrap_or("SQLSRV01");
    for i in 0..MAX_MESSAGES {
        let Some((ty, body)) = message(c).await? else {
            if i == 0 || !cap.extra.contains_key("tds_type") {
                cap.payload(&c.head);
            }
            return Ok(());
        };
        if i == 0 {
            cap.extra.insert("tds_type".into(), Value::from(ty));
        }
        match ty {
            TYPE_PRELOGIN => {
                if let Some(p) = parse_prelogin(&body) {
                    if let Some(v) = &p.version {
                        cap.extra_str("mssql_client_version", v);
                    }
                    if let Some(e) = p.encryption {
                        cap.extra.insert("mssql_encryption".into(), Value::from(e));
                    }
                }
                c.send(&prelogin_response()).await?;
            }
            TYPE_LOGIN7 => {
                let Some(l) = parse_login7(&body) else {
                    cap.payload(&c.head);
                    return Ok(());
                };
                cap.cred(&l.username, &l.password);
                cap.logged_in = Some(false);
                for (k, v) in [
                    ("mssql_hostname", &l.hostname),
                    ("mssql_app", &l.app),
                    ("mssql_server", &l.server),
                    ("mssql_library", &l.library),
                    ("database", &l.database),
                ] {
                    if !v.is_empty() {
                        cap.extra_str(k, v);
                    }
                }
                if l.sspi_len > 0 {
                    cap.extra.insert("mssql_sspi".into(), Value::Bool(true));
                }
                c.send(&login_failed(&l.username, server, l.tds_version))
                    .await?;
            }
            TYPE_SQL_BATCH => {
                let q = utf16(body.get(body.len().min(22)..).unwrap_or_default());
                cap.command(&q);
                return Ok(());
            }
            _ => {
                cap.payload(&c.head);
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn obfuscate(s: &str) -> Vec<u8> {
        to16(s)
            .into_iter()
            .map(|b| b.rotate_left(4) ^ 0xa5)
            .collect()
    }

    /// A LOGIN7 body as a TDS 7.4 client sends it.
    fn login7(user: &str, pass: &str) -> Vec<u8> {
        let fields: [Vec<u8>; 9] = [
            to16("WS-042"),
            to16(user),
            obfuscate(pass),
            to16("sqlmap"),
            to16("db.example"),
            vec![],
            to16("ODBC"),
            to16(""),
            to16("master"),
        ];
        let mut fixed = vec![0u8; 94];
        fixed[4..8].copy_from_slice(&0x7400_0004u32.to_le_bytes());
        let mut data = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let at = 36 + 4 * i;
            let off = (94 + data.len()) as u16;
            fixed[at..at + 2].copy_from_slice(&off.to_le_bytes());
            let n = if i == 5 { f.len() } else { f.len() / 2 } as u16;
            fixed[at + 2..at + 4].copy_from_slice(&n.to_le_bytes());
            data.extend_from_slice(f);
        }
        let mut b = [fixed, data].concat();
        let total = b.len() as u32;
        b[..4].copy_from_slice(&total.to_le_bytes());
        b
    }

    #[test]
    fn password_obfuscation_round_trip() {
        // Each UTF-16 byte is nibble-swapped, then XORed with 0xA5: '1' (0x31, 0x00)
        // becomes (0x13 ^ 0xA5, 0x00 ^ 0xA5).
        assert_eq!(decode_password(&[0x13 ^ 0xa5, 0xa5]), "1");
        assert_eq!(decode_password(&obfuscate("P@ss w0rd!é")), "P@ss w0rd!é");
        assert_eq!(decode_password(&[0xb6]), "");
    }

    #[test]
    fn login7_fields() {
        let l = parse_login7(&login7("sa", "Secr3t!")).unwrap();
        assert_eq!(l.username, "sa");
        assert_eq!(l.password, "Secr3t!");
        assert_eq!(l.hostname, "WS-042");
        assert_eq!(l.app, "sqlmap");
        assert_eq!(l.server, "db.example");
        assert_eq!(l.library, "ODBC");
        assert_eq!(l.database, "master");
        assert_eq!(l.tds_version, 0x7400_0004);
    }

    #[test]
    fn prelogin_round_trip_and_responses() {
        let r = prelogin_response();
        assert_eq!((r[0], r[1]), (TYPE_RESPONSE, STATUS_EOM));
        assert_eq!(u16::from_be_bytes([r[2], r[3]]) as usize, r.len());
        let p = parse_prelogin(&r[8..]).unwrap();
        assert_eq!(p.encryption, Some(ENCRYPT_NOT_SUP));
        assert_eq!(p.version.as_deref(), Some("15.0.2000.0"));
        let f = login_failed("sa", "SQLSRV01", 0x7400_0004);
        assert_eq!(f[8], 0xaa);
        assert_eq!(u16::from_be_bytes([f[2], f[3]]) as usize, f.len());
        assert!(utf16(&f[19..]).starts_with("Login failed for user 'sa'."));
    }

    #[test]
    fn hostile_input_never_panics() {
        let good = login7("administrator", "x");
        for cut in 0..good.len() {
            let _ = parse_login7(&good[..cut]);
            let _ = parse_prelogin(&good[..cut]);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut b = good.clone();
            for _ in 0..6 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 40) as u8;
            }
            let _ = parse_login7(&b);
            let _ = parse_prelogin(&b);
        }
        // Offsets past the end: fields come back empty, never out of bounds.
        let mut bad = good.clone();
        bad[40..44].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(parse_login7(&bad).unwrap().username, "");
        assert!(parse_prelogin(&[0, 0xff, 0xff, 0xff, 0xff]).is_none());
        let _ = login_failed(&"'".repeat(100_000), &"s".repeat(1000), 0);
    }

    #[tokio::test]
    async fn exchange_over_a_stream() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let pre = packet(TYPE_PRELOGIN, &prelogin_response()[8..]);
        // LOGIN7 split over two packets.
        let l = login7("sa", "hunter2");
        let (l1, l2) = l.split_at(40);
        let mut p1 = packet(TYPE_LOGIN7, l1);
        p1[1] = 0;
        let input = [pre, p1, packet(TYPE_LOGIN7, l2)].concat();
        a.write_all(&input).await.unwrap();
        a.shutdown().await.unwrap();
        let mut cap = Capture::default();
        let mut c = Conn::new(b, 1 << 16);
        run(&mut c, &mut cap, None).await.unwrap();
        drop(c);
        let mut out = Vec::new();
        a.read_to_end(&mut out).await.unwrap();
        assert_eq!(out[0], TYPE_RESPONSE);
        assert_eq!(cap.credentials[0].username, "sa");
        assert_eq!(cap.credentials[0].password, "hunter2");
        assert_eq!(cap.extra["mssql_app"], "sqlmap");
        assert_eq!(cap.extra["tds_type"], 0x12);
    }
}
