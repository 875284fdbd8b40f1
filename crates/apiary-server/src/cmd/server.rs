//! `apiary server`: broker, ingest and HTTP in one process, one shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use apiary_broker::router::ChannelFilter;
use apiary_broker::{Broker, BrokerConfig};
use apiary_ingest::pipeline::{Pipeline, PipelineConfig};
use apiary_model::live::LatLon;
use apiary_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::settings::Settings;

mod retention;

/// Binds `addr`, explaining an address already in use.
async fn bind(key: &str, addr: SocketAddr) -> Result<TcpListener> {
    // A deep backlog: thousands of sensors reconnect at once after a restart, and the
    // default of 128 makes the excess retry SYNs for a second or more.
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(4096)
    };
    listen().map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{key}: address {addr} is already in use (another apiary or service is listening there)")
        } else {
            anyhow::anyhow!("{key}: cannot listen on {addr}: {e}")
        }
    })
}

fn broker_config(s: &Settings) -> BrokerConfig {
    let h = &s.hpfeeds;
    BrokerConfig {
        name: h.name.clone(),
        max_frame: h.max_frame_bytes,
        auth_timeout: Duration::from_secs(h.auth_timeout_secs),
        max_connections: h.max_connections,
        max_unauthenticated: h.max_unauthenticated,
        max_unauthenticated_per_ip: h.max_unauthenticated_per_ip,
        subscriber_queue_frames: h.subscriber_queue_frames,
        subscriber_queue_bytes: h.subscriber_queue_bytes,
        slow_subscriber_grace: Duration::from_secs(h.slow_subscriber_grace_secs),
    }
}

pub async fn run(settings: Settings) -> Result<()> {
    // Bind first: a port in use should fail before anything else happens.
    let hpfeeds_listener = bind("hpfeeds.listen", settings.hpfeeds.listen).await?;
    let tls = match settings.hpfeeds.tls_listen {
        Some(addr) => {
            let (Some(cert), Some(key)) = (&settings.hpfeeds.tls_cert, &settings.hpfeeds.tls_key)
            else {
                anyhow::bail!("hpfeeds.tls_listen needs hpfeeds.tls_cert and hpfeeds.tls_key");
            };
            let acceptor = apiary_broker::tls::acceptor(cert, key)?;
            Some((bind("hpfeeds.tls_listen", addr).await?, acceptor))
        }
        None => None,
    };
    let http_listener = bind("http.listen", settings.http.listen).await?;

    let store = super::open_store(&settings).await?;
    let broker = Broker::new(broker_config(&settings));
    let idents = store.list_idents().await.context("while loading idents")?;
    broker.load_idents(&idents);
    info!(idents = idents.len(), "credentials loaded");

    let shutdown = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();

    let geo = Arc::new(open_geo(&settings));
    // Live map: committed sessions are broadcast to /api/live clients. The buffer holds at
    // least one whole batch, so a client that keeps up never loses part of a batch.
    let live = Arc::new(apiary_web::live::LiveHub::new(
        settings.map.live_buffer.max(settings.ingest.batch_size),
        server_location(&settings, &geo).await,
    ));

    // Ingest: the broker's lossless in-process subscription → normalize → store.
    let ingest = if settings.ingest.enabled {
        let handle = start_ingest(
            &settings,
            &broker,
            store.clone(),
            &live,
            geo,
            shutdown.clone(),
        )?;
        Some(handle)
    } else {
        warn!("ingest disabled: messages are relayed but not stored");
        None
    };

    tracker.spawn(reload_idents(
        store.clone(),
        broker.clone(),
        Duration::from_secs(settings.hpfeeds.ident_reload_secs.max(1)),
        shutdown.clone(),
    ));

    {
        let (b, token) = (broker.clone(), shutdown.clone());
        let addr = hpfeeds_listener.local_addr()?;
        info!(%addr, "hpfeeds broker listening");
        tracker.spawn(async move { b.run(hpfeeds_listener, None, token).await });
    }
    if let Some((listener, acceptor)) = tls {
        let (b, token) = (broker.clone(), shutdown.clone());
        info!(addr = %listener.local_addr()?, "hpfeeds TLS listener");
        tracker.spawn(async move { b.run(listener, Some(acceptor), token).await });
    }

    let metrics = metric_sources(&broker, store.clone(), ingest.as_ref());
    super::user::bootstrap_admin(&*store).await?;
    seed_deploy_scripts(&*store).await;
    let app = apiary_web::router(
        apiary_web::AppState::with_auth(store.clone(), metrics, auth_config(&settings))
            .with_request_timeout(Duration::from_secs(settings.http.request_timeout_secs))
            .with_live(live.clone())
            .with_deploy(deploy_config(&settings))
            .with_retention(apiary_web::RetentionView {
                raw_days: settings.retention.raw_days,
                session_days: settings.retention.session_days,
                max_size_mb: settings.retention.max_size_mb,
            }),
    );
    {
        let token = shutdown.clone();
        let live = live.clone();
        info!(addr = %http_listener.local_addr()?, "HTTP listening");
        tracker.spawn(async move {
            let r = axum::serve(
                http_listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                token.cancelled().await;
                // End the never-ending /api/live streams so connections can close.
                live.close();
            })
            .await;
            if let Err(e) = r {
                error!(error = %e, "HTTP server failed");
            }
        });
    }

    tracker.spawn(retention::run(
        store.clone(),
        settings.retention.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(retention::keep_within_budget(
        store.clone(),
        settings.retention.clone(),
        shutdown.clone(),
    ));

    shutdown_signal().await;
    info!("shutting down");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not stop within 10 s");
    }
    broker.wait_closed(Duration::from_secs(3)).await;
    // Every publisher is gone; the pipeline drains what it has and commits it.
    if let Some(i) = ingest {
        i.finish().await;
    }
    store.close().await;
    info!("stopped");
    Ok(())
}

async fn reload_idents(
    store: Arc<dyn Store>,
    broker: Broker,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut seen = store.idents_version().await.ok();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let version = match store.idents_version().await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot check idents for changes");
                continue;
            }
        };
        if Some(version) == seen {
            continue;
        }
        match store.list_idents().await {
            Ok(idents) => {
                let kicked = broker.load_idents(&idents);
                info!(idents = idents.len(), kicked, "credentials reloaded");
                seen = Some(version);
            }
            Err(e) => warn!(error = %e, "cannot reload idents"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The geolocation databases, or none (with a warning).
fn open_geo(settings: &Settings) -> apiary_geo::GeoDb {
    let geo = match apiary_geo::GeoDb::open(&geo_settings(settings)) {
        Ok(db) => db,
        Err(e) => {
            warn!(error = %e, "geo database unusable; events stored without geolocation");
            apiary_geo::GeoDb::disabled()
        }
    };
    if !geo.is_enabled() {
        warn!("no geo database configured; events stored without geolocation (run scripts/fetch-geo.sh or set geo.city_db)");
    } else {
        info!(geo = %geo.status(), "geolocation enabled");
    }
    geo
}

/// The host part of `http.public_url` (`https://[2001:db8::1]:8443/x` → `2001:db8::1`).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

/// Where the live map draws sensors that have no location of their own: `map.server_latitude`
/// / `server_longitude` when set, else the geolocation of the server's public address
/// (`hpfeeds.public_host`, else the host of `http.public_url`; a name is resolved, with a
/// short timeout). Private or unknown addresses give none: such sensors are then placed at
/// their destination address's location when it has one, and their events are shown
/// (attacker and log line) either way.
async fn server_location(settings: &Settings, geo: &apiary_geo::GeoDb) -> Option<LatLon> {
    if let Some(l) = settings.map.server_location() {
        return Some(l);
    }
    let host = settings
        .hpfeeds
        .public_host
        .as_deref()
        .filter(|h| !h.is_empty())
        .or_else(|| settings.http.public_url.as_deref().and_then(url_host))?;
    let addrs: Vec<std::net::IpAddr> = match host.parse() {
        Ok(ip) => vec![ip],
        Err(_) => {
            match tokio::time::timeout(Duration::from_secs(3), tokio::net::lookup_host((host, 0)))
                .await
            {
                Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
                _ => {
                    warn!(%host, "live map: cannot resolve the public host; set map.server_latitude/longitude");
                    return None;
                }
            }
        }
    };
    let found = addrs.iter().find_map(|ip| {
        let g = geo.lookup(*ip)?;
        match (g.latitude, g.longitude) {
            (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => {
                Some((*ip, LatLon { lat, lon }))
            }
            _ => None,
        }
    });
    match found {
        Some((ip, l)) => {
            info!(%host, %ip, lat = l.lat, lon = l.lon, "live map: server located from its public address");
            Some(l)
        }
        None => {
            info!(%host, "live map: the public address does not geolocate; set map.server_latitude/longitude to place sensors without a location");
            None
        }
    }
}

/// Starts the ingest pipeline on the broker's lossless in-process subscription.
fn start_ingest(
    settings: &Settings,
    broker: &Broker,
    store: Arc<dyn Store>,
    live: &apiary_web::live::LiveHub,
    geo: Arc<apiary_geo::GeoDb>,
    _shutdown: CancellationToken,
) -> Result<Pipeline> {
    let source = broker.subscribe_internal(ChannelFilter::All, settings.ingest.queue);
    let publisher = apiary_ingest::live::LivePublisher::new(live.sender(), live.server_location);
    Ok(Pipeline::spawn_live(
        source,
        store,
        geo,
        PipelineConfig {
            batch_size: settings.ingest.batch_size,
            batch_delay: Duration::from_millis(settings.ingest.batch_delay_ms),
        },
        Some(publisher),
    ))
}

fn metric_sources(
    broker: &Broker,
    store: Arc<dyn Store>,
    ingest: Option<&Pipeline>,
) -> Vec<Arc<dyn apiary_web::MetricsSource>> {
    let mut v: Vec<Arc<dyn apiary_web::MetricsSource>> = Vec::new();
    let m = broker.metrics().clone();
    v.push(Arc::new(move |out: &mut String| m.render(out)));
    let b = broker.clone();
    v.push(Arc::new(move |out: &mut String| {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP apiary_broker_idents Idents loaded.\n# TYPE apiary_broker_idents gauge\napiary_broker_idents {}", b.ident_count());
    }));
    if let Some(p) = ingest {
        v.push(Arc::new(IngestHealth(p.metrics.clone())));
    }
    v.push(Arc::new(retention::StoreStats::new(store)));
    v
}

/// Batch commits failing longer than this make `/healthz` answer 503: a dropped database
/// connection retried within seconds is not worth an alert, a full disk is.
const INGEST_UNHEALTHY_AFTER: Duration = Duration::from_secs(10);

/// The pipeline's counters, and its health for `/healthz`.
struct IngestHealth(Arc<apiary_ingest::pipeline::IngestMetrics>);

impl apiary_web::MetricsSource for IngestHealth {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }

    fn problem(&self) -> Option<(&'static str, String)> {
        let failing = self.0.failing_for()?;
        (failing >= INGEST_UNHEALTHY_AFTER).then(|| {
            (
                "ingest",
                format!(
                    "batch commits failing for {} s (publishers held back; see the log)",
                    failing.as_secs()
                ),
            )
        })
    }
}

/// Geo database settings: configured paths, else discovered ones.
pub fn geo_settings(settings: &Settings) -> apiary_geo::GeoSettings {
    let mut dirs = Vec::new();
    if let Some(d) = &settings.geo.dir {
        dirs.push(d.clone());
    }
    dirs.push(settings.data_dir.join("geo"));
    dirs.push(std::path::PathBuf::from("data").join("geo"));
    let found = apiary_geo::GeoSettings::discover_in(&dirs);
    match (&settings.geo.city_db, &settings.geo.asn_db) {
        (None, None) => found,
        (city, asn) => apiary_geo::GeoSettings {
            city: city.clone(),
            asn: asn.clone(),
            ..found
        },
    }
}

/// Sign-in settings for the web app.
fn auth_config(s: &Settings) -> apiary_web::auth::AuthConfig {
    apiary_web::auth::AuthConfig::default().with_sessions(
        chrono::Duration::hours(s.http.session_hours.into()),
        s.http.secure_cookies,
    )
}

/// Deployment settings for the web app.
fn deploy_config(s: &Settings) -> apiary_web::deploy::DeployConfig {
    apiary_web::deploy::DeployConfig {
        public_url: s.http.public_url.clone(),
        hpfeeds_host: s.hpfeeds.public_host.clone(),
        hpfeeds_port: s.hpfeeds.public_port.unwrap_or(s.hpfeeds.listen.port()),
        sensor_binary: s.deploy.sensor_binary.clone(),
    }
}

/// Creates the seeded deploy scripts that are missing (first start, or after an upgrade
/// that adds one) and updates the ones no admin edited.
async fn seed_deploy_scripts(store: &dyn apiary_store::Store) {
    match apiary_web::deploy::seed(store).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(scripts = n, "seeded or updated deploy scripts"),
        Err(e) => tracing::warn!(error = ?e, "cannot seed deploy scripts"),
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_host_takes_the_host_of_a_public_url() {
        for (url, host) in [
            ("https://apiary.example.net", Some("apiary.example.net")),
            ("http://198.51.100.7:8080/ui/", Some("198.51.100.7")),
            ("https://[2001:db8::1]:8443/x", Some("2001:db8::1")),
            ("https://user@h.example:1?q", Some("h.example")),
            ("apiary.example.net/x", Some("apiary.example.net")),
            ("https://", None),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
    }
}
