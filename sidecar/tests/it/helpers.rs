//! Spawning a sidecar for one test, and requests with the right tokens.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use stock_core::Timestamp;
use stock_sidecar::clock::ManualClock;
use stock_sidecar::config::{Config, Secret};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub(crate) const API_TOKEN: &str = "test-api-token-0123456789";
pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub(crate) const WEBHOOK_SECRET: &str = "whsec_test_secret_for_the_sidecar_tests";
/// Every test starts at this instant.
pub(crate) const START: &str = "2026-11-24T10:00:00.000Z";

/// The environment variable that runs the suite on PostgreSQL: the URL of a server whose user may create schemas
/// (`postgres://postgres@127.0.0.1:5432/test`; scripts/test.sh sets it for the suite's second run). Unset, every
/// test gets a fresh SQLite file.
pub(crate) const POSTGRES_VAR: &str = "STOCK_TEST_DATABASE";

/// The PostgreSQL server the suite runs on, if it runs on PostgreSQL.
pub(crate) fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_VAR).ok().filter(|url| url.starts_with("postgres"))
}

/// The ledger database of one test: a fresh SQLite file in a temporary directory, or a fresh schema on the
/// PostgreSQL server of [`POSTGRES_VAR`]; deleted when dropped.
pub(crate) struct TestDatabase {
    /// What DATABASE_URL the sidecar gets.
    pub(crate) url: String,
    place: Place,
}

enum Place {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres { server: String, schema: String },
}

impl TestDatabase {
    pub(crate) async fn new() -> TestDatabase {
        match postgres_server() {
            None => {
                let directory = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", directory.path().join("ledger.db").display());
                TestDatabase { url, place: Place::Sqlite(directory) }
            }
            Some(server) => {
                use sqlx::Connection;
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
                let schema = format!(
                    "stock_test_{}_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    started.subsec_nanos()
                );
                let reachable = sqlx::PgConnection::connect(&server).await;
                let mut connection = reachable.expect(
                    "STOCK_TEST_DATABASE names a PostgreSQL server that cannot be reached (scripts/test.sh starts \
                     the local one)",
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut connection)
                    .await
                    .expect("create the test's schema");
                let _ = connection.close().await;
                let separator = if server.contains('?') { '&' } else { '?' };
                // The schema's name is also its connections' application_name, so that dropping it can end them.
                let url = format!("{server}{separator}options[search_path]={schema}&application_name={schema}");
                TestDatabase { url, place: Place::Postgres { server, schema } }
            }
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres { .. })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Place::Postgres { server, schema } = &self.place else {
            return;
        };
        let (server, schema) = (server.clone(), schema.clone());
        // Dropped inside the test's runtime, which cannot be blocked on: the schema goes from a thread of its own.
        // While this thread is joined, the test's sidecar (on the same runtime) is frozen, perhaps in the middle of
        // a transaction whose locks DROP SCHEMA would wait for forever: its connections are ended first (DROP SCHEMA
        // then waits only for them to exit).
        let dropped = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&server).await?;
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut connection)
                .await?;
                // Never wait forever: a lock still held after this is reported, and the schema left behind.
                sqlx::query("SET lock_timeout = '10s'").execute(&mut connection).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                    .execute(&mut connection)
                    .await?;
                connection.close().await
            })
        });
        if let Ok(Err(error)) = dropped.join() {
            eprintln!("could not drop the test schema: {error}");
        }
    }
}

/// A running sidecar; stopped and its database deleted when dropped.
pub(crate) struct TestApp {
    pub(crate) address: String,
    /// The sidecar's database, for tests that reach it from outside (a second process holding a lock).
    pub(crate) database_url: String,
    pub(crate) client: reqwest::Client,
    pub(crate) clock: ManualClock,
    shutdown: Option<oneshot::Sender<()>>,
    pub(crate) database: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A sidecar with both tokens set and the scheduled cleanup off (tests run cleanup when they mean to).
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A sidecar whose configuration `adjust` may change first.
pub(crate) async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::new().await;
    let mut config = Config {
        database_url: database.url.as_str().into(),
        api_token: Some(Secret::new(API_TOKEN)),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        stripe_webhook_secrets: vec![Secret::new(WEBHOOK_SECRET)],
        cleanup_interval: None,
        low_stock_check_interval: None,
        ..Config::default()
    };
    adjust(&mut config);
    let database_url = config.database_url.expose().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let address = format!("http://{}", listener.local_addr().expect("bound address"));
    let clock = ManualClock::new(Timestamp::parse_rfc3339(START).expect("valid start"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server_clock = Arc::new(clock.clone());
    tokio::spawn(async move {
        let stop = async {
            let _ = stopped.await;
        };
        if let Err(error) = stock_sidecar::run_with_clock(listener, config, server_clock, stop).await {
            eprintln!("test sidecar failed: {error}");
        }
    });
    TestApp {
        address,
        database_url,
        client: {
            stock_sidecar::install_crypto_provider();
            reqwest::Client::new()
        },
        clock,
        shutdown: Some(shutdown),
        database,
    }
}

impl TestApp {
    /// A request with the /v1 API token.
    pub(crate) fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.address)).bearer_auth(API_TOKEN)
    }

    /// A request with the admin token.
    pub(crate) fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.address)).bearer_auth(ADMIN_TOKEN)
    }

    /// A request with no token.
    pub(crate) fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.address))
    }

    /// Adds `quantity` units of a size through a restock movement (creating the size).
    pub(crate) async fn restock(&self, product: &str, size: &str, quantity: u32) {
        let body = json!({ "product": product, "size": size, "type": "restock", "quantity": quantity, "reason": "test stock" });
        let response = self.admin(Method::POST, "/v1/movements").json(&body).send().await.expect("request");
        assert_eq!(response.status(), 201, "restock failed: {}", response.text().await.unwrap_or_default());
    }

    /// POST /v1/reservations.
    pub(crate) async fn reserve(&self, reference: &str, items: Value) -> Response {
        let body = json!({ "reference": reference, "items": items });
        self.api(Method::POST, "/v1/reservations").json(&body).send().await.expect("request")
    }

    /// The size's figures from GET /v1/products/{product}/stock.
    pub(crate) async fn size_stock(&self, product: &str, size: &str) -> Value {
        let response = self.api(Method::GET, &format!("/v1/products/{product}/stock")).send().await.expect("request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        body["sizes"]
            .as_array()
            .and_then(|sizes| sizes.iter().find(|entry| entry["size"] == size).cloned())
            .unwrap_or(Value::Null)
    }
}

/// The JSON body of a response, with its status checked.
pub(crate) async fn body_of(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).expect("a JSON body")
}

/// A fixture event from tests/fixtures/stripe with its event id and its object's id replaced, as the exact text
/// to sign and send.
pub(crate) fn stripe_event(fixture: &str, event_id: &str, object_id: &str) -> String {
    let path = format!("{}/tests/fixtures/stripe/{fixture}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let mut event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    event["id"] = json!(event_id);
    event["data"]["object"]["id"] = json!(object_id);
    serde_json::to_string(&event).expect("serializable")
}

impl TestApp {
    /// Sends `payload` to the webhook route signed with `secret` at the clock's current time.
    pub(crate) async fn send_signed(&self, payload: &str, secret: &str) -> Response {
        let now = self.clock_seconds();
        let header = stripe_webhook::Webhook::generate_test_header(payload, secret, Some(now));
        self.send_with_signature(payload, &header).await
    }

    /// Sends `payload` to the webhook route signed with the test secret.
    pub(crate) async fn send_event(&self, payload: &str) -> Response {
        self.send_signed(payload, WEBHOOK_SECRET).await
    }

    /// Sends `payload` with the given Stripe-Signature header, on the route Stripe's CLI forwards to.
    pub(crate) async fn send_with_signature(&self, payload: &str, signature: &str) -> Response {
        self.client
            .post(format!("{}/webhooks/stripe", self.address))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(payload.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// The clock's time in whole Unix seconds, as Stripe signs.
    pub(crate) fn clock_seconds(&self) -> i64 {
        use stock_sidecar::clock::Clock;
        self.clock.now().unix_millis() / 1000
    }
}

/// The ledger on `database` itself, without a server; queuing changes for Payload when `projection` is given.
pub(crate) async fn open_store(
    database: &TestDatabase,
    projection: Option<stock_sidecar::store::ProjectionSettings>,
) -> Arc<stock_sidecar::ledger::Ledger> {
    use stock_sidecar::ledger::Ledger;
    use stock_sidecar::metrics::Metrics;
    use stock_sidecar::store::{PostgresStore, SqliteStore};
    let metrics = Arc::new(Metrics::new());
    Arc::new(if database.is_postgres() {
        let store = PostgresStore::connect(&database.url, 4).await.expect("store opens");
        Ledger::new(store.with_projection(projection), metrics)
    } else {
        let store = SqliteStore::connect(&database.url).await.expect("store opens");
        Ledger::new(store.with_projection(projection), metrics)
    })
}

/// A connection of the test's own to a SQLite ledger at `url` (`sqlite://path`), beside the server's.
pub(crate) fn sqlite_connection(url: &str) -> rusqlite::Connection {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let connection = rusqlite::Connection::open(path).expect("a second connection");
    connection.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    connection
}
