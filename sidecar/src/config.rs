//! The sidecar's configuration: built-in defaults, then an optional file, then environment variables, validated
//! once at start-up so that a mistake stops the sidecar with a message instead of surfacing at the first request.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use stock_core::ReservationTtl;

pub use crate::store::SqliteDurability;

/// The environment variable naming an optional configuration file of `KEY=VALUE` lines (`#` starts a comment).
/// Environment variables override the file.
pub const CONFIG_FILE_VAR: &str = "STOCK_SIDECAR_CONFIG";

/// Every setting the sidecar reads, with its default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `serve` listens (`LISTEN_ADDR`, default 127.0.0.1:4242).
    pub listen_addr: SocketAddr,
    /// The ledger's database (`DATABASE_URL`, default `sqlite://payload-stock.db`): an embedded SQLite file, or a
    /// PostgreSQL server (`postgres://user:password@host:5432/database`) that several sidecars share.
    pub database_url: DatabaseUrl,
    /// Connections each sidecar opens to PostgreSQL at most (`DATABASE_MAX_CONNECTIONS`, default 10); unused with
    /// SQLite, which writes through one connection.
    pub database_max_connections: u32,
    /// When a commit counts as done (`SQLITE_SYNCHRONOUS`, default `full`): `full` waits for the disk on every
    /// commit, so an answered request survives a power loss; `normal` survives a crash of the process but may lose
    /// the last commits on power loss (see RELIABILITY.md). Group commit shares one wait among concurrent writes.
    pub sqlite_synchronous: SqliteDurability,
    /// Bearer token of the /v1 API (`SIDECAR_API_TOKEN`). Without it /v1 answers 503 `api_disabled`.
    pub api_token: Option<Secret>,
    /// Bearer token of the admin routes and movements (`ADMIN_API_TOKEN`). Without it they answer 503
    /// `admin_disabled`: admin routes are never open.
    pub admin_token: Option<Secret>,
    /// Bearer token of `GET /metrics` (`METRICS_TOKEN`), so that Prometheus holds a token that cannot change stock.
    /// Without it /metrics takes ADMIN_API_TOKEN; with neither it answers 503 `metrics_disabled`, never open.
    pub metrics_token: Option<Secret>,
    /// How log lines are written (`LOG_FORMAT`: `json`, `text` or `auto`, the default: human-readable text when
    /// standard output is a terminal, one JSON object a line otherwise, as log collectors read them).
    pub log_format: LogFormat,
    /// How often the in-process cleanup releases expired reservations (`CLEANUP_INTERVAL_SECONDS`, default 60;
    /// 0 turns the schedule off, for when an external cron calls the cleanup endpoint).
    pub cleanup_interval: Option<Duration>,
    /// Lifetime of a reservation whose request names none (`RESERVATION_TTL_SECONDS`, default 1800).
    pub default_ttl: ReservationTtl,
    /// Stripe webhook signing secrets (`STRIPE_WEBHOOK_SECRET`, comma-separated: during a rotation both the old
    /// and the new one verify). Without one the webhook routes answer 503 `webhooks_disabled`.
    pub stripe_webhook_secrets: Vec<Secret>,
    /// Release the reservation on `payment_intent.payment_failed` (`RELEASE_ON_PAYMENT_FAILED`, default false:
    /// Stripe lets the customer retry the same PaymentIntent, so the units stay held until it expires).
    pub release_on_payment_failed: bool,
    /// Put a paid reservation's units back on sale when its payment becomes fully refunded
    /// (`RESTOCK_ON_FULL_REFUND`, default false: money and stock are separate facts, and units come back through a
    /// return). For shops that refund only before shipping; each restock is a `return` movement naming the refund.
    pub restock_on_full_refund: bool,
    /// Stripe API key (`STRIPE_SECRET_KEY`, `sk_...` or a restricted `rk_...`). With it, cleanup cancels an
    /// abandoned PaymentIntent (or expires a Checkout Session) before releasing its reservation.
    pub stripe_secret_key: Option<Secret>,
    /// Stripe's API URL (`STRIPE_API_BASE`, default Stripe's own); tests point it at a local fake.
    pub stripe_api_base: Option<String>,
    /// Requests in progress at most (`MAX_CONCURRENT_REQUESTS`, default 1024: a flash sale of 1,000 buyers at the
    /// same instant is served in well under 100 ms, and about 30 KiB each); beyond it the sidecar answers 503
    /// `overloaded` with Retry-After at once rather than queueing without bound.
    pub max_concurrent_requests: usize,
    /// A request not answered within this is dropped with 408 `request_timeout` (`REQUEST_TIMEOUT_SECONDS`,
    /// default 30): a slow client or a stalled store cannot hold its connection and work forever.
    pub request_timeout: Duration,
    /// A request body not received whole within this is answered 408 (`BODY_READ_TIMEOUT_SECONDS`, default 10; a
    /// cart or a Stripe event is a few kilobytes). Bodies are read before a request takes a slot, so a client that
    /// sends headers and then nothing holds no slot.
    pub body_read_timeout: Duration,
    /// Request headers not received whole within this close the connection (`HEADER_READ_TIMEOUT_SECONDS`,
    /// default 10): an idle or trickling connection cannot be held open for free.
    pub header_read_timeout: Duration,
    /// Connections open at once at most (`MAX_CONNECTIONS`, default 2048); one more is closed at once. Keep it
    /// under the process's open-file limit (`ulimit -n`), with room for the database's files. It also bounds the
    /// memory of bodies being read: 256 KiB at most each.
    pub max_connections: usize,
    /// The Payload the ledger is projected into (`PAYLOAD_URL` and friends); `None` runs the sidecar on its own.
    pub payload: Option<PayloadConfig>,
    /// How often sizes are checked for a crossing of their stock state (low, out of stock, back in stock)
    /// (`LOW_STOCK_CHECK_INTERVAL_SECONDS`, default 2; 0 turns alerts off).
    pub low_stock_check_interval: Option<Duration>,
    /// Where each crossing is posted as signed JSON (`LOW_STOCK_WEBHOOK_URL` and `LOW_STOCK_WEBHOOK_SECRET`);
    /// `None`: crossings are logged (and flagged in Payload) only.
    pub low_stock_webhook: Option<AlertWebhookConfig>,
}

/// The alert webhook: a Slack or email relay, or the shop's own endpoint.
#[derive(Debug, Clone)]
pub struct AlertWebhookConfig {
    /// A secret: a Slack incoming-webhook URL lets anyone who reads it post to the channel.
    pub url: Secret,
    /// Signs every POST (`X-Payload-Stock-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`).
    pub secret: Secret,
}

/// The ledger's database URL. Its password, if any, never prints: `Display` and `Debug` show `****` instead.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given, password included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// PostgreSQL (`postgres://` or `postgresql://`); otherwise SQLite.
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(url.to_owned())
    }
}

impl fmt::Display for DatabaseUrl {
    /// The URL with its secrets replaced by `****`: the password of `scheme://user:password@host`, and the value
    /// of every query parameter that names a password, a secret, a token or a key (`?password=`, `sslpassword`,
    /// `sslkey`...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            return f.write_str(url);
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (rest, None),
        };
        let authority_end = before_query.find('/').unwrap_or(before_query.len());
        let authority = &before_query[..authority_end];
        write!(f, "{scheme}://")?;
        match authority.rfind('@').and_then(|at| authority[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) => write!(f, "{}:****{}", &authority[..colon], &authority[at..])?,
            None => f.write_str(authority)?,
        }
        f.write_str(&before_query[authority_end..])?;
        let Some(query) = query else { return Ok(()) };
        f.write_str("?")?;
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                f.write_str("&")?;
            }
            match pair.split_once('=') {
                Some((name, _)) if names_a_secret(name) => write!(f, "{name}=****")?,
                _ => f.write_str(pair)?,
            }
        }
        Ok(())
    }
}

/// Whether a URL query parameter's name says its value is a secret.
fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key"].iter().any(|word| name.contains(word))
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text when standard output is a terminal, JSON lines otherwise.
    Auto,
    Json,
    Text,
}

impl LogFormat {
    /// Whether lines are JSON, given whether standard output is a terminal.
    pub fn is_json(self, stdout_is_terminal: bool) -> bool {
        match self {
            LogFormat::Auto => !stdout_is_terminal,
            LogFormat::Json => true,
            LogFormat::Text => false,
        }
    }
}

/// How a shop keeps stock in Payload, which decides how the projection writes figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopKind {
    /// A `sizes` array on each product (the payloadStock plugin adds it): the product is read and its sizes written
    /// back with the ledger's figures.
    Sizes,
    /// Payload's ecommerce plugin: `inventory` (and the plugin's figures) on each variant, and on a product without
    /// variants; written through the payloadStock plugin's figures endpoint, which leaves drafts alone.
    Ecommerce,
}

/// Where and how the projection writes to Payload's REST API.
#[derive(Debug, Clone)]
pub struct PayloadConfig {
    /// Payload's base URL without `/api` (`PAYLOAD_URL`, e.g. `http://localhost:3000`).
    pub url: String,
    /// An API key of a user in `auth_collection` (`PAYLOAD_API_KEY`), sent as `<collection> API-Key <key>`.
    pub api_key: Secret,
    /// The auth collection the key belongs to (`PAYLOAD_AUTH_COLLECTION`, default `users`).
    pub auth_collection: String,
    /// Slugs, as given to the payloadStock plugin (`PAYLOAD_PRODUCTS_SLUG`, `PAYLOAD_MOVEMENTS_SLUG`,
    /// `PAYLOAD_RESERVATIONS_SLUG`).
    pub products_slug: String,
    pub movements_slug: String,
    pub reservations_slug: String,
    /// How the shop keeps stock in Payload (`PAYLOAD_SHOP`): `sizes` (a `sizes` array on each product, the default)
    /// or `ecommerce` (Payload's ecommerce plugin: `inventory` on variants and on products without variants).
    pub shop: ShopKind,
    /// The ecommerce plugin's variants collection (`PAYLOAD_VARIANTS_SLUG`, default `variants`), read by `import`
    /// and `reconcile` in a shop on Payload's ecommerce plugin.
    pub variants_slug: String,
    /// The longest wait between two attempts at a failing delivery (`PROJECTION_RETRY_MAX_SECONDS`, default 300).
    pub retry_max: Duration,
    /// How long a movement entered in Payload waits for Payload to save its own document before the outbox creates
    /// it (`PROJECTION_PAYLOAD_SAVE_GRACE_SECONDS`, default 30).
    pub payload_save_grace: Duration,
    /// How long a sidecar's claim on a lane of the outbox lasts (`PROJECTION_LEASE_SECONDS`, default 30). Several
    /// sidecars on one PostgreSQL each deliver only the lanes they claimed; a sidecar that dies leaves its lanes to
    /// the others once its claims lapse. A delivery stops taking new rows of a lane at half the lease.
    pub delivery_lease: Duration,
    /// ADMIN_API_TOKEN, the token the payloadStock plugin holds as `sidecarToken`: every write to Payload carries a
    /// proof derived from it (see `projection::payload::projection_proof`), without which the plugin refuses it.
    pub proof_key: Secret,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 4242)),
            database_url: DatabaseUrl("sqlite://payload-stock.db".to_owned()),
            database_max_connections: 10,
            sqlite_synchronous: SqliteDurability::Full,
            api_token: None,
            admin_token: None,
            metrics_token: None,
            log_format: LogFormat::Auto,
            cleanup_interval: Some(Duration::from_secs(60)),
            default_ttl: ReservationTtl::DEFAULT,
            stripe_webhook_secrets: Vec::new(),
            release_on_payment_failed: false,
            restock_on_full_refund: false,
            stripe_secret_key: None,
            stripe_api_base: None,
            payload: None,
            low_stock_check_interval: Some(Duration::from_secs(2)),
            low_stock_webhook: None,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 2048,
        }
    }
}

impl Config {
    /// The configuration from the process environment (and the file named by [`CONFIG_FILE_VAR`], if any).
    pub fn from_env() -> Result<Self, ConfigError> {
        let environment: BTreeMap<String, String> = std::env::vars().collect();
        let mut settings = BTreeMap::new();
        if let Some(path) = environment.get(CONFIG_FILE_VAR) {
            settings.extend(read_config_file(Path::new(path))?);
        }
        settings.extend(environment);
        Config::from_settings(&settings)
    }

    /// The configuration from `KEY -> value` settings laid over the defaults; every problem is reported at once.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let mut problems = Vec::new();
        let value = |key: &str| settings.get(key).map(|value| value.trim()).filter(|value| !value.is_empty());

        if let Some(text) = value("LISTEN_ADDR") {
            match text.parse() {
                Ok(address) => config.listen_addr = address,
                Err(_) => problems.push(format!("LISTEN_ADDR: {text:?} is not an address such as 127.0.0.1:4242")),
            }
        }
        if let Some(text) = value("DATABASE_URL") {
            let url = DatabaseUrl(text.to_owned());
            if text.starts_with("sqlite:") || url.is_postgres() {
                config.database_url = url;
            } else {
                problems.push(format!(
                    "DATABASE_URL: {:?} is not supported; use sqlite://path/to/file.db or \
                     postgres://user:password@host:5432/database",
                    text.split(':').next().unwrap_or(text)
                ));
            }
        }
        if let Some(text) = value("DATABASE_MAX_CONNECTIONS") {
            match text.parse::<u32>() {
                Ok(count) if (2..=1000).contains(&count) => config.database_max_connections = count,
                _ => problems.push(format!("DATABASE_MAX_CONNECTIONS: {text:?} is not a whole number from 2 to 1000")),
            }
        }
        if let Some(text) = value("SQLITE_SYNCHRONOUS") {
            match text.to_ascii_lowercase().as_str() {
                "full" => config.sqlite_synchronous = SqliteDurability::Full,
                "normal" => config.sqlite_synchronous = SqliteDurability::Normal,
                _ => problems.push(format!(
                    "SQLITE_SYNCHRONOUS: {text:?} is not full (durable on power loss) or normal (durable on a crash)"
                )),
            }
        }
        for (key, slot) in [
            ("SIDECAR_API_TOKEN", &mut config.api_token),
            ("ADMIN_API_TOKEN", &mut config.admin_token),
            ("METRICS_TOKEN", &mut config.metrics_token),
        ] {
            if let Some(text) = value(key) {
                if text.len() < 16 {
                    problems.push(format!("{key}: use at least 16 characters (a random token, not a password)"));
                } else {
                    *slot = Some(Secret(text.to_owned()));
                }
            }
        }
        if let Some(text) = value("LOG_FORMAT") {
            match text.to_ascii_lowercase().as_str() {
                "auto" => config.log_format = LogFormat::Auto,
                "json" => config.log_format = LogFormat::Json,
                "text" => config.log_format = LogFormat::Text,
                _ => problems.push(format!(
                    "LOG_FORMAT: {text:?} is not json, text or auto (text in a terminal, JSON lines otherwise)"
                )),
            }
        }
        if let Some(text) = value("CLEANUP_INTERVAL_SECONDS") {
            match text.parse::<u64>() {
                Ok(0) => config.cleanup_interval = None,
                Ok(seconds) if seconds <= 86_400 => config.cleanup_interval = Some(Duration::from_secs(seconds)),
                _ => problems.push(format!("CLEANUP_INTERVAL_SECONDS: {text:?} is not a whole number from 0 to 86400")),
            }
        }
        if let Some(text) = value("RESERVATION_TTL_SECONDS") {
            match text.parse::<u32>().ok().and_then(|seconds| ReservationTtl::from_seconds(seconds).ok()) {
                Some(ttl) => config.default_ttl = ttl,
                None => problems.push(format!(
                    "RESERVATION_TTL_SECONDS: {text:?} is not a whole number from {} to {}",
                    ReservationTtl::MIN_SECONDS,
                    ReservationTtl::MAX_SECONDS
                )),
            }
        }

        if let Some(text) = value("STRIPE_WEBHOOK_SECRET") {
            for secret in text.split(',').map(str::trim).filter(|secret| !secret.is_empty()) {
                if secret.starts_with("whsec_") {
                    config.stripe_webhook_secrets.push(Secret(secret.to_owned()));
                } else {
                    problems.push("STRIPE_WEBHOOK_SECRET: each secret starts with whsec_ (see the webhook endpoint in Stripe's dashboard, or `stripe listen`)".to_owned());
                }
            }
        }
        if let Some(text) = value("STRIPE_SECRET_KEY") {
            if text.starts_with("sk_") || text.starts_with("rk_") {
                config.stripe_secret_key = Some(Secret(text.to_owned()));
            } else {
                problems
                    .push("STRIPE_SECRET_KEY: expected a secret key (sk_...) or a restricted key (rk_...)".to_owned());
            }
        }
        if let Some(text) = value("STRIPE_API_BASE") {
            if text.starts_with("http://") || text.starts_with("https://") {
                let base = if text.ends_with('/') { text.to_owned() } else { format!("{text}/") };
                config.stripe_api_base = Some(base);
            } else {
                problems.push(format!("STRIPE_API_BASE: {text:?} is not an http(s) URL"));
            }
        }
        if let Some(text) = value("RELEASE_ON_PAYMENT_FAILED") {
            match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => config.release_on_payment_failed = true,
                "false" | "0" | "no" => config.release_on_payment_failed = false,
                _ => problems.push(format!("RELEASE_ON_PAYMENT_FAILED: {text:?} is not true or false")),
            }
        }
        if let Some(text) = value("RESTOCK_ON_FULL_REFUND") {
            match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => config.restock_on_full_refund = true,
                "false" | "0" | "no" => config.restock_on_full_refund = false,
                _ => problems.push(format!("RESTOCK_ON_FULL_REFUND: {text:?} is not true or false")),
            }
        }

        if let Some(text) = value("MAX_CONCURRENT_REQUESTS") {
            match text.parse::<usize>() {
                Ok(count) if (1..=100_000).contains(&count) => config.max_concurrent_requests = count,
                _ => problems.push(format!("MAX_CONCURRENT_REQUESTS: {text:?} is not a whole number from 1 to 100000")),
            }
        }
        if let Some(text) = value("REQUEST_TIMEOUT_SECONDS") {
            match text.parse::<u64>() {
                Ok(seconds) if (1..=600).contains(&seconds) => config.request_timeout = Duration::from_secs(seconds),
                _ => problems.push(format!("REQUEST_TIMEOUT_SECONDS: {text:?} is not a whole number from 1 to 600")),
            }
        }
        for (key, slot) in [
            ("BODY_READ_TIMEOUT_SECONDS", &mut config.body_read_timeout),
            ("HEADER_READ_TIMEOUT_SECONDS", &mut config.header_read_timeout),
        ] {
            if let Some(text) = value(key) {
                match text.parse::<u64>() {
                    Ok(seconds) if (1..=300).contains(&seconds) => *slot = Duration::from_secs(seconds),
                    _ => problems.push(format!("{key}: {text:?} is not a whole number from 1 to 300")),
                }
            }
        }
        if let Some(text) = value("MAX_CONNECTIONS") {
            match text.parse::<usize>() {
                Ok(count) if (1..=1_000_000).contains(&count) => config.max_connections = count,
                _ => problems.push(format!("MAX_CONNECTIONS: {text:?} is not a whole number from 1 to 1000000")),
            }
        }
        config.payload = payload_settings(&value, config.admin_token.as_ref(), &mut problems);
        if let Some(text) = value("LOW_STOCK_CHECK_INTERVAL_SECONDS") {
            match text.parse::<u64>() {
                Ok(0) => config.low_stock_check_interval = None,
                Ok(seconds) if seconds <= 3600 => config.low_stock_check_interval = Some(Duration::from_secs(seconds)),
                _ => problems
                    .push(format!("LOW_STOCK_CHECK_INTERVAL_SECONDS: {text:?} is not a whole number from 0 to 3600")),
            }
        }
        match (value("LOW_STOCK_WEBHOOK_URL"), value("LOW_STOCK_WEBHOOK_SECRET")) {
            (None, None) => {}
            (Some(url), secret) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    problems.push("LOW_STOCK_WEBHOOK_URL is not an http(s) URL".to_owned());
                }
                match secret {
                    Some(secret) if secret.len() >= 16 => {
                        config.low_stock_webhook =
                            Some(AlertWebhookConfig { url: Secret(url.to_owned()), secret: Secret(secret.to_owned()) });
                    }
                    Some(_) => problems.push("LOW_STOCK_WEBHOOK_SECRET: use at least 16 characters".to_owned()),
                    None => problems.push(
                        "LOW_STOCK_WEBHOOK_SECRET must be set with LOW_STOCK_WEBHOOK_URL: every alert is signed with it"
                            .to_owned(),
                    ),
                }
            }
            (None, Some(_)) => {
                problems.push("LOW_STOCK_WEBHOOK_SECRET is set without LOW_STOCK_WEBHOOK_URL".to_owned())
            }
        }

        if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
    }
}

/// The projection's settings: all or nothing, keyed on `PAYLOAD_URL`.
fn payload_settings<'a>(
    value: &dyn Fn(&str) -> Option<&'a str>,
    admin_token: Option<&Secret>,
    problems: &mut Vec<String>,
) -> Option<PayloadConfig> {
    let url = value("PAYLOAD_URL")?;
    let before = problems.len();
    if admin_token.is_none() && value("ADMIN_API_TOKEN").is_none() {
        problems.push(
            "ADMIN_API_TOKEN: required with PAYLOAD_URL: the projection proves its writes to the payloadStock plugin \
             with it (the plugin's sidecarToken), and the plugin refuses them without it"
                .to_owned(),
        );
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        problems.push(format!("PAYLOAD_URL: {url:?} is not an http(s) URL such as http://localhost:3000"));
    }
    let api_key = value("PAYLOAD_API_KEY").unwrap_or_default();
    if api_key.is_empty() {
        problems.push(
            "PAYLOAD_API_KEY: required with PAYLOAD_URL (turn on API keys in the auth collection with \
             `auth: { useAPIKey: true }` and copy a user's key)"
                .to_owned(),
        );
    }
    let mut slug = |key: &str, default: &str| -> String {
        let text = value(key).unwrap_or(default);
        if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            problems.push(format!("{key}: {text:?} is not a collection slug (letters, digits, - and _)"));
        }
        text.to_owned()
    };
    let auth_collection = slug("PAYLOAD_AUTH_COLLECTION", "users");
    let products_slug = slug("PAYLOAD_PRODUCTS_SLUG", "products");
    let movements_slug = slug("PAYLOAD_MOVEMENTS_SLUG", "stock-movements");
    let reservations_slug = slug("PAYLOAD_RESERVATIONS_SLUG", "stock-reservations");
    let variants_slug = slug("PAYLOAD_VARIANTS_SLUG", "variants");
    let shop = match value("PAYLOAD_SHOP").unwrap_or("sizes") {
        "sizes" => ShopKind::Sizes,
        "ecommerce" => ShopKind::Ecommerce,
        other => {
            problems.push(format!(
                "PAYLOAD_SHOP: {other:?} is neither sizes (a sizes array on each product) nor ecommerce (Payload's ecommerce plugin)"
            ));
            ShopKind::Sizes
        }
    };
    let mut retry_max = Duration::from_secs(300);
    if let Some(text) = value("PROJECTION_RETRY_MAX_SECONDS") {
        match text.parse::<u64>() {
            Ok(seconds) if (1..=3600).contains(&seconds) => retry_max = Duration::from_secs(seconds),
            _ => problems.push(format!("PROJECTION_RETRY_MAX_SECONDS: {text:?} is not a whole number from 1 to 3600")),
        }
    }
    let mut payload_save_grace = Duration::from_secs(30);
    if let Some(text) = value("PROJECTION_PAYLOAD_SAVE_GRACE_SECONDS") {
        match text.parse::<u64>() {
            Ok(seconds) if seconds <= 3600 => payload_save_grace = Duration::from_secs(seconds),
            _ => problems
                .push(format!("PROJECTION_PAYLOAD_SAVE_GRACE_SECONDS: {text:?} is not a whole number from 0 to 3600")),
        }
    }
    let mut delivery_lease = Duration::from_secs(30);
    if let Some(text) = value("PROJECTION_LEASE_SECONDS") {
        match text.parse::<u64>() {
            Ok(seconds) if (2..=3600).contains(&seconds) => delivery_lease = Duration::from_secs(seconds),
            _ => problems.push(format!("PROJECTION_LEASE_SECONDS: {text:?} is not a whole number from 2 to 3600")),
        }
    }
    (problems.len() == before).then(|| PayloadConfig {
        url: url.trim_end_matches('/').to_owned(),
        api_key: Secret(api_key.to_owned()),
        auth_collection,
        products_slug,
        movements_slug,
        reservations_slug,
        shop,
        variants_slug,
        retry_max,
        payload_save_grace,
        delivery_lease,
        proof_key: admin_token.cloned().unwrap_or_else(|| Secret(String::new())),
    })
}

fn read_config_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::File { path: path.display().to_string(), source })?;
    let mut settings = BTreeMap::new();
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) => {
                settings.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            None => problems.push(format!("{}:{}: expected KEY=VALUE", path.display(), number + 1)),
        }
    }
    if problems.is_empty() { Ok(settings) } else { Err(ConfigError::Invalid(problems)) }
}

/// A token or key: compared in constant time and never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one call that needs it (signing or verifying).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
    #[error("cannot read the configuration file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn the_defaults_need_no_setting() {
        let config = Config::from_settings(&BTreeMap::new()).expect("defaults are valid");
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:4242");
        assert_eq!(config.database_url.expose(), "sqlite://payload-stock.db");
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(60)));
        assert!(config.api_token.is_none() && config.admin_token.is_none());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let error = Config::from_settings(&settings(&[
            ("LISTEN_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://db"),
            ("ADMIN_API_TOKEN", "short"),
            ("CLEANUP_INTERVAL_SECONDS", "-1"),
            ("RESERVATION_TTL_SECONDS", "0"),
        ]))
        .expect_err("five problems");
        let ConfigError::Invalid(problems) = error else { unreachable!("not a validation error: {error}") };
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn low_stock_alerts_are_checked_every_two_seconds_and_posted_only_with_a_url_and_a_secret() {
        let defaults = Config::from_settings(&BTreeMap::new()).expect("valid");
        assert_eq!(defaults.low_stock_check_interval, Some(Duration::from_secs(2)));
        assert!(defaults.low_stock_webhook.is_none());
        let secret = "alert-secret-0123456789";
        let config = Config::from_settings(&settings(&[
            ("LOW_STOCK_WEBHOOK_URL", "https://hooks.example.com/stock"),
            ("LOW_STOCK_WEBHOOK_SECRET", secret),
            ("LOW_STOCK_CHECK_INTERVAL_SECONDS", "0"),
        ]))
        .expect("valid");
        assert_eq!(config.low_stock_check_interval, None);
        let webhook = config.low_stock_webhook.clone().expect("set");
        assert_eq!((webhook.url.expose(), webhook.secret.expose()), ("https://hooks.example.com/stock", secret));
        assert!(!format!("{config:?}").contains(secret), "the secret never prints");
        assert!(!format!("{config:?}").contains("hooks.example.com"), "nor the URL: a Slack URL is a credential");
        for (pairs, problem) in [
            (
                &[("LOW_STOCK_WEBHOOK_URL", "https://hooks.example.com/stock")][..],
                "must be set with LOW_STOCK_WEBHOOK_URL",
            ),
            (&[("LOW_STOCK_WEBHOOK_SECRET", secret)][..], "without LOW_STOCK_WEBHOOK_URL"),
            (&[("LOW_STOCK_WEBHOOK_URL", "hooks.example.com"), ("LOW_STOCK_WEBHOOK_SECRET", secret)][..], "http(s)"),
            (&[("LOW_STOCK_WEBHOOK_URL", "https://h.example"), ("LOW_STOCK_WEBHOOK_SECRET", "short")][..], "16"),
            (&[("LOW_STOCK_CHECK_INTERVAL_SECONDS", "often")][..], "LOW_STOCK_CHECK_INTERVAL_SECONDS"),
        ] {
            let error = Config::from_settings(&settings(pairs)).expect_err("refused");
            assert!(error.to_string().contains(problem), "{error}");
        }
    }

    #[test]
    fn metrics_token_and_log_format_are_read_and_checked() {
        let config =
            Config::from_settings(&settings(&[("METRICS_TOKEN", "metrics-token-0123456789"), ("LOG_FORMAT", "JSON")]))
                .expect("valid");
        assert!(config.metrics_token.expect("set").matches("metrics-token-0123456789"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(LogFormat::Auto.is_json(false) && !LogFormat::Auto.is_json(true) && !LogFormat::Text.is_json(false));
        assert!(Config::from_settings(&settings(&[("METRICS_TOKEN", "short")])).is_err());
        assert!(Config::from_settings(&settings(&[("LOG_FORMAT", "xml")])).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::from_settings(&settings(&[("ADMIN_API_TOKEN", "admin-token-0123456789")])).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("admin-token-0123456789"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert!(config.admin_token.expect("set").matches("admin-token-0123456789"));
    }

    #[test]
    fn payload_projection_is_off_by_default_and_needs_a_key_when_on() {
        assert!(Config::from_settings(&BTreeMap::new()).expect("valid").payload.is_none());
        let error = Config::from_settings(&settings(&[
            ("PAYLOAD_URL", "localhost:3000"),
            ("PAYLOAD_PRODUCTS_SLUG", "my products"),
            ("PROJECTION_RETRY_MAX_SECONDS", "0"),
        ]))
        .expect_err("five problems");
        let ConfigError::Invalid(problems) = error else { unreachable!("not a validation error: {error}") };
        assert_eq!(problems.len(), 5, "admin token, URL, key, slug, retry: {problems:?}");
        assert!(problems[0].contains("ADMIN_API_TOKEN: required with PAYLOAD_URL"), "never open: {problems:?}");
        let config = Config::from_settings(&settings(&[
            ("PAYLOAD_URL", "http://127.0.0.1:3000/"),
            ("PAYLOAD_API_KEY", "payload-key-0123456789"),
            ("ADMIN_API_TOKEN", "admin-token-0123456789"),
            ("PAYLOAD_AUTH_COLLECTION", "shop-clients"),
        ]))
        .expect("valid");
        let payload = config.payload.expect("projection on");
        assert_eq!(payload.url, "http://127.0.0.1:3000");
        assert_eq!(payload.auth_collection, "shop-clients");
        assert_eq!((payload.products_slug.as_str(), payload.movements_slug.as_str()), ("products", "stock-movements"));
        assert_eq!(payload.payload_save_grace, Duration::from_secs(30));
    }

    #[test]
    fn commits_are_durable_on_power_loss_unless_normal_is_asked_for_by_name() {
        assert_eq!(Config::from_settings(&BTreeMap::new()).expect("valid").sqlite_synchronous, SqliteDurability::Full);
        let normal = Config::from_settings(&settings(&[("SQLITE_SYNCHRONOUS", "NORMAL")])).expect("valid");
        assert_eq!(normal.sqlite_synchronous, SqliteDurability::Normal);
        let error = Config::from_settings(&settings(&[("SQLITE_SYNCHRONOUS", "off")])).expect_err("off is refused");
        assert!(error.to_string().contains("SQLITE_SYNCHRONOUS"), "{error}");
    }

    #[test]
    fn postgres_is_chosen_by_its_url_whose_password_never_prints() {
        let config = Config::from_settings(&settings(&[(
            "DATABASE_URL",
            "postgres://stock:s3cret-pass@db.internal:5432/shop?sslmode=disable",
        )]))
        .expect("valid");
        assert!(config.database_url.is_postgres());
        assert_eq!(config.database_url.to_string(), "postgres://stock:****@db.internal:5432/shop?sslmode=disable");
        assert!(!format!("{config:?}").contains("s3cret-pass"));
        assert!(config.database_url.expose().contains("s3cret-pass"));
        let in_the_query = DatabaseUrl::from(
            "postgres://db.internal/shop?user=stock&password=s3cret-pass&sslmode=require&sslpassword=k3y",
        );
        assert_eq!(
            in_the_query.to_string(),
            "postgres://db.internal/shop?user=stock&password=****&sslmode=require&sslpassword=****"
        );
        assert!(!format!("{in_the_query:?}").contains("s3cret-pass"));
        let without_password = DatabaseUrl::from("postgresql://127.0.0.1/test");
        assert!(without_password.is_postgres());
        assert_eq!(without_password.to_string(), "postgresql://127.0.0.1/test");
        assert!(!DatabaseUrl::from("sqlite://ledger.db").is_postgres());
    }

    #[test]
    fn the_listeners_bounds_are_read_and_checked() {
        let defaults = Config::default();
        assert_eq!((defaults.max_connections, defaults.header_read_timeout), (2048, Duration::from_secs(10)));
        let config = Config::from_settings(&settings(&[
            ("MAX_CONNECTIONS", "20000"),
            ("HEADER_READ_TIMEOUT_SECONDS", "5"),
            ("BODY_READ_TIMEOUT_SECONDS", "3"),
        ]))
        .expect("valid");
        assert_eq!(config.max_connections, 20000);
        assert_eq!(
            (config.header_read_timeout, config.body_read_timeout),
            (Duration::from_secs(5), Duration::from_secs(3))
        );
        for key in ["MAX_CONNECTIONS", "HEADER_READ_TIMEOUT_SECONDS", "BODY_READ_TIMEOUT_SECONDS"] {
            let error = Config::from_settings(&settings(&[(key, "0")])).expect_err("0 is refused");
            assert!(error.to_string().contains(key), "{error}");
        }
    }

    #[test]
    fn a_zero_cleanup_interval_turns_the_schedule_off() {
        let config = Config::from_settings(&settings(&[("CLEANUP_INTERVAL_SECONDS", "0")])).expect("valid");
        assert_eq!(config.cleanup_interval, None);
    }

    #[test]
    fn the_file_is_read_and_the_environment_overrides_it() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("sidecar.env");
        std::fs::write(&path, "# comment\nLISTEN_ADDR = 127.0.0.1:5000\nRESERVATION_TTL_SECONDS=600\n").expect("write");
        let mut merged = read_config_file(&path).expect("readable");
        merged.extend(settings(&[("LISTEN_ADDR", "127.0.0.1:6000")]));
        let config = Config::from_settings(&merged).expect("valid");
        assert_eq!(config.listen_addr.port(), 6000);
        assert_eq!(config.default_ttl.seconds(), 600);
    }
}
