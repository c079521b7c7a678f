//! Stripe webhooks as they arrive: the signature verified on the raw request body, then the event read as loosely
//! as possible and turned into the one thing it asks of the ledger. A [`VerifiedEvent`] can only be made by
//! [`verify`], so an unverified payload cannot reach the ledger. Only the event's id, its type and its object as
//! JSON are read, so that fields and enum values added by newer Stripe API versions can never make a payment
//! unreadable; a signed body that is not even that is still a [`VerifiedEvent`], with the problem attached: it is
//! recorded, never dropped.

use hmac::{KeyInit, Mac};
use serde_json::Value;
use sha2::Digest;
use stock_core::{DisputeState, Timestamp};

/// How far the signature's timestamp may be from now, either way (Stripe's own libraries use 300 s).
const TOLERANCE_SECONDS: u64 = 300;

/// The metadata key that marks a PaymentIntent or Checkout Session as one of the shop's checkouts (the documented
/// checkout and the demo shop set `payloadStock: "1"`). A payment with neither a reservation nor this marker is
/// someone else's (a subscription, an invoice, a payment link on the same Stripe account) and is ignored quietly.
pub const CHECKOUT_MARKER: &str = "payloadStock";

/// The metadata key Payload's ecommerce plugin puts on every PaymentIntent it creates (the cart's lines): such a
/// payment is the shop's checkout as surely as one with [`CHECKOUT_MARKER`].
const ECOMMERCE_PLUGIN_MARKER: &str = "cartItemsSnapshot";

/// A Stripe event whose signature matched one of the configured secrets within the tolerance.
#[derive(Debug)]
pub struct VerifiedEvent {
    id: String,
    kind: String,
    object: Value,
    problem: Option<String>,
}

impl VerifiedEvent {
    /// The event's id (`evt_...`); for a body without one, `unreadable_` and a digest of the body, so that the
    /// same body delivered again is recognised.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event's type (`payment_intent.succeeded`); `unreadable` for a body without one.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `data.object` as JSON (`null` when absent).
    pub fn object(&self) -> &Value {
        &self.object
    }

    /// Why the signed body is not a readable event, if it is not.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

/// Why a webhook request was refused before anything was stored: nothing about it can be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    #[error("the Stripe-Signature header is malformed")]
    MalformedSignature,
    #[error("no configured webhook secret matches the signature")]
    BadSignature,
    #[error("the signature's timestamp is more than 300 seconds from now (a replayed or delayed request)")]
    OutsideTolerance,
}

/// The parts of a `Stripe-Signature` header (`t=<seconds>,v1=<hex>,v1=<hex>,...`; other schemes are ignored).
struct SignatureHeader<'a> {
    timestamp: i64,
    candidates: Vec<&'a str>,
}

fn parse_header(header: &str) -> Result<SignatureHeader<'_>, VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for pair in header.split(',') {
        let (key, value) = pair.trim().split_once('=').ok_or(VerifyError::MalformedSignature)?;
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| VerifyError::MalformedSignature)?),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    match (timestamp, candidates.is_empty()) {
        (Some(timestamp), false) => Ok(SignatureHeader { timestamp, candidates }),
        _ => Err(VerifyError::MalformedSignature),
    }
}

/// Whether one of the header's `v1` signatures is the HMAC-SHA256 of `t.body` under `secret` (compared in
/// constant time by the MAC itself).
fn signed_with(secret: &str, header: &SignatureHeader<'_>, body: &[u8]) -> bool {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(header.timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    header
        .candidates
        .iter()
        .any(|candidate| hex::decode(candidate).is_ok_and(|signature| mac.clone().verify_slice(&signature).is_ok()))
}

/// Verifies `body` against `signature` (the `Stripe-Signature` header) with each of the webhook `secrets` in turn
/// (during a rotation both verify), at `now`; then reads the event.
pub fn verify(
    body: &[u8],
    signature: Option<&str>,
    secrets: &[&str],
    now: Timestamp,
) -> Result<VerifiedEvent, VerifyError> {
    let header = parse_header(signature.ok_or(VerifyError::MissingSignature)?)?;
    if !secrets.iter().any(|secret| signed_with(secret, &header, body)) {
        return Err(VerifyError::BadSignature);
    }
    let now_seconds = now.unix_millis().div_euclid(1000);
    if now_seconds.abs_diff(header.timestamp) > TOLERANCE_SECONDS {
        return Err(VerifyError::OutsideTolerance);
    }
    Ok(read_event(body))
}

/// The event in a signed body, or what is wrong with it.
fn read_event(body: &[u8]) -> VerifiedEvent {
    let digest_id = || format!("unreadable_{}", &hex::encode(sha2::Sha256::digest(body))[..32]);
    let json: Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(error) => {
            return VerifiedEvent {
                id: digest_id(),
                kind: "unreadable".to_owned(),
                object: Value::Null,
                problem: Some(format!("the signed body is not JSON: {error}")),
            };
        }
    };
    let text = |value: Option<&Value>| value.and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned);
    let id = text(json.get("id"));
    let kind = text(json.get("type"));
    let object = json.get("data").and_then(|data| data.get("object")).cloned().unwrap_or(Value::Null);
    let problem = match (&id, &kind) {
        (Some(_), Some(_)) => None,
        (None, _) => Some("the signed body has no event id".to_owned()),
        (_, None) => Some("the signed body has no event type".to_owned()),
    };
    VerifiedEvent {
        id: id.filter(|id| id.len() <= 255).unwrap_or_else(digest_id),
        kind: kind.filter(|kind| kind.len() <= 100).unwrap_or_else(|| "unreadable".to_owned()),
        object,
        problem,
    }
}

/// What a verified event asks of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeAction {
    /// The payment succeeded: sell the reservation's units (reserving them again if it no longer holds them, unless
    /// the payment was fully refunded or disputed meanwhile). `marked`: the payment carries the shop's checkout
    /// marker, so a missing reservation is a conflict rather than someone else's payment. `payment_intent`: a
    /// Checkout Session's PaymentIntent, recorded so that the money events naming it find the session's reservation
    /// (`None` for a PaymentIntent's own event: the reference is the PaymentIntent).
    Commit { reference: String, order_reference: Option<String>, marked: bool, payment_intent: Option<String> },
    /// The checkout is over without payment: give the units back.
    Release { reference: String },
    /// An asynchronous payment is under way: keep the units past the expiry. `payment_intent` as for a commit.
    StartProcessing { reference: String, payment_intent: Option<String> },
    /// Money came back or is contested (a refund, a dispute): recorded on the payment's record, never a restock
    /// by itself. `restock_on_full_refund`: the shop refunds only before shipping, so a paid reservation's units
    /// come back when its payment becomes fully refunded ([`EventPolicy`]).
    RecordMoney { payment_intent: String, change: MoneyChange, restock_on_full_refund: bool },
    /// Nothing to do; the reason is logged and answered.
    Ignore { reason: &'static str },
    /// A correctly signed event of a type stock uses that cannot be read: recorded as an `unreadable_event`
    /// conflict, so that a paid order is never lost silently.
    Unreadable { reference: Option<String>, problem: String },
}

/// The shop's choices about what events do (the sidecar's RELEASE_ON_PAYMENT_FAILED and RESTOCK_ON_FULL_REFUND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventPolicy {
    /// `payment_intent.payment_failed` releases the reservation (by default it is kept for the customer's retry).
    pub release_on_payment_failed: bool,
    /// A full refund of a paid reservation puts its units back (by default money never restocks).
    pub restock_on_full_refund: bool,
}

/// What a money event says about a payment; stock-core's `PaymentMoney` merges it into what was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyChange {
    /// `charge.refunded`: the charge's amount and the amount refunded so far (Stripe's cumulative figure).
    Refunded { amount: u64, refunded: u64 },
    /// `refund.created`, `refund.updated`, `refund.failed`: one refund of `amount` (0 for one that failed or was
    /// canceled: it gave nothing back). The charge's cumulative figure comes with `charge.refunded`.
    Refund { amount: u64 },
    /// `charge.dispute.*`: where the payment's dispute stands.
    Dispute(DisputeState),
}

impl StripeAction {
    /// The PaymentIntent or Checkout Session the action is about, when the event named one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            StripeAction::Commit { reference, .. }
            | StripeAction::Release { reference }
            | StripeAction::StartProcessing { reference, .. } => Some(reference),
            StripeAction::RecordMoney { payment_intent, .. } => Some(payment_intent),
            StripeAction::Unreadable { reference, .. } => reference.as_deref(),
            StripeAction::Ignore { .. } => None,
        }
    }
}

/// A metadata value of the event's object, when it is a non-empty string.
fn metadata_text(object: &Value, key: &str) -> Option<String> {
    object.get("metadata")?.get(key)?.as_str().filter(|text| !text.is_empty()).map(str::to_owned)
}

/// An id field of the event's object (`payment_intent`): a non-empty string, or an expanded object's `id`.
fn object_id(object: &Value, key: &str) -> Option<String> {
    let field = object.get(key)?;
    let id = field.as_str().or_else(|| field.get("id").and_then(Value::as_str))?;
    (!id.is_empty() && id.len() <= 255).then(|| id.to_owned())
}

/// A whole amount in the currency's smallest unit.
fn amount(object: &Value, key: &str) -> Option<u64> {
    object.get(key)?.as_u64()
}

/// What a verified event asks of the ledger. Only the fields stock needs are read: the object's id, its metadata
/// (`orderNumber`, the checkout marker), a Checkout Session's `payment_status` and `payment_intent`, and a money
/// event's PaymentIntent and figures (a charge's `amount` and `amount_refunded`, a refund's `amount` and `status`,
/// a dispute's `status`). An event of a type stock uses that lacks one of them is [`StripeAction::Unreadable`];
/// an event of any other type is ignored whatever its shape.
pub fn action_for(event: &VerifiedEvent, policy: EventPolicy) -> StripeAction {
    if let Some(problem) = event.problem() {
        return StripeAction::Unreadable { reference: None, problem: problem.to_owned() };
    }
    let object = event.object();
    let kind = event.kind();
    let uses = match stock_use(kind, policy.release_on_payment_failed) {
        None => return StripeAction::Ignore { reason: "this event type does not concern stock" },
        Some(EventUse::Money(money)) => return money_action(kind, money, object, policy.restock_on_full_refund),
        Some(EventUse::Checkout(uses)) => uses,
    };
    let Some(reference) = object.get("id").and_then(Value::as_str).filter(|id| !id.is_empty() && id.len() <= 255)
    else {
        return StripeAction::Unreadable {
            reference: None,
            problem: format!("a {kind} event without a usable data.object.id"),
        };
    };
    let reference = reference.to_owned();
    // A Checkout Session names its PaymentIntent; a PaymentIntent is its own.
    let payment_intent = object_id(object, "payment_intent").filter(|_| reference.starts_with("cs_"));
    let commit = |reference: String| StripeAction::Commit {
        order_reference: metadata_text(object, "orderNumber"),
        marked: metadata_text(object, CHECKOUT_MARKER).is_some()
            || metadata_text(object, ECOMMERCE_PLUGIN_MARKER).is_some(),
        reference,
        payment_intent: payment_intent.clone(),
    };
    match uses {
        StockUse::Commit => commit(reference),
        StockUse::Release => StripeAction::Release { reference },
        StockUse::StartProcessing => StripeAction::StartProcessing { reference, payment_intent },
        StockUse::IgnoreFailedPayment => StripeAction::Ignore {
            reason: "payment failed: the reservation is kept so the customer can retry (RELEASE_ON_PAYMENT_FAILED=false)",
        },
        StockUse::CompleteSession => match object.get("payment_status").and_then(Value::as_str) {
            Some("paid" | "no_payment_required") => commit(reference),
            // Completed but not yet paid (an asynchronous method): hold the units until it succeeds or fails.
            Some(_) => StripeAction::StartProcessing { reference, payment_intent },
            None => StripeAction::Unreadable {
                reference: Some(reference),
                problem: "a checkout.session.completed event without payment_status".to_owned(),
            },
        },
    }
}

/// What a refund or dispute event records on its payment. A charge, refund or dispute without a PaymentIntent was
/// not made by a checkout (the older Charges API): ignored, like someone else's payment.
fn money_action(kind: &str, money: MoneyEvent, object: &Value, restock_on_full_refund: bool) -> StripeAction {
    let unreadable = |what: &str| StripeAction::Unreadable {
        reference: object_id(object, "payment_intent"),
        problem: format!("a {kind} event without {what}"),
    };
    if object.get("payment_intent").is_none() {
        return unreadable("data.object.payment_intent");
    }
    let Some(payment_intent) = object_id(object, "payment_intent") else {
        return StripeAction::Ignore { reason: "a charge without a PaymentIntent is no checkout's" };
    };
    let change = match money {
        MoneyEvent::ChargeRefunded => match (amount(object, "amount"), amount(object, "amount_refunded")) {
            (Some(amount), Some(refunded)) => MoneyChange::Refunded { amount, refunded },
            _ => return unreadable("a whole amount and amount_refunded"),
        },
        MoneyEvent::Refund => match (amount(object, "amount"), object.get("status").and_then(Value::as_str)) {
            (Some(_), Some("failed" | "canceled")) => MoneyChange::Refund { amount: 0 },
            (Some(amount), Some(_)) => MoneyChange::Refund { amount },
            _ => return unreadable("a whole amount and a status"),
        },
        MoneyEvent::Dispute => match object.get("status").and_then(Value::as_str) {
            // A status Stripe adds later counts as a dispute still open.
            Some(status) => {
                MoneyChange::Dispute(DisputeState::from_stripe_status(status).unwrap_or(DisputeState::Open))
            }
            None => return unreadable("a status"),
        },
    };
    StripeAction::RecordMoney { payment_intent, change, restock_on_full_refund }
}

/// What stock does with an event type: a checkout's reservation, or a payment's money.
enum EventUse {
    Checkout(StockUse),
    Money(MoneyEvent),
}

/// What a checkout's event does to its reservation.
enum StockUse {
    Commit,
    Release,
    StartProcessing,
    IgnoreFailedPayment,
    /// `checkout.session.completed`: a sale if paid, a payment under way otherwise.
    CompleteSession,
}

/// The objects money events carry.
#[derive(Clone, Copy)]
enum MoneyEvent {
    /// A charge with its cumulative refunded amount.
    ChargeRefunded,
    /// One refund.
    Refund,
    /// A dispute.
    Dispute,
}

/// The event types stock uses; `None` for every other type.
fn stock_use(kind: &str, release_on_payment_failed: bool) -> Option<EventUse> {
    let checkout = match kind {
        "payment_intent.succeeded" | "checkout.session.async_payment_succeeded" => StockUse::Commit,
        "payment_intent.canceled" | "checkout.session.async_payment_failed" | "checkout.session.expired" => {
            StockUse::Release
        }
        "payment_intent.payment_failed" if release_on_payment_failed => StockUse::Release,
        "payment_intent.payment_failed" => StockUse::IgnoreFailedPayment,
        "payment_intent.processing" => StockUse::StartProcessing,
        "checkout.session.completed" => StockUse::CompleteSession,
        "charge.refunded" => return Some(EventUse::Money(MoneyEvent::ChargeRefunded)),
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            return Some(EventUse::Money(MoneyEvent::Refund));
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => return Some(EventUse::Money(MoneyEvent::Dispute)),
        _ => return None,
    };
    Some(EventUse::Checkout(checkout))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_unit_test_secret";

    fn header_for(body: &str, seconds: i64, secret: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(format!("{seconds}.{body}").as_bytes());
        format!("t={seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds * 1000).expect("instant")
    }

    #[test]
    fn a_signed_event_is_read_loosely_and_an_unsigned_one_never() {
        let body =
            r#"{"id":"evt_1","type":"customer.created","data":{"object":{"id":"cus_1","brand_new_field":{"x":1}}}}"#;
        let secrets = ["whsec_old", SECRET];
        let event = verify(body.as_bytes(), Some(&header_for(body, 1000, SECRET)), &secrets, at(1000)).expect("ok");
        assert_eq!((event.id(), event.kind(), event.problem()), ("evt_1", "customer.created", None));
        assert_eq!(event.object()["id"], "cus_1");
        let forged = header_for(body, 1000, "whsec_attacker");
        assert_eq!(
            verify(body.as_bytes(), Some(&forged), &secrets, at(1000)).map(|_| ()),
            Err(VerifyError::BadSignature)
        );
        let tampered = body.replace("cus_1", "cus_2");
        let header = header_for(body, 1000, SECRET);
        assert_eq!(
            verify(tampered.as_bytes(), Some(&header), &secrets, at(1000)).map(|_| ()),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(body.as_bytes(), Some(&header), &secrets, at(1301)).map(|_| ()),
            Err(VerifyError::OutsideTolerance)
        );
        assert_eq!(verify(body.as_bytes(), None, &secrets, at(1000)).map(|_| ()), Err(VerifyError::MissingSignature));
        let far = header_for(body, i64::MIN, SECRET);
        assert_eq!(
            verify(body.as_bytes(), Some(&far), &secrets, at(1000)).map(|_| ()),
            Err(VerifyError::OutsideTolerance)
        );
        for malformed in ["", "t=1000", "v1=abcd", "t=soon,v1=abcd", "garbage"] {
            let refused = verify(body.as_bytes(), Some(malformed), &secrets, at(1000)).map(|_| ());
            assert_eq!(refused, Err(VerifyError::MalformedSignature), "{malformed}");
        }
    }

    #[test]
    fn a_signed_body_that_is_no_event_is_kept_with_its_problem_under_a_stable_id() {
        for (body, problem) in [
            ("not json at all", "not JSON"),
            (r#"{"type":"payment_intent.succeeded"}"#, "no event id"),
            (r#"{"id":"evt_2"}"#, "no event type"),
        ] {
            let header = header_for(body, 50, SECRET);
            let event = verify(body.as_bytes(), Some(&header), &[SECRET], at(50)).expect("signed");
            assert!(event.problem().is_some_and(|text| text.contains(problem)), "{body}: {:?}", event.problem());
            let again = verify(body.as_bytes(), Some(&header), &[SECRET], at(50)).expect("signed");
            assert_eq!(event.id(), again.id(), "the same body gets the same id");
        }
    }

    #[test]
    fn a_payment_of_payloads_ecommerce_plugin_is_the_shops_as_surely_as_a_marked_one() {
        let marked = |metadata: &str| {
            let body = format!(
                r#"{{"id":"evt_m","type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_m","metadata":{metadata}}}}}}}"#
            );
            let event = verify(body.as_bytes(), Some(&header_for(&body, 10, SECRET)), &[SECRET], at(10)).expect("ok");
            match action_for(&event, EventPolicy::default()) {
                StripeAction::Commit { marked, .. } => marked,
                other => unreachable!("{other:?}"),
            }
        };
        assert!(marked(r#"{"payloadStock":"1"}"#));
        assert!(marked(r#"{"cartID":"7","cartItemsSnapshot":"[{\"product\":7,\"quantity\":1}]"}"#));
        assert!(!marked(r#"{"invoice":"in_1"}"#), "someone else's payment on the same Stripe account");
    }

    fn action_of(kind: &str, object: &str) -> StripeAction {
        let body = format!(r#"{{"id":"evt_money","type":"{kind}","data":{{"object":{object}}}}}"#);
        let event = verify(body.as_bytes(), Some(&header_for(&body, 10, SECRET)), &[SECRET], at(10)).expect("signed");
        action_for(&event, EventPolicy::default())
    }

    #[test]
    fn refunds_and_disputes_are_recorded_on_their_payment_intent_and_never_read_as_a_sale() {
        let money = |payment_intent: &str, change| StripeAction::RecordMoney {
            payment_intent: payment_intent.into(),
            change,
            restock_on_full_refund: false,
        };
        assert_eq!(
            action_of(
                "charge.refunded",
                r#"{"id":"ch_1","amount":4990,"amount_refunded":1000,"payment_intent":"pi_1"}"#
            ),
            money("pi_1", MoneyChange::Refunded { amount: 4990, refunded: 1000 })
        );
        assert_eq!(
            action_of(
                "refund.created",
                r#"{"id":"re_1","amount":1000,"status":"pending","payment_intent":{"id":"pi_1"}}"#
            ),
            money("pi_1", MoneyChange::Refund { amount: 1000 }),
            "an expanded PaymentIntent is read by its id"
        );
        assert_eq!(
            action_of("refund.updated", r#"{"id":"re_1","amount":1000,"status":"failed","payment_intent":"pi_1"}"#),
            money("pi_1", MoneyChange::Refund { amount: 0 }),
            "a failed refund gave nothing back"
        );
        assert_eq!(
            action_of("charge.dispute.closed", r#"{"id":"du_1","status":"lost","payment_intent":"pi_1"}"#),
            money("pi_1", MoneyChange::Dispute(DisputeState::Lost))
        );
        assert_eq!(
            action_of(
                "charge.dispute.updated",
                r#"{"id":"du_1","status":"a_status_from_2030","payment_intent":"pi_1"}"#
            ),
            money("pi_1", MoneyChange::Dispute(DisputeState::Open))
        );
        assert!(matches!(
            action_of("charge.refunded", r#"{"id":"ch_1","amount":4990,"payment_intent":null}"#),
            StripeAction::Ignore { .. }
        ));
        assert!(matches!(
            action_of("charge.refunded", r#"{"id":"ch_1","amount":"4990","amount_refunded":1,"payment_intent":"pi_1"}"#),
            StripeAction::Unreadable { reference: Some(reference), .. } if reference == "pi_1"
        ));
        assert!(matches!(action_of("charge.dispute.created", r#"{"id":"du_1"}"#), StripeAction::Unreadable { .. }));
    }

    #[test]
    fn a_checkout_session_names_its_payment_intent_and_a_payment_intent_is_its_own() {
        let session =
            r#"{"id":"cs_1","payment_status":"paid","payment_intent":"pi_9","metadata":{"payloadStock":"1"}}"#;
        assert!(matches!(
            action_of("checkout.session.completed", session),
            StripeAction::Commit { payment_intent: Some(payment_intent), .. } if payment_intent == "pi_9"
        ));
        let intent = r#"{"id":"pi_9","payment_intent":"pi_other","metadata":{}}"#;
        assert!(matches!(
            action_of("payment_intent.succeeded", intent),
            StripeAction::Commit { payment_intent: None, .. }
        ));
    }
}
