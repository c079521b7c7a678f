//! A small client for the parts of Payload's REST API the projection uses: read a document, patch it, create one,
//! find one by a field, list a collection page by page. Every call has a timeout; every failure says which call
//! failed and what Payload answered.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::PayloadConfig;

/// Connecting to Payload gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole request to Payload gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an unexpected answer's body goes into the error.
const BODY_EXCERPT_CHARS: usize = 300;

/// What a path segment (a slug, a document id) must have escaped: the path's own delimiters and what cannot appear
/// in a URL. Slugs such as `stock-movements` pass as they are.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The header in which the sidecar's projection sends its proof to the payloadStock plugin: together with the API
/// key it lets a write set stock figures, reservation documents and ledger movements, which Payload's own users
/// (and other API keys) cannot.
pub const PROJECTION_HEADER: &str = "x-payload-stock";

/// What the proof signs, with the instant it was made (the plugin checks the same): it names the purpose, so the
/// proof is worth nothing anywhere else.
const PROJECTION_PROOF_LABEL: &str = "payload-stock projection v1";

/// The projection's proof at `unix_seconds` for the token the plugin and the sidecar share (ADMIN_API_TOKEN):
/// `t=<seconds>,v1=<hex HMAC-SHA256 of "<label>.<seconds>" under the token>`. Only a holder of the token can make
/// it, the token itself never travels to Payload, and the plugin takes it within 300 seconds of its instant, so a
/// proof seen once (in a proxy's log, say) is worthless minutes later.
pub fn projection_proof(token: &str, unix_seconds: i64) -> String {
    use hmac::{KeyInit, Mac};
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{PROJECTION_PROOF_LABEL}.{unix_seconds}").as_bytes());
            format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length; an empty proof is refused by the plugin, never accepted.
        Err(_) => String::new(),
    }
}

/// Why a call to Payload failed.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("Payload is unreachable ({call}): {source}")]
    Unreachable {
        call: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Payload answered {status} to {call}: {body}")]
    Status { call: String, status: StatusCode, body: String },
    #[error("Payload's answer to {call} is not what was expected: {problem}")]
    Unexpected { call: String, problem: String },
}

/// What creating a document did.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Created,
    /// A document with the same value of the unique field `field` exists: the create was a repeat.
    AlreadyExists {
        field: String,
    },
}

/// What the plugin's figures endpoint wrote: the size keys it wrote, and those Payload has no document for.
#[derive(Debug)]
pub struct FiguresWritten {
    pub written: Vec<String>,
    pub missing: Vec<String>,
}

/// One page of a collection.
#[derive(Debug)]
pub struct Page {
    pub docs: Vec<Value>,
    pub has_next_page: bool,
}

/// Payload's REST API, authenticated with an API key.
#[derive(Clone)]
pub struct PayloadClient {
    http: reqwest::Client,
    api: String,
    /// `<collection> API-Key <key>`: a secret, left out of Debug.
    authorization: String,
    /// The token the proof of every request is made with (ADMIN_API_TOKEN): a secret, left out of Debug.
    proof_key: crate::config::Secret,
}

impl std::fmt::Debug for PayloadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadClient").field("api", &self.api).finish_non_exhaustive()
    }
}

impl PayloadClient {
    pub fn new(config: &PayloadConfig) -> Result<Self, String> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect is an error, never followed: the API key and the projection's proof go to PAYLOAD_URL only.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stock-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client for Payload: {error}"))?;
        Ok(PayloadClient {
            http,
            api: format!("{}/api", config.url),
            authorization: format!("{} API-Key {}", config.auth_collection, config.api_key.expose()),
            proof_key: config.proof_key.clone(),
        })
    }

    fn url(&self, segments: &[&str]) -> String {
        let mut url = self.api.clone();
        for segment in segments {
            url.push('/');
            url.extend(percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT));
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, PayloadError> {
        let call = format!("{method} /api/{}", segments.join("/"));
        let mut request = self
            .http
            .request(method, self.url(segments))
            .query(query)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(PROJECTION_HEADER, projection_proof(self.proof_key.expose(), unix_seconds_now()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|source| PayloadError::Unreachable { call: call.clone(), source })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| PayloadError::Unreachable { call: call.clone(), source })?;
        match serde_json::from_str(&text) {
            Ok(json) => Ok(Answer { call, status, json, text }),
            Err(_) if !status.is_success() => Ok(Answer { call, status, json: Value::Null, text }),
            Err(_) => Err(PayloadError::Unexpected { call, problem: format!("not JSON: {}", excerpt(&text)) }),
        }
    }

    /// One document at depth 0; `None` when Payload has no document with this id.
    pub async fn document(&self, collection: &str, id: &str) -> Result<Option<Value>, PayloadError> {
        let answer = self.send(Method::GET, &[collection, id], &[("depth", "0")], None).await?;
        match answer.status {
            status if status.is_success() => Ok(Some(answer.json)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(answer.into_error()),
        }
    }

    /// Updates the fields in `body` (an array field is replaced whole).
    pub async fn update(&self, collection: &str, id: &str, body: &Value) -> Result<(), PayloadError> {
        let answer = self.send(Method::PATCH, &[collection, id], &[("depth", "0")], Some(body)).await?;
        if answer.status.is_success() { Ok(()) } else { Err(answer.into_error()) }
    }

    /// Creates a document; a repeat (Payload's "Value must be unique" on a unique field) is not an error.
    pub async fn create(&self, collection: &str, body: &Value) -> Result<Created, PayloadError> {
        let answer = self.send(Method::POST, &[collection], &[("depth", "0")], Some(body)).await?;
        if answer.status.is_success() {
            return Ok(Created::Created);
        }
        match unique_violation(&answer.json) {
            Some(field) if answer.status == StatusCode::BAD_REQUEST => Ok(Created::AlreadyExists { field }),
            _ => Err(answer.into_error()),
        }
    }

    /// Hands a product's figures to the payloadStock plugin's endpoint (`POST /api/payload-stock/figures`), which
    /// writes them into a shop on Payload's ecommerce plugin without touching drafts. Answers the size keys written
    /// and those Payload has no document for (a variant deleted in Payload).
    pub async fn write_figures(&self, body: &Value) -> Result<FiguresWritten, PayloadError> {
        let answer = self.send(Method::POST, &["payload-stock", "figures"], &[], Some(body)).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(PayloadError::Unexpected {
                call: answer.call,
                problem: "no figures endpoint: is the payloadStock plugin (0.3 or later) in Payload's config, in ecommerce mode?".to_owned(),
            });
        }
        if !answer.status.is_success() {
            return Err(answer.into_error());
        }
        let keys = |name: &str| -> Vec<String> {
            answer
                .json
                .get(name)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect()
        };
        Ok(FiguresWritten { written: keys("written"), missing: keys("missing") })
    }

    /// The first document whose `field` equals `value`.
    pub async fn find_one(&self, collection: &str, field: &str, value: &str) -> Result<Option<Value>, PayloadError> {
        let filter = format!("where[{field}][equals]");
        let query = [(filter.as_str(), value), ("depth", "0"), ("limit", "1")];
        let page = self.page_with(collection, &query).await?;
        Ok(page.docs.into_iter().next())
    }

    /// Page `page` (from 1) of a collection, `limit` documents, at depth 0, optionally only the `select`ed field.
    pub async fn page(
        &self,
        collection: &str,
        page: u32,
        limit: u32,
        select: Option<&str>,
    ) -> Result<Page, PayloadError> {
        let (page, limit) = (page.to_string(), limit.to_string());
        let select_key = select.map(|field| format!("select[{field}]"));
        let mut query = vec![("depth", "0"), ("page", page.as_str()), ("limit", limit.as_str()), ("sort", "id")];
        if let Some(key) = &select_key {
            query.push((key.as_str(), "true"));
        }
        self.page_with(collection, &query).await
    }

    async fn page_with(&self, collection: &str, query: &[(&str, &str)]) -> Result<Page, PayloadError> {
        let answer = self.send(Method::GET, &[collection], query, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(PayloadError::Unexpected {
                call: answer.call,
                problem: format!("no collection {collection:?}: is the payloadStock plugin in Payload's config?"),
            });
        }
        if !answer.status.is_success() {
            return Err(answer.into_error());
        }
        let Some(docs) = answer.json.get("docs").and_then(Value::as_array).cloned() else {
            return Err(PayloadError::Unexpected { call: answer.call, problem: "no docs array".to_owned() });
        };
        Ok(Page { docs, has_next_page: answer.json.get("hasNextPage").and_then(Value::as_bool).unwrap_or(false) })
    }
}

/// Now, in whole Unix seconds, from the system clock: a proof's instant is checked by Payload's clock, not the
/// ledger's.
fn unix_seconds_now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// Payload's answer to one call.
struct Answer {
    call: String,
    status: StatusCode,
    json: Value,
    text: String,
}

impl Answer {
    fn into_error(self) -> PayloadError {
        PayloadError::Status { call: self.call, status: self.status, body: excerpt(&self.text) }
    }
}

/// The field named by Payload's "Value must be unique" validation error, if `answer` is one.
fn unique_violation(answer: &Value) -> Option<String> {
    let errors = answer.get("errors")?.as_array()?;
    errors.iter().find_map(|error| {
        let fields = error.get("data")?.get("errors")?.as_array()?;
        fields.iter().find_map(|field| {
            let message = field.get("message")?.as_str()?;
            message.contains("unique").then(|| field.get("path")?.as_str().map(str::to_owned))?
        })
    })
}

fn excerpt(text: &str) -> String {
    let mut excerpt: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::json;

    fn config(api_key: &str) -> PayloadConfig {
        PayloadConfig {
            url: "http://127.0.0.1:3000".to_owned(),
            api_key: Secret::new(api_key),
            auth_collection: "users".to_owned(),
            products_slug: "products".to_owned(),
            movements_slug: "stock-movements".to_owned(),
            reservations_slug: "stock-reservations".to_owned(),
            shop: crate::config::ShopKind::Sizes,
            variants_slug: "variants".to_owned(),
            retry_max: std::time::Duration::from_secs(1),
            payload_save_grace: std::time::Duration::from_secs(1),
            delivery_lease: std::time::Duration::from_secs(30),
            proof_key: Secret::new("admin-token-0123456789"),
        }
    }

    #[test]
    fn the_proof_is_the_plugins_and_depends_on_the_token() {
        // The value js-shim's plugin computes for the same token (its tests check the same pair).
        assert_eq!(
            projection_proof("admin-token-0123456789", 1_800_000_000),
            "t=1800000000,v1=e897bf7292101060726b1cb7e970ce68065508b8801cd38d95f6cd2f599617ce"
        );
        assert_ne!(projection_proof("admin-token-0123456789", 1), projection_proof("admin-token-0123456780", 1));
        assert_ne!(projection_proof("admin-token-0123456789", 1), projection_proof("admin-token-0123456789", 2));
        let client = PayloadClient::new(&config("k")).expect("client");
        assert!(!format!("{client:?}").contains("admin-token"));
    }

    #[test]
    fn the_api_key_never_prints() {
        let config = config("payload-key-0123456789");
        let client = PayloadClient::new(&config).expect("client");
        let printed = format!("{client:?} {config:?}");
        assert!(!printed.contains("payload-key-0123456789"), "{printed}");
    }

    #[test]
    fn slugs_pass_and_ids_are_escaped_in_paths() {
        let client = PayloadClient::new(&config("k")).expect("client");
        assert_eq!(client.url(&["stock-movements", "a/b?c"]), "http://127.0.0.1:3000/api/stock-movements/a%2Fb%3Fc");
    }

    #[test]
    fn the_unique_error_names_its_field() {
        let answer = json!({ "errors": [{ "name": "ValidationError", "data": { "collection": "stock-movements",
            "errors": [{ "message": "Value must be unique", "path": "idempotencyKey" }] },
            "message": "The following field is invalid: idempotencyKey" }] });
        assert_eq!(unique_violation(&answer).as_deref(), Some("idempotencyKey"));
        let other =
            json!({ "errors": [{ "data": { "errors": [{ "message": "This field is required.", "path": "size" }] } }] });
        assert_eq!(unique_violation(&other), None);
    }
}
