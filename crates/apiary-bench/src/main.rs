//! `apiary-bench`: throughput, latency and memory of the Apiary hpfeeds broker, measured
//! side by side with the Python reference broker (`hpfeeds-broker` from `hpfeeds[broker]==3.1.0`).
//!
//! # Usage
//! ```text
//! cargo build --release -p apiary-bench
//! target/release/apiary-bench broker              # full run (a few minutes)
//! target/release/apiary-bench broker --quick      # smoke run, tiny counts
//! target/release/apiary-bench broker --only ours --workload 1to1 --payload 100
//! target/release/apiary-bench broker --rate 500000 # pace every run at 500k msg/s total
//! target/release/apiary-bench broker --json out.json
//! ```
//! Options: `--messages N` (messages sent per run, all publishers together, both brokers),
//! `--rate R` (paced runs only, no search), `--no-search`, `--search-steps K`,
//! `--only ours|python|both`, `--workload 1to1|1to10|50to1` and `--payload 100|4096`
//! (repeatable filters), `--idle-conns N` / `--skip-idle`, `--timeout SECS` (per run),
//! `--broker-threads N` / `--broker-queue-frames N` (our broker's tokio workers and
//! subscriber queue limit), `--python-broker PATH`.
//!
//! The Python broker is looked up as `--python-broker`, then `$APIARY_HPFEEDS_BROKER`, then
//! `.venv/bin/hpfeeds-broker` in the current directory or its ancestors, then in the
//! workspace root. Without it only our broker is measured. To create it:
//! `python3 -m venv .venv && .venv/bin/pip install 'hpfeeds[broker]==3.1.0'`.
//!
//! # What is measured
//! Each broker runs in its own process: ours by re-executing this binary with the hidden
//! `serve-broker` command, the Python one via its CLI (with `--exporter` on a loopback port
//! and a JSON `--auth` file; both brokers read the same file). The load generators are
//! raw-socket threads in this process (see `load.rs`):
//!
//! * workloads: 1 publisher → 1 subscriber, 1 → 10 subscribers, 50 publishers → 1 subscriber
//!   (the ingest pattern), each with 100-byte and 4 KiB payloads;
//! * msg/s = messages received by all subscribers / (last arrival − publish start);
//! * latency = arrival − send stamp (carried in the first 8 payload bytes, taken just
//!   before each ~64 KiB batch write), p50/p99 over every message; unpaced runs overload
//!   the broker on purpose, so their latency is mostly queueing: use `--rate` to compare
//!   latency at equal load;
//! * loss = sent × subscribers − received, counted, never assumed;
//! * when an unpaced run loses messages (our broker drops for a subscriber whose queue stays
//!   full; the Python broker buffers without bound), paced runs step down from 90 % of the
//!   delivered rate by 20 % until one is lossless: that is the headline figure;
//! * idle memory: N connections opened and authenticated, then the broker's VmRSS.
//!
//! Everything shares one machine: broker, publishers and subscribers compete for the same
//! cores, so absolute figures depend on the host and its load (printed with the results).

mod brokers;
mod hist;
mod idle;
mod load;
mod sensor;
mod serve;
mod web;
mod wire;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use brokers::{BrokerProc, Kind};
use load::{RunResult, RunSpec, Workload, WORKLOADS};

#[derive(Parser)]
#[command(name = "apiary-bench", about = "Apiary benchmarks", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Benchmark our hpfeeds broker against the Python reference broker.
    Broker(BrokerArgs),
    /// Benchmark apiary-sensor against OpenCanary (RSS, 10k held connections, accept rate).
    Sensor(sensor::SensorArgs),
    /// Page latency of the real `apiary server` over N stored sessions under C clients.
    Web(web::WebArgs),
    /// Run our broker in this process (used by `broker`; prints `LISTENING <port>`).
    #[command(hide = true)]
    ServeBroker {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// JSON file `{ident: {owner, secret, pubchans, subchans}}`.
        #[arg(long)]
        idents: PathBuf,
        /// Tokio worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Listen backlog.
        #[arg(long, default_value_t = 1024)]
        backlog: u32,
        /// Subscriber queue limit in frames (default: the broker's).
        #[arg(long)]
        queue_frames: Option<usize>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Ours,
    Python,
    Both,
}

#[derive(clap::Args)]
struct BrokerArgs {
    /// Short smoke run: 1 % of the default message counts, 500 idle connections.
    #[arg(long)]
    quick: bool,
    /// Messages sent per run (all publishers together), for both brokers.
    #[arg(long)]
    messages: Option<u64>,
    /// Pace every run at this total publish rate (msg/s); disables the lossless search.
    #[arg(long)]
    rate: Option<f64>,
    /// Do not look for a lossless rate when an unpaced run loses messages.
    #[arg(long)]
    no_search: bool,
    /// Paced attempts when searching for a lossless rate.
    #[arg(long, default_value_t = 4)]
    search_steps: usize,
    /// Which brokers to measure.
    #[arg(long, value_enum, default_value = "both")]
    only: Only,
    /// Only these workloads (1to1, 1to10, 50to1); repeatable.
    #[arg(long)]
    workload: Vec<String>,
    /// Only these payload sizes in bytes (100, 4096); repeatable.
    #[arg(long)]
    payload: Vec<usize>,
    /// Idle authenticated connections for the memory test.
    #[arg(long)]
    idle_conns: Option<usize>,
    /// Skip the idle-connection memory test.
    #[arg(long)]
    skip_idle: bool,
    /// Hard limit per run, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Tokio worker threads of our broker (default: one per core).
    #[arg(long)]
    broker_threads: Option<usize>,
    /// Our broker's subscriber queue limit in frames (default: the broker's, 65,536).
    #[arg(long)]
    broker_queue_frames: Option<usize>,
    /// Path of the Python `hpfeeds-broker` script.
    #[arg(long)]
    python_broker: Option<PathBuf>,
    /// Also write all results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::ServeBroker {
            listen,
            idents,
            threads,
            backlog,
            queue_frames,
        } => serve::serve(&listen, &idents, threads, backlog, queue_frames),
        Cmd::Broker(args) => bench(args),
        Cmd::Sensor(args) => sensor::run(args),
        Cmd::Web(args) => web::run(args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiary-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Idents of every workload: `pub0..49`, `sub0..9`, `probe`, `idle`.
fn users() -> serve::Users {
    let entry = |ident: &str, pubchans: Vec<String>, subchans: Vec<String>| {
        (
            ident.to_string(),
            serve::UserEntry {
                owner: "bench".into(),
                secret: load::secret_of(ident),
                pubchans,
                subchans,
            },
        )
    };
    let chan = || vec![wire::CHANNEL.to_string()];
    let max_pubs = WORKLOADS.iter().map(|w| w.publishers).max().unwrap_or(1);
    let max_subs = WORKLOADS.iter().map(|w| w.subscribers).max().unwrap_or(1);
    let mut u: serve::Users = (0..max_pubs)
        .map(|i| entry(&load::publisher_ident(i), chan(), vec![]))
        .chain((0..max_subs).map(|i| entry(&load::subscriber_ident(i), vec![], chan())))
        .collect();
    u.extend([entry(load::PROBE_IDENT, chan(), vec![])]);
    u.extend([entry(idle::IDLE_IDENT, vec!["idle".into()], vec![])]);
    u
}

fn find_python_broker(arg: Option<PathBuf>) -> Option<PathBuf> {
    if arg.is_some() {
        return arg;
    }
    if let Some(p) = std::env::var_os("APIARY_HPFEEDS_BROKER") {
        return Some(p.into());
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    dirs.into_iter()
        .map(|d| d.join(".venv/bin/hpfeeds-broker"))
        .find(|p| p.is_file())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_us(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(u) if u < 1000.0 => format!("{u:.0} us"),
        Some(u) if u < 1_000_000.0 => format!("{:.1} ms", u / 1000.0),
        Some(u) => format!("{:.2} s", u / 1_000_000.0),
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1_000_000.0 {
        format!("{:.2}M", r / 1_000_000.0)
    } else if r >= 1000.0 {
        format!("{:.0}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

fn payload_label(p: usize) -> String {
    if p >= 1024 && p % 1024 == 0 {
        format!("{} KiB", p / 1024)
    } else {
        format!("{p} B")
    }
}

/// All runs of one broker on one workload, and which one is the headline.
struct Measured {
    runs: Vec<RunResult>,
    /// Index of the fastest lossless run, if any.
    best: Option<usize>,
}

impl Measured {
    /// The headline run: the best lossless one, else the first (lossy) one.
    fn shown(&self) -> Option<&RunResult> {
        self.best
            .and_then(|i| self.runs.get(i))
            .or_else(|| self.runs.first())
    }

    fn how(&self) -> String {
        let Some(r) = self.shown() else {
            return "-".into();
        };
        let mode = match r.rate {
            None => "unpaced".to_string(),
            Some(x) => format!("paced {}/s", fmt_rate(x)),
        };
        match (self.best, self.runs.first()) {
            (Some(b), Some(first)) if b > 0 => {
                format!("{mode} (unpaced lost {})", group(first.lost.max(0) as u64))
            }
            (None, _) => format!("{mode}, LOSSY"),
            _ => mode,
        }
    }
}

struct Ctx<'a> {
    args: &'a BrokerArgs,
    timeout: Duration,
    idle_grace: Duration,
}

fn messages_for(ctx: &Ctx<'_>, kind: Kind, wl: &Workload) -> u64 {
    if let Some(m) = ctx.args.messages {
        return m.max(wl.publishers as u64);
    }
    let base = match kind {
        Kind::Ours => wl.ours_messages,
        Kind::Python => wl.python_messages,
    };
    if ctx.args.quick {
        (base / 100).max(10 * wl.publishers as u64)
    } else {
        base
    }
}

fn one_run(broker: &mut BrokerProc, spec: &RunSpec) -> Result<RunResult> {
    let before = broker.stats();
    let mut r = load::run(broker.addr, spec)?;
    // Let the broker notice the closed connections before the next run.
    std::thread::sleep(Duration::from_millis(300));
    if let (Some(b), Some(a)) = (before, broker.stats()) {
        let d = |k: &str| Some(a.get(k)? - b.get(k)?);
        r.broker_drops = d("drops");
        r.broker_slow_disconnects = d("slow");
    }
    let wl = spec.workload;
    let mode = match spec.rate {
        None => "unpaced".to_string(),
        Some(x) => format!("paced {}/s", fmt_rate(x)),
    };
    let drops = match (r.broker_drops, r.broker_slow_disconnects) {
        (Some(d), Some(s)) => format!(
            "; broker dropped {} (slow disconnects {s})",
            group(d.max(0) as u64)
        ),
        _ => String::new(),
    };
    println!(
        "  [{:<6}] {:<17} {:>7} {:<18} sent {:>10} in {:6.2}s | received {:>10} of {:>10} in {:6.2}s -> {:>10} msg/s, lost {:>8}; p50 {:>8} p99 {:>8}{}{}{}",
        broker.kind.name(),
        wl.label,
        payload_label(wl.payload),
        mode,
        group(r.sent),
        r.send_secs,
        group(r.received),
        group(r.expected),
        r.recv_secs,
        group(r.msgs_per_sec as u64),
        r.lost,
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        drops,
        if r.timed_out { "; TIMED OUT" } else { "" },
        if r.errors.is_empty() {
            String::new()
        } else {
            format!("; errors: {}", r.errors.join(" | "))
        },
    );
    Ok(r)
}

fn measure(ctx: &Ctx<'_>, broker: &mut BrokerProc, wl: &Workload) -> Result<Measured> {
    let mut spec = RunSpec {
        workload: *wl,
        messages: messages_for(ctx, broker.kind, wl),
        rate: ctx.args.rate,
        timeout: ctx.timeout,
        idle_grace: ctx.idle_grace,
    };
    let first = one_run(broker, &spec)?;
    let search = !first.lossless() && ctx.args.rate.is_none() && !ctx.args.no_search;
    let mut rate = first.msgs_per_sec / wl.subscribers as f64 * 0.9;
    let mut runs = vec![first];
    if search && rate > 0.0 {
        println!(
            "    lost messages unpaced; pacing from 90 % of the delivered rate, -20 % per step (at most {} steps)",
            ctx.args.search_steps
        );
        for _ in 0..ctx.args.search_steps {
            spec.rate = Some(rate);
            let r = one_run(broker, &spec)?;
            let ok = r.lossless();
            runs.push(r);
            if ok {
                break;
            }
            rate *= 0.8;
        }
    }
    let best = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.lossless())
        .max_by(|a, b| a.1.msgs_per_sec.total_cmp(&b.1.msgs_per_sec))
        .map(|(i, _)| i);
    Ok(Measured { runs, best })
}

fn run_json(m: &Option<Measured>) -> serde_json::Value {
    match m {
        None => serde_json::Value::Null,
        Some(m) => json!({ "runs": m.runs, "best": m.best }),
    }
}

fn bench(args: BrokerArgs) -> Result<()> {
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let load_start = loadavg();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ctx = Ctx {
        args: &args,
        timeout: Duration::from_secs(args.timeout),
        idle_grace: Duration::from_secs(if args.quick { 2 } else { 3 }),
    };

    let dir = tempfile::tempdir()?;
    let users_path = dir.path().join("users.json");
    std::fs::write(&users_path, serde_json::to_vec_pretty(&users())?)?;

    let want_ours = args.only != Only::Python;
    let mut python_exe = None;
    if args.only != Only::Ours {
        match find_python_broker(args.python_broker.clone()) {
            Some(p) if p.is_file() => python_exe = Some(p),
            Some(p) => bail!("Python broker {p:?} not found"),
            None if args.only == Only::Python => {
                bail!("no .venv/bin/hpfeeds-broker found; create it with: python3 -m venv .venv && .venv/bin/pip install 'hpfeeds[broker]==3.1.0'")
            }
            None => println!(
                "warning: no .venv/bin/hpfeeds-broker found; measuring our broker only.\n  create it with: python3 -m venv .venv && .venv/bin/pip install 'hpfeeds[broker]==3.1.0'"
            ),
        }
    }

    let workloads: Vec<Workload> = WORKLOADS
        .iter()
        .filter(|w| args.workload.is_empty() || args.workload.iter().any(|k| k == w.key))
        .filter(|w| args.payload.is_empty() || args.payload.contains(&w.payload))
        .copied()
        .collect();
    if workloads.is_empty() {
        bail!("no workload matches --workload/--payload");
    }

    println!(
        "apiary-bench broker: {cores} cores, load average {load_start}, RLIMIT_NOFILE {nofile}{}",
        if args.quick { ", QUICK mode" } else { "" }
    );
    let mut ours = if want_ours {
        let b = BrokerProc::start_ours(&users_path, args.broker_threads, args.broker_queue_frames)?;
        println!("  ours:   pid {} on {}", b.pid(), b.addr);
        Some(b)
    } else {
        None
    };
    let mut python = match &python_exe {
        Some(exe) => {
            let b =
                BrokerProc::start_python(exe, &users_path, &dir.path().join("python-broker.log"))?;
            println!(
                "  python: pid {} on {} ({})",
                b.pid(),
                b.addr,
                exe.display()
            );
            Some(b)
        }
        None => None,
    };

    let mut rows: Vec<(Workload, Option<Measured>, Option<Measured>)> = Vec::new();
    for wl in &workloads {
        let o = ours.as_mut().map(|b| measure(&ctx, b, wl)).transpose()?;
        let p = match python.as_mut() {
            Some(b) => match measure(&ctx, b, wl) {
                Ok(m) => Some(m),
                Err(e) => {
                    println!(
                        "  [python] {} {}: failed: {e:#}",
                        wl.label,
                        payload_label(wl.payload)
                    );
                    None
                }
            },
            None => None,
        };
        rows.push((*wl, o, p));
    }
    drop(ours.take());
    if let Some(b) = python.take() {
        if let Some(log) = b.log.clone() {
            drop(b);
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let errors: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("Error") && !l.contains("auth_finalizer"))
                .take(5)
                .collect();
            if !errors.is_empty() {
                println!("  python broker log (first error lines):");
                for l in errors {
                    println!("    {l}");
                }
            }
        }
    }

    // Idle connections: a fresh broker process each, so throughput buffers do not count.
    let idle_n = args
        .idle_conns
        .unwrap_or(if args.quick { 500 } else { 10_000 });
    let mut idle_ours = None;
    let mut idle_py = None;
    if !args.skip_idle {
        if want_ours {
            let mut b =
                BrokerProc::start_ours(&users_path, args.broker_threads, args.broker_queue_frames)?;
            let r = idle::run(&mut b, idle_n, 256).context("idle connections, ours")?;
            print_idle(&b, &r);
            idle_ours = Some(r);
        }
        if let Some(exe) = &python_exe {
            let mut b =
                BrokerProc::start_python(exe, &users_path, &dir.path().join("python-idle.log"))?;
            match idle::run(&mut b, idle_n, 100) {
                Ok(r) => {
                    print_idle(&b, &r);
                    idle_py = Some(r);
                }
                Err(e) => println!("  [python] idle connections failed: {e:#}"),
            }
        }
    }
    let load_end = loadavg();

    // Summary.
    println!();
    println!("Summary (msg/s = messages received by all subscribers per second; p99 = publish -> receive)");
    println!(
        "{:<17} {:>7} | {:>11} {:>9} {:>7}  {:<34} | {:>9} {:>9} {:>6}  {:<16} | {:>7}",
        "workload",
        "payload",
        "ours msg/s",
        "p99",
        "lost",
        "how",
        "python",
        "p99",
        "lost",
        "how",
        "ratio"
    );
    println!("{}", "-".repeat(146));
    let mut headline: Option<(f64, bool, Option<f64>)> = None;
    for (wl, o, p) in &rows {
        let cell = |m: &Option<Measured>| match m.as_ref().and_then(|m| m.shown().map(|r| (m, r))) {
            Some((m, r)) => (
                group(r.msgs_per_sec as u64),
                fmt_us(r.p99_us),
                group(r.lost.max(0) as u64),
                m.how(),
                Some(r.msgs_per_sec),
            ),
            None => ("n/a".into(), "-".into(), "-".into(), "-".into(), None),
        };
        let (om, op99, olost, ohow, orate) = cell(o);
        let (pm, pp99, plost, phow, prate) = cell(p);
        let ratio = match (orate, prate) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        println!(
            "{:<17} {:>7} | {:>11} {:>9} {:>7}  {:<34} | {:>9} {:>9} {:>6}  {:<16} | {:>7}",
            wl.label,
            payload_label(wl.payload),
            om,
            op99,
            olost,
            ohow,
            pm,
            pp99,
            plost,
            phow,
            ratio.map_or("-".into(), |r| format!("{r:.1}x"))
        );
        if wl.key == "1to1" && wl.payload == 100 {
            if let Some(m) = o {
                if let Some(r) = m.shown() {
                    headline = Some((r.msgs_per_sec, m.best.is_some(), ratio));
                }
            }
        }
    }
    if idle_ours.is_some() || idle_py.is_some() {
        let mib = |r: &Option<idle::IdleResult>| {
            r.as_ref().map_or("n/a".into(), |r| {
                format!(
                    "{:.1} MiB (idle broker {:.1} MiB)",
                    r.rss_after_kib as f64 / 1024.0,
                    r.rss_before_kib as f64 / 1024.0
                )
            })
        };
        println!(
            "{:<25} | ours {:<40} | python {}",
            format!("RSS, {} idle authed", group(idle_n as u64)),
            mib(&idle_ours),
            mib(&idle_py)
        );
    }
    println!();
    println!("Targets:");
    match headline {
        Some((rate, lossless, ratio)) => {
            println!(
                "  1 -> 1, 100 B, lossless >= 1,000,000 msg/s : {} msg/s{} -> {}",
                group(rate as u64),
                if lossless { "" } else { " (NOT lossless)" },
                if lossless && rate >= 1_000_000.0 {
                    "MET"
                } else {
                    "NOT MET"
                }
            );
            match ratio {
                Some(x) => println!(
                    "  >= 30x the Python broker (1 -> 1, 100 B)  : {x:.1}x -> {}",
                    if lossless && x >= 30.0 {
                        "MET"
                    } else {
                        "NOT MET"
                    }
                ),
                None => println!("  >= 30x the Python broker (1 -> 1, 100 B)  : not measured"),
            }
        }
        None => println!("  1 -> 1, 100 B: not measured"),
    }
    match &idle_ours {
        Some(r) => println!(
            "  RSS <= 64 MiB at 10,000 idle authenticated connections: {:.1} MiB at {} ({} confirmed by the broker, {} failed) -> {}",
            r.rss_after_kib as f64 / 1024.0,
            group(r.connections as u64),
            r.broker_authenticated.map_or("?".into(), group),
            r.failed,
            if r.connections < 10_000 {
                "not comparable (fewer connections)"
            } else if r.rss_after_kib <= 64 * 1024 && r.failed == 0 {
                "MET"
            } else {
                "NOT MET"
            }
        ),
        None => println!("  RSS at 10,000 idle connections: not measured"),
    }
    println!("Load average: {load_start} at start, {load_end} at end ({cores} cores; brokers and load generators share them).");

    if let Some(path) = &args.json {
        let out = json!({
            "cores": cores,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "quick": args.quick,
            "workloads": rows.iter().map(|(wl, o, p)| json!({
                "workload": wl,
                "ours": run_json(o),
                "python": run_json(p),
            })).collect::<Vec<_>>(),
            "idle": { "ours": idle_ours, "python": idle_py },
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("writing {path:?}"))?;
    }
    Ok(())
}

fn print_idle(b: &BrokerProc, r: &idle::IdleResult) {
    println!(
        "  [{:<6}] idle: {} connections authenticated in {:.1}s (broker reports {}, {} failed); VmRSS {:.1} MiB -> {:.1} MiB",
        b.kind.name(),
        group(r.connections as u64),
        r.setup_secs,
        r.broker_authenticated.map_or("?".into(), group),
        r.failed,
        r.rss_before_kib as f64 / 1024.0,
        r.rss_after_kib as f64 / 1024.0
    );
}
