//! GET /metrics: scraped and parsed as Prometheus parses it, after a known run of requests and Stripe events; and
//! the request id every answer carries.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{body_of, spawn_app, spawn_app_with, stripe_event};

/// One sample line: `name{label="value",...} number`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed by the rules of Prometheus's text format 0.0.4: every sample's family has its `# HELP` and
/// `# TYPE` lines before it, names are valid, label values are quoted with `\`, `"` and newline escaped, and
/// values are numbers.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
}

fn parse_exposition(text: &str) -> Scrape {
    let valid_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':')
    };
    let (mut samples, mut types, mut helped) = (Vec::new(), HashMap::new(), Vec::<String>::new());
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().expect("a name");
            assert!(valid_name(name), "{line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').expect("name and type");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(helped.last().is_some_and(|last| last == name), "HELP before TYPE: {line}");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "only HELP and TYPE comments: {line}");
        let name_end = line.find(['{', ' ']).expect("a value after the name");
        let name = &line[..name_end];
        assert!(valid_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix).filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "a sample of a family with a TYPE line: {line}");
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            loop {
                let (start, first) = chars.next().expect("a label or }");
                if first == '}' {
                    rest = &inner[start + 1..];
                    break;
                }
                let equals = inner[start..].find('=').expect("label=") + start;
                let key = &inner[start..equals];
                assert!(valid_name(key), "label name {key:?} in {line}");
                while chars.next().is_some_and(|(index, _)| index < equals) {}
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "a quoted label value: {line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("a closing quote").1 {
                        '"' => break,
                        '\\' => {
                            let escaped = chars.next().expect("an escape").1;
                            assert!(matches!(escaped, 'n' | '\\' | '"'), "unknown escape \\{escaped} in {line}");
                            value.push(if escaped == 'n' { '\n' } else { escaped });
                        }
                        other => value.push(other),
                    }
                }
                labels.insert(key.to_owned(), value);
                if let Some((_, ',')) = chars.clone().next() {
                    chars.next();
                }
            }
        }
        let value_text = rest.strip_prefix(' ').expect("a space before the value");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => {
                let parsed = number.parse::<f64>();
                assert!(parsed.is_ok(), "a number: {line}");
                parsed.unwrap_or_default()
            }
        };
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    Scrape { samples, types }
}

/// The parsed exposition, after checking its content type.
async fn scrape(app: &crate::helpers::TestApp) -> Scrape {
    let response = app.admin(Method::GET, "/metrics").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ASCII").to_owned();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let scrape = parse_exposition(&response.text().await.expect("body"));
    assert!(scrape.samples.iter().all(|sample| sample.name.starts_with("payload_stock_")), "every metric is ours");
    scrape
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted = |sample: &&Sample| {
        sample.name == name
            && labels.iter().all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
    };
    scrape.samples.iter().find(wanted).map(|sample| sample.value)
}

#[tokio::test]
async fn metrics_count_reservations_conflicts_and_webhook_events_and_show_the_ledger() {
    let app = spawn_app().await;
    app.restock("runner", "42", 3).await;
    let threshold = json!({ "product": "runner", "size": "43", "type": "restock", "quantity": 5, "reason": "delivery", "lowStockThreshold": 2 });
    body_of(app.admin(Method::POST, "/v1/movements").json(&threshold).send().await.expect("request"), 201).await;
    app.restock("runner", "44", 1).await;
    let line = |size: &str, quantity: u32| json!([{ "product": "runner", "size": size, "quantity": quantity }]);

    body_of(app.reserve("pi_paid", line("42", 1)).await, 201).await;
    body_of(app.reserve("pi_dropped", line("42", 1)).await, 201).await;
    body_of(app.reserve("pi_lapsing", line("43", 3)).await, 201).await;
    body_of(app.reserve("pi_last_one", line("44", 1)).await, 201).await;
    body_of(app.reserve("pi_paid", line("42", 1)).await, 200).await;
    body_of(app.reserve("pi_too_many", line("42", 5)).await, 409).await;
    body_of(app.reserve("pi_paid", line("43", 1)).await, 409).await;
    body_of(app.api(Method::DELETE, "/v1/reservations/pi_dropped").send().await.expect("request"), 200).await;

    let paid = stripe_event("payment_intent.succeeded", "evt_paid", "pi_paid");
    body_of(app.send_event(&paid).await, 200).await;
    body_of(app.send_event(&paid).await, 200).await;
    body_of(app.send_with_signature(&paid, "t=1,v1=forged").await, 400).await;
    let unknown = stripe_event("payment_intent.succeeded", "evt_unknown", "pi_nobody_reserved");
    body_of(app.send_event(&unknown).await, 200).await;
    body_of(app.api(Method::DELETE, "/v1/reservations/pi_paid").send().await.expect("request"), 409).await;

    // pi_lapsing (3 of size 43's 5) expires; pi_last_one keeps size 44's only unit.
    app.clock.advance_seconds(31 * 60);
    body_of(app.reserve("pi_late", line("42", 1)).await, 201).await;
    let cleaned =
        body_of(app.admin(Method::POST, "/api/admin/clean-expired-reservations").send().await.expect("request"), 200)
            .await;
    assert_eq!(cleaned["released"], 2, "pi_lapsing and pi_last_one");
    body_of(app.reserve("pi_hold", line("43", 3)).await, 201).await;

    let metrics = scrape(&app).await;
    let reservations = |event: &str| value(&metrics, "payload_stock_reservations_total", &[("event", event)]);
    assert_eq!(reservations("created"), Some(6.0));
    assert_eq!(reservations("committed"), Some(1.0));
    assert_eq!(reservations("released"), Some(1.0));
    assert_eq!(reservations("expired"), Some(2.0));
    let conflicts = |kind: &str| value(&metrics, "payload_stock_conflicts_total", &[("kind", kind)]);
    assert_eq!(conflicts("insufficient_stock"), Some(1.0));
    assert_eq!(conflicts("reference_conflict"), Some(1.0));
    assert_eq!(conflicts("unknown_reference"), Some(1.0));
    assert_eq!(conflicts("reservation_already_committed"), Some(1.0));
    let events = |kind: &str, outcome: &str| {
        value(&metrics, "payload_stock_webhook_events_total", &[("type", kind), ("outcome", outcome)])
    };
    assert_eq!(events("payment_intent.succeeded", "applied"), Some(1.0));
    assert_eq!(events("payment_intent.succeeded", "duplicate"), Some(1.0));
    assert_eq!(events("payment_intent.succeeded", "conflict"), Some(1.0));
    assert_eq!(events("unverified", "rejected"), Some(1.0));

    // The ledger now: 42 has 2 left of 3 (one sold) with pi_late holding 1; 43 has 5 with pi_hold's 3 (2 left, at
    // its threshold of 2: low); 44 has its one unit back (threshold 0, in stock).
    assert_eq!(value(&metrics, "payload_stock_active_reservations", &[]), Some(2.0));
    assert_eq!(value(&metrics, "payload_stock_reserved_units", &[]), Some(4.0));
    assert_eq!(value(&metrics, "payload_stock_sizes", &[("state", "low")]), Some(1.0));
    assert_eq!(value(&metrics, "payload_stock_sizes", &[("state", "in_stock")]), Some(2.0));
    assert_eq!(value(&metrics, "payload_stock_sizes", &[("state", "out_of_stock")]), Some(0.0));
    assert_eq!(value(&metrics, "payload_stock_outbox_backlog", &[]), Some(0.0));
    assert_eq!(value(&metrics, "payload_stock_outbox_oldest_undelivered_age_seconds", &[]), Some(0.0));
    assert_eq!(value(&metrics, "payload_stock_open_conflicts", &[]), Some(1.0));
    assert_eq!(value(&metrics, "payload_stock_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));

    // Latency histograms: by route template (never the reference), and by store operation.
    let reserve_route = [("method", "POST"), ("route", "/v1/reservations"), ("status", "201")];
    assert_eq!(value(&metrics, "payload_stock_http_request_duration_seconds_count", &reserve_route), Some(6.0));
    let release_route = [("route", "/v1/reservations/{reference}"), ("status", "409")];
    assert_eq!(value(&metrics, "payload_stock_http_request_duration_seconds_count", &release_route), Some(1.0));
    assert!(
        !metrics.samples.iter().any(|sample| sample.labels.get("route").is_some_and(|route| route.contains("pi_")))
    );
    assert!(
        value(
            &metrics,
            "payload_stock_store_operation_duration_seconds_count",
            &[("operation", "reserve"), ("result", "ok")]
        )
        .is_some_and(|count| count >= 8.0)
    );
    let buckets = metrics.samples.iter().filter(|sample| {
        sample.name == "payload_stock_store_operation_duration_seconds_bucket"
            && sample.labels.get("operation").is_some_and(|operation| operation == "reserve")
    });
    assert!(buckets.count() > 10, "a histogram with its buckets");
    assert_eq!(metrics.types.get("payload_stock_reservations_total").map(String::as_str), Some("counter"));
    assert_eq!(metrics.types.get("payload_stock_sizes").map(String::as_str), Some("gauge"));
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_queries_is_exposed() {
    let app = spawn_app().await;
    // The series of unbounded labels (an HTTP route, a Stripe event type) exist from their first request.
    app.restock("runner", "42", 1).await;
    body_of(app.send_with_signature("{}", "t=1,v1=forged").await, 400).await;
    let metrics = scrape(&app).await;
    let mut exposed: Vec<String> = Vec::new();
    for (name, kind) in &metrics.types {
        exposed.push(name.clone());
        if kind == "histogram" {
            exposed.extend(["_bucket", "_sum", "_count"].map(|suffix| format!("{name}{suffix}")));
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/grafana-dashboard.json")).expect("JSON");
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expression = target["expr"].as_str().expect("a PromQL expression");
            let mut rest = expression;
            while let Some(start) = rest.find("payload_stock_") {
                let name: String =
                    rest[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[start + name.len()..];
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= 16, "the dashboard queries the sidecar's metrics: {queried:?}");
    for name in &queried {
        assert!(exposed.contains(name), "the dashboard queries {name}, which /metrics does not expose");
    }
}

#[tokio::test]
async fn out_of_stock_sizes_and_the_projection_backlog_show_in_the_gauges() {
    // Nothing listens on port 9: every delivery fails, and the backlog stays.
    let settings = [
        ("PAYLOAD_URL", "http://127.0.0.1:9"),
        ("PAYLOAD_API_KEY", "payload-key-0123456789"),
        ("ADMIN_API_TOKEN", crate::helpers::ADMIN_TOKEN),
    ];
    let settings = settings.into_iter().map(|(key, value)| (key.to_owned(), value.to_owned())).collect();
    let payload = stock_sidecar::config::Config::from_settings(&settings).expect("valid").payload;
    let app = spawn_app_with(|config| config.payload = payload).await;
    app.restock("runner", "42", 1).await;
    body_of(app.reserve("pi_last", json!([{ "product": "runner", "size": "42", "quantity": 1 }])).await, 201).await;
    app.clock.advance_seconds(90);
    let metrics = scrape(&app).await;
    assert_eq!(value(&metrics, "payload_stock_sizes", &[("state", "out_of_stock")]), Some(1.0));
    assert!(value(&metrics, "payload_stock_outbox_backlog", &[]).is_some_and(|backlog| backlog >= 1.0));
    let age = value(&metrics, "payload_stock_outbox_oldest_undelivered_age_seconds", &[]).expect("age");
    assert!((90.0..100.0).contains(&age), "the oldest change is 90 s old by the test's clock: {age}");
    assert_eq!(value(&metrics, "payload_stock_oldest_active_reservation_age_seconds", &[]), Some(90.0));
}

#[tokio::test]
async fn metrics_token_guards_the_scrape_when_set() {
    const TOKEN: &str = "metrics-token-0123456789";
    let app = spawn_app_with(|config| config.metrics_token = Some(stock_sidecar::config::Secret::new(TOKEN))).await;
    let anonymous = app.anonymous(Method::GET, "/metrics").send().await.expect("request");
    assert_eq!(body_of(anonymous, 401).await["error"], "unauthorized");
    let wrong = app.anonymous(Method::GET, "/metrics").bearer_auth(crate::helpers::ADMIN_TOKEN).send().await;
    assert_eq!(wrong.expect("request").status(), 401);
    let scraped = app.anonymous(Method::GET, "/metrics").bearer_auth(TOKEN).send().await.expect("request");
    assert_eq!(scraped.status(), 200);
}

#[tokio::test]
async fn metrics_are_never_open_they_take_the_admin_token_without_a_metrics_token() {
    let app = spawn_app().await;
    let anonymous = app.anonymous(Method::GET, "/metrics").send().await.expect("request");
    assert_eq!(body_of(anonymous, 401).await["error"], "unauthorized");
    let api = app.api(Method::GET, "/metrics").send().await.expect("request");
    assert_eq!(api.status(), 401, "the shop's /v1 token is not an operator's");
    let without_tokens = spawn_app_with(|config| config.admin_token = None).await;
    let refused = without_tokens.anonymous(Method::GET, "/metrics").send().await.expect("request");
    assert_eq!(body_of(refused, 503).await["error"], "metrics_disabled");
}

#[tokio::test]
async fn made_up_http_methods_share_one_series() {
    let app = spawn_app().await;
    for index in 0..20 {
        let method = Method::from_bytes(format!("BREW{index}").as_bytes()).expect("a token");
        let response = app.anonymous(method, "/healthz").send().await.expect("request");
        assert_eq!(response.status(), 405);
    }
    let metrics = scrape(&app).await;
    let series: std::collections::BTreeSet<(String, String, String)> = metrics
        .samples
        .iter()
        .filter(|sample| sample.name == "payload_stock_http_request_duration_seconds_count")
        .map(|sample| {
            let label = |name: &str| sample.labels.get(name).cloned().unwrap_or_default();
            (label("method"), label("route"), label("status"))
        })
        .collect();
    let made_up: Vec<_> = series.iter().filter(|(method, _, _)| !["GET", "POST"].contains(&method.as_str())).collect();
    assert_eq!(made_up, [&("other".to_owned(), "/healthz".to_owned(), "405".to_owned())], "{series:?}");
    let counted = value(&metrics, "payload_stock_http_request_duration_seconds_count", &[("method", "other")]);
    assert_eq!(counted, Some(20.0));
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_callers_own_when_it_sent_one() {
    let app = spawn_app().await;
    let given = app.anonymous(Method::GET, "/healthz").header("x-request-id", "shop-7f3a-0001").send().await;
    assert_eq!(given.expect("request").headers()["x-request-id"], "shop-7f3a-0001");

    let mut seen = std::collections::HashSet::new();
    for request in [
        app.anonymous(Method::GET, "/healthz"),
        app.anonymous(Method::GET, "/healthz").header("x-request-id", "has spaces"),
        app.anonymous(Method::GET, "/no-such-route"),
        app.api(Method::POST, "/v1/reservations").body("{not json"),
    ] {
        let response = request.send().await.expect("request");
        let id = response.headers()["x-request-id"].to_str().expect("ASCII").to_owned();
        assert!(uuid_like(&id), "a new UUID when none (or an unusable one) was sent: {id}");
        assert!(seen.insert(id), "each request its own id");
    }
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}
