//! `stock-sidecar import` and `stock-sidecar reconcile`: one-off passes over Payload's products. Import brings stock
//! that a shop entered in Payload before it used payload-stock into the ledger; reconcile compares what Payload
//! shows with the ledger and, with `--fix`, writes the ledger's figures back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use stock_core::Quantity;

use super::{DeliveryError, Projector, figures};
use crate::config::ShopKind;
use crate::store::{ImportOutcome, StoreError};

/// Documents asked for per page.
const PAGE_SIZE: u32 = 100;

/// The reason written on every movement `import` records.
pub const IMPORT_REASON: &str = "Imported from Payload: stock entered before payload-stock managed it";

/// What `import` did, size by size.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// (product, size, units) brought into the ledger.
    pub imported: Vec<(String, String, u32)>,
    /// (product, size, units the ledger has): left alone.
    pub already_in_ledger: Vec<(String, String, u32)>,
    /// (product, what is wrong): rows that could not be read.
    pub skipped: Vec<(String, String)>,
}

/// One figure on which Payload and the ledger disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub product: String,
    pub size: Option<String>,
    pub what: String,
    pub payload: String,
    pub ledger: String,
}

/// What `reconcile` found (and, with fix, did).
#[derive(Debug, Default)]
pub struct ReconcileReport {
    pub products_checked: usize,
    pub differences: Vec<Difference>,
    /// Ledger movements without their stock-movements document.
    pub missing_movements: Vec<i64>,
    /// Ledger movements whose stock-movements document (found by its idempotencyKey) says something else: a
    /// product, size, type, quantity or stock figure the ledger did not record.
    pub mismatched_movements: Vec<i64>,
    /// The idempotencyKey of every stock-movements document that is no ledger movement (planted, or from another
    /// ledger): reported, never deleted.
    pub unknown_movement_documents: Vec<String>,
    pub products_rewritten: usize,
    pub movements_created: usize,
    pub movements_rewritten: usize,
}

/// Why a pass over Payload stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<super::payload::PayloadError> for SyncError {
    fn from(error: super::payload::PayloadError) -> Self {
        SyncError::Delivery(error.into())
    }
}

fn document_id(document: &Value) -> Option<String> {
    match document.get("id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// A whole number of units from a Payload number field; null and absent are 0.
fn units(value: Option<&Value>) -> Result<Quantity, String> {
    match value {
        None | Some(Value::Null) => Ok(Quantity::ZERO),
        Some(Value::Number(number)) => number
            .as_f64()
            .ok_or_else(|| format!("{number} is not a number"))
            .and_then(|number| Quantity::from_number(number).map_err(|error| error.to_string())),
        Some(other) => Err(format!("{other} is not a number")),
    }
}

/// Every document of a collection, page by page, grouped by the id of the product it names (`product`).
fn by_product(documents: Vec<Value>) -> BTreeMap<String, Vec<Value>> {
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for document in documents {
        // Read at depth 0: the relationship is the product's id.
        let product = match document.get("product") {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => continue,
        };
        grouped.entry(product).or_default().push(document);
    }
    grouped
}

impl Projector {
    /// Every document of `collection`, at depth 0.
    async fn every_document(&self, collection: &str) -> Result<Vec<Value>, SyncError> {
        let mut documents = Vec::new();
        let mut page = 1;
        loop {
            let answer = self.client.page(collection, page, PAGE_SIZE, None).await?;
            documents.extend(answer.docs);
            if !answer.has_next_page {
                return Ok(documents);
            }
            page += 1;
        }
    }

    /// The variants of a shop on Payload's ecommerce plugin by product (none in a sizes shop).
    async fn variants_by_product(&self) -> Result<BTreeMap<String, Vec<Value>>, SyncError> {
        match self.config.shop {
            ShopKind::Sizes => Ok(BTreeMap::new()),
            ShopKind::Ecommerce => Ok(by_product(self.every_document(&self.config.variants_slug).await?)),
        }
    }

    /// A product's stock rows as Payload shows them, each with the ledger's size key: its `sizes` rows in a sizes
    /// shop; in a shop on Payload's ecommerce plugin, its variants (keyed by their id), or the product itself
    /// (keyed `(no variant)`) when it has no variants. A row without a usable key is reported in `skipped`.
    fn stock_rows(
        &self,
        product: &str,
        document: &Value,
        variants: &BTreeMap<String, Vec<Value>>,
        skipped: &mut Vec<(String, String)>,
    ) -> Vec<(String, Value)> {
        match self.config.shop {
            ShopKind::Sizes => {
                let rows = document.get("sizes").and_then(Value::as_array).cloned().unwrap_or_default();
                rows.into_iter()
                    .filter_map(|row| {
                        match row.get("size").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()) {
                            Some(size) => Some((size.to_owned(), row.clone())),
                            None => {
                                skipped.push((product.to_owned(), "a size row without a size label".to_owned()));
                                None
                            }
                        }
                    })
                    .collect()
            }
            ShopKind::Ecommerce => {
                let own = variants.get(product).cloned().unwrap_or_default();
                if own.is_empty() && document.get("enableVariants") != Some(&Value::Bool(true)) {
                    return vec![(stock_core::NO_VARIANT.to_owned(), document.clone())];
                }
                own.into_iter().filter_map(|variant| document_id(&variant).map(|id| (id, variant))).collect()
            }
        }
    }

    /// The field a row's units on hand are read from when importing: `stock` in a sizes shop, the ecommerce
    /// plugin's `inventory` otherwise.
    fn imported_stock_field(&self) -> &'static str {
        match self.config.shop {
            ShopKind::Sizes => "stock",
            ShopKind::Ecommerce => "inventory",
        }
    }

    /// Calls `each` with every product document of Payload, page by page.
    async fn each_product(&self, mut each: impl AsyncFnMut(Value) -> Result<(), SyncError>) -> Result<(), SyncError> {
        let mut page = 1;
        loop {
            let answer = self.client.page(&self.config.products_slug, page, PAGE_SIZE, None).await?;
            for document in answer.docs {
                each(document).await?;
            }
            if !answer.has_next_page {
                return Ok(());
            }
            page += 1;
        }
    }

    /// Reads every product's sizes from Payload into the ledger: each size the ledger lacks is created with its
    /// stock as an `adjustment` movement; sizes the ledger has are left alone, so running it twice is harmless.
    pub async fn import_from_payload(&self) -> Result<ImportReport, SyncError> {
        let mut report = ImportReport::default();
        let variants = self.variants_by_product().await?;
        let stock_field = self.imported_stock_field();
        self.each_product(async |document| {
            let Some(product) = document_id(&document) else {
                report.skipped.push(("?".to_owned(), "a product without an id".to_owned()));
                return Ok(());
            };
            for (size, row) in self.stock_rows(&product, &document, &variants, &mut report.skipped) {
                let size = size.as_str();
                if let Err(error) =
                    stock_core::check_product_id(&product).and_then(|()| stock_core::check_size_label(size))
                {
                    report.skipped.push((product.clone(), error.to_string()));
                    continue;
                }
                let (stock, threshold) = match (units(row.get(stock_field)), units(row.get("lowStockThreshold"))) {
                    (Ok(stock), Ok(threshold)) => (stock, threshold),
                    (Err(problem), _) | (_, Err(problem)) => {
                        report.skipped.push((product.clone(), format!("size {size}: {problem}")));
                        continue;
                    }
                };
                let now = self.clock.now();
                match self.ledger.import_size((&product, size), stock, threshold, IMPORT_REASON, now).await? {
                    ImportOutcome::Imported(_) => report.imported.push((product.clone(), size.to_owned(), stock.get())),
                    ImportOutcome::AlreadyInLedger { stock } => {
                        report.already_in_ledger.push((product.clone(), size.to_owned(), stock.get()))
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(report)
    }

    /// Compares Payload's sizes and stock-movements with the ledger; with `fix`, rewrites the products that differ
    /// and creates the missing movement documents.
    pub async fn reconcile(&self, fix: bool) -> Result<ReconcileReport, SyncError> {
        let mut report = ReconcileReport::default();
        let mut in_payload = BTreeSet::new();
        let mut to_rewrite = BTreeSet::new();
        let variants = self.variants_by_product().await?;
        let stock_field = self.imported_stock_field();
        self.each_product(async |document| {
            let Some(product) = document_id(&document) else { return Ok(()) };
            report.products_checked += 1;
            in_payload.insert(product.clone());
            let ledger = self.ledger.product_stock(&product, self.clock.now()).await?;
            let mut rows_by_size: BTreeMap<String, Value> =
                self.stock_rows(&product, &document, &variants, &mut Vec::new()).into_iter().collect();
            let before = report.differences.len();
            for record in &ledger {
                let Some(row) = rows_by_size.remove(&record.size) else {
                    report.differences.push(Difference {
                        product: product.clone(),
                        size: Some(record.size.clone()),
                        what: "size".to_owned(),
                        payload: "missing".to_owned(),
                        ledger: format!("{} units", record.level.stock()),
                    });
                    continue;
                };
                // In a shop on Payload's ecommerce plugin, its `inventory` is the available stock too.
                let inventory = (self.config.shop == ShopKind::Ecommerce)
                    .then(|| ("inventory", serde_json::json!(record.level.available().get())));
                for (name, value) in figures(record).into_iter().chain(inventory) {
                    let shown = row.get(name).cloned().unwrap_or(Value::Null);
                    if shown != value {
                        report.differences.push(Difference {
                            product: product.clone(),
                            size: Some(record.size.clone()),
                            what: name.to_owned(),
                            payload: shown.to_string(),
                            ledger: value.to_string(),
                        });
                    }
                }
            }
            if report.differences.len() > before {
                to_rewrite.insert(product.clone());
            }
            for (size, row) in rows_by_size {
                // A size the ledger has never seen holds nothing there; it differs only if Payload shows units.
                let shown = |name: &str| row.get(name).and_then(Value::as_f64).unwrap_or(0.0);
                if shown(stock_field) == 0.0 && shown("reservedStock") == 0.0 {
                    continue;
                }
                report.differences.push(Difference {
                    product: product.clone(),
                    size: Some(size),
                    what: "size".to_owned(),
                    payload: format!("{} units", row.get(stock_field).cloned().unwrap_or(Value::Null)),
                    ledger: "missing (run `stock-sidecar import`)".to_owned(),
                });
            }
            Ok(())
        })
        .await?;
        for product in self.ledger.ledger_products().await? {
            if !in_payload.contains(&product) {
                report.differences.push(Difference {
                    product,
                    size: None,
                    what: "product".to_owned(),
                    payload: "missing".to_owned(),
                    ledger: "has sizes".to_owned(),
                });
            }
        }

        let mut documented = self.movement_documents().await?;
        let mut after = 0;
        loop {
            let ids = self.ledger.movement_ids(after, 1000).await?;
            let Some(&last) = ids.last() else { break };
            for id in ids {
                match documented.remove(&id.to_string()) {
                    None => report.missing_movements.push(id),
                    Some(document) => {
                        if !super::same_movement(&document, &self.movement_document(id).await?) {
                            report.mismatched_movements.push(id);
                        }
                    }
                }
            }
            after = last;
        }
        // What is left has no ledger movement behind it.
        report.unknown_movement_documents = documented.into_keys().collect();

        if fix {
            for product in &to_rewrite {
                if self.project_product(product).await? {
                    report.products_rewritten += 1;
                }
            }
            for id in &report.missing_movements {
                if self.project_movement(*id).await? {
                    report.movements_created += 1;
                }
            }
            for id in &report.mismatched_movements {
                if self.project_movement(*id).await? {
                    report.movements_rewritten += 1;
                }
            }
        }
        Ok(report)
    }

    /// Every stock-movements document by its idempotencyKey.
    async fn movement_documents(&self) -> Result<BTreeMap<String, Value>, SyncError> {
        let mut documents = BTreeMap::new();
        let mut page = 1;
        loop {
            let answer = self.client.page(&self.config.movements_slug, page, 1000, None).await?;
            for document in answer.docs {
                if let Some(key) = document.get("idempotencyKey").and_then(Value::as_str).map(str::to_owned) {
                    documents.insert(key, document);
                }
            }
            if !answer.has_next_page {
                return Ok(documents);
            }
            page += 1;
        }
    }
}
