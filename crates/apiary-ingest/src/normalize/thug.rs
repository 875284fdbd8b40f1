//! Thug (client honeypot): `thug.events` (MAEC 1.1 XML) and `thug.files`. Neither yields a
//! session: Thug visits URLs, nobody attacks it.

use super::fields::{self as f};
use super::{NormalizeError, Result};
use apiary_model::bounded::{bounded, MAX_ITEMS, MEDIUM, SHORT};
use apiary_model::{Normalized, RawEvent, UrlRecord};

/// `thug.events`: one or more MAEC bundles (optionally wrapped in `<THUG_DATA>`). For each
/// `<Analysis>`: the URL is its first `<URI>`; each `<Code_Snippet language=..>` with a
/// `<Code_Segment>` becomes a file record (content guess = the language, e.g.
/// `Javascript`); then a URL record links the URL to those files' sha512.
///
/// The XML is scanned for these element names only (no namespace prefixes, no DTDs, no
/// external entities: a full XML parser would buy nothing but attack surface here). A
/// payload with no `<Analysis>` is an error.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let doc = String::from_utf8_lossy(&raw.payload);
    let analyses = elements(&doc, "Analysis");
    if analyses.is_empty() {
        return Err(NormalizeError::BadPayload("no MAEC <Analysis> element"));
    }
    for (_, body) in analyses {
        let url = elements(body, "URI")
            .first()
            .map(|(_, text)| bounded(unescape(text).trim(), MEDIUM))
            .filter(|u| !u.is_empty());
        let mut hashes = Vec::new();
        for (attrs, snippet) in elements(body, "Code_Snippet") {
            let Some((_, code)) = elements(snippet, "Code_Segment").into_iter().next() else {
                continue;
            };
            let language = attr(attrs, "language").map(|l| bounded(&unescape(l), SHORT));
            let file = f::file_record(unescape(code).into_bytes(), language, url.clone());
            hashes.push(file.sha512.clone());
            out.push(Normalized::File(file));
        }
        if let Some(url) = url {
            out.push(Normalized::Url(UrlRecord {
                url,
                file_sha512: hashes,
            }));
        }
    }
    Ok(())
}

/// `(attributes text, inner text)` of each `<name ...>...</name>` element, at most
/// `MAX_ITEMS`. Same-name nesting is not handled (MAEC does not nest these).
fn elements<'a>(doc: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut found = Vec::new();
    let mut rest = doc;
    while found.len() < MAX_ITEMS {
        let Some(i) = rest.find(&open) else { break };
        let after = rest.get(i + open.len()..).unwrap_or("");
        // `<Analysis` must not match `<Analyses`.
        if !after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        let attrs = after.get(..gt).unwrap_or("");
        let inner_start = after.get(gt + 1..).unwrap_or("");
        if attrs.ends_with('/') {
            found.push((attrs.trim_end_matches('/'), ""));
            rest = inner_start;
            continue;
        }
        match inner_start.find(&close) {
            Some(end) => {
                found.push((attrs, inner_start.get(..end).unwrap_or("")));
                rest = inner_start.get(end + close.len()..).unwrap_or("");
            }
            None => break,
        }
    }
    found
}

/// Value of attribute `name` in an open tag's attribute text.
fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attrs;
    loop {
        let i = rest.find(name)?;
        let before_ok = i == 0
            || rest
                .get(..i)
                .is_some_and(|b| b.ends_with(char::is_whitespace));
        let after = rest.get(i + name.len()..)?.trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                let v = v.get(1..)?;
                return v.find(quote).and_then(|end| v.get(..end));
            }
        }
        rest = rest.get(i + name.len()..)?;
    }
}

/// Text content: CDATA sections verbatim, the five XML entities and numeric references
/// decoded; anything else left as is.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
            match cdata.find("]]>") {
                Some(end) => {
                    out.push_str(cdata.get(..end).unwrap_or(""));
                    rest = cdata.get(end + 3..).unwrap_or("");
                }
                None => {
                    out.push_str(cdata);
                    rest = "";
                }
            }
            continue;
        }
        if rest.starts_with('&') {
            if let Some(semi) = rest.get(..rest.len().min(12)).and_then(|h| h.find(';')) {
                let ent = rest.get(1..semi).unwrap_or("");
                let ch = match ent {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => ent
                        .strip_prefix("#x")
                        .or_else(|| ent.strip_prefix("#X"))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                if let Some(c) = ch {
                    out.push(c);
                    rest = rest.get(semi + 1..).unwrap_or("");
                    continue;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `thug.files`: `{url, data (base64), type, md5, sha1}` → a file record (content guess =
/// Thug's `type`, e.g. `SWF`; hashes computed, not trusted) and a URL record linking the
/// full URL to it. mnemosyne dropped the query string; it is kept here because it is often
/// what distinguishes one exploit-kit landing page from another.
pub fn files(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let data = f::str_field(&o, "data")?.ok_or(NormalizeError::MissingField("data"))?;
    let data = f::base64_decode(data).ok_or(NormalizeError::BadField {
        field: "data",
        reason: "invalid base64",
    })?;
    let url = f::text_nonempty(&o, "url", MEDIUM)?;
    let guess = f::text_nonempty(&o, "type", SHORT)?;
    let file = f::file_record(data, guess, url.clone());
    let sha512 = file.sha512.clone();
    out.push(Normalized::File(file));
    if let Some(url) = url {
        out.push(Normalized::Url(UrlRecord {
            url,
            file_sha512: vec![sha512],
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use super::*;

    const BUNDLE: &str = r#"<THUG_DATA><MAEC_Bundle xmlns="http://maec.mitre.org/XMLSchema/maec-core-1" id="maec:thug:bnd:1" schema_version="1.1">
  <Analyses>
    <Analysis start_datetime="2012-12-23 22:08:19.467103" analysis_method="Dynamic" id="maec:thug:ana:2">
      <Subject>
        <Object type="URI" id="maec:thug:obj:3">
          <Internet_Object_Attributes><URI type="URL">http://exploit.example/news/landing.html?a=1&amp;b=2</URI></Internet_Object_Attributes>
          <Associated_Code>
            <Associated_Code_Snippet>
              <Code_Snippet language="Javascript" id="maec:thug:cde:4">
                <Code_Segment>if (a &lt; b) { eval("x") }</Code_Segment>
              </Code_Snippet>
            </Associated_Code_Snippet>
            <Associated_Code_Snippet>
              <Code_Snippet language='VBScript'><Code_Segment><![CDATA[MsgBox "<hi>"]]></Code_Segment></Code_Snippet>
            </Associated_Code_Snippet>
          </Associated_Code>
        </Object>
      </Subject>
    </Analysis>
  </Analyses>
</MAEC_Bundle>
<MAEC_Bundle><Analyses><Analysis start_datetime="2012-12-23 22:08:20"><Subject><Object><Internet_Object_Attributes><URI type="URL">http://xxx.yyy.zzz/wfgv.htm?php=receipt</URI></Internet_Object_Attributes></Object></Subject></Analysis></Analyses></MAEC_Bundle></THUG_DATA>"#;

    #[test]
    fn maec_bundles() {
        let out = run("thug.events", BUNDLE);
        assert_eq!(out.len(), 4, "{out:?}");
        let url = "http://exploit.example/news/landing.html?a=1&b=2";
        let js = f::file_record(
            br#"if (a < b) { eval("x") }"#.to_vec(),
            Some("Javascript".into()),
            Some(url.into()),
        );
        let vbs = f::file_record(
            br#"MsgBox "<hi>""#.to_vec(),
            Some("VBScript".into()),
            Some(url.into()),
        );
        assert_eq!(out[0], Normalized::File(js.clone()));
        assert_eq!(out[1], Normalized::File(vbs.clone()));
        assert_eq!(
            out[2],
            Normalized::Url(UrlRecord {
                url: url.into(),
                file_sha512: vec![js.sha512, vbs.sha512]
            })
        );
        assert_eq!(
            out[3],
            Normalized::Url(UrlRecord {
                url: "http://xxx.yyy.zzz/wfgv.htm?php=receipt".into(),
                file_sha512: vec![]
            })
        );
    }

    #[test]
    fn xml_helpers_and_errors() {
        assert_eq!(unescape("&#60;&#x3E;&bogus;&"), "<>&bogus;&");
        assert_eq!(
            attr(r#" xlanguage="no" language = "yes""#, "language"),
            Some("yes")
        );
        assert_eq!(
            fail("thug.events", "<MAEC_Bundle><Analyses/></MAEC_Bundle>"),
            NormalizeError::BadPayload("no MAEC <Analysis> element")
        );
        // Unterminated: nothing found, no panic.
        assert!(elements("<Analysis start_datetime=\"x\"><URI>http://a", "Analysis").is_empty());
        assert!(elements("<Analysis", "Analysis").is_empty());
    }

    #[test]
    fn thug_file() {
        let out = run(
            "thug.files",
            r#"{"url": "http://xxx.yyy.com/links/came_one_taking-others.php?kvs=31", "data": "RldTCg==", "type": "SWF", "md5": "ignored", "sha1": "ignored"}"#,
        );
        let file = f::file_record(
            b"FWS\n".to_vec(),
            Some("SWF".into()),
            Some("http://xxx.yyy.com/links/came_one_taking-others.php?kvs=31".into()),
        );
        assert_eq!(file.content_guess.as_deref(), Some("SWF"));
        assert_eq!(
            out,
            vec![
                Normalized::File(file.clone()),
                Normalized::Url(UrlRecord {
                    url: "http://xxx.yyy.com/links/came_one_taking-others.php?kvs=31".into(),
                    file_sha512: vec![file.sha512]
                })
            ]
        );
        assert_eq!(
            fail("thug.files", r#"{"url": "http://x/"}"#),
            NormalizeError::MissingField("data")
        );
    }
}
