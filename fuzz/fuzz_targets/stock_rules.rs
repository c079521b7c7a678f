//! stock-core's arithmetic under arbitrary sequences of operations on one size: reserve, release, sell what is
//! reserved, and movements of every type. After each step: reserved never exceeds stock, available is stock minus
//! reserved, and replaying the recorded movements from zero gives the stock.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stock_core::{
    MovementDetails, MovementType, Quantity, SignedQuantity, StockLevel, Timestamp, apply_movement,
    commit_reserved_sale, replay_movements,
};

#[derive(Debug, Arbitrary)]
enum Step {
    Reserve(u32),
    Release(u32),
    Sell(u32),
    Move { kind: u8, quantity: i64 },
    FromNumber(f64),
}

fuzz_target!(|steps: Vec<Step>| {
    let details = || MovementDetails {
        reason: "fuzz".to_owned(),
        reference: None,
        order_reference: None,
        date: Timestamp::UNIX_EPOCH,
    };
    let mut level = StockLevel::new(Quantity::ZERO, Quantity::ZERO, Quantity::ZERO).expect("empty level");
    let mut movements = Vec::new();
    for step in steps.into_iter().take(64) {
        match step {
            Step::Reserve(units) | Step::Release(units) | Step::Sell(units) if Quantity::new(units).is_err() => {}
            Step::Reserve(units) => {
                if let Ok(next) = level.reserve(Quantity::new(units).expect("checked")) {
                    level = next;
                }
            }
            Step::Release(units) => {
                if let Ok(next) = level.release(Quantity::new(units).expect("checked")) {
                    level = next;
                }
            }
            Step::Sell(units) => {
                if let Ok(applied) = commit_reserved_sale(&level, Quantity::new(units).expect("checked"), details()) {
                    level = applied.level;
                    movements.push(applied.movement);
                }
            }
            Step::Move { kind, quantity } => {
                let kind = [MovementType::Restock, MovementType::Return, MovementType::Adjustment, MovementType::Sale]
                    [usize::from(kind % 4)];
                if let Ok(quantity) = SignedQuantity::new(quantity)
                    && let Ok(applied) = apply_movement(&level, kind, quantity, details())
                {
                    assert_eq!(applied.movement.stock_before, level.stock());
                    level = applied.level;
                    movements.push(applied.movement);
                }
            }
            Step::FromNumber(value) => {
                if let Ok(quantity) = Quantity::from_number(value) {
                    assert!(value.is_finite() && value >= 0.0 && value.fract() == 0.0);
                    assert_eq!(f64::from(quantity.get()), value);
                }
            }
        }
        assert!(level.reserved() <= level.stock());
        assert_eq!(level.available().get(), level.stock().get() - level.reserved().get());
        assert_eq!(replay_movements(&movements).expect("recorded movements replay"), level.stock());
    }
});
