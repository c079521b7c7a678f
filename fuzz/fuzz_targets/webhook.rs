//! The webhook path: Stripe-Signature header parsing, the signature check and event decoding, then the event's
//! ledger action. Nothing may panic; a random header must never verify; a correctly signed body always verifies
//! (as an event, or as an unreadable one that is recorded), never refused as a bad signature.
#![no_main]

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use stock_core::Timestamp;
use stock_wire::{EventPolicy, action_for, verify};

const SECRET: &str = "whsec_fuzzing_secret";
const NOW_SECONDS: i64 = 1_795_000_000;

/// The header Stripe sends for `body` signed at `seconds`: `t=<seconds>,v1=<hex HMAC-SHA256 of "<seconds>.<body>">`
/// (the sidecar's integration tests check the same verification against Stripe's own signing libraries).
fn stripe_signature_header(body: &str, secret: &str, seconds: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{seconds}.{body}").as_bytes());
    format!("t={seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let secrets = [SECRET, "whsec_rotated_secret"];
    let now = Timestamp::from_unix_millis(NOW_SECONDS * 1000).expect("a valid instant");
    if mode % 2 == 0 {
        // Header and body straight from the input (split at the first zero byte): an attacker's request.
        let split = rest.iter().position(|byte| *byte == 0).unwrap_or(rest.len());
        let header = std::str::from_utf8(&rest[..split]).ok();
        let body = rest.get(split + 1..).unwrap_or_default();
        if let Ok(event) = verify(body, header, &secrets, now) {
            panic!("an unsigned request verified: {:?}", event.id());
        }
    } else {
        // A body signed with the right secret: the fuzzer explores event decoding and the action mapping.
        let Ok(body) = std::str::from_utf8(rest) else { return };
        let header = stripe_signature_header(body, SECRET, NOW_SECONDS);
        match verify(body.as_bytes(), Some(&header), &secrets, now) {
            Ok(event) => {
                for (release_on_payment_failed, restock_on_full_refund) in [(false, false), (true, true)] {
                    let _ = action_for(&event, EventPolicy { release_on_payment_failed, restock_on_full_refund });
                }
            }
            Err(error) => panic!("a correctly signed body was refused as {error:?}"),
        }
    }
});
