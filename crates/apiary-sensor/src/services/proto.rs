//! Protocol handlers (everything except SSH). Each reads through [`Conn`], which bounds
//! bytes; each parser is a pure function over bytes so it can be tested with hostile
//! input. Handlers never grant access (every login fails), except Telnet in fake-shell
//! mode, which gives the emulated shell of [`super::shell`].

use std::io;

use apiary_model::bounded::{lossy, LONG, MAX_ITEMS, MEDIUM, SHORT};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::Conn;
use super::shell::{FakeShell, Policy};
use crate::config::Kind;
use crate::event::{Capture, Http};

/// Longest line any line-based handler accepts.
const MAX_LINE: usize = 4096;
/// Most commands read per connection by command-loop handlers.
const MAX_COMMANDS: usize = 64;

/// Per-service settings handlers need beyond the banner (from [`crate::config::Service`]).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// SMB: the names claimed in the NTLM challenge.
    pub smb: super::smb::Names,
    /// HTTPS: the TLS server configs.
    pub tls: Option<super::tls::Tls>,
}

/// Runs the handler for `kind` until the client leaves. The caller applies the time limit.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    kind: Kind,
    c: &mut Conn<S>,
    cap: &mut Capture,
    banner: Option<&str>,
    shell: Option<&Policy>,
    opts: &Opts,
) -> io::Result<()> {
    match kind {
        Kind::Telnet => telnet(c, cap, banner, shell).await,
        // HTTPS reaches here only without TLS settings (the TLS layer is in `services`).
        Kind::Http | Kind::Https => http(c, cap, banner, false).await,
        Kind::Elasticsearch => http(c, cap, banner, true).await,
        Kind::Ftp => ftp(c, cap, banner).await,
        Kind::Redis => redis(c, cap).await,
        Kind::Mysql => mysql(c, cap, banner).await,
        Kind::Vnc => vnc(c, cap).await,
        Kind::Rdp => first_packet(c, cap, parse_rdp).await,
        Kind::Smb => super::smb::run(c, cap, &opts.smb).await,
        Kind::Mssql => super::mssql::run(c, cap, banner).await,
        Kind::S7 => first_packet(c, cap, parse_s7).await,
        Kind::Modbus => modbus(c, cap).await,
        Kind::Sip => sip(c, cap).await,
        Kind::Tcp | Kind::Ssh | Kind::Udp => {
            if let Some(b) = banner {
                c.send(b.as_bytes()).await?;
            }
            c.drain_all().await
        }
    }
}

fn text(b: &[u8]) -> String {
    lossy(b, SHORT)
}

// ---------------------------------------------------------------- telnet

/// Removes telnet IAC sequences (negotiation, subnegotiation) and NULs.
pub fn strip_telnet(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            255 => match b.get(i + 1) {
                Some(255) => {
                    out.push(255);
                    i += 2;
                }
                Some(250) => {
                    // SB ... IAC SE
                    let mut j = i + 2;
                    while j + 1 < b.len() && !(b[j] == 255 && b[j + 1] == 240) {
                        j += 1;
                    }
                    i = j + 2;
                }
                Some(251..=254) => i += 3,
                Some(_) => i += 2,
                None => i += 1,
            },
            0 => i += 1,
            x => {
                out.push(x);
                i += 1;
            }
        }
    }
    out
}

async fn telnet<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    banner: Option<&str>,
    shell: Option<&Policy>,
) -> io::Result<()> {
    // IAC WILL ECHO, IAC WILL SUPPRESS-GO-AHEAD
    c.send(&[255, 251, 1, 255, 251, 3]).await?;
    c.send(banner.unwrap_or("\r\nUbuntu 22.04.4 LTS\r\n").as_bytes())
        .await?;
    for _ in 0..3 {
        c.send(b"\r\nlogin: ").await?;
        let Some(user) = next_nonempty_telnet_line(c).await? else {
            return Ok(());
        };
        c.send(b"Password: ").await?;
        let Some(pass) = c.line(MAX_LINE).await? else {
            cap.cred(&text(&user), "");
            return Ok(());
        };
        let (user, pass) = (text(&user), text(&strip_telnet(&pass)));
        cap.cred(&user, &pass);
        if let Some(p) = shell.filter(|p| p.accepts(&user, &pass)) {
            cap.logged_in = Some(true);
            return telnet_shell(c, cap, FakeShell::new(&user, &p.hostname)).await;
        }
        cap.logged_in = Some(false);
        c.send(b"\r\nLogin incorrect").await?;
    }
    Ok(())
}

/// The fake shell after an accepted Telnet login: one command line at a time (the client
/// echoes locally once we stop echoing), until `exit` or the connection ends.
async fn telnet_shell<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    mut sh: FakeShell,
) -> io::Result<()> {
    // IAC WONT ECHO: the password is behind us.
    c.send(&[255, 252, 1]).await?;
    c.send(format!("\r\n{}", sh.prompt()).as_bytes()).await?;
    while !sh.closed {
        let Some(line) = c.line(MAX_LINE).await? else {
            return Ok(());
        };
        let out = sh.run(&text(&strip_telnet(&line)), cap);
        c.send(out.replace('\n', "\r\n").as_bytes()).await?;
        if !sh.closed {
            c.send(sh.prompt().as_bytes()).await?;
        }
    }
    c.send(b"logout\r\n").await
}

async fn next_nonempty_telnet_line<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..8 {
        match c.line(MAX_LINE).await? {
            None => return Ok(None),
            Some(l) => {
                let l = strip_telnet(&l);
                if !l.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(Some(l));
                }
            }
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------- http

/// Parses a request head (request line + headers, without the blank line).
pub fn parse_http_head(head: &[u8]) -> Option<(Http, Option<usize>)> {
    let s = String::from_utf8_lossy(head);
    let mut lines = s.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let method = parts
        .next()
        .filter(|m| !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_alphabetic()))?;
    let path = parts.next().unwrap_or("");
    let mut h = Http {
        method: method.to_owned(),
        path: apiary_model::bounded::bounded(path, MEDIUM),
        ..Default::default()
    };
    let mut clen = None;
    for l in lines.take(MAX_ITEMS) {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let lk = k.to_ascii_lowercase();
        match lk.as_str() {
            "host" => h.host = Some(apiary_model::bounded::bounded(v, SHORT)),
            "user-agent" => h.user_agent = Some(apiary_model::bounded::bounded(v, SHORT)),
            "content-length" => clen = v.parse::<usize>().ok(),
            _ => {}
        }
        if h.headers.len() < 64 {
            h.headers.push((
                apiary_model::bounded::bounded(k, SHORT),
                apiary_model::bounded::bounded(v, MEDIUM),
            ));
        }
    }
    Some((h, clen))
}

pub(crate) async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    banner: Option<&str>,
    elastic: bool,
) -> io::Result<()> {
    let Some(head) = c.until(b"\r\n\r\n", 16 * 1024).await? else {
        return Ok(());
    };
    let Some((mut req, clen)) = parse_http_head(&head) else {
        cap.payload(&c.head);
        return Ok(());
    };
    if let Some(n) = clen {
        let want = n.min(LONG);
        let mut body = std::mem::take(&mut c.buf);
        while body.len() < want {
            if c.fill().await? == 0 {
                break;
            }
            body.append(&mut c.buf);
        }
        body.truncate(want);
        if !body.is_empty() {
            req.body = Some(lossy(&body, LONG));
        }
    }
    let server = banner.unwrap_or(if elastic {
        ""
    } else {
        "Apache/2.4.52 (Ubuntu)"
    });
    let (ctype, body) = if elastic {
        (
            "application/json; charset=UTF-8",
            "{\"name\":\"node-1\",\"cluster_name\":\"elasticsearch\",\"version\":{\"number\":\"7.17.9\",\"lucene_version\":\"8.11.1\"},\"tagline\":\"You Know, for Search\"}\n".to_owned(),
        )
    } else {
        (
            "text/html",
            "<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>\n"
                .to_owned(),
        )
    };
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !server.is_empty() {
        resp.push_str(&format!("Server: {server}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(&body);
    if !req.path.is_empty() {
        cap.urls.push(req.path.clone());
    }
    cap.http = Some(req);
    c.send(resp.as_bytes()).await
}

// ---------------------------------------------------------------- ftp

async fn ftp<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    banner: Option<&str>,
) -> io::Result<()> {
    c.send(format!("220 {}\r\n", banner.unwrap_or("(vsFTPd 3.0.5)")).as_bytes())
        .await?;
    let mut user = String::new();
    for _ in 0..MAX_COMMANDS {
        let Some(l) = c.line(MAX_LINE).await? else {
            break;
        };
        let l = lossy(&l, MEDIUM);
        let (verb, arg) = l.split_once(' ').unwrap_or((l.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "USER" => {
                user = arg.to_owned();
                c.send(b"331 Please specify the password.\r\n").await?;
            }
            "PASS" => {
                cap.cred(&user, arg);
                cap.logged_in = Some(false);
                c.send(b"530 Login incorrect.\r\n").await?;
            }
            "QUIT" => {
                c.send(b"221 Goodbye.\r\n").await?;
                break;
            }
            _ => {
                cap.command(&l);
                c.send(b"530 Please login with USER and PASS.\r\n").await?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- redis

/// Result of parsing one RESP command from a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Resp {
    /// A full command and the bytes it used.
    Command(Vec<Vec<u8>>, usize),
    /// Need more bytes.
    Incomplete,
    /// Not RESP / over the limits.
    Invalid,
}

/// Parses one RESP array of bulk strings, or an inline command line.
pub fn parse_resp(b: &[u8]) -> Resp {
    fn line_at(b: &[u8], from: usize) -> Option<(&[u8], usize)> {
        let rest = b.get(from..)?;
        let i = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..i], from + i + 2))
    }
    fn num(b: &[u8]) -> Option<i64> {
        std::str::from_utf8(b).ok()?.parse().ok()
    }
    if b.is_empty() {
        return Resp::Incomplete;
    }
    if b[0] != b'*' {
        let Some(i) = b.iter().position(|&x| x == b'\n') else {
            return if b.len() > MAX_LINE {
                Resp::Invalid
            } else {
                Resp::Incomplete
            };
        };
        let l = &b[..i];
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let args = l
            .split(|&x| x == b' ')
            .filter(|a| !a.is_empty())
            .take(MAX_ITEMS)
            .map(|a| a.to_vec())
            .collect();
        return Resp::Command(args, i + 1);
    }
    let Some((n, mut at)) = line_at(b, 1) else {
        return if b.len() > 32 {
            Resp::Invalid
        } else {
            Resp::Incomplete
        };
    };
    let Some(n) = num(n) else {
        return Resp::Invalid;
    };
    if !(0..=1024).contains(&n) {
        return Resp::Invalid;
    }
    let mut args = Vec::new();
    for _ in 0..n {
        match b.get(at) {
            None => return Resp::Incomplete,
            Some(b'$') => {}
            Some(_) => return Resp::Invalid,
        }
        let Some((len, next)) = line_at(b, at + 1) else {
            return if b.len() - at > 32 {
                Resp::Invalid
            } else {
                Resp::Incomplete
            };
        };
        let Some(len) = num(len) else {
            return Resp::Invalid;
        };
        if !(0..=(1 << 20)).contains(&len) {
            return Resp::Invalid;
        }
        let len = len as usize;
        if b.len() < next + len + 2 {
            return Resp::Incomplete;
        }
        if args.len() < MAX_ITEMS {
            args.push(b[next..next + len].to_vec());
        }
        at = next + len + 2;
    }
    Resp::Command(args, at)
}

async fn redis<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
) -> io::Result<()> {
    let mut n = 0;
    while n < MAX_COMMANDS {
        match parse_resp(&c.buf) {
            Resp::Incomplete => {
                if c.fill().await? == 0 {
                    return Ok(());
                }
            }
            Resp::Invalid => {
                cap.payload(&c.head);
                c.send(b"-ERR Protocol error\r\n").await?;
                return Ok(());
            }
            Resp::Command(args, used) => {
                c.buf.drain(..used);
                n += 1;
                if args.is_empty() {
                    continue;
                }
                let words: Vec<String> = args.iter().map(|a| lossy(a, SHORT)).collect();
                let verb = words[0].to_ascii_uppercase();
                match verb.as_str() {
                    "AUTH" => {
                        match words.len() {
                            2 => cap.cred("default", &words[1]),
                            3.. => cap.cred(&words[1], &words[2]),
                            _ => {}
                        }
                        cap.logged_in = Some(false);
                        cap.command("AUTH ****");
                        c.send(
                            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
                        )
                        .await?;
                    }
                    "PING" => {
                        cap.command(&words.join(" "));
                        c.send(b"-NOAUTH Authentication required.\r\n").await?;
                    }
                    "QUIT" => {
                        c.send(b"+OK\r\n").await?;
                        return Ok(());
                    }
                    _ => {
                        cap.command(&words.join(" "));
                        c.send(b"-NOAUTH Authentication required.\r\n").await?;
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- mysql

/// What a MySQL HandshakeResponse41 carries.
#[derive(Debug, PartialEq, Eq)]
pub struct MysqlLogin {
    /// User name.
    pub user: String,
    /// Scrambled auth response, hex.
    pub auth_hex: String,
    /// Initial database.
    pub database: Option<String>,
    /// Client auth plugin.
    pub plugin: Option<String>,
    /// The client asked for TLS (SSLRequest).
    pub ssl: bool,
}

/// Parses a HandshakeResponse41 payload (without the 4-byte packet header).
pub fn parse_mysql_login(p: &[u8]) -> Option<MysqlLogin> {
    const CONNECT_WITH_DB: u32 = 0x8;
    const SSL: u32 = 0x800;
    const SECURE: u32 = 0x8000;
    const PLUGIN_AUTH: u32 = 0x8_0000;
    const LENENC: u32 = 0x20_0000;
    let caps = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    if p.len() == 32 && caps & SSL != 0 {
        return Some(MysqlLogin {
            user: String::new(),
            auth_hex: String::new(),
            database: None,
            plugin: None,
            ssl: true,
        });
    }
    let mut at = 32;
    let cstr = |at: &mut usize| -> Option<String> {
        let rest = p.get(*at..)?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        *at += end + 1;
        Some(lossy(&rest[..end], SHORT))
    };
    let user = cstr(&mut at)?;
    let auth: &[u8] = if caps & LENENC != 0 {
        let l = *p.get(at)? as usize;
        if l >= 0xfb {
            return None;
        }
        at += 1;
        let a = p.get(at..at + l)?;
        at += l;
        a
    } else if caps & SECURE != 0 {
        let l = *p.get(at)? as usize;
        at += 1;
        let a = p.get(at..at + l)?;
        at += l;
        a
    } else {
        let rest = p.get(at..)?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let a = &rest[..end];
        at += end + 1;
        a
    };
    let auth_hex = hex::encode(&auth[..auth.len().min(64)]);
    let database = if caps & CONNECT_WITH_DB != 0 {
        cstr(&mut at).filter(|d| !d.is_empty())
    } else {
        None
    };
    let plugin = if caps & PLUGIN_AUTH != 0 {
        cstr(&mut at).filter(|d| !d.is_empty())
    } else {
        None
    };
    Some(MysqlLogin {
        user,
        auth_hex,
        database,
        plugin,
        ssl: false,
    })
}

async fn mysql<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    banner: Option<&str>,
) -> io::Result<()> {
    let version = banner.unwrap_or("5.7.42-log");
    let salt: [u8; 20] = rand::random::<[u8; 20]>().map(|b| b % 94 + 33);
    let mut p = vec![10u8];
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&rand::random::<u32>().to_le_bytes()[..3]);
    p.push(0);
    p.extend_from_slice(&salt[..8]);
    p.push(0);
    // capabilities low: LONG_PASSWORD|FOUND_ROWS|LONG_FLAG|CONNECT_WITH_DB|PROTOCOL_41|SECURE_CONNECTION|TRANSACTIONS
    p.extend_from_slice(&0xa20fu16.to_le_bytes());
    p.push(33); // utf8_general_ci
    p.extend_from_slice(&2u16.to_le_bytes()); // status: autocommit
    p.extend_from_slice(&0x0008u16.to_le_bytes()); // caps high: PLUGIN_AUTH
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(&salt[8..]);
    p.push(0);
    p.extend_from_slice(b"mysql_native_password\0");
    let mut pkt = (p.len() as u32).to_le_bytes()[..3].to_vec();
    pkt.push(0);
    pkt.extend_from_slice(&p);
    c.send(&pkt).await?;
    let Some(h) = c.exact(4).await? else {
        return Ok(());
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    let Some(body) = c.exact(len.min(8192)).await? else {
        return Ok(());
    };
    match parse_mysql_login(&body) {
        Some(l) if l.ssl => cap
            .extra
            .insert("ssl_requested".into(), Value::Bool(true))
            .map_or((), |_| ()),
        Some(l) => {
            cap.cred(&l.user, "");
            cap.logged_in = Some(false);
            cap.extra_str("auth_response_hex", &l.auth_hex);
            if let Some(d) = &l.database {
                cap.extra_str("database", d);
            }
            if let Some(pl) = &l.plugin {
                cap.extra_str("auth_plugin", pl);
            }
            let msg = format!(
                "Access denied for user '{}'@'localhost' (using password: {})",
                l.user,
                if l.auth_hex.is_empty() { "NO" } else { "YES" }
            );
            let mut e = vec![0xff];
            e.extend_from_slice(&1045u16.to_le_bytes());
            e.extend_from_slice(b"#28000");
            e.extend_from_slice(msg.as_bytes());
            let mut pkt = (e.len() as u32).to_le_bytes()[..3].to_vec();
            pkt.push(2);
            pkt.extend_from_slice(&e);
            c.send(&pkt).await?;
        }
        None => cap.payload(&c.head),
    }
    Ok(())
}

// ---------------------------------------------------------------- vnc

async fn vnc<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
) -> io::Result<()> {
    c.send(b"RFB 003.008\n").await?;
    let Some(v) = c.exact(12).await? else {
        return Ok(());
    };
    cap.client_version = Some(text(v.strip_suffix(b"\n").unwrap_or(&v)));
    if !v.starts_with(b"RFB 003.") {
        cap.payload(&c.head);
        return Ok(());
    }
    c.send(&[1, 2]).await?; // one security type: VNC authentication
    let Some(sel) = c.exact(1).await? else {
        return Ok(());
    };
    cap.extra
        .insert("security_type".into(), Value::from(sel[0]));
    let challenge: [u8; 16] = rand::random();
    c.send(&challenge).await?;
    let Some(resp) = c.exact(16).await? else {
        return Ok(());
    };
    cap.extra_str("challenge_hex", &hex::encode(challenge));
    cap.extra_str("response_hex", &hex::encode(resp));
    cap.logged_in = Some(false);
    c.send(&[0, 0, 0, 1]).await?;
    let reason = b"Authentication failed";
    c.send(&(reason.len() as u32).to_be_bytes()).await?;
    c.send(reason).await
}

// ---------------------------------------------------------------- first-packet protocols

async fn first_packet<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    parse: fn(&[u8], &mut Capture),
) -> io::Result<()> {
    // Wait for a first packet (or EOF), parse what arrived, then read until the client gives up.
    if c.fill().await? == 0 {
        return Ok(());
    }
    // Give a multi-segment first packet a moment.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), c.fill()).await;
    let first = c.buf.clone();
    parse(&first, cap);
    cap.payload(&c.head);
    c.buf.clear();
    c.drain_all().await
}

/// RDP: X.224 Connection Request; extracts `Cookie: mstshash=<user>` and the requested
/// security protocols.
pub fn parse_rdp(b: &[u8], cap: &mut Capture) {
    if b.first() != Some(&3) || b.len() < 11 {
        return;
    }
    let needle = b"Cookie: mstshash=";
    if let Some(i) = b.windows(needle.len()).position(|w| w == needle) {
        let rest = &b[i + needle.len()..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        let user = text(&rest[..end]);
        cap.extra_str("rdp_cookie", &user);
        cap.cred(&user, "");
    }
    // RDP_NEG_REQ: type 1, flags, length 8, requestedProtocols u32
    if b.len() >= 8 {
        let tail = &b[b.len() - 8..];
        if tail[0] == 1 && tail[2] == 8 && tail[3] == 0 {
            let proto = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
            cap.extra
                .insert("rdp_requested_protocols".into(), Value::from(proto));
        }
    }
}

/// SMB: NetBIOS session message carrying SMB1 or SMB2 negotiate; records the dialects.
pub fn parse_smb(b: &[u8], cap: &mut Capture) {
    let Some(msg) = b.get(4..) else { return };
    if msg.starts_with(b"\xffSMB") {
        cap.extra_str("smb_version", "1");
        if msg.get(4) == Some(&0x72) {
            // dialect strings: 0x02 "name" NUL ...
            let dialects: Vec<Value> = msg
                .get(35..)
                .unwrap_or(&[])
                .split(|&x| x == 0x02)
                .filter_map(|d| d.split(|&x| x == 0).next())
                .filter(|d| !d.is_empty())
                .take(32)
                .map(|d| Value::String(text(d)))
                .collect();
            cap.extra
                .insert("smb_dialects".into(), Value::Array(dialects));
        }
    } else if msg.starts_with(b"\xfeSMB") {
        cap.extra_str("smb_version", "2");
        if msg.get(12..14) == Some(&[0, 0]) && msg.len() >= 64 + 36 {
            let body = &msg[64..];
            let n = u16::from_le_bytes([body[2], body[3]]) as usize;
            let dialects: Vec<Value> = body
                .get(36..36 + 2 * n.min(32))
                .unwrap_or(&[])
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| Value::String(format!("0x{:04x}", u16::from_le_bytes([c[0], c[1]]))))
                .collect();
            cap.extra
                .insert("smb_dialects".into(), Value::Array(dialects));
        }
    }
}

/// S7comm: TPKT + COTP connection request; records TSAPs.
pub fn parse_s7(b: &[u8], cap: &mut Capture) {
    if b.first() != Some(&3) || b.len() < 7 {
        return;
    }
    let cotp_type = b[5] & 0xf0;
    cap.extra.insert("cotp_pdu".into(), Value::from(cotp_type));
    if cotp_type == 0xe0 {
        let mut i = 11;
        while i + 2 <= b.len() {
            let (code, len) = (b[i], b[i + 1] as usize);
            let Some(v) = b.get(i + 2..i + 2 + len) else {
                break;
            };
            match code {
                0xc1 => cap.extra_str("src_tsap", &hex::encode(v)),
                0xc2 => cap.extra_str("dst_tsap", &hex::encode(v)),
                _ => {}
            }
            i += 2 + len;
        }
    }
}

// ---------------------------------------------------------------- modbus

/// Parses Modbus/TCP frames: returns (unit id, function code) pairs and bytes used.
pub fn parse_modbus(b: &[u8]) -> (Vec<(u8, u8)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(h) = b.get(at..at + 7) {
        let len = u16::from_be_bytes([h[4], h[5]]) as usize;
        if h[2..4] != [0, 0] || !(2..=254).contains(&len) {
            return (out, usize::MAX);
        }
        let Some(&func) = b.get(at + 7) else { break };
        if b.len() < at + 6 + len {
            break;
        }
        out.push((h[6], func));
        at += 6 + len;
    }
    (out, at)
}

async fn modbus<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
) -> io::Result<()> {
    let mut funcs = Vec::new();
    loop {
        let (frames, used) = parse_modbus(&c.buf);
        if used == usize::MAX {
            cap.payload(&c.head);
            break;
        }
        for (unit, func) in &frames {
            if funcs.len() < MAX_ITEMS {
                funcs.push(Value::from(*func));
            }
            cap.extra.insert("unit_id".into(), Value::from(*unit));
        }
        // Answer each request with exception 01 (illegal function), echoing its id.
        if !frames.is_empty() {
            let mut frame_at = 0;
            for (unit, func) in &frames {
                let tid = [c.buf[frame_at], c.buf[frame_at + 1]];
                let len = u16::from_be_bytes([c.buf[frame_at + 4], c.buf[frame_at + 5]]) as usize;
                frame_at += 6 + len;
                c.send(&[tid[0], tid[1], 0, 0, 0, 3, *unit, func | 0x80, 0x01])
                    .await?;
            }
        }
        c.buf.drain(..used);
        if c.fill().await? == 0 {
            break;
        }
    }
    if !funcs.is_empty() {
        cap.extra
            .insert("modbus_functions".into(), Value::Array(funcs));
    }
    Ok(())
}

// ---------------------------------------------------------------- sip

async fn sip<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
) -> io::Result<()> {
    let Some(head) = c.until(b"\r\n\r\n", 8192).await? else {
        return Ok(());
    };
    parse_sip(&head, cap);
    if cap.extra.contains_key("sip_method") {
        let s = String::from_utf8_lossy(&head);
        let mut resp = String::from("SIP/2.0 401 Unauthorized\r\n");
        for l in s.split("\r\n") {
            let lk = l.to_ascii_lowercase();
            if ["via:", "from:", "to:", "call-id:", "cseq:"]
                .iter()
                .any(|p| lk.starts_with(p))
            {
                resp.push_str(&apiary_model::bounded::bounded(l, 512));
                resp.push_str("\r\n");
            }
        }
        resp.push_str("WWW-Authenticate: Digest realm=\"asterisk\", nonce=\"1a2b3c4d\"\r\nContent-Length: 0\r\n\r\n");
        c.send(resp.as_bytes()).await?;
    }
    c.drain_all().await
}

/// Records a SIP request's method, URI, From, To and User-Agent.
pub fn parse_sip(head: &[u8], cap: &mut Capture) {
    let s = String::from_utf8_lossy(head);
    let mut lines = s.split('\n').map(|l| l.trim_end_matches('\r'));
    let Some(first) = lines.next() else { return };
    let mut p = first.split(' ');
    let (Some(m), Some(uri), Some(ver)) = (p.next(), p.next(), p.next()) else {
        cap.payload(head);
        return;
    };
    if !ver.starts_with("SIP/") {
        cap.payload(head);
        return;
    }
    cap.extra_str("sip_method", m);
    cap.extra_str("sip_uri", uri);
    for l in lines.take(MAX_ITEMS) {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "from" | "f" => cap.extra_str("sip_from", v.trim()),
                "to" | "t" => cap.extra_str("sip_to", v.trim()),
                "user-agent" => cap.client_version = Some(text(v.trim().as_bytes())),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;

    fn junk(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn parsers_survive_random_and_truncated_input() {
        for seed in 1..300u64 {
            let b = junk(seed, (seed as usize * 7) % 700);
            let mut cap = Capture::default();
            let _ = strip_telnet(&b);
            let _ = parse_http_head(&b);
            let _ = parse_resp(&b);
            let _ = parse_mysql_login(&b);
            parse_rdp(&b, &mut cap);
            parse_smb(&b, &mut cap);
            parse_s7(&b, &mut cap);
            let _ = parse_modbus(&b);
            parse_sip(&b, &mut cap);
            for cut in [0, 1, 3, 4, 5, 8, 33] {
                let b = &b[..b.len().min(cut)];
                let _ = parse_mysql_login(b);
                let _ = parse_resp(b);
                parse_smb(b, &mut cap);
            }
        }
    }

    #[test]
    fn telnet_negotiation_is_stripped() {
        assert_eq!(
            strip_telnet(b"\xff\xfb\x01ro\x00ot\xff\xfa\x18\x00xterm\xff\xf0"),
            b"root"
        );
        assert_eq!(strip_telnet(b"a\xff\xffb\xff"), b"a\xffb");
    }

    #[test]
    fn http_head() {
        let (h, cl) = parse_http_head(b"POST /cgi-bin/x?a=<script> HTTP/1.1\r\nHost: h\r\nUser-Agent: zgrab\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/cgi-bin/x?a=<script>");
        assert_eq!(h.user_agent.as_deref(), Some("zgrab"));
        assert_eq!(cl, Some(5));
        assert!(parse_http_head(b"\x16\x03\x01\x02\x00").is_none());
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100_000));
        assert!(parse_http_head(long.as_bytes()).unwrap().0.path.len() <= MEDIUM);
        let many: String = (0..10_000).map(|i| format!("X-{i}: v\r\n")).collect();
        let (h, _) = parse_http_head(format!("GET / HTTP/1.0\r\n{many}").as_bytes()).unwrap();
        assert!(h.headers.len() <= 64);
    }

    #[test]
    fn resp_commands_and_limits() {
        assert_eq!(
            parse_resp(b"*2\r\n$4\r\nAUTH\r\n$6\r\nhunter\r\nrest"),
            Resp::Command(vec![b"AUTH".to_vec(), b"hunter".to_vec()], 26)
        );
        assert_eq!(
            parse_resp(b"*2\r\n$4\r\nAUTH\r\n$6\r\nhun"),
            Resp::Incomplete
        );
        assert_eq!(
            parse_resp(b"PING\r\n"),
            Resp::Command(vec![b"PING".to_vec()], 6)
        );
        assert_eq!(parse_resp(b"*99999999\r\n"), Resp::Invalid);
        assert_eq!(parse_resp(b"*1\r\n$999999999\r\n"), Resp::Invalid);
        assert_eq!(parse_resp(b"*1\r\n$-5\r\n"), Resp::Invalid);
        assert_eq!(parse_resp(b"*1\r\n:1\r\n"), Resp::Invalid);
        assert_eq!(parse_resp(&vec![b'A'; MAX_LINE + 1]), Resp::Invalid);
    }

    #[test]
    fn mysql_login_packet() {
        let mut p = Vec::new();
        p.extend_from_slice(&(0x8u32 | 0x200 | 0x8000 | 0x8_0000).to_le_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 33]);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"root\0");
        p.push(20);
        p.extend_from_slice(&[0xab; 20]);
        p.extend_from_slice(b"mysql\0mysql_native_password\0");
        let l = parse_mysql_login(&p).unwrap();
        assert_eq!(l.user, "root");
        assert_eq!(l.auth_hex, "ab".repeat(20));
        assert_eq!(l.database.as_deref(), Some("mysql"));
        assert_eq!(l.plugin.as_deref(), Some("mysql_native_password"));
        // Lying auth length.
        let mut bad = p.clone();
        bad[32 + 5] = 250;
        assert!(parse_mysql_login(&bad).is_none());
    }

    #[test]
    fn rdp_cookie_and_modbus() {
        let mut b = vec![3, 0, 0, 0x2b, 0x26, 0xe0, 0, 0, 0, 0, 0];
        b.extend_from_slice(b"Cookie: mstshash=administr\r\n");
        b.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        let mut cap = Capture::default();
        parse_rdp(&b, &mut cap);
        assert_eq!(cap.credentials[0].username, "administr");
        assert_eq!(cap.extra["rdp_requested_protocols"], 3);
        let (f, used) = parse_modbus(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10, 0, 2]);
        assert_eq!(f, vec![(1, 3)]);
        assert_eq!(used, 12);
        assert_eq!(parse_modbus(&[0, 1, 9, 9, 0, 6, 1, 3]).1, usize::MAX);
        assert_eq!(parse_modbus(&[0, 1, 0, 0, 255, 255, 1, 3]).1, usize::MAX);
    }

    async fn talk(kind: Kind, input: &[u8], max: u64) -> (Capture, Vec<u8>, std::io::Result<()>) {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        a.write_all(input).await.unwrap();
        a.shutdown().await.unwrap();
        let mut cap = Capture::default();
        let mut c = Conn::new(b, max);
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            run(kind, &mut c, &mut cap, None, None, &Opts::default()),
        )
        .await
        .expect("handler hung");
        drop(c);
        let mut out = Vec::new();
        a.read_to_end(&mut out).await.unwrap();
        (cap, out, r)
    }

    #[tokio::test]
    async fn handlers_capture_credentials() {
        let (cap, out, _) = talk(
            Kind::Ftp,
            b"USER admin\r\nPASS s3cret\r\nSITE EXEC x\r\nQUIT\r\n",
            1 << 16,
        )
        .await;
        assert_eq!(
            cap.credentials,
            vec![crate::event::Cred {
                username: "admin".into(),
                password: "s3cret".into()
            }]
        );
        assert_eq!(cap.commands, vec!["SITE EXEC x"]);
        assert!(out.starts_with(b"220 "));
        let (cap, _, _) = talk(
            Kind::Telnet,
            b"\xff\xfd\x01root\r\n123456\r\nadmin\r\nadmin\r\n",
            1 << 16,
        )
        .await;
        assert_eq!(cap.credentials.len(), 2);
        assert_eq!(cap.credentials[0].username, "root");
        assert_eq!(cap.credentials[0].password, "123456");
        let (cap, out, _) = talk(
            Kind::Redis,
            b"*2\r\n$4\r\nAUTH\r\n$3\r\npw1\r\nCONFIG GET *\r\n",
            1 << 16,
        )
        .await;
        assert_eq!(cap.credentials[0].password, "pw1");
        assert_eq!(cap.commands, vec!["AUTH ****", "CONFIG GET *"]);
        assert!(out.starts_with(b"-WRONGPASS"));
        let (cap, out, _) = talk(
            Kind::Http,
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nuser=evil",
            1 << 16,
        )
        .await;
        let h = cap.http.unwrap();
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.body.as_deref()),
            ("POST", "/login", Some("user=evil"))
        );
        assert!(out.starts_with(b"HTTP/1.1 200 OK"));
    }

    #[tokio::test]
    async fn hostile_streams_hit_the_byte_limit() {
        // An endless line, a huge HTTP head, a giant content-length, RESP bomb.
        for (kind, input) in [
            (Kind::Ftp, vec![b'A'; 200_000]),
            (Kind::Telnet, vec![b'\n'; 200_000]),
            (
                Kind::Http,
                [b"GET / HTTP/1.1\r\n".as_slice(), &vec![b'X'; 200_000]].concat(),
            ),
            (
                Kind::Http,
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(b'z', 200_000))
                    .collect(),
            ),
            (
                Kind::Redis,
                b"*1024\r\n"
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(b'$', 200_000))
                    .collect(),
            ),
            (Kind::Tcp, vec![0; 200_000]),
            // SMB: a NetBIOS length just under the cap, then endless bytes.
            (
                Kind::Smb,
                [&[0u8, 0, 0xff, 0xff][..], &[0x41; 200_000]].concat(),
            ),
            // SMB: endless NetBIOS keepalives.
            (Kind::Smb, [0x85u8, 0, 0, 0].repeat(50_000)),
            // MSSQL: a LOGIN7 split into endless non-final packets.
            (
                Kind::Mssql,
                [0x10u8, 0, 0, 12, 0, 0, 1, 0, 1, 2, 3, 4].repeat(20_000),
            ),
            (
                Kind::Modbus,
                [0u8, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1].repeat(20_000),
            ),
        ] {
            let (cap, _, r) = talk(kind, &input, 10_000).await;
            let limited = matches!(&r, Err(e) if super::super::conn::is_byte_limit(e));
            assert!(limited || r.is_ok(), "{kind:?}: {r:?}");
            let json = serde_json::to_string(&cap).unwrap();
            assert!(
                json.len() < 40_000,
                "{kind:?} capture too big: {}",
                json.len()
            );
        }
    }
}
