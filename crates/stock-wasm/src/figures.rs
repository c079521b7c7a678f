//! Moving the figures of a whole `sizes` array across the wasm boundary in two calls instead of a dozen per row.
//!
//! Each call from wasm into JavaScript costs 10-20 ns in Node 20, so reading three fields and writing two per
//! row one by one cost about 300 ns a row. Here two small JavaScript functions, made once, do only the moving:
//! one copies `stock`, `reservedStock` and `lowStockThreshold` of every row into a `Float64Array` (refusing
//! anything that is not a JavaScript number, without converting it), the other writes `availableStock` and
//! `isLowStock` back. Every check of the values and every computation stays in stock-core.

use js_sys::{Float64Array, Function};
use wasm_bindgen::{JsCast, JsValue};

/// Makes the two mover functions around one scratch `Float64Array`, reused from call to call: allocating a typed
/// array costs about 450 ns on the machines this was measured on, more than the rest of a call.
///
/// `read(rows)` fills the scratch with `[stock, reservedStock, lowStockThreshold]` per row and returns it, or
/// returns the index of the first row that is not an object or has a figure that is not a number (the caller
/// then reports that row in detail). `write(rows, derived)` reads `[availableStock, isLowStock (0 or 1)]` per row
/// from `derived` (the array `read` returned, refilled) and sets them; it returns the index of the first row that
/// refused a write (frozen, a setter), or -1.
const MOVER_FACTORY: &str = r#"
let scratch = new Float64Array(96);
let reading = false; // a getter on a row that calls deriveSizes again gets an array of its own
return {
  read(rows) {
    const count = rows.length;
    let figures = scratch;
    if (reading) figures = new Float64Array(count * 3);
    else if (scratch.length < count * 3) figures = scratch = new Float64Array(count * 3);
    reading = true;
    try {
      for (let i = 0; i < count; i++) {
        const row = rows[i];
        if (typeof row !== "object" || row === null) return i;
        const stock = row.stock, reserved = row.reservedStock, threshold = row.lowStockThreshold;
        if (typeof stock !== "number" || typeof reserved !== "number" || typeof threshold !== "number") return i;
        figures[i * 3] = stock;
        figures[i * 3 + 1] = reserved;
        figures[i * 3 + 2] = threshold;
      }
      return figures;
    } finally {
      reading = false;
    }
  },
  write(rows, derived) {
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (!Reflect.set(row, "availableStock", derived[i * 2]) || !Reflect.set(row, "isLowStock", derived[i * 2 + 1] === 1)) {
        return i;
      }
    }
    return -1;
  },
};
"#;

/// The two mover functions, made once per wasm instance.
pub(crate) struct FigureMover {
    read: Function,
    write: Function,
}

/// What reading a sizes array found.
pub(crate) enum ReadFigures {
    /// The scratch array holding three numbers per row (stock, reservedStock, lowStockThreshold), not yet
    /// checked by stock-core, and possibly longer than needed.
    Figures(Float64Array),
    /// The row at this index is not an object or has a figure that is not a number.
    BadRow(usize),
}

impl FigureMover {
    fn new() -> Self {
        let movers = Function::new_no_args(MOVER_FACTORY).call0(&JsValue::UNDEFINED).unwrap_or(JsValue::UNDEFINED);
        let method = |name: &str| {
            js_sys::Reflect::get(&movers, &JsValue::from_str(name))
                .ok()
                .and_then(|method| method.dyn_into::<Function>().ok())
                .unwrap_or_else(|| Function::new_no_args("throw new Error('payload-stock: figure mover missing')"))
        };
        FigureMover { read: method("read"), write: method("write") }
    }

    /// The figures of every row of `rows` (an array).
    pub(crate) fn read(&self, rows: &JsValue) -> Result<ReadFigures, JsValue> {
        let result = self.read.call1(&JsValue::UNDEFINED, rows)?;
        match result.dyn_into::<Float64Array>() {
            Ok(scratch) => Ok(ReadFigures::Figures(scratch)),
            Err(index) => Ok(ReadFigures::BadRow(index_from(&index))),
        }
    }

    /// Writes the derived figures, two per row, through `scratch` (the array [`Self::read`] returned);
    /// `Some(index)` of the first row that refused them.
    pub(crate) fn write(
        &self,
        rows: &JsValue,
        scratch: &Float64Array,
        derived: &mut Vec<f64>,
    ) -> Result<Option<usize>, JsValue> {
        // copy_from needs the lengths to match: pad with zeros (the writer reads only two numbers per row).
        derived.resize(scratch.length() as usize, 0.0);
        scratch.copy_from(derived);
        let result = self.write.call2(&JsValue::UNDEFINED, rows, scratch)?;
        let index = result.as_f64().unwrap_or(-1.0);
        Ok((index >= 0.0).then(|| index_from(&result)))
    }
}

/// A row index returned by one of the mover functions (a small whole number by construction).
fn index_from(value: &JsValue) -> usize {
    value.as_f64().map_or(0, |index| index as usize)
}

thread_local! {
    static MOVER: FigureMover = FigureMover::new();
}

/// Runs `body` with the mover functions.
pub(crate) fn with_mover<T>(body: impl FnOnce(&FigureMover) -> T) -> T {
    MOVER.with(body)
}
