//! Length bounds for attacker-controlled text.
//!
//! Everything that came off the wire is cut to a fixed number of bytes (on a UTF-8
//! boundary) before it is stored, so one hostile 1 MB username cannot bloat indexes or pages.

/// Limit for short fields: usernames, passwords, versions, protocols, honeypot names.
pub const SHORT: usize = 256;
/// Limit for URLs, paths, signatures, commands.
pub const MEDIUM: usize = 2048;
/// Limit for request bodies and other long free text kept in session details.
pub const LONG: usize = 16 * 1024;
/// Maximum number of items kept in a list field (credentials, commands, urls).
pub const MAX_ITEMS: usize = 256;

/// Cuts `s` to at most `max` bytes, respecting UTF-8 character boundaries.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Like [`truncate`] but from a borrowed string.
pub fn bounded(s: &str, max: usize) -> String {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_owned()
}

/// Decodes bytes as UTF-8, replacing invalid sequences, and bounds the result.
pub fn lossy(b: &[u8], max: usize) -> String {
    let b = &b[..b.len().min(max)];
    // A cut in the middle of a character becomes one replacement char; acceptable.
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("héllo".to_string(), 2), "h");
        assert_eq!(truncate("abc".to_string(), 10), "abc");
        assert_eq!(bounded("ééé", 3), "é");
        assert_eq!(lossy(b"ab\xffcd", 10), "ab\u{fffd}cd");
    }
}
