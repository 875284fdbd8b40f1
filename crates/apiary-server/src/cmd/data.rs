//! `apiary renormalize` and `apiary import mnemosyne`: reprocessing stored or exported raw
//! messages with today's normalizers; `apiary backup`; all with progress on stderr.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apiary_geo::GeoDb;
use apiary_ingest::pipeline::{process, IngestMetrics};
use apiary_store::{IngestItem, RawFilter, Store};
use chrono::{DateTime, Utc};

use crate::settings::Settings;

const BATCH: usize = 2_000;

/// Progress on stderr: a redrawn line on a terminal, a line every few seconds otherwise.
struct Progress {
    what: &'static str,
    total: Option<u64>,
    started: Instant,
    last: Instant,
    tty: bool,
    /// Whether items can be bad (counted and shown); a byte count cannot.
    counts_bad: bool,
}

impl Progress {
    fn new(what: &'static str, total: Option<u64>) -> Self {
        Self {
            what,
            total,
            started: Instant::now(),
            last: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            counts_bad: true,
        }
    }

    /// Progress in megabytes.
    fn megabytes(what: &'static str, total: Option<u64>) -> Self {
        Self {
            counts_bad: false,
            ..Self::new(what, total)
        }
    }

    fn update(&mut self, done: u64, bad: u64, force: bool) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if !force && self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let (bad, unit) = if self.counts_bad {
            (format!(" ({bad} bad)"), "")
        } else {
            (String::new(), " MB")
        };
        let line = match self.total {
            Some(t) if t > 0 => {
                let pct = (done as f64 * 100.0 / t as f64).min(100.0);
                let filled = (pct / 5.0) as usize;
                format!(
                    "{} [{}{}] {pct:5.1}% {done}/{t}{unit}{bad} {rate:.0}{unit}/s",
                    self.what,
                    "#".repeat(filled),
                    ".".repeat(20 - filled.min(20)),
                )
            }
            _ => format!("{} {done}{unit}{bad} {rate:.0}{unit}/s", self.what),
        };
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if force {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}

fn geo_for(settings: &Settings) -> GeoDb {
    let s = super::server::geo_settings(settings);
    GeoDb::open(&s).unwrap_or_else(|_| GeoDb::disabled())
}

/// Re-runs the normalizers over stored raw messages.
pub async fn renormalize(
    settings: &Settings,
    store: Arc<dyn Store>,
    channel: Option<String>,
    since: Option<DateTime<Utc>>,
    only_errors: bool,
) -> Result<()> {
    let geo = geo_for(settings);
    let metrics = IngestMetrics::default();
    let filter = RawFilter {
        channel,
        since,
        only_errors,
    };
    let mut progress = Progress::new("renormalize", None);
    let (mut after, mut done, mut bad) = (0i64, 0u64, 0u64);
    loop {
        let raws = store
            .raw_for_renormalize(filter.clone(), after, BATCH)
            .await
            .context("while reading raw messages")?;
        if raws.is_empty() {
            break;
        }
        let mut items = Vec::with_capacity(raws.len());
        for raw in raws {
            let id = raw.id.unwrap_or_default();
            after = after.max(id);
            let item = process(raw, &geo, &metrics);
            if item.outcome.is_err() {
                bad += 1;
            }
            items.push((id, item.outcome));
        }
        done += items.len() as u64;
        store
            .renormalize_batch(items)
            .await
            .context("while writing renormalized records")?;
        progress.update(done, bad, false);
    }
    progress.update(done, bad, true);
    println!("renormalized {done} raw messages ({bad} still failing)");
    Ok(())
}

/// Imports a `mongoexport` JSON-lines dump of mnemosyne's `hpfeed` collection.
pub async fn import_mnemosyne(
    settings: &Settings,
    store: Arc<dyn Store>,
    file: &Path,
) -> Result<()> {
    let geo = geo_for(settings);
    let metrics = IngestMetrics::default();
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let total = f.metadata().map(|m| m.len()).ok();
    let mut reader = BufReader::new(f);
    let mut progress = Progress::new("import", total);
    let (mut read_bytes, mut lines, mut bad, mut imported) = (0u64, 0u64, 0u64, 0u64);
    let mut bad_examples: Vec<String> = Vec::new();
    let mut batch: Vec<IngestItem> = Vec::with_capacity(BATCH);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("while reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        read_bytes += n as u64;
        lines += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match apiary_ingest::mnemosyne::parse_line(text) {
            Ok(raw) => batch.push(process(raw, &geo, &metrics)),
            Err(e) => {
                bad += 1;
                if bad_examples.len() < 5 {
                    bad_examples.push(format!("line {lines}: {e}"));
                }
            }
        }
        if batch.len() >= BATCH {
            imported += batch.len() as u64;
            store
                .insert_batch(std::mem::take(&mut batch))
                .await
                .context("while storing imported messages")?;
        }
        progress.update(read_bytes, bad, false);
    }
    if !batch.is_empty() {
        imported += batch.len() as u64;
        store
            .insert_batch(batch)
            .await
            .context("while storing imported messages")?;
    }
    progress.update(read_bytes, bad, true);
    println!(
        "imported {imported} messages from {lines} lines; {bad} bad lines skipped; {} normalization errors",
        metrics.normalize_errors.load(std::sync::atomic::Ordering::Relaxed)
            + metrics.unknown_channel.load(std::sync::atomic::Ordering::Relaxed)
    );
    for e in bad_examples {
        println!("  {e}");
    }
    Ok(())
}

/// `apiary backup FILE`: a consistent copy of the running database, with the copy's size
/// against the data in use as progress.
pub async fn backup(store: Arc<dyn Store>, file: &Path) -> Result<()> {
    let total = store.space_used_bytes().await?.map(|b| b / 1_000_000);
    let mut progress = Progress::megabytes("backup", total);
    let copying = {
        let (store, file) = (store.clone(), file.to_owned());
        tokio::spawn(async move { store.backup_to(&file).await })
    };
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len() / 1_000_000);
    while !copying.is_finished() {
        progress.update(size(file), 0, false);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    copying
        .await
        .context("the backup task failed")?
        .with_context(|| format!("while backing up to {}", file.display()))?;
    progress.update(size(file), 0, true);
    let mut rollups = file.as_os_str().to_owned();
    rollups.push("-rollups");
    println!(
        "backed up to {} and {} ({} MB); restore by putting them in place of apiary.db and \
         apiary.db-rollups while the server is stopped",
        file.display(),
        Path::new(&rollups).display(),
        size(file)
    );
    Ok(())
}
