//! payload-stock's rules for JavaScript: a thin wasm-bindgen shell over stock-core.
//!
//! Each export converts its arguments (see `interop`), calls stock-core, and converts the answer back. No rule
//! of stock lives here. Bad input never panics: it throws a JavaScript `Error` named `StockError` whose `code`
//! is stock-core's stable code and whose message says what was wrong and where.

mod figures;
mod interop;

use figures::{ReadFigures, with_mover};
use interop::{
    Keys, Path, argument, core_error, expect_array, expect_object, get, instant_or, label, new_object, now, number_at,
    optional_string_at, set_named, stock_error, with_keys,
};
use js_sys::Array;
use stock_core::{
    CartLine, CartValidation, ErrorCode, MovementDetails, MovementType, ProductSnapshot, Quantity, ReservationTtl,
    ReturnLine, ReturnReason, SignedQuantity, SizeStock, SoldSize, StockLevel, apply_movement as apply_core_movement,
    reservation_expires_at as core_expires_at, reservation_is_expired,
};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPESCRIPT_TYPES: &'static str = r#"
/** Stable machine codes of the errors thrown or reported by this package. */
export type StockErrorCode =
  | "invalid_input"
  | "invalid_quantity"
  | "invalid_date"
  | "invalid_ttl"
  | "reserved_exceeds_stock"
  | "insufficient_stock"
  | "stock_below_reserved"
  | "invalid_movement_type"
  | "invalid_movement_sign"
  | "empty_cart"
  | "too_many_lines"
  | "unknown_product"
  | "unknown_size"
  | "invalid_variant"
  | "invalid_reason"
  | "empty_return"
  | "not_sold"
  | "exceeds_returnable";

/** What every function of this package throws on bad input. */
export interface StockError extends Error {
  name: "StockError";
  code: StockErrorCode;
}

/** The stock figures of one size of a product: whole numbers of units, reservedStock <= stock. */
export interface SizeFigures {
  stock: number;
  reservedStock: number;
  lowStockThreshold: number;
}

/** A size with its derived figures filled in; every other field of the input row is kept. */
export type DerivedSize = SizeFigures & {
  availableStock: number;
  isLowStock: boolean;
  [field: string]: unknown;
};

/**
 * A product as validateCart needs it: its id and the figures of each size; in a shop on Payload's ecommerce plugin,
 * the figures of each variant, or the product's own figures when it has no variants.
 */
export type ProductStock =
  | { id: string | number; sizes: ReadonlyArray<SizeFigures & { size: string | number }> }
  | { id: string | number; variants: ReadonlyArray<SizeFigures & { id: string | number }> }
  | ({ id: string | number } & SizeFigures);

/**
 * One line of a cart as the customer sent it: a size, or in a shop on Payload's ecommerce plugin a variant's id
 * (null or absent for a product without variants).
 */
export type CartItem =
  | { product: string | number; size: string | number; quantity: number }
  | { product: string | number; variant?: string | number | null; quantity: number };

/**
 * A size asked for, lines for the same size summed. `size` is the ledger's key: a variant's id, or "(no variant)"
 * for a product without variants; `variant` is there when the cart named variants.
 */
export interface RequestedItem {
  product: string;
  size: string;
  variant?: string | null;
  quantity: number;
  available: number;
}

/** A size asked for beyond its available units (`variant` as in RequestedItem). */
export interface Shortage {
  product: string;
  size: string;
  variant?: string | null;
  requested: number;
  available: number;
}

/** A cart line that cannot be ordered at all, or a problem with the whole cart (no `line`). */
export interface CartProblem {
  code: "invalid_quantity" | "unknown_product" | "unknown_size" | "empty_cart" | "too_many_lines";
  message: string;
  /** Index of the offending line in `items`, from 0. */
  line?: number;
  product?: string;
  size?: string;
  variant?: string | null;
}

/** The outcome of validateCart: ok when there is no error and no shortage. */
export interface CartValidation {
  ok: boolean;
  items: RequestedItem[];
  shortages: Shortage[];
  errors: CartProblem[];
}

/** A size a paid order sold, and how many of its units earlier returns took back (damaged ones included). */
export type SoldItem = ({ product: string | number; size: string | number } | { product: string | number; variant?: string | number | null }) & {
  sold: number;
  returned?: number;
};

/** Why units come back: returned and cancelled ones go back on sale, damaged ones do not. */
export type ReturnReason = "returned" | "cancelled" | "damaged";

/** One line of a return as the merchant or the customer asks it. */
export type ReturnItem = ({ product: string | number; size: string | number } | { product: string | number; variant?: string | number | null }) & {
  quantity: number;
  reason: ReturnReason;
};

/** What planReturn answers: the checked lines, what was sold with what has come back once they are recorded, and every problem. */
export interface ReturnPlan {
  ok: boolean;
  /** Each line as the ledger records it; `restocked` is 0 for damaged units. Empty unless ok. */
  lines: Array<{ product: string; size: string; variant?: string | null; quantity: number; reason: ReturnReason; restocked: number }>;
  /** Each size sold, with `returned` and `returnable` after the lines (as given when not ok). */
  sold: Array<{ product: string; size: string; variant?: string | null; sold: number; returned: number; returnable: number }>;
  errors: Array<{ code: "empty_return" | "too_many_lines" | "invalid_quantity" | "not_sold" | "exceeds_returnable"; message: string; line?: number; product?: string; size?: string; variant?: string | null }>;
}

export type MovementType = "sale" | "restock" | "return" | "adjustment";

/** A change to apply to a size's stock. quantity is signed: negative for a sale. */
export interface MovementInput {
  type: MovementType;
  quantity: number;
  reason?: string;
  reference?: string | null;
  orderReference?: string | null;
  /** When the change happened; defaults to now. */
  date?: string | Date;
}

/** The movement as the ledger records it, with the size's figures after it. */
export interface AppliedMovement {
  type: MovementType;
  quantity: number;
  stockBefore: number;
  stockAfter: number;
  reservedStock: number;
  availableStock: number;
  isLowStock: boolean;
  reason: string;
  reference: string | null;
  orderReference: string | null;
  /** RFC 3339, UTC, milliseconds: as Date.prototype.toISOString writes it. */
  date: string;
}
"#;

/// Units available for new reservations: `stock - reservedStock`.
///
/// Throws a StockError: `invalid_quantity` for anything but a whole number from 0 to 1e9 (null, undefined and
/// non-numeric values included), `reserved_exceeds_stock` when reservedStock > stock (an inconsistency, never
/// clamped to 0).
#[wasm_bindgen(js_name = availableStock)]
pub fn available_stock(
    #[wasm_bindgen(unchecked_param_type = "number")] stock: Option<f64>,
    #[wasm_bindgen(js_name = reservedStock, unchecked_param_type = "number")] reserved_stock: Option<f64>,
) -> f64 {
    // Numbers in, a number out, errors thrown: the cheapest call wasm-bindgen can make (a `Result` return
    // would allocate an array per call). Nothing is left on the Rust heap when throwing.
    match level_from_arguments(stock, reserved_stock, Some(0.0)) {
        Some(level) => level.available().into(),
        None => wasm_bindgen::throw_val(arguments_error(stock, reserved_stock, Some(0.0))),
    }
}

/// Whether a size is low on stock: `stock - reservedStock <= lowStockThreshold`.
///
/// Throws a StockError, as availableStock does.
#[wasm_bindgen(js_name = isLowStock)]
pub fn is_low_stock(
    #[wasm_bindgen(unchecked_param_type = "number")] stock: Option<f64>,
    #[wasm_bindgen(js_name = reservedStock, unchecked_param_type = "number")] reserved_stock: Option<f64>,
    #[wasm_bindgen(js_name = lowStockThreshold, unchecked_param_type = "number")] low_stock_threshold: Option<f64>,
) -> bool {
    match level_from_arguments(stock, reserved_stock, low_stock_threshold) {
        Some(level) => level.is_low(),
        None => wasm_bindgen::throw_val(arguments_error(stock, reserved_stock, low_stock_threshold)),
    }
}

/// The stock level from number arguments, or `None` if they are not valid; the path every valid call takes,
/// kept small so that it inlines.
#[inline]
fn level_from_arguments(stock: Option<f64>, reserved: Option<f64>, threshold: Option<f64>) -> Option<StockLevel> {
    StockLevel::from_numbers(stock?, reserved?, threshold?).ok()
}

/// Why [`level_from_arguments`] refused its arguments, as a JavaScript error.
#[cold]
fn arguments_error(stock: Option<f64>, reserved: Option<f64>, threshold: Option<f64>) -> JsValue {
    let level = || -> Result<StockLevel, JsValue> {
        let stock = argument(stock, "stock")?;
        let reserved = argument(reserved, "reservedStock")?;
        let threshold = argument(threshold, "lowStockThreshold")?;
        StockLevel::from_numbers(stock, reserved, threshold).map_err(|error| core_error(&error, None))
    };
    match level() {
        Err(error) => error,
        // Unreachable in practice: the arguments were refused once already. Reported all the same.
        Ok(_) => stock_error("invalid_input", "the arguments were refused"),
    }
}

/// The figures of the size object `row` (already checked to be an object).
fn level_of_row(row: &JsValue, keys: &Keys, path: Path<'_>) -> Result<StockLevel, JsValue> {
    let stock = number_at(row, &keys.stock, path.field("stock"))?;
    let reserved = number_at(row, &keys.reserved_stock, path.field("reservedStock"))?;
    let threshold = number_at(row, &keys.low_stock_threshold, path.field("lowStockThreshold"))?;
    StockLevel::from_numbers(stock, reserved, threshold).map_err(|error| core_error(&error, Some(path)))
}

/// Fills in `availableStock` and `isLowStock` on every row of a product's `sizes` array, in place, and returns
/// the same array. Every other field of a row is kept. All rows are checked before any is written, so an
/// invalid row leaves the array as it was.
///
/// Throws a StockError naming the row (`sizes[2]`) on a missing, non-numeric, negative or fractional figure
/// (`invalid_quantity`), on reservedStock > stock (`reserved_exceeds_stock`), or when a row is not an object or
/// cannot be written, such as a frozen object (`invalid_input`).
#[wasm_bindgen(js_name = deriveSizes, unchecked_return_type = "DerivedSize[]")]
pub fn derive_sizes(
    #[wasm_bindgen(unchecked_param_type = "SizeFigures[]")] sizes: &JsValue,
) -> Result<JsValue, JsValue> {
    let path = Path::root("sizes");
    let rows = expect_array(sizes, path)?;
    with_mover(|mover| {
        let scratch = match mover.read(sizes)? {
            ReadFigures::Figures(scratch) => scratch,
            ReadFigures::BadRow(index) => return Err(bad_row_error(&rows, index, path)),
        };
        let figures = scratch.to_vec();
        let row_count = rows.length() as usize;
        let mut derived = Vec::with_capacity(figures.len());
        for (index, row) in figures.chunks_exact(3).take(row_count).enumerate() {
            let &[stock, reserved, threshold] = row else { continue };
            let level = StockLevel::from_numbers(stock, reserved, threshold)
                .map_err(|error| core_error(&error, Some(path.at(index))))?;
            derived.push(level.available().into());
            derived.push(if level.is_low() { 1.0 } else { 0.0 });
        }
        if let Some(index) = mover.write(sizes, &scratch, &mut derived)? {
            let message = format!(
                "{}: the row refused availableStock or isLowStock (is it frozen?); rows before it were updated. \
                 Pass copies, for example sizes.map((row) => ({{ ...row }}))",
                path.at(index)
            );
            return Err(stock_error("invalid_input", &message));
        }
        Ok(sizes.clone())
    })
}

/// The detailed error for a row the figure mover refused (not an object, or a figure that is not a number).
fn bad_row_error(rows: &Array, index: usize, path: Path<'_>) -> JsValue {
    let path = path.at(index);
    let row = rows.get(index as u32);
    if let Err(error) = expect_object(&row, path) {
        return error;
    }
    match with_keys(|keys| level_of_row(&row, keys, path)) {
        Err(error) => error,
        Ok(_) => stock_error("invalid_input", &format!("{path}: the row changed while it was read")),
    }
}

/// Checks a cart against product snapshots: every quantity a whole number from 1 to 1000, every product and
/// size known, lines for one size summed, and every size short of stock reported as a shortage.
///
/// Problems with the customer's cart are reported in `errors` and `shortages`, all of them at once. Input
/// that is not shaped like products and a cart throws a StockError (`invalid_input`, or `invalid_quantity`
/// for a quantity or figure that is not a number).
#[wasm_bindgen(js_name = validateCart, unchecked_return_type = "CartValidation")]
pub fn validate_cart(
    #[wasm_bindgen(unchecked_param_type = "ReadonlyArray<ProductStock>")] products: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "ReadonlyArray<CartItem>")] items: &JsValue,
) -> Result<JsValue, JsValue> {
    let snapshots = with_keys(|keys| products_from(products, keys))?;
    let (lines, names_variants) = with_keys(|keys| cart_lines_from(items, keys))?;
    let validation = stock_core::validate_cart(&snapshots, &lines);
    Ok(validation_to_js(&validation, names_variants))
}

/// A variant's size key, for `path`: its id, or stock-core's key for no variant when it is null or undefined.
fn variant_key_at(value: &JsValue, path: Path<'_>) -> Result<String, JsValue> {
    let id = if value.is_undefined() || value.is_null() { None } else { Some(label(value, path)?) };
    stock_core::variant_key(id.as_deref()).map(str::to_owned).map_err(|error| core_error(&error, Some(path)))
}

fn products_from(products: &JsValue, keys: &Keys) -> Result<Vec<ProductSnapshot>, JsValue> {
    let root = Path::root("products");
    let products = expect_array(products, root)?;
    let mut snapshots = Vec::with_capacity(products.length() as usize);
    for (index, product) in products.iter().enumerate() {
        let path = root.at(index);
        expect_object(&product, path)?;
        let id = label(&get(&product, &keys.id), path.field("id"))?;
        let size_rows = get(&product, &keys.sizes);
        let variant_rows = get(&product, &keys.variants);
        let sizes = if !size_rows.is_undefined() {
            rows_from(&size_rows, &format!("products[{index}].sizes"), (&keys.size, "size"), keys, label)?
        } else if !variant_rows.is_undefined() {
            rows_from(&variant_rows, &format!("products[{index}].variants"), (&keys.id, "id"), keys, variant_key_at)?
        } else if get(&product, &keys.stock).is_undefined() {
            return Err(stock_error(
                "invalid_input",
                &format!(
                    "{path}: expected sizes, variants, or the figures of a product without variants (stock, reservedStock, lowStockThreshold)"
                ),
            ));
        } else {
            // A product without variants, in a shop on Payload's ecommerce plugin: its own figures.
            vec![SizeStock { size: stock_core::NO_VARIANT.to_owned(), level: level_of_row(&product, keys, path)? }]
        };
        snapshots.push(ProductSnapshot { id, sizes });
    }
    Ok(snapshots)
}

/// A product's rows of figures (`sizes`, or `variants` keyed by their id), each keyed by `key_of` its field `key`
/// (the property and its name).
fn rows_from(
    rows: &JsValue,
    root: &str,
    (key, key_name): (&JsValue, &str),
    keys: &Keys,
    key_of: impl Fn(&JsValue, Path<'_>) -> Result<String, JsValue>,
) -> Result<Vec<SizeStock>, JsValue> {
    let rows = expect_array(rows, Path::root(root))?;
    let mut sizes = Vec::with_capacity(rows.length() as usize);
    for (row_index, row) in rows.iter().enumerate() {
        let row_path = Path::root(root).at(row_index);
        expect_object(&row, row_path)?;
        let size = key_of(&get(&row, key), row_path.field(key_name))?;
        let level = level_of_row(&row, keys, row_path)?;
        sizes.push(SizeStock { size, level });
    }
    Ok(sizes)
}

/// The cart's lines, and whether any of them named a variant rather than a size (the answer then names variants).
fn cart_lines_from(items: &JsValue, keys: &Keys) -> Result<(Vec<CartLine>, bool), JsValue> {
    let root = Path::root("items");
    let items = expect_array(items, root)?;
    let quantity_key = JsValue::from_str("quantity");
    let product_key = JsValue::from_str("product");
    let mut lines = Vec::with_capacity(items.length() as usize);
    let mut names_variants = false;
    for (index, item) in items.iter().enumerate() {
        let path = root.at(index);
        expect_object(&item, path)?;
        let (size, variant) = key_of(&item, keys, path)?;
        names_variants |= variant;
        lines.push(CartLine {
            product: label(&get(&item, &product_key), path.field("product"))?,
            size,
            quantity: number_at(&item, &quantity_key, path.field("quantity"))?,
        });
    }
    Ok((lines, names_variants))
}

/// `{ product, size, <name>: <units>, ... }`, the shape of validateCart's items and shortages.
fn size_entry(product: &str, size: &str, names_variants: bool, figures: [(&str, Quantity); 2]) -> JsValue {
    let entry = new_object();
    set_named(&entry, "product", &JsValue::from_str(product));
    set_size(&entry, size, names_variants);
    for (name, units) in figures {
        set_named(&entry, name, &JsValue::from_f64(units.into()));
    }
    entry
}

/// `size`, and `variant` (its id, or null for no variant) when the cart named variants.
fn set_size(entry: &JsValue, size: &str, names_variants: bool) {
    set_named(entry, "size", &JsValue::from_str(size));
    if names_variants {
        let variant = stock_core::variant_of_key(size).map_or(JsValue::NULL, JsValue::from_str);
        set_named(entry, "variant", &variant);
    }
}

fn validation_to_js(validation: &CartValidation, names_variants: bool) -> JsValue {
    let result = new_object();
    set_named(&result, "ok", &JsValue::from_bool(validation.is_ok()));

    let items: Array = validation
        .items
        .iter()
        .map(|item| {
            size_entry(
                &item.product,
                &item.size,
                names_variants,
                [("quantity", item.quantity), ("available", item.available)],
            )
        })
        .collect();
    set_named(&result, "items", &items);

    let shortages: Array = validation
        .shortages
        .iter()
        .map(|short| {
            size_entry(
                &short.product,
                &short.size,
                names_variants,
                [("requested", short.requested), ("available", short.available)],
            )
        })
        .collect();
    set_named(&result, "shortages", &shortages);

    let errors = Array::new();
    for error in &validation.errors {
        let entry = new_object();
        set_named(&entry, "code", &JsValue::from_str(error.code()));
        set_named(&entry, "message", &JsValue::from_str(&error.to_string()));
        if let Some(line) = error.line() {
            set_named(&entry, "line", &JsValue::from_f64(line as f64));
        }
        if let Some(product) = error.product() {
            set_named(&entry, "product", &JsValue::from_str(product));
        }
        if let Some(size) = error.size() {
            set_size(&entry, size, names_variants);
        }
        errors.push(&entry);
    }
    set_named(&result, "errors", &errors);
    result
}

/// Checks a return of units a paid order sold against what it sold and what came back already, with the sidecar's
/// rule: each line names a size sold, in whole units; the lines of a size together never bring back more than may
/// still come back. Problems are reported in `errors` (every one), not thrown.
///
/// Throws a StockError for input that is not a return at all: `invalid_input` (not arrays of objects, a bad label),
/// `invalid_quantity` (a bad `sold` or `returned` figure), `invalid_reason`.
#[wasm_bindgen(js_name = planReturn, unchecked_return_type = "ReturnPlan")]
pub fn plan_return(
    #[wasm_bindgen(unchecked_param_type = "ReadonlyArray<SoldItem>")] sold: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "ReadonlyArray<ReturnItem>")] lines: &JsValue,
) -> Result<JsValue, JsValue> {
    let (sold, lines, names_variants) = with_keys(|keys| return_input(sold, lines, keys))?;
    let result = new_object();
    let (planned, errors) = match stock_core::plan_return(&sold, &lines) {
        Ok(planned) => (planned, Vec::new()),
        Err(errors) => (Vec::new(), errors),
    };
    set_named(&result, "ok", &JsValue::from_bool(errors.is_empty()));
    let out_lines = Array::new();
    for line in &planned {
        let entry = size_entry(
            &line.product,
            &line.size,
            names_variants,
            [("quantity", line.quantity), ("restocked", line.restocked())],
        );
        set_named(&entry, "reason", &JsValue::from_str(line.reason.as_str()));
        out_lines.push(&entry);
    }
    set_named(&result, "lines", &out_lines);
    let out_sold = Array::new();
    for size in &sold {
        let back: u32 = planned
            .iter()
            .filter(|line| line.product == size.product && line.size == size.size)
            .map(|line| line.quantity.get())
            .sum();
        let returned = Quantity::new(size.returned.get() + back).unwrap_or(size.sold);
        let after = SoldSize { returned, ..size.clone() };
        let entry = size_entry(
            &after.product,
            &after.size,
            names_variants,
            [("sold", after.sold), ("returned", after.returned)],
        );
        set_named(&entry, "returnable", &JsValue::from_f64(after.returnable().into()));
        out_sold.push(&entry);
    }
    set_named(&result, "sold", &out_sold);
    let out_errors = Array::new();
    for error in &errors {
        let entry = new_object();
        set_named(&entry, "code", &JsValue::from_str(error.code()));
        set_named(&entry, "message", &JsValue::from_str(&error.to_string()));
        match error {
            stock_core::ReturnError::InvalidQuantity { line, .. } | stock_core::ReturnError::ZeroQuantity { line } => {
                set_named(&entry, "line", &JsValue::from_f64(*line as f64));
            }
            stock_core::ReturnError::NotSold { line, product, size } => {
                set_named(&entry, "line", &JsValue::from_f64(*line as f64));
                set_named(&entry, "product", &JsValue::from_str(product));
                set_size(&entry, size, names_variants);
            }
            stock_core::ReturnError::ExceedsReturnable { product, size, .. } => {
                set_named(&entry, "product", &JsValue::from_str(product));
                set_size(&entry, size, names_variants);
            }
            _ => {}
        }
        out_errors.push(&entry);
    }
    set_named(&result, "errors", &out_errors);
    Ok(result)
}

/// A cart line's, a return line's or a sold size's ledger key: its `size`, or its `variant`'s key; and whether it
/// named a variant.
fn key_of(row: &JsValue, keys: &Keys, path: Path<'_>) -> Result<(String, bool), JsValue> {
    let size = get(row, &keys.size);
    if size.is_undefined() {
        Ok((variant_key_at(&get(row, &keys.variant), path.field("variant"))?, true))
    } else {
        Ok((label(&size, path.field("size"))?, false))
    }
}

/// planReturn's arguments read: the sizes sold, the lines, and whether any of them named a variant.
fn return_input(
    sold: &JsValue,
    lines: &JsValue,
    keys: &Keys,
) -> Result<(Vec<SoldSize>, Vec<ReturnLine>, bool), JsValue> {
    let product_key = JsValue::from_str("product");
    let mut names_variants = false;
    let root = Path::root("sold");
    let mut sizes = Vec::new();
    for (index, row) in expect_array(sold, root)?.iter().enumerate() {
        let path = root.at(index);
        expect_object(&row, path)?;
        let (size, variant) = key_of(&row, keys, path)?;
        names_variants |= variant;
        let figure = |name: &str| -> Result<Quantity, JsValue> {
            let value = get(&row, &JsValue::from_str(name));
            if name == "returned" && value.is_undefined() {
                return Ok(Quantity::ZERO);
            }
            Quantity::from_number(number_at(&row, &JsValue::from_str(name), path.field(name))?)
                .map_err(|error| core_error(&error, Some(path.field(name))))
        };
        sizes.push(SoldSize {
            product: label(&get(&row, &product_key), path.field("product"))?,
            size,
            sold: figure("sold")?,
            returned: figure("returned")?,
        });
    }
    let root = Path::root("lines");
    let mut asked = Vec::new();
    for (index, row) in expect_array(lines, root)?.iter().enumerate() {
        let path = root.at(index);
        expect_object(&row, path)?;
        let (size, variant) = key_of(&row, keys, path)?;
        names_variants |= variant;
        let reason = get(&row, &JsValue::from_str("reason")).as_string().unwrap_or_default();
        let reason = ReturnReason::parse(&reason).map_err(|error| core_error(&error, Some(path.field("reason"))))?;
        asked.push(ReturnLine {
            product: label(&get(&row, &product_key), path.field("product"))?,
            size,
            quantity: number_at(&row, &JsValue::from_str("quantity"), path.field("quantity"))?,
            reason,
        });
    }
    Ok((sizes, asked, names_variants))
}

/// When a reservation made at `createdAt` expires: `createdAt + ttlSeconds` (default 1800 s, 30 minutes),
/// as an RFC 3339 string in UTC with milliseconds.
///
/// Throws a StockError: `invalid_date` for a malformed date, `invalid_ttl` unless ttlSeconds is a whole
/// number from 1 to 604800 (7 days).
#[wasm_bindgen(js_name = reservationExpiresAt)]
pub fn reservation_expires_at(
    #[wasm_bindgen(js_name = createdAt, unchecked_param_type = "string | Date")] created_at: &JsValue,
    #[wasm_bindgen(js_name = ttlSeconds, unchecked_optional_param_type = "number")] ttl_seconds: &JsValue,
) -> Result<String, JsValue> {
    let path = Path::root("createdAt");
    let missing = || Err(stock_error("invalid_date", "createdAt: expected an RFC 3339 string or a Date, got nothing"));
    let created_at = instant_or(created_at, missing, path)?;
    let ttl = if ttl_seconds.is_undefined() {
        ReservationTtl::DEFAULT
    } else {
        let seconds = ttl_seconds
            .as_f64()
            .ok_or_else(|| stock_error("invalid_ttl", "ttlSeconds: expected a number of seconds"))?;
        ReservationTtl::from_number(seconds).map_err(|error| core_error(&error, Some(Path::root("ttlSeconds"))))?
    };
    let expires_at = core_expires_at(created_at, ttl).map_err(|error| core_error(&error, Some(path)))?;
    Ok(expires_at.to_rfc3339())
}

/// Whether a reservation expiring at `expiresAt` is expired at `now` (default: the current time): true from
/// the expiry instant on.
///
/// Throws a StockError `invalid_date` for a malformed date.
#[wasm_bindgen(js_name = isReservationExpired)]
pub fn is_reservation_expired(
    #[wasm_bindgen(js_name = expiresAt, unchecked_param_type = "string | Date")] expires_at: &JsValue,
    #[wasm_bindgen(js_name = now, unchecked_optional_param_type = "string | Date")] at: &JsValue,
) -> Result<bool, JsValue> {
    let missing = || Err(stock_error("invalid_date", "expiresAt: expected an RFC 3339 string or a Date, got nothing"));
    let expires_at = instant_or(expires_at, missing, Path::root("expiresAt"))?;
    let at = instant_or(at, now, Path::root("now"))?;
    Ok(reservation_is_expired(expires_at, at))
}

/// Applies a stock movement to a size: checks the sign rule of its type (sale negative, restock and return
/// positive, adjustment either way) and refuses to take stock below zero or below reservedStock. Returns the
/// movement as the ledger records it, with the size's figures after it.
///
/// Throws a StockError: `invalid_movement_type`, `invalid_quantity`, `invalid_movement_sign`,
/// `insufficient_stock`, `stock_below_reserved`, `reserved_exceeds_stock`, `invalid_date`, `invalid_input`.
#[wasm_bindgen(js_name = applyMovement, unchecked_return_type = "AppliedMovement")]
pub fn apply_movement(
    #[wasm_bindgen(unchecked_param_type = "SizeFigures")] size: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "MovementInput")] movement: &JsValue,
) -> Result<JsValue, JsValue> {
    let size_path = Path::root("size");
    expect_object(size, size_path)?;
    let level = with_keys(|keys| level_of_row(size, keys, size_path))?;

    let path = Path::root("movement");
    expect_object(movement, path)?;
    let kind_value = get(movement, &JsValue::from_str("type"));
    let kind_text = kind_value.as_string().ok_or_else(|| {
        stock_error("invalid_movement_type", "movement.type: expected one of sale, restock, return, adjustment")
    })?;
    let kind = MovementType::parse(&kind_text).map_err(|error| core_error(&error, Some(path.field("type"))))?;
    let quantity = number_at(movement, &JsValue::from_str("quantity"), path.field("quantity"))?;
    let quantity = SignedQuantity::from_number(quantity).map_err(|error| core_error(&error, Some(path)))?;
    let date = instant_or(&get(movement, &JsValue::from_str("date")), now, path.field("date"))?;
    let details = MovementDetails {
        reason: optional_string_at(movement, "reason", path.field("reason"))?.unwrap_or_default(),
        reference: optional_string_at(movement, "reference", path.field("reference"))?,
        order_reference: optional_string_at(movement, "orderReference", path.field("orderReference"))?,
        date,
    };

    let applied = apply_core_movement(&level, kind, quantity, details).map_err(|error| core_error(&error, None))?;
    let movement = &applied.movement;
    let optional = |text: &Option<String>| text.as_deref().map_or(JsValue::NULL, JsValue::from_str);
    let result = new_object();
    set_named(&result, "type", &JsValue::from_str(movement.kind.as_str()));
    set_named(&result, "quantity", &JsValue::from_f64(movement.quantity.get() as f64));
    set_named(&result, "stockBefore", &JsValue::from_f64(movement.stock_before.into()));
    set_named(&result, "stockAfter", &JsValue::from_f64(movement.stock_after.into()));
    set_named(&result, "reservedStock", &JsValue::from_f64(applied.level.reserved().into()));
    set_named(&result, "availableStock", &JsValue::from_f64(applied.level.available().into()));
    set_named(&result, "isLowStock", &JsValue::from_bool(applied.level.is_low()));
    set_named(&result, "reason", &JsValue::from_str(&movement.details.reason));
    set_named(&result, "reference", &optional(&movement.details.reference));
    set_named(&result, "orderReference", &optional(&movement.details.order_reference));
    set_named(&result, "date", &JsValue::from_str(&movement.details.date.to_rfc3339()));
    Ok(result)
}
