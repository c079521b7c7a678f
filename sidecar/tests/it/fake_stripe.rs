//! A small local fake of the Stripe endpoints the sidecar calls (cancel and retrieve a PaymentIntent, expire and
//! retrieve a Checkout Session), answering with the shapes of the fixtures, and recording every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Default)]
struct Objects {
    intents: HashMap<String, String>,
    sessions: HashMap<String, String>,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Objects>>;

/// A running fake Stripe API; it stops with the test's runtime.
pub(crate) struct FakeStripe {
    /// The base URL to give the sidecar as STRIPE_API_BASE.
    pub(crate) base: String,
    objects: Shared,
}

impl FakeStripe {
    pub(crate) async fn start() -> Self {
        let objects = Shared::default();
        let app = Router::new()
            .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
            .route("/v1/payment_intents/{id}", get(retrieve_intent))
            .route("/v1/checkout/sessions/{id}/expire", post(expire_session))
            .route("/v1/checkout/sessions/{id}", get(retrieve_session))
            .with_state(objects.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}/", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { base, objects }
    }

    pub(crate) fn set_intent(&self, id: &str, status: &str) {
        self.objects.lock().expect("lock").intents.insert(id.to_owned(), status.to_owned());
    }

    pub(crate) fn set_session(&self, id: &str, status: &str) {
        self.objects.lock().expect("lock").sessions.insert(id.to_owned(), status.to_owned());
    }

    pub(crate) fn intent_status(&self, id: &str) -> Option<String> {
        self.objects.lock().expect("lock").intents.get(id).cloned()
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.objects.lock().expect("lock").calls.clone()
    }
}

fn fixture_object(fixture: &str) -> Value {
    let path = format!("{}/tests/fixtures/stripe/{fixture}.json", env!("CARGO_MANIFEST_DIR"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    event["data"]["object"].clone()
}

fn intent(id: &str, status: &str) -> Json<Value> {
    let mut object = fixture_object("payment_intent.canceled");
    object["id"] = json!(id);
    object["status"] = json!(status);
    if status != "canceled" {
        object["canceled_at"] = Value::Null;
        object["cancellation_reason"] = Value::Null;
    }
    Json(object)
}

fn session(id: &str, status: &str) -> Json<Value> {
    let mut object = fixture_object("checkout.session.expired");
    object["id"] = json!(id);
    object["status"] = json!(status);
    Json(object)
}

fn stripe_error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": { "type": "invalid_request_error", "code": code, "message": message } })))
}

type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

async fn cancel_intent(State(objects): State<Shared>, Path(id): Path<String>, body: String) -> Answer {
    let mut objects = objects.lock().expect("lock");
    objects.calls.push(format!("POST /v1/payment_intents/{id}/cancel {body}"));
    let Some(status) = objects.intents.get(&id).cloned() else {
        return Err(stripe_error(StatusCode::NOT_FOUND, "resource_missing", "No such payment_intent"));
    };
    match status.as_str() {
        "requires_payment_method" | "requires_confirmation" | "requires_action" | "requires_capture" => {
            objects.intents.insert(id.clone(), "canceled".to_owned());
            Ok(intent(&id, "canceled"))
        }
        _ => Err(stripe_error(
            StatusCode::BAD_REQUEST,
            "payment_intent_unexpected_state",
            &format!("You cannot cancel this PaymentIntent because it has a status of {status}."),
        )),
    }
}

async fn retrieve_intent(State(objects): State<Shared>, Path(id): Path<String>) -> Answer {
    let mut objects = objects.lock().expect("lock");
    objects.calls.push(format!("GET /v1/payment_intents/{id}"));
    match objects.intents.get(&id) {
        Some(status) => Ok(intent(&id, status)),
        None => Err(stripe_error(StatusCode::NOT_FOUND, "resource_missing", "No such payment_intent")),
    }
}

async fn expire_session(State(objects): State<Shared>, Path(id): Path<String>) -> Answer {
    let mut objects = objects.lock().expect("lock");
    objects.calls.push(format!("POST /v1/checkout/sessions/{id}/expire"));
    match objects.sessions.get(&id).map(String::as_str) {
        Some("open") => {
            objects.sessions.insert(id.clone(), "expired".to_owned());
            Ok(session(&id, "expired"))
        }
        Some(_) => Err(stripe_error(
            StatusCode::BAD_REQUEST,
            "checkout_session_unexpected_state",
            "Only open sessions can be expired.",
        )),
        None => Err(stripe_error(StatusCode::NOT_FOUND, "resource_missing", "No such checkout.session")),
    }
}

async fn retrieve_session(State(objects): State<Shared>, Path(id): Path<String>) -> Answer {
    let mut objects = objects.lock().expect("lock");
    objects.calls.push(format!("GET /v1/checkout/sessions/{id}"));
    match objects.sessions.get(&id) {
        Some(status) => Ok(session(&id, status)),
        None => Err(stripe_error(StatusCode::NOT_FOUND, "resource_missing", "No such checkout.session")),
    }
}
