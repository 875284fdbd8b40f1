//! SMB2 with NTLM capture: enough of SMB2 (MS-SMB2) and NTLMSSP (MS-NLMP) inside SPNEGO
//! (RFC 4178) for a real client to send its NTLM AUTHENTICATE message, which carries the
//! user, domain, workstation and the NetNTLMv1/v2 response (recorded in hashcat format).
//!
//! The exchange:
//! 1. SMB1 NEGOTIATE offering `SMB 2.???` / `SMB 2.002` → SMB2 NEGOTIATE response
//!    (dialect 0x02FF / 0x0202), so the client upgrades; SMB1-only clients are dropped.
//! 2. SMB2 NEGOTIATE → response with dialect 2.0.2–3.0.2 and a SPNEGO init token
//!    offering NTLMSSP only.
//! 3. SESSION_SETUP with NTLMSSP NEGOTIATE (SPNEGO-wrapped or raw) → NTLMSSP CHALLENGE
//!    (random server challenge, target info from [`Names`]), STATUS_MORE_PROCESSING_REQUIRED.
//! 4. SESSION_SETUP with NTLMSSP AUTHENTICATE → recorded, STATUS_LOGON_FAILURE.
//!
//! [`Session::step`] is a pure state machine over one NetBIOS message (no IO); the
//! framing loop is [`run`].

use std::io;

use apiary_model::bounded::MEDIUM;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::Conn;
use crate::event::Capture;

/// Largest NetBIOS message read (SMB2 NEGOTIATE/SESSION_SETUP are far smaller).
const MAX_MSG: usize = 64 * 1024;
/// Most messages handled per connection.
const MAX_MESSAGES: usize = 64;

const STATUS_SUCCESS: u32 = 0;
const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xC000_0016;
const STATUS_LOGON_FAILURE: u32 = 0xC000_006D;
const STATUS_ACCESS_DENIED: u32 = 0xC000_0022;
const STATUS_NOT_SUPPORTED: u32 = 0xC000_00BB;

const SMB2_NEGOTIATE: u16 = 0;
const SMB2_SESSION_SETUP: u16 = 1;
const SMB2_LOGOFF: u16 = 2;
const SMB2_ECHO: u16 = 0x0d;

/// SPNEGO OID 1.3.6.1.5.5.2.
const OID_SPNEGO: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// NTLMSSP OID 1.3.6.1.4.1.311.2.2.10.
const OID_NTLMSSP: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];
const NTLMSSP: &[u8] = b"NTLMSSP\0";

// NTLM negotiate flags.
const NTLM_UNICODE: u32 = 0x0000_0001;
const NTLM_OEM: u32 = 0x0000_0002;
const NTLM_REQUEST_TARGET: u32 = 0x0000_0004;
const NTLM_NTLM: u32 = 0x0000_0200;
const NTLM_TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const NTLM_TARGET_INFO: u32 = 0x0080_0000;
/// Echoed when the client asks: SIGN, SEAL, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY,
/// VERSION, 128, KEY_EXCH, 56.
const NTLM_OPTIONAL: u32 = 0x0000_0010
    | 0x0000_0020
    | 0x0000_8000
    | 0x0008_0000
    | 0x0200_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x8000_0000;

/// The names the server claims in the NTLM CHALLENGE target info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// NetBIOS domain (also the NTLM target name), e.g. `CORP`.
    pub netbios_domain: String,
    /// NetBIOS computer name, e.g. `FILESRV01`.
    pub netbios_name: String,
    /// DNS domain, e.g. `corp.local`; the DNS computer name is `<name>.<dns_domain>`.
    pub dns_domain: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            netbios_domain: "CORP".into(),
            netbios_name: "FILESRV01".into(),
            dns_domain: "corp.local".into(),
        }
    }
}

/// The fields of an NTLMSSP AUTHENTICATE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtlmAuth {
    /// User name.
    pub user: String,
    /// Domain.
    pub domain: String,
    /// Client workstation.
    pub workstation: String,
    /// LmChallengeResponse.
    pub lm: Vec<u8>,
    /// NtChallengeResponse.
    pub nt: Vec<u8>,
}

impl NtlmAuth {
    /// The response in hashcat format for `challenge`: NetNTLMv2 (mode 5600)
    /// `user::domain:challenge:ntproofstr:blob`, or NetNTLMv1 (mode 5500)
    /// `user::domain:lm:nt:challenge`; `None` for an anonymous (empty) response.
    pub fn hashcat(&self, challenge: &[u8; 8]) -> Option<String> {
        let ch = hex::encode(challenge);
        match self.nt.len() {
            0 => None,
            24 => Some(format!(
                "{}::{}:{}:{}:{}",
                self.user,
                self.domain,
                hex::encode(&self.lm),
                hex::encode(&self.nt),
                ch
            )),
            n if n > 24 => Some(format!(
                "{}::{}:{}:{}:{}",
                self.user,
                self.domain,
                ch,
                hex::encode(self.nt.get(..16)?),
                hex::encode(self.nt.get(16..)?)
            )),
            _ => None,
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .take(1024)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn to_utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// The NTLMSSP message inside a security blob: raw, or anywhere inside a SPNEGO token
/// (fields of an NTLM message are offsets from its signature, so trailing SPNEGO bytes
/// such as a mechListMIC do no harm). Returns the message and whether it was wrapped.
pub fn ntlm_in_blob(blob: &[u8]) -> Option<(&[u8], bool)> {
    let i = blob.windows(NTLMSSP.len()).position(|w| w == NTLMSSP)?;
    Some((blob.get(i..)?, i > 0))
}

/// NTLM message type (1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE).
pub fn ntlm_type(m: &[u8]) -> Option<u32> {
    if !m.starts_with(NTLMSSP) {
        return None;
    }
    u32_at(m, 8)
}

/// A `(len u16, maxlen u16, offset u32)` field of an NTLM message.
fn ntlm_field(m: &[u8], at: usize) -> Option<&[u8]> {
    let len = u16_at(m, at)? as usize;
    let off = u32_at(m, at + 4)? as usize;
    m.get(off..off.checked_add(len)?)
}

/// Parses an NTLMSSP AUTHENTICATE message.
pub fn parse_ntlm_auth(m: &[u8]) -> Option<NtlmAuth> {
    if ntlm_type(m)? != 3 {
        return None;
    }
    let flags = u32_at(m, 60).unwrap_or(NTLM_UNICODE);
    let s = |b: &[u8]| -> String {
        if flags & NTLM_UNICODE != 0 {
            utf16(b)
        } else {
            apiary_model::bounded::lossy(b, 1024)
        }
    };
    let lm = ntlm_field(m, 12)?;
    let nt = ntlm_field(m, 20)?;
    Some(NtlmAuth {
        domain: s(ntlm_field(m, 28)?),
        user: s(ntlm_field(m, 36)?),
        workstation: ntlm_field(m, 44).map(&s).unwrap_or_default(),
        lm: lm.get(..lm.len().min(1024)).unwrap_or_default().to_vec(),
        nt: nt.get(..nt.len().min(4096)).unwrap_or_default().to_vec(),
    })
}

/// Windows FILETIME for now.
fn filetime_now() -> u64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (unix + 11_644_473_600) * 10_000_000
}

/// Builds an NTLMSSP CHALLENGE answering a NEGOTIATE with `client_flags`.
pub fn ntlm_challenge(names: &Names, challenge: &[u8; 8], client_flags: u32) -> Vec<u8> {
    let mut flags = NTLM_REQUEST_TARGET
        | NTLM_NTLM
        | NTLM_TARGET_TYPE_DOMAIN
        | NTLM_TARGET_INFO
        | (client_flags & NTLM_OPTIONAL);
    flags |= if client_flags & NTLM_UNICODE != 0 || client_flags & NTLM_OEM == 0 {
        NTLM_UNICODE
    } else {
        NTLM_OEM
    };
    let target = to_utf16(&names.netbios_domain);
    let dns_host = format!(
        "{}.{}",
        names.netbios_name.to_ascii_lowercase(),
        names.dns_domain
    );
    let mut info = Vec::new();
    let mut av = |id: u16, v: &[u8]| {
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(v.len() as u16).to_le_bytes());
        info.extend_from_slice(v);
    };
    av(2, &to_utf16(&names.netbios_domain));
    av(1, &to_utf16(&names.netbios_name));
    av(4, &to_utf16(&names.dns_domain));
    av(3, &to_utf16(&dns_host));
    av(5, &to_utf16(&names.dns_domain));
    av(7, &filetime_now().to_le_bytes());
    av(0, &[]);
    let payload_at = 56u32;
    let mut m = Vec::with_capacity(56 + target.len() + info.len());
    m.extend_from_slice(NTLMSSP);
    m.extend_from_slice(&2u32.to_le_bytes());
    m.extend_from_slice(&(target.len() as u16).to_le_bytes());
    m.extend_from_slice(&(target.len() as u16).to_le_bytes());
    m.extend_from_slice(&payload_at.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(challenge);
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&(payload_at + target.len() as u32).to_le_bytes());
    // Version: Windows 10.0 build 17763, NTLM revision 15.
    m.extend_from_slice(&[10, 0, 0x63, 0x45, 0, 0, 0, 15]);
    m.extend_from_slice(&target);
    m.extend_from_slice(&info);
    m
}

/// DER tag + definite length + content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

/// The SPNEGO NegTokenInit of the NEGOTIATE response: mechTypes = [NTLMSSP].
pub fn spnego_init() -> Vec<u8> {
    let mech_list = der(0xa0, &der(0x30, OID_NTLMSSP));
    let init = der(0xa0, &der(0x30, &mech_list));
    der(0x60, &[OID_SPNEGO, &init].concat())
}

/// A SPNEGO NegTokenResp (accept-incomplete, NTLMSSP) carrying `token`.
pub fn spnego_resp(token: &[u8]) -> Vec<u8> {
    let state = der(0xa0, &[0x0a, 0x01, 0x01]);
    let mech = der(0xa1, OID_NTLMSSP);
    let tok = der(0xa2, &der(0x04, token));
    der(0xa1, &der(0x30, &[state, mech, tok].concat()))
}

/// Per-connection SMB state.
#[derive(Debug)]
pub struct Session {
    names: Names,
    challenge: [u8; 8],
    session_id: u64,
    server_guid: [u8; 16],
    dialect: Option<u16>,
    authenticated: usize,
}

impl Session {
    /// New state with a random server challenge.
    pub fn new(names: Names) -> Session {
        Session::with_challenge(names, rand::random())
    }

    /// New state with a given server challenge (tests).
    pub fn with_challenge(names: Names, challenge: [u8; 8]) -> Session {
        Session {
            names,
            challenge,
            session_id: rand::random::<u64>() | 1,
            server_guid: rand::random(),
            dialect: None,
            authenticated: 0,
        }
    }

    /// Handles one NetBIOS message payload; returns the payload to send back, or `None`
    /// to close the connection.
    pub fn step(&mut self, msg: &[u8], cap: &mut Capture) -> Option<Vec<u8>> {
        if msg.starts_with(b"\xffSMB") {
            return self.smb1(msg);
        }
        if !msg.starts_with(b"\xfeSMB") || msg.len() < 64 {
            return None;
        }
        let cmd = u16_at(msg, 12)?;
        let msg_id = u64_at(msg, 24)?;
        let credits = u16_at(msg, 14)?.clamp(1, 64);
        let ids: [u8; 8] = msg.get(32..40)?.try_into().ok()?;
        let body = msg.get(64..)?;
        let hdr = |status: u32, sid: u64| header(cmd, status, msg_id, credits, ids, sid);
        match cmd {
            SMB2_NEGOTIATE => {
                let n = u16_at(body, 2)? as usize;
                let offered: Vec<u16> = body
                    .get(36..36 + 2 * n.min(64))?
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let dialect = [0x0302, 0x0300, 0x0210, 0x0202]
                    .into_iter()
                    .find(|d| offered.contains(d))?;
                self.dialect = Some(dialect);
                cap.extra_str("smb_dialect", &format!("0x{dialect:04x}"));
                let mut out = hdr(STATUS_SUCCESS, 0);
                out.extend_from_slice(&self.negotiate_body(dialect));
                Some(out)
            }
            SMB2_SESSION_SETUP => {
                let off = u16_at(body, 12)? as usize;
                let len = u16_at(body, 14)? as usize;
                let sid = match u64_at(msg, 40)? {
                    0 => self.session_id,
                    s => s,
                };
                let blob = msg.get(off..off.checked_add(len)?)?;
                let Some((ntlm, wrapped)) = ntlm_in_blob(blob) else {
                    // Kerberos or garbage: refuse this mechanism.
                    return Some(error(hdr(STATUS_LOGON_FAILURE, sid)));
                };
                match ntlm_type(ntlm)? {
                    1 => {
                        let flags = u32_at(ntlm, 12).unwrap_or(0);
                        let ch = ntlm_challenge(&self.names, &self.challenge, flags);
                        let token = if wrapped { spnego_resp(&ch) } else { ch };
                        let mut out = hdr(STATUS_MORE_PROCESSING_REQUIRED, sid);
                        out.extend_from_slice(&9u16.to_le_bytes());
                        out.extend_from_slice(&0u16.to_le_bytes());
                        out.extend_from_slice(&72u16.to_le_bytes());
                        out.extend_from_slice(&(token.len() as u16).to_le_bytes());
                        out.extend_from_slice(&token);
                        Some(out)
                    }
                    3 => {
                        if let Some(a) = parse_ntlm_auth(ntlm) {
                            self.record(&a, cap);
                        }
                        Some(error(hdr(STATUS_LOGON_FAILURE, sid)))
                    }
                    _ => Some(error(hdr(STATUS_LOGON_FAILURE, sid))),
                }
            }
            SMB2_LOGOFF | SMB2_ECHO => {
                let mut out = hdr(STATUS_SUCCESS, u64_at(msg, 40)?);
                out.extend_from_slice(&[4, 0, 0, 0]);
                Some(out)
            }
            _ => {
                cap.extra.insert("smb_command".into(), Value::from(cmd));
                let status = if self.dialect.is_some() {
                    STATUS_ACCESS_DENIED
                } else {
                    STATUS_NOT_SUPPORTED
                };
                Some(error(hdr(status, u64_at(msg, 40)?)))
            }
        }
    }

    /// SMB1 NEGOTIATE offering SMB2: answer with an SMB2 NEGOTIATE response.
    fn smb1(&mut self, msg: &[u8]) -> Option<Vec<u8>> {
        if msg.get(4) != Some(&0x72) {
            return None;
        }
        let dialects = msg.get(35..)?;
        let has = |d: &[u8]| dialects.split(|&x| x == 0).any(|s| s.ends_with(d));
        let dialect = if has(b"SMB 2.???") {
            0x02ff
        } else if has(b"SMB 2.002") {
            0x0202
        } else {
            return None;
        };
        let mut out = header(SMB2_NEGOTIATE, STATUS_SUCCESS, 0, 1, [0; 8], 0);
        out.extend_from_slice(&self.negotiate_body(dialect));
        Some(out)
    }

    fn negotiate_body(&self, dialect: u16) -> Vec<u8> {
        let blob = spnego_init();
        let mut b = Vec::with_capacity(64 + blob.len());
        b.extend_from_slice(&65u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes()); // signing enabled
        b.extend_from_slice(&dialect.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.server_guid);
        b.extend_from_slice(&0u32.to_le_bytes()); // capabilities
        for _ in 0..3 {
            b.extend_from_slice(&0x0080_0000u32.to_le_bytes()); // max transact/read/write
        }
        b.extend_from_slice(&filetime_now().to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&128u16.to_le_bytes());
        b.extend_from_slice(&(blob.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&blob);
        b
    }

    fn record(&mut self, a: &NtlmAuth, cap: &mut Capture) {
        let anonymous = a.user.is_empty() && a.nt.is_empty();
        if anonymous {
            cap.extra.insert("ntlm_anonymous".into(), Value::Bool(true));
            return;
        }
        let username = if a.domain.is_empty() {
            a.user.clone()
        } else {
            format!("{}\\{}", a.domain, a.user)
        };
        cap.cred(&username, "");
        cap.logged_in = Some(false);
        self.authenticated += 1;
        if self.authenticated > 1 {
            return;
        }
        cap.extra_str("ntlm_user", &a.user);
        cap.extra_str("ntlm_domain", &a.domain);
        cap.extra_str("ntlm_workstation", &a.workstation);
        match a.hashcat(&self.challenge) {
            // A cut hash cannot be cracked: kept whole or not at all.
            Some(h) if h.len() <= MEDIUM => {
                cap.extra.insert("ntlm_hash".into(), Value::String(h));
            }
            Some(_) => {
                cap.extra
                    .insert("ntlm_hash_too_long".into(), Value::from(a.nt.len()));
            }
            None => {}
        }
    }
}

/// An SMB2 sync response header.
fn header(cmd: u16, status: u32, msg_id: u64, credits: u16, ids: [u8; 8], sid: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(128);
    h.extend_from_slice(b"\xfeSMB");
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes()); // credit charge
    h.extend_from_slice(&status.to_le_bytes());
    h.extend_from_slice(&cmd.to_le_bytes());
    h.extend_from_slice(&credits.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // SERVER_TO_REDIR
    h.extend_from_slice(&0u32.to_le_bytes()); // next command
    h.extend_from_slice(&msg_id.to_le_bytes());
    h.extend_from_slice(&ids);
    h.extend_from_slice(&sid.to_le_bytes());
    h.extend_from_slice(&[0; 16]);
    h
}

/// Appends an SMB2 ERROR response body.
fn error(mut h: Vec<u8>) -> Vec<u8> {
    h.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 0]);
    h
}

/// Serves one SMB connection (direct TCP, port 445; NetBIOS session requests on 139 are
/// answered positively).
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
    cap: &mut Capture,
    names: &Names,
) -> io::Result<()> {
    let mut s = Session::new(names.clone());
    let mut first = true;
    for _ in 0..MAX_MESSAGES {
        let Some(h) = c.exact(4).await? else {
            return Ok(());
        };
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        if len > MAX_MSG {
            cap.payload(&c.head);
            return Ok(());
        }
        let Some(msg) = c.exact(len).await? else {
            return Ok(());
        };
        match h[0] {
            0x00 => {}
            0x81 => {
                c.send(&[0x82, 0, 0, 0]).await?;
                continue;
            }
            0x85 => continue,
            _ => {
                cap.payload(&c.head);
                return Ok(());
            }
        }
        if first {
            first = false;
            super::proto::parse_smb(&[&h[..], &msg[..]].concat(), cap);
        }
        let Some(out) = s.step(&msg, cap) else {
            if !cap.extra.contains_key("ntlm_user") {
                cap.payload(&c.head);
            }
            return Ok(());
        };
        let n = out.len() as u32;
        let mut frame = Vec::with_capacity(4 + out.len());
        frame.extend_from_slice(&[0, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        frame.extend_from_slice(&out);
        c.send(&frame).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smb2(cmd: u16, msg_id: u64, sid: u64, body: &[u8]) -> Vec<u8> {
        let mut h = header(cmd, 0, msg_id, 1, [0; 8], sid);
        h[16] = 0; // request
        h.extend_from_slice(body);
        h
    }

    fn negotiate_req(dialects: &[u16]) -> Vec<u8> {
        let mut b = vec![36, 0];
        b.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 32]);
        for d in dialects {
            b.extend_from_slice(&d.to_le_bytes());
        }
        smb2(SMB2_NEGOTIATE, 0, 0, &b)
    }

    fn setup_req(msg_id: u64, sid: u64, blob: &[u8]) -> Vec<u8> {
        let mut b = vec![25, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&88u16.to_le_bytes());
        b.extend_from_slice(&(blob.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(blob);
        smb2(SMB2_SESSION_SETUP, msg_id, sid, &b)
    }

    fn ntlm_negotiate() -> Vec<u8> {
        let mut m = NTLMSSP.to_vec();
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&0xe208_8297u32.to_le_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    fn ntlm_authenticate(user: &str, domain: &str, ws: &str, lm: &[u8], nt: &[u8]) -> Vec<u8> {
        let fields: Vec<Vec<u8>> = vec![
            lm.to_vec(),
            nt.to_vec(),
            to_utf16(domain),
            to_utf16(user),
            to_utf16(ws),
            vec![],
        ];
        let mut m = NTLMSSP.to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        let mut at = 12 + 6 * 8 + 4 + 8;
        let mut payload = Vec::new();
        for f in &fields {
            m.extend_from_slice(&(f.len() as u16).to_le_bytes());
            m.extend_from_slice(&(f.len() as u16).to_le_bytes());
            m.extend_from_slice(&(at as u32).to_le_bytes());
            at += f.len();
            payload.extend_from_slice(f);
        }
        m.extend_from_slice(&0xe208_8215u32.to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&payload);
        m
    }

    fn status(r: &[u8]) -> u32 {
        u32_at(r, 8).unwrap()
    }

    #[test]
    fn smb1_negotiate_upgrades_to_smb2() {
        let mut m = b"\xffSMB\x72".to_vec();
        m.extend_from_slice(&[0; 30]);
        m.extend_from_slice(b"\x02NT LM 0.12\0\x02SMB 2.002\0\x02SMB 2.???\0");
        let mut s = Session::new(Names::default());
        let r = s.step(&m, &mut Capture::default()).unwrap();
        assert!(r.starts_with(b"\xfeSMB"));
        assert_eq!(u16_at(&r, 64 + 4), Some(0x02ff));
        let mut only1 = b"\xffSMB\x72".to_vec();
        only1.extend_from_slice(&[0; 30]);
        only1.extend_from_slice(b"\x02NT LM 0.12\0");
        assert!(s.step(&only1, &mut Capture::default()).is_none());
    }

    #[test]
    fn full_exchange_records_ntlmv2() {
        let mut s = Session::with_challenge(Names::default(), *b"\x01\x23\x45\x67\x89\xab\xcd\xef");
        let mut cap = Capture::default();
        let r = s
            .step(&negotiate_req(&[0x0202, 0x0210, 0x0300, 0x0311]), &mut cap)
            .unwrap();
        assert_eq!(status(&r), STATUS_SUCCESS);
        assert_eq!(u16_at(&r, 64 + 4), Some(0x0300));
        let off = u16_at(&r, 64 + 56).unwrap() as usize;
        let len = u16_at(&r, 64 + 58).unwrap() as usize;
        assert_eq!(&r[off..off + len], spnego_init().as_slice());
        // SPNEGO-wrapped NEGOTIATE (the token layout does not matter to the finder).
        let wrapped = [spnego_init(), ntlm_negotiate()].concat();
        let r = s.step(&setup_req(1, 0, &wrapped), &mut cap).unwrap();
        assert_eq!(status(&r), STATUS_MORE_PROCESSING_REQUIRED);
        let sid = u64_at(&r, 40).unwrap();
        assert_ne!(sid, 0);
        let blob = &r[72..];
        assert_eq!(blob[0], 0xa1);
        let (ch, _) = ntlm_in_blob(blob).unwrap();
        assert_eq!(ntlm_type(ch), Some(2));
        assert_eq!(&ch[24..32], b"\x01\x23\x45\x67\x89\xab\xcd\xef");
        assert_eq!(utf16(ntlm_field(ch, 12).unwrap()), "CORP");
        let info = ntlm_field(ch, 40).unwrap();
        assert!(utf16(info).contains("filesrv01.corp.local"));
        let mut nt = vec![0xaa; 16];
        nt.extend_from_slice(&[0x01, 0x01, 0, 0, 0, 0, 0, 0, 0xbb, 0xbb]);
        let auth = ntlm_authenticate("alice", "CORP", "WS7", &[0; 24], &nt);
        let r = s
            .step(&setup_req(2, sid, &spnego_resp(&auth)), &mut cap)
            .unwrap();
        assert_eq!(status(&r), STATUS_LOGON_FAILURE);
        assert_eq!(u64_at(&r, 40), Some(sid));
        assert_eq!(cap.credentials[0].username, "CORP\\alice");
        assert_eq!(cap.credentials[0].password, "");
        assert_eq!(cap.extra["ntlm_user"], "alice");
        assert_eq!(cap.extra["ntlm_domain"], "CORP");
        assert_eq!(cap.extra["ntlm_workstation"], "WS7");
        assert_eq!(
            cap.extra["ntlm_hash"],
            format!(
                "alice::CORP:0123456789abcdef:{}:0101000000000000bbbb",
                "aa".repeat(16)
            )
        );
        assert_eq!(cap.extra["smb_dialect"], "0x0300");
    }

    #[test]
    fn raw_ntlmssp_and_ntlmv1() {
        let mut s = Session::with_challenge(Names::default(), [7; 8]);
        let mut cap = Capture::default();
        let r = s
            .step(&setup_req(1, 0, &ntlm_negotiate()), &mut cap)
            .unwrap();
        assert!(r[72..].starts_with(NTLMSSP), "raw in, raw out");
        let auth = ntlm_authenticate("bob", "", "", &[1; 24], &[2; 24]);
        s.step(&setup_req(2, 5, &auth), &mut cap).unwrap();
        assert_eq!(cap.credentials[0].username, "bob");
        assert_eq!(
            cap.extra["ntlm_hash"],
            format!(
                "bob:::{}:{}:{}",
                "01".repeat(24),
                "02".repeat(24),
                "07".repeat(8)
            )
        );
        // An NT response too long for a whole hash line: no hash, its length instead.
        let mut cap = Capture::default();
        let huge = ntlm_authenticate("carol", "D", "", &[0; 24], &[3; 1500]);
        Session::new(Names::default())
            .step(&setup_req(3, 5, &huge), &mut cap)
            .unwrap();
        assert!(!cap.extra.contains_key("ntlm_hash"));
        assert_eq!(cap.extra["ntlm_hash_too_long"], 1500);
        // Anonymous: no credential, no hash.
        let mut cap = Capture::default();
        let anon = ntlm_authenticate("", "", "", &[0], &[]);
        s.step(&setup_req(3, 5, &anon), &mut cap).unwrap();
        assert!(cap.credentials.is_empty());
        assert!(!cap.extra.contains_key("ntlm_hash"));
    }

    #[test]
    fn hostile_input_never_panics() {
        let auth = ntlm_authenticate("u", "d", "w", &[1; 24], &[2; 40]);
        let good = [
            negotiate_req(&[0x0202]),
            setup_req(1, 0, &ntlm_negotiate()),
            setup_req(2, 1, &auth),
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for m in &good {
            for cut in 0..m.len() {
                let mut s = Session::new(Names::default());
                let _ = s.step(&m[..cut], &mut Capture::default());
                let _ = parse_ntlm_auth(&auth[..cut.min(auth.len())]);
            }
            for _ in 0..2000 {
                let mut b = m.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x as usize) % b.len();
                    b[i] = (x >> 32) as u8;
                }
                let mut s = Session::new(Names::default());
                let _ = s.step(&b, &mut Capture::default());
            }
        }
        // Lying NTLM field offsets/lengths.
        let mut bad = auth.clone();
        bad[36..44].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(parse_ntlm_auth(&bad).is_none());
        assert!(ntlm_in_blob(b"garbage").is_none());
    }

    #[tokio::test]
    async fn framing_over_a_stream() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let req = negotiate_req(&[0x0202]);
        let mut frame = vec![0, 0, (req.len() >> 8) as u8, req.len() as u8];
        frame.extend_from_slice(&req);
        frame.extend_from_slice(&[0x85, 0, 0, 0]); // keepalive
        frame.extend_from_slice(&[0, 0xff, 0xff, 0xff]); // oversized
        a.write_all(&frame).await.unwrap();
        a.shutdown().await.unwrap();
        let mut cap = Capture::default();
        let mut c = Conn::new(b, 1 << 16);
        run(&mut c, &mut cap, &Names::default()).await.unwrap();
        drop(c);
        let mut out = Vec::new();
        a.read_to_end(&mut out).await.unwrap();
        assert_eq!(&out[4..8], b"\xfeSMB");
        assert_eq!(cap.extra["smb_version"], "2");
    }
}
