//! The /v1 request decoding (reservations and movements) as the routes run it after reading the body, then the cart
//! through stock-core's validation against a fixed catalogue. Nothing may panic; a decoded request holds only
//! checked values; a valid cart never asks for more than is available.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stock_core::{ProductSnapshot, Quantity, ReservationTtl, SizeStock, StockLevel, validate_cart};
use stock_wire::{decode_movement, decode_reservation};

fn catalogue() -> Vec<ProductSnapshot> {
    let level = |stock, reserved| {
        StockLevel::new(Quantity::new(stock).expect("units"), Quantity::new(reserved).expect("units"), Quantity::ZERO)
            .expect("a valid level")
    };
    vec![ProductSnapshot {
        id: "runner".to_owned(),
        sizes: vec![
            SizeStock { size: "42".to_owned(), level: level(5, 2) },
            SizeStock { size: "43".to_owned(), level: level(0, 0) },
        ],
    }]
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let Ok(request) = decode_reservation(body, ReservationTtl::DEFAULT) else { return };
        assert!(!request.reference.is_empty() && request.reference.len() <= 255);
        assert!(request.reference.bytes().all(|byte| byte.is_ascii_graphic()), "{:?}", request.reference);
        for line in &request.lines {
            assert!(stock_core::check_product_id(&line.product).is_ok(), "{:?}", line.product);
            assert!(stock_core::check_size_label(&line.size).is_ok(), "{:?}", line.size);
        }
        let validation = validate_cart(&catalogue(), &request.lines);
        for item in &validation.items {
            assert!(item.quantity.get() >= 1);
        }
        for shortage in &validation.shortages {
            assert!(shortage.requested > shortage.available);
        }
        if validation.is_ok() {
            for item in &validation.items {
                assert!(item.quantity <= item.available, "{item:?}");
            }
        }
    } else if let Ok(request) = decode_movement(body) {
        assert_ne!(request.quantity.get(), 0);
        assert_ne!(request.kind.as_str(), "sale", "sales are never entered by hand");
        assert!(stock_core::check_product_id(&request.product).is_ok(), "{:?}", request.product);
        assert!(stock_core::check_size_label(&request.size).is_ok(), "{:?}", request.size);
        assert!(stock_core::check_reason(&request.reason).is_ok());
    }
});
