//! What a product id, a size label and a movement's reason may be: bounded in length and free of characters that
//! would change their meaning where they travel (a URL path segment in Payload's REST API, a log line, an
//! idempotency key). The sidecar refuses anything else before it reaches the ledger.
//!
//! The ledger keeps stock per (product, size). A shop on Payload's ecommerce plugin has variants instead of sizes:
//! there the variant's id stands where the size stands, and a product without variants keeps its stock under
//! [`NO_VARIANT`], which no variant id can be (see [`variant_key`]).

use crate::ErrorCode;

/// The longest product id, in bytes: Payload's ids are numbers, 24-character ObjectIds or 36-character UUIDs.
pub const MAX_PRODUCT_ID_BYTES: usize = 64;
/// The longest size label, in characters ("EU 42", "W32/L34", "XL").
pub const MAX_SIZE_LABEL_CHARS: usize = 64;
/// The longest reason of a movement, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The size key under which a product without variants keeps its stock, in a shop on Payload's ecommerce plugin.
/// Its parentheses and space are not allowed in an id, so no variant can ever share it.
pub const NO_VARIANT: &str = "(no variant)";

/// Why a product id, a size label or a reason is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "product {shown}: expected 1 to {MAX_PRODUCT_ID_BYTES} characters among letters, digits, - and _ (a Payload id)"
    )]
    ProductId { shown: String },
    #[error(
        "size {shown}: expected 1 to {MAX_SIZE_LABEL_CHARS} characters, no control characters, no spaces at either end"
    )]
    SizeLabel { shown: String },
    #[error(
        "variant {shown}: expected 1 to {MAX_PRODUCT_ID_BYTES} characters among letters, digits, - and _ (a Payload id), or null for a product without variants"
    )]
    VariantId { shown: String },
    #[error("at most {MAX_REASON_CHARS} characters, no control characters but line breaks and tabs")]
    Reason,
}

impl ErrorCode for LabelError {
    fn code(&self) -> &'static str {
        match self {
            LabelError::ProductId { .. } => "invalid_product",
            LabelError::SizeLabel { .. } => "invalid_size",
            LabelError::VariantId { .. } => "invalid_variant",
            LabelError::Reason => "invalid_reason",
        }
    }
}

/// The value as an error message shows it: quoted, escaped, and cut to a readable length.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(40).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Checks a product id: 1 to 64 ASCII letters, digits, `-` and `_`, so that it is one path segment of Payload's
/// REST API as it is (no `.`, `..`, `/` or `?` can reach the collection's URL).
pub fn check_product_id(product: &str) -> Result<(), LabelError> {
    let valid = !product.is_empty()
        && product.len() <= MAX_PRODUCT_ID_BYTES
        && product.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid { Ok(()) } else { Err(LabelError::ProductId { shown: shown(product) }) }
}

/// Checks a size label: 1 to 64 characters, none a control character, no whitespace at either end (so that
/// "42" and "42 " cannot be two sizes).
pub fn check_size_label(size: &str) -> Result<(), LabelError> {
    let count = size.chars().count();
    let valid =
        (1..=MAX_SIZE_LABEL_CHARS).contains(&count) && !size.chars().any(char::is_control) && size.trim() == size;
    if valid { Ok(()) } else { Err(LabelError::SizeLabel { shown: shown(size) }) }
}

/// The size key of a variant: its id, or [`NO_VARIANT`] for a product without variants (`None`). A variant id
/// follows the product id's rules (it is a Payload id too), so it is never [`NO_VARIANT`].
pub fn variant_key(variant: Option<&str>) -> Result<&str, LabelError> {
    match variant {
        None => Ok(NO_VARIANT),
        Some(id) => match check_product_id(id) {
            Ok(()) => Ok(id),
            Err(_) => Err(LabelError::VariantId { shown: shown(id) }),
        },
    }
}

/// The variant a size key stands for, in a shop on Payload's ecommerce plugin: `None` for [`NO_VARIANT`].
pub fn variant_of_key(size: &str) -> Option<&str> {
    if size == NO_VARIANT { None } else { Some(size) }
}

/// Checks a movement's reason: at most 500 characters, no control characters but line breaks and tabs.
pub fn check_reason(reason: &str) -> Result<(), LabelError> {
    let valid = reason.chars().count() <= MAX_REASON_CHARS
        && reason.chars().all(|c| !c.is_control() || c == '\n' || c == '\t' || c == '\r');
    if valid { Ok(()) } else { Err(LabelError::Reason) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_ids_pass_and_path_tricks_do_not() {
        for id in ["12", "65f1c0ffee0123456789abcd", "3f1e2d4c-0b1a-4c5d-9e8f-7a6b5c4d3e2f", "runner_2026"] {
            assert_eq!(check_product_id(id), Ok(()), "{id}");
        }
        for id in ["", ".", "..", "a/b", "a?b", "a b", "é", "1.5", &"x".repeat(65)] {
            let error = check_product_id(id).expect_err(id);
            assert_eq!(error.code(), "invalid_product");
        }
    }

    #[test]
    fn size_labels_are_short_printable_and_trimmed() {
        for size in ["42", "EU 42", "W32/L34", "10.5", "XL", "taille unique", "36⅔"] {
            assert_eq!(check_size_label(size), Ok(()), "{size}");
        }
        for size in ["", " 42", "42 ", "4\n2", "\u{0}", &"x".repeat(65)] {
            assert_eq!(check_size_label(size).expect_err(size).code(), "invalid_size");
        }
    }

    #[test]
    fn a_variant_is_keyed_by_its_id_and_no_variant_by_a_key_no_id_can_be() {
        assert_eq!(variant_key(Some("12")), Ok("12"));
        assert_eq!(variant_key(Some("65f1c0ffee0123456789abcd")), Ok("65f1c0ffee0123456789abcd"));
        assert_eq!(variant_key(None), Ok(NO_VARIANT));
        assert_eq!(check_size_label(NO_VARIANT), Ok(()), "the key is a size like any other in the ledger");
        assert_eq!(check_product_id(NO_VARIANT).expect_err("not an id").code(), "invalid_product");
        for id in ["", "(no variant)", "a b", "1.5"] {
            assert_eq!(variant_key(Some(id)).expect_err(id).code(), "invalid_variant");
        }
        assert_eq!(variant_of_key(NO_VARIANT), None);
        assert_eq!(variant_of_key("12"), Some("12"));
    }

    #[test]
    fn reasons_are_bounded_and_may_have_line_breaks() {
        assert_eq!(check_reason(""), Ok(()));
        assert_eq!(check_reason("Delivery 7\nchecked by Sam"), Ok(()));
        assert_eq!(check_reason(&"x".repeat(500)), Ok(()));
        assert_eq!(check_reason(&"x".repeat(501)), Err(LabelError::Reason));
        assert_eq!(check_reason("bell\u{7}"), Err(LabelError::Reason));
    }

    #[test]
    fn a_long_value_is_cut_in_the_message() {
        let message = check_product_id(&"y".repeat(1000)).expect_err("too long").to_string();
        assert!(message.len() < 200, "{message}");
    }
}
