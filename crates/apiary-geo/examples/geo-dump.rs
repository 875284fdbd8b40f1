//! Print a database's metadata and the raw record for each address given.
//!
//! `cargo run -p apiary-geo --example geo-dump -- FILE.mmdb 8.8.8.8 2001:4860:4860::8888`
use std::net::IpAddr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: geo-dump FILE.mmdb ADDR...")?;
    let reader = maxminddb::Reader::open_readfile(&path)?;
    println!("{:#?}", reader.metadata);
    for a in args {
        let ip: IpAddr = a.parse()?;
        match reader.lookup_prefix::<serde_json::Value>(ip) {
            Ok((v, prefix)) => println!("{ip}/{prefix}: {v}"),
            Err(e) => println!("{ip}: {e}"),
        }
    }
    Ok(())
}
