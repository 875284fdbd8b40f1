//! State shared by handlers.

use std::sync::Arc;
use std::time::Duration;

use apiary_store::Store;

use crate::cache::Cached;
use crate::pages::dashboard::DashboardData;

use crate::auth::{AuthConfig, LoginLimiter};
use crate::live::LiveHub;

/// Something that can append Prometheus text (broker, ingest, store counters) and tell
/// `/healthz` what is wrong with it.
pub trait MetricsSource: Send + Sync {
    /// Appends metrics in the text exposition format.
    fn render(&self, out: &mut String);

    /// A problem that makes the server unhealthy, as (component, short description
    /// without internals: `/healthz` needs no sign-in); none by default.
    fn problem(&self) -> Option<(&'static str, String)> {
        None
    }
}

impl<F: Fn(&mut String) + Send + Sync> MetricsSource for F {
    fn render(&self, out: &mut String) {
        self(out)
    }
}

/// The retention settings, shown on the settings page (0: forever / no budget).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionView {
    /// Days raw messages are kept.
    pub raw_days: u32,
    /// Days sessions and roll-ups are kept.
    pub session_days: u32,
    /// Disk budget of the embedded database, in MB.
    pub max_size_mb: u64,
}

/// Handler state: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Metric sources rendered by `/metrics`, in order.
    pub metrics: Arc<Vec<Arc<dyn MetricsSource>>>,
    /// Sign-in settings (password hashing cost, cookie lifetime).
    pub auth: Arc<AuthConfig>,
    /// Failed sign-in counters per address and per account.
    pub limiter: Arc<LoginLimiter>,
    /// The live event channel (`/api/live`).
    pub live: Arc<LiveHub>,
    /// Deployment settings (public URL, broker address, sensor binary).
    pub deploy: Arc<crate::deploy::DeployConfig>,
    /// The dashboard's figures, shared by every viewer for a few seconds.
    pub dashboard: Arc<Cached<DashboardData>>,
    /// Deadline for producing a response (not for streaming its body); 503 after it.
    pub request_timeout: Duration,
    /// Retention settings, for display.
    pub retention: RetentionView,
}

/// Default [`AppState::request_timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long dashboard figures are reused before a refresh starts.
pub const DASHBOARD_TTL: Duration = Duration::from_secs(5);
/// How old dashboard figures may get while a refresh is running.
pub const DASHBOARD_MAX_STALE: Duration = Duration::from_secs(60);

impl AppState {
    /// State with default sign-in settings.
    pub fn new(store: Arc<dyn Store>, metrics: Vec<Arc<dyn MetricsSource>>) -> Self {
        Self::with_auth(store, metrics, AuthConfig::default())
    }

    /// State with the given sign-in settings (tests use a cheap password hash).
    pub fn with_auth(
        store: Arc<dyn Store>,
        metrics: Vec<Arc<dyn MetricsSource>>,
        auth: AuthConfig,
    ) -> Self {
        let limiter = LoginLimiter::new(auth.max_failures, auth.failure_window);
        Self {
            store,
            metrics: Arc::new(metrics),
            auth: Arc::new(auth),
            limiter: Arc::new(limiter),
            live: Arc::new(LiveHub::default()),
            deploy: Arc::new(crate::deploy::DeployConfig {
                hpfeeds_port: 10000,
                ..Default::default()
            }),
            dashboard: Arc::new(Cached::new(DASHBOARD_TTL, DASHBOARD_MAX_STALE)),
            request_timeout: REQUEST_TIMEOUT,
            retention: RetentionView::default(),
        }
    }

    /// Uses `live` as the live event channel (the server shares it with ingest).
    pub fn with_live(mut self, live: Arc<LiveHub>) -> Self {
        self.live = live;
        self
    }

    /// Reuses dashboard figures for `ttl` (zero: compute them for every request).
    pub fn with_dashboard_ttl(mut self, ttl: Duration) -> Self {
        self.dashboard = Arc::new(Cached::new(ttl, DASHBOARD_MAX_STALE));
        self
    }

    /// Answers 503 when a handler has not produced a response within `timeout`.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Shows `retention` as the retention settings.
    pub fn with_retention(mut self, retention: RetentionView) -> Self {
        self.retention = retention;
        self
    }

    /// Uses `deploy` as the deployment settings.
    pub fn with_deploy(mut self, deploy: crate::deploy::DeployConfig) -> Self {
        self.deploy = Arc::new(deploy);
        self
    }
}
