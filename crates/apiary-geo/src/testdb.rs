//! A minimal MaxMind DB writer for tests: 24-bit records, no data deduplication,
//! non-overlapping networks only. Written from the format description (search tree,
//! 16-byte separator, data section, metadata after the `\xAB\xCD\xEFMaxMind.com` marker).

use std::net::IpAddr;

/// A data-section value.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Str(String),
    F64(f64),
    F32(f32),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(String, Val)>),
    Array(Vec<Val>),
}

impl Val {
    pub(crate) fn str(s: &str) -> Val {
        Val::Str(s.to_owned())
    }

    pub(crate) fn map<const N: usize>(pairs: [(&str, Val); N]) -> Val {
        Val::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Val::Str(s) => {
                ctrl(out, 2, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Val::F64(v) => {
                ctrl(out, 3, 8);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Val::F32(v) => {
                ctrl(out, 15, 4);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Val::U16(v) => uint(out, 5, u64::from(*v)),
            Val::U32(v) => uint(out, 6, u64::from(*v)),
            Val::U64(v) => uint(out, 9, *v),
            Val::Map(pairs) => {
                ctrl(out, 7, pairs.len());
                for (k, v) in pairs {
                    Val::Str(k.clone()).encode(out);
                    v.encode(out);
                }
            }
            Val::Array(items) => {
                ctrl(out, 11, items.len());
                for v in items {
                    v.encode(out);
                }
            }
        }
    }
}

fn uint(out: &mut Vec<u8>, ty: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    ctrl(out, ty, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// Control byte(s): type in the top 3 bits (0 = extended, type in the next byte), size
/// in the low 5 bits with 1-3 extension bytes for large sizes.
fn ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (low, ext): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if ty <= 7 {
        out.push((ty << 5) | low);
    } else {
        out.push(low);
        out.push(ty - 7);
    }
    out.extend_from_slice(&ext);
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds an in-memory `.mmdb` image.
pub(crate) struct DbBuilder {
    ip_version: u16,
    database_type: String,
    nodes: Vec<[Rec; 2]>,
    data: Vec<u8>,
}

impl DbBuilder {
    pub(crate) fn new(ip_version: u16, database_type: &str) -> DbBuilder {
        DbBuilder {
            ip_version,
            database_type: database_type.to_owned(),
            nodes: vec![[Rec::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// Map the network `cidr` (e.g. `"8.8.8.0/24"`) to `value`.
    pub(crate) fn insert(&mut self, cidr: &str, value: Val) {
        let (addr, len) = cidr.split_once('/').unwrap();
        let addr: IpAddr = addr.parse().unwrap();
        let len: usize = len.parse().unwrap();
        let (bits, len): (u128, usize) = match (addr, self.ip_version) {
            (IpAddr::V4(a), 4) => (u128::from(u32::from(a)) << 96, len),
            (IpAddr::V4(a), _) => (u128::from(u32::from(a)), 96 + len),
            (IpAddr::V6(a), 6) => (u128::from(a), len),
            (IpAddr::V6(_), _) => panic!("IPv6 network in an IPv4 database"),
        };
        let offset = self.data.len() as u32;
        value.encode(&mut self.data);
        let mut node = 0usize;
        for i in 0..len {
            let bit = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == len {
                self.nodes[node][bit] = Rec::Data(offset);
                break;
            }
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n as usize,
                Rec::Empty => {
                    self.nodes.push([Rec::Empty; 2]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n as u32);
                    n
                }
                Rec::Data(_) => panic!("overlapping networks"),
            };
        }
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let count = self.nodes.len() as u32;
        let mut out = Vec::new();
        for pair in &self.nodes {
            for rec in pair {
                let v = match *rec {
                    Rec::Empty => count,
                    Rec::Node(n) => n,
                    Rec::Data(off) => count + 16 + off,
                };
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        Val::map([
            ("binary_format_major_version", Val::U16(2)),
            ("binary_format_minor_version", Val::U16(0)),
            ("build_epoch", Val::U64(1_700_000_000)),
            ("database_type", Val::str(&self.database_type)),
            ("description", Val::map([("en", Val::str("apiary test"))])),
            ("ip_version", Val::U16(self.ip_version)),
            ("languages", Val::Array(vec![Val::str("en")])),
            ("node_count", Val::U32(count)),
            ("record_size", Val::U16(24)),
        ])
        .encode(&mut out);
        out
    }
}
